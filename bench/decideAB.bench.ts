// Two revisions' `AdmissionEngine.decide` side by side in one process: this tree and another
// checkout (OTHER), each with its own admission fixture (bench/admissionFixture.ts), alternate
// batches of the admission bench's reviews (all four kinds, as bench/admission.bench.ts sends
// them). A change of a few percent is lost between two runs of bench/candidate.bench.ts on this
// machine, whose speed drifts from minute to minute; batches that alternate see the same drift.
//
//   git worktree add /tmp/base <rev> && ln -s "$PWD/node_modules" /tmp/base/node_modules
//   OTHER=/tmp/base npx tsx bench/decideAB.bench.ts
//
// Optional: BATCH, reviews per batch (default 1000); ROUNDS, batches per side (default 40; the
// order alternates each round). Both sides run bundled (bench/bundle.ts says why), in one heap, so
// each side's garbage is collected in whichever batch fills the young generation: GC is counted
// as the two sides allocate, on average. Prints each side's median per decide (wall and the
// process's CPU time), the median of the per-round ratios, and one JSON line.

import { fork } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { bundle } from "./bundle.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const BATCH = Number(process.env.BATCH ?? 1000);
const ROUNDS = Number(process.env.ROUNDS ?? 40);

/** What one side needs from its tree: the names every revision since the admission bench has. */
interface SideModule {
  AdmissionEngine: new (o: object) => { start(): Promise<void>; stop(): void; decide(b: unknown, now: number): unknown };
  FakeClusterCache: new (view: unknown, backups: unknown) => unknown;
  StaticPolicySource: new (policy: unknown) => unknown;
  policySchema: { parse(x: unknown): unknown };
  trim(kind: "Backup", raw: unknown): { ok: true; value: object } | { ok: false; error: Error };
  buildView(): unknown;
  buildBackups(): unknown;
  reviewBody(seq: number, prefix?: string): string;
}

/** Bundles an entry that re-exports what a side needs from `tree`. */
function sideBundle(tree: string, name: string): string {
  const dir = join(root, "node_modules", ".cache", "backup-gate-bench");
  mkdirSync(dir, { recursive: true });
  const entry = join(dir, `${name}.ts`);
  writeFileSync(
    entry,
    [
      `export { AdmissionEngine } from "${tree}/src/admission/engine.ts";`,
      `export { FakeClusterCache } from "${tree}/test/support/fakes/clusterCache.ts";`,
      `export { StaticPolicySource } from "${tree}/test/support/fakes/policySource.ts";`,
      `export { policySchema } from "${tree}/src/core/policy.ts";`,
      `export { trim } from "${tree}/src/core/velero/objects.ts";`,
      `export { buildView, buildBackups, reviewBody } from "${tree}/bench/admissionFixture.ts";`,
    ].join("\n"),
  );
  return bundle(entry, `${name}.mjs`);
}

interface Side {
  readonly label: string;
  readonly decide: (b: unknown) => unknown;
  readonly reviews: readonly unknown[];
  readonly stop: () => void;
  readonly wall: number[];
  readonly cpu: number[];
}

async function side(label: string, file: string): Promise<Side> {
  const m = (await import(pathToFileURL(file).href)) as SideModule;
  const policy = new m.StaticPolicySource(m.policySchema.parse({ maxConcurrentBackups: 8 }));
  const engine = new m.AdmissionEngine({ cache: new m.FakeClusterCache(m.buildView(), m.buildBackups()), policy, now: () => Date.now() });
  await engine.start();
  const reviews = Array.from({ length: BATCH * 4 }, (_, seq) => {
    const { request } = JSON.parse(m.reviewBody(seq, "ab")) as { request: { object: object } };
    const read = m.trim("Backup", { kind: "Backup", ...request.object });
    if (!read.ok) throw read.error;
    return { ...read.value, creationTimestamp: "" };
  });
  for (const b of reviews) engine.decide(b, Date.now()); // warm-up
  return { label, decide: (b) => engine.decide(b, Date.now()), reviews, stop: () => engine.stop(), wall: [], cpu: [] };
}

function timeBatch(s: Side, batch: readonly unknown[]): void {
  const [t, used] = [performance.now(), process.cpuUsage()];
  for (const b of batch) s.decide(b);
  const { user, system } = process.cpuUsage(used);
  s.wall.push(((performance.now() - t) * 1000) / batch.length);
  s.cpu.push((user + system) / batch.length);
}

async function run(files: { other: string; mine: string }): Promise<void> {
  const sides = [await side("other", files.other), await side("this", files.mine)];
  for (let r = 0; r < ROUNDS; r++) {
    const at = (r % 4) * BATCH;
    for (const s of r % 2 ? [...sides].reverse() : sides) timeBatch(s, s.reviews.slice(at, at + BATCH));
  }
  sides.forEach((s) => s.stop());
  const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
  const [other, mine] = sides as [Side, Side];
  for (const s of sides)
    console.log(`${s.label.padEnd(6)} decide ${round(median(s.wall))} µs wall, ${round(median(s.cpu))} µs CPU (medians of ${ROUNDS} batches)`);
  const ratio = (xs: readonly number[], ys: readonly number[]) => round(median(xs.map((x, i) => x / (ys[i] as number))), 3);
  console.log(`this / other, median per round: ${ratio(mine.wall, other.wall)} wall, ${ratio(mine.cpu, other.cpu)} CPU`);
  console.log(
    JSON.stringify({
      bench: "admission.decide.ab",
      other: process.env.OTHER,
      batch: BATCH,
      rounds: ROUNDS,
      other_us: round(median(other.wall)),
      this_us: round(median(mine.wall)),
      other_cpu_us: round(median(other.cpu)),
      this_cpu_us: round(median(mine.cpu)),
      ratio_wall: ratio(mine.wall, other.wall),
      ratio_cpu: ratio(mine.cpu, other.cpu),
    }),
  );
}

if (process.argv.includes("--run")) await run(JSON.parse(process.argv[process.argv.indexOf("--run") + 1] as string) as { other: string; mine: string });
else {
  const other = process.env.OTHER;
  if (!other) throw new Error("OTHER=<a checkout of the revision to compare with> is required");
  const files = { other: sideBundle(resolve(other), "decide-other"), mine: sideBundle(root, "decide-this") };
  const child = fork(bundle(fileURLToPath(import.meta.url), "decideAB.mjs"), ["--run", JSON.stringify(files)], { stdio: "inherit" });
  await new Promise((done) => child.once("exit", done));
}
