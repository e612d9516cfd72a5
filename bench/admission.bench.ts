// Benchmark of the admission webhooks over real HTTPS: the webhook server (self-managed
// certificates) in a child process, fed a view of 1,000 namespaces with 50,000 pods (each with
// a bound PVC and PV) and 10,000 backups; autocannon in this process sends mutating CREATE
// reviews (every one a new backup name, so the candidate's scope is always computed) at a
// fixed rate of 200 and then 1,000 requests per second over keep-alive connections.
//
// Run with `npx tsx bench/admission.bench.ts` (optional: DURATION=seconds, default 15;
// CONNECTIONS=comma-separated counts, default 2,20). Prints a table and one JSON line per rate
// and connection count. Goal (design): p99 <= 5 ms at 200 req/s.
//
// autocannon paces each of its connections on its own timer, and the latency it reports grows
// with the connection count on two shared cores while the server's own figure does not (same
// server, 200/s: p99 9 ms with 2 connections, 100 ms with 20, 247 ms with 100). The API server's
// Go client reuses idle keep-alive connections, so at 200 reviews/s of about 2 ms each it keeps
// one or two busy: 2 is the realistic count, 20 shows the load generator's own share.
//
// Each row is measured twice: against the gate ("gate"), and against a server in the same
// process with the same TLS and HTTP stack whose handler answers at once ("floor"). The floor
// is what this machine, the network stack and the load generator cost without the gate: at a
// low rate the processes sleep between requests, and waking them shows in the tail.

import { fork, type ChildProcess } from "node:child_process";
import Fastify from "fastify";
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { MemoryClusterCache, StaticPolicySource } from "../src/admission/memory.js";
import { createWebhookServer } from "../src/admission/server.js";
import type { BackupInfo } from "../src/core/model.js";
import { policySchema } from "../src/core/policy.js";
import { ClusterView } from "../src/core/view.js";
import { createMetrics } from "../src/metrics/metrics.js";
import { createLogger } from "../src/service/log.js";
import { SelfManagedTls } from "../src/tls/selfManaged.js";

const NAMESPACES = 1_000;
const PODS_PER_NAMESPACE = 50; // 50,000 pods, one PVC (and PV) each
const APPS_PER_NAMESPACE = 10;
const BACKUPS = 10_000;
const IN_FLIGHT = 4;
const RATES = [200, 1_000];
const CONNECTIONS = (process.env.CONNECTIONS ?? "2,20").split(",").map(Number);
const DURATION_S = Number(process.env.DURATION ?? 15);
const T0 = Date.parse("2026-01-01T00:00:00Z");
const nsName = (i: number) => `team-${String(i).padStart(4, "0")}`;

// ---- the server (child process) ----

function buildView(): ClusterView {
  const view = new ClusterView();
  view.setNamespace({ name: "velero", labels: {}, annotations: {}, terminating: false });
  for (let n = 0; n < NAMESPACES; n++) {
    const namespace = nsName(n);
    view.setNamespace({ name: namespace, labels: {}, annotations: {}, terminating: false });
    for (let i = 0; i < PODS_PER_NAMESPACE; i++) {
      const claim = `data-${i}`;
      const pv = `pv-${namespace}-${claim}`;
      const app = `app-${i % APPS_PER_NAMESPACE}`;
      view.setPvc({ namespace, name: claim, labels: { app }, annotations: {}, phase: "Bound", volumeName: pv, storageClassName: "standard", deleting: false });
      view.setPv({ name: pv, labels: {}, annotations: {}, capacity: "10Gi", storageClassName: "standard", claimRef: { namespace, name: claim }, type: "csi", csi: { driver: "ebs.csi.aws.com", volumeAttributes: {} }, deleting: false });
      view.setPod({
        namespace, name: `${app}-${i}`, labels: { app },
        annotations: i % 5 === 0 ? { "pre.hook.backup.velero.io/command": "[\"/bin/sync\"]" } : {},
        phase: "Running", nodeName: `node-${i % 50}`, deleting: false,
        volumes: [{ name: "data", type: "persistentVolumeClaim", claimName: claim }, { name: "tmp", type: "emptyDir" }],
      });
    }
  }
  return view;
}

