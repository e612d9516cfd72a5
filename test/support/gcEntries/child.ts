// Registers the runtime metrics one way, makes young garbage through many scavenges, and prints
// how much the old generation grew per burst of garbage (each burst fills the young generation
// about twice). Run by runtimeMetrics.test.ts.
import { getHeapSpaceStatistics } from "node:v8";
import { Registry, collectDefaultMetrics } from "prom-client";
import { collectRuntimeMetrics } from "../../../src/metrics/runtime.js";

const BURSTS = 400;
const how = process.argv[2];
const registry = new Registry();
if (how === "defaults") collectDefaultMetrics({ register: registry, prefix: "x_" });
else if (how === "runtime") collectRuntimeMetrics(registry, "x_");

const oldSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === "old_space")?.space_used_size ?? 0;
const newSpaceSize = getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 1;

// GC entries are delivered on a later turn of the event loop: yield between bursts of garbage.
async function main(): Promise<void> {
  await new Promise((r) => setTimeout(r, 50));
  const before = oldSpace();
  let sink: unknown[] = [];
  const perBurst = Math.ceil(newSpaceSize / 64);
  for (let i = 0; i < BURSTS; i++) {
    for (let k = 0; k < perBurst; k++) sink = [k, sink.length];
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 50));
  console.log(JSON.stringify({ bytesPerBurst: Math.round((oldSpace() - before) / BURSTS), sink: sink.length }));
}
await main();
