// The simulator on the committed traces (bench/traces/, made by bench/traces/generate.ts):
// every strategy side by side, one table and one JSON line per strategy and trace.
// Run with `npx tsx bench/sim.bench.ts [trace names...]` (default: all three).
//
// Goals on multi-tenant (issue 7): ItemBlock mean queue wait <= 1/5 of Velero's rule at the same
// concurrency, and ItemBlock makespan <= 1.1x the reference (which ignores conflicts).

import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { readDocument } from "../src/cli/readInput.js";
import { jsonLine, parseTrace, simulateAll, table, type Figures } from "../src/sim/index.js";
import { DEFAULT_POLICY } from "../src/core/policy.js";

const DIR = join(dirname(fileURLToPath(import.meta.url)), "traces");
const names = process.argv.slice(2).length ? process.argv.slice(2) : ["multi-tenant", "nightly", "midnight-burst"];

for (const name of names) {
  const started = performance.now();
  const parsed = parseTrace(readDocument(join(DIR, `${name}.yaml`), "trace"), name, (f) => readDocument(join(DIR, f), "cluster"));
  if (!parsed.ok) throw new Error(`${name}: ${parsed.error}`);
  const policy = parsed.trace.policy ?? DEFAULT_POLICY;
  const runs = simulateAll(parsed.trace, policy);
  const seconds = (performance.now() - started) / 1000;
  console.log(`\ntrace ${name}: ${parsed.trace.backups.length} backups, concurrency ${policy.maxConcurrentBackups} (${seconds.toFixed(1)} s to simulate)`);
  console.log(table(runs));
  const f = (s: string): Figures => runs.find((r) => r.result.strategy === s)!.figures;
  const waitRatio = f("itemblock").meanWait / f("velero").meanWait;
  const spanRatio = f("itemblock").makespan / f("reference").makespan;
  const goal = name === "multi-tenant";
  console.log(
    `itemblock/velero mean wait ${waitRatio.toFixed(3)}${goal ? ` (goal <= 0.2: ${waitRatio <= 0.2 ? "met" : "MISSED"})` : ""}; ` +
      `itemblock/reference makespan ${spanRatio.toFixed(3)}${goal ? ` (goal <= 1.1: ${spanRatio <= 1.1 ? "met" : "MISSED"})` : ""}`,
  );
  for (const r of runs) console.log(jsonLine(r.result, r.figures));
}
