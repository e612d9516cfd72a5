import type { KubeAccess } from "../kube/http.js";
import type { BackupInfo } from "../core/model.js";
import { howMade, plan, planWakeAt, type Plan } from "../core/decision/plan.js";
import { ScopeCache } from "../core/scope/cache.js";
import { planWrites, type BackupWrite, type PromotionSealer } from "../core/decision/writes.js";
import type { Metrics } from "../metrics/metrics.js";
import type { ClusterCache } from "../cluster/cache.js";
import type { Policy } from "../core/policy.js";
import type { PolicySource } from "../policy/source.js";
import type { Logger } from "../logging/logger.js";
import { backupWriter, type WriteResult } from "./applyWrite.js";

// The queue controller: on every relevant change (and on a resync tick, for aging and
// nudges) it plans and applies the plan with the fewest writes. It promotes only while it
// leads, and only from observed phases: after a write it waits until the watch shows that
// write before planning again, so a stale cache can never promote past the limit.

export interface EventSink {
  event(
    obj: { apiVersion: string; kind: string; namespace: string; name: string; uid?: string },
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): void;
}

export interface Leadership {
  isLeader(): boolean;
  onChange(listener: (leading: boolean) => void): () => void;
}

/**
 * The in-flight rule's keeper (the admission engine's FlightGuard): a promotion is claimed
 * there before it is written, so moves by other writers judged meanwhile see it, and moves
 * they were allowed that the watch has not shown yet stop it.
 */
export interface PromotionGuard {
  claim(b: BackupInfo): { readonly allowed: boolean; readonly reasons: readonly string[] };
  release(name: string): void;
}

export interface QueueControllerOptions {
  readonly kc: KubeAccess;
  readonly cache: ClusterCache;
  readonly policy: PolicySource;
  readonly leader: Leadership;
  readonly events: EventSink;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly identity: string;
  /** Seals the gate's promotions; undefined until the key is loaded, and the controller writes nothing till then. */
  readonly sealer: () => PromotionSealer | undefined;
  readonly now?: () => number;
  /** Re-plan at least this often even without events (aging, nudges). */
  readonly resyncMs?: number;
  /** Give up waiting to observe a write after this long (the next plan re-reads everything). */
  readonly observeTimeoutMs?: number;
  readonly guard?: PromotionGuard;
}

export class QueueController {
  private running = false;
  private dirty = false;
  private stopped = true;
  private timer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private wakeTimer?: NodeJS.Timeout;
  private readonly unsubscribe: (() => void)[] = [];
  private readonly scopes = new ScopeCache();
  /** The last plan: the next one redoes only what changed since, when the queue itself did not. */
  private last?: Plan;
  /** Writes sent but not yet seen through the watch: backup name -> version planned against, and when. */
  private readonly pending = new Map<string, { rv: string; at: number }>();
  /** Warnings already raised (overlaps, foreign promotions), so each is said once per backup pair. */
  private readonly reported = new Map<string, readonly string[]>();
  private readonly now: () => number;
  private write?: (w: BackupWrite) => Promise<WriteResult>;

