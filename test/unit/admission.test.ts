import request from "supertest";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AdmissionEngine } from "../../src/admission/engine.js";
import { FakeClusterCache } from "../support/fakes/clusterCache.js";
import { StaticPolicySource } from "../support/fakes/policySource.js";
import { createWebhookServer, type WebhookServer } from "../../src/admission/server.js";
import type { BackupInfo } from "../../src/core/model.js";
import { DEFAULT_POLICY, type Policy } from "../../src/core/policy.js";
import { createMetrics, type Metrics } from "../../src/metrics/metrics.js";
import { createLogger } from "../../src/logging/logger.js";
import { SelfManagedTls } from "../../src/tls/selfManaged.js";
import { backup, boundClaim, ns, pod } from "../support/builders.js";
import { cluster } from "./support/cluster.js";
import { admissionReview, type ReviewResponse } from "../support/review.js";

// The webhook server over real HTTPS (self-managed certificates), fed by an in-memory cache
// built from core objects. Requests are AdmissionReviews as the API server sends them.

const NOW = Date.parse("2026-01-01T12:00:00Z");
const at = (minute: number) => new Date(Date.parse("2026-01-01T11:00:00Z") + minute * 60_000).toISOString();
const noAging: Policy = { ...DEFAULT_POLICY, priorities: { ...DEFAULT_POLICY.priorities, agingSeconds: 0 } };
const log = createLogger("silent");

const estate = () => [
  ns("velero"),
  ns("shop"),
  ns("web"),
  pod("shop", "cart-0", { claims: ["cart-data"], labels: { app: "cart" } }),
  ...boundClaim("shop", "cart-data"),
  pod("web", "nginx", { labels: { app: "web" } }),
];
const sched = { "velero.io/schedule-name": "nightly" };
const inFlight = () => [backup("nightly-1", { includedNamespaces: ["shop"] }, { phase: "InProgress", created: at(0), labels: sched })];

let tls: SelfManagedTls;
beforeAll(async () => {
  tls = new SelfManagedTls({ service: { name: "backup-gate", namespace: "backup-gate" }, extraSans: ["127.0.0.1"] });
  await tls.start();
});
afterAll(async () => {
  await tls.stop();
});

interface Started {
  server: WebhookServer;
  url: string;
  metrics: Metrics;
  cache: FakeClusterCache;
}
const servers: WebhookServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface StartOptions {
  policy?: Policy;
  backups?: object[];
  synced?: boolean;
  timeoutMs?: number;
  engine?: AdmissionEngine;
  cache?: FakeClusterCache;
  bodyLimit?: number;
}
async function start(o: StartOptions = {}): Promise<Started> {
  const snap = cluster(...estate(), ...(o.backups ?? inFlight()));
  const cache = o.cache ?? new FakeClusterCache(snap.view, snap.backups, o.synced ?? true);
  const metrics = createMetrics();
  const server = await createWebhookServer({
    tls,
    cache,
    policy: new StaticPolicySource(o.policy ?? noAging),
    metrics,
    log,
    now: () => NOW,
    ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
    ...(o.engine ? { engine: o.engine } : {}),
    ...(o.bodyLimit ? { bodyLimit: o.bodyLimit } : {}),
  });
  servers.push(server);
  const { url } = await server.listen();
  if (!o.engine) await server.engine.ensureBase();
  return { server, url, metrics, cache };
}

function post(url: string, path: string, body: unknown) {
  return request(url)
    .post(path)
    .ca(tls.current().ca)
    .set("content-type", "application/json")
    .send(typeof body === "string" ? body : JSON.stringify(body));
}

const responseOf = (res: request.Response): ReviewResponse => {
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" });
  return res.body.response as ReviewResponse;
};
const patchOf = (r: ReviewResponse) => JSON.parse(Buffer.from(r.patch ?? "", "base64").toString("utf8")) as { op: string; path: string; value: unknown }[];

// A Backup as the API server sends it on CREATE: no uid, no creationTimestamp, no status.
const incoming = (name: string, spec: object, labels?: Record<string, string>, annotations?: Record<string, string>) => ({
  apiVersion: "velero.io/v1",
  kind: "Backup",
  metadata: { name, namespace: "velero", ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) },
  spec,
});

