import { X509Certificate } from "node:crypto";
import { AdmissionregistrationV1Api, ApiException, type KubeConfig } from "@kubernetes/client-node";
import { makeKeepAliveClient } from "../kube/apiClient.js";
import type { Logger } from "../logging/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import { splitPemBundle } from "./certs.js";
import type { TlsMaterial, TlsSource } from "./source.js";

// Writes the CA the API server must trust into `clientConfig.caBundle` of every webhook of the
// gate's MutatingWebhookConfiguration and ValidatingWebhookConfiguration (get + replace with
// the resourceVersion read, retried with backoff on conflicts and errors), at start and after
// every rotation.
//
// The bundle written is our CA(s) first, then the CAs already in the configuration that are
// still valid, newest first, up to `keepOthers`. Keeping them matters twice: another replica
// of the gate (each has its own in-memory CA) stays trusted, and after a CA rotation the old
// CA stays trusted while the new serving certificate propagates. An expired CA is dropped; a
// dead replica's CA is harmless (its key died with it) and ages out.
//
// The bundle is also checked every `resyncMs` (default 60 s): something else may rewrite the
// configurations (a GitOps tool re-applying manifests with an empty or stale caBundle, a
// person), and then the API server cannot verify the gate (CREATE calls fail open, promotions
// are refused). Such a drift is written back and logged as a warning.

export interface CaBundlePatcherOptions {
  readonly kubeConfig: KubeConfig;
  readonly mutatingName?: string;
  readonly validatingName?: string;
  readonly keepOthers?: number;
  /** Backoff: first delay, cap, attempts per patch. Defaults 250 ms, 10 s, 12. */
  readonly initialDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly maxAttempts?: number;
  /** Check the configurations for drift this often; default 60 s, 0 turns it off. */
  readonly resyncMs?: number;
  readonly now?: () => number;
  readonly log?: Logger;
  readonly metrics?: Metrics;
}

type Kind = "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration";

/** Our bundle first, then the other still-valid CAs of `existing` (newest first), deduplicated. */
export function mergeCaBundle(ours: string, existing: string | undefined, now: number, keepOthers = 4): string {
  const mine = splitPemBundle(ours);
  const seen = new Set(mine.map(fingerprint));
  const others: { pem: string; from: number }[] = [];
  for (const pem of splitPemBundle(existing ?? "")) {
    let c: X509Certificate;
    try { c = new X509Certificate(pem); } catch { continue; }
    if (seen.has(c.fingerprint256) || Date.parse(c.validTo) <= now) continue;
    seen.add(c.fingerprint256);
    others.push({ pem, from: Date.parse(c.validFrom) });
  }
  others.sort((a, b) => b.from - a.from);
  return [...mine, ...others.slice(0, keepOthers).map((o) => o.pem)].join("");
}

function fingerprint(pem: string): string {
  try { return new X509Certificate(pem).fingerprint256; } catch { return pem; }
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, "base64").toString("utf8") : undefined);

export class CaBundlePatcher {
  private readonly api: AdmissionregistrationV1Api;
  private stopped = false;
  private unsubscribe?: () => void;
  private resync?: NodeJS.Timeout;
  private chain: Promise<void> = Promise.resolve();
  /** Replace calls that succeeded. */
  writes = 0;

  constructor(private readonly o: CaBundlePatcherOptions) {
    this.api = makeKeepAliveClient(o.kubeConfig, AdmissionregistrationV1Api);
  }

  /** Patches now, after every rotation of `tls`, and on drift; failures are logged, not thrown. */
  attach(tls: TlsSource): Promise<void> {
    this.unsubscribe?.();
    clearInterval(this.resync);
    this.unsubscribe = tls.onRotate((m: TlsMaterial) => { void this.patch(m.ca).catch(() => {}); });
    const resyncMs = this.o.resyncMs ?? 60_000;
    if (resyncMs > 0) {
      this.resync = setInterval(() => { void this.patch(tls.current().ca, "drift").catch(() => {}); }, resyncMs);
      this.resync.unref();
    }
    return this.patch(tls.current().ca).catch(() => {});
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    clearInterval(this.resync);
  }

