import type { ScopedBackup } from "../core/conflict/conflicts.js";
import {
  flightChangeOf,
  mayBeInFlight,
  moveOf,
  specChangeInFlight,
  type FlightCandidate,
  type FlightDecision,
  type FlightSnapshot,
} from "../core/decision/flight.js";
import { writingRestores } from "../core/decision/restores.js";
import { IN_FLIGHT_PHASES, type BackupInfo } from "../core/model.js";
import { byCreation } from "../core/decision/order.js";
import type { Policy } from "../core/policy.js";
import type { ScopeCache } from "../core/scope/cache.js";
import type { ClusterCache } from "../cluster/cache.js";
import type { PolicySource } from "../policy/source.js";
import type { Logger } from "../logging/logger.js";

// The guard of the invariant "no two conflicting backups in flight, at most
// maxConcurrentBackups, none into what a restore is writing", for every writer: creates
// straight into ReadyToStart/InProgress, transitions into them, and spec edits of backups in
// flight. The rule is the core's
// (core/decision/flight.ts); this class keeps what the rule needs and the cache does not hold yet:
//
// - Pending entries. A move the guard allowed counts as in flight from the verdict on, until
//   the watch shows it (in flight: the cache counts it from then), contradicts it (the backup
//   changed to a newer version that is not in flight, or is gone), or `pendingTtlMs` passes.
//   Verdicts are synchronous from reading the snapshot to recording the entry, so one process
//   judges moves one after another: two parallel requests can no longer both be judged against
//   a cache where the other is still queued.
// - Replicas. Pending entries live in one process, so only the leader judges moves by other
//   writers; a replica that does not lead refuses them with a retryable 429. The gate's own
//   promotions (the request's user is the gate's) pass any replica: the leader's controller
//   claimed them here (`claim`) before writing. A new leader refuses moves by other writers for
//   `handoverMs`, while moves its predecessor allowed reach the watch.
//
// Velero's own writes never come here: the webhook's matchConditions leave out
// ReadyToStart -> InProgress and every update that keeps the spec (see manifests.ts).

export interface Leadership {
  isLeader(): boolean;
  onChange(listener: (leading: boolean) => void): () => void;
}

export interface FlightGuardOptions {
  readonly cache: ClusterCache;
  readonly policy: PolicySource;
  readonly scopes: ScopeCache;
  readonly now: () => number;
  /** Absent: this process is the only one answering (tests, a single replica without election). */
  readonly leadership?: Leadership;
  /** The API user the gate itself writes as (its ServiceAccount); its promotions pass a replica that does not lead. */
  readonly self?: string;
  /** This replica's identity, for messages. */
  readonly identity?: string;
  /** How long an allowed move counts as in flight without being observed. Default PENDING_TTL_MS. */
  readonly pendingTtlMs?: number;
  /** How long a new leader refuses moves by other writers. Default HANDOVER_MS. */
  readonly handoverMs?: number;
  readonly log?: Logger;
}

/**
 * An allowed move is written within the API server's request (its validating webhooks run in
 * parallel, each for at most 30 s) and reaches the watch a moment later: a minute is ample.
 */
export const PENDING_TTL_MS = 60_000;
/** leaseDuration (15 s) minus renewDeadline (10 s) already separates two leaders; this is on top. */
export const HANDOVER_MS = 5_000;

export interface Review {
  /** request.userInfo.username */
  readonly user?: string;
  /** A dry run writes nothing: judged, never recorded. */
  readonly dryRun?: boolean;
}

export type GuardVerdict =
  | { readonly allowed: true; readonly judged: "enters" | "stays" | "none" }
  | {
      readonly allowed: false;
      readonly judged: "enters" | "stays";
      readonly code: number;
      readonly reason: string;
      readonly message: string;
      readonly conflictWith?: string;
    };

interface Pending {
  readonly backup: BackupInfo;
  /** The version the move was made from (undefined: a create). */
  readonly from?: string;
  readonly until: number;
}

export class FlightGuard {
  private readonly pending = new Map<string, Pending>();
  private leadingSince = Number.NEGATIVE_INFINITY;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(private readonly o: FlightGuardOptions) {
    if (o.leadership?.isLeader()) this.leadingSince = o.now();
  }

  start(): void {
    this.unsubscribe.push(
      this.o.cache.onChange((c) => {
        if (c.kind === "Backup" && c.name) this.settle(c.name);
        else if (c.kind === "Resync") for (const name of [...this.pending.keys()]) this.settle(name);
      }),
    );
    if (this.o.leadership) {
      this.unsubscribe.push(
        this.o.leadership.onChange((leading) => {
          this.leadingSince = leading ? this.o.now() : Number.NEGATIVE_INFINITY;
          // What this replica allowed as leader is no longer its to vouch for.
          if (!leading) this.pending.clear();
        }),
      );
    }
  }

  stop(): void {
    for (const u of this.unsubscribe.splice(0)) u();
  }

  /** Moves allowed and not yet observed (for tests and metrics). */
  pendingNames(): string[] {
    this.expire();
    return [...this.pending.keys()].sort();
  }

  /**
   * The verdict on a create (`old` undefined) or an update of a Backup in Velero's namespace,
   * as far as the in-flight rule goes.
   */
  judge(old: BackupInfo | undefined, next: BackupInfo, review: Review = {}): GuardVerdict {
    const policy = this.o.policy.current();
    const change = flightChangeOf(old?.phase, next.phase);
    if (change.kind === "none" || next.namespace !== policy.veleroNamespace) return { allowed: true, judged: "none" };
    if (change.kind === "stays") {
      const d = specChangeInFlight(old as BackupInfo, next);
      return d.allowed ? { allowed: true, judged: "stays" } : refusal("stays", 403, "Forbidden", d.reasons[0] as string);
    }
    const move = moveOf(change, old === undefined);
    const replica = this.replicaRule(next.name, move, review.user);
    if (replica === "pass") return { allowed: true, judged: "enters" };
    if (replica) return replica;
    const d = mayBeInFlight(this.candidate(next, policy), this.snapshot(next.name, policy), move);
    if (!d.allowed) return { ...refusal("enters", 403, "Forbidden", d.reasons[0] as string), ...(d.conflictWith ? { conflictWith: d.conflictWith } : {}) };
    if (!review.dryRun) this.record(next, old?.resourceVersion);
    return { allowed: true, judged: "enters" };
  }

