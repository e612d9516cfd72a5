import { BUDGET_KINDS, hasBudgets, Limits, workOf, type BudgetKind } from "../core/decision/budgets.js";
import { namespaceMet, restoreTarget, type RestoreTarget } from "../core/decision/restores.js";
import { windowClock, windowOf, windowStateOf, Zones } from "../core/decision/windows.js";
import type { BackupInfo } from "../core/model.js";
import type { Policy } from "../core/policy.js";
import type { BackupScope } from "../core/scope/scope.js";
import { ScopeCache } from "../core/scope/cache.js";
import { Timestamps } from "../core/times.js";
import type { BackupRun, PreparedTrace, SimResult } from "./engine.js";
import type { Hold } from "./strategies.js";
import { backupInfo, type Trace } from "./trace.js";

// What each hold (budgets, windows, restores) changed: the policy's level run with the hold
// beside the same run without it, measured from the runs themselves (who was in flight when)
// with the core's own predictions of a backup's budget use, window and restore targets, not
// from what the planner said. As the engine checks the conflict rule, this checks the holds:
// a run with the hold that breaks it is reported.

/** The holds a replay compares: those the policy sets, and restores when the trace has some that hold backups. */
export function holdsOf(trace: Trace, policy: Policy): Hold[] {
  return [
    ...(hasBudgets(policy) ? (["budgets"] as const) : []),
    ...(policy.windows && policy.windows.length > 0 ? (["windows"] as const) : []),
    ...(trace.restores.length > 0 && policy.restores?.holdBackups !== false ? (["restores"] as const) : []),
  ];
}

const EPS = 1e-9;
type Started = BackupRun & { start: number; end: number };
const startedRuns = (r: SimResult) => r.runs.filter((x): x is Started => x.start !== undefined && x.end !== undefined);

/** One budget's most backups in flight at once in a run. */
export interface BudgetPeak {
  readonly kind: BudgetKind;
  readonly name: string;
  readonly limit: number;
  readonly peak: number;
}

/** How the backups one window governs started in a run. */
export interface WindowStarts {
  /** Its name, else windows[i]. */
  readonly window: string;
  readonly zone: string;
  /** Backups of the trace it governs. */
  readonly governed: number;
  /** Started while it was closed. */
  readonly outside: number;
  /** Of those, started after their max wait under onMaxWait Start (the policy lets them). */
  readonly afterMaxWait: number;
  /** Failed for waiting past their max wait (onMaxWait Fail). */
  readonly failed: number;
}

/** Backups in flight while a restore of the trace wrote into what they hold. */
export interface RestoreOverlaps {
  readonly restores: number;
  /** Backups in flight at some instant while a restore wrote into a namespace they hold. */
  readonly inFlightDuring: number;
  /** Of those, backups that started while such a restore was writing (what the hold prevents). */
  readonly startedDuring: number;
}

/** The core's predictions for the backups of one prepared trace, under the policy with its holds. */
export class HoldJudge {
  readonly #trace: PreparedTrace;
  readonly #policy: Policy;
  readonly #infos = new Map<string, BackupInfo>();
  readonly #cache = new ScopeCache();
  readonly #times = new Timestamps();
  readonly #zones = new Zones();
  #targets?: readonly { readonly from: number; readonly to: number; readonly at: (t: number) => RestoreTarget }[];

  constructor(trace: PreparedTrace, policy: Policy) {
    this.#trace = trace;
    this.#policy = policy;
    for (const b of trace.backups) this.#infos.set(b.entry.name, backupInfo(b.entry, trace.t0, policy.veleroNamespace, "InProgress", b.specHash));
  }