  /**
   * Writes `ca` into both configurations; rejects after the last attempt fails. Calls are
   * serialized. `why` "drift": a periodic check, so a write means someone changed the bundle.
   */
  patch(ca: string, why: "rotation" | "drift" = "rotation"): Promise<void> {
    const run = this.chain.then(async () => {
      const targets: [Kind, string][] = [];
      if (this.o.mutatingName) targets.push(["MutatingWebhookConfiguration", this.o.mutatingName]);
      if (this.o.validatingName) targets.push(["ValidatingWebhookConfiguration", this.o.validatingName]);
      const results = await Promise.allSettled(targets.map(([kind, name]) => this.patchOne(kind, name, ca, why)));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    });
    this.chain = run.catch(() => {});
    return run;
  }

  private async patchOne(kind: Kind, name: string, ca: string, why: "rotation" | "drift"): Promise<void> {
    const maxAttempts = this.o.maxAttempts ?? 12;
    let delay = this.o.initialDelayMs ?? 250;
    for (let attempt = 1; ; attempt++) {
      try {
        const wrote = await this.tryOnce(kind, name, ca, why === "drift");
        if (wrote) {
          this.writes++;
          this.o.metrics?.apiWrites.inc({ kind, result: "ok" });
          if (why === "drift") {
            this.o.log?.warn({ kind, name }, "caBundle no longer held the gate's CA (changed by someone else; the API server could not verify the webhook): written back");
          } else {
            this.o.log?.info({ kind, name }, "caBundle written into every webhook");
          }
        }
        return;
      } catch (e) {
        const code = e instanceof ApiException ? e.code : undefined;
        this.o.metrics?.apiWrites.inc({ kind, result: code === 409 ? "conflict" : "error" });
        const why = code === 404 ? `${kind} ${name} does not exist (yet)` : code === 409 ? "it changed meanwhile" : describe(e);
        if (this.stopped || attempt >= maxAttempts) {
          this.o.log?.error({ kind, name, attempts: attempt, error: why }, "could not write the caBundle; the API server will not trust the webhook's certificate");
          throw new Error(`caBundle of ${kind} ${name} not written after ${attempt} attempts: ${why}`);
        }
        this.o.log?.warn({ kind, name, attempt, retryInMs: delay, error: why }, "caBundle write failed; retrying");
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, this.o.maxDelayMs ?? 10_000);
      }
    }
  }

  /** One read + replace; false when every webhook already had the bundle. */
  /**
   * One read + replace; false when nothing needed writing. `onlyIfMissing`: write only when a
   * webhook's bundle lacks one of our CAs (other replicas put their own CA first; order alone
   * is no drift, and rewriting it would make replicas take turns).
   */
  private async tryOnce(kind: Kind, name: string, ca: string, onlyIfMissing: boolean): Promise<boolean> {
    const now = (this.o.now ?? Date.now)();
    const needed = (webhooks: Webhook[]) => !onlyIfMissing || webhooks.some((w) => !holdsAll(unb64(w.clientConfig.caBundle) ?? "", ca));
    if (kind === "MutatingWebhookConfiguration") {
      const obj = await this.api.readMutatingWebhookConfiguration({ name });
      if (!needed(obj.webhooks ?? []) || !setBundles(obj.webhooks ?? [], ca, now, this.o.keepOthers)) return false;
      await this.api.replaceMutatingWebhookConfiguration({ name, body: obj });
    } else {
      const obj = await this.api.readValidatingWebhookConfiguration({ name });
      if (!needed(obj.webhooks ?? []) || !setBundles(obj.webhooks ?? [], ca, now, this.o.keepOthers)) return false;
      await this.api.replaceValidatingWebhookConfiguration({ name, body: obj });
    }
    return true;
  }
}

type Webhook = { clientConfig: { caBundle?: string } };

/** Whether `bundle` holds every certificate of `ours`. */
function holdsAll(bundle: string, ours: string): boolean {
  const have = new Set(splitPemBundle(bundle).map(fingerprint));
  return splitPemBundle(ours).every((pem) => have.has(fingerprint(pem)));
}

function setBundles(webhooks: Webhook[], ca: string, now: number, keep?: number): boolean {
  let changed = false;
  for (const w of webhooks) {
    const bundle = b64(mergeCaBundle(ca, unb64(w.clientConfig.caBundle), now, keep));
    if (w.clientConfig.caBundle !== bundle) { w.clientConfig.caBundle = bundle; changed = true; }
  }
  return changed;
}

function describe(e: unknown): string {
  if (e instanceof ApiException) return `HTTP ${e.code}: ${String(e.body).slice(0, 300)}`;
  return e instanceof Error ? e.message : String(e);
}
