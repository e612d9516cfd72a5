import type { Logger } from "../logging/logger.js";
import type { TlsMaterial, TlsSource } from "./source.js";
import type { Metrics } from "../metrics/metrics.js";
import { createCa, generateRsaKey, issueServing, serviceDnsNames, splitSans, type IssuedCertificate, type KeyPair } from "./certs.js";

// A TlsSource that is its own CA. The CA lives in memory only (the gate reads no Secret): a
// restart makes a new CA and the caBundle patcher writes it into the webhook configurations.
// The serving certificate is renewed at `rotateFraction` of its lifetime (2/3 by default), the
// CA likewise; listeners get the new material and the server swaps its secure context, so no
// request is dropped.
//
// A CA is trusted before it signs anything: its successor is made at 3/4 of the way to the
// CA's renewal (half its life by default) and published in the bundle next to it, so by the
// time the successor signs the serving certificate the API server has long had it (a bundle
// change reaches the API server asynchronously; swapping both at once failed calls in
// between). The previous CA stays in the bundle until it expires.
//
// Renewal is checked against the wall clock at least every `checkIntervalMs`: timers run on
// a monotonic clock that stops while a machine is suspended, so after a resume (or a clock
// step) an overdue or expired certificate is renewed at the next check, not days later.

const DAY_MS = 86_400_000;
/** The successor CA is published at this fraction of the way to the current CA's renewal. */
const PUBLISH_NEXT_AT = 3 / 4;

export interface SelfManagedTlsOptions {
  /** The webhook Service: its four DNS names go into the certificate. */
  readonly service?: { readonly name: string; readonly namespace: string; readonly clusterDomain?: string };
  /** Further SANs: DNS names or IP addresses (e.g. 127.0.0.1 for local runs). */
  readonly extraSans?: readonly string[];
  readonly caValidityMs?: number;
  readonly servingValidityMs?: number;
  /** Renew at this fraction of a certificate's lifetime. */
  readonly rotateFraction?: number;
  /** Compare the wall clock with the renewal times at least this often; default 60 s. */
  readonly checkIntervalMs?: number;
  readonly now?: () => number;
  readonly log?: Logger;
  readonly metrics?: Metrics;
}

/** What a renewal does to the CA besides issuing a serving certificate. */
interface CaWork {
  /** The current CA is replaced (it is due, there is none, or a new one was asked for). */
  readonly caDue: boolean;
  /** ...by a fresh CA, there being no published successor to promote. */
  readonly needCa: boolean;
  /** A successor is made and published beside the current CA. */
  readonly needNext: boolean;
}

export class SelfManagedTls implements TlsSource {
  private ca?: IssuedCertificate;
  private nextCa?: IssuedCertificate;
  private previousCa?: IssuedCertificate;
  private serving?: IssuedCertificate;
  private material?: TlsMaterial;
  private readonly listeners = new Set<(m: TlsMaterial) => void>();
  private caIssuedAt = 0;
  private servingIssuedAt = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly now: () => number;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly caValidityMs: number;
  readonly servingValidityMs: number;
  readonly rotateFraction: number;
  readonly checkIntervalMs: number;
  /** Serving certificates issued so far (1 after start). */
  issued = 0;

  constructor(private readonly o: SelfManagedTlsOptions) {
    this.now = o.now ?? Date.now;
    const extra = splitSans(o.extraSans ?? []);
    this.dnsNames = [...(o.service ? serviceDnsNames(o.service.name, o.service.namespace, o.service.clusterDomain) : []), ...extra.dnsNames];
    this.ipAddresses = extra.ipAddresses;
    if (this.dnsNames.length === 0 && this.ipAddresses.length === 0) throw new Error("SelfManagedTls needs a service or extra SANs");
    this.caValidityMs = o.caValidityMs ?? 365 * DAY_MS;
    this.servingValidityMs = o.servingValidityMs ?? 90 * DAY_MS;
    this.rotateFraction = o.rotateFraction ?? 2 / 3;
    if (!(this.rotateFraction > 0 && this.rotateFraction < 1)) throw new Error(`rotateFraction must be in (0, 1), got ${this.rotateFraction}`);
    this.checkIntervalMs = o.checkIntervalMs ?? 60_000;
  }

  current(): TlsMaterial {
    if (!this.material) throw new Error("SelfManagedTls: current() before start()");
    return this.material;
  }

