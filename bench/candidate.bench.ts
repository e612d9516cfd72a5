// Benchmark of the CPU one mutating review's decision costs, by what the candidate asks for: the
// admission bench's cluster and backups (bench/admissionFixture.ts), its reviews, in one process
// and without HTTP. Two figures per kind of review:
// - decide: `AdmissionEngine.decide`, as the mutating webhook calls it (the candidate's scope,
//   reusing the parts of queued backups with the same part context, and its verdict);
// - cold scope: the candidate's whole scope, every part computed (its cache forgets all before
//   each, as the webhook's candidate cache does every few reviews, and keeps what does not
//   depend on the backups: the namespace list's resolver).
//
// Run with `npx tsx bench/candidate.bench.ts` (optional: REVIEWS, per kind, default 5000; the
// first half warms up). It runs bundled, as the image runs tsc's output (bench/bundle.ts says
// why). Prints a table and one JSON line per kind, each figure as wall time and as the process's
// CPU time.

import { fork } from "node:child_process";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { AdmissionEngine } from "../src/admission/engine.js";
import type { BackupInfo } from "../src/core/model.js";
import { policySchema } from "../src/core/policy.js";
import { ScopeCache } from "../src/core/scope/cache.js";
import { trim } from "../src/core/velero/objects.js";
import { FakeClusterCache } from "../test/support/fakes/clusterCache.js";
import { StaticPolicySource } from "../test/support/fakes/policySource.js";
import { bundle } from "./bundle.js";
import { buildBackups, buildView, REVIEW_KINDS, reviewBody } from "./admissionFixture.js";

const PER_KIND = Number(process.env.REVIEWS ?? 5000);

/** The candidate as the webhook reads it from review `seq`. */
function candidate(seq: number): BackupInfo {
  const { request } = JSON.parse(reviewBody(seq, "candidate")) as { request: { object: { metadata: object } } };
  const read = trim("Backup", { kind: "Backup", ...request.object });
  if (!read.ok) throw read.error;
  return { ...read.value, creationTimestamp: new Date().toISOString() };
}

/**
 * Microseconds per call of `f` on each kind's reviews (`reviews[seq]` is of kind `seq % 4`), over
 * the second half: wall time, and the process's CPU time (GC threads included), which a machine
 * busy with other work inflates far less than the wall time.
 */
function timed(reviews: readonly BackupInfo[], f: (b: BackupInfo) => void): { wall: number[]; cpu: number[] } {
  const wall = REVIEW_KINDS.map(() => 0);
  const cpu = REVIEW_KINDS.map(() => 0);
  reviews.forEach((b, seq) => {
    const [t, used] = [performance.now(), process.cpuUsage()];
    f(b);
    if (seq < reviews.length / 2) return;
    const { user, system } = process.cpuUsage(used);
    wall[seq % 4] = (wall[seq % 4] ?? 0) + (performance.now() - t) * 1000;
    cpu[seq % 4] = (cpu[seq % 4] ?? 0) + user + system;
  });
  const perCall = (us: number) => us / (PER_KIND / 2);
  return { wall: wall.map(perCall), cpu: cpu.map(perCall) };
}

async function run(): Promise<void> {
  const view = buildView();
  const policy = policySchema.parse({ maxConcurrentBackups: 8 });
  const cache = new FakeClusterCache(view, buildBackups());
  const engine = new AdmissionEngine({ cache, policy: new StaticPolicySource(policy), now: () => Date.now() });
  await engine.start();
  const reviews = Array.from({ length: 4 * PER_KIND }, (_, seq) => candidate(seq));
  const decide = timed(reviews, (b) => engine.decide(b, Date.now()));
  const scopes = new ScopeCache();
  const cold = timed(reviews, (b) => {
    scopes.forgetAll();
    scopes.scopeOf(b, view, policy);
  });
  engine.stop();

  const round = (x: number) => Math.round(x * 10) / 10;
  const columns = ["decide µs", "decide cpu µs", "cold scope µs", "cold cpu µs"];
  console.log(`${"review kind".padEnd(36)} ${columns.map((c) => c.padStart(14)).join(" ")}`);
  REVIEW_KINDS.forEach((kind, i) => {
    const figures = [decide.wall[i], decide.cpu[i], cold.wall[i], cold.cpu[i]].map((x) => String(round(x ?? 0)).padStart(14));
    console.log(`${kind.padEnd(36)} ${figures.join(" ")}`);
  });
  const mean = (xs: number[]) => round(xs.reduce((a, b) => a + b, 0) / xs.length);
  console.log(`${"mean over the kinds".padEnd(36)} ${[decide.wall, decide.cpu, cold.wall, cold.cpu].map((xs) => String(mean(xs)).padStart(14)).join(" ")}`);
  for (const [i, kind] of REVIEW_KINDS.entries())
    console.log(
      JSON.stringify({
        bench: "admission.candidate",
        kind,
        reviews: PER_KIND,
        decide_us: round(decide.wall[i] ?? 0),
        decide_cpu_us: round(decide.cpu[i] ?? 0),
        cold_scope_us: round(cold.wall[i] ?? 0),
        cold_scope_cpu_us: round(cold.cpu[i] ?? 0),
      }),
    );
}

if (process.argv.includes("--run")) await run();
else {
  const child = fork(bundle(fileURLToPath(import.meta.url), "candidate.mjs"), ["--run"], { stdio: "inherit" });
  await new Promise((resolve) => child.once("exit", resolve));
}