describe("malformed requests: HTTP 400 with a clear message, never a 500", () => {
  let s: Started;
  beforeAll(async () => {
    s = await start();
    servers.splice(servers.indexOf(s.server), 1);
  });
  afterAll(async () => {
    await s.server.close();
  });

  it.each<{ name: string; body: string | object; status: number; message: RegExp }>([
    { name: "truncated JSON", body: '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionRev', status: 400, message: /not valid JSON/ },
    { name: "a JSON array", body: "[]", status: 400, message: /expected a JSON object/ },
    {
      name: "wrong kind",
      body: { ...admissionReview({ object: incoming("a", {}) }), kind: "Review" },
      status: 400,
      message: /^invalid AdmissionReview: kind must be AdmissionReview, got "Review"$/,
    },
    {
      name: "wrong apiVersion",
      body: { ...admissionReview({ object: incoming("a", {}) }), apiVersion: "admission.k8s.io/v1beta1" },
      status: 400,
      message: /apiVersion must be admission\.k8s\.io\/v1, got "admission\.k8s\.io\/v1beta1"/,
    },
    {
      name: "no request",
      body: { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" },
      status: 400,
      message: /^invalid AdmissionReview: request is required$/,
    },
    {
      name: "no request.uid",
      body: (() => {
        const r = admissionReview({ object: incoming("a", {}) });
        delete (r.request as { uid?: string }).uid;
        return r;
      })(),
      status: 400,
      message: /request\.uid is required/,
    },
    {
      name: "empty request.uid",
      body: (() => {
        const r = admissionReview({ object: incoming("a", {}) });
        r.request.uid = "";
        return r;
      })(),
      status: 400,
      message: /request\.uid is required/,
    },
    {
      name: "unknown operation",
      body: (() => {
        const r = admissionReview({ object: incoming("a", {}) });
        r.request.operation = "PATCH";
        return r;
      })(),
      status: 400,
      message: /request\.operation/,
    },
  ])("$name", async ({ body, status, message }) => {
    for (const path of ["/mutate-backups", "/validate-backups"]) {
      const res = await post(s.url, path, body);
      expect(res.status).toBe(status);
      expect(res.body.message).toMatch(message);
    }
  });

  it("a body over the limit is refused with 413", async () => {
    const huge = admissionReview({ object: incoming("a", { includedNamespaces: ["x".repeat(4 * 1024 * 1024)] }) });
    const res = await post(s.url, "/mutate-backups", huge);
    expect(res.status).toBe(413);
    expect(res.body.message).toMatch(/larger than 4194304 bytes/);
  });

  it("unknown fields are tolerated", async () => {
    const r = admissionReview({ object: incoming("web-1", { includedNamespaces: ["web"] }) }) as ReturnType<typeof admissionReview> & Record<string, unknown>;
    const body = {
      ...r,
      extra: 1,
      request: {
        ...r.request,
        options: { apiVersion: "meta.k8s.io/v1", kind: "CreateOptions" },
        requestKind: { group: "velero.io", version: "v1", kind: "Backup" },
        future: true,
      },
    };
    const res = responseOf(await post(s.url, "/mutate-backups", body));
    expect(res.allowed).toBe(true);
    expect(res.uid).toBe(r.request.uid);
  });

  it("counts bad requests", async () => {
    const text = (await request(s.url).get("/metrics").ca(tls.current().ca)).text;
    expect(text).toMatch(/backup_gate_admission_requests_total\{webhook="mutate",operation="unknown",verdict="bad-request"\} [1-9]/);
  });
});

describe("other resources and operations are allowed untouched", () => {
  it.each<{ name: string; reviewRequest: object }>([
    { name: "pods", reviewRequest: { resource: { group: "", version: "v1", resource: "pods" }, object: { metadata: { name: "p" } } } },
    {
      name: "UPDATE of a velero.io/v1 restore (only CREATEs of Restores are judged)",
      reviewRequest: { operation: "UPDATE", resource: { group: "velero.io", version: "v1", resource: "restores" }, object: { metadata: { name: "r" } } },
    },
    {
      name: "velero.io/v2alpha1 backups",
      reviewRequest: { resource: { group: "velero.io", version: "v2alpha1", resource: "backups" }, object: { metadata: { name: "b" } } },
    },
    { name: "DELETE of a backup", reviewRequest: { operation: "DELETE", oldObject: incoming("nightly-1", {}) } },
  ])("$name", async ({ reviewRequest }) => {
    const s = await start();
    for (const path of ["/mutate-backups", "/validate-backups"]) {
      const r = responseOf(await post(s.url, path, admissionReview(reviewRequest)));
      expect(r).toEqual({ uid: expect.any(String), allowed: true });
    }
  });
});

describe("mutating webhook: annotations and warnings (CREATE)", () => {
  it("a backup that waits: JSONPatch creating the annotations map, and a short warning naming whom it waits behind", async () => {
    const s = await start();
    const r = responseOf(await post(s.url, "/mutate-backups", admissionReview({ object: incoming("cart-manual", { includedNamespaces: ["shop"] }) })));
    expect(r.allowed).toBe(true);
    expect(r.patchType).toBe("JSONPatch");
    expect(patchOf(r)).toEqual([
      {
        op: "add",
        path: "/metadata/annotations",
        value: {
          "backup-gate.io/conflict-level": "ItemBlock",
          "backup-gate.io/conflict-level-source": "gate",
          "backup-gate.io/reason": "waits behind nightly-1 (InProgress): both snapshot PVC shop/cart-data",
          "backup-gate.io/waiting-for": "nightly-1",
        },
      },
    ]);
    expect(r.warnings).toEqual(["backup cart-manual will wait behind nightly-1: both snapshot PVC shop/cart-data"]);
  });

  it("existing annotations: one add per key, `/` escaped as ~1, others kept", async () => {
    const s = await start();
    const r = responseOf(
      await post(s.url, "/mutate-backups", admissionReview({ object: incoming("web-1", { includedNamespaces: ["web"] }, undefined, { team: "a" }) })),
    );
    expect(patchOf(r)).toEqual([
      { op: "add", path: "/metadata/annotations/backup-gate.io~1conflict-level", value: "ItemBlock" },
      { op: "add", path: "/metadata/annotations/backup-gate.io~1conflict-level-source", value: "gate" },
      {
        op: "add",
        path: "/metadata/annotations/backup-gate.io~1reason",
        value: expect.stringMatching(/^conflicts with nothing in flight or ahead of it; 2 of 4 slots in use$/),
      },
      { op: "add", path: "/metadata/annotations/backup-gate.io~1waiting-for", value: "" },
    ]);
    expect(r.warnings).toBeUndefined();
  });

  it("a backup judged at Namespace level says so in the annotation", async () => {
    const s = await start({ policy: { ...noAging, conflictLevel: "Namespace" } });
    const r = responseOf(
      await post(s.url, "/mutate-backups", admissionReview({ object: incoming("shop-2", { includedNamespaces: ["shop"], snapshotVolumes: false }) })),
    );
    const value = patchOf(r)[0]!.value as Record<string, string>;
    expect(value["backup-gate.io/conflict-level"]).toBe("Namespace");
    expect(value["backup-gate.io/waiting-for"]).toBe("nightly-1");
    expect(r.warnings).toEqual(["backup shop-2 will wait behind nightly-1: both include namespace shop (judged at Namespace level)"]);
  });

  it("a person's request for Namespace level is kept as written; a level the gate reported is not a request", async () => {
    const s = await start();
    const requested = responseOf(
      await post(
        s.url,
        "/mutate-backups",
        admissionReview({ object: incoming("strict", { includedNamespaces: ["web"] }, undefined, { "backup-gate.io/conflict-level": "Namespace" }) }),
      ),
    );
    const paths = patchOf(requested).map((op) => op.path);
    expect(paths).not.toContain("/metadata/annotations/backup-gate.io~1conflict-level");
    expect(paths).not.toContain("/metadata/annotations/backup-gate.io~1conflict-level-source");
  });

  it("the limit: waits for a free slot", async () => {
    const s = await start({ policy: { ...noAging, maxConcurrentBackups: 1 } });
    const r = responseOf(await post(s.url, "/mutate-backups", admissionReview({ object: incoming("web-1", { includedNamespaces: ["web"] }) })));
    expect(r.warnings).toEqual(["backup web-1 will wait: waits for a free slot: 1 of 1 backups in flight"]);
  });

  it("warnings stay short: long conflict lists are cut at a clause", async () => {
    const pods = Array.from({ length: 6 }, (_, i) => [pod("shop", `db-${i}`, { claims: [`db-${i}`] }), ...boundClaim("shop", `db-${i}`)]).flat();
    const snap = cluster(...estate(), ...pods, ...inFlight());
    const s = await start({ cache: new FakeClusterCache(snap.view, snap.backups) });
    const r = responseOf(
      await post(s.url, "/mutate-backups", admissionReview({ object: incoming("a-backup-with-a-rather-long-name", { includedNamespaces: ["shop"] }) })),
    );
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings![0]!.length).toBeLessThanOrEqual(120);
    expect(r.warnings![0]).toMatch(/^backup a-backup-with-a-rather-long-name will wait behind nightly-1: both snapshot PVC shop\/cart-data; \.\.\.$/);
  });

  it("a backup the validating webhook will reject is let through untouched here", async () => {
    const s = await start();
    const r = responseOf(await post(s.url, "/mutate-backups", admissionReview({ object: incoming("nightly-2", { includedNamespaces: ["shop"] }, sched) })));
    expect(r).toEqual({ uid: expect.any(String), allowed: true });
  });

  it("a generated name (generateName) is judged under a placeholder name", async () => {
    const s = await start();
    const object = {
      apiVersion: "velero.io/v1",
      kind: "Backup",
      metadata: { generateName: "manual-", namespace: "velero" },
      spec: { includedNamespaces: ["shop"] },
    };
    const r = responseOf(await post(s.url, "/mutate-backups", admissionReview({ object, name: "" })));
    expect(r.warnings).toEqual(["backup manual-(generated) will wait behind nightly-1: both snapshot PVC shop/cart-data"]);
  });

  it("an unreadable object is admitted with a warning", async () => {
    const s = await start();
    const r = responseOf(
      await post(s.url, "/mutate-backups", admissionReview({ object: { metadata: { name: "x", namespace: "velero", labels: { a: 1 } }, spec: {} } })),
    );
    expect(r.allowed).toBe(true);
    expect(r.warnings?.[0]).toMatch(/^backup-gate could not read this Backup \(Backup velero\/x: metadata\.labels\.a: .*\); admitted unchecked$/);
  });
});

