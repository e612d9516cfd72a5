// Benchmark of the decision core at scale: 2,000 namespaces, 100,000 pods, 100,000 bound PVCs
// (with their PVs) and 10,000 queued backups. Run with `npm run bench:core`
// (`npx tsx bench/core.bench.ts`). Prints a table and one JSON line per figure.
//
// Goals (design): a full plan within 50 ms, a re-plan after one event within 5 ms. The full
// plans start from nothing (cold) or from a warm scope cache; the event re-plan builds on the
// plan before it, as the controller does.
//
// The core runs as `serve` runs it: with V8's allocation-site pretenuring off
// (`disablePretenuring`). With it on, the cold plans teach V8 to allocate the warm plans'
// short-lived objects in the old generation, and the warm plan's median moved with that between
// runs (docs/performance.md, "Pretenuring and the plan"); PRETENURE=1 leaves it on.

import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { BackupInfo, PodInfo } from "../src/core/model.js";
import { plan, type Plan } from "../src/core/decision/plan.js";
import { DEFAULT_POLICY, policySchema } from "../src/core/policy.js";
import { ScopeCache } from "../src/core/scope/cache.js";
import { ClusterView } from "../src/core/view.js";
import { disablePretenuring } from "../src/cli/v8Flags.js";
import { benchBackup, boundPv, nsName, T0 } from "./benchObjects.js";

// BENCH_SCALE (default 1) shrinks the cluster and the queue for quick profiling runs;
// BENCH_TIMES=1 prints every iteration's time (to see GC pauses apart from steady cost).
const SCALE = Number(process.env.BENCH_SCALE ?? "1");
const NAMESPACES = Math.round(2_000 * SCALE);
const PODS_PER_NAMESPACE = 50; // 100,000 pods, one PVC (and PV) each
const APPS_PER_NAMESPACE = 10;
const BACKUPS = Math.round(10_000 * SCALE);
const ALL_NAMESPACE_BACKUPS = 5;
const IN_FLIGHT = 4;

const policy = policySchema.parse({ ...DEFAULT_POLICY, maxConcurrentBackups: 8 });

function podOf(namespace: string, i: number, generation = 0): PodInfo {
  const app = `app-${i % APPS_PER_NAMESPACE}`;
  return {
    namespace,
    name: `${app}-${i}`,
    labels: { app, ...(generation ? { generation: String(generation) } : {}) },
    // One pod in five has a pre hook; one in ten opts its volume into a file-system backup.
    annotations: {
      ...(i % 5 === 0 ? { "pre.hook.backup.velero.io/command": '["/bin/sync"]' } : {}),
      ...(i % 10 === 1 ? { "backup.velero.io/backup-volumes": "data" } : {}),
    },
    phase: "Running",
    nodeName: `node-${i % 50}`,
    deleting: false,
    volumes: [
      { name: "data", type: "persistentVolumeClaim", claimName: `data-${i}` },
      { name: "tmp", type: "emptyDir" },
    ],
  };
}

function buildView(): ClusterView {
  const view = new ClusterView();
  for (let n = 0; n < NAMESPACES; n++) {
    const namespace = nsName(n);
    view.setNamespace({ name: namespace, labels: { team: `t${n % 40}` }, annotations: {}, terminating: false });
    for (let i = 0; i < PODS_PER_NAMESPACE; i++) {
      const claim = `data-${i}`;
      const pv = `pv-${namespace}-${claim}`;
      view.setPvc({
        namespace,
        name: claim,
        labels: { app: `app-${i % APPS_PER_NAMESPACE}` },
        annotations: {},
        phase: "Bound",
        volumeName: pv,
        storageClassName: "standard",
        deleting: false,
      });
      view.setPv(boundPv(namespace, claim, pv));
      view.setPod(podOf(namespace, i));
    }
  }
  return view;
}

function buildBackups(): BackupInfo[] {
  const backups: BackupInfo[] = [];
  const add = (...a: Parameters<typeof benchBackup>) => backups.push(benchBackup(...a));
  // A handful of whole-cluster backups (the nightly DR run and friends), spread over the queue.
  for (let i = 0; i < ALL_NAMESPACE_BACKUPS; i++) {
    add(`all-${i}`, { includedNamespaces: ["*"], snapshotVolumes: true }, 60 + i * 120, "", { "velero.io/schedule-name": `dr-${i}` });
  }
  for (let i = 0; backups.length < BACKUPS; i++) {
    const namespace = nsName(i % NAMESPACES);
    const phase = i < IN_FLIGHT ? "InProgress" : i % 3 === 0 ? "Queued" : i % 3 === 1 ? "New" : "";
    if (i % 2 === 0) {
      add(`ns-${i}`, { includedNamespaces: [namespace], snapshotVolumes: true }, i % 600, phase, { "velero.io/schedule-name": `ns-${namespace}` });
    } else {
      const app = `app-${i % APPS_PER_NAMESPACE}`;
      add(`app-${i}`, { includedNamespaces: [namespace], labelSelector: { matchLabels: { app } }, defaultVolumesToFsBackup: i % 7 === 0 }, i % 600, phase);
    }
  }
  return backups;
}

