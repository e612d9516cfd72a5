import type { Policy } from "../core/policy.js";
import type { TimelineGroup } from "../report/timeline.js";
import { prepareTrace, simulate, type SimResult } from "./engine.js";
import { backupInfo, type Trace } from "./trace.js";
import { figuresOf, tenantWaits, type Figures, type TenantWaits } from "./figures.js";
import { fairPolicy, oneQueue, strategies, WITHOUT_HOLD } from "./strategies.js";
import { compareHolds, holdsOf, type HoldComparison } from "./holds.js";
import { ORIGIN_NAMESPACE, tenantOf } from "../core/decision/tenants.js";

export { prepareTrace, simulate, type Planner, type PlannerResult, type SimResult, type Strategy } from "./engine.js";
export { figuresOf, holdJsonLine, holdTable, jsonLine, table, tenantJsonLine, tenantTable, tenantWaits, type Figures, type TenantWaits } from "./figures.js";
export { compareHolds, HoldJudge, holdsOf, type HoldComparison } from "./holds.js";
export {
  fairPolicy,
  HOLDS,
  oneQueue,
  planWith,
  referencePlanner,
  strategies,
  STRATEGY_NAMES,
  veleroPolicy,
  WITHOUT_HOLD,
  withoutHold,
  type Hold,
} from "./strategies.js";
export { parseTrace, type Trace } from "./trace.js";

export interface StrategyRun {
  readonly result: SimResult;
  readonly figures: Figures;
  readonly description: string;
  readonly ignoresConflicts: boolean;
  /** When the trace or the policy has tenants: each tenant's waits. */
  readonly tenantWaits?: readonly TenantWaits[];
}

/** Whether a replay compares fair sharing: the policy has a tenants section, or a backup of the trace has a tenant. */
export function hasTenants(trace: Trace, policy: Policy): boolean {
  return policy.tenants !== undefined || trace.backups.some((b) => b.annotations[ORIGIN_NAMESPACE] !== undefined);
}

/** Each trace backup's tenant, as fair sharing finds it. */
function tenantsOf(trace: Trace, policy: Policy): (name: string) => string | undefined {
  const fair = fairPolicy(policy);
  const of = new Map(trace.backups.map((b) => [b.name, tenantOf(backupInfo(b, trace.t0, fair.veleroNamespace, "New", ""), fair)]));
  return (name) => of.get(name);
}

/** Replays a trace under every strategy for the policy (its limit is the concurrency); `started` hears of each strategy before it runs. */
export function simulateAll(trace: Trace, policy: Policy, started?: (strategy: string, index: number, count: number) => void): StrategyRun[] {
  return replay(trace, policy, started).runs;
}

/** Every strategy's run and, when the policy or the trace has holds, what each hold changed. */
export function replay(
  trace: Trace,
  policy: Policy,
  started?: (strategy: string, index: number, count: number) => void,
): { runs: StrategyRun[]; holds?: HoldComparison } {
  const prepared = prepareTrace(trace, policy);
  const tenants = hasTenants(trace, policy);
  const tenantOfName = tenants ? tenantsOf(trace, policy) : undefined;
  const holds = holdsOf(trace, policy);
  const all = strategies(policy, tenants, holds);
  const runs = all.map((s, i): StrategyRun => {
    started?.(s.name, i, all.length);
    const result = simulate(prepared, s);
    return {
      result,
      figures: figuresOf(result),
      description: s.description,
      ignoresConflicts: !!s.ignoresConflicts,
      ...(tenantOfName ? { tenantWaits: tenantWaits(result, tenantOfName) } : {}),
    };
  });
  const resultOf = (name: string) => runs.find((r) => r.result.strategy === name)?.result;
  const withHolds = resultOf(policy.conflictLevel.toLowerCase());
  const comparison = withHolds && compareHolds(prepared, oneQueue(policy), holds, withHolds, (hold) => resultOf(WITHOUT_HOLD[hold]));
  return { runs, ...(comparison ? { holds: comparison } : {}) };
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
