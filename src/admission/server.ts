import type { Server as HttpsServer } from "node:https";
import { performance } from "node:perf_hooks";
import type { AddressInfo } from "node:net";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { NO_SCHEMA_COMPILERS } from "./schemaCompilers.js";
import { restoreInfo, trim } from "../core/velero/objects.js";
import type { BackupInfo, RestoreInfo } from "../core/model.js";
import type { Metrics } from "../metrics/metrics.js";
import type { ClusterCache } from "../cluster/cache.js";
import type { PolicySource } from "../policy/source.js";
import type { TlsMaterial, TlsSource } from "../tls/source.js";
import type { Logger } from "../logging/logger.js";
import { AdmissionEngine } from "./engine.js";
import type { Leadership, Review } from "./flightGuard.js";
import {
  annotationPatch,
  capAnnotation,
  MAX_SPEC_LIST_ENTRIES,
  oversizedSpec,
  parseJsonBody,
  parseReview,
  review,
  shortWarnings,
  type AdmissionRequest,
  type AdmissionResponse,
  type OversizedSpec,
} from "./review.js";

// The admission webhooks over HTTPS (fastify):
//   POST /mutate-backups    CREATE: annotate why a backup waits and warn its creator; never rejects
//   POST /validate-backups  CREATE: refuse an invalid spec (422), a serial run (403), or a create
//                           straight into ReadyToStart/InProgress that breaks the invariant (403);
//                           UPDATE: refuse a move into ReadyToStart/InProgress that breaks the
//                           invariant (403), or a spec change of a backup in flight that changes
//                           what it touches (403); on a replica that does not lead, moves into
//                           flight by other writers get a retryable 429 (see flightGuard.ts);
//                           Restores, CREATE: warn when the restore writes into what a backup in
//                           flight holds, or refuse it (403) under restores.onConflict: Deny; a
//                           Restore whose spec cannot be read is admitted with a warning
//   GET  /healthz           the process answers
//   GET  /readyz            the cache has synced, a policy is loaded, the admission index is built
//   GET  /metrics           Prometheus text
//
// The webhooks answer from the cache only (no API call per request). A body that is not an
// admission.k8s.io/v1 AdmissionReview gets HTTP 400 with a message; over `bodyLimit`, 413.
//
// Failure mode, on purpose: the webhooks never answer 500. An internal error, or a decision
// that cannot be made within `timeoutMs` (the admission index still building), is answered
// `allowed: true` with a warning saying the backup was admitted unchecked, and counted
// (backup_gate_admission_requests_total{verdict="error"|"timeout"}). The queue controller still
// keeps the invariant for such a backup; only the advice (and a Forbid rejection) is lost.
// What the API server does when the gate does not answer at all is the webhook
// configurations' failurePolicy (see manifests.ts).

/** TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 suites are Node's defaults (all strong). */
export const STRONG_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

export const PATHS = { mutate: "/mutate-backups", validate: "/validate-backups" } as const;

/**
 * The largest AdmissionReview accepted: 4 MiB. The API server refuses request bodies over
 * 3 MiB and etcd stores objects up to 1.5 MiB, so the largest review it sends is a CREATE of a
 * 3 MiB object, or an UPDATE of a stored object (1.5 MiB old, 1.5 MiB new), plus the envelope.
 * Anything bigger is not from the API server and is refused (413) before it is parsed.
 */
export const BODY_LIMIT = 4 * 1024 * 1024;

export interface WebhookServerOptions {
  /** Started already: `current()` gives the material to serve. */
  readonly tls: TlsSource;
  readonly cache: ClusterCache;
  readonly policy: PolicySource;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly now?: () => number;
  /** Longest a review may wait for the admission index; default 1000 ms. */
  readonly timeoutMs?: number;
  /** Default BODY_LIMIT. */
  readonly bodyLimit?: number;
  /**
   * A connection silent this long in the middle of a request is closed; default 30 s, the API
   * server's longest webhook timeout. fastify's default is never, so a client that sends half a
   * body would hold a connection forever. (Idle keep-alive connections follow keepAliveTimeout.)
   */
  readonly idleTimeoutMs?: number;
  /**
   * A client must send a request's headers within this long (default 10 s) and the whole
   * request within `requestTimeoutMs` (default 30 s): the API server sends a review at once, so
   * a client that trickles bytes is hostile or broken, and is answered 408 and closed. Checked
   * every `connectionsCheckIntervalMs` (default 1 s; Node's default, 30 s, would let one stay
   * three times as long). A TLS handshake gets `headersTimeoutMs` too.
   */
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  readonly connectionsCheckIntervalMs?: number;
  /** Share an engine (e.g. with a second server); default: one of our own. */
  readonly engine?: AdmissionEngine;
  readonly rebuildIntervalMs?: number;
  /** Replicas: only the leader judges moves into flight by other writers (see FlightGuard). */
  readonly leadership?: Leadership;
  /** The API user the gate writes as; its own promotions pass a replica that does not lead. */
  readonly self?: string;
  readonly identity?: string;
  readonly pendingTtlMs?: number;
  readonly handoverMs?: number;
}

