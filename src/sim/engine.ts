import { ClaimIndex } from "../core/conflict/claimIndex.js";
import { restoreInfo } from "../core/velero/objects.js";
import { describeConflict } from "../core/conflict/conflicts.js";
import { IN_FLIGHT_PHASES, QUEUED_PHASES, type BackupInfo, type ConflictLevel, type RestoreInfo } from "../core/model.js";
import type { Snapshot } from "../core/decision/plan.js";
import type { Policy } from "../core/policy.js";
import { scopeOf } from "../core/scope/scope.js";
import { nextWindowChange } from "../core/decision/windows.js";
import { Timestamps } from "../core/times.js";
import { ScopeCache } from "../core/scope/cache.js";
import type { ClusterView } from "../core/view.js";
import { backupInfo, type Trace, type TraceBackup, type TraceRestore } from "./trace.js";

// The event-driven replay of a trace under one strategy. Time jumps to the next arrival, the
// next completion or (when waiting ages priorities and a slot is free) the next instant a
// queued backup's effective priority changes, which the controller's resync tick would catch.
// At each instant the engine builds the snapshot plan() reads, asks the strategy's planner,
// starts what it promotes, and checks that no two backups in flight conflict.

/** What the engine needs from a plan; core `Plan` fits it as is. */
export interface PlannerResult {
  readonly promotions: readonly { readonly backup: string }[];
  readonly queue: readonly { readonly backup: string; readonly waitingFor: readonly string[]; readonly reason: string }[];
  readonly supersessions: readonly { readonly backup: string; readonly by: string; readonly reason: string }[];
  /** With windows in the policy: backups failed for waiting past their window's max wait. */
  readonly missedWindows?: readonly { readonly backup: string; readonly reason: string }[];
}
export type Planner = (snapshot: Snapshot, now: number) => PlannerResult;

export interface Strategy {
  readonly name: string;
  readonly description: string;
  /** The policy whose level, limit and aging the invariant check and the engine use. */
  readonly policy: Policy;
  /** A fresh planner (with its own scope cache) for one run. */
  readonly planner: () => Planner;
  /** Ignores conflicts on purpose (the reference): violations are reported, not failures. */
  readonly ignoresConflicts?: boolean;
}

/** A trace ready to replay: every backup with its duration resolved. */
export interface PreparedTrace {
  readonly name: string;
  readonly t0: number;
  readonly view: ClusterView;
  readonly backups: readonly PreparedBackup[];
  readonly restores: readonly PreparedRestore[];
}
/** A trace's restore: in the view as InProgress from its arrival (seconds) to its end, then Completed. */
export interface PreparedRestore {
  readonly entry: TraceRestore;
  readonly end: number;
  readonly writing: RestoreInfo;
  readonly done: RestoreInfo;
}
export interface PreparedBackup {
  readonly entry: TraceBackup;
  /** Seconds. */
  readonly duration: number;
  /** Pods + PVCs + PVs in its predicted scope. */
  readonly items: number;
  readonly specHash: string;
}

export type Outcome = "completed" | "superseded" | "missed window" | "not started";

export interface BackupRun {
  readonly name: string;
  readonly arrival: number;
  readonly duration: number;
  start?: number;
  end?: number;
  outcome: Outcome;
  /** Everyone it waited behind, in the order first seen. */
  readonly waitingFor: string[];
  /** It waited at some instant with no conflict, only for a free slot. */
  waitedForSlot: boolean;
  /** The last reason the planner gave while it waited. */
  reason?: string;
}

export interface Violation {
  /** Seconds from t0: the first instant the pair was in flight together. */
  readonly at: number;
  readonly backups: readonly [string, string];
  readonly reason: string;
}

export interface SimResult {
  readonly trace: string;
  readonly strategy: string;
  readonly level: ConflictLevel;
  readonly limit: number;
  readonly runs: readonly BackupRun[];
  /** Distinct pairs ever in flight together although they conflict. */
  readonly violations: readonly Violation[];
  /** Simulated instants at which some conflicting pair was in flight. */
  readonly violatingInstants: number;
  readonly instants: number;
  /** Backups in flight, as steps: from `t` on, `n` are in flight. */
  readonly inFlight: readonly { readonly t: number; readonly n: number }[];
  /** Backups left queued when nothing could happen any more (a planner that stalls). */
  readonly stalled: readonly string[];
}

