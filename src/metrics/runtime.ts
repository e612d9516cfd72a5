import { createRequire } from "node:module";
import { collectDefaultMetrics, type Registry } from "prom-client";

// prom-client's default metrics (process_* and nodejs_*) without its GC histogram. That
// histogram observes every GC through perf_hooks, and Node 20 makes each GC's entry while the
// GC's callbacks run, in the old generation: about 5 KB per scavenge, most of what the gate
// promoted at 1,000 reviews/s, and what brought on its mark-compacts (docs/performance.md,
// "The admission tail at 1,000/s"). The event-loop lag histogram, which shows the pauses that matter, stays.
// collectDefaultMetrics has no option to leave one out, so each collector is registered by
// the name prom-client lists it under (lib/metrics/<name>.js).

const LEFT_OUT: ReadonlySet<string> = new Set(["gc"]);

type Collector = (registry: Registry, config: { prefix: string; eventLoopMonitoringPrecision: number }) => void;

const load = createRequire(import.meta.url);

export function collectRuntimeMetrics(registry: Registry, prefix: string): void {
  for (const name of collectDefaultMetrics.metricsList) {
    if (LEFT_OUT.has(name)) continue;
    const collector = load(`prom-client/lib/metrics/${name}`) as Collector;
    collector(registry, { prefix, eventLoopMonitoringPrecision: 10 });
  }
}
