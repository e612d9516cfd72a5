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
// why). Prints a table and one JSON line per kind.

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

/** Microseconds per call of `f` on each kind's reviews (`reviews[seq]` is of kind `seq % 4`), over the second half. */
function timed(reviews: readonly BackupInfo[], f: (b: BackupInfo) => void): number[] {
  const spent = REVIEW_KINDS.map(() => 0);
  reviews.forEach((b, seq) => {
    const t = performance.now();
    f(b);
    if (seq >= reviews.length / 2) spent[seq % 4] = (spent[seq % 4] ?? 0) + performance.now() - t;
  });
  return spent.map((ms) => (ms * 1000) / (PER_KIND / 2));
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
  console.log(`${"review kind".padEnd(36)} ${"decide µs".padStart(10)} ${"cold scope µs".padStart(14)}`);
  REVIEW_KINDS.forEach((kind, i) =>
    console.log(`${kind.padEnd(36)} ${String(round(decide[i] ?? 0)).padStart(10)} ${String(round(cold[i] ?? 0)).padStart(14)}`),
  );
  for (const [i, kind] of REVIEW_KINDS.entries())
    console.log(
      JSON.stringify({ bench: "admission.candidate", kind, reviews: PER_KIND, decide_us: round(decide[i] ?? 0), cold_scope_us: round(cold[i] ?? 0) }),
    );
}

if (process.argv.includes("--run")) await run();
else {
  const child = fork(bundle(fileURLToPath(import.meta.url), "candidate.mjs"), ["--run"], { stdio: "inherit" });
  await new Promise((resolve) => child.once("exit", resolve));
}