function buildBackups(): BackupInfo[] {
  const backups: BackupInfo[] = [];
  const add = (name: string, spec: Record<string, unknown>, minute: number, phase: string, labels: Record<string, string> = {}) => {
    backups.push({
      namespace: "velero", name, uid: `uid-${name}`, resourceVersion: "1", labels, annotations: {},
      creationTimestamp: new Date(T0 + minute * 60_000).toISOString(),
      spec, specHash: createHash("sha256").update(JSON.stringify(spec)).digest("hex").slice(0, 16), phase,
    });
  };
  for (let i = 0; i < 3; i++) add(`all-${i}`, { includedNamespaces: ["*"], snapshotVolumes: true }, 60 + i * 120, "Queued", { "velero.io/schedule-name": `dr-${i}` });
  for (let i = 0; backups.length < BACKUPS; i++) {
    const namespace = nsName(i % NAMESPACES);
    const phase = i < IN_FLIGHT ? "InProgress" : i % 10 < 7 ? "Completed" : i % 3 === 0 ? "Queued" : "New";
    if (i % 2 === 0) add(`ns-${i}`, { includedNamespaces: [namespace], snapshotVolumes: true }, i % 600, phase, { "velero.io/schedule-name": `ns-${namespace}` });
    else add(`app-${i}`, { includedNamespaces: [namespace], labelSelector: { matchLabels: { app: `app-${i % APPS_PER_NAMESPACE}` } } }, i % 600, phase);
  }
  return backups;
}

async function serve(): Promise<void> {
  const t = performance.now();
  const view = buildView();
  const backups = buildBackups();
  const cache = new MemoryClusterCache(view, backups);
  const tls = new SelfManagedTls({ extraSans: ["127.0.0.1"] });
  await tls.start();
  const metrics = createMetrics();
  const server = await createWebhookServer({
    tls, cache, policy: new StaticPolicySource(policySchema.parse({ maxConcurrentBackups: 8 })), metrics, log: createLogger("warn"), timeoutMs: 1000,
  });
  const { port } = await server.listen();
  const floor = Fastify({ https: { key: tls.current().key, cert: tls.current().cert }, logger: false, keepAliveTimeout: 60_000 });
  floor.post("/mutate-backups", async (req) => ({
    apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: { uid: (req.body as { request: { uid: string } }).request.uid, allowed: true },
  }));
  await floor.listen({ host: "127.0.0.1", port: 0 });
  const floorPort = (floor.server.address() as { port: number }).port;
  const built = performance.now();
  await server.engine.ensureBase();
  process.send?.({
    port, floorPort, ca: tls.current().ca, buildMs: built - t, indexMs: performance.now() - built,
    heapMb: process.memoryUsage().heapUsed / 2 ** 20, queued: backups.filter((b) => b.phase === "Queued" || b.phase === "New").length,
  });
  process.on("message", async (m: { kind: string }) => {
    if (m.kind === "stats") {
      const h = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === "backup_gate_admission_duration_seconds");
      process.send?.({ kind: "stats", histogram: h?.values ?? [] });
      return;
    }
    await server.close();
    await floor.close();
    await tls.stop();
    process.exit(0);
  });
}

// ---- the load (this process) ----

interface AutocannonResult {
  latency: { p50: number; p99: number; max: number; average: number };
  requests: { average: number; total: number };
  errors: number; timeouts: number; non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;

function reviewBody(seq: number): string {
  const n = seq % NAMESPACES;
  const kind = seq % 4;
  const spec = kind === 0 ? { includedNamespaces: [nsName(n)], snapshotVolumes: true }
    : kind === 1 ? { includedNamespaces: [nsName(n)], labelSelector: { matchLabels: { app: `app-${seq % APPS_PER_NAMESPACE}` } } }
      : kind === 2 ? { includedNamespaces: [nsName(n), nsName((n + 1) % NAMESPACES)], snapshotVolumes: false }
        : { includedNamespaces: [nsName(n)], defaultVolumesToFsBackup: true };
  const name = `bench-${process.pid}-${seq}`;
  return JSON.stringify({
    apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview",
    request: {
      uid: `u-${seq}`, kind: { group: "velero.io", version: "v1", kind: "Backup" }, resource: { group: "velero.io", version: "v1", resource: "backups" },
      name, namespace: "velero", operation: "CREATE", userInfo: { username: "bench" },
      object: { apiVersion: "velero.io/v1", kind: "Backup", metadata: { name, namespace: "velero" }, spec },
      oldObject: null, dryRun: false,
    },
  });
}

interface Ready { port: number; floorPort: number; ca: string; buildMs: number; indexMs: number; heapMb: number; queued: number }

async function main(): Promise<void> {
  const require = createRequire(import.meta.url);
  const autocannon = require("autocannon") as Autocannon;
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ["--serve"], { execArgv: process.execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the server did not start within 300 s")), 300_000);
    child.once("message", (m) => { clearTimeout(timer); resolve(m as Ready); });
    child.once("exit", (code) => reject(new Error(`the server exited (${code})`)));
  });
  const round = (x: number) => Math.round(x * 100) / 100;
  console.log(`view: ${NAMESPACES} namespaces, ${NAMESPACES * PODS_PER_NAMESPACE} pods, PVCs and PVs; ${BACKUPS} backups (${IN_FLIGHT} in flight, ${ready.queued} queued); ` +
    `built in ${round(ready.buildMs)} ms, admission index in ${round(ready.indexMs)} ms; server heap ${round(ready.heapMb)} MiB`);