  #info(name: string): BackupInfo {
    return this.#infos.get(name) as BackupInfo;
  }

  #scope(name: string): BackupScope {
    return this.#cache.scopeOf(this.#info(name), this.#trace.view, this.#policy);
  }

  /** Each budget with a limit that some backup of the run counted toward, and its peak (budget kinds in order, then by name). */
  budgetPeaks(r: SimResult): BudgetPeak[] {
    const budgets = this.#policy.budgets;
    if (!budgets) return [];
    const limits = new Limits(budgets);
    const spans = new Map<string, { kind: BudgetKind; name: string; limit: number; runs: Started[] }>();
    for (const x of startedRuns(r)) {
      const work = workOf(this.#info(x.name), this.#scope(x.name), this.#policy);
      for (const kind of BUDGET_KINDS) {
        for (const name of work[kind]) {
          const limit = limits.of(kind, name);
          if (limit === undefined) continue;
          const key = `${BUDGET_KINDS.indexOf(kind)}\u0000${name}`;
          const s = spans.get(key) ?? { kind, name, limit, runs: [] };
          s.runs.push(x);
          spans.set(key, s);
        }
      }
    }
    return [...spans].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, s]) => ({ kind: s.kind, name: s.name, limit: s.limit, peak: mostAtOnce(s.runs) }));
  }

  /** Per window of the policy (in its order): how the backups it governs started. */
  windowStarts(r: SimResult): WindowStarts[] {
    const windows = this.#policy.windows ?? [];
    const out = windows.map((w, i) => ({ window: w.name ?? `windows[${i}]`, zone: w.timeZone, governed: 0, outside: 0, afterMaxWait: 0, failed: 0 }));
    for (const x of r.runs) {
      const info = this.#info(x.name);
      const i = windowOf(info, windows);
      if (i === undefined) continue;
      const w = out[i]!;
      w.governed++;
      if (x.outcome === "missed window") w.failed++;
      if (x.start === undefined) continue;
      const at = this.#trace.t0 + Math.round(x.start * 1000);
      if (windowClock(windows[i]!, i, at, this.#zones).open) continue;
      w.outside++;
      const state = windowStateOf(info, this.#policy, at, this.#times, this.#zones);
      if (state && "held" in state && !state.held) w.afterMaxWait++;
    }
    return out;
  }

  /** Backups in flight while a restore of the trace wrote into a namespace they would hold (the core's restore rule). */
  restoreOverlaps(r: SimResult): RestoreOverlaps {
    const restores = this.#restoreTargets();
    let inFlightDuring = 0;
    let startedDuring = 0;
    for (const x of startedRuns(r)) {
      const held = { scope: this.#scope(x.name), spec: this.#info(x.name).spec };
      const met = restores.filter((t) => x.start < t.to - EPS && t.from < x.end - EPS && namespaceMet(t.at(Math.max(x.start, t.from)), held) !== undefined);
      if (met.length === 0) continue;
      inFlightDuring++;
      if (met.some((t) => t.from <= x.start + EPS)) startedDuring++;
    }
    return { restores: restores.length, inFlightDuring, startedDuring };
  }

  // Where each restore writes, as the plan sees it at an instant while it runs: the Backup it
  // names narrows it once that backup has arrived (is in the plan's snapshot).
  #restoreTargets() {
    this.#targets ??= this.#trace.restores.map((r) => {
      const named = this.#trace.backups.find((b) => b.entry.name === r.writing.backupName);
      const bare = restoreTarget(r.writing, undefined, this.#trace.view);
      const narrowed = named && restoreTarget(r.writing, this.#info(named.entry.name), this.#trace.view);
      return { from: r.entry.arrival, to: r.end, at: (t: number) => (narrowed && named.entry.arrival <= t + EPS ? narrowed : bare) };
    });
    return this.#targets;
  }
}

/** The most runs in flight at once (a run ending when another starts frees its place first, as in the engine). */
function mostAtOnce(runs: readonly Started[]): number {
  const steps = runs.flatMap((x) => [
    { t: x.start, d: 1 },
    { t: x.end, d: -1 },
  ]);
  steps.sort((a, b) => a.t - b.t || a.d - b.d);
  let n = 0;
  let most = 0;
  for (const s of steps) most = Math.max(most, (n += s.d));
  return most;
}

/** Queue waits (arrival to start) of the backups that started, seconds. */
export interface Waits {
  readonly mean: number;
  readonly max: number;
}
export function waitsOf(r: SimResult): Waits {
  const waits = startedRuns(r).map((x) => x.start - x.arrival);
  return { mean: waits.length ? waits.reduce((a, b) => a + b, 0) / waits.length : 0, max: Math.max(0, ...waits) };
}

export interface Pair<T> {
  readonly without: T;
  readonly with: T;
}

export interface HoldComparison {
  /** The strategy with every hold: the policy's level (one queue). */
  readonly strategy: string;
  readonly budgets?: {
    readonly without: string;
    readonly peaks: readonly (Omit<BudgetPeak, "peak"> & Pair<number>)[];
    readonly waits: Pair<Waits>;
  };
  readonly windows?: {
    readonly without: string;
    readonly windows: readonly (Pick<WindowStarts, "window" | "zone" | "governed"> & {
      readonly outside: Pair<number>;
      readonly afterMaxWait: Pair<number>;
      readonly failed: Pair<number>;
    })[];
    readonly waits: Pair<Waits>;
  };
  readonly restores?: {
    readonly without: string;
    readonly restores: number;
    readonly inFlightDuring: Pair<number>;
    readonly startedDuring: Pair<number>;
    readonly waits: Pair<Waits>;
  };
  /** The run with the holds broke one (a bug): what, in words. */
  readonly broken: readonly string[];
}

/**
 * The comparison for the runs of one replay: `withHolds` is the run at the policy's level,
 * `without(hold)` the run without that hold; `policy` is the policy with the holds.
 */
export function compareHolds(
  trace: PreparedTrace,
  policy: Policy,
  holds: readonly Hold[],
  withHolds: SimResult,
  without: (hold: Hold) => SimResult | undefined,
): HoldComparison | undefined {
  if (holds.length === 0) return undefined;
  const judge = new HoldJudge(trace, policy);
  const broken: string[] = [];
  const out: { -readonly [K in keyof HoldComparison]: HoldComparison[K] } = { strategy: withHolds.strategy, broken };
  const runOf = (hold: Hold) => {
    const r = without(hold);
    return r ? { r, waits: { without: waitsOf(r), with: waitsOf(withHolds) } } : undefined;
  };

  const budgets = holds.includes("budgets") ? runOf("budgets") : undefined;
  if (budgets) {
    const before = new Map(judge.budgetPeaks(budgets.r).map((p) => [`${p.kind}\u0000${p.name}`, p]));
    const after = new Map(judge.budgetPeaks(withHolds).map((p) => [`${p.kind}\u0000${p.name}`, p]));
    const keys = [...new Set([...before.keys(), ...after.keys()])].sort(
      (a, b) => BUDGET_KINDS.indexOf(a.split("\u0000")[0] as BudgetKind) - BUDGET_KINDS.indexOf(b.split("\u0000")[0] as BudgetKind) || (a < b ? -1 : 1),
    );
    const peaks = keys.map((k) => {
      const p = (before.get(k) ?? after.get(k))!;
      return { kind: p.kind, name: p.name, limit: p.limit, without: before.get(k)?.peak ?? 0, with: after.get(k)?.peak ?? 0 };
    });
    for (const p of peaks) if (p.with > p.limit) broken.push(`budget ${p.kind} ${p.name}: ${p.with} in flight at once, limit ${p.limit}`);
    out.budgets = { without: budgets.r.strategy, peaks, waits: budgets.waits };
  }

  const windows = holds.includes("windows") ? runOf("windows") : undefined;
  if (windows) {
    const before = judge.windowStarts(windows.r);
    const after = judge.windowStarts(withHolds);
    const rows = after.map((w, i) => ({
      window: w.window,
      zone: w.zone,
      governed: w.governed,
      outside: { without: before[i]!.outside, with: w.outside },
      afterMaxWait: { without: before[i]!.afterMaxWait, with: w.afterMaxWait },
      failed: { without: before[i]!.failed, with: w.failed },
    }));
    for (const w of rows) {
      const early = w.outside.with - w.afterMaxWait.with;
      if (early > 0) broken.push(`window ${w.window}: ${early} backups started while it was closed, before their max wait`);
    }
    out.windows = { without: windows.r.strategy, windows: rows, waits: windows.waits };
  }

  const restores = holds.includes("restores") ? runOf("restores") : undefined;
  if (restores) {
    const before = judge.restoreOverlaps(restores.r);
    const after = judge.restoreOverlaps(withHolds);
    if (after.startedDuring > 0) broken.push(`restores: ${after.startedDuring} backups started while a restore wrote into what they hold`);
    out.restores = {
      without: restores.r.strategy,
      restores: after.restores,
      inFlightDuring: { without: before.inFlightDuring, with: after.inFlightDuring },
      startedDuring: { without: before.startedDuring, with: after.startedDuring },
      waits: restores.waits,
    };
  }
  return out;
}
