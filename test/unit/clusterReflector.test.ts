import type { ServerResponse } from "node:http";
import { startLocalApi, type LocalApi } from "../support/localApi.js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeAccess } from "../../src/kube/http.js";
import { isExpiredStatus, objectKey, Reflector, relistDeletions, type RawObject } from "../../src/kube/reflector.js";
import { createMetrics } from "../../src/metrics/metrics.js";
import { waitFor } from "../support/wait.js";
import { canonicalJson, Interner, keepAnnotation, slimPod, specHash } from "../../src/cluster/slim.js";
import { sameValue } from "../../src/kube/sameValue.js";
import { trim } from "../../src/core/velero/objects.js";
import { pod } from "../support/builders.js";

describe("relist diffing", () => {
  it("deletes exactly the known objects the relist no longer returns", () => {
    const known = ["a/x", "a/y", "b/z", "pv-1"];
    expect(relistDeletions(known, new Set(["a/x", "b/z", "a/new"]))).toEqual(["a/y", "pv-1"]);
    expect(relistDeletions(known, new Set(known))).toEqual([]);
    expect(relistDeletions(known, new Set())).toEqual(known);
    expect(relistDeletions(new Map([["k", "1"]]).keys(), new Set(["k"]))).toEqual([]);
  });

  it("keys namespaced objects by namespace/name and cluster objects by name", () => {
    expect(objectKey({ metadata: { namespace: "shop", name: "db-0" } })).toBe("shop/db-0");
    expect(objectKey({ metadata: { name: "pv-1" } })).toBe("pv-1");
    expect(objectKey({ metadata: { name: "pv-1", namespace: "" } })).toBe("pv-1");
    expect(objectKey({ metadata: {} })).toBeUndefined();
    expect(objectKey({})).toBeUndefined();
  });

  it("recognizes every form of 'resourceVersion too old'", () => {
    expect(isExpiredStatus({ kind: "Status", code: 410, reason: "Expired", message: "too old resource version: 1 (845)" })).toBe(true);
    expect(isExpiredStatus({ code: 410, reason: "Gone" })).toBe(true);
    expect(isExpiredStatus({ reason: "Expired" })).toBe(true);
    expect(isExpiredStatus({ message: "Too old resource version: 5 (10)" })).toBe(true);
    expect(isExpiredStatus({ code: 500, reason: "InternalError", message: "etcd unavailable" })).toBe(false);
    expect(isExpiredStatus(null)).toBe(false);
    expect(isExpiredStatus("410")).toBe(false);
  });
});

describe("slimming trimmed objects", () => {
  it("keeps only the annotations the core reads on pods", () => {
    expect(keepAnnotation("pre.hook.backup.velero.io/command")).toBe(true);
    expect(keepAnnotation("hook.backup.velero.io/command")).toBe(true);
    expect(keepAnnotation("backup.velero.io/backup-volumes")).toBe(true);
    expect(keepAnnotation("backup-gate.io/conflict-level")).toBe(true);
    expect(keepAnnotation("kubectl.kubernetes.io/last-applied-configuration")).toBe(false);
    expect(keepAnnotation("notvelero.io/x")).toBe(false);
    expect(keepAnnotation("velero.io")).toBe(false);
  });

  it("shares repeated strings and empty maps between pods, and changes nothing else", () => {
    const i = new Interner();
    const raw = (name: string) =>
      pod("shop", name, {
        labels: { app: "db", tier: "data" },
        claims: [`data-${name}`],
        annotations: { "backup.velero.io/backup-volumes": "data", "kubectl.kubernetes.io/last-applied-configuration": "{}" },
      });
    const trimmed = (name: string) => {
      const r = trim("Pod", JSON.parse(JSON.stringify(raw(name))));
      if (!r.ok) throw r.error;
      return r.value;
    };
    const a = slimPod(trimmed("db-0"), i),
      b = slimPod(trimmed("db-1"), i);
    const full = trimmed("db-0");
    expect(a).toEqual({ ...full, annotations: { "backup.velero.io/backup-volumes": "data" } });
    expect(Object.keys(a.labels)[0]).toBe(Object.keys(b.labels)[0]);
    const noLabels = (name: string) => {
      const r = trim("Pod", pod("x", name));
      if (!r.ok) throw r.error;
      return slimPod(r.value, i);
    };
    expect(noLabels("p").labels).toBe(noLabels("q").labels);
  });

  it("stops growing the string table at its bound", () => {
    const i = new Interner(3);
    for (const s of ["a", "b", "c", "d", "e"]) i.intern(s);
    expect(i.size).toBe(3);
    expect(i.intern("z")).toBe("z");
  });

  it("digests a spec independently of key order", () => {
    expect(canonicalJson({ b: 1, a: [{ y: 2, x: null }], c: undefined })).toBe('{"a":[{"x":null,"y":2}],"b":1}');
    expect(specHash({ includedNamespaces: ["a"], ttl: "1h" })).toBe(specHash({ ttl: "1h", includedNamespaces: ["a"] }));
    expect(specHash({ includedNamespaces: ["a"] })).not.toBe(specHash({ includedNamespaces: ["b"] }));
    expect(specHash({})).toMatch(/^[0-9a-f]{40}$/);
  });

  it("compares trimmed objects structurally", () => {
    expect(sameValue({ a: [1, { b: "x" }] }, { a: [1, { b: "x" }] })).toBe(true);
    expect(sameValue({ a: 1 }, { a: 1, b: undefined })).toBe(false);
    expect(sameValue({ a: [1] }, { a: { 0: 1 } })).toBe(false);
    expect(sameValue({ phase: "Running" }, { phase: "Pending" })).toBe(false);
  });
});