  // The server's own view: its admission_duration histogram (bucket bounds, so coarse),
  // which leaves out the client, the network stack and TLS framing.
  type Bucket = { value: number; labels: Record<string, string | number>; metricName?: string };
  const histogram = () => new Promise<Bucket[]>((resolve) => {
    child.once("message", (m) => resolve((m as { histogram: Bucket[] }).histogram));
    child.send({ kind: "stats" });
  });
  const serverQuantiles = (before: Bucket[], after: Bucket[]) => {
    const cum = (hs: Bucket[]) => new Map(hs.filter((b) => b.metricName?.endsWith("_bucket")).map((b) => [String(b.labels.le), b.value]));
    const a = cum(after), b = cum(before);
    const les = [...a.keys()].sort((x, y) => (x === "+Inf" ? 1 : y === "+Inf" ? -1 : Number(x) - Number(y)));
    const total = (a.get("+Inf") ?? 0) - (b.get("+Inf") ?? 0);
    const at = (q: number) => {
      for (const le of les) if ((a.get(le) ?? 0) - (b.get(le) ?? 0) >= q * total) return le === "+Inf" ? Infinity : Number(le) * 1000;
      return Infinity;
    };
    return { count: total, p50: at(0.5), p99: at(0.99) };
  };

  let seq = 0;
  const load = (port: number, connections: number, rate: number, duration: number) => autocannon({
    url: `https://127.0.0.1:${port}`, connections, overallRate: rate, duration, timeout: 10,
    requests: [{ method: "POST", path: "/mutate-backups", headers: { "content-type": "application/json" }, setupRequest: (req: Record<string, unknown>) => ({ ...req, body: reviewBody(seq++) }) }],
  });
  type Target = "gate" | "floor";
  const results: { target: Target; rate: number; connections: number; r: AutocannonResult; server?: { count: number; p50: number; p99: number } }[] = [];
  for (const connections of CONNECTIONS) for (const rate of RATES) {
    for (const target of ["floor", "gate"] as const) {
      const port = target === "gate" ? ready.port : ready.floorPort;
      await load(port, 10, 100, 3); // warm-up: connections, TLS sessions, JIT
      const before = target === "gate" ? await histogram() : undefined;
      const r = await load(port, connections, rate, DURATION_S);
      results.push({ target, rate, connections, r, ...(before ? { server: serverQuantiles(before, await histogram()) } : {}) });
    }
  }
  child.send({ kind: "stop" });

  console.log("");
  console.log("target  rate/s  conns  achieved/s   requests   p50 ms   p99 ms   max ms   errors  non2xx  timeouts   server p50 <=  server p99 <=");
  for (const { target, rate, connections, r, server } of results) {
    const serverCell = (v: number | undefined) => (v === undefined ? "-" : `${v} ms`);
    console.log(`${target.padEnd(6)} ${String(rate).padStart(7)} ${String(connections).padStart(6)} ${round(r.requests.average).toFixed(1).padStart(11)} ${String(r.requests.total).padStart(10)} ${r.latency.p50.toFixed(2).padStart(8)} ${r.latency.p99.toFixed(2).padStart(8)} ${r.latency.max.toFixed(2).padStart(8)} ${String(r.errors).padStart(8)} ${String(r.non2xx).padStart(7)} ${String(r.timeouts).padStart(9)} ${serverCell(server?.p50).padStart(15)} ${serverCell(server?.p99).padStart(14)}`);
  }
  console.log("(latency: autocannon, end to end over HTTPS keep-alive; floor: the same stack answering at once; server: the gate's own admission_duration histogram, bucket upper bounds)");
  console.log("");
  for (const { target, rate, connections, r, server } of results) {
    console.log(JSON.stringify({
      bench: target === "gate" ? "admission.https.mutate" : "admission.https.floor", rate, connections, achieved_rps: round(r.requests.average), requests: r.requests.total,
      ms_p50: r.latency.p50, ms_p99: r.latency.p99, ms_max: r.latency.max, errors: r.errors, non2xx: r.non2xx, timeouts: r.timeouts,
      ...(server ? { server_ms_p50_le: server.p50, server_ms_p99_le: server.p99 } : {}),
      backups: BACKUPS, pods: NAMESPACES * PODS_PER_NAMESPACE, duration_s: DURATION_S,
    }));
  }
}

if (process.argv.includes("--serve")) void serve();
else await main();
