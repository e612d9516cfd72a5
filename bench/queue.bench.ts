// The queue controller on the real kube-apiserver, no Velero: the bench plays Velero's part.
//
//   npx tsx bench/queue.bench.ts
//   BENCH_BACKUPS=200 BENCH_RUN_MS=50-200 BENCH_DEADLINE_S=540 npx tsx bench/queue.bench.ts
//
// Setup: control plane + `backup-gate serve` (child process, leader), policy
// `maxConcurrentBackups: 4`, `priorities: {agingSeconds: 0}`, level ItemBlock (the default).
// Namespace `shop` holds a pod mounting a PVC bound to a PV (plus a second such workload);
// every benched Backup includes `shop` with Velero's defaults, so each snapshots both PVCs:
// all backups share an exclusive unit and conflict pairwise, and the queue drains ONE AT A
// TIME (the limit of 4 never binds). A blocker backup is created InProgress first, so all N
// backups are Queued (none promoted) before the drain starts.
//
// 1. Writes per dequeue. After the gate has queued all N and gone quiet, snapshot the API
//    server's `apiserver_request_total{group="velero.io",resource="backups"}` write verbs
//    (POST, PUT, PATCH, DELETE, APPLY) and the gate's `backup_gate_api_writes_total`. Drain:
//    the bench completes the blocker; on each ReadyToStart watch event it PUTs InProgress,
//    waits BENCH_RUN_MS (uniform, seeded), PUTs Completed. When all N are Completed and the
//    gate is quiet, snapshot again. Gate writes = API server writes in the window minus the
//    bench's own writes (counted client-side, 409s included); cross-checked against the gate's
//    own counter. Velero's queue, for the same sequence: each dequeue writes the promoted
//    backup and the position of every backup still queued: sum_k (1 + remaining_k), with
//    remaining_k counted from the watch at each promotion.
// 2. Dequeue latency: watch-event time of the bench's Completed update of the running backup
//    to the watch-event time of the next backup's ReadyToStart (p50, p99 over the drain).
//
// The machine is shared (2 cores, other engineers' runs): figures are noisy, latency most.
//
// Measured (N = 1000, quiet 2-core machine, ~5 min in all): gate writes in the drain 1999 =
// 1000 promote + 999 position, 1.999 per dequeue (API server and the gate's own counter agree;
// no 409s); Velero's queue for the same sequence 500,500 (500.5 per dequeue). Dequeue latency
// p50 10.1 ms, p99 18.6 ms, max 34.5 ms, flat in the queue length (11.7 / 22.7 / 53.5 ms at
// the landing before, with the plan's older data layout). It was p99 443 ms and grew with
// the queue: a profile of the gate showed a new TLS connection per API write (client-node makes
// an https.Agent per request; see src/kube/apiClient.ts) and the scope cache sweeping every
// entry after every plan.

import { performance } from "node:perf_hooks";
import { request } from "node:https";
import { startControlPlane, type ControlPlane } from "../test/support/controlPlane.js";
import { startGate, type GateProcess } from "../test/support/gate.js";
import { backupBody } from "../test/support/builders.js";
import { clients, createNamespace, createPod, createWorkload, VELERO_GROUP, VELERO_VERSION, type VeleroObject } from "../test/support/objects.js";
import { prng } from "../test/support/chaos.js";
import { VeleroPlayer } from "../test/support/playVelero.js";
import { sleep, waitFor } from "../test/support/wait.js";
import { startWatch, type StartedWatch } from "../test/support/watch.js";

const N = Number(process.env.BENCH_BACKUPS ?? 1000);
const [RUN_MIN, RUN_MAX] = (process.env.BENCH_RUN_MS ?? "50-200").split("-").map(Number) as [number, number];
const DEADLINE_MS = Number(process.env.BENCH_DEADLINE_S ?? 570) * 1000;
const CREATE_CONCURRENCY = 20;
const VELERO = "velero";
const GATE_NS = "backup-gate";
const POLICY = "maxConcurrentBackups: 4\npriorities: {agingSeconds: 0}\n";
const GOAL = 2;
const WRITE_VERBS = ["POST", "PUT", "PATCH", "DELETE", "APPLY"];
const QUEUED = new Set(["", "New", "Queued"]);