  onRotate(listener: (material: TlsMaterial) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.renew(true);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Renews now (the serving certificate, and the CA when it is due or `newCa`). */
  async rotate(newCa = false): Promise<TlsMaterial> {
    await this.renew(newCa);
    return this.current();
  }

  private async renew(newCa: boolean): Promise<void> {
    // Keys first (RSA generation can take a second or two on a busy machine), then the clock:
    // a certificate's lifetime starts when it can be served.
    const due = this.caWork(newCa, this.now());
    const [caKeys, servingKeys] = await Promise.all([due.needCa || due.needNext ? generateRsaKey() : undefined, generateRsaKey()]);
    const now = this.now();
    await this.renewCa(due, caKeys, now);
    const ca = this.ca as IssuedCertificate;
    if (this.previousCa && this.previousCa.notAfter.getTime() <= now) this.previousCa = undefined;
    const serving = await this.renewServing(ca, servingKeys, now);
    const first = this.material === undefined;
    this.material = {
      key: serving.privateKeyPem,
      cert: serving.certPem,
      ca: ca.certPem + (this.nextCa?.certPem ?? "") + (this.previousCa?.certPem ?? ""),
      notAfter: serving.notAfter,
    };
    this.o.metrics?.certificateExpiry.set(serving.notAfter.getTime() / 1000);
    this.logRenewal(ca, serving, first, due);
    if (!first) this.tellListeners(this.material);
    this.schedule();
  }

  /** What the CA needs at `t0`: renewal (due, or asked for), or a successor published beside it. */
  private caWork(newCa: boolean, t0: number): CaWork {
    const caDue = newCa || !this.ca || t0 >= this.dueAt(this.caIssuedAt, this.ca);
    // A fresh CA is needed when there is none to promote; a successor when the (new) current one is half-way.
    const needCa = caDue && !this.nextCa;
    const needNext = !this.nextCa && !caDue && this.ca !== undefined && t0 >= this.publishAt();
    return { caDue, needCa, needNext };
  }

  /** A due CA is replaced by its successor (or a fresh one), keeping the old one while it is valid; a successor is made when due. */
  private async renewCa(due: CaWork, caKeys: KeyPair | undefined, now: number): Promise<void> {
    if (due.caDue) {
      const ca = this.nextCa ?? (await createCa({ validityMs: this.caValidityMs, now, ...(caKeys ? { keys: caKeys } : {}) }));
      if (this.ca && this.ca.notAfter.getTime() > now) this.previousCa = this.ca;
      this.ca = ca;
      this.nextCa = undefined;
      this.caIssuedAt = now;
    } else if (due.needNext) {
      this.nextCa = await createCa({ validityMs: this.caValidityMs, now, ...(caKeys ? { keys: caKeys } : {}) });
    }
  }

  private async renewServing(ca: IssuedCertificate, keys: KeyPair, now: number): Promise<IssuedCertificate> {
    this.serving = await issueServing({
      ca,
      dnsNames: this.dnsNames,
      ipAddresses: this.ipAddresses,
      validityMs: this.servingValidityMs,
      now,
      keys,
    });
    this.servingIssuedAt = now;
    this.issued++;
    return this.serving;
  }

  private logRenewal(ca: IssuedCertificate, serving: IssuedCertificate, first: boolean, due: CaWork): void {
    this.o.log?.info(
      {
        notAfter: serving.notAfter.toISOString(),
        caNotAfter: ca.notAfter.toISOString(),
        nextCa: this.nextCa !== undefined,
        sans: [...this.dnsNames, ...this.ipAddresses],
      },
      first
        ? "serving certificate issued by the in-memory CA"
        : due.caDue
          ? "CA and serving certificate renewed"
          : due.needNext
            ? "next CA published; serving certificate renewed"
            : "serving certificate renewed",
    );
  }

  private tellListeners(material: TlsMaterial): void {
    for (const l of this.listeners) {
      try {
        l(material);
      } catch (e) {
        this.o.log?.error({ err: e }, "a certificate rotation listener failed");
      }
    }
  }

  /** When the current CA's successor is made and published. */
  private publishAt(): number {
    const ca = this.ca as IssuedCertificate;
    return this.caIssuedAt + PUBLISH_NEXT_AT * (this.dueAt(this.caIssuedAt, ca) - this.caIssuedAt);
  }

  /** When a certificate issued at `issuedAt` is due for renewal. */
  private dueAt(issuedAt: number, cert: IssuedCertificate): number {
    return issuedAt + this.rotateFraction * (cert.notAfter.getTime() - issuedAt);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.stopped || !this.serving || !this.ca) return;
    // The serving certificate may have been cut short by the CA's expiry; renewing it then
    // renews the CA too (renew() checks the CA's own due time).
    const due = Math.min(this.dueAt(this.servingIssuedAt, this.serving), this.dueAt(this.caIssuedAt, this.ca), this.nextCa ? Infinity : this.publishAt());
    this.timer = setTimeout(
      () => {
        if (this.stopped) return;
        if (this.now() < due) {
          this.schedule();
          return;
        }
        this.renew(false).catch((e: unknown) => {
          this.o.log?.error({ err: e }, "certificate renewal failed; retrying in 30 s");
          clearTimeout(this.timer);
          this.timer = setTimeout(() => {
            void this.renew(false).catch(() => this.schedule());
          }, 30_000);
          this.timer.unref();
        });
      },
      Math.max(0, Math.min(due - this.now(), this.checkIntervalMs)),
    );
    this.timer.unref();
  }
}
