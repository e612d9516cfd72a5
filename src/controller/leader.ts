import { createRequester, statusOf, type KubeAccess, type Requester } from "../kube/http.js";
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

/** The fields of a coordination.k8s.io/v1 Lease the election reads and writes; times as MicroTime strings. */
interface Lease {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [field: string]: unknown };
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
  [field: string]: unknown;
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private lastRenew = 0;
  private readonly api: Requester;
  private readonly path: string;
  private readonly listeners = new Set<(leading: boolean) => void>();
  private readonly leaseSeconds: number;
  private readonly renewDeadline: number;
  private readonly retry: number;
  private readonly now: () => number;

  constructor(
    kc: KubeAccess,
    private readonly o: LeaderOptions,
  ) {
    this.api = createRequester(kc);
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(o.namespace)}/leases`;
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
        const lease = await this.read();
        if (lease.spec?.holderIdentity === this.o.identity) {
          lease.spec = {
            leaseDurationSeconds: 1,
            renewTime: microTime(this.now()),
            ...(lease.spec.leaseTransitions !== undefined ? { leaseTransitions: lease.spec.leaseTransitions } : {}),
          };
          await this.replace(lease);
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
    let lease: Lease;
    try {
      lease = await this.read();
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
      await this.api.send("POST", this.path, {
        body: {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
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
      await this.replace(lease);
      return true;
    } catch (e) {
      if (statusOf(e) === 409) return false;
      throw e;
    }
  }

  private async read(): Promise<Lease> {
    return (await this.api.send("GET", `${this.path}/${encodeURIComponent(this.o.name)}`)) as Lease;
  }

  private async replace(lease: Lease): Promise<void> {
    await this.api.send("PUT", `${this.path}/${encodeURIComponent(this.o.name)}`, { body: lease });
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
// does not give.
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}
