import { CoordinationV1Api, type KubeConfig, type V1Lease, type V1LeaseSpec } from "@kubernetes/client-node";
import { makeKeepAliveClient } from "../kube/apiClient.js";
import type { Logger } from "../logging/logger.js";
import type { Metrics } from "../metrics/metrics.js";

// Leader election over a coordination.k8s.io Lease, as client-go does it: acquire when the
// lease is free or expired, renew every retryPeriod, and stop leading as soon as a renewal
// cannot be confirmed within renewDeadline, so two promoters never overlap.

export interface LeaderOptions {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationSeconds?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly now?: () => number;
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private lastRenew = 0;
  private readonly api: CoordinationV1Api;
  private readonly listeners = new Set<(leading: boolean) => void>();
  private readonly leaseSeconds: number;
  private readonly renewDeadline: number;
  private readonly retry: number;
  private readonly now: () => number;

  constructor(
    kc: KubeConfig,
    private readonly o: LeaderOptions,
  ) {
    this.api = makeKeepAliveClient(kc, CoordinationV1Api);
    this.leaseSeconds = o.leaseDurationSeconds ?? 15;
    this.renewDeadline = o.renewDeadlineMs ?? 10_000;
    this.retry = o.retryPeriodMs ?? 2_000;
    this.now = o.now ?? Date.now;
  }

  isLeader(): boolean {
    // A leader that has not renewed within the deadline no longer trusts its lease.
    return this.leading && this.now() - this.lastRenew < this.renewDeadline;
  }

  onChange(listener: (leading: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    void this.loop();
  }

  /** Stops, and releases the lease when held so that a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.leading) {
      try {
        const lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
        if (lease.spec?.holderIdentity === this.o.identity) {
          lease.spec = { holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: microTime(this.now()), leaseTransitions: lease.spec.leaseTransitions };
          await this.api.replaceNamespacedLease({ name: this.o.name, namespace: this.o.namespace, body: lease });
        }
      } catch (e) {
        this.o.log.warn({ err: String(e) }, "could not release the leader lease");
      }
      this.setLeading(false);
    }
  }

  private async loop(): Promise<void> {
    if (this.stopped) return;
    try {
      const held = await this.tryAcquireOrRenew();
      if (held) this.lastRenew = this.now();
      this.setLeading(held);
    } catch (e) {
      this.o.log.warn({ err: String(e) }, "leader election round failed");
      if (this.leading && this.now() - this.lastRenew >= this.renewDeadline) this.setLeading(false);
    }
    if (!this.stopped) {
      this.timer = setTimeout(() => void this.loop(), this.retry);
      this.timer.unref?.();
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.o;
    const nowIso = microTime(this.now());
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (e) {
      if ((e as { code?: number }).code !== 404) throw e;
      await this.api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: this.leaseSeconds, acquireTime: nowIso, renewTime: nowIso, leaseTransitions: 0 },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = this.now() - renewed > (spec.leaseDurationSeconds ?? this.leaseSeconds) * 1000;
    const mine = spec.holderIdentity === identity;
    if (!mine && spec.holderIdentity && !expired) return false;
    lease.spec = {
      holderIdentity: identity,
      leaseDurationSeconds: this.leaseSeconds,
      renewTime: nowIso,
      acquireTime: mine && spec.acquireTime ? microTime(new Date(spec.acquireTime).getTime()) : nowIso,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
    // The resourceVersion read above makes this a compare-and-swap: a 409 means someone else won.
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (e) {
      if ((e as { code?: number }).code === 409) return false;
      throw e;
    }
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.o.metrics.leader.set(leading ? 1 : 0);
    this.o.log.info({ identity: this.o.identity, leading }, leading ? "became leader" : "stopped leading");
    for (const l of this.listeners) l(leading);
  }
}

// Lease times are MicroTime: the API server wants six fractional digits, which Date's ISO form
// does not give, so they travel as strings (client-node passes strings through).
function microTime(ms: number): V1LeaseSpec["renewTime"] {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z") as unknown as V1LeaseSpec["renewTime"];
}