  /**
   * The controller's promotion of `b` (as observed): judged by the same rule, against what is in
   * flight and pending, and recorded before the write so that moves by other writers judged
   * meanwhile see it. `release` it when the write does not happen.
   */
  claim(b: BackupInfo): FlightDecision {
    const policy = this.o.policy.current();
    const move = "become ReadyToStart";
    if (this.inHandover()) return { allowed: false, reasons: [this.handoverMessage(b.name, move)] };
    const d = mayBeInFlight(this.candidate(b, policy), this.snapshot(b.name, policy), move);
    if (d.allowed) this.record({ ...b, phase: "ReadyToStart" }, b.resourceVersion);
    return d;
  }

  release(name: string): void {
    this.pending.delete(name);
  }

  /** What is in flight for the rule: observed (by creation), then pending (in the order allowed). */
  private snapshot(exclude: string, policy: Policy): FlightSnapshot {
    this.expire();
    const observed = this.o.cache
      .inFlight()
      .filter((b) => b.namespace === policy.veleroNamespace && b.name !== exclude)
      .sort(byCreation);
    const seen = new Set(observed.map((b) => b.name));
    const inFlight = observed.map((b) => this.scoped(b, policy));
    for (const [name, p] of this.pending) {
      if (name === exclude || seen.has(name)) continue;
      inFlight.push({ ...this.scoped(p.backup, policy), phase: `${p.backup.phase}, allowed and not yet observed` });
    }
    const restores = writingRestores(this.o.cache.view, this.o.cache.backups(), policy);
    return { inFlight, limit: policy.maxConcurrentBackups, ...(restores.length > 0 ? { restores } : {}) };
  }

  private scoped(b: BackupInfo, policy: Policy): ScopedBackup {
    return { name: b.name, phase: b.phase, scope: this.o.scopes.scopeOf(b, this.o.cache.view, policy) };
  }

  private candidate(b: BackupInfo, policy: Policy): FlightCandidate {
    return { ...this.scoped(b, policy), spec: b.spec };
  }

  /** "pass": the gate's own write on a replica that does not lead; a refusal; or undefined: judge it here. */
  private replicaRule(name: string, move: string, user: string | undefined): GuardVerdict | "pass" | undefined {
    const leadership = this.o.leadership;
    if (!leadership) return undefined;
    const own = this.o.self !== undefined && user === this.o.self;
    if (!leadership.isLeader()) {
      if (own) return "pass";
      return refusal(
        "enters",
        429,
        "TooManyRequests",
        `backup ${name} may not ${move} through this replica: backup-gate${this.o.identity ? ` ${this.o.identity}` : ""} is not the leader, and only the leader judges moves into ReadyToStart/InProgress by other writers, so that two replicas never allow two conflicting ones; try again (a retry may reach the leader)`,
      );
    }
    if (!own && this.inHandover()) return refusal("enters", 429, "TooManyRequests", this.handoverMessage(name, move));
    return undefined;
  }

  private inHandover(): boolean {
    return this.o.leadership !== undefined && this.o.now() - this.leadingSince < (this.o.handoverMs ?? HANDOVER_MS);
  }

  private handoverMessage(name: string, move: string): string {
    const wait = Math.ceil(((this.o.handoverMs ?? HANDOVER_MS) - (this.o.now() - this.leadingSince)) / 1000);
    return `backup ${name} may not ${move} yet: backup-gate became the leader moments ago and waits until moves its predecessor allowed have been observed; try again in ${Math.max(1, wait)}s`;
  }

  private record(b: BackupInfo, from: string | undefined): void {
    this.pending.set(b.name, { backup: b, ...(from !== undefined ? { from } : {}), until: this.o.now() + (this.o.pendingTtlMs ?? PENDING_TTL_MS) });
  }

  private expire(): void {
    const now = this.o.now();
    for (const [name, p] of this.pending) {
      if (now >= p.until) {
        this.pending.delete(name);
        this.o.log?.warn({ backup: name }, "a move into flight the webhook allowed was not observed in time; no longer counted as in flight");
      }
    }
  }

  /** Drops a pending entry once the watch confirms it (in flight) or contradicts it (a newer version not in flight, or gone). */
  private settle(name: string): void {
    const p = this.pending.get(name);
    if (!p) return;
    const seen = this.o.cache.backup(name);
    if (!seen) {
      if (p.from !== undefined) this.pending.delete(name);
      return;
    }
    if (seen.resourceVersion === p.from) return;
    if (IN_FLIGHT_PHASES.has(seen.phase) || p.from === undefined || newer(seen.resourceVersion, p.from)) this.pending.delete(name);
  }
}

function refusal(judged: "enters" | "stays", code: number, reason: string, message: string): GuardVerdict {
  return { allowed: false, judged, code, reason, message };
}

/**
 * Whether version `a` is later than `b`. resourceVersions are opaque to clients, but etcd's are
 * revisions (decimal, increasing); anything else is never called later, and the entry expires.
 */
function newer(a: string, b: string): boolean {
  return /^\d{1,30}$/.test(a) && /^\d{1,30}$/.test(b) && BigInt(a) > BigInt(b);
}
