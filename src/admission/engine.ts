import { performance } from "node:perf_hooks";
import { admission, asCandidate, refusalOf, type AdmissionDecision } from "../core/admission.js";
import { ClaimIndex, conflictBetween, type Conflict, type ScopedBackup } from "../core/conflicts.js";
import { IN_FLIGHT_PHASES, KEYS, QUEUED_PHASES, type BackupInfo } from "../core/model.js";
import { byCreation, effectivePriorityOf, MAX_BLOCKERS, orderQueue, queueOrder, startReason, supersede, waitReason } from "../core/plan.js";
import type { Policy } from "../core/policy.js";
import type { BackupScope } from "../core/scope.js";
import { ScopeCache } from "../core/scopeCache.js";
import type { ClusterView } from "../core/view.js";
import type { ClusterCache, PolicySource } from "../service/contracts.js";
import type { Logger } from "../service/log.js";
import { FlightGuard, type Leadership, type Review } from "./flightGuard.js";
import type { FlightDecision } from "../core/flight.js";

// The admission verdicts, answered from the cache in well under a millisecond.
//
// The core's `decideAdmission` runs a full `plan` over every backup for each request: about a
// second and a half with 10,000 backups on this project's CI machine, far over the webhook's
// budget. The engine gives the same answer by judging only the candidate:
//
// - the candidate's own scope (the shared ScopeCache; a backup of every namespace still costs
//   its scope), its spec errors and the serial-workload rule, from the live cache;
// - conflicts with backups in flight, from the live cache, which keeps them apart from the
//   thousands of finished ones (filtering every backup was a third of a review's time);
// - the other runs of its Schedule (serialWorkloads), likewise kept apart by the cache;
// - conflicts with queued backups ahead of it, through a ClaimIndex of the queued backups (a
//   "base", rebuilt in the background in time slices after the cache changes) plus the
//   backups that changed since, checked one by one;
// - free slots: the limit, minus backups in flight, minus the base's promotions ahead of it
//   (computed with the plan's rules, stopping once the slots are full).
//
// With a base built from the current cache, the decision equals `decideAdmission` (a unit
// test compares them). Between a view change (pods, PVCs) and the next rebuild, the scopes of
// queued backups in the base may be stale by up to `rebuildIntervalMs`; the candidate, the
// in-flight backups and changed backups are always judged fresh. The controller, not the
// webhook, is the authority on when a backup starts; the webhook's answer is advice (warnings
// and annotations) except for the rejections, which use live data only.

export interface EngineOptions {
  readonly cache: ClusterCache;
  readonly policy: PolicySource;
  readonly now: () => number;
  readonly scopeCache?: ScopeCache;
  /** Rebuild the base at most this often after changes. Default 1000 ms. */
  readonly rebuildIntervalMs?: number;
  /** A rebuild yields to the event loop after this much work. Default 4 ms. */
  readonly sliceMs?: number;
  readonly log?: Logger;
  /** Who else answers and who the gate is: see FlightGuard. */
  readonly leadership?: Leadership;
  readonly self?: string;
  readonly identity?: string;
  readonly pendingTtlMs?: number;
  readonly handoverMs?: number;
}

interface QueuedEntry {
  readonly backup: BackupInfo;
  readonly scoped: ScopedBackup;
}

interface Base {
  readonly policy: Policy;
  readonly view: ClusterView;
  readonly builtAt: number;
  /** Queued (after supersession) backups by name. */
  readonly queued: ReadonlyMap<string, QueuedEntry>;
  readonly index: ClaimIndex;
  /** Queued backups the plan would promote now. */
  readonly promoted: readonly BackupInfo[];
}

export type TransitionVerdict =
  | { readonly allowed: true; readonly transition: boolean; readonly foreign: boolean }
  | {
    readonly allowed: false; readonly transition: boolean; readonly foreign: boolean;
    readonly code: number; readonly reason: string; readonly message: string; readonly conflictWith?: string;
  };

export type CreateVerdict = { readonly allowed: true } | { readonly allowed: false; readonly code: number; readonly reason: string; readonly message: string };

/**
 * Candidates' scopes are kept apart and dropped every this many lookups (they are not backups
 * yet). Few: the mutating and validating reviews of one candidate come close together, and a
 * candidate's scope is not worth keeping beyond them. With the Deployment's 4 MiB young
 * generation a scavenge comes every twenty or so reviews, so a scope kept for 32 lookups lived
 * through two and was promoted to the old generation (it was 1,024, then 32).
 */