interface Figure {
  readonly bench: string;
  readonly iterations: number;
  readonly min: number;
  readonly median: number;
  readonly p95: number;
}

// A full collection before each figure, so that one figure does not pay for the garbage the
// one before it left (the cold plans leave hundreds of megabytes); within a figure, each
// iteration pays for its own.
setFlagsFromString("--expose-gc");
const collect = runInNewContext("gc") as () => void;

function measure(bench: string, iterations: number, run: () => void, before?: () => void): Figure {
  collect();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    before?.();
    const start = performance.now();
    run();
    times.push(performance.now() - start);
  }
  if (process.env.BENCH_TIMES) console.log(bench, times.map((t) => t.toFixed(0)).join(" "));
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.ceil(q * times.length) - 1)] as number;
  return { bench, iterations, min: times[0] as number, median: at(0.5), p95: at(0.95) };
}

const round = (x: number) => Math.round(x * 100) / 100;

function main(): void {
  if (!process.env.PRETENURE) disablePretenuring();
  const buildStart = performance.now();
  const view = buildView();
  const backups = buildBackups();
  const buildMs = performance.now() - buildStart;
  collect();
  const heapMb = process.memoryUsage().heapUsed / 2 ** 20;

  const snapshot = { view, backups };
  const now = T0 + 12 * 3_600_000;
  let last: Plan | undefined;

  // BENCH_ONLY=warm|event skips the cold figure (for profiling the others).
  const only = process.env.BENCH_ONLY;
  const cold = measure("core.plan.full.cold", only ? 0 : 3, () => {
    last = plan(snapshot, policy, now, { cache: new ScopeCache() });
  });
  const cache = new ScopeCache();
  plan(snapshot, policy, now, { cache });
  const warm = measure("core.plan.full.warm", only === "event" ? 0 : 20, () => {
    last = plan(snapshot, policy, now, { cache });
  });
  let generation = 0;
  // The controller re-plans from its last plan: only what the event touched is redone.
  last = plan(snapshot, policy, now, { cache });
  const event = measure(
    "core.plan.event.pod",
    only === "warm" ? 0 : 50,
    () => {
      last = plan(snapshot, policy, now, { cache, previous: last });
    },
    () => {
      generation++;
      view.setPod(podOf(nsName(generation % NAMESPACES), generation % PODS_PER_NAMESPACE, generation));
    },
  );

  const figures = [cold, warm, event].filter((f) => f.iterations > 0);
  const p = last;
  console.log(
    `view: ${NAMESPACES} namespaces, ${NAMESPACES * PODS_PER_NAMESPACE} pods, ${NAMESPACES * PODS_PER_NAMESPACE} PVCs + PVs; ` +
      `${backups.length} backups (${IN_FLIGHT} in flight); built in ${round(buildMs)} ms; heapUsed ${round(heapMb)} MiB; ` +
      `pretenuring ${process.env.PRETENURE ? "on (PRETENURE=1)" : "off, as in serve"}`,
  );
  console.log(`last plan: ${p.promotions.length} promotions, ${p.queue.length} queued, ${p.overlaps.length} overlaps`);
  console.log("");
  console.log("figure                   iters    min ms  median ms    p95 ms");
  for (const f of figures) {
    console.log(
      `${f.bench.padEnd(24)} ${String(f.iterations).padStart(5)} ${round(f.min).toFixed(2).padStart(9)} ${round(f.median).toFixed(2).padStart(10)} ${round(f.p95).toFixed(2).padStart(9)}`,
    );
  }
  console.log("");
  console.log(JSON.stringify({ bench: "core.view.heap", heap_used_mb: round(heapMb), build_ms: round(buildMs), pretenuring: Boolean(process.env.PRETENURE) }));
  for (const f of figures) {
    console.log(JSON.stringify({ bench: f.bench, iterations: f.iterations, ms_min: round(f.min), ms_median: round(f.median), ms_p95: round(f.p95) }));
  }
}

main();
