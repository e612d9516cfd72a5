// Memory of `backup-gate serve` with many objects watched (issue 7, benchmark 4). Goal (issue 20;
// the design said 300): <= 150 MiB RSS, peak and steady, with 100k pods + 100k PVCs. Two sources:
//
//   BENCH_SOURCE=apiserver (default): a throw-away control plane from the test harness, filled
//     with N pods and N PVCs (50 per namespace) as a StatefulSet's look once scheduled, running
//     and bound (created, then their status written; see rssObjects.ts), over HTTP/2 with 128
//     requests in flight (test/support/bulk.ts). Then `backup-gate serve` runs as production
//     runs it (plain JS, `node dist/src/cli/main.js`), with the Deployment's
//     NODE_OPTIONS=--max-old-space-size=256, with that plus --max-semi-space-size=4, and with
//     Node's defaults; RSS is read from
//     /proc/<pid>/status (VmHWM for the peak, VmRSS once ready and settled), heap from /metrics.
//   BENCH_SOURCE=synthetic: the ClusterCache alone in a child process against a local HTTP
//     server answering the same paginated lists with API-server-shaped JSON and holding watches
//     open. Same client path (pages, JSON.parse, trim, intern, view); no TLS, no etcd, no serve.
//     Seconds; for quick before/after checks of the cache.
//
//   npx tsx bench/rss.bench.ts                                   # 100k + 100k, real API server
//   BENCH_OBJECTS=10000 npx tsx bench/rss.bench.ts               # smaller
//   BENCH_KEEP=1 npx tsx bench/rss.bench.ts                      # keep the filled control plane (Ctrl-C ends)
//   BENCH_KUBECONFIG=/tmp/.../kubeconfig npx tsx bench/rss.bench.ts   # measure again against it
//   BENCH_SETTLE_S=90 (default; V8 shrinks its heap a minute or so after the list)  BENCH_NODE_OPTIONS="..." (one run with these)  BENCH_HEAPSNAPSHOT=1
//   BENCH_SOURCE=synthetic BENCH_NODE_FLAGS="--max-old-space-size=256" npx tsx bench/rss.bench.ts
//
// Control plane for the fill: etcd --quota-backend-bytes 8 GiB (its db reached 1.0 GB after the
// 400k writes, half the default 2 GiB quota, before any defragmentation). kube-apiserver keeps
// its flags: the harness's admin user (system:masters) is exempt from priority and fairness,
// so no in-flight limit applies; the limit is the API server's CPU (two shared cores), which
// HTTP/2 with 128 streams keeps busy. envtest already runs etcd with --unsafe-no-fsync.
//
// Prints tables and one JSON line per figure.
//
// Measured (real API server, 100k pods + 100k PVCs in 2,000 namespaces, Node 20, two shared
// cores): 402k writes in 433 s (PVC creates 990/s, pod creates 928/s, PVC status 1,310/s, pod
// status 684/s; 345-825/s while other suites shared the cores); serve ready in 24-31 s.
//
//   NODE_OPTIONS                                       peak RSS   steady RSS   heap used
//   --max-old-space-size=256 (the Deployment)           331 MiB      231 MiB     146 MiB
//   --max-old-space-size=256 --max-semi-space-size=4    300 MiB      230 MiB     146 MiB
//   (Node's defaults)                                   681 MiB      291 MiB     146 MiB
//   the Deployment's two, with disablePretenuring       286 MiB      225 MiB     146 MiB
//   (allocation-site pretenuring off; src/cli/v8Flags.ts)
//
// Before the fixes of commit a1c5c4e (same estate): 371 / 348 MiB with the Deployment's flag
// (steady after 30 s; ~266 MiB once V8 shrank its heap, after about a minute), heap used
// 167-182 MiB; 545 / 519 MiB with Node's defaults (whose peak varies run to run, 545-681 MiB:
// V8 grows the heap freely while listing). The heap snapshot (bench/heapSummary.ts):
// 157 MiB of self size, of which 61 MiB strings (pod and PVC names, claim names, volume names,
// 9 MiB of "ns/name" keys and 4.6 MiB of resourceVersion strings held by the reflectors, 21 MiB
// of module source, 6.5 MiB of source maps kept by --enable-source-maps), 46 MiB plain objects
// (the trimmed pods and PVCs with their label maps and volumes), 19 MiB Map tables. Outside
// the V8 heap: ~40 MiB of the node binary and a glibc heap of 48 MiB, grown by the joined
// Buffer of every list page. The peak is V8's: with --max-old-space-size=256 V8 sizes the
// young generation at about 1 MiB, so each parsed list page is promoted and old space climbs
// to the cap while listing; a 4 MiB semi-space lets pages die young.
//
// Synthetic (the cache alone, --max-old-space-size=256, forced GC): RSS 250 MiB, peak 291,
// heap used 126 (before the fixes: 272 / 293 / 134).

