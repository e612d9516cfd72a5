/**
 * Reads the probe plugin's records (tools/probe: one JSON file per item a
 * backup processed) and finds overlaps: two distinct backups that processed the
 * same (kind, namespace, name) at overlapping times, i.e.
 * a.start < b.end && b.start < a.end (half-open intervals: touching is not overlap).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface ProbeRecord {
  backup: string;
  kind: string;
  namespace: string;
  name: string;
  /** Unix nanoseconds. */
  start: bigint;
  end: bigint;
}

export interface Overlap {
  kind: string;
  namespace: string;
  name: string;
  a: ProbeRecord;
  b: ProbeRecord;
}

interface RawRecord {
  backup?: unknown;
  kind?: unknown;
  namespace?: unknown;
  name?: unknown;
  start?: unknown;
  end?: unknown;
  startNs?: unknown;
  endNs?: unknown;
}

function toNs(ns: unknown, iso: unknown, what: string): bigint {
  if (typeof ns === "string" && /^\d+$/.test(ns)) return BigInt(ns);
  if (typeof ns === "number" && Number.isSafeInteger(ns)) return BigInt(ns);
  if (typeof iso === "string") {
    // RFC3339Nano: keep the sub-millisecond digits Date.parse would drop.
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(iso);
    if (m) {
      const ms = Date.parse(`${m[1]}${m[3]}`);
      if (!Number.isNaN(ms)) return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0") || "0");
    }
  }
  throw new Error(`probe record has no valid ${what} time`);
}

export function parseProbeRecord(text: string, source = "record"): ProbeRecord {
  let raw: RawRecord;
  try {
    raw = JSON.parse(text) as RawRecord;
  } catch (e) {
    throw new Error(`${source}: not JSON: ${(e as Error).message}`);
  }
  for (const k of ["backup", "kind", "name"] as const) {
    if (typeof raw[k] !== "string" || raw[k] === "") throw new Error(`${source}: field ${k} missing`);
  }
  try {
    const start = toNs(raw.startNs, raw.start, "start");
    const end = toNs(raw.endNs, raw.end, "end");
    if (end < start) throw new Error("end before start");
    return {
      backup: raw.backup as string,
      kind: raw.kind as string,
      namespace: typeof raw.namespace === "string" ? raw.namespace : "",
      name: raw.name as string,
      start,
      end,
    };
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  }
}

/** All records in a probe directory (files *.json; temporary files are skipped). */
export function readProbeRecords(dir: string): ProbeRecord[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json") && !f.startsWith("."))
    .sort()
    .map((f) => parseProbeRecord(readFileSync(join(dir, f), "utf8"), join(dir, f)));
}

export function overlaps(a: ProbeRecord, b: ProbeRecord): boolean {
  return a.start < b.end && b.start < a.end;
}

/**
 * Every pair of records of distinct backups on the same (kind, namespace, name)
 * whose intervals overlap. Each unordered pair is reported once, ordered by
 * the earlier start.
 */
export function findOverlaps(records: readonly ProbeRecord[]): Overlap[] {
  const byItem = new Map<string, ProbeRecord[]>();
  for (const r of records) {
    const key = JSON.stringify([r.kind, r.namespace, r.name]);
    let list = byItem.get(key);
    if (!list) byItem.set(key, (list = []));
    list.push(r);
  }
  const out: Overlap[] = [];
  for (const list of byItem.values()) {
    const sorted = [...list].sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : x.backup.localeCompare(y.backup)));
    for (let i = 0; i < sorted.length; i++) {
      const a = sorted[i]!;
      for (let j = i + 1; j < sorted.length; j++) {
        const b = sorted[j]!;
        if (b.start >= a.end) break; // sorted by start: no later record can overlap a
        if (a.backup !== b.backup && overlaps(a, b)) {
          out.push({ kind: a.kind, namespace: a.namespace, name: a.name, a, b });
        }
      }
    }
  }
  return out.sort((x, y) => (x.a.start < y.a.start ? -1 : x.a.start > y.a.start ? 1 : 0));
}

/** Human-readable lines, one per overlap. */
export function describeOverlaps(list: readonly Overlap[]): string {
  const iso = (ns: bigint) => new Date(Number(ns / 1_000_000n)).toISOString();
  return list
    .map(
      (o) =>
        `${o.kind} ${o.namespace ? `${o.namespace}/` : ""}${o.name}: ${o.a.backup} [${iso(o.a.start)}, ${iso(o.a.end)}) ` +
        `overlaps ${o.b.backup} [${iso(o.b.start)}, ${iso(o.b.end)})`,
    )
    .join("\n");
}
