// Memory of the ClusterCache with many objects watched. Goal (design): <= 300 MiB RSS with
// 100k pods + 100k PVCs. The cache runs alone in a child process, compiled to plain JS (as in
// production; tsx's loader thread alone costs ~90 MiB), and reports RSS and heap once synced,
// after a full GC. Two sources:
//
//   BENCH_SOURCE=apiserver (default): a throw-away control plane from the test harness, filled
//     with N pods and N PVCs (50 per namespace, 50 creates in flight). Creation dominates: on a
//     busy 2-core machine about 100 objects/s, so 100k + 100k takes over half an hour.
//   BENCH_SOURCE=synthetic: a local HTTP server answering the same paginated list requests
//     with API-server-shaped JSON (managedFields, status, conditions) and holding watches open.
//     Same client path (pages, JSON.parse, trim, intern, view); no TLS, no etcd. Seconds.
//
//   BENCH_PODS=100000 BENCH_SOURCE=synthetic npx tsx bench/rss.bench.ts
//   BENCH_PODS=10000 npx tsx bench/rss.bench.ts
//
//   BENCH_NODE_FLAGS="--max-old-space-size=256" ...   # flags for the measured process
//
// Prints a few lines and one JSON line.
//
// Measured (synthetic, 100k pods + 100k PVCs, Node 20): heap used after GC 134 MiB. With Node's
// default heap sizing V8 keeps the heap it grew to while listing: RSS 379 MiB (peak 433). With
// --max-old-space-size=256 (what the Deployment should set in NODE_OPTIONS): RSS 272 MiB, peak
// 293 MiB; with 192: 243 / 279 MiB.

import { CoreV1Api, KubeConfig, type V1Pod, type V1PersistentVolumeClaim } from "@kubernetes/client-node";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { destination, pino } from "pino";
import { createClusterCache } from "../src/cluster/cache.js";

const PER_NAMESPACE = 50;
const CONCURRENCY = 50;
const GOAL_MIB = 300;
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

// ---- the measured process ----

async function child(kubeconfig: string): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const cache = createClusterCache(kc, { veleroNamespace: "velero", log: pino({ level: process.env.BENCH_LOG ?? "warn" }, destination({ dest: 2, sync: true })) });
  const t0 = performance.now();
  let peak = 0;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 50);
  await cache.start();
  await cache.waitForSync(AbortSignal.timeout(60 * 60_000));
  const syncMs = performance.now() - t0;
  clearInterval(sampler);
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) { gc?.(); await new Promise((r) => setTimeout(r, 300)); }
  const m = process.memoryUsage();
  const stats = cache.stats();
  process.stdout.write(`${JSON.stringify({
    syncMs: Math.round(syncMs), rssMiB: mib(m.rss), heapUsedMiB: mib(m.heapUsed), heapTotalMiB: mib(m.heapTotal), externalMiB: mib(m.external), peakRssMiB: mib(peak),
    pods: stats.pods?.objects, pvcs: stats.persistentvolumeclaims?.objects,
  })}\n`);
  await cache.stop();
  process.exit(0);
}

function mib(bytes: number): number {
  return Math.round(bytes / 1024 / 1024 * 10) / 10;
}

/** Bundles this file (dependencies left external) so the child runs plain JS. */
function compileChild(): string {
  const dir = join(root, "node_modules", ".cache", "backup-gate-bench");
  mkdirSync(dir, { recursive: true });
  const out = join(dir, "rss-child.mjs");
  const r = spawnSync(join(root, "node_modules", ".bin", "esbuild"), [
    fileURLToPath(import.meta.url), "--bundle", "--platform=node", "--format=esm", "--packages=external", "--log-level=warning", `--outfile=${out}`,
  ], { stdio: "inherit" });
  if (r.status !== 0) throw new Error("esbuild failed");
  return out;
}

