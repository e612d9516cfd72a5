// Benchmark of the admission webhooks over real HTTPS: the webhook server (self-managed
// certificates) in a child process, fed a view of 1,000 namespaces with 50,000 pods (each with
// a bound PVC and PV; slimmed as the cluster cache slims them) and 10,000 backups
// (bench/admissionFixture.ts); this process sends mutating CREATE reviews (every one a new backup
// name, so the candidate's scope is always computed) at a fixed rate of 200 and then 1,000
// requests per second. bench/candidate.bench.ts times the decision alone, by kind of review.
//
// Run with `npx tsx bench/admission.bench.ts` (optional: DURATION=seconds per row, default 15;
// ROUNDS, default 3; RATES, default "200,1000"; CONNECTIONS, the most keep-alive connections,
// default 8; SERVER_FLAGS, node flags for the server instead of the image's (the Dockerfile's
// ENTRYPOINT) and the Deployment's NODE_OPTIONS, e.g. "--max-old-space-size=256 --trace-gc";
// QUIET_GCS=N runs N full collections in the server before each gate round, while the gate is
// idle, as a quiet period's collections would; RETAIN_MAPS_DEFAULT=1 leaves V8's map retention
// as it is without `keepOptimizedCode`; PRETENURE=1 leaves V8's allocation-site
// pretenuring on, as it was before `disablePretenuring`; HEAP_PROFILE=FILE writes V8's sampling heap
// profile of what the server allocated from the first round on and a scavenge did not free:
// what ends up in the old generation; with HEAP_PROFILE_YOUNG=1, everything it allocated;
// SLOW=1 prints each round's stretches of reviews slower than 10 ms, timed as the server's
// --trace-gc times them; SERVER_RUNTIME=tsx runs the server under tsx, as before 2026-12-06;
// FLOOR_SPIN_US=N makes the floor's handler spin N µs before it answers, allocating nothing:
// a floor as busy per review as the gate, to tell its CPU from everything else it does;
// CONTROL_SPIN_US=N puts a second floor spinning N µs per review in the gate's place, its rows
// still named "gate" and its JSON lines "admission.https.control": with 0, how far two equal
// floors land apart on this machine, and with N, how much CPU per review the goal allows).
// Prints every round, then a table over all of a row's rounds (p50, p99 and max of every review
// sent, each round's p99, and the server process's CPU time per review: the gate's tail over the
// floor's follows its CPU per review, docs/performance.md) and one JSON line per row. Goal
// (design): p99 <= 5 ms at 200 req/s; issue 20: p99 <= the floor's + 2 ms and max <= 50 ms at 200
// and 1,000/s, every round.
//
// The server runs as `serve` does: plain JS (this file bundled by esbuild, as the image runs
// tsc's output; under tsx, the name helper it has esbuild call for every closure made was 3-4%
// of the server's CPU samples, and its loader thread a second isolate), with the image's node
// flags (no memory reducer: Dockerfile) and the Deployment's NODE_OPTIONS (its heap cap decides
// how often the old generation is collected, and a mark-compact's marking steps are what the
// tail is made of), with pretenuring off (`disablePretenuring`), keeping the maps its optimized
// code embeds (`keepOptimizedCode`), and with its heap collected once the index is built
// (`settleHeap`).
//
// The load is open: reviews leave on a fixed schedule whether or not earlier ones were
// answered, as the API server sends them when Backups are created, and each latency runs from
// the moment the review was due to leave (so a stall of the client or the server counts for
// every review it delays). undici's Pool carries them over keep-alive connections, opening
// another while all are busy, up to CONNECTIONS: the API server's client does the same, and the
// cap keeps this two-core machine from spending itself on TLS handshakes when it falls behind.
// Each target keeps its pool for the whole run, as the API server keeps its connections to a
// webhook (the gate closes one after 60 s idle; a target waits one round between its own).
// autocannon measured something else: its rate mode sends each connection's quota for the
// second back to back and then waits, and it adds coordinated-omission samples at a 1 ms
// interval (ceil(1 / rate)), which counted one slow review as several.
//
// Each row is measured against the gate ("gate") and against a server in the same process with
// the same TLS and HTTP stack whose handler answers at once ("floor"), alternating, round after
// round. The floor is what this machine, the network stack and the load generator cost
// without the gate.

