import { X509Certificate } from "node:crypto";
import { ApiStatusError, createRequester, statusOf, type KubeAccess, type Requester } from "../kube/http.js";
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
// still valid. Keeping them matters twice: another replica of the gate (each has its own
// in-memory CA) stays trusted, and after a CA rotation the old CA stays trusted while the new
// serving certificate propagates. An expired CA is dropped; a dead replica's CA is harmless
// (its key died with it) and ages out.
//
// Which CAs are alive is recorded on the configuration itself: the annotation
// `backup-gate.io/ca-heartbeats` maps each CA's SHA-256 fingerprint to when its replica last
// said it still serves with it (every `heartbeatMs`, default 5 min). A CA seen within
// `liveForMs` (default 15 min) is never dropped; only the others are capped at `keepOthers`,
// newest first. Without this, a replica restarting a few times pushed a long-lived replica's
// CA out by count, and the API server then failed every call to that replica until its next
// drift check.
//
// The bundle is also checked every `resyncMs` (default 60 s): something else may rewrite the
// configurations (a GitOps tool re-applying manifests with an empty or stale caBundle, a
// person), and then the API server cannot verify the gate (CREATE calls fail open, promotions
// are refused). Such a drift is written back and logged as a warning.

export interface CaBundlePatcherOptions {
  readonly kubeConfig: KubeAccess;
  readonly mutatingName?: string;
  readonly validatingName?: string;
  readonly keepOthers?: number;
  /** Backoff: first delay, cap, attempts per patch. Defaults 250 ms, 10 s, 12. */
  readonly initialDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly maxAttempts?: number;
  /** Check the configurations for drift this often; default 60 s, 0 turns it off. */
  readonly resyncMs?: number;
  /** Refresh our CAs' heartbeats when older than this (checked at each resync); default 5 min. */
  readonly heartbeatMs?: number;
  /** A CA whose heartbeat is younger than this is alive and never dropped; default 15 min. */
  readonly liveForMs?: number;
  readonly now?: () => number;
  readonly log?: Logger;
  readonly metrics?: Metrics;
}

export type WebhookConfigurationKind = "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration";

/** The annotation holding each CA's last heartbeat (fingerprint -> epoch ms). */
export const CA_HEARTBEATS = "backup-gate.io/ca-heartbeats";
/** A bound on the bundle however many CAs claim to be alive (a few KB each). */
const MAX_BUNDLE = 32;

/**
 * Our bundle first, then the other still-valid CAs of `existing`, deduplicated: every CA in
 * `live` (fingerprints with a fresh heartbeat), then the rest newest first, up to `keepOthers`.
 */
export function mergeCaBundle(ours: string, existing: string | undefined, now: number, keepOthers = 4, live: ReadonlySet<string> = new Set()): string {
  const mine = splitPemBundle(ours);
  const seen = new Set(mine.map(fingerprint));
  const others: { pem: string; from: number; live: boolean }[] = [];
  for (const pem of splitPemBundle(existing ?? "")) {
    let c: X509Certificate;
    try {
      c = new X509Certificate(pem);
    } catch {
      continue;
    }
    if (seen.has(c.fingerprint256) || Date.parse(c.validTo) <= now) continue;
    seen.add(c.fingerprint256);
    others.push({ pem, from: Date.parse(c.validFrom), live: live.has(c.fingerprint256) });
  }
  const newestFirst = (a: { from: number }, b: { from: number }) => b.from - a.from;
  const alive = others.filter((o) => o.live).sort(newestFirst);
  const rest = others
    .filter((o) => !o.live)
    .sort(newestFirst)
    .slice(0, keepOthers);
  return [...mine, ...[...alive, ...rest].slice(0, MAX_BUNDLE - mine.length).map((o) => o.pem)].join("");
}

/** The heartbeats recorded on a configuration; garbage reads as none (every CA then ages by count). */
export function readHeartbeats(annotations: Record<string, string> | undefined): Map<string, number> {
  const out = new Map<string, number>();
  let raw: unknown;
  try {
    raw = JSON.parse(annotations?.[CA_HEARTBEATS] ?? "{}");
  } catch {
    return out;
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return out;
  for (const [fp, at] of Object.entries(raw)) if (typeof at === "number" && Number.isFinite(at)) out.set(fp, at);
  return out;
}

function fingerprint(pem: string): string {
  try {
    return new X509Certificate(pem).fingerprint256;
  } catch {
    return pem;
  }
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, "base64").toString("utf8") : undefined);