import { KubeConfig } from "@kubernetes/client-node";
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { destination, pino } from "pino";
import { createClusterCache } from "../src/cluster/cache.js";
import { loadKubeAccess } from "../src/kube/config.js";
import { bulkWrite, type BulkResult } from "../test/support/bulk.js";
import { startControlPlane, type ControlPlane } from "../test/support/controlPlane.js";
import { makeSuiteDir } from "../test/support/proc.js";
import { bundle } from "./bundle.js";
import { compileGate, measureGate, type GateMemory } from "./rssGate.js";
import { idOf, nsOf, PER_NAMESPACE, podBody, podStatus, pvcBody, pvcStatus } from "./rssObjects.js";

/** Issue 20's goal for serve at 100k pods + 100k PVCs (the design's was 300). */
const GOAL_MIB = 150;
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

// ---- the synthetic case's measured process: the cache alone ----

async function child(kubeconfig: string): Promise<void> {
  // As serve loads it: without client-node (its import alone is 73 MiB of RSS).
  const kc = await loadKubeAccess({ kubeconfig });
  const cache = createClusterCache(kc, {
    veleroNamespace: "velero",
    log: pino({ level: process.env.BENCH_LOG ?? "warn" }, destination({ dest: 2, sync: true })),
  });
  const t0 = performance.now();
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  await cache.start();
  await cache.waitForSync(AbortSignal.timeout(60 * 60_000));
  const syncMs = performance.now() - t0;
  clearInterval(sampler);
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 300));
  }
  const m = process.memoryUsage();
  const stats = cache.stats();
  process.stdout.write(
    `${JSON.stringify({
      syncMs: Math.round(syncMs),
      rssMiB: mib(m.rss),
      heapUsedMiB: mib(m.heapUsed),
      heapTotalMiB: mib(m.heapTotal),
      externalMiB: mib(m.external),
      peakRssMiB: mib(peak),
      pods: stats.pods?.objects,
      pvcs: stats.persistentvolumeclaims?.objects,
    })}\n`,
  );
  await cache.stop();
  process.exit(0);
}

function mib(bytes: number): number {
  return Math.round((bytes / 1024 / 1024) * 10) / 10;
}