/** Resolves durations: `durationPerItem` counts the pods, PVCs and PVs of the predicted scope. */
export function prepareTrace(trace: Trace, policy: Policy): PreparedTrace {
  const backups = trace.backups.map((entry): PreparedBackup => {
    const specHash = JSON.stringify(entry.spec);
    let items = 0;
    if (entry.durationPerItem !== undefined) {
      const scope = scopeOf(backupInfo(entry, trace.t0, policy.veleroNamespace, "New", specHash), trace.view, policy);
      items = scope.items.pods.length + scope.items.pvcs.length + scope.items.pvs.length;
    }
    const duration = entry.duration ?? (entry.durationBase ?? 0) + items * (entry.durationPerItem ?? 0);
    return { entry, duration, items, specHash };
  });
  const restores = trace.restores.map((entry): PreparedRestore => ({
    entry,
    end: entry.arrival + entry.duration,
    writing: restoreInfo(policy.veleroNamespace, entry.name, "InProgress", entry.spec),
    done: restoreInfo(policy.veleroNamespace, entry.name, "Completed", entry.spec),
  }));
  return { name: trace.name, t0: trace.t0, view: trace.view, backups, restores };
}

const EPS = 1e-9;
type SimPhase = "pending" | "New" | "Queued" | "InProgress" | "Completed" | "Failed";

interface State {
  readonly b: PreparedBackup;
  readonly run: BackupRun;
  phase: SimPhase;
  info?: BackupInfo;
}

export function simulate(trace: PreparedTrace, strategy: Strategy): SimResult {
  const policy = strategy.policy;
  const states = trace.backups
    .map((b): State => ({
      b,
      phase: "pending",
      run: { name: b.entry.name, arrival: b.entry.arrival, duration: b.duration, outcome: "not started", waitingFor: [], waitedForSlot: false },
    }))
    .sort((x, y) => x.b.entry.arrival - y.b.entry.arrival || (x.run.name < y.run.name ? -1 : 1));
  const byName = new Map(states.map((s) => [s.run.name, s]));
  const setPhase = (s: State, phase: SimPhase) => {
    s.phase = phase;
    s.info = backupInfo(s.b.entry, trace.t0, policy.veleroNamespace, phase, s.b.specHash);
  };

  const planner = strategy.planner();
  const checkCache = new ScopeCache();
  const arrived: State[] = [];
  const running = new Set<State>();
  const inFlight: { t: number; n: number }[] = [];
  const violations = new Map<string, Violation>();
  let violatingInstants = 0;
  let instants = 0;
  let next = 0;
  let agingWake = Infinity;
  let windowWake = Infinity;
  let last = -Infinity;
  const restores = new RestoreClock(trace);

  const isWaiting = (s: State | undefined): s is State => s !== undefined && (s.phase === "New" || s.phase === "Queued");

  /** The next instant anything happens: an arrival, a run's end, or a backup aging past a threshold. */
  const nextInstant = (): number => {
    let t = next < states.length ? states[next]!.b.entry.arrival : Infinity;
    for (const s of running) t = Math.min(t, s.run.end!);
    return Math.min(t, agingWake, windowWake, restores.nextEvent(last));
  };

  const finishRuns = (t: number) => {
    for (const s of [...running]) {
      if (s.run.end! <= t + EPS) {
        running.delete(s);
        setPhase(s, "Completed");
        // Velero's completion time: a tenant's last turn in the fair order.
        s.info = { ...s.info!, completionTimestamp: new Date(trace.t0 + Math.round(s.run.end! * 1000)).toISOString() };
        s.run.outcome = "completed";
      }
    }
  };

  const admitArrivals = (t: number) => {
    while (next < states.length && states[next]!.b.entry.arrival <= t + EPS) {
      const s = states[next++]!;
      setPhase(s, "New");
      arrived.push(s);
    }
  };

  /** Does what the planner decided, as the controller's writes would. */
  const applyPlan = (result: ReturnType<typeof planner>, t: number) => {
    for (const x of result.supersessions) {
      const s = byName.get(x.backup);
      if (!isWaiting(s)) continue;
      setPhase(s, "Failed");
      s.run.outcome = "superseded";
      s.run.reason = x.reason;
    }
    for (const x of result.missedWindows ?? []) {
      const s = byName.get(x.backup);
      if (!isWaiting(s)) continue;
      setPhase(s, "Failed");
      s.run.outcome = "missed window";
      s.run.reason = x.reason;
    }
    for (const p of result.promotions) {
      const s = byName.get(p.backup);
      if (!isWaiting(s)) continue;
      setPhase(s, "InProgress");
      s.run.start = t;
      s.run.end = t + s.b.duration;
      running.add(s);
    }
    for (const q of result.queue) {
      const s = byName.get(q.backup);
      if (!isWaiting(s)) continue;
      if (s.phase === "New") setPhase(s, "Queued");
      for (const w of q.waitingFor) if (!s.run.waitingFor.includes(w)) s.run.waitingFor.push(w);
      if (q.waitingFor.length === 0) s.run.waitedForSlot = true;
      s.run.reason = q.reason;
    }
  };

  // The invariant, judged by the core's rule at the strategy's level, independently of the planner.
  const checkInvariant = (t: number) => {
    const found = conflictingPairs([...running], trace.view, policy, checkCache);
    if (found.length > 0) violatingInstants++;
    for (const v of found) {
      const key = v.backups.join("\u0000");
      if (!violations.has(key)) violations.set(key, { ...v, at: t });
    }
  };

  try {
    for (;;) {
      const t = nextInstant();
      if (t === Infinity) break;
      last = t;
      instants++;
      finishRuns(t);
      admitArrivals(t);
      restores.at(t);
      const now = trace.t0 + Math.round(t * 1000);
      applyPlan(planner({ view: trace.view, backups: arrived.map((s) => s.info!) }, now), t);
      if (inFlight.at(-1)?.n !== running.size) inFlight.push({ t, n: running.size });
      checkInvariant(t);
      agingWake = nextAgingInstant(arrived, running.size, policy, trace.t0, now);
      windowWake = nextWindowInstant(arrived, policy, trace.t0, now);
    }
  } finally {
    restores.clear();
  }

  return {
    trace: trace.name,
    strategy: strategy.name,
    level: policy.conflictLevel,
    limit: policy.maxConcurrentBackups,
    runs: states.map((s) => s.run),
    violations: [...violations.values()],
    violatingInstants,
    instants,
    inFlight,
    stalled: states.filter((s) => s.phase === "New" || s.phase === "Queued").map((s) => s.run.name),
  };
}