const CANDIDATE_CACHE_LIMIT = 4;

export class AdmissionEngine {
  readonly scopes: ScopeCache;
  private readonly candidateScopes: ScopeCache;
  private candidateLookups = 0;
  private base?: Base;
  private building?: Promise<void>;
  private dirty = true;
  /** Backups changed since the base's build started (judged fresh). */
  private changed = new Set<string>();
  private timer?: NodeJS.Timeout;
  private unsubscribe: (() => void)[] = [];
  private lastBuildStart = 0;
  /** Rebuilds done; how long the last took (ms, wall clock including yields). */
  rebuilds = 0;
  lastRebuildMs = 0;

  private readonly guard: FlightGuard;

  constructor(private readonly o: EngineOptions) {
    this.scopes = o.scopeCache ?? new ScopeCache();
    this.candidateScopes = new ScopeCache({ partsFrom: this.scopes });
    this.guard = new FlightGuard({
      cache: o.cache, policy: o.policy, scopes: this.scopes, now: o.now,
      ...pick(o, ["leadership", "self", "identity", "pendingTtlMs", "handoverMs", "log"]),
    });
    this.guard.start();
  }

  /** Moves into flight allowed and not yet observed. */
  pendingMoves(): string[] {
    return this.guard.pendingNames();
  }

  /** Subscribes to changes and builds the first base. */
  async start(): Promise<void> {
    this.unsubscribe.push(this.o.cache.onChange((c) => {
      if (c.kind === "Backup" && c.name) this.changed.add(c.name);
      if (c.kind === "Resync") this.changed.clear();
      this.markDirty();
    }));
    this.unsubscribe.push(this.o.policy.onChange(() => this.markDirty()));
    await this.ensureBase();
  }

  stop(): void {
    this.guard.stop();
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    clearTimeout(this.timer);
  }

  /** Resolves once a base exists (building one if needed). */
  ensureBase(): Promise<void> {
    if (this.base && !this.stale()) return Promise.resolve();
    return this.rebuild();
  }

  /** True once a base exists: the decision can be made without waiting. */
  hasBase(): boolean {
    return this.base !== undefined && !this.stale();
  }

  /** Builds a new base now (or joins the build under way). */
  rebuild(): Promise<void> {
    if (!this.building) {
      this.dirty = false;
      this.building = this.build().finally(() => {
        this.building = undefined;
        if (this.dirty) this.schedule();
      });
    }
    return this.building;
  }

  private stale(): boolean {
    const b = this.base;
    return !b || b.policy !== this.o.policy.current() || b.view !== this.o.cache.view;
  }