export class CaBundlePatcher {
  private readonly api: Requester;
  private stopped = false;
  private unsubscribe?: () => void;
  private resync?: NodeJS.Timeout;
  private chain: Promise<void> = Promise.resolve();
  /** Replace calls that succeeded. */
  writes = 0;

  constructor(private readonly o: CaBundlePatcherOptions) {
    this.api = createRequester(o.kubeConfig);
  }

  /** Patches now, after every rotation of `tls`, and on drift; failures are logged, not thrown. */
  attach(tls: TlsSource): Promise<void> {
    this.unsubscribe?.();
    clearInterval(this.resync);
    this.unsubscribe = tls.onRotate((m: TlsMaterial) => {
      void this.patch(m.ca).catch(() => {});
    });
    const resyncMs = this.o.resyncMs ?? 60_000;
    if (resyncMs > 0) {
      this.resync = setInterval(() => {
        void this.patch(tls.current().ca, "drift").catch(() => {});
      }, resyncMs);
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
      const targets: [WebhookConfigurationKind, string][] = [];
      if (this.o.mutatingName) targets.push(["MutatingWebhookConfiguration", this.o.mutatingName]);
      if (this.o.validatingName) targets.push(["ValidatingWebhookConfiguration", this.o.validatingName]);
      const results = await Promise.allSettled(targets.map(([kind, name]) => this.patchOne(kind, name, ca, why)));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    });
    this.chain = run.catch(() => {});
    return run;
  }

  private async patchOne(kind: WebhookConfigurationKind, name: string, ca: string, why: "rotation" | "drift"): Promise<void> {
    const maxAttempts = this.o.maxAttempts ?? 12;
    let delay = this.o.initialDelayMs ?? 250;
    for (let attempt = 1; ; attempt++) {
      try {
        const wrote = await this.tryOnce(kind, name, ca, why === "drift");
        if (wrote !== "nothing") this.wrote(kind, name, why, wrote);
        return;
      } catch (e) {
        const error = this.failed(kind, name, e);
        if (this.stopped || attempt >= maxAttempts) {
          this.o.log?.error({ kind, name, attempts: attempt, error }, "could not write the caBundle; the API server will not trust the webhook's certificate");
          throw new Error(`caBundle of ${kind} ${name} not written after ${attempt} attempts: ${error}`);
        }
        this.o.log?.warn({ kind, name, attempt, retryInMs: delay, error }, "caBundle write failed; retrying");
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, this.o.maxDelayMs ?? 10_000);
      }
    }
  }

  /** Counts a write and says it at the level it deserves: drift is a warning, a heartbeat is routine. */
  private wrote(kind: WebhookConfigurationKind, name: string, why: "rotation" | "drift", wrote: Exclude<Written, "nothing">): void {
    this.writes++;
    this.o.metrics?.apiWrites.inc({ kind, result: "ok" });
    if (why === "drift" && wrote === "our CA was missing") {
      this.o.log?.warn(
        { kind, name },
        "caBundle no longer held the gate's CA (changed by someone else; the API server could not verify the webhook): written back",
      );
    } else if (why === "rotation" && wrote !== "heartbeat") {
      this.o.log?.info({ kind, name }, "caBundle written into every webhook");
    } else {
      this.o.log?.debug({ kind, name, wrote }, "caBundle heartbeat written");
    }
  }

  /** Counts a failed attempt; returns why it failed, in words. */
  private failed(kind: WebhookConfigurationKind, name: string, e: unknown): string {
    const code = statusOf(e);
    this.o.metrics?.apiWrites.inc({ kind, result: code === 409 ? "conflict" : "error" });
    return code === 404 ? `${kind} ${name} does not exist (yet)` : code === 409 ? "it changed meanwhile" : describe(e);
  }

  /**
   * One read + replace, saying what it wrote ("nothing" when nothing needed writing). `onlyIfMissing`: write only when a
   * webhook's bundle lacks one of our CAs or our heartbeat is due (other replicas put their own
   * CA first; order alone is no drift, and rewriting it would make replicas take turns).
   */
  private async tryOnce(kind: WebhookConfigurationKind, name: string, ca: string, onlyIfMissing: boolean): Promise<Written> {
    const now = (this.o.now ?? Date.now)();
    const obj = (await this.api.send("GET", webhookConfigurationPath(kind, name))) as WebhookConfiguration;
    const webhooks: Webhook[] = obj.webhooks ?? [];
    const beats = readHeartbeats(obj.metadata?.annotations);
    const missing = webhooks.some((w) => !holdsAll(unb64(w.clientConfig.caBundle) ?? "", ca));
    const beatDue = splitPemBundle(ca).some((pem) => (beats.get(fingerprint(pem)) ?? -Infinity) <= now - (this.o.heartbeatMs ?? 5 * 60_000));
    if (onlyIfMissing && !missing && !beatDue) return "nothing";
    const liveFor = this.o.liveForMs ?? 15 * 60_000;
    const live = new Set([...beats].filter(([, at]) => at > now - liveFor).map(([fp]) => fp));
    const changed = setBundles(webhooks, ca, now, this.o.keepOthers, live);
    if (!changed && !beatDue) return "nothing";
    for (const pem of splitPemBundle(ca)) beats.set(fingerprint(pem), now);
    obj.metadata = { ...obj.metadata, annotations: { ...obj.metadata?.annotations, [CA_HEARTBEATS]: JSON.stringify(inBundles(beats, webhooks)) } };
    await this.api.send("PUT", webhookConfigurationPath(kind, name), { body: obj });
    return missing ? "our CA was missing" : changed && !onlyIfMissing ? "bundle changed" : "heartbeat";
  }
}