import { fork, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import Fastify from "fastify";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { bundle } from "./bundle.js";
import { BACKUPS, buildBackups, buildView, IN_FLIGHT, NAMESPACES, PODS_PER_NAMESPACE, reviewBody } from "./admissionFixture.js";
import { FakeClusterCache } from "../test/support/fakes/clusterCache.js";
import { deploymentNodeOptions, imageNodeFlags } from "../test/support/imageRuntime.js";
import { StaticPolicySource } from "../test/support/fakes/policySource.js";
import { createWebhookServer } from "../src/admission/server.js";
import { policySchema } from "../src/core/policy.js";
import { createMetrics } from "../src/metrics/metrics.js";
import { disablePretenuring, keepOptimizedCode, settleHeap } from "../src/cli/v8Flags.js";
import { createLogger } from "../src/logging/logger.js";
import { SelfManagedTls } from "../src/tls/selfManaged.js";

const RATES = (process.env.RATES ?? "200,1000").split(",").map(Number);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 8);
const DURATION_S = Number(process.env.DURATION ?? 15);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const CONTROL_SPIN_US = process.env.CONTROL_SPIN_US === undefined ? undefined : Number(process.env.CONTROL_SPIN_US);
const WARM_UP_S = 3;

// ---- the server (child process) ----

async function serve(): Promise<void> {
  if (!process.env.PRETENURE) disablePretenuring();
  if (!process.env.RETAIN_MAPS_DEFAULT) keepOptimizedCode();
  const t = performance.now();
  const view = buildView();
  const backups = buildBackups();
  const cache = new FakeClusterCache(view, backups);
  const tls = new SelfManagedTls({ extraSans: ["127.0.0.1"] });
  await tls.start();
  const metrics = createMetrics();
  const server = await createWebhookServer({
    tls,
    cache,
    policy: new StaticPolicySource(policySchema.parse({ maxConcurrentBackups: 8 })),
    metrics,
    log: createLogger("warn"),
    timeoutMs: 1000,
  });
  const { port } = await server.listen();
  const floor = Fastify({ https: { key: tls.current().key, cert: tls.current().cert }, logger: false, keepAliveTimeout: 60_000 });
  const spinMs = Number(process.env.FLOOR_SPIN_US ?? 0) / 1000;
  floor.post("/mutate-backups", floorHandler(spinMs));
  await floor.listen({ host: "127.0.0.1", port: 0 });
  const floorPort = (floor.server.address() as { port: number }).port;
  const control = CONTROL_SPIN_US === undefined ? undefined : await spinningFloor(tls.current(), CONTROL_SPIN_US / 1000);
  const built = performance.now();
  await server.engine.ensureBase();
  settleHeap();
  process.send?.({
    port: control ? (control.server.address() as { port: number }).port : port,
    floorPort,
    ca: tls.current().ca,
    buildMs: built - t,
    indexMs: performance.now() - built,
    heapMb: process.memoryUsage().heapUsed / 2 ** 20,
    origin: performance.timeOrigin,
    queued: backups.filter((b) => b.phase === "Queued" || b.phase === "New").length,
  });
  const profile = process.env.HEAP_PROFILE ? await oldGenerationProfile() : undefined;
  process.on("message", (m: { kind: string }) => void onMessage(m));
  async function onMessage(m: { kind: string }): Promise<void> {
    if (m.kind === "cpu") {
      process.send?.({ kind: "cpu", usage: process.cpuUsage() });
      return;
    }
    if (m.kind === "stats") {
      await profile?.start();
      for (let i = 0; i < Number(process.env.QUIET_GCS ?? 0); i++) settleHeap(); // one full collection each
      const h = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === "backup_gate_admission_duration_seconds");
      process.send?.({ kind: "stats", histogram: h?.values ?? [] });
      return;
    }
    await profile?.stop(process.env.HEAP_PROFILE as string);
    await server.close();
    await floor.close();
    await control?.close();
    await tls.stop();
    process.exit(0);
  }
}

/** A row's JSON name: the gate, the floor, or the spinning floor in the gate's place (CONTROL_SPIN_US). */
function rowName(target: "floor" | "gate"): { bench: string; control_spin_us?: number } {
  if (target === "floor") return { bench: "admission.https.floor" };
  return CONTROL_SPIN_US === undefined ? { bench: "admission.https.mutate" } : { bench: "admission.https.control", control_spin_us: CONTROL_SPIN_US };
}

/** The floor's handler: answers at once, after spinning `spinMs` when asked to (allocating nothing). */
function floorHandler(spinMs: number) {
  return async (req: { body: unknown }) => {
    if (spinMs > 0) for (const t = performance.now(); performance.now() - t < spinMs;);
    return {
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid: (req.body as { request: { uid: string } }).request.uid, allowed: true },
    };
  };
}