describe("validating webhook: CREATE", () => {
  it("serialWorkloads Forbid: a second run of a Schedule is refused naming the run in flight (403)", async () => {
    const s = await start();
    const r = responseOf(await post(s.url, "/validate-backups", admissionReview({ object: incoming("nightly-2", { includedNamespaces: ["shop"] }, sched) })));
    expect(r.allowed).toBe(false);
    expect(r.status).toEqual({
      code: 403,
      reason: "Forbidden",
      message:
        "schedule nightly already has run nightly-1 InProgress; serialWorkloads is Forbid, so nightly-2 is refused (Velero's schedule controller tries again at its next check)",
    });
    const text = (await request(s.url).get("/metrics").ca(tls.current().ca)).text;
    expect(text).toMatch(/backup_gate_admission_requests_total\{webhook="validate",operation="CREATE",verdict="reject"\} 1/);
  });

  it.each<{ name: string; spec: object; message: RegExp }>([
    {
      name: "'*' mixed with names",
      spec: { includedNamespaces: ["*", "shop"] },
      message: /^backup bad is invalid and Velero would fail it: spec\.includedNamespaces: /,
    },
    {
      name: "both label selectors",
      spec: { labelSelector: { matchLabels: { a: "b" } }, orLabelSelectors: [{}] },
      message: /spec\.orLabelSelectors: labelSelector and orLabelSelectors cannot both be set/,
    },
  ])("an invalid spec is refused naming the field (422): $name", async ({ spec, message }) => {
    const s = await start();
    const r = responseOf(await post(s.url, "/validate-backups", admissionReview({ object: incoming("bad", spec) })));
    expect(r.allowed).toBe(false);
    expect(r.status?.code).toBe(422);
    expect(r.status?.reason).toBe("Invalid");
    expect(r.status?.message).toMatch(message);
  });

  it.each<{ name: string; policy: Policy; object: object }>([
    { name: "a conflicting backup (it waits, the mutating webhook warns)", policy: noAging, object: incoming("cart-manual", { includedNamespaces: ["shop"] }) },
    {
      name: "Allow: a second run queues",
      policy: { ...noAging, serialWorkloads: "Allow" },
      object: incoming("nightly-2", { includedNamespaces: ["shop"] }, sched),
    },
    {
      name: "a run of another Schedule",
      policy: noAging,
      object: incoming("weekly-1", { includedNamespaces: ["shop"] }, { "velero.io/schedule-name": "weekly" }),
    },
  ])("allowed: $name", async ({ policy, object }) => {
    const s = await start({ policy });
    expect(responseOf(await post(s.url, "/validate-backups", admissionReview({ object })))).toEqual({ uid: expect.any(String), allowed: true });
  });
});

