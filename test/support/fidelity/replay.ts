/**
 * Replays a fidelity run's records with the core of this checkout: every case's cluster (as
 * read just before its backup), the Backup as created and what Velero did, predicted again and
 * compared again. A node run writes them with FIDELITY_RECORD=<file.jsonl>; then
 *   npx tsx test/support/fidelity/replay.ts <file.jsonl>
 * prints the mismatching cases and, per item kind and dimension, the first case that showed one.
 * It answers "would this core have been caught by that run" without running Velero again.
 */
import { appendFileSync, readFileSync } from "node:fs";
import { trim } from "../../../src/core/velero/objects.js";
import { parsePolicy, type Policy } from "../../../src/core/policy.js";
import type { FidelityCase } from "./cases.js";
import { clusterUnitOf, compare, describeMismatches, predict, type Dimension, type Mismatch, type Outcomes } from "./compare.js";
import { viewOfItems } from "./run.js";

export interface RecordedCase {
  readonly label: string;
  readonly backupName: string;
  readonly case: FidelityCase;
  readonly policy: Policy;
  /** The Backup as created (raw). */
  readonly created: object;
  /** The cluster just before the backup: every namespace and PV, the objects of the case's namespaces and Velero's. */
  readonly items: readonly object[];
  readonly observed: [string, { included: boolean; work: string[] }][];
  /** Mismatches between Velero's own counters and the records (no prediction involved). */
  readonly recordMismatches: readonly Mismatch[];
}

export const ALL_DIMENSIONS: ReadonlySet<Dimension> = new Set(["items", "hooks", "file-system backup", "snapshot"]);

export function recordCase(file: string, r: RecordedCase): void {
  const keep = new Set([...r.case.namespaces.map((ns) => ns.name), r.policy.veleroNamespace]);
  const items = r.items.filter((o) => {
    const x = o as { kind?: string; metadata?: { namespace?: string } };
    return x.kind === "Namespace" || x.kind === "PersistentVolume" || keep.has(x.metadata?.namespace ?? "");
  });
  appendFileSync(file, `${JSON.stringify({ ...r, items })}\n`);
}

/** The mismatches of one recorded case under this checkout's core. */
export function replayCase(r: RecordedCase): Mismatch[] {
  const view = viewOfItems(r.items);
  const backup = trim("Backup", { ...r.created, kind: "Backup" });
  if (!backup.ok) throw backup.error;
  const policy = parsePolicy(r.policy);
  if (!policy.ok) throw new Error(`recorded policy: ${policy.error}`);
  const observed: Outcomes = new Map(r.observed);
  return [
    ...compare(predict(backup.value, view, policy.policy), observed, ALL_DIMENSIONS, (k) => clusterUnitOf(k, view, policy.policy)),
    ...r.recordMismatches,
  ];
}

if (process.argv[1]?.endsWith("replay.ts")) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: npx tsx test/support/fidelity/replay.ts <file.jsonl>\n");
    process.exit(2);
  }
  const cases = readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RecordedCase);
  const first = new Map<string, string>();
  let failing = 0;
  for (const r of cases) {
    const found = replayCase(r);
    if (found.length === 0) continue;
    failing++;
    process.stdout.write(`${r.label}, backup ${r.backupName}:\n${describeMismatches(found)}\n\n`);
    for (const m of found) {
      const kind = `${m.item.split(" ")[0]}: predicted ${m.predicted.replace(/[\w.-]+\/[\w:.-]+|fid\S+/g, "…")}, Velero ${m.observed.replace(/[\w.-]+\/[\w:.-]+|fid\S+/g, "…")}`;
      if (!first.has(kind)) first.set(kind, r.label);
    }
  }
  process.stdout.write(
    `${cases.length} cases replayed, ${failing} with mismatches\nfirst case per kind of mismatch:\n${[...first].map(([k, l]) => `  ${l}: ${k}`).join("\n")}\n`,
  );
}