const t0 = performance.now();
const deadline = t0 + DEADLINE_MS;
const say = (msg: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);

// Seeded PRNG (mulberry32) for run times, so runs are comparable.
const rand = prng(0x9e3779b9);

// ---- metrics ----

async function apiserverMetrics(cp: ControlPlane): Promise<string> {
  const opts: import("node:https").RequestOptions = {};
  await cp.kubeConfig.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    request(new URL("/metrics", cp.host), opts, (r) => {
      let t = "";
      r.on("data", (d) => (t += d));
      r.on("end", () => (r.statusCode === 200 ? resolve(t) : reject(new Error(`GET /metrics: ${r.statusCode}`))));
    })
      .on("error", reject)
      .end();
  });
}

function labels(s: string): Record<string, string> {
  return Object.fromEntries([...s.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
}

/** Sums a counter's samples, grouped by one label, over samples matching `where`. */
function sumBy(text: string, metric: string, by: string, where: (l: Record<string, string>) => boolean): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${metric}{`)) continue;
    const close = line.lastIndexOf("}");
    const l = labels(line.slice(metric.length + 1, close));
    if (!where(l)) continue;
    const key = l[by] ?? "";
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(close + 1).trim()));
  }
  return out;
}

/** An unlabelled sample's value (0 when absent). */
function scalar(text: string, metric: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${metric} `));
  return line ? Number(line.slice(metric.length + 1).trim()) : 0;
}

interface Snapshot {
  /** API server: writes on velero.io backups, by verb. */
  apiserver: Map<string, number>;
  /** API server: writes on velero.io backups answered 409, by verb. */
  apiserver409: Map<string, number>;
  /** Gate: backup_gate_api_writes_total by kind and result ("kind/result"). */
  gate: Map<string, number>;
  benchWrites: number;
  /** Gate: backup_gate_plan_duration_seconds sum and count. */
  planSum: number;
  planCount: number;
  at: number;
}

const diff = (a: Map<string, number>, b: Map<string, number>) => {
  const out = new Map<string, number>();
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    const d = (b.get(k) ?? 0) - (a.get(k) ?? 0);
    if (d !== 0) out.set(k, d);
  }
  return out;
};
const total = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0);
const show = (m: Map<string, number>) =>
  [...m]
    .sort()
    .map(([k, v]) => `${k}=${v}`)
    .join(" ") || "none";

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

// ---- the bench ----