  constructor(private readonly o: QueueControllerOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    this.write = backupWriter(this.o.kc, this.o.policy.current().veleroNamespace);
    this.unsubscribe.push(this.o.cache.onChange(() => this.schedule()));
    this.unsubscribe.push(
      this.o.policy.onChange(() => {
        this.write = backupWriter(this.o.kc, this.o.policy.current().veleroNamespace);
        this.schedule();
      }),
    );
    this.unsubscribe.push(this.o.leader.onChange(() => this.schedule()));
    this.timer = setInterval(() => this.schedule(), this.o.resyncMs ?? 10_000);
    this.timer.unref?.();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.wakeTimer);
    for (const u of this.unsubscribe.splice(0)) u();
  }

  /** Coalesces triggers: one reconcile at a time, and one more if anything came in meanwhile. */
  schedule(): void {
    if (this.stopped) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    this.running = true;
    void this.reconcile()
      .catch((e) => this.o.log.error({ err: String(e) }, "reconcile failed; retrying on the next change or tick"))
      .finally(() => {
        this.running = false;
        if (this.dirty) {
          this.dirty = false;
          this.schedule();
        }
      });
  }

  /** A re-plan in a second: what held a promotion back (a move not yet observed, a leader handover) passes by itself. */
  private retrySoon(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.schedule();
    }, 1000);
    this.retryTimer.unref?.();
  }

  /**
   * A re-plan when time alone changes the plan (a window opens or closes, a max wait ends), if
   * that comes before the resync tick: a window then opens on time, not up to a tick late.
   */
  private wakeAt(at: number, now: number): void {
    clearTimeout(this.wakeTimer);
    const delay = at - now;
    if (!Number.isFinite(delay) || delay >= (this.o.resyncMs ?? 10_000)) return;
    // At most one such re-plan a second: max waits of many held backups may end close together.
    this.wakeTimer = setTimeout(() => this.schedule(), Math.max(1000, delay + 1));
    this.wakeTimer.unref?.();
  }

  /** Resolves once no reconcile is running or queued (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.running) await new Promise((r) => setTimeout(r, 5));
  }

  private writesObserved(): boolean {
    const now = this.now();
    for (const [name, { rv, at }] of this.pending) {
      const seen = this.o.cache.backup(name);
      if (!seen || seen.resourceVersion !== rv) this.pending.delete(name);
      else if (now - at > (this.o.observeTimeoutMs ?? 30_000)) {
        this.o.log.warn({ backup: name }, "a write was not observed through the watch in time; planning from the cache as it is");
        this.pending.delete(name);
      }
    }
    return this.pending.size === 0;
  }

  private async reconcile(): Promise<void> {
    const { cache, log } = this.o;
    if (!this.o.leader.isLeader() || !cache.synced() || !this.writesObserved()) return;
    // Without its key the gate can neither seal a promotion nor tell its own from a forged one.
    const sealer = this.o.sealer();
    if (!sealer) {
      log.debug({}, "waiting for the promotion key");
      return;
    }
    const policy = this.o.policy.current();
    const now = this.now();
    const backups = cache.backups();
    const result = this.plan(backups, policy, now);
    this.wakeAt(planWakeAt(result), now);
    this.forgetGone(backups);
    const writes = planWrites(result, backups, { policy, now, identity: this.o.identity, sealer });
    this.reportOverlaps(result);
    this.reportForeign(writes.foreign);
    await this.applyWrites(writes.writes, backups, now);
  }

  /** The plan, built on the last one, with its figures in the metrics. */
  private plan(backups: readonly BackupInfo[], policy: Policy, now: number): Plan {
    const { cache, metrics, log } = this.o;
    const started = performance.now();
    const result = plan({ view: cache.view, backups }, policy, now, { cache: this.scopes, previous: this.last });
    this.last = result;
    const planMs = performance.now() - started;
    metrics.planDuration.observe(planMs / 1000);
    log.debug({ ms: Math.round(planMs * 100) / 100, made: howMade(result), queued: result.queue.length }, "planned");
    metrics.queueLength.set(result.queue.length);
    metrics.inFlight.set(result.inFlight.length);
    return result;
  }

  /** Drops the scopes and the warnings of backups that are gone. */
  private forgetGone(backups: readonly BackupInfo[]): void {
    this.scopes.retain(new Set(backups.map((b) => b.uid || `${b.namespace}/${b.name}`)));
    for (const [key, names] of this.reported) if (names.some((n) => !this.o.cache.backup(n))) this.reported.delete(key);
  }

  private reportOverlaps(result: Plan): void {
    this.reportOnce(
      result.overlaps.map((o) => ({
        key: `overlap:${[...o.backups].sort().join("+")}`,
        backups: [...o.backups],
        reason: "OverlapDetected",
        message: o.reason,
      })),
      () => this.o.metrics.overlaps.inc(),
    );
  }

  private reportForeign(foreign: readonly string[]): void {
    const { cache } = this.o;
    this.reportOnce(
      foreign.map((name) => ({
        key: `foreign:${cache.backup(name)?.uid ?? name}`,
        backups: [name],
        reason: "PromotedByAnotherWriter",
        message: cache.backup(name)?.annotations["backup-gate.io/promoted-by"]
          ? `${name} is ReadyToStart with a backup-gate.io/promoted-by annotation that backup-gate's record does not match: another writer promoted it (or the promotion key changed); backup-gate does not nudge it`
          : `${name} became ReadyToStart without backup-gate's mark: another writer promoted it (is Velero's own queue still on? run Velero with --disable-controllers=backup-queue)`,
      })),
      () => this.o.metrics.foreignPromotions.inc(),
    );
  }

  /** Writes in plan order; stops when stopped, when the lease is lost, or on an error (then re-plans). */
  private async applyWrites(writes: readonly BackupWrite[], backups: readonly BackupInfo[], now: number): Promise<void> {
    const byName = new Map(backups.map((b) => [b.name, b]));
    for (const w of writes) {
      if (this.stopped) return;
      // Losing the lease mid-round stops promotions at once; the new leader re-plans.
      if (!this.o.leader.isLeader()) return;
      const seen = byName.get(w.backup);
      if (this.heldBack(w, seen)) continue;
      const outcome = await this.applyOne(w);
      if (outcome === "error") {
        this.dirty = true;
        return;
      }
      if (outcome === "ok") this.written(w, seen, now);
    }
  }

  /** A promotion the in-flight rule refuses now (another writer's move came first): re-planned soon. */
  private heldBack(w: BackupWrite, seen: BackupInfo | undefined): boolean {
    if (w.kind !== "promote" || !this.o.guard || !seen) return false;
    const claim = this.o.guard.claim(seen);
    if (claim.allowed) return false;
    this.o.log.info({ backup: w.backup, reason: claim.reasons[0] }, "promotion held back by the in-flight rule; will re-plan");
    this.retrySoon();
    return true;
  }

  /** Sends one write; a promotion that did not land gives its claim back. */
  private async applyOne(w: BackupWrite): Promise<WriteResult | "error"> {
    const { metrics, log } = this.o;
    const release = () => {
      if (w.kind === "promote") this.o.guard?.release(w.backup);
    };
    const outcome = await this.write!(w).catch((e: unknown) => {
      release();
      log.warn({ backup: w.backup, kind: w.kind, err: String(e) }, "write failed; will re-plan");
      metrics.apiWrites.inc({ kind: w.kind, result: "error" });
      return "error" as const;
    });
    if (outcome === "error") return outcome;
    metrics.apiWrites.inc({ kind: w.kind, result: outcome });
    if (outcome === "conflict") {
      release();
      this.dirty = true;
    }
    if (outcome === "gone") release();
    return outcome;
  }

  /** A landed write: awaited through the watch, counted, logged, and told as an Event. */
  private written(w: BackupWrite, b: BackupInfo | undefined, now: number): void {
    const { metrics, log } = this.o;
    this.pending.set(w.backup, { rv: w.resourceVersion, at: this.now() });
    const level = w.annotations?.["backup-gate.io/conflict-level"] ?? "";
    if (w.kind !== "position" && w.kind !== "nudge") metrics.decisions.inc({ decision: w.kind, level });
    if (w.kind === "nudge") metrics.nudges.inc();
    if (w.kind === "promote" && b) {
      const created = Date.parse(b.creationTimestamp);
      if (Number.isFinite(created)) metrics.queueWait.observe(Math.max(0, now - created) / 1000);
    }
    log.info(
      { backup: w.backup, decision: w.kind, ...(w.status ? { status: w.status } : {}), reason: w.annotations?.["backup-gate.io/reason"] ?? w.event?.message },
      `backup ${w.kind}`,
    );
    if (w.event && b) this.o.events.event(backupRef(b), w.event.type, w.event.reason, w.event.message);
    // Through the same recorder as every other Event: repeats aggregate into one (count bumped).
    const t = w.tenantEvent;
    if (t) this.o.events.event(nonAdminBackupRef(t.target), t.type, t.reason, t.message);
  }

  private reportOnce(items: { key: string; backups: string[]; reason: string; message: string }[], count: () => void): void {
    for (const item of items) {
      if (this.reported.has(item.key)) continue;
      this.reported.set(item.key, item.backups);
      count();
      this.o.log.warn({ backup: item.backups.join(","), reason: item.reason }, item.message);
      for (const name of item.backups) {
        const b = this.o.cache.backup(name);
        if (b) this.o.events.event(backupRef(b), "Warning", item.reason, item.message);
      }
    }
  }
}

/** OADP's NonAdminBackup in the tenant's namespace (its uid is not known: the gate does not read them). */
function nonAdminBackupRef(t: { namespace: string; name: string }) {
  return { apiVersion: "oadp.openshift.io/v1alpha1", kind: "NonAdminBackup", namespace: t.namespace, name: t.name };
}

function backupRef(b: { namespace: string; name: string; uid: string }) {
  return { apiVersion: "velero.io/v1", kind: "Backup", namespace: b.namespace, name: b.name, uid: b.uid };
}