describe("validating webhook: UPDATE into ReadyToStart", () => {
  const mark = { "backup-gate.io/promoted-by": "backup-gate" };
  const stored = (name: string, spec: object, phase: string, annotations?: Record<string, string>) => ({
    ...incoming(name, spec, undefined, annotations),
    metadata: { name, namespace: "velero", uid: `uid-${name}`, creationTimestamp: at(5), ...(annotations ? { annotations } : {}) },
    status: { phase },
  });

  it("breaking the conflict invariant is refused, naming the conflicting backup and why", async () => {
    const s = await start();
    const r = responseOf(
      await post(
        s.url,
        "/validate-backups",
        admissionReview({
          operation: "UPDATE",
          oldObject: stored("cart-1", { includedNamespaces: ["shop"] }, "Queued"),
          object: stored("cart-1", { includedNamespaces: ["shop"] }, "ReadyToStart", mark),
        }),
      ),
    );
    expect(r.allowed).toBe(false);
    expect(r.status).toEqual({
      code: 403,
      reason: "Forbidden",
      message: "backup cart-1 may not become ReadyToStart: it conflicts with nightly-1 (InProgress): both snapshot PVC shop/cart-data",
    });
    const text = (await request(s.url).get("/metrics").ca(tls.current().ca)).text;
    expect(text).toMatch(/backup_gate_foreign_promotions_total 0/);
  });

  it("breaking the limit is refused", async () => {
    const s = await start({ policy: { ...noAging, maxConcurrentBackups: 1 } });
    const r = responseOf(
      await post(
        s.url,
        "/validate-backups",
        admissionReview({
          operation: "UPDATE",
          oldObject: stored("web-1", { includedNamespaces: ["web"] }, "Queued"),
          object: stored("web-1", { includedNamespaces: ["web"] }, "ReadyToStart", mark),
        }),
      ),
    );
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toBe("backup web-1 may not become ReadyToStart: 1 of 1 backups are already in flight (nightly-1); maxConcurrentBackups is 1");
  });

  it.each<{ name: string; from: string; to: string; annotations: Record<string, string> | undefined }>([
    { name: "a promotion that keeps the invariant", from: "Queued", to: "ReadyToStart", annotations: mark },
    { name: "Velero's own status writes", from: "ReadyToStart", to: "InProgress", annotations: mark },
    { name: "a queue position update", from: "Queued", to: "Queued", annotations: undefined },
  ])("allowed: $name", async ({ from, to, annotations }) => {
    const s = await start();
    const r = responseOf(
      await post(
        s.url,
        "/validate-backups",
        admissionReview({
          operation: "UPDATE",
          oldObject: stored("web-1", { includedNamespaces: ["web"] }, from),
          object: stored("web-1", { includedNamespaces: ["web"] }, to, annotations),
        }),
      ),
    );
    expect(r).toEqual({ uid: expect.any(String), allowed: true });
  });

  it("a promotion without backup-gate's mark is counted as foreign; refused only when it breaks the invariant", async () => {
    const s = await start();
    const ok = responseOf(
      await post(
        s.url,
        "/validate-backups",
        admissionReview({
          operation: "UPDATE",
          oldObject: stored("web-1", { includedNamespaces: ["web"] }, "Queued"),
          object: stored("web-1", { includedNamespaces: ["web"] }, "ReadyToStart"),
        }),
      ),
    );
    expect(ok.allowed).toBe(true);
    const bad = responseOf(
      await post(
        s.url,
        "/validate-backups",
        admissionReview({
          operation: "UPDATE",
          oldObject: stored("cart-1", { includedNamespaces: ["shop"] }, "New"),
          object: stored("cart-1", { includedNamespaces: ["shop"] }, "ReadyToStart"),
        }),
      ),
    );
    expect(bad.allowed).toBe(false);
    expect(bad.status?.message).toMatch(/conflicts with nightly-1/);
    const text = (await request(s.url).get("/metrics").ca(tls.current().ca)).text;
    expect(text).toMatch(/backup_gate_foreign_promotions_total 2/);
  });
});