async function measure(kubeconfig: string): Promise<Record<string, number>> {
  const script = compileChild();
  const out = await new Promise<string>((resolveOut, reject) => {
    const p = spawn(process.execPath, ["--expose-gc", ...(process.env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean), script, "--child", kubeconfig], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
    let text = "";
    p.stdout.on("data", (d: Buffer) => { text += d.toString(); });
    p.on("close", (code) => (code === 0 ? resolveOut(text) : reject(new Error(`cache process exited ${code}`))));
  });
  return JSON.parse(out.trim().split("\n").at(-1) as string) as Record<string, number>;
}

// ---- object shapes (as a StatefulSet's pods and claims look) ----

const nsOf = (i: number) => `team-${Math.floor(i / PER_NAMESPACE)}`;
const appOf = (i: number) => `app-${i % 10}`;

function pvcBody(i: number): V1PersistentVolumeClaim {
  const app = appOf(i);
  return {
    metadata: { name: `data-${app}-${i}`, labels: { app, "app.kubernetes.io/part-of": "shop" } },
    spec: { accessModes: ["ReadWriteOnce"], storageClassName: "standard", resources: { requests: { storage: "10Gi" } } },
  };
}

function podBody(i: number): V1Pod {
  const app = appOf(i);
  return {
    metadata: {
      name: `${app}-${i}`,
      labels: { app, "app.kubernetes.io/part-of": "shop", "controller-revision-hash": `${app}-5d8f9c7b6`, "statefulset.kubernetes.io/pod-name": `${app}-${i}` },
      annotations: { "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z", "backup.velero.io/backup-volumes": "data" },
    },
    spec: {
      containers: [{
        name: "main", image: "registry.invalid/app:1", resources: { requests: { cpu: "100m", memory: "128Mi" } },
        volumeMounts: [{ name: "data", mountPath: "/data" }, { name: "ca", mountPath: "/etc/ca" }],
      }],
      volumes: [
        { name: "data", persistentVolumeClaim: { claimName: `data-${app}-${i}` } },
        { name: "ca", projected: { sources: [{ configMap: { name: "kube-root-ca.crt" } }, { downwardAPI: { items: [{ path: "namespace", fieldRef: { fieldPath: "metadata.namespace" } }] } }] } },
      ],
    },
  };
}

// ---- source: the real API server ----

async function create(fn: () => Promise<unknown>): Promise<void> {
  try { await fn(); } catch (e) { if ((e as { code?: number }).code !== 409) throw e; }
}

async function pool(n: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    for (let i = next++; i < n; i = next++) {
      for (let attempt = 0; ; attempt++) {
        try { await work(i); break; } catch (e) {
          if (attempt >= 5) throw e;
          await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
        }
      }
    }
  }));
}

async function withApiServer(total: number): Promise<Record<string, number>> {
  const { startControlPlane } = await import("../test/support/controlPlane.js");
  const cp = await startControlPlane({ name: "rss-bench", startTimeoutMs: 300_000 });
  try {
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const t0 = performance.now();
    await create(() => core.createNamespace({ body: { metadata: { name: "velero" } } }));
    await pool(Math.ceil(total / PER_NAMESPACE), (i) => create(() => core.createNamespace({ body: { metadata: { name: `team-${i}`, labels: { team: `t${i % 20}` } } } })));
    await pool(total, async (i) => {
      await create(() => core.createNamespacedPersistentVolumeClaim({ namespace: nsOf(i), body: pvcBody(i) }));
      await create(() => core.createNamespacedPod({ namespace: nsOf(i), body: podBody(i) }));
      if ((i + 1) % 10_000 === 0) process.stderr.write(`created ${i + 1} pods and PVCs (${Math.round((performance.now() - t0) / 1000)} s)\n`);
    });
    process.stderr.write(`created ${total} pods and ${total} PVCs in ${Math.round((performance.now() - t0) / 1000)} s; starting the cache\n`);
    return await measure(cp.kubeconfigPath);
  } finally {
    await cp.stop();
  }
}

// ---- source: a synthetic list/watch server ----