async function measure(kubeconfig: string): Promise<Record<string, number>> {
  const script = bundle(fileURLToPath(import.meta.url), "rss-child.mjs");
  const out = await new Promise<string>((resolveOut, reject) => {
    const p = spawn(process.execPath, ["--expose-gc", ...(process.env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean), script, "--child", kubeconfig], {
      cwd: root,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let text = "";
    p.stdout.on("data", (d: Buffer) => {
      text += d.toString();
    });
    p.on("close", (code) => (code === 0 ? resolveOut(text) : reject(new Error(`cache process exited ${code}`))));
  });
  return JSON.parse(out.trim().split("\n").at(-1) as string) as Record<string, number>;
}

// ---- source: the real API server, measured through `backup-gate serve` ----

/** etcd room for 400k writes before the API server's next compaction (see the header). */
const ETCD_ARGS = { "quota-backend-bytes": String(8 * 1024 ** 3) };

async function fill(cp: ControlPlane, total: number): Promise<BulkResult[]> {
  const namespaces = Math.ceil(total / PER_NAMESPACE);
  const ns = (path: string, i: number) => `/api/v1/namespaces/${nsOf(i)}/${path}`;
  return [
    await bulkWrite(
      cp,
      namespaces + 2,
      (i) => ({
        method: "POST",
        path: "/api/v1/namespaces",
        body: { metadata: i < namespaces ? { name: `team-${i}`, labels: { team: `t${i % 20}` } } : { name: i === namespaces ? "velero" : "backup-gate" } },
      }),
      { label: "namespaces" },
    ),
    await bulkWrite(cp, total, (i) => ({ method: "POST", path: ns("persistentvolumeclaims", i), body: pvcBody(i) }), { label: "PVC creates" }),
    await bulkWrite(cp, total, (i) => ({ method: "POST", path: ns("pods", i), body: podBody(i) }), { label: "pod creates" }),
    await bulkWrite(
      cp,
      total,
      (i) => ({ method: "PATCH", path: `${ns("persistentvolumeclaims", i)}/${pvcBody(i).metadata?.name}/status`, body: { status: pvcStatus() } }),
      { label: "PVC status (Bound)" },
    ),
    await bulkWrite(cp, total, (i) => ({ method: "PATCH", path: `${ns("pods", i)}/${podBody(i).metadata?.name}/status`, body: { status: podStatus(i) } }), {
      label: "pod status (Running)",
    }),
  ];
}

/**
 * Fills a fresh control plane (or takes BENCH_KUBECONFIG, one filled before and kept with
 * BENCH_KEEP=1) and measures `backup-gate serve` against it.
 */
async function withApiServer(total: number): Promise<void> {
  const reuse = process.env.BENCH_KUBECONFIG;
  const cp = reuse ? undefined : await startControlPlane({ name: "rss-bench", startTimeoutMs: 300_000, etcdArgs: ETCD_ARGS });
  try {
    const t0 = performance.now();
    const writes = cp ? await fill(cp, total) : [];
    const fillS = (performance.now() - t0) / 1000;
    const writesTotal = writes.reduce((a, w) => a + w.requests, 0);
    const target = cp ?? { kubeconfigPath: reuse as string, dir: makeSuiteDir("rss-bench-reuse") };
    const script = compileGate(root);
    const settleMs = Number(process.env.BENCH_SETTLE_S ?? 90) * 1000;
    if (!(settleMs >= 1000)) throw new Error(`BENCH_SETTLE_S must be at least 1 (seconds), not ${process.env.BENCH_SETTLE_S}`);
    const heapSnapshot = process.env.BENCH_HEAPSNAPSHOT === "1";
    const variants =
      process.env.BENCH_NODE_OPTIONS !== undefined
        ? [process.env.BENCH_NODE_OPTIONS]
        : ["--max-old-space-size=256", "--max-old-space-size=256 --max-semi-space-size=4", ""];
    const runs: GateMemory[] = [];
    const failures: { nodeOptions: string; error: string }[] = [];
    for (const nodeOptions of variants) {
      process.stderr.write(`backup-gate serve with NODE_OPTIONS=${JSON.stringify(nodeOptions)}: waiting for /readyz, then ${settleMs / 1000} s settling\n`);
      try {
        runs.push(await measureGate(target, script, { root, nodeOptions, settleMs, heapSnapshot }));
      } catch (e) {
        // An out-of-memory gate is a figure too; the filled control plane stays usable.
        failures.push({ nodeOptions, error: (e as Error).message.split("\n").slice(0, 12).join("\n") });
      }
    }
    console.log(
      cp
        ? `real kube-apiserver: ${total} pods + ${total} PVCs (${Math.ceil(total / PER_NAMESPACE)} namespaces), ${writesTotal} writes in ${Math.round(fillS)} s (${Math.round(writesTotal / fillS)}/s)`
        : `real kube-apiserver filled before (${reuse}), ${total} pods + ${total} PVCs`,
    );
    console.log("");
    if (writes.length) {
      console.log("writes                    count   seconds   per second   retries");
      for (const w of writes)
        console.log(
          `${w.label.padEnd(22)} ${String(w.requests).padStart(8)} ${(w.ms / 1000).toFixed(1).padStart(9)} ${String(w.perSecond).padStart(12)} ${String(w.retries).padStart(9)}`,
        );
      console.log("");
    }
    console.log(`${"NODE_OPTIONS".padEnd(50)} ready s   peak RSS MiB   steady RSS MiB   heap used MiB   heap total MiB`);
    for (const r of runs) {
      console.log(
        `${(r.nodeOptions || "(Node defaults)").padEnd(50)} ${(r.readyMs / 1000).toFixed(1).padStart(8)} ${r.peakRssMiB.toFixed(1).padStart(14)} ${r.steadyRssMiB.toFixed(1).padStart(16)} ${r.heapUsedMiB.toFixed(1).padStart(15)} ${r.heapTotalMiB.toFixed(1).padStart(16)}`,
      );
    }
    for (const f of failures) console.log(`${(f.nodeOptions || "(Node defaults)").padEnd(50)} FAILED: ${f.error}`);
    console.log(`goal: RSS <= ${GOAL_MIB} MiB${heapSnapshot ? `; heap snapshots: ${runs.map((r) => r.heapSnapshot).join(", ")}` : ""}`);
    console.log("");
    for (const w of writes)
      console.log(
        JSON.stringify({
          bench: "rss.apiserver.writes",
          what: w.label,
          objects: total,
          requests: w.requests,
          ms: w.ms,
          per_second: w.perSecond,
          retries: w.retries,
        }),
      );
    for (const r of runs) {
      console.log(
        JSON.stringify({
          bench: "rss.apiserver.serve",
          pods: total,
          pvcs: total,
          node_options: r.nodeOptions,
          ready_ms: r.readyMs,
          peak_rss_mib: r.peakRssMiB,
          steady_rss_mib: r.steadyRssMiB,
          heap_used_mib: r.heapUsedMiB,
          heap_total_mib: r.heapTotalMiB,
          external_mib: r.externalMiB,
          goal_mib: GOAL_MIB,
          ok: r.peakRssMiB <= GOAL_MIB && r.steadyRssMiB <= GOAL_MIB,
        }),
      );
    }
    for (const f of failures)
      console.log(
        JSON.stringify({ bench: "rss.apiserver.serve", pods: total, pvcs: total, node_options: f.nodeOptions, error: f.error, goal_mib: GOAL_MIB, ok: false }),
      );
    if (cp && process.env.BENCH_KEEP === "1") {
      process.stderr.write(`control plane kept until Ctrl-C: BENCH_KUBECONFIG=${cp.kubeconfigPath}\n`);
      await new Promise<void>((r) => {
        process.once("SIGINT", r);
        process.once("SIGTERM", r);
      });
    }
  } finally {
    await cp?.stop();
  }
}

// ---- source: a synthetic list/watch server ----

/** An object as the API server would list it: metadata it adds, defaults, status. */
function served(i: number, kind: "pod" | "pvc"): object {
  const body = kind === "pod" ? podBody(i) : pvcBody(i);
  const meta = {
    ...body.metadata,
    namespace: nsOf(i),
    uid: idOf(i, kind),
    resourceVersion: String(1000 + i),
    creationTimestamp: "2026-01-01T00:00:00Z",
    managedFields: [
      {
        manager: "kube-controller-manager",
        operation: "Update",
        apiVersion: "v1",
        time: "2026-01-01T00:00:00Z",
        fieldsType: "FieldsV1",
        fieldsV1: {
          "f:metadata": { "f:labels": Object.fromEntries(Object.keys(body.metadata?.labels ?? {}).map((k) => [`f:${k}`, {}])) },
          "f:spec": { "f:volumes": {} },
        },
      },
    ],
  };
  if (kind === "pvc") return { ...body, metadata: meta, status: pvcStatus() };
  return {
    ...body,
    metadata: meta,
    spec: { ...body.spec, restartPolicy: "Always", dnsPolicy: "ClusterFirst", schedulerName: "default-scheduler", terminationGracePeriodSeconds: 30 },
    status: { ...podStatus(i), qosClass: "Burstable" },
  };
}

async function withSyntheticServer(total: number): Promise<Record<string, number>> {
  const namespaces = Math.ceil(total / PER_NAMESPACE);
  const collections: Record<string, { count: number; item: (i: number) => object }> = {
    "/api/v1/pods": { count: total, item: (i) => served(i, "pod") },
    "/api/v1/persistentvolumeclaims": { count: total, item: (i) => served(i, "pvc") },
    "/api/v1/namespaces": {
      count: namespaces + 1,
      item: (i) => ({ metadata: { name: i === namespaces ? "velero" : `team-${i}`, uid: `ns-${i}`, resourceVersion: "5" }, status: { phase: "Active" } }),
    },
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
    res.end(
      JSON.stringify({ kind: "List", apiVersion: "v1", metadata: { resourceVersion: "999999", ...(to < c.count ? { continue: String(to) } : {}) }, items }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "synthetic", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "c", cluster: "synthetic", user: "u" }],
    currentContext: "c",
  });
  const dir = join(root, "node_modules", ".cache", "backup-gate-bench");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "synthetic.kubeconfig");
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
  const total = Number(process.env.BENCH_OBJECTS ?? 100_000);
  if (!Number.isInteger(total) || total < 1) throw new Error(`BENCH_OBJECTS must be a positive integer, not ${process.env.BENCH_OBJECTS}`);
  if (process.env.BENCH_SOURCE === "synthetic") {
    const r = await withSyntheticServer(total);
    console.log(`source synthetic: cache synced ${r.pods} pods + ${r.pvcs} PVCs in ${r.syncMs} ms`);
    console.log(`RSS after sync and GC: ${r.rssMiB} MiB (heap used ${r.heapUsedMiB} MiB; peak RSS while listing ${r.peakRssMiB} MiB); goal <= ${GOAL_MIB} MiB`);
    console.log(
      JSON.stringify({
        bench: "rss.synthetic.cache",
        ...r,
        goalMiB: GOAL_MIB,
        ok: (r.rssMiB ?? Infinity) <= GOAL_MIB && (r.peakRssMiB ?? Infinity) <= GOAL_MIB,
      }),
    );
  } else {
    await withApiServer(total);
  }
}

await main();