export interface WebhookServer {
  readonly app: FastifyInstance<HttpsServer>;
  readonly engine: AdmissionEngine;
  /** Listens (default 127.0.0.1, an ephemeral port); resolves with the address. */
  listen(o?: { host?: string; port?: number }): Promise<{ host: string; port: number; url: string }>;
  close(): Promise<void>;
}

type Webhook = "mutate" | "validate";
type Verdict = "admit" | "admit-with-warning" | "reject" | "too-large" | "skipped" | "unreadable" | "timeout" | "error" | "bad-request";

interface Outcome {
  readonly response: AdmissionResponse;
  readonly verdict: Verdict;
  /**
   * Close the connection after answering: a replica that does not lead asks for a retry, and the
   * API server's next call on a kept-alive connection would come back here; a new connection may
   * reach the leader (the Service balances connections, not requests).
   */
  readonly close?: boolean;
}

export function tlsOptions(m: TlsMaterial) {
  return { key: m.key, cert: m.cert, minVersion: "TLSv1.2" as const, ciphers: STRONG_CIPHERS, honorCipherOrder: true };
}

export async function createWebhookServer(o: WebhookServerOptions): Promise<WebhookServer> {
  const now = o.now ?? Date.now;
  const timeoutMs = o.timeoutMs ?? 1000;
  const log = o.log.child({ component: "admission" });
  const engine =
    o.engine ??
    new AdmissionEngine({
      cache: o.cache,
      policy: o.policy,
      now,
      log,
      ...(o.rebuildIntervalMs !== undefined ? { rebuildIntervalMs: o.rebuildIntervalMs } : {}),
      ...(o.leadership ? { leadership: o.leadership } : {}),
      ...(o.self !== undefined ? { self: o.self } : {}),
      ...(o.identity !== undefined ? { identity: o.identity } : {}),
      ...(o.pendingTtlMs !== undefined ? { pendingTtlMs: o.pendingTtlMs } : {}),
      ...(o.handoverMs !== undefined ? { handoverMs: o.handoverMs } : {}),
    });
  const ownEngine = o.engine === undefined;
  const bodyLimit = o.bodyLimit ?? BODY_LIMIT;
  const headersTimeout = o.headersTimeoutMs ?? 10_000;

  const app = Fastify({
    https: {
      ...tlsOptions(o.tls.current()),
      // Node's http options, taken by https.createServer too (fastify passes them through).
      headersTimeout,
      connectionsCheckingInterval: o.connectionsCheckIntervalMs ?? 1_000,
      handshakeTimeout: headersTimeout,
    },
    bodyLimit,
    logger: false,
    // The API server keeps connections open between reviews.
    keepAliveTimeout: 60_000,
    connectionTimeout: o.idleTimeoutMs ?? 30_000,
    requestTimeout: Math.max(o.requestTimeoutMs ?? 30_000, headersTimeout),
    schemaController: { compilersFactory: NO_SCHEMA_COMPILERS },
  }) as unknown as FastifyInstance<HttpsServer>;

  // JSON only (the API server sends nothing else): a clear message for bad JSON, and 415 for
  // any other content type instead of fastify's text/plain passthrough.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    const parsed = parseJsonBody(body as string);
    if (parsed.ok) done(null, parsed.value);
    else done(Object.assign(new Error(parsed.message), { statusCode: 400 }), undefined);
  });

  const unRotate = o.tls.onRotate((m) => {
    try {
      app.server.setSecureContext(tlsOptions(m));
      log.info({ notAfter: m.notAfter.toISOString() }, "serving certificate swapped; open connections keep the previous one");
    } catch (e) {
      log.error({ err: e }, "could not swap the serving certificate; still serving the previous one");
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 503;
    const message =
      status === 413
        ? `request body larger than ${bodyLimit} bytes`
        : status === 415
          ? `content type ${JSON.stringify(req.headers["content-type"] ?? "")} is not supported; send application/json`
          : err.message;
    if (status >= 500) log.error({ err, path: req.url }, "request failed");
    void reply.code(status).send({ message });
  });

  app.get("/healthz", async () => ({ ok: true }));
  app.get("/readyz", async (_req, reply) => {
    const reasons: string[] = [];
    if (!o.cache.synced()) reasons.push("the cluster cache has not synced yet");
    try {
      o.policy.current();
    } catch (e) {
      reasons.push(`no policy loaded: ${(e as Error).message}`);
    }
    if (!engine.hasBase()) reasons.push("the admission index is still building");
    // Files mode cannot renew by itself: while the files on disk are expired, the API server
    // refuses every call, so this replica should not take any.
    const notAfter = o.tls.current().notAfter;
    if (notAfter.getTime() <= now()) reasons.push(`the serving certificate expired at ${notAfter.toISOString()}`);
    return reasons.length === 0 ? { ready: true } : reply.code(503).send({ ready: false, reasons });
  });
  app.get("/metrics", async (_req, reply) => {
    const text = await o.metrics.registry.metrics();
    return reply.header("content-type", o.metrics.registry.contentType).send(text);
  });

  const handle = (webhook: Webhook) => async (req: FastifyRequest, reply: FastifyReply) => {
    const start = performance.now();
    const parsed = parseReview(req.body);
    if (!parsed.ok) {
      o.metrics.admissionRequests.inc({ webhook, operation: "unknown", verdict: "bad-request" });
      return reply.code(400).send({ message: parsed.message });
    }
    const r = parsed.request;
    let outcome: Outcome;
    try {
      outcome = await decide(webhook, r);
    } catch (e) {
      log.error({ err: e, webhook, uid: r.uid, backup: r.name ?? undefined }, "admission failed; admitted unchecked");
      outcome = {
        verdict: "error",
        response: { uid: r.uid, allowed: true, warnings: [`backup-gate could not check this request (internal error); admitted unchecked`] },
      };
    }
    const seconds = (performance.now() - start) / 1000;
    o.metrics.admissionDuration.observe({ webhook }, seconds);
    o.metrics.admissionRequests.inc({ webhook, operation: r.operation, verdict: outcome.verdict });
    if (seconds * 1000 > timeoutMs)
      log.warn({ webhook, backup: r.name ?? undefined, ms: Math.round(seconds * 1000) }, "admission review answered after its time budget");
    if (outcome.close) void reply.header("connection", "close");
    return reply.code(200).send(review(outcome.response));
  };

  async function decide(webhook: Webhook, r: AdmissionRequest): Promise<Outcome> {
    if (webhook === "validate" && isRestoresResource(r) && r.operation === "CREATE") return judgeRestore(r);
    if (!handles(webhook, r)) return allowed(r, "skipped");
    // Only the mutating webhook's advice needs the index; rejections use live data only.
    if (webhook === "mutate" && !(await indexReady(webhook, r))) {
      return allowed(r, "timeout", [`backup-gate could not decide within ${timeoutMs} ms (starting up); admitted unchecked, the queue still applies`]);
    }
    const object = readBackup(r.object, r);
    if (!object.ok) {
      return allowed(r, "unreadable", [`backup-gate could not read this Backup (${object.error}); admitted unchecked`.slice(0, 250)]);
    }
    // Before its scope, which costs in proportion to its lists: a CREATE past the size limit.
    const oversized = r.operation === "CREATE" ? oversizedSpec(r.object) : undefined;
    if (oversized) return refuseOversized(webhook, r, oversized);
    const backup = object.value;
    const t = now();
    if (webhook === "mutate") return advise(r, backup, t);
    const asked = { ...(r.userInfo?.username ? { user: r.userInfo.username } : {}), ...(r.dryRun ? { dryRun: true } : {}) };
    if (r.operation === "CREATE") return validateCreate(r, backup, t, asked);
    return validateUpdate(r, backup, asked);
  }

  /** Waits (up to the time budget) for the index the mutating webhook's advice reads. */
  async function indexReady(webhook: Webhook, r: AdmissionRequest): Promise<boolean> {
    if (engine.hasBase()) return true;
    const ready = await withDeadline(engine.ensureBase(), timeoutMs);
    if (!ready) log.warn({ webhook, backup: r.name ?? undefined, timeoutMs }, "admission index not ready in time; admitted unchecked");
    return ready;
  }

  function refuseOversized(webhook: Webhook, r: AdmissionRequest, oversized: OversizedSpec): Outcome {
    const what = `${oversized.field} holds ${oversized.length} entries (${oversized.total} in all the spec's lists); backup-gate judges Backups whose spec lists hold at most ${MAX_SPEC_LIST_ENTRIES} entries`;
    log.warn({ webhook, backup: r.name ?? undefined, field: oversized.field, entries: oversized.total }, "backup spec over the size limit; refused unjudged");
    if (webhook === "mutate")
      return allowed(r, "too-large", [`backup-gate did not judge this Backup: ${what}; the validating webhook refuses it`.slice(0, 250)]);
    return {
      verdict: "too-large",
      response: {
        uid: r.uid,
        allowed: false,
        status: {
          code: 422,
          reason: "Invalid",
          message: `backup ${r.name || "(generated)"} is refused: ${what}; name fewer namespaces, use a wildcard or a label selector, or split it into several backups`,
        },
      },
    };
  }

  /** The mutating webhook: annotations saying why the backup waits, and warnings; it never rejects (the validating one does, with the same rules). */
  function advise(r: AdmissionRequest, backup: BackupInfo, t: number): Outcome {
    const d = engine.decide(backup, t);
    if (d.verdict === "reject") return allowed(r, "reject");
    const annotations = Object.fromEntries(Object.entries(d.annotations).map(([k, v]) => [k, capAnnotation(k, v)]));
    const patch = annotationPatch(r.object, annotations);
    const warnings = shortWarnings(d.warnings);
    // Guarded: the log line's fields would be built on every review even with debug off.
    if (log.isLevelEnabled("debug"))
      log.debug({ backup: backup.name, verdict: d.verdict, waitingFor: d.waitingFor.slice(0, 10), reason: d.reasons[0] }, "backup admitted");
    return {
      verdict: d.verdict,
      response: {
        uid: r.uid,
        allowed: true,
        patchType: "JSONPatch",
        patch: Buffer.from(JSON.stringify(patch)).toString("base64"),
        ...(warnings.length ? { warnings } : {}),
      },
    };
  }

  function validateCreate(r: AdmissionRequest, backup: BackupInfo, t: number, asked: Review): Outcome {
    const v = engine.validateCreate(backup, t, asked);
    if (v.allowed) return allowed(r, "admit");
    log.info({ backup: backup.name, code: v.code, reason: v.message }, "backup rejected");
    return rejected(r, v);
  }

  function validateUpdate(r: AdmissionRequest, backup: BackupInfo, asked: Review): Outcome {
    const old = readBackup(r.oldObject, r);
    if (!old.ok) return allowed(r, "unreadable");
    const v = engine.checkTransition(old.value, backup, asked);
    if (v.foreign) {
      o.metrics.foreignPromotions.inc();
      log.warn(
        { backup: backup.name, user: r.userInfo?.username ?? undefined, refused: !v.allowed },
        "backup moved to ReadyToStart without backup-gate's promoted-by mark: another writer promotes backups (is Velero's own queue still on? run Velero with --disable-controllers=backup-queue)",
      );
    }
    if (v.allowed) return allowed(r, "admit");
    log.info(
      { backup: backup.name, conflictWith: v.conflictWith, user: r.userInfo?.username ?? undefined, reason: v.message },
      v.transition ? "move into flight refused" : "spec change in flight refused",
    );
    return rejected(r, v);
  }

  /** A Restore about to be created: the core's restore rule (docs/rules.md, "Restores"). */
  function judgeRestore(r: AdmissionRequest): Outcome {
    const object = readRestore(r.object, r);
    if (!object.ok) return allowed(r, "unreadable", [`backup-gate could not read this Restore (${object.error}); admitted unchecked`.slice(0, 250)]);
    const v = engine.decideRestore(object.value);
    if (v.verdict === "reject") {
      log.info({ restore: object.value.name, conflicts: v.conflicts.slice(0, 10), reason: v.message }, "restore refused");
      return rejected(r, { code: 403, reason: "Forbidden", message: v.message ?? "" });
    }
    if (v.conflicts.length > 0) log.info({ restore: object.value.name, conflicts: v.conflicts.slice(0, 10) }, "restore admitted into backups in flight");
    return allowed(r, v.verdict, shortWarnings(v.warnings));
  }

  app.post(PATHS.mutate, handle("mutate"));
  app.post(PATHS.validate, handle("validate"));

  return {
    app,
    engine,
    async listen(l = {}) {
      if (ownEngine) {
        // Build the index in the background; reviews that arrive first wait up to timeoutMs.
        engine.start().catch((e: unknown) => log.error({ err: e }, "admission index build failed"));
      }
      await app.listen({ host: l.host ?? "127.0.0.1", port: l.port ?? 0 });
      const addr = app.server.address() as AddressInfo;
      const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
      return { host: addr.address, port: addr.port, url: `https://${host}:${addr.port}` };
    },
    async close() {
      unRotate();
      if (ownEngine) engine.stop();
      await app.close();
    },
  };
}