async function main(): Promise<number> {
  const cp = await startControlPlane({ name: "queue-bench" });
  let gate: GateProcess | undefined;
  let watch: StartedWatch | undefined;
  const c = clients(cp.kubeConfig);
  try {
    say(`control plane up (${cp.dir})`);
    for (const ns of [VELERO, GATE_NS, "shop", "web", "tools"]) await createNamespace(c, ns);
    await c.core.createNamespacedConfigMap({ namespace: GATE_NS, body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": POLICY } } });
    await createWorkload(c, "shop", "db");
    await createWorkload(c, "shop", "cache");
    await createWorkload(c, "web", "uploads");
    await createPod(c, "web", "nginx", { labels: { app: "nginx" } });
    await createPod(c, "tools", "toolbox", { labels: { app: "toolbox" } });

    gate = await startGate(cp, { identity: "bench-gate", register: true });
    const g = gate;
    const gateMetrics = async () => (await g.get("/metrics")).body;
    await waitFor(
      "the gate to lead with a synced view",
      async () => {
        const m = await gateMetrics();
        return /^backup_gate_leader 1$/m.test(m) && /^backup_gate_view_synced 1$/m.test(m);
      },
      { timeoutMs: 60_000 },
    );
    say(`gate leading (${gate.process.logFile})`);

    // ---- the watch: every phase change, with the time the bench received it ----
    const phase = new Map<string, string>();
    let lastRv = "";
    const readyAt: { name: string; t: number; remaining: number }[] = [];
    const completedAt: { name: string; t: number }[] = [];
    let draining = false;
    let onReady: (o: VeleroObject) => void = () => {};
    const onEvent = (type: string, o: VeleroObject) => {
      const t = performance.now();
      if (type === "BOOKMARK" || type === "ERROR") return;
      lastRv = o.metadata.resourceVersion ?? lastRv;
      const name = o.metadata.name;
      const before = phase.get(name);
      const now = type === "DELETED" ? undefined : ((o.status?.phase as string | undefined) ?? "");
      if (now === undefined) {
        phase.delete(name);
        return;
      }
      phase.set(name, now);
      if (!draining || before === now) return;
      if (now === "Completed") completedAt.push({ name, t });
      if (now === "ReadyToStart") {
        let remaining = 0;
        for (const p of phase.values()) if (QUEUED.has(p)) remaining++;
        readyAt.push({ name, t, remaining });
        onReady(o);
      }
    };
    const path = `/apis/velero.io/v1/namespaces/${VELERO}/backups`;
    watch = await startWatch(cp.kubeConfig, path, {}, onEvent);
    const keepWatching = async () => {
      if (watch && watch.ended()) {
        say(`watch ended (${String(watch.error())}); resuming from ${lastRv}`);
        watch = await startWatch(cp.kubeConfig, path, { resourceVersion: lastRv, allowWatchBookmarks: true }, onEvent);
      }
    };

    // ---- the bench's own writes (Velero's role), counted client-side ----
    let creates = 0;
    const api = c.custom;
    const player = new VeleroPlayer(c, { namespace: VELERO, runMs: [RUN_MIN, RUN_MAX], rand });
    const benchWrites = () => creates + player.writes;
    const create = async (body: VeleroObject) => {
      creates++;
      return (await api.createNamespacedCustomObject({
        group: VELERO_GROUP,
        version: VELERO_VERSION,
        namespace: VELERO,
        plural: "backups",
        body,
      })) as VeleroObject;
    };

    // ---- fill the queue ----
    const blocker = await create(backupBody("blocker", VELERO, { includedNamespaces: ["shop"], status: { phase: "InProgress" } }));
    const names = Array.from({ length: N }, (_, i) => `q-${String(i).padStart(4, "0")}`);
    const tFill = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CREATE_CONCURRENCY }, async () => {
        while (next < names.length) {
          const name = names[next++]!;
          await create(backupBody(name, VELERO, { includedNamespaces: ["shop"] }));
        }
      }),
    );
    say(`created ${N} backups in ${((performance.now() - tFill) / 1000).toFixed(1)} s`);
    await waitFor(
      `the gate to queue all ${N} backups`,
      async () => {
        await keepWatching();
        return names.every((n) => phase.get(n) === "Queued");
      },
      { timeoutMs: Math.max(10_000, deadline - performance.now() - 60_000), intervalMs: 500 },
    );
    say(`all ${N} Queued after ${((performance.now() - tFill) / 1000).toFixed(1)} s`);

    // Quiet: no gate write for 3 s (late enqueues of a concurrent create burst are not the drain's).
    const quiet = async (what: string) => {
      let last = "";
      let since = performance.now();
      await waitFor(
        `the gate to go quiet ${what}`,
        async () => {
          const m = show(sumBy(await gateMetrics(), "backup_gate_api_writes_total", "kind", () => true));
          if (m !== last) {
            last = m;
            since = performance.now();
          }
          return performance.now() - since >= 3000;
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );
    };
    await quiet("after queueing");
    const isBackupWrite = (l: Record<string, string>) => l.group === "velero.io" && l.resource === "backups" && WRITE_VERBS.includes(l.verb ?? "");
    const snap = async (): Promise<Snapshot> => {
      const [a, gm] = await Promise.all([apiserverMetrics(cp), gateMetrics()]);
      const gate = new Map<string, number>();
      for (const line of gm.split("\n")) {
        if (!line.startsWith("backup_gate_api_writes_total{")) continue;
        const close = line.lastIndexOf("}");
        const l = labels(line.slice("backup_gate_api_writes_total{".length, close));
        gate.set(`${l.kind}/${l.result}`, Number(line.slice(close + 1).trim()));
      }
      return {
        apiserver: sumBy(a, "apiserver_request_total", "verb", isBackupWrite),
        apiserver409: sumBy(a, "apiserver_request_total", "verb", (l) => isBackupWrite(l) && l.code === "409"),
        gate,
        benchWrites: benchWrites(),
        at: performance.now(),
        planSum: scalar(gm, "backup_gate_plan_duration_seconds_sum"),
        planCount: scalar(gm, "backup_gate_plan_duration_seconds_count"),
      };
    };
    const fill = await snap();
    say(`before drain: apiserver backup writes ${show(fill.apiserver)}; gate ${show(fill.gate)}; bench ${fill.benchWrites}`);

    // ---- drain: play Velero ----
    draining = true;
    onReady = (o) => player.take(o);
    const tDrain = performance.now();
    await player.setPhase(blocker, "InProgress", "Completed");
    let completedAll = false;
    let lastReport = performance.now();
    while (performance.now() < deadline - 20_000) {
      await keepWatching();
      if (player.failures.length > 0) throw player.failures[0];
      const done = names.filter((n) => phase.get(n) === "Completed").length;
      if (done === N) {
        completedAll = true;
        break;
      }
      if (performance.now() - lastReport > 15_000) {
        lastReport = performance.now();
        say(`draining: ${done}/${N} completed, ${readyAt.length} promoted`);
      }
      await sleep(200);
    }
    const drainMs = performance.now() - tDrain;
    // Velero stops taking new backups: the gate then goes quiet and the counts settle.
    onReady = () => {};
    await player.idle();
    if (!completedAll) say(`DEADLINE: the drain did not finish; reporting ${readyAt.length} promotions of ${N}`);
    await quiet("after the drain").catch((e: unknown) => say(String(e)));
    const end = await snap();

    // ---- figures ----
    const apiserverDrain = diff(fill.apiserver, end.apiserver);
    const apiserver409 = diff(fill.apiserver409, end.apiserver409);
    const benchDrain = end.benchWrites - fill.benchWrites;
    const gateByApiserver = total(apiserverDrain) - benchDrain;
    const gateDrain = diff(fill.gate, end.gate);
    const gateByOwnMetric = total(gateDrain);
    const dequeues = readyAt.length;
    const veleroWrites = readyAt.reduce((s, r) => s + 1 + r.remaining, 0);
    const n = dequeues;
    const veleroClosed = n + (n * (n - 1)) / 2;

    // Each ReadyToStart against the latest Completed event before it (one in flight at a time).
    const latencies: number[] = [];
    const byLength: { remaining: number; ms: number }[] = [];
    const overlapping: string[] = [];
    const events = [...completedAt.map((e) => ({ ...e, kind: "C" as const })), ...readyAt.map((e) => ({ ...e, kind: "R" as const }))].sort((a, b) => a.t - b.t);
    let lastCompleted: number | undefined;
    for (const e of events) {
      if (e.kind === "C") {
        lastCompleted = e.t;
        continue;
      }
      if (lastCompleted === undefined) {
        overlapping.push(e.name);
        continue;
      }
      latencies.push(e.t - lastCompleted);
      byLength.push({ remaining: e.remaining, ms: e.t - lastCompleted });
      lastCompleted = undefined;
    }
    latencies.sort((a, b) => a - b);
    const p50 = quantile(latencies, 0.5);
    const p99 = quantile(latencies, 0.99);
    const r1 = (x: number) => Math.round(x * 10) / 10;
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    const band = (lo: number, hi: number) => {
      const xs = byLength
        .filter((x) => x.remaining >= lo && x.remaining < hi)
        .map((x) => x.ms)
        .sort((a, b) => a - b);
      return `${lo}-${hi - 1}: p50 ${r1(quantile(xs, 0.5))} / p99 ${r1(quantile(xs, 0.99))} ms (${xs.length})`;
    };
    const q4 = Math.ceil(N / 4);
    const plans = end.planCount - fill.planCount;
    const planMeanMs = plans > 0 ? ((end.planSum - fill.planSum) / plans) * 1000 : NaN;
    const perDequeue = dequeues > 0 ? gateByApiserver / dequeues : NaN;

    const rows: [string, string][] = [
      ["queue", `${N} backups, all including namespace shop (2 snapshotted PVCs): pairwise ItemBlock conflicts, drained one at a time`],
      ["policy", "maxConcurrentBackups: 4, agingSeconds: 0, positionUpdates.writesPerDequeue: 1 (default)"],
      [
        "drain",
        `${r1(drainMs / 1000)} s, ${dequeues} dequeues, ${completedAll ? "all Completed" : "INCOMPLETE (deadline)"}; Velero role runs ${RUN_MIN}-${RUN_MAX} ms`,
      ],
      ["apiserver backup writes in the drain", `${total(apiserverDrain)} (${show(apiserverDrain)}; 409: ${show(apiserver409)})`],
      ["  bench (Velero role) writes, client-side", `${benchDrain} (PUT; 2 per backup + the blocker's Completed)`],
      ["  gate writes = apiserver - bench", `${gateByApiserver}`],
      ["  gate's own counter (cross-check)", `${gateByOwnMetric} (${show(gateDrain)})`],
      ["gate writes per dequeue", `${r3(perDequeue)} (goal <= ${GOAL}: ${perDequeue <= GOAL ? "met" : "MISSED"})`],
      [
        "Velero's queue, same sequence",
        `${veleroWrites} writes = sum_k (1 + remaining_k); ${r1(veleroWrites / Math.max(1, dequeues))} per dequeue (closed form n + n(n-1)/2 = ${veleroClosed})`,
      ],
      [
        "dequeue latency (Completed event -> next ReadyToStart event)",
        `p50 ${r1(p50)} ms, p99 ${r1(p99)} ms, max ${r1(latencies.at(-1) ?? NaN)} ms over ${latencies.length}`,
      ],
      ["  by backups still queued", [band(3 * q4, N), band(2 * q4, 3 * q4), band(q4, 2 * q4), band(0, q4)].join("; ")],
      ["gate plans in the drain", `${plans} (${r1(plans / Math.max(1, dequeues))} per dequeue), mean ${r1(planMeanMs)} ms`],
      ["fill", `gate writes while queueing: ${show(diff(new Map(), fill.gate))}`],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    console.log(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n"));
    if (overlapping.length > 0)
      console.log(`note: ${overlapping.length} ReadyToStart events had no Completed event before them (${overlapping.slice(0, 5).join(", ")})`);
    console.log(
      JSON.stringify({
        bench: "queue.writes_per_dequeue",
        value: r3(perDequeue),
        goal: GOAL,
        dequeues,
        gate_writes: gateByApiserver,
        gate_writes_own_metric: gateByOwnMetric,
        gate_writes_by_kind: Object.fromEntries(gateDrain),
        apiserver_writes: Object.fromEntries(apiserverDrain),
        bench_writes: benchDrain,
        velero_writes: veleroWrites,
        velero_writes_per_dequeue: r3(veleroWrites / Math.max(1, dequeues)),
        backups: N,
        complete: completedAll,
      }),
    );
    console.log(
      JSON.stringify({
        bench: "queue.dequeue_latency_ms",
        p50: r1(p50),
        p99: r1(p99),
        max: r1(latencies.at(-1) ?? NaN),
        samples: latencies.length,
        plans,
        plan_mean_ms: r1(planMeanMs),
        run_ms: [RUN_MIN, RUN_MAX],
        backups: N,
      }),
    );
    console.log(`reproduce: BENCH_BACKUPS=${N} BENCH_RUN_MS=${RUN_MIN}-${RUN_MAX} npx tsx bench/queue.bench.ts`);
    return completedAll ? 0 : 1;
  } finally {
    watch?.abort();
    await gate?.stop();
    await cp.stop();
  }
}

// The bench stops by itself: a hard stop a little after the deadline, children killed on exit.
const hard = setTimeout(() => {
  say("hard deadline reached; exiting");
  process.exit(3);
}, DEADLINE_MS + 60_000);
hard.unref();
main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    say(`failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(2);
  },
);