/**
 * The reflector's restart reasons for what only a misbehaving server or network can send (the
 * real API server's watches, timeouts and 410s are in test/integration/clusterCache.test.ts):
 * a local HTTP server answers the list, then each watch as the test says.
 */
describe("restart reasons from the watch stream", () => {
  let api: LocalApi;
  let watchAnswer: (res: ServerResponse, n: number) => void = () => {};
  let watches = 0;
  let kc: KubeAccess;
  beforeAll(async () => {
    api = await startLocalApi((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.searchParams.get("watch") !== "true") {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ kind: "List", metadata: { resourceVersion: "10" }, items: [{ metadata: { name: "a", resourceVersion: "10" } }] }));
        return;
      }
      watchAnswer(res, watches++);
    });
    kc = api.kc;
  });
  afterAll(() => api.close());

  const run = async (answer: (res: ServerResponse, n: number) => void, until: (r: Reflector<RawObject>) => boolean) => {
    watchAnswer = answer;
    watches = 0;
    const metrics = createMetrics();
    const held = new Map<string, RawObject>();
    const r = new Reflector<RawObject>({
      kc,
      resource: "pods",
      path: "/api/v1/pods",
      decode: (raw) => ({ ok: true, value: raw }),
      sink: { upsert: (k, v) => held.set(k, v), remove: (k) => held.delete(k), listed: () => {}, keys: () => held.keys() },
      log: pino({ level: "silent" }),
      metrics,
      backoff: { initialMs: 10, maxMs: 20 },
      watchTimeoutSeconds: () => 5,
    });
    r.start();
    await waitFor("the reflector to get there", () => until(r), { timeoutMs: 10_000 });
    await r.stop();
    const reasons = (await metrics.watchRestarts.get()).values.filter((v) => v.value > 0).map((v) => v.labels.reason);
    return { reasons, held, lists: r.lists };
  };
  const event = (type: string, name: string, rv: string) => JSON.stringify({ type, object: { metadata: { name, resourceVersion: rv } } }) + "\n";

  it("ends the watch with reason error at an unreadable line, and never crashes", async () => {
    const { reasons, held } = await run(
      (res, n) => {
        res.writeHead(200, { "Content-Type": "application/json" });
        if (n === 0) res.write(event("ADDED", "b", "11") + "{not json\n" + event("ADDED", "c", "12"));
        // Later watches stay open.
      },
      () => watches >= 2,
    );
    expect(reasons).toEqual(["error"]);
    expect([...held.keys()].sort()).toEqual(["a", "b"]); // nothing after the bad line
  });

  it("relists after a 410 answer to the watch request", async () => {
    const { reasons, lists } = await run(
      (res, n) => {
        if (n === 0) {
          res.writeHead(410, { "Content-Type": "application/json" });
          res.end(JSON.stringify({ kind: "Status", code: 410, reason: "Expired", message: "too old resource version: 10 (20)" }));
        } else res.writeHead(200, { "Content-Type": "application/json" }).flushHeaders();
      },
      (r) => r.lists >= 2,
    );
    expect(reasons).toEqual(["expired"]);
    expect(lists).toBeGreaterThanOrEqual(2);
  });
});

/**
 * The first list tracks no keys (nothing is held yet, so nothing can be a ghost). When its
 * continue token expires mid-list it starts over, and then it must track them: an object
 * applied from the pages before and deleted since is gone after the list. The same when the
 * list fails mid-way and is tried again: the sink holds what the failed pages applied.
 */
describe("a first list that starts over", () => {
  it.each([
    { how: "its continue token expires", failure: 410 },
    { how: "a page fails", failure: 500 },
  ])("drops what the pages before held and the new list does not, when $how", async ({ failure }) => {
    const pages: string[] = [];
    const api = await startLocalApi((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.searchParams.get("watch") === "true") return void res.writeHead(200).flushHeaders(); // stays open
      const cont = url.searchParams.get("continue") ?? "";
      pages.push(cont || "first");
      const answer = (body: object, code = 200) => res.writeHead(code, { "Content-Type": "application/json" }).end(JSON.stringify(body));
      if (cont === "c1") return answer({ kind: "Status", code: failure, reason: failure === 410 ? "Expired" : "InternalError", message: "no page" }, failure);
      // The first page: `gone` only the first time, then it has been deleted.
      const first = pages.filter((p) => p === "first").length === 1;
      if (first) return answer({ metadata: { resourceVersion: "10", continue: "c1" }, items: [{ metadata: { name: "gone", resourceVersion: "9" } }] });
      return answer({ metadata: { resourceVersion: "12" }, items: [{ metadata: { name: "kept", resourceVersion: "11" } }] });
    });
    const held = new Map<string, RawObject>();
    const r = new Reflector<RawObject>({
      kc: api.kc,
      resource: "pods",
      path: "/api/v1/pods",
      decode: (raw) => ({ ok: true, value: raw }),
      sink: { upsert: (k, v) => held.set(k, v), remove: (k) => held.delete(k), listed: () => {}, keys: () => held.keys() },
      log: pino({ level: "silent" }),
      backoff: { initialMs: 10, maxMs: 10 },
    });
    r.start();
    await waitFor("the first list", () => r.lists === 1, { timeoutMs: 10_000 });
    await r.stop();
    await api.close();
    expect(pages).toEqual(["first", "c1", "first"]);
    expect([...held.keys()]).toEqual(["kept"]);
  });
});