describe("failure modes: admitted with a warning, never a 500", () => {
  it("an internal error (the cache throws) is answered allowed with a warning and counted", async () => {
    const snap = cluster(...estate(), ...inFlight());
    class BrokenCache extends FakeClusterCache {
      broken = false;
      override runsOf(schedule: string): readonly BackupInfo[] {
        if (this.broken) throw new Error("cache exploded");
        return super.runsOf(schedule);
      }
    }
    const cache = new BrokenCache(snap.view, snap.backups);
    const s = await start({ cache });
    cache.broken = true;
    for (const path of ["/mutate-backups", "/validate-backups"]) {
      const r = responseOf(
        await post(s.url, path, admissionReview({ object: incoming("cart-run", { includedNamespaces: ["shop"] }, { "velero.io/schedule-name": "cart" }) })),
      );
      expect(r).toEqual({
        uid: expect.any(String),
        allowed: true,
        warnings: ["backup-gate could not check this request (internal error); admitted unchecked"],
      });
    }
    const text = (await request(s.url).get("/metrics").ca(tls.current().ca)).text;
    expect(text).toMatch(/backup_gate_admission_requests_total\{webhook="mutate",operation="CREATE",verdict="error"\} 1/);
  });

  it("the admission index not ready within timeoutMs: allowed with a warning, counted as a timeout", async () => {
    const snap = cluster(...estate(), ...inFlight());
    const cache = new FakeClusterCache(snap.view, snap.backups);
    const policy = new StaticPolicySource(noAging);
    // An index whose build never finishes (a collaborator of the server, not the server).
    class StuckEngine extends AdmissionEngine {
      override hasBase(): boolean {
        return false;
      }
      override ensureBase(): Promise<void> {
        return new Promise(() => {});
      }
    }
    const s = await start({ cache, engine: new StuckEngine({ cache, policy, now: () => NOW }), timeoutMs: 50 });
    const t = Date.now();
    const r = responseOf(await post(s.url, "/mutate-backups", admissionReview({ object: incoming("cart-manual", { includedNamespaces: ["shop"] }) })));
    expect(Date.now() - t).toBeLessThan(2_000);
    expect(r).toEqual({
      uid: expect.any(String),
      allowed: true,
      warnings: ["backup-gate could not decide within 50 ms (starting up); admitted unchecked, the queue still applies"],
    });
    // The validating webhook needs no index: its rejections still hold.
    const v = responseOf(await post(s.url, "/validate-backups", admissionReview({ object: incoming("nightly-2", { includedNamespaces: ["shop"] }, sched) })));
    expect(v.allowed).toBe(false);
    const text = (await request(s.url).get("/metrics").ca(tls.current().ca)).text;
    expect(text).toMatch(/verdict="timeout"\} 1/);
    const ready = await request(s.url).get("/readyz").ca(tls.current().ca);
    expect(ready.status).toBe(503);
    expect(ready.body.reasons).toEqual(["the admission index is still building"]);
  });
});

