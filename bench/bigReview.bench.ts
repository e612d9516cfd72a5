// One review whose Backup lists N namespaces (default 200,000; NAMES=short for base-36 names)
// against a view of NS namespaces (default 50), sent over HTTPS to the webhook server in this
// process: validate, mutate, validate; prints each answer's wall time (client included) and the
// longest event-loop block meanwhile (what every other review would have waited), and a JSON line.
// Run: NS=1000 npx tsx bench/bigReview.bench.ts. Profile: node --cpu-prof --import tsx ...
// Figures (NS=1000, N=200,000, this CI machine): before the namespace lists resolved through a
// Set, 5.0 s for the first review, then 0.5 s (50 namespaces: 1.1 s); with the Set, 120 ms a
// review; with the size limit the CREATE is refused after parsing: 100-160 ms wall, the longest
// event-loop block 80-120 ms (client and server share this process and two cores with a Go
// build), of which the server's parse of the 2.3 MB body (JSON.parse and the prototype-key walk)
// is about 55 ms in a CPU profile: the floor for any body that size.
// OP=UPDATE (a move into ReadyToStart, judged in full; NAMES=short so that old and new object
// fit the 4 MiB body limit, 2.7 MB): 130-140 ms longest block warm, 410 ms cold. At the limit
// (N=10000): CREATE 8-10 ms warm, UPDATE 9-17 ms.
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { request, Agent } from "node:https";
import { FakeClusterCache } from "../test/support/fakes/clusterCache.js";
import { StaticPolicySource } from "../test/support/fakes/policySource.js";
import { createWebhookServer } from "../src/admission/server.js";
import { DEFAULT_POLICY } from "../src/core/policy.js";
import { ClusterView } from "../src/core/view.js";
import { createMetrics } from "../src/metrics/metrics.js";
import { createLogger } from "../src/logging/logger.js";
import { SelfManagedTls } from "../src/tls/selfManaged.js";

const NS = Number(process.env.NS ?? 50);
const N = Number(process.env.N ?? 200_000);
const view = new ClusterView();
for (let i = 0; i < NS; i++) view.setNamespace({ name: `team-${i}`, labels: {}, annotations: {}, terminating: false });
view.setNamespace({ name: "velero", labels: {}, annotations: {}, terminating: false });
view.synced = true;
const cache = new FakeClusterCache(view, []);
const tls = new SelfManagedTls({ extraSans: ["127.0.0.1"] });
await tls.start();
const server = await createWebhookServer({ tls, cache, policy: new StaticPolicySource(DEFAULT_POLICY), metrics: createMetrics(), log: createLogger("warn") });
const { port } = await server.listen();
await server.engine.ensureBase();
const agent = new Agent({ ca: tls.current().ca, keepAlive: true });
/** OP=UPDATE sends a move from Queued into ReadyToStart (judged in full), else a CREATE. */
function body(n: number, op = process.env.OP ?? "CREATE") {
  const includedNamespaces = Array.from({ length: n }, (_, i) => (process.env.NAMES === "short" ? i.toString(36) : `ns-${i}`));
  const name = `big-${n}-${Math.random().toString(36).slice(2, 7)}`;
  const backup = (phase: string) => ({
    apiVersion: "velero.io/v1",
    kind: "Backup",
    metadata: { name, namespace: "velero" },
    spec: { includedNamespaces },
    status: { phase },
  });
  return JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "u1",
      kind: { group: "velero.io", version: "v1", kind: "Backup" },
      resource: { group: "velero.io", version: "v1", resource: "backups" },
      name,
      namespace: "velero",
      operation: op,
      userInfo: { username: "x" },
      object: op === "UPDATE" ? backup("ReadyToStart") : backup(""),
      ...(op === "UPDATE" ? { oldObject: backup("Queued") } : {}),
    },
  });
}
function post(path: string, b: string): Promise<{ ms: number; status: number; text: string }> {
  const t = performance.now();
  return new Promise((res, rej) => {
    const req = request({ host: "127.0.0.1", port, path, method: "POST", agent, headers: { "content-type": "application/json" } }, (r) => {
      let text = "";
      r.on("data", (d) => (text += d));
      r.on("end", () => res({ ms: performance.now() - t, status: r.statusCode ?? 0, text: text.slice(0, 300) }));
    });
    req.on("error", rej);
    req.end(b);
  });
}
const rows: { path: string; bytes: number; wallMs: number; maxLoopBlockMs: number; allowed: boolean }[] = [];
for (const path of process.env.OP === "UPDATE"
  ? ["/validate-backups", "/validate-backups", "/validate-backups"]
  : ["/validate-backups", "/mutate-backups", "/validate-backups"]) {
  const b = body(N);
  // The longest the event loop was held while this review was sent and answered: what every other review waited.
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const r = await post(path, b);
  h.disable();
  const row = { path, bytes: b.length, wallMs: Math.round(r.ms), maxLoopBlockMs: Math.round(h.max / 1e6), allowed: r.text.includes('"allowed":true') };
  rows.push(row);
  console.log(path, `bytes=${row.bytes}`, `wall=${row.wallMs} ms`, `longest event-loop block=${row.maxLoopBlockMs} ms`, r.status, r.text.slice(0, 160));
}
console.log(JSON.stringify({ bench: "bigReview", operation: process.env.OP ?? "CREATE", namespaces: NS, listed: N, rows }));
await server.close();
await tls.stop();
process.exit(0);