/** CONTROL_SPIN_US: a second floor, in place of the gate, spinning `spinMs` per review. */
async function spinningFloor(m: { key: string; cert: string }, spinMs: number) {
  const app = Fastify({ https: { key: m.key, cert: m.cert }, logger: false, keepAliveTimeout: 60_000 });
  app.post("/mutate-backups", floorHandler(spinMs));
  await app.listen({ host: "127.0.0.1", port: 0 });
  return app;
}

/** V8's sampling heap profiler, keeping only what a scavenge did not free. */
async function oldGenerationProfile(): Promise<{ start(): Promise<void>; stop(file: string): Promise<void> }> {
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  let started = false;
  return {
    async start() {
      if (started) return;
      started = true;
      // The protocol takes these flags; Node's types do not list them yet.
      await session.post("HeapProfiler.startSampling", {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: process.env.HEAP_PROFILE_YOUNG === "1",
      } as object);
    },
    async stop(file) {
      const { profile } = await session.post("HeapProfiler.stopSampling");
      writeFileSync(file, JSON.stringify(profile));
    },
  };
}

// ---- the load (this process) ----

interface Ready {
  port: number;
  floorPort: number;
  ca: string;
  buildMs: number;
  indexMs: number;
  heapMb: number;
  queued: number;
  /** The server's performance.timeOrigin: offsets from it match its --trace-gc times. */
  origin: number;
}

