import { performance } from "node:perf_hooks";
import { asCandidate, decideAdmission, type AdmissionDecision } from "../core/decision/admission.js";
import { ClaimIndex } from "../core/conflict/claimIndex.js";
import type { ScopedBackup } from "../core/conflict/conflicts.js";
import type { FlightDecision } from "../core/decision/flight.js";
import { IN_FLIGHT_PHASES, KEYS, QUEUED_PHASES, type BackupInfo, type RestoreInfo } from "../core/model.js";
import { decideRestoreAdmission, writingRestores, type RestoreAdmission } from "../core/decision/restores.js";
import { orderQueue, supersede } from "../core/decision/order.js";
import { applyWindows } from "../core/decision/windows.js";
import type { Policy } from "../core/policy.js";
import type { BackupScope } from "../core/scope/scope.js";
import { ScopeCache } from "../core/scope/cache.js";
import { admissionVerdict, createRefusal, promotionsOf, type BaseEntry, type QueueBase, type QueueSnapshot } from "../core/decision/verdicts.js";
import { hasBudgets } from "../core/decision/budgets.js";
import type { ClusterView } from "../core/view.js";
import type { ClusterCache } from "../cluster/cache.js";
import type { PolicySource } from "../policy/source.js";
import type { Logger } from "../logging/logger.js";
import { FlightGuard, type Leadership, type Review } from "./flightGuard.js";

// Keeps the admission verdicts' snapshot fresh; the verdicts themselves are the core's
// (core/decision/verdicts.ts for creates, core/decision/flight.ts through FlightGuard for moves into flight and
// spec edits). The core's `decideAdmission` runs a full `plan` per request (seconds with
// 10,000 backups); the verdicts judge only the candidate, against the live cache and a "base":
// a ClaimIndex of the queued backups and the plan's promotions, rebuilt here in the background
// in time slices after the cache changes. With a base built from the current cache, the
// decision equals `decideAdmission` (a unit test compares them). Between a view change (pods,
// PVCs) and the next rebuild, the scopes of queued backups in the base may be stale by up to
// `rebuildIntervalMs`; the candidate, the in-flight backups and changed backups are always
// judged fresh. The webhook's answer on a create is advice (warnings and annotations) except
// for the rejections, which use live data only.

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

interface Base extends QueueBase {
  readonly policy: Policy;
  readonly view: ClusterView;
  readonly builtAt: number;
}

export type TransitionVerdict =
  | { readonly allowed: true; readonly transition: boolean; readonly foreign: boolean }
  | {
      readonly allowed: false;
      readonly transition: boolean;
      readonly foreign: boolean;
      readonly code: number;
      readonly reason: string;
      readonly message: string;
      readonly conflictWith?: string;
    };

export type CreateVerdict = { readonly allowed: true } | { readonly allowed: false; readonly code: number; readonly reason: string; readonly message: string };