  private markDirty(): void {
    this.dirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.building) return;
    const interval = this.o.rebuildIntervalMs ?? 1000;
    const wait = Math.max(0, this.lastBuildStart + interval - performance.now());
    this.timer = setTimeout(() => { this.timer = undefined; if (this.dirty) void this.rebuild(); }, wait);
    this.timer.unref();
  }

  private async build(): Promise<void> {
    const started = performance.now();
    this.lastBuildStart = started;
    const changedAtStart = this.changed;
    this.changed = new Set();
    try {
      const policy = this.o.policy.current();
      const view = this.o.cache.view;
      const now = this.o.now();
      const all = this.o.cache.backups().filter((b) => b.namespace === policy.veleroNamespace);
      const sliceMs = this.o.sliceMs ?? 4;
      let slice = performance.now();
      const yieldIfDue = async () => {
        if (performance.now() - slice < sliceMs) return;
        await new Promise((r) => setImmediate(r));
        slice = performance.now();
      };
      const scoped = new Map<string, ScopedBackup>();
      for (const b of all) {
        if (!QUEUED_PHASES.has(b.phase) && !IN_FLIGHT_PHASES.has(b.phase)) continue;
        scoped.set(b.name, { name: b.name, phase: b.phase, scope: this.scopes.scopeOf(b, view, policy) });
        await yieldIfDue();
      }
      const waiting = all.filter((b) => QUEUED_PHASES.has(b.phase));
      const { queued } = supersede(waiting, policy);
      const ordered = orderQueue(queued, policy, now);
      const index = new ClaimIndex();
      const entries = new Map<string, QueuedEntry>();
      for (const { backup } of ordered) {
        const s = scoped.get(backup.name);
        if (!s) continue;
        index.add(s);
        entries.set(backup.name, { backup, scoped: s });
        await yieldIfDue();
      }
      // The plan's promotions, by its rules, until the slots are full: later backups cannot be promoted.
      const inFlight = all.filter((b) => IN_FLIGHT_PHASES.has(b.phase));
      const head = new ClaimIndex();
      for (const b of inFlight) { const s = scoped.get(b.name); if (s) head.add(s); }
      let free = policy.maxConcurrentBackups - inFlight.length;
      const promoted: BackupInfo[] = [];
      for (const { backup } of ordered) {
        if (free <= 0) break;
        const s = entries.get(backup.name)?.scoped;
        if (!s) continue;
        if (!head.blockersOf(s, 0).more) { free--; promoted.push(backup); }
        head.add(s);
      }
      this.scopes.retain(new Set(all.map((b) => b.uid || `${b.namespace}/${b.name}`)));
      this.base = { policy, view, builtAt: now, queued: entries, index, promoted };
      this.rebuilds++;
      this.lastRebuildMs = performance.now() - started;
    } catch (e) {
      // Keep the names to judge fresh; try again later.
      for (const n of changedAtStart) this.changed.add(n);
      this.dirty = true;
      this.o.log?.error({ err: e }, "admission index rebuild failed");
      throw e;
    }
  }

  /** The mutating and the validating webhook judge the same candidate: a small cache of its own. */
  private candidateScope(b: BackupInfo, view: ClusterView, policy: Policy): BackupScope {
    if (++this.candidateLookups % CANDIDATE_CACHE_LIMIT === 0) this.candidateScopes.retain(new Set());
    return this.candidateScopes.scopeOf(b, view, policy);
  }

  /** The other runs of the candidate's Schedule: all the serial-workload rules read. */
  private runsLike(created: BackupInfo): readonly BackupInfo[] {
    const schedule = created.labels[KEYS.scheduleName];
    return schedule === undefined ? [] : this.o.cache.runsOf(schedule);
  }

  private scopedOf(b: BackupInfo, view: ClusterView, policy: Policy): ScopedBackup {
    return { name: b.name, phase: b.phase, scope: this.scopes.scopeOf(b, view, policy) };
  }

  /**
   * The verdict on a Backup about to be created: the same answer as the core's
   * `decideAdmission` over the cache's snapshot (see the header for how it stays fast).
   */
  decide(candidate: BackupInfo, now: number): AdmissionDecision {
    const policy = this.o.policy.current();
    const view = this.o.cache.view;
    const created = asCandidate(candidate, now);
    const isOther = (b: BackupInfo) => !(b.namespace === created.namespace && b.name === created.name);
    const judged = created.namespace === policy.veleroNamespace;
    const scope = judged ? this.candidateScope(created, view, policy) : undefined;
    const runs = this.runsLike(created);
    const early = refusalOf(created, scope, runs, policy);
    if (early) return early;
    const admitNow = (reason: string | undefined, superseded: readonly string[]) => admission(created, scope, policy, superseded, { reason });
    if (!scope) return admitNow(undefined, []);

    // serialWorkloads: Replace: the newest waiting run of a Schedule stays queued.
    const schedule = created.labels[KEYS.scheduleName];
    const supersededNames = new Set<string>();
    if (policy.serialWorkloads === "Replace" && schedule) {
      for (const b of runs) {
        if (!isOther(b) || b.namespace !== policy.veleroNamespace || !QUEUED_PHASES.has(b.phase)) continue;
        if (byCreation(created, b) < 0) return admitNow(undefined, []); // a newer run supersedes this one
        supersededNames.add(b.name);
      }
    }
    const superseded = [...supersededNames].sort();

    const me: ScopedBackup = { name: created.name, phase: "", scope };
    // In flight: live.
    const inFlight = this.o.cache.inFlight().filter((b) => isOther(b) && b.namespace === policy.veleroNamespace).sort(byCreation);
    const conflicts: Conflict[] = [];
    for (const b of inFlight) {
      const c = conflictBetween(me, this.scopedOf(b, view, policy));
      if (c) conflicts.push(c);
    }
    // Queued ahead of the candidate: the base's index, and the backups changed since, live.
    const myPriority = effectivePriorityOf(created, policy, now);
    const ahead = (b: BackupInfo) => {
      const p = effectivePriorityOf(b, policy, now);
      return p !== myPriority ? p > myPriority : byCreation(b, created) < 0;
    };
    const isLiveQueued = (b: BackupInfo | undefined): b is BackupInfo =>
      b !== undefined && isOther(b) && b.namespace === policy.veleroNamespace && QUEUED_PHASES.has(b.phase) && !supersededNames.has(b.name);
    const aheadConflicts: { backup: BackupInfo; conflict: Conflict }[] = [];
    const base = this.hasBase() ? this.base : undefined;
    const freshNames = new Set<string>(this.changed);
    if (base) {
      for (const c of base.index.conflictsOf(me)) {
        if (freshNames.has(c.with)) continue;
        const entry = base.queued.get(c.with);
        const live = this.o.cache.backup(c.with);
        if (!entry || !isLiveQueued(live) || !ahead(live)) continue;
        if (live === entry.backup || live.resourceVersion === entry.backup.resourceVersion) {
          aheadConflicts.push({ backup: live, conflict: c });
        } else {
          freshNames.add(c.with);
        }
      }
    } else {
      // No base yet (start-up): judge every queued backup live. Correct, only slower.
      for (const b of this.o.cache.backups()) freshNames.add(b.name);
    }
    for (const name of freshNames) {
      const live = this.o.cache.backup(name);
      if (!isLiveQueued(live) || !ahead(live)) continue;
      const c = conflictBetween(me, this.scopedOf(live, view, policy));
      if (c) aheadConflicts.push({ backup: live, conflict: c });
    }
    aheadConflicts.sort((x, y) => queueOrder(x.backup, y.backup, policy, now));
    conflicts.push(...aheadConflicts.map((a) => a.conflict));

    let promotedAhead = 0;
    if (base) {
      for (const p of base.promoted) {
        const live = this.o.cache.backup(p.name);
        if (isLiveQueued(live) && ahead(live)) promotedAhead++;
      }
    }
    const free = policy.maxConcurrentBackups - inFlight.length - promotedAhead;
    if (conflicts.length === 0 && free > 0) return admitNow(startReason(scope, policy.maxConcurrentBackups - free + 1, policy.maxConcurrentBackups), superseded);
    const shown = conflicts.slice(0, MAX_BLOCKERS);
    return admission(created, scope, policy, superseded, { conflicts: shown, reason: waitReason(scope, shown, conflicts.length > shown.length, policy.maxConcurrentBackups) });
  }

  /**
   * The validating webhook's CREATE verdict: invalid spec (422), a serial run refused (403), or
   * a create straight into ReadyToStart/InProgress that the in-flight rule refuses. Live data only.
   */
  validateCreate(candidate: BackupInfo, now: number, review: Review = {}): CreateVerdict {
    const policy = this.o.policy.current();
    const created = asCandidate(candidate, now);
    const scope = created.namespace === policy.veleroNamespace ? this.candidateScope(created, this.o.cache.view, policy) : undefined;
    const r = refusalOf(created, scope, this.runsLike(created), policy);
    if (r) {
      const message = r.message ?? "";
      return r.errors.length > 0
        ? { allowed: false, code: 422, reason: "Invalid", message }
        : { allowed: false, code: 403, reason: "Forbidden", message };
    }
    const v = this.guard.judge(undefined, { ...created, phase: candidate.phase }, review);
    return v.allowed ? { allowed: true } : { allowed: false, code: v.code, reason: v.reason, message: v.message };
  }

  /**
   * An UPDATE, judged by the in-flight rule: a move into ReadyToStart/InProgress must keep the
   * invariant (no two conflicting backups in flight, at most maxConcurrentBackups), counting the
   * moves allowed and not yet observed; a backup in flight may not change what it touches.
   * `foreign` is set when a backup enters flight without backup-gate's promoted-by mark
   * (another writer, e.g. Velero's own queue).
   */
  checkTransition(old: BackupInfo, next: BackupInfo, review: Review = {}): TransitionVerdict {
    const v = this.guard.judge(old, next, review);
    const transition = v.judged === "enters";
    const foreign = transition && !next.annotations[KEYS.promotedBy];
    if (v.allowed) return { allowed: true, transition, foreign };
    return { allowed: false, transition, foreign, code: v.code, reason: v.reason, message: v.message, ...(v.conflictWith ? { conflictWith: v.conflictWith } : {}) };
  }

  /** The controller's side of the same rule (see FlightGuard.claim). */
  claim(b: BackupInfo): FlightDecision {
    return this.guard.claim(b);
  }

  release(name: string): void {
    this.guard.release(name);
  }
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
