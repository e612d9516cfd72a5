import type { Policy } from "../core/policy.js";
import type { TimelineGroup } from "../report/timeline.js";
import { prepareTrace, simulate, type SimResult } from "./engine.js";
import { figuresOf, type Figures } from "./figures.js";
import { strategies } from "./strategies.js";
import type { Trace } from "./trace.js";

export { prepareTrace, simulate, type Planner, type PlannerResult, type SimResult, type Strategy } from "./engine.js";
export { figuresOf, jsonLine, table, type Figures } from "./figures.js";
export { planWith, referencePlanner, strategies, STRATEGY_NAMES, veleroPolicy } from "./strategies.js";
export { parseTrace, type Trace } from "./trace.js";

export interface StrategyRun {
  readonly result: SimResult;
  readonly figures: Figures;
  readonly description: string;
  readonly ignoresConflicts: boolean;
}

/** Replays a trace under every strategy for the policy (its limit is the concurrency); `started` hears of each strategy before it runs. */
export function simulateAll(trace: Trace, policy: Policy, started?: (strategy: string, index: number, count: number) => void): StrategyRun[] {
  const prepared = prepareTrace(trace, policy);
  const all = strategies(policy);
  return all.map((s, i) => {
    started?.(s.name, i, all.length);
    const result = simulate(prepared, s);
    return { result, figures: figuresOf(result), description: s.description, ignoresConflicts: !!s.ignoresConflicts };
  });
}

/** One timeline group (a column of the HTML page) per strategy run. */
export function timelineGroups(runs: readonly StrategyRun[]): TimelineGroup[] {
  return runs.map(({ result: r, figures: f, description }) => ({
    title: r.strategy,
    subtitle: `${description}; level ${r.level}, concurrency ${r.limit}; mean wait ${Math.round(f.meanWait)}s, makespan ${Math.round(f.makespan)}s, ${f.violations} violations`,
    bars: r.runs.map((x) => ({
      name: x.name,
      lane: x.name,
      arrival: x.arrival,
      ...(x.start !== undefined ? { start: x.start } : {}),
      ...(x.end !== undefined ? { end: x.end } : {}),
      waitingFor: x.waitingFor,
      waitedForSlot: x.waitedForSlot,
      ...(x.reason !== undefined ? { reason: x.reason } : {}),
      ...(x.outcome !== "completed" ? { status: x.outcome } : {}),
    })),
    marks: r.violations.map((v) => ({ at: v.at, label: `${v.backups[0]} and ${v.backups[1]} in flight together: ${v.reason}` })),
  }));
}