function served(i: number, kind: "pod" | "pvc"): object {
  const ns = nsOf(i);
  const body = kind === "pod" ? podBody(i) : pvcBody(i);
  const uid = `0b6c${String(i).padStart(8, "0")}-1f2e-4d5c-9a8b-${kind === "pod" ? "00" : "11"}7c6d5e4f3a`;
  const meta = {
    ...body.metadata, namespace: ns, uid, resourceVersion: String(1000 + i), creationTimestamp: "2026-01-01T00:00:00Z",
    managedFields: [{ manager: "kube-controller-manager", operation: "Update", apiVersion: "v1", time: "2026-01-01T00:00:00Z", fieldsType: "FieldsV1",
      fieldsV1: { "f:metadata": { "f:labels": Object.fromEntries(Object.keys(body.metadata?.labels ?? {}).map((k) => [`f:${k}`, {}])) }, "f:spec": { "f:volumes": {} } } }],
  };
  if (kind === "pvc") {
    return { ...body, metadata: meta, spec: { ...body.spec, volumeName: `pvc-${uid}`, volumeMode: "Filesystem" },
      status: { phase: "Bound", accessModes: ["ReadWriteOnce"], capacity: { storage: "10Gi" } } };
  }
  return { ...body, metadata: meta,
    spec: { ...body.spec, nodeName: `node-${i % 100}`, restartPolicy: "Always", dnsPolicy: "ClusterFirst", schedulerName: "default-scheduler", terminationGracePeriodSeconds: 30 },
    status: { phase: "Running", podIP: `10.0.${(i >> 8) & 255}.${i & 255}`, hostIP: `192.168.0.${i % 100}`, qosClass: "Burstable", startTime: "2026-01-01T00:00:05Z",
      conditions: ["Initialized", "Ready", "ContainersReady", "PodScheduled"].map((type) => ({ type, status: "True", lastTransitionTime: "2026-01-01T00:00:05Z" })),
      containerStatuses: [{ name: "main", ready: true, restartCount: 0, image: "registry.invalid/app:1", imageID: "registry.invalid/app@sha256:0123456789abcdef", containerID: `containerd://${uid}`, started: true, state: { running: { startedAt: "2026-01-01T00:00:06Z" } } }] } };
}

async function withSyntheticServer(total: number): Promise<Record<string, number>> {
  const namespaces = Math.ceil(total / PER_NAMESPACE);
  const collections: Record<string, { count: number; item: (i: number) => object }> = {
    "/api/v1/pods": { count: total, item: (i) => served(i, "pod") },
    "/api/v1/persistentvolumeclaims": { count: total, item: (i) => served(i, "pvc") },
    "/api/v1/namespaces": { count: namespaces + 1, item: (i) => ({ metadata: { name: i === namespaces ? "velero" : `team-${i}`, uid: `ns-${i}`, resourceVersion: "5" }, status: { phase: "Active" } }) },
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.searchParams.get("watch") === "true") {
      res.writeHead(200, { "Content-Type": "application/json" }); // held open; the client goes at the end
      res.flushHeaders();
      return;
    }
    const c = collections[url.pathname] ?? { count: 0, item: () => ({}) };
    const from = Number(url.searchParams.get("continue") || 0);
    const limit = Number(url.searchParams.get("limit") || c.count);
    const to = Math.min(c.count, from + limit);
    const items = Array.from({ length: to - from }, (_, k) => c.item(from + k));
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ kind: "List", apiVersion: "v1", metadata: { resourceVersion: "999999", ...(to < c.count ? { continue: String(to) } : {}) }, items }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "synthetic", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }], contexts: [{ name: "c", cluster: "synthetic", user: "u" }], currentContext: "c",
  });
  const dir = join(root, "node_modules", ".cache", "backup-gate-bench");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "synthetic.kubeconfig");
  const { writeFileSync } = await import("node:fs");
  writeFileSync(file, kc.exportConfig());
  try {
    return await measure(file);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

async function main(): Promise<void> {
  const childAt = process.argv.indexOf("--child");
  if (childAt >= 0) return child(process.argv[childAt + 1] as string);
  const total = Number(process.env.BENCH_PODS ?? 100_000);
  const source = process.env.BENCH_SOURCE === "synthetic" ? "synthetic" : "apiserver";
  const r = source === "synthetic" ? await withSyntheticServer(total) : await withApiServer(total);
  console.log(`source ${source}: cache synced ${r.pods} pods + ${r.pvcs} PVCs in ${r.syncMs} ms`);
  console.log(`RSS after sync and GC: ${r.rssMiB} MiB (heap used ${r.heapUsedMiB} MiB; peak RSS while listing ${r.peakRssMiB} MiB); goal <= ${GOAL_MIB} MiB`);
  console.log(JSON.stringify({ bench: "cluster-cache-rss", source, ...r, goalMiB: GOAL_MIB, ok: (r.rssMiB ?? Infinity) <= GOAL_MIB && (r.peakRssMiB ?? Infinity) <= GOAL_MIB }));
}

await main();