/** What one read + replace wrote: a drift check that only refreshed a heartbeat is no drift. */
type Written = "nothing" | "our CA was missing" | "bundle changed" | "heartbeat";

type Webhook = { name: string; clientConfig: { caBundle?: string } };

/** The fields of a Mutating- or ValidatingWebhookConfiguration read here; the rest is written back as read. */
export interface WebhookConfiguration {
  metadata?: { annotations?: Record<string, string>; [field: string]: unknown };
  webhooks?: Webhook[];
  [field: string]: unknown;
}

/** The API path of one webhook configuration, or of their collection when `name` is omitted. */
export function webhookConfigurationPath(kind: WebhookConfigurationKind, name?: string): string {
  const plural = kind === "MutatingWebhookConfiguration" ? "mutatingwebhookconfigurations" : "validatingwebhookconfigurations";
  const collection = `/apis/admissionregistration.k8s.io/v1/${plural}`;
  return name === undefined ? collection : `${collection}/${encodeURIComponent(name)}`;
}

/** Whether `bundle` holds every certificate of `ours`. */
function holdsAll(bundle: string, ours: string): boolean {
  const have = new Set(splitPemBundle(bundle).map(fingerprint));
  return splitPemBundle(ours).every((pem) => have.has(fingerprint(pem)));
}

function setBundles(webhooks: Webhook[], ca: string, now: number, keep: number | undefined, live: ReadonlySet<string>): boolean {
  let changed = false;
  for (const w of webhooks) {
    const bundle = b64(mergeCaBundle(ca, unb64(w.clientConfig.caBundle), now, keep, live));
    if (w.clientConfig.caBundle !== bundle) {
      w.clientConfig.caBundle = bundle;
      changed = true;
    }
  }
  return changed;
}

/** The heartbeats of CAs still in some bundle (those of dropped CAs go with them), as JSON. */
function inBundles(beats: ReadonlyMap<string, number>, webhooks: readonly Webhook[]): Record<string, number> {
  const held = new Set(webhooks.flatMap((w) => splitPemBundle(unb64(w.clientConfig.caBundle) ?? "").map(fingerprint)));
  return Object.fromEntries([...beats].filter(([fp]) => held.has(fp)).sort(([a], [b]) => a.localeCompare(b)));
}

function describe(e: unknown): string {
  if (e instanceof ApiStatusError) return `HTTP ${e.statusCode}: ${e.message.slice(0, 300)}`;
  return e instanceof Error ? e.message : String(e);
}