/**
 * The trace's restores in the view, in the phase they have at an instant: absent before their
 * arrival, InProgress (writing) until their end, then Completed. The view is the trace's own,
 * shared by the strategies' runs, so a run leaves it as it found it.
 */
class RestoreClock {
  readonly #trace: PreparedTrace;
  readonly #shown = new Map<string, RestoreInfo>();

  constructor(trace: PreparedTrace) {
    this.#trace = trace;
  }

  /** The first arrival or end of a restore after `t` (seconds), Infinity when none. */
  nextEvent(t: number): number {
    let next = Infinity;
    for (const r of this.#trace.restores) {
      if (r.entry.arrival > t + EPS) next = Math.min(next, r.entry.arrival);
      else if (r.end > t + EPS) next = Math.min(next, r.end);
    }
    return next;
  }

  at(t: number): void {
    for (const r of this.#trace.restores) {
      const info = r.entry.arrival > t + EPS ? undefined : r.end > t + EPS ? r.writing : r.done;
      if (this.#shown.get(r.entry.name) === info) continue;
      if (info) {
        this.#trace.view.setRestore(info);
        this.#shown.set(r.entry.name, info);
      } else this.clearOne(r);
    }
  }

  clear(): void {
    for (const r of this.#trace.restores) this.clearOne(r);
  }

  private clearOne(r: PreparedRestore): void {
    if (!this.#shown.delete(r.entry.name)) return;
    this.#trace.view.deleteRestore(r.writing.namespace, r.writing.name);
  }
}

function conflictingPairs(inFlight: readonly State[], view: ClusterView, policy: Policy, cache: ScopeCache): Omit<Violation, "at">[] {
  const sorted = inFlight
    .filter((s) => s.info && IN_FLIGHT_PHASES.has(s.info.phase))
    .sort((a, b) => a.run.start! - b.run.start! || (a.run.name < b.run.name ? -1 : 1));
  const index = new ClaimIndex();
  const out: Omit<Violation, "at">[] = [];
  for (const s of sorted) {
    const scoped = { name: s.run.name, phase: s.info!.phase, scope: cache.scopeOf(s.info!, view, policy) };
    for (const c of index.conflictsOf(scoped)) {
      out.push({ backups: [c.with, s.run.name], reason: describeConflict(c) });
    }
    index.add(scoped);
  }
  return out;
}

// With start windows, a held backup starts when its window opens (or its max wait ends): the
// instant the controller's next plan after it would catch.
function nextWindowInstant(arrived: readonly State[], policy: Policy, t0: number, now: number): number {
  if (!policy.windows) return Infinity;
  const queued = arrived.flatMap((s) => (s.info && QUEUED_PHASES.has(s.info.phase) ? [s.info] : []));
  const wake = nextWindowChange(queued, policy, now, new Timestamps());
  return wake === Infinity ? wake : (wake - t0) / 1000;
}

// With aging on, the queue order moves with the clock. It can only matter when a slot is free
// and something waits; then the next instant any queued backup's priority steps up is an event.
// With nothing in flight, a correct plan has already started the head of the queue (arrivals are
// events of their own), so a queue still waiting then is a stall, not a reason to keep ticking.
function nextAgingInstant(arrived: readonly State[], inFlight: number, policy: Policy, t0: number, now: number): number {
  const aging = policy.priorities.agingSeconds * 1000;
  if (aging === 0 || inFlight === 0 || inFlight >= policy.maxConcurrentBackups) return Infinity;
  let wake = Infinity;
  for (const s of arrived) {
    if (!QUEUED_PHASES.has(s.info!.phase)) continue;
    const created = t0 + Math.round(s.b.entry.arrival * 1000);
    const step = created + (Math.floor((now - created) / aging) + 1) * aging;
    wake = Math.min(wake, step);
  }
  return wake === Infinity ? wake : (wake - t0) / 1000;
}