describe("health, readiness, metrics", () => {
  it("healthz answers; readyz waits for the cache to sync", async () => {
    const s = await start({ synced: false });
    expect((await request(s.url).get("/healthz").ca(tls.current().ca)).status).toBe(200);
    const notReady = await request(s.url).get("/readyz").ca(tls.current().ca);
    expect(notReady.status).toBe(503);
    expect(notReady.body).toEqual({ ready: false, reasons: ["the cluster cache has not synced yet"] });
    s.cache.setSynced(true);
    await s.server.engine.ensureBase();
    expect((await request(s.url).get("/readyz").ca(tls.current().ca)).body).toEqual({ ready: true });
  });

  it("metrics: Prometheus text with the admission duration histogram", async () => {
    const s = await start();
    await post(s.url, "/mutate-backups", admissionReview({ object: incoming("web-1", { includedNamespaces: ["web"] }) }));
    const res = await request(s.url).get("/metrics").ca(tls.current().ca);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    expect(res.text).toMatch(/backup_gate_admission_duration_seconds_count\{webhook="mutate"\} 1/);
    expect(res.text).toMatch(/backup_gate_admission_requests_total\{webhook="mutate",operation="CREATE",verdict="admit"\} 1/);
  });
});

describe('validating webhook: Restores (CREATE, docs/rules.md "Restores")', () => {
  const restores = { group: "velero.io", version: "v1", resource: "restores" };
  const restoreReview = (object: unknown) => admissionReview({ resource: restores, object });
  const restoreInto = (name: string, spec: object) => ({ apiVersion: "velero.io/v1", kind: "Restore", metadata: { name, namespace: "velero" }, spec });

  it.each<{ case: string; policy?: Policy; object: unknown; allowed: boolean; says: RegExp | undefined }>([
    {
      case: "into a namespace a backup in flight holds: admitted with a warning naming it",
      object: restoreInto("r1", { backupName: "old", includedNamespaces: ["shop"] }),
      allowed: true,
      says: /^restore velero\/r1 writes into namespace shop, which backup nightly-1 in flight is freezing or copying/,
    },
    {
      case: "restores.onConflict: Deny: refused (403), naming the backup",
      policy: { ...noAging, restores: { onConflict: "Deny", holdBackups: true } },
      object: restoreInto("r1", { backupName: "old", includedNamespaces: ["shop"] }),
      allowed: false,
      says: /backup nightly-1 in flight .*restores\.onConflict is Deny/,
    },
    {
      case: "into another namespace: admitted as it is",
      object: restoreInto("r1", { backupName: "old", includedNamespaces: ["web"] }),
      allowed: true,
      says: undefined,
    },
    {
      case: "an unreadable spec: admitted, with a warning that says so (taken to write everywhere, it also names the backup in flight)",
      object: restoreInto("r1", { includedNamespaces: "shop" }),
      allowed: true,
      says: /backup nightly-1 in flight[^]*\nbackup-gate could not read this Restore's spec \(spec\.includedNamespaces: /,
    },
    {
      case: "no object at all: admitted unchecked, saying so",
      object: null,
      allowed: true,
      says: /could not read this Restore \(request\.object is missing\)/,
    },
  ])("$case", async ({ policy, object, allowed, says }) => {
    const s = await start(policy ? { policy } : {});
    const r = responseOf(await post(s.url, "/validate-backups", restoreReview(object)));
    expect(r.allowed).toBe(allowed);
    const text = allowed ? r.warnings?.join("\n") : r.status?.message;
    if (says) expect(text).toMatch(says);
    else expect(r.warnings).toBeUndefined();
    if (!allowed) expect(r.status?.code).toBe(403);
  });

  it("the mutating webhook leaves Restores alone", async () => {
    const s = await start();
    const r = responseOf(await post(s.url, "/mutate-backups", restoreReview(restoreInto("r1", { includedNamespaces: ["shop"] }))));
    expect(r).toEqual({ uid: expect.any(String), allowed: true });
  });
});
