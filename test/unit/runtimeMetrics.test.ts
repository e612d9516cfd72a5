import { Registry, collectDefaultMetrics } from "prom-client";
import { describe, expect, it } from "vitest";
import { collectRuntimeMetrics } from "../../src/metrics/runtime.js";
import { lastJsonOf } from "../support/childJson.js";

// The gate exports prom-client's runtime metrics without the GC histogram (src/metrics/runtime.ts):
// observing GCs through perf_hooks leaves each GC's entry in the old generation.

const families = async (r: Registry) => (await r.getMetricsAsJSON()).map((m) => m.name).sort();

describe("runtime metrics", () => {
  it("are prom-client's defaults but the GC histogram", async () => {
    const ours = new Registry();
    collectRuntimeMetrics(ours, "x_");
    const defaults = new Registry();
    collectDefaultMetrics({ register: defaults, prefix: "x_" });
    const [mine, all] = [await families(ours), await families(defaults)];
    expect(all.filter((f) => !mine.includes(f))).toEqual(["x_nodejs_gc_duration_seconds"]);
    expect(mine.filter((f) => !all.includes(f))).toEqual([]);
    expect(mine).toContain("x_process_resident_memory_bytes");
    expect(mine).toContain("x_nodejs_eventloop_lag_p99_seconds");
  });

  const oldGrowthPerBurst = (how: "none" | "defaults" | "runtime") =>
    lastJsonOf<{ bytesPerBurst: number }>("test/support/gcEntries/child.ts", [how], ["--max-semi-space-size=1"]).bytesPerBurst;

  it("leave no garbage in the old generation for each GC (control: prom-client's defaults do)", () => {
    const none = oldGrowthPerBurst("none");
    expect(oldGrowthPerBurst("runtime")).toBeLessThan(none + 1024);
    expect(oldGrowthPerBurst("defaults")).toBeGreaterThan(none + 4096);
  });
});