function isBackupsResource(r: AdmissionRequest): boolean {
  return r.resource.group === "velero.io" && r.resource.version === "v1" && r.resource.resource === "backups" && !r.subResource;
}

function isRestoresResource(r: AdmissionRequest): boolean {
  return r.resource.group === "velero.io" && r.resource.version === "v1" && r.resource.resource === "restores" && !r.subResource;
}

/** The webhooks judge CREATEs of Backups; the validating one UPDATEs too. */
function handles(webhook: Webhook, r: AdmissionRequest): boolean {
  return isBackupsResource(r) && (r.operation === "CREATE" || (webhook === "validate" && r.operation === "UPDATE"));
}

function allowed(r: AdmissionRequest, verdict: Verdict, warnings?: string[]): Outcome {
  return { verdict, response: { uid: r.uid, allowed: true, ...(warnings?.length ? { warnings } : {}) } };
}

function rejected(r: AdmissionRequest, v: { readonly code: number; readonly reason: string; readonly message: string }): Outcome {
  return {
    verdict: "reject",
    close: v.code === 429,
    response: { uid: r.uid, allowed: false, status: { code: v.code, reason: v.reason, message: v.message } },
  };
}

/** A Restore as the core reads it; its spec, when unreadable, is kept as `specError` (the rule then assumes the worst). */
function readRestore(object: unknown, r: AdmissionRequest): { ok: true; value: RestoreInfo } | { ok: false; error: string } {
  if (object === null || typeof object !== "object") return { ok: false, error: "request.object is missing" };
  const raw = object as { metadata?: Record<string, unknown>; spec?: unknown; status?: unknown };
  const meta = raw.metadata ?? {};
  const name = nameOf(meta, r, "restore-");
  const namespace = typeof meta.namespace === "string" && meta.namespace ? meta.namespace : (r.namespace ?? "");
  const status = raw.status as { phase?: unknown } | null | undefined;
  return { ok: true, value: restoreInfo(namespace, name, typeof status?.phase === "string" ? status.phase : "", raw.spec) };
}

/** The object's name; one not generated yet is shown as `<generateName>(generated)`. */
function nameOf(meta: Record<string, unknown>, r: AdmissionRequest, fallback: string): string {
  return typeof meta.name === "string" && meta.name
    ? meta.name
    : r.name || `${typeof meta.generateName === "string" ? meta.generateName : fallback}(generated)`;
}

function readBackup(object: unknown, r: AdmissionRequest): { ok: true; value: BackupInfo } | { ok: false; error: string } {
  if (object === null || typeof object !== "object") return { ok: false, error: "request.object is missing" };
  const raw = object as { metadata?: Record<string, unknown> };
  const meta = raw.metadata ?? {};
  const name = nameOf(meta, r, "backup-");
  const namespace = typeof meta.namespace === "string" && meta.namespace ? meta.namespace : (r.namespace ?? "");
  const result = trim("Backup", { kind: "Backup", ...raw, metadata: { ...meta, name, namespace } });
  return result.ok ? { ok: true, value: result.value } : { ok: false, error: result.error.message };
}

async function withDeadline(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => false,
      ),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