async function main(): Promise<void> {
  const serverFlags = process.env.SERVER_FLAGS?.split(" ").filter(Boolean) ?? [...imageNodeFlags(), ...deploymentNodeOptions().split(" ")];
  const { child, runtime } = forkServer(serverFlags);
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the server did not start within 300 s")), 300_000);
    child.once("message", (m) => {
      clearTimeout(timer);
      resolve(m as Ready);
    });
    child.once("exit", (code) => reject(new Error(`the server exited (${code})`)));
  });
  const round = (x: number) => Math.round(x * 100) / 100;
  console.log(`server: node ${serverFlags.join(" ")}${process.env.PRETENURE ? " (pretenuring on)" : ""}, ${runtime}`);
  if (CONTROL_SPIN_US !== undefined) console.log(`control: the "gate" rows are a second floor spinning ${CONTROL_SPIN_US} µs per review (CONTROL_SPIN_US)`);
  console.log(
    `view: ${NAMESPACES} namespaces, ${NAMESPACES * PODS_PER_NAMESPACE} pods, PVCs and PVs; ${BACKUPS} backups (${IN_FLIGHT} in flight, ${ready.queued} queued); ` +
      `built in ${round(ready.buildMs)} ms, admission index in ${round(ready.indexMs)} ms; server heap ${round(ready.heapMb)} MiB`,
  );

  // The server's own view: its admission_duration histogram (bucket bounds, so coarse),
  // which leaves out the client, the network stack and TLS framing.
  type Bucket = { value: number; labels: Record<string, string | number>; metricName?: string };
  // Asks the server one question and takes its next message as the answer (questions are awaited one at a time).
  const ask = <T>(kind: string) =>
    new Promise<T>((resolve) => {
      child.once("message", (m) => resolve(m as T));
      child.send({ kind });
    });
  const histogram = async () => (await ask<{ histogram: Bucket[] }>("stats")).histogram;
  const serverQuantiles = (before: Bucket[], after: Bucket[]) => {
    const cum = (hs: Bucket[]) => new Map(hs.filter((b) => b.metricName?.endsWith("_bucket")).map((b) => [String(b.labels.le), b.value]));
    const a = cum(after),
      b = cum(before);
    const les = [...a.keys()].sort((x, y) => (x === "+Inf" ? 1 : y === "+Inf" ? -1 : Number(x) - Number(y)));
    const total = (a.get("+Inf") ?? 0) - (b.get("+Inf") ?? 0);
    const at = (q: number) => {
      for (const le of les) if ((a.get(le) ?? 0) - (b.get(le) ?? 0) >= q * total) return le === "+Inf" ? Infinity : Number(le) * 1000;
      return Infinity;
    };
    return { count: total, p50: at(0.5), p99: at(0.99) };
  };
  // The server process's CPU time (every thread: its GC helpers too), read between rounds.
  const serverCpu = async () => (await ask<{ usage: NodeJS.CpuUsage }>("cpu")).usage;

  let seq = 0;
  // One pool per target for the whole run, as the API server keeps its connections to a webhook
  // between reviews (and the gate keeps an idle one 60 s, longer than a target waits between rounds).
  const pools = { floor: targetPool("floor", ready.floorPort, ready.ca), gate: targetPool("gate", ready.port, ready.ca) };
  type Target = "gate" | "floor";
  interface Round {
    target: Target;
    rate: number;
    round: number;
    samples: Float64Array;
    lat: Latency;
    errors: number;
    connections: number;
    server?: { count: number; p50: number; p99: number };
    /** The server's CPU time per review sent in the round, µs. */
    cpuUs: number;
  }
  const rounds: Round[] = [];
  for (const rate of RATES) {
    // Warm-up at the row's rate, not counted: the connections that rate needs, and the JIT. The
    // first second of a burst on cold connections is printed (a handshake costs both processes).
    for (const target of ["floor", "gate"] as const) {
      const w = await paced(pools[target], rate, WARM_UP_S);
      console.log(
        `warm-up ${target.padEnd(5)} ${String(rate).padStart(5)}/s: p99 ${ms(w.lat.p99)} max ${ms(w.lat.max)} ms, ${w.connections} connections opened (not counted)`,
      );
    }
    for (let round = 1; round <= ROUNDS; round++) {
      for (const target of ["floor", "gate"] as const) {
        // The gate's own histogram; a control in its place has none.
        const before = target === "gate" && CONTROL_SPIN_US === undefined ? await histogram() : undefined;
        const cpuBefore = await serverCpu();
        const r = await paced(pools[target], rate, DURATION_S);
        const cpuAfter = await serverCpu();
        const cpuUs = (cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system) / r.lat.count;
        const row: Round = { target, rate, round, ...r, cpuUs, ...(before ? { server: serverQuantiles(before, await histogram()) } : {}) };
        rounds.push(row);
        console.log(
          `round ${round} ${target.padEnd(5)} ${String(rate).padStart(5)}/s: p50 ${ms(r.lat.p50)} p99 ${ms(r.lat.p99)} max ${ms(r.lat.max)} ms, ${r.errors} errors, ${r.connections} connections opened, server CPU ${cpuUs.toFixed(0)} µs/review` +
            (row.server ? `; server p99 <= ${row.server.p99} ms` : ""),
        );
      }
    }
  }
  await Promise.all([pools.floor.pool.close(), pools.gate.pool.close()]);
  child.send({ kind: "stop" });

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] as number;
  console.log("");
  // A row's figures are over every review of its rounds: a mark-compact (one a minute or so at
  // 200/s) stalls a few dozen reviews, which is under 1% of a row but close to 1% of one round.
  console.log(
    `target  rate/s   requests   p50 ms   p99 ms   max ms   errors   server p99 <=   CPU µs/review   (${ROUNDS} rounds of ${DURATION_S} s; then each round's p99)`,
  );
  const rows: string[] = [];
  for (const rate of RATES)
    for (const target of ["floor", "gate"] as const) {
      const mine = rounds.filter((r) => r.rate === rate && r.target === target);
      const p99s = mine.map((r) => r.lat.p99);
      const server = mine.flatMap((r) => (r.server ? [r.server.p99] : []));
      const cpuUs = Math.round(median(mine.map((r) => r.cpuUs)));
      const all = latencyOf(concat(mine.map((r) => r.samples)));
      const summary = { ...all, requests: all.count, errors: mine.reduce((n, r) => n + r.errors, 0) };
      console.log(
        `${target.padEnd(6)} ${String(rate).padStart(7)} ${String(summary.requests).padStart(10)} ${ms(summary.p50).padStart(8)} ${ms(summary.p99).padStart(8)} ${ms(summary.max).padStart(8)} ${String(summary.errors).padStart(8)} ${(server.length ? `${median(server)} ms` : "-").padStart(15)} ${String(cpuUs).padStart(15)}   ${p99s.map(ms).join(" / ")}`,
      );
      rows.push(
        JSON.stringify({
          ...rowName(target),
          rate,
          rounds: ROUNDS,
          duration_s: DURATION_S,
          requests: summary.requests,
          ms_p50: round(summary.p50),
          ms_p99: round(summary.p99),
          ms_max: round(summary.max),
          ms_p99_rounds: p99s.map(round),
          errors: summary.errors,
          ...(server.length ? { server_ms_p99_le: median(server) } : {}),
          server_cpu_us_per_review: cpuUs,
          max_connections: CONNECTIONS,
          backups: BACKUPS,
          pods: NAMESPACES * PODS_PER_NAMESPACE,
        }),
      );
    }
  console.log(
    "(end to end over HTTPS keep-alive, from when each review was due; floor: the same stack answering at once; server: the gate's own admission_duration histogram, bucket upper bounds, median of the rounds; CPU: the server process's CPU time, every thread, per review sent, median of the rounds)",
  );
  console.log("");
  for (const r of rows) console.log(r);

  /** Sends reviews to `port` at `rate` per second for `duration` seconds on a fixed schedule. */
  async function paced(
    pool: TargetPool,
    rate: number,
    duration: number,
  ): Promise<{ samples: Float64Array; lat: Latency; errors: number; connections: number }> {
    const total = Math.round(rate * duration);
    const latencies = new Float64Array(total);
    let answered = 0,
      errors = 0,
      sent = 0;
    const opened = pool.opened;
    const start = performance.now() + 10;
    const due = (i: number) => start + (i * 1000) / rate;
    await new Promise<void>((resolve) => {
      const send = (i: number) => {
        pool.pool
          .request({ path: "/mutate-backups", method: "POST", headers: { "content-type": "application/json" }, body: reviewBody(seq++) })
          .then(
            async (res) => {
              await res.body.dump();
              if (res.statusCode !== 200) errors++;
            },
            () => {
              errors++;
            },
          )
          .finally(() => {
            latencies[i] = performance.now() - due(i);
            if (++answered === total) resolve();
          });
      };
      const tick = () => {
        for (const now = performance.now(); sent < total && due(sent) <= now; sent++) send(sent);
        if (sent < total) setTimeout(tick, Math.max(0, due(sent) - performance.now()));
      };
      setTimeout(tick, 10);
    });
    if (process.env.SLOW) console.log(`  ${pool.target} slow stretches: ${slowStretches(latencies, due, ready.origin).join("; ") || "none"}`);
    return { samples: latencies, lat: latencyOf(latencies), errors, connections: pool.opened - opened };
  }
}