/**
 * Candidates' scopes are kept apart and dropped every this many lookups (they are not backups
 * yet): enough for one candidate's mutating and validating reviews, few enough that none lives
 * through the scavenges into the old generation (docs/performance.md). They are dropped
 * with their cache's tables (`forgetAll`): emptied entry by entry, the tables and the parts in
 * them lived on in the old generation.
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
      cache: o.cache,
      policy: o.policy,
      scopes: this.scopes,
      now: o.now,
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
    this.unsubscribe.push(
      this.o.cache.onChange((c) => {
        if (c.kind === "Backup" && c.name) this.changed.add(c.name);
        if (c.kind === "Resync") this.changed.clear();
        this.markDirty();
      }),
    );
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
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.dirty) void this.rebuild();
    }, wait);
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
      const { queued } = supersede(waiting, policy, this.scopes.times);
      const today = orderQueue(queued, policy, now, this.scopes.times);
      // With start windows, as the plan orders them: held backups after every backup free to start.
      const windowed = policy.windows && applyWindows(today, policy.windows, now, this.scopes.times);
      const ordered = windowed ? windowed.order : today;
      const index = new ClaimIndex();
      const entries = new Map<string, BaseEntry>();
      for (const { backup } of ordered) {
        const s = scoped.get(backup.name);
        if (!s) continue;
        index.add(s);
        entries.set(backup.name, { backup, scoped: s });
        await yieldIfDue();
      }
      // The plan's promotions, by its rules, until the slots are full: later backups cannot be promoted.
      const inFlight = all.filter((b) => IN_FLIGHT_PHASES.has(b.phase)).map((b) => scoped.get(b.name) as ScopedBackup);
      const free = windowed ? ordered.filter((_, i) => !windowed.states[i]?.held).map((o) => o.backup.name) : undefined;
      const candidates = free ? free.flatMap((n) => entries.get(n) ?? []) : [...entries.values()];
      const promoted = promotionsOf(inFlight, candidates, policy.maxConcurrentBackups);
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
    if (++this.candidateLookups % CANDIDATE_CACHE_LIMIT === 0) this.candidateScopes.forgetAll();
    return this.candidateScopes.scopeOf(b, view, policy);
  }

  /**
   * The verdict on a Backup about to be created: the same answer as the core's
   * `decideAdmission` over the cache's snapshot (core/decision/verdicts.ts says how it stays fast).
   */
  decide(candidate: BackupInfo, now: number): AdmissionDecision {
    const policy = this.o.policy.current();
    // The fair order, tenants' limits, budgets and restore holds are the plan's alone: with them, or a
    // restore writing, the full plan judges (slower, the same rule).
    const view = this.o.cache.view;
    if (policy.tenants || hasBudgets(policy) || writingRestores(view, this.o.cache.backups(), policy).length > 0)
      return decideAdmission({ view, backups: this.o.cache.backups() }, policy, now, candidate, { cache: this.scopes });
    return admissionVerdict(this.snapshot(now), candidate);
  }

  /**
   * The verdict on a Restore about to be created (docs/rules.md, "Restores"): the core's rule
   * over the backups in flight as the cache has them. A Restore outside Velero's namespace is
   * not Velero's to run and is admitted.
   */
  decideRestore(r: RestoreInfo): RestoreAdmission {
    const policy = this.o.policy.current();
    if (r.namespace !== policy.veleroNamespace) return { verdict: "admit", warnings: [], conflicts: [], reasons: [] };
    const view = this.o.cache.view;
    const inFlight = this.o.cache
      .inFlight()
      .filter((b) => b.namespace === policy.veleroNamespace)
      .map((b) => ({ name: b.name, phase: b.phase, spec: b.spec, scope: this.scopes.scopeOf(b, view, policy) }));
    return decideRestoreAdmission(r, this.o.cache.backup(r.backupName), inFlight, policy, view);
  }

  /** The queue as the verdicts read it: the live cache, and the base when it is current. */
  private snapshot(now: number): QueueSnapshot {
    const policy = this.o.policy.current();
    const view = this.o.cache.view;
    const cache = this.o.cache;
    const base = this.hasBase() ? this.base : undefined;
    return {
      policy,
      now,
      changed: this.changed,
      times: this.scopes.times,
      ...(base ? { base } : {}),
      inFlight: () => cache.inFlight(),
      backup: (name) => cache.backup(name),
      backups: () => cache.backups(),
      runsOf: (schedule) => cache.runsOf(schedule),
      scopeOf: (b) => this.scopes.scopeOf(b, view, policy),
      candidateScopeOf: (b) => this.candidateScope(b, view, policy),
    };
  }

  /**
   * The validating webhook's CREATE verdict: invalid spec (422), a serial run refused (403), or
   * a create straight into ReadyToStart/InProgress that the in-flight rule refuses. Live data only.
   */
  validateCreate(candidate: BackupInfo, now: number, review: Review = {}): CreateVerdict {
    const r = createRefusal(this.snapshot(now), candidate);
    if (r) {
      const message = r.message ?? "";
      return r.errors.length > 0 ? { allowed: false, code: 422, reason: "Invalid", message } : { allowed: false, code: 403, reason: "Forbidden", message };
    }
    const v = this.guard.judge(undefined, { ...asCandidate(candidate, now), phase: candidate.phase }, review);
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
    return {
      allowed: false,
      transition,
      foreign,
      code: v.code,
      reason: v.reason,
      message: v.message,
      ...(v.conflictWith ? { conflictWith: v.conflictWith } : {}),
    };
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
