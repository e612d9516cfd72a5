/**
 * The ClusterCache against a real kube-apiserver. The cache talks to the API server through a
 * TCP proxy in this file, so a test can cut every connection (and refuse new ones) the way an
 * API server that goes away does; the harness cannot restart kube-apiserver in place.
 *
 * Watch expiry (410 Gone) is forced for real on a second control plane that serves watches
 * straight from etcd (--watch-cache=false) and compacts etcd every second: after a cut of a few
 * seconds the cache's last resourceVersion is compacted away, its re-watch gets the ERROR event
 * "too old resource version", and it must relist, converging on changes made during the gap
 * (including deletions, so no ghosts).
 */
import { KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { createServer, connect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { destination, pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClusterCache, type CacheChange, type ClusterCacheImpl } from "../../src/cluster/cache.js";
import { createRequester } from "../../src/kube/http.js";
import { watch, type WatchEvent } from "../../src/kube/watch.js";
import { createMetrics, type Metrics } from "../../src/metrics/metrics.js";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import {
  bindPvcToPv,
  clients,
  createBackup,
  createNamespace,
  createPod,
  createPv,
  createPvc,
  isApiError,
  uniqueName,
  updateVelero,
  type Clients,
} from "../support/objects.js";
import { sleep, waitFor } from "../support/wait.js";
import { startWatch } from "../support/watch.js";

/** Forwards TCP to the API server; `cut()` drops every connection and refuses new ones until `resume()`. */
class CuttableProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private down = false;
  /** Connections refused while down (each is one reconnect attempt of some client). */
  refused = 0;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async listen(): Promise<void> {
    this.server = createServer((client) => {
      if (this.down) {
        this.refused++;
        client.destroy();
        return;
      }
      const upstream = connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  cut(): void {
    this.down = true;
    this.refused = 0;
    for (const s of this.sockets) s.destroy();
  }

  resume(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** A copy of `kc` whose current cluster is reached through this proxy. */
  kubeConfig(kc: KubeConfig): KubeConfig {
    const out = new KubeConfig();
    out.loadFromOptions({
      clusters: kc.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${this.port}` })),
      users: kc.users,
      contexts: kc.contexts,
      currentContext: kc.currentContext,
    });
    return out;
  }
}

function targetOf(kc: KubeConfig): { host: string; port: number } {
  const u = new URL(kc.getCurrentCluster()!.server);
  return { host: u.hostname, port: Number(u.port) };
}

async function restarts(m: Metrics, resource?: string, reason?: string): Promise<number> {
  const { values } = await m.watchRestarts.get();
  return values
    .filter((v) => (resource === undefined || v.labels.resource === resource) && (reason === undefined || v.labels.reason === reason))
    .reduce((sum, v) => sum + v.value, 0);
}

async function gauge(m: Metrics, name: "viewSynced"): Promise<number | undefined> {
  return (await m[name].get()).values[0]?.value;
}

/** Deletes a PVC or PV and clears its protection finalizer (no controller-manager runs here). */
async function forceDelete(c: Clients, kind: "pvc" | "pv", name: string, namespace = ""): Promise<void> {
  const patch = { metadata: { finalizers: null } };
  try {
    if (kind === "pvc") {
      await c.core.deleteNamespacedPersistentVolumeClaim({ name, namespace });
      await c.core.patchNamespacedPersistentVolumeClaim({ name, namespace, body: patch }, mergePatch());
    } else {
      await c.core.deletePersistentVolume({ name });
      await c.core.patchPersistentVolume({ name, body: patch }, mergePatch());
    }
  } catch (e) {
    if (!isApiError(e, 404)) throw e;
  }
}

function mergePatch() {
  return setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
}

/** Our watch module (src/kube/watch.ts) on `path` from `resourceVersion`, collecting events until stopped. */
function watchEvents(kc: KubeConfig, path: string, resourceVersion: string) {
  const events: WatchEvent[] = [];
  const abort = new AbortController();
  const ended = watch(createRequester(kc), path, { resourceVersion }, { onEvent: (e) => events.push(e) }, abort.signal).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { events, stop: () => abort.abort(), ended };
}

const nameOf = (e: WatchEvent) => (e.object as { metadata?: { name?: string } }).metadata?.name;

describe("ClusterCache on a real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let proxy: CuttableProxy;
  let cache: ClusterCacheImpl;
  let metrics: Metrics;
  const changes: CacheChange[] = [];
  const velero = uniqueName("velero");
  const pre = uniqueName("pre");

  beforeAll(async () => {
    cp = await startControlPlane({ name: "cluster-cache" });
    c = clients(cp.kubeConfig);
    proxy = new CuttableProxy(targetOf(cp.kubeConfig));
    await proxy.listen();
    await createNamespace(c, velero);
    await createNamespace(c, pre, { team: "a" });
    // What exists before the cache starts: a pod mounting a bound PVC, a Backup, ConfigMaps.
    await createPvc(c, pre, "data");
    await createPv(c, `pv-${pre}`);
    await bindPvcToPv(c, pre, "data", `pv-${pre}`);
    await createPod(c, pre, "db-0", { pvcs: ["data"], labels: { app: "db" } });
    await createBackup(c, velero, "b-pre", { includedNamespaces: [pre] });
    await c.core.createNamespacedConfigMap({ namespace: velero, body: { metadata: { name: "vp" }, data: { "policy.yaml": "x" } } });
    await c.core.createNamespacedConfigMap({ namespace: pre, body: { metadata: { name: "elsewhere" }, data: { a: "b" } } });

    metrics = createMetrics();
    cache = createClusterCache(proxy.kubeConfig(cp.kubeConfig), {
      veleroNamespace: velero,
      metrics,
      log: pino({ level: "debug" }, destination({ dest: join(cp.dir, "cache.log"), sync: true })),
      backoff: { initialMs: 100, maxMs: 800, resetAfterMs: 5_000 },
      watchTimeoutSeconds: () => 5,
    });
    cache.onChange((ch) => changes.push(ch));
  });
  afterAll(async () => {
    await cache?.stop();
    await proxy?.close();
    await cp?.stop();
  });

  it("is not synced while the API server cannot be reached, then lists everything and is", async () => {
    proxy.cut();
    await cache.start();
    await sleep(1_500);
    expect(cache.synced()).toBe(false);
    expect(cache.view.synced).toBe(false);
    expect(await gauge(metrics, "viewSynced")).toBe(0);
    expect(await restarts(metrics, undefined, "list_failed")).toBeGreaterThan(0);
    proxy.resume();
    await cache.waitForSync(AbortSignal.timeout(30_000));
    expect(cache.synced()).toBe(true);
    expect(cache.view.synced).toBe(true);
    expect(await gauge(metrics, "viewSynced")).toBe(1);
    expect(changes.filter((ch) => ch.kind === "Resync")).toHaveLength(7); // one per collection

    const v = cache.view;
    expect(v.namespace(pre)).toEqual({ name: pre, labels: expect.objectContaining({ team: "a" }), annotations: {}, terminating: false });
    expect(v.contents(pre).pods.get("db-0")).toEqual({
      namespace: pre,
      name: "db-0",
      labels: { app: "db" },
      annotations: {},
      phase: "Pending",
      deleting: false,
      volumes: [expect.objectContaining({ name: "data", type: "persistentVolumeClaim", claimName: "data" })],
    });
    expect(v.contents(pre).pvcs.get("data")).toMatchObject({ phase: "Bound", volumeName: `pv-${pre}`, deleting: false });
    expect(v.pv(`pv-${pre}`)).toMatchObject({ claimRef: { namespace: pre, name: "data" }, type: "hostPath", capacity: "1Gi" });
    expect(v.configMap(velero, "vp")?.data).toEqual({ "policy.yaml": "x" });
    expect(v.configMap(pre, "elsewhere")).toBeUndefined();
    const b = cache.backup("b-pre");
    expect(b).toMatchObject({ namespace: velero, name: "b-pre", phase: "" });
    expect(b?.specHash).toMatch(/^[0-9a-f]{40}$/);
    expect(cache.backups().map((x) => x.name)).toEqual(["b-pre"]);
  });

  it("reflects adds, updates and deletes of every kind", async () => {
    const ns = uniqueName("app");
    const seen = (kind: CacheChange["kind"], type: CacheChange["type"], name: string) =>
      changes.some((ch) => ch.kind === kind && ch.type === type && ch.name === name);

    // Namespace: added, relabelled, then Terminating (no controller finishes the deletion).
    await createNamespace(c, ns, { tier: "1" });
    await waitFor("namespace added", () => cache.view.namespace(ns)?.labels.tier === "1");
    await c.core.patchNamespace(
      { name: ns, body: { metadata: { labels: { tier: "2" }, annotations: { "backup-gate.io/conflict-level": "Namespace" } } } },
      mergePatch(),
    );
    await waitFor("namespace relabelled", () => cache.view.namespace(ns)?.labels.tier === "2");
    expect(cache.view.namespace(ns)?.annotations["backup-gate.io/conflict-level"]).toBe("Namespace");

    // PVC + PV, bound by hand; a pod mounting the PVC.
    await createPvc(c, ns, "data", { labels: { "velero.io/volume-group": "g1" } });
    await waitFor("PVC added", () => cache.view.contents(ns).pvcs.get("data"));
    expect(cache.view.contents(ns).pvcs.get("data")).toMatchObject({ phase: "Pending", labels: { "velero.io/volume-group": "g1" } });
    const pvName = `pv-${ns}`;
    await createPv(c, pvName, { storage: "5Gi" });
    await waitFor("PV added", () => cache.view.pv(pvName));
    await bindPvcToPv(c, ns, "data", pvName);
    await waitFor("PVC bound in the view", () => cache.view.contents(ns).pvcs.get("data")?.phase === "Bound");
    expect(cache.view.contents(ns).pvcs.get("data")?.volumeName).toBe(pvName);
    await waitFor("PV claimRef in the view", () => cache.view.pv(pvName)?.claimRef?.name === "data");
    expect(cache.view.pv(pvName)?.capacity).toBe("5Gi");

    await createPod(c, ns, "web-0", { pvcs: ["data"] });
    await waitFor("pod added", () => cache.view.contents(ns).pods.get("web-0"));
    const before = cache.view.contents(ns).version;
    await c.core.patchNamespacedPod(
      {
        name: "web-0",
        namespace: ns,
        body: {
          metadata: {
            annotations: {
              "pre.hook.backup.velero.io/command": '["/bin/true"]',
              "unrelated.example.com/blob": "x".repeat(1000),
            },
          },
        },
      },
      mergePatch(),
    );
    await waitFor("pod hook annotation", () => cache.view.contents(ns).pods.get("web-0")?.annotations["pre.hook.backup.velero.io/command"]);
    // Only annotations the core reads are kept on pods.
    expect(cache.view.contents(ns).pods.get("web-0")?.annotations).toEqual({ "pre.hook.backup.velero.io/command": '["/bin/true"]' });
    expect(cache.view.contents(ns).version).toBeGreaterThan(before);
    expect(cache.view.contents(ns).unitOf("pod:web-0", "velero.io/volume-group")).toMatchObject({ pods: ["web-0"], pvcs: ["data"], pvs: [pvName] });

    // An update that changes nothing the view keeps (an unrelated annotation) touches nothing.
    const quiet = cache.view.contents(ns).version;
    const changesBefore = changes.length;
    await c.core.patchNamespacedPod({ name: "web-0", namespace: ns, body: { metadata: { annotations: { "unrelated.example.com/blob": "y" } } } }, mergePatch());
    await createPod(c, ns, "marker");
    await waitFor("marker pod", () => cache.view.contents(ns).pods.get("marker"));
    expect(changes.slice(changesBefore).filter((ch) => ch.name === "web-0")).toEqual([]);
    expect(cache.view.contents(ns).version).toBe(quiet + 1); // the marker only

    // ConfigMaps in Velero's namespace (volume policies), and not elsewhere.
    await c.core.createNamespacedConfigMap({ namespace: velero, body: { metadata: { name: "policies" }, data: { "p.yaml": "v1" } } });
    await c.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "policies" }, data: { "p.yaml": "v1" } } });
    await waitFor("ConfigMap added", () => cache.view.configMap(velero, "policies"));
    await c.core.patchNamespacedConfigMap({ name: "policies", namespace: velero, body: { data: { "p.yaml": "v2" } } }, mergePatch());
    await waitFor("ConfigMap updated", () => cache.view.configMap(velero, "policies")?.data["p.yaml"] === "v2");
    expect(cache.view.configMap(ns, "policies")).toBeUndefined();

    // Backups: added with a spec digest, phase changes, deleted.
    await createBackup(c, velero, "b1", { includedNamespaces: [ns] });
    await waitFor("backup added", () => cache.backup("b1"));
    const hash = cache.backup("b1")!.specHash;
    const rv = cache.backup("b1")!.resourceVersion;
    await updateVelero(c, "backups", velero, "b1", (o) => {
      o.status = { phase: "Queued", queuePosition: 2 };
    });
    await waitFor("backup Queued", () => cache.backup("b1")?.phase === "Queued");
    expect(cache.backup("b1")).toMatchObject({ queuePosition: 2, specHash: hash });
    expect(cache.backup("b1")!.resourceVersion).not.toBe(rv);
    await updateVelero(c, "backups", velero, "b1", (o) => {
      o.spec.includedNamespaces = [ns, "other"];
    });
    await waitFor("backup spec digest changes", () => cache.backup("b1")?.specHash !== hash);
    expect(cache.inFlight()).toEqual([]);
    await updateVelero(c, "backups", velero, "b1", (o) => {
      o.status = { phase: "InProgress" };
    });
    await waitFor("backup in flight", () => cache.inFlight().length === 1);
    expect(cache.inFlight()).toEqual([cache.backup("b1")]);

    // Deletes.
    await c.core.deleteNamespacedPod({ name: "web-0", namespace: ns });
    await forceDelete(c, "pvc", "data", ns);
    await forceDelete(c, "pv", pvName);
    await c.core.deleteNamespacedConfigMap({ name: "policies", namespace: velero });
    await c.custom.deleteNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: velero, plural: "backups", name: "b1" });
    await c.core.deleteNamespace({ name: ns });
    await waitFor(
      "every delete seen",
      () =>
        !cache.view.contents(ns).pods.has("web-0") &&
        !cache.view.contents(ns).pvcs.has("data") &&
        !cache.view.pv(pvName) &&
        !cache.view.configMap(velero, "policies") &&
        !cache.backup("b1") &&
        cache.view.namespace(ns)?.terminating,
    );
    expect(cache.inFlight()).toEqual([]);

    for (const [kind, name] of [
      ["Pod", "web-0"],
      ["PersistentVolumeClaim", "data"],
      ["PersistentVolume", pvName],
      ["ConfigMap", "policies"],
      ["Backup", "b1"],
    ] as const) {
      expect(seen(kind, "ADDED", name), `${kind} ADDED`).toBe(true);
      expect(seen(kind, "MODIFIED", name), `${kind} MODIFIED`).toBe(true);
      expect(seen(kind, "DELETED", name), `${kind} DELETED`).toBe(true);
    }
    expect(changes.find((ch) => ch.kind === "Pod" && ch.name === "web-0")).toEqual({ kind: "Pod", type: "ADDED", namespace: ns, name: "web-0" });
    expect(seen("Namespace", "MODIFIED", ns)).toBe(true);
  });

  it("the watch module reads ADDED, MODIFIED and DELETED from the API server's stream", async () => {
    const ns = uniqueName("w");
    await createNamespace(c, ns);
    const list = (await createRequester(cp.kubeConfig).getJson(`/api/v1/namespaces/${ns}/pods`, {})) as { metadata: { resourceVersion: string } };
    const w = watchEvents(cp.kubeConfig, `/api/v1/namespaces/${ns}/pods`, list.metadata.resourceVersion);
    try {
      await createPod(c, ns, "p", { labels: { a: "1" } });
      await c.core.patchNamespacedPod({ name: "p", namespace: ns, body: { metadata: { labels: { a: "2" } } } }, mergePatch());
      await c.core.deleteNamespacedPod({ name: "p", namespace: ns, gracePeriodSeconds: 0 });
      await waitFor("ADDED, MODIFIED and DELETED of the pod", () => w.events.some((e) => e.type === "DELETED"));
    } finally {
      w.stop();
    }
    const types = w.events.filter((e) => nameOf(e) === "p").map((e) => e.type);
    expect(types[0]).toBe("ADDED");
    expect(types).toContain("MODIFIED");
    expect(types.at(-1)).toBe("DELETED");
    expect((w.events.find((e) => e.type === "MODIFIED")?.object as { metadata: { labels: object } }).metadata.labels).toEqual({ a: "2" });
    expect(((await w.ended) as Error).name).toBe("AbortError");
  });

  it("resumes from the last resourceVersion when the server ends a watch at its timeout", async () => {
    // watchTimeoutSeconds is 5 in this suite.
    await waitFor(
      "every watch ended by its timeout at least once",
      async () => {
        for (const r of ["namespaces", "pods", "persistentvolumeclaims", "persistentvolumes", "configmaps", "backups"]) {
          if ((await restarts(metrics, r, "timeout")) < 1) return false;
        }
        return true;
      },
      { timeoutMs: 30_000 },
    );
    const ns = uniqueName("late");
    await createNamespace(c, ns);
    await createPod(c, ns, "p");
    await waitFor("pod after timeouts", () => cache.view.contents(ns).pods.get("p"));
    // No relist was needed.
    expect(Object.values(cache.stats()).map((s) => s.lists)).toEqual([1, 1, 1, 1, 1, 1, 1]);
  });

  it("reconnects with backoff after the API server goes away, and converges on what changed meanwhile", async () => {
    const ns = uniqueName("gap");
    await createNamespace(c, ns);
    await createPod(c, ns, "stays");
    await createPod(c, ns, "goes");
    await waitFor("pods before the cut", () => cache.view.contents(ns).pods.size === 2);
    const disconnectsBefore = (await restarts(metrics, undefined, "disconnect")) + (await restarts(metrics, undefined, "closed"));

    proxy.cut();
    await c.core.deleteNamespacedPod({ name: "goes", namespace: ns });
    await createPod(c, ns, "new");
    await updateVelero(c, "backups", velero, "b-pre", (o) => {
      o.status = { phase: "InProgress" };
    });
    await sleep(4_000);
    const attempts = proxy.refused;
    proxy.resume();

    await waitFor(
      "the view converges after reconnecting",
      () => {
        const pods = cache.view.contents(ns).pods;
        return pods.has("stays") && pods.has("new") && !pods.has("goes") && cache.backup("b-pre")?.phase === "InProgress";
      },
      { timeoutMs: 30_000 },
    );
    expect(cache.inFlight().map((b) => b.name)).toEqual(["b-pre"]);
    expect((await restarts(metrics, undefined, "disconnect")) + (await restarts(metrics, undefined, "closed"))).toBeGreaterThanOrEqual(disconnectsBefore + 6);
    // Six watches retrying for 4 s with 100 ms doubling to 800 ms: about 8 tries each. Without
    // backoff it would be hundreds.
    expect(attempts).toBeGreaterThan(6);
    expect(attempts).toBeLessThan(6 * 15);
    expect(cache.synced()).toBe(true);
  });
});

describe("ClusterCache after its resourceVersion is compacted away (410)", () => {
  let cp: ControlPlane;
  let c: Clients;
  let proxy: CuttableProxy;
  let cache: ClusterCacheImpl;
  let metrics: Metrics;
  const changes: CacheChange[] = [];
  const velero = uniqueName("velero");
  const ns = uniqueName("exp");

  beforeAll(async () => {
    cp = await startControlPlane({
      name: "cluster-cache-410",
      apiserverArgs: { "watch-cache": "false", "etcd-compaction-interval": "1s" },
    });
    c = clients(cp.kubeConfig);
    proxy = new CuttableProxy(targetOf(cp.kubeConfig));
    await proxy.listen();
    await createNamespace(c, velero);
    await createNamespace(c, ns);
    await createPod(c, ns, "stays");
    await createPod(c, ns, "goes");
    await createPvc(c, ns, "goes");
    await createBackup(c, velero, "goes");
    metrics = createMetrics();
    cache = createClusterCache(proxy.kubeConfig(cp.kubeConfig), {
      veleroNamespace: velero,
      metrics,
      log: pino({ level: "debug" }, destination({ dest: join(cp.dir, "cache.log"), sync: true })),
      backoff: { initialMs: 100, maxMs: 800 },
    });
    cache.onChange((ch) => changes.push(ch));
    await cache.start();
    await cache.waitForSync(AbortSignal.timeout(60_000));
  });
  afterAll(async () => {
    await cache?.stop();
    await proxy?.close();
    await cp?.stop();
  });

  it("relists and converges, deleting what vanished during the gap", async () => {
    expect(cache.view.contents(ns).pods.size).toBe(2);
    proxy.cut();
    await c.core.deleteNamespacedPod({ name: "goes", namespace: ns });
    await createPod(c, ns, "new");
    await forceDelete(c, "pvc", "goes", ns);
    await c.custom.deleteNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: velero, plural: "backups", name: "goes" });
    await createBackup(c, velero, "new");
    const podsRv = cache.stats().pods!.resourceVersion;

    // Wait until a watch from the cache's last pods version is refused as too old: the gap is
    // real, not assumed.
    await waitFor(
      `a watch from resourceVersion ${podsRv} to be refused with 410`,
      async () => {
        let status: { code?: number } | undefined;
        const w = await startWatch(cp.kubeConfig, "/api/v1/pods", { resourceVersion: podsRv }, (type, obj) => {
          if (type === "ERROR") status = obj as { code?: number };
        });
        await sleep(500);
        w.abort();
        return status?.code === 410;
      },
      { timeoutMs: 30_000, intervalMs: 1_000 },
    );

    // Our watch module hears the same refusal: the ERROR event the reflector turns into a relist.
    const w = watchEvents(cp.kubeConfig, "/api/v1/pods", podsRv);
    await waitFor("the watch module's ERROR event", () => w.events.length > 0);
    w.stop();
    expect(w.events[0]).toMatchObject({ type: "ERROR", object: { code: 410 } });

    const resyncsBefore = changes.filter((ch) => ch.kind === "Resync").length;
    proxy.resume();
    await waitFor(
      "the view converges after the relist",
      () => {
        const pods = cache.view.contents(ns).pods;
        return (
          pods.has("stays") && pods.has("new") && !pods.has("goes") && !cache.view.contents(ns).pvcs.has("goes") && cache.backup("new") && !cache.backup("goes")
        );
      },
      { timeoutMs: 30_000 },
    );
    expect(await restarts(metrics, "pods", "expired")).toBeGreaterThanOrEqual(1);
    expect(cache.stats().pods!.lists).toBeGreaterThanOrEqual(2);
    expect(changes.filter((ch) => ch.kind === "Resync").length).toBeGreaterThan(resyncsBefore);
    expect(cache.synced()).toBe(true);

    // And it keeps watching after the relist.
    await createPod(c, ns, "after");
    await waitFor("a pod created after the relist", () => cache.view.contents(ns).pods.has("after"));
  });
});