/**
 * Runs of reviews slower than 10 ms (a gap of 50 ms ends a run), as "start+length ms, count,
 * worst", the start in ms from the server's time origin (where --trace-gc counts from).
 */
function slowStretches(latencies: Float64Array, due: (i: number) => number, origin: number): string[] {
  const out: string[] = [];
  let first = -1;
  let last = -1;
  let count = 0;
  let worst = 0;
  const end = () => {
    if (count > 0)
      out.push(`${(performance.timeOrigin + due(first) - origin).toFixed(0)}+${(due(last) - due(first)).toFixed(0)} ms, ${count}, ${worst.toFixed(0)} ms`);
    count = 0;
    worst = 0;
  };
  latencies.forEach((l, i) => {
    if (l <= 10) return;
    if (count > 0 && due(i) - due(last) > 50) end();
    if (count === 0) first = i;
    last = i;
    count++;
    worst = Math.max(worst, l);
  });
  end();
  return out;
}

interface TargetPool {
  readonly target: "floor" | "gate";
  readonly pool: Pool;
  /** Connections opened so far. */
  opened: number;
}

/** undici's Pool opens another keep-alive connection while all are busy, up to CONNECTIONS. */
function targetPool(target: "floor" | "gate", port: number, ca: string): TargetPool {
  const pool = new Pool(`https://127.0.0.1:${port}`, { connect: { ca }, connections: CONNECTIONS, pipelining: 1 });
  const counted: TargetPool = { target, pool, opened: 0 };
  pool.on("connect", () => {
    counted.opened++;
  });
  return counted;
}

/** Forks the server: this file bundled into plain JS, or under tsx with SERVER_RUNTIME=tsx. */
function forkServer(flags: readonly string[]): { child: ChildProcess; runtime: string } {
  const self = fileURLToPath(import.meta.url);
  const stdio = ["ignore", "inherit", "inherit", "ipc"] as const;
  if (process.env.SERVER_RUNTIME === "tsx")
    return { child: fork(self, ["--serve"], { execArgv: [...process.execArgv, ...flags], stdio: [...stdio] }), runtime: "under tsx" };
  return { child: fork(bundle(self, "admission-server.mjs"), ["--serve"], { execArgv: [...flags], stdio: [...stdio] }), runtime: "bundled" };
}

interface Latency {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

function concat(parts: readonly Float64Array[]): Float64Array {
  const all = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

function latencyOf(samples: Float64Array): Latency {
  const sorted = samples.slice().sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] as number };
}

function ms(x: number): string {
  return x.toFixed(2);
}

if (process.argv.includes("--serve")) void serve();
else await main();
