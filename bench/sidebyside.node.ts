// Side by side on the real node (test/support/node.ts): the same backups, whose time is real
// work, run four ways, and the figures of each.
//
//   npx tsx bench/sidebyside.node.ts
//   SBS_NAMESPACES=2 SBS_PODS=4 SBS_ROUNDS=1 SBS_SLOTS=8 SBS_HOLD_S=15 SBS_DATA_MIB=8 \
//     SBS_VQ_REPEATS=2 SBS_BOUND_REPEATS=2 npx tsx bench/sidebyside.node.ts
//
// Workload: SBS_NAMESPACES namespaces, each holding SBS_PODS independent busybox pods
// (nodeFreeze.ts): SBS_DATA_MIB of random data on an emptyDir that Velero copies by file
// system (node-agent, kopia), and a pre-backup hook that takes a freeze and holds it for
// SBS_HOLD_S seconds (a flush), released by the post hook after the copy. Each backup selects
// one pod by label in its namespace; SBS_ROUNDS rounds back up every pod once each, created
// at once, namespaces interleaved. With one round (the default) no two backups conflict at
// ItemBlock level, while Velero's namespace rule runs one backup per namespace at a time; with
// more, the lower bound may overlap two backups of one pod (a busy freeze fails that hook and
// shortens its backup: the bound is then not a fair one). Velero runs with --concurrent-backups
// SBS_SLOTS and the node-agent's data-path concurrency SBS_SLOTS (its default, 1, would copy
// one volume at a time on the node whoever schedules). Runs, on one node:
//   velero-queue   Velero's own queue, no gate (SBS_VQ_REPEATS times, first)
//   lower-bound    Velero's queue off, no gate: the bench starts the backups ReadyToStart in
//                  order, at most SBS_SLOTS in flight, no conflict rule (overlaps allowed, counted)
//   gate-namespace backup-gate at Namespace level (Velero's queue off), once
//   gate-itemblock backup-gate at ItemBlock level
// lower-bound and gate-itemblock alternate, SBS_BOUND_REPEATS times each.
// Figures per run: makespan (first arrival -> last terminal phase, as seen by a watch), mean
// and max wait (arrival -> first in-flight phase after ReadyToStart), the ratios, and
// overlaps: freezes that found the pod already frozen (the hook records) and pairs of
// PodVolumeBackups of one volume by two backups whose times overlap. Ratios are to the means
// of the repeats; noise is each group's spread, (max - min) / mean. One JSON line at the end.
// Nothing is asserted.
//
// Needs root and the node's tools (bash tools/build.sh); takes the node lock. About 12 minutes
// with the defaults, plus any wait for the node. Ctrl-C stops the gate, Velero and the node.
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { startGate, type GateProcess } from "../test/support/gate.js";
import { setNodeVeleroQueue, startNodeVelero, startNodeWhenFree, type NodeVelero, type TestNode } from "../test/support/node.js";
import { freezePod, overlappingFreezes, readFreezeRecords } from "../test/support/nodeFreeze.js";
import {
  clients,
  createBackup,
  createNamespace,
  getBackup,
  TERMINAL_BACKUP_PHASES,
  updateVelero,
  type Clients,
  type VeleroObject,
} from "../test/support/objects.js";
import { waitFor } from "../test/support/wait.js";
import { startWatch } from "../test/support/watch.js";

const num = (name: string, dflt: number) => {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v}: expected a non-negative number`);
  return n;
};
const NAMESPACES = num("SBS_NAMESPACES", 2);
const PODS = num("SBS_PODS", 4);
const ROUNDS = num("SBS_ROUNDS", 1);
const SLOTS = num("SBS_SLOTS", 8);
const HOLD_S = num("SBS_HOLD_S", 15);
const DATA_MIB = num("SBS_DATA_MIB", 8);
const VQ_REPEATS = Math.max(1, num("SBS_VQ_REPEATS", 2));
const BOUND_REPEATS = Math.max(1, num("SBS_BOUND_REPEATS", 2));
const RUN_TIMEOUT_MS = 900_000;
const VELERO_NS = "velero";
const GATE_NS = "backup-gate";
const LEVEL_ANNOTATION = "backup-gate.io/conflict-level";

interface Spec {
  name: string;
  namespace: string;
  pod: string;
}
interface Seen {
  arrival: number;
  start?: number;
  end?: number;
  phase: string;
  level?: string;
}
interface Figures {
  run: string;
  backups: number;
  makespanS: number;
  meanWaitS: number;
  maxWaitS: number;
  notCompleted: number;
  busyFreezes: number;
  pvbOverlaps: number;
  pvbBytes: number;
}

const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `sbs-${i + 1}`);
const pods = Array.from({ length: PODS }, (_, i) => `app-${i + 1}`);
const IN_FLIGHT = new Set(["InProgress", "WaitingForPluginOperations", "WaitingForPluginOperationsPartiallyFailed", "Finalizing", "FinalizingPartiallyFailed"]);

/** The backups of one run, in creation order: rounds, then pods, namespaces interleaved. */
function workload(run: string): Spec[] {
  const out: Spec[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    for (const pod of pods) for (const namespace of namespaces) out.push({ name: `${run}-r${r}-${namespace}-${pod}`, namespace, pod });
  }
  return out;
}

const say = (s: string) => console.log(`[sbs ${(performance.now() / 1000).toFixed(0)}s] ${s}`);

// ---- stopping: on exit and on Ctrl-C, whatever has started ----
let node: TestNode | undefined;
let velero: NodeVelero | undefined;
let gate: GateProcess | undefined;
let stopping: Promise<void> | undefined;
function stopAll(): Promise<void> {
  stopping ??= (async () => {
    await gate?.stop().catch(() => {});
    await velero?.stop().catch(() => {});
    await node?.stop().catch((e: unknown) => console.error(`stopping the node: ${(e as Error).message}`));
  })();
  return stopping;
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    console.log(`\n${sig}: stopping the gate, Velero and the node...`);
    void stopAll().then(() => process.exit(130));
  });
}

/** Watches the Velero namespace's Backups: arrival (set by the caller), first in-flight and terminal times. */
async function watchBackups(node: TestNode) {
  const seen = new Map<string, Seen>();
  const w = await startWatch(node.kubeConfig, `/apis/velero.io/v1/namespaces/${VELERO_NS}/backups`, {}, (_t, o: VeleroObject) => {
    const s = seen.get(o.metadata.name);
    if (!s) return;
    const phase = (o.status?.phase as string | undefined) ?? "";
    const now = Date.now();
    s.phase = phase;
    s.level ??= o.metadata.annotations?.[LEVEL_ANNOTATION];
    if (s.start === undefined && (IN_FLIGHT.has(phase) || TERMINAL_BACKUP_PHASES.has(phase))) s.start = now;
    if (s.end === undefined && TERMINAL_BACKUP_PHASES.has(phase)) s.end = now;
  });
  return { seen, stop: () => w.abort(), ended: () => w.ended() };
}

async function podVolumeBackups(c: Clients, names: Set<string>): Promise<VeleroObject[]> {
  const list = (await c.custom.listNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: VELERO_NS, plural: "podvolumebackups" })) as {
    items: VeleroObject[];
  };
  return list.items.filter((p) => names.has(p.metadata.labels?.["velero.io/backup-name"] ?? ""));
}

/** Pairs of PodVolumeBackups of one pod volume by two backups whose [start, completion] overlap (1 s resolution: strict). */
function pvbOverlaps(pvbs: VeleroObject[]): number {
  const byVolume = new Map<string, { backup: string; from: number; to: number }[]>();
  for (const p of pvbs) {
    const from = Date.parse(p.status?.startTimestamp ?? "");
    const to = Date.parse(p.status?.completionTimestamp ?? "");
    if (!Number.isFinite(from) || !Number.isFinite(to)) continue;
    const key = `${p.spec?.pod?.namespace}/${p.spec?.pod?.name}/${p.spec?.volume}`;
    byVolume.set(key, [...(byVolume.get(key) ?? []), { backup: p.metadata.labels?.["velero.io/backup-name"] ?? "", from, to }]);
  }
  let n = 0;
  for (const list of byVolume.values()) {
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i]!,
          b = list[j]!;
        if (a.backup !== b.backup && a.from < b.to && b.from < a.to) n++;
      }
    }
  }
  return n;
}

const backupOptions = (s: Spec) => ({ includedNamespaces: [s.namespace], spec: { labelSelector: { matchLabels: { app: s.pod } } } });

/** Runs one configuration's backups: `start` creates them (its own way) and sets arrivals. */
async function runOnce(
  c: Clients,
  n: TestNode,
  run: string,
  specs: Spec[],
  start: (seen: Map<string, Seen>) => Promise<void>,
): Promise<{ f: Figures; seen: Map<string, Seen> }> {
  const recordsBefore = new Map(specs.map((s) => [`${s.namespace}/${s.pod}`, readFreezeRecords(join(n.recordsDir, s.namespace, s.pod)).length]));
  const w = await watchBackups(n);
  try {
    for (const s of specs) w.seen.set(s.name, { arrival: Number.NaN, phase: "" });
    say(`${run}: ${specs.length} backups`);
    await start(w.seen);
    await waitFor(
      `${run}: every backup to reach a terminal phase`,
      () => {
        if (w.ended()) throw new Error(`${run}: the watch on Backups ended; its times would be incomplete`);
        return [...w.seen.values()].every((s) => s.end !== undefined);
      },
      { timeoutMs: RUN_TIMEOUT_MS, intervalMs: 250 },
    );
  } finally {
    w.stop();
  }
  const all = specs.map((s) => w.seen.get(s.name)!);
  const waits = all.map((s) => (s.start! - s.arrival) / 1000);
  const first = Math.min(...all.map((s) => s.arrival));
  let busy = 0;
  for (const [key, before] of recordsBefore) {
    const [ns, pod] = key.split("/") as [string, string];
    busy += overlappingFreezes(readFreezeRecords(join(n.recordsDir, ns, pod)).slice(before)).length;
  }
  const pvbs = await podVolumeBackups(c, new Set(specs.map((s) => s.name)));
  const f: Figures = {
    run,
    backups: specs.length,
    makespanS: (Math.max(...all.map((s) => s.end!)) - first) / 1000,
    meanWaitS: waits.reduce((a, b) => a + b, 0) / waits.length,
    maxWaitS: Math.max(...waits),
    notCompleted: all.filter((s) => s.phase !== "Completed").length,
    busyFreezes: busy,
    pvbOverlaps: pvbOverlaps(pvbs),
    pvbBytes: pvbs.reduce((a, p) => a + Number(p.status?.progress?.bytesDone ?? 0), 0),
  };
  say(
    `${run}: makespan ${f.makespanS.toFixed(1)} s, mean wait ${f.meanWaitS.toFixed(1)} s, ${pvbs.length} PodVolumeBackups ` +
      `(${(f.pvbBytes / 2 ** 20).toFixed(0)} MiB), not Completed ${f.notCompleted}, busy freezes ${f.busyFreezes}, PVB overlaps ${f.pvbOverlaps}`,
  );
  return { f, seen: w.seen };
}

/** Creates the backups as a user would (Velero's queue or the gate decides when they start). */
const createAll = (c: Clients, specs: Spec[]) => async (seen: Map<string, Seen>) => {
  for (const s of specs) {
    seen.get(s.name)!.arrival = Date.now();
    await createBackup(c, VELERO_NS, s.name, backupOptions(s));
  }
};

/** The lower bound: no conflict rule, only the limit; ReadyToStart in order, at most SLOTS in flight. */
const startInOrder = (c: Clients, specs: Spec[]) => async (seen: Map<string, Seen>) => {
  const t0 = Date.now();
  for (const s of specs) seen.get(s.name)!.arrival = t0;
  const started: string[] = [];
  const inFlight = () => started.filter((n) => seen.get(n)!.end === undefined).length;
  for (const s of specs) {
    await waitFor("a free slot (lower bound)", () => inFlight() < SLOTS, { timeoutMs: RUN_TIMEOUT_MS, intervalMs: 100 });
    await createBackup(c, VELERO_NS, s.name, { ...backupOptions(s), status: { phase: "ReadyToStart" } });
    // Velero's backup controller looks at an update (as the gate's promotion is one).
    await updateVelero(c, "backups", VELERO_NS, s.name, (b) => {
      b.metadata.labels = { ...b.metadata.labels, "backup-gate.io/bench-kick": "1" };
    });
    started.push(s.name);
  }
};

async function runGate(c: Clients, n: TestNode, run: string, level: "Namespace" | "ItemBlock"): Promise<Figures> {
  const policy = `conflictLevel: ${level}\nmaxConcurrentBackups: ${SLOTS}\npriorities: {agingSeconds: 0}\n`;
  const body = { metadata: { name: "backup-gate-policy", namespace: GATE_NS }, data: { "policy.yaml": policy } };
  await c.core.replaceNamespacedConfigMap({ name: "backup-gate-policy", namespace: GATE_NS, body }).catch(async () => {
    await c.core.createNamespacedConfigMap({ namespace: GATE_NS, body });
  });
  gate = await startGate({ kubeconfigPath: n.kubeconfigPath, dir: n.dir }, { identity: "sbs-gate", register: true, logLevel: "info" });
  try {
    // A gate that has just started leads and fills its caches first: one small backup through it
    // before the run, so the run measures the queue, not the start.
    const warm = `${run}-warmup`;
    const t = Date.now();
    await createBackup(c, VELERO_NS, warm, { includedNamespaces: [GATE_NS], spec: { includedResources: ["configmaps"] } });
    await waitFor(`${warm} to finish`, async () => TERMINAL_BACKUP_PHASES.has((await getBackup(c, VELERO_NS, warm)).status?.phase ?? ""), {
      timeoutMs: 120_000,
      intervalMs: 250,
    });
    say(`${run}: gate started; a warm-up backup went through in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const specs = workload(run);
    const { f, seen } = await runOnce(c, n, run, specs, createAll(c, specs));
    const wrong = specs.filter((s) => seen.get(s.name)!.level !== level);
    if (wrong.length)
      throw new Error(`${run}: ${wrong.length} backups were not judged at ${level} level (e.g. ${wrong[0]!.name}: ${seen.get(wrong[0]!.name)!.level})`);
    return f;
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${gate.process.tail(20)}`);
  } finally {
    await gate.stop();
    gate = undefined;
    // Its in-flight webhook fails closed: the next run without the gate must not meet it.
    const adm = n.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    await adm.deleteMutatingWebhookConfiguration({ name: "backup-gate" }).catch(() => undefined);
    await adm.deleteValidatingWebhookConfiguration({ name: "backup-gate" }).catch(() => undefined);
  }
}

async function main(): Promise<void> {
  say(
    `workload: ${NAMESPACES} namespaces x ${PODS} pods, ${ROUNDS} rounds = ${NAMESPACES * PODS * ROUNDS} backups per run; ` +
      `${SLOTS} slots, freeze held ${HOLD_S} s, ${DATA_MIB} MiB per volume`,
  );
  node = await startNodeWhenFree({
    waitMs: 1_800_000,
    onWait: (line, ms) => say(`${line}; waiting for it (${Math.round(ms / 1000)} s so far)`),
  });
  say(`node ready (${node.dir})`);
  velero = await startNodeVelero(node, { concurrentBackups: SLOTS, nodeAgentConcurrency: SLOTS });
  say("Velero ready (its own queue on)");
  const c = clients(node.kubeConfig);
  await createNamespace(c, GATE_NS);
  for (const ns of namespaces) {
    await createNamespace(c, ns);
    for (const pod of pods) {
      await c.core.createNamespacedPod({
        namespace: ns,
        body: freezePod(pod, { image: node.images.busybox, recordsDir: join(node.recordsDir, ns, pod), dataMiB: DATA_MIB, holdSeconds: HOLD_S }),
      });
    }
  }
  await waitFor(
    "every workload pod to be Running and ready",
    async () => {
      for (const ns of namespaces) {
        for (const p of (await c.core.listNamespacedPod({ namespace: ns })).items) {
          if (p.status?.phase !== "Running" || !p.status.containerStatuses?.every((s) => s.ready)) return false;
        }
      }
      return true;
    },
    { timeoutMs: 180_000, intervalMs: 1_000 },
  );
  say("workload pods ready");

  const figures: Figures[] = [];
  for (let i = 1; i <= VQ_REPEATS; i++) {
    const specs = workload(`vq${i}`);
    figures.push((await runOnce(c, node, `velero-queue-${i}`, specs, createAll(c, specs))).f);
  }
  await setNodeVeleroQueue(node, { disabled: true });
  say("Velero's queue disabled");
  // The bound and ItemBlock level run all at once, where the shared machine's noise weighs
  // most: each is repeated, alternating, and compared by their means.
  for (let i = 1; i <= BOUND_REPEATS; i++) {
    const lbSpecs = workload(`lb${i}`);
    figures.push((await runOnce(c, node, `lower-bound-${i}`, lbSpecs, startInOrder(c, lbSpecs))).f);
    if (i === 1) figures.push(await runGate(c, node, "gate-namespace", "Namespace"));
    figures.push(await runGate(c, node, `gate-itemblock-${i}`, "ItemBlock"));
  }
  report(figures);
}

interface Group {
  mean: number;
  spread: number;
  n: number;
}

/** Mean makespan of the runs named `prefix`-N, and their spread (max - min) / mean. */
function group(figures: Figures[], prefix: string): Group {
  const xs = figures.filter((f) => f.run.startsWith(prefix)).map((f) => f.makespanS);
  const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
  return { mean, spread: xs.length > 1 ? (Math.max(...xs) - Math.min(...xs)) / mean : Number.NaN, n: xs.length };
}

function report(figures: Figures[]): void {
  const vq = group(figures, "velero-queue"),
    lb = group(figures, "lower-bound"),
    ib = group(figures, "gate-itemblock");
  const ns = figures.find((f) => f.run === "gate-namespace")!;
  const r = (x: number) => Number(x.toFixed(3));
  const pct = (x: number) => (Number.isNaN(x) ? "n/a" : `${(x * 100).toFixed(0)}%`);
  const row = (f: Figures) =>
    `| ${f.run.padEnd(16)} | ${f.makespanS.toFixed(1).padStart(10)} | ${f.meanWaitS.toFixed(1).padStart(11)} | ` +
    `${f.maxWaitS.toFixed(1).padStart(10)} | ${(f.makespanS / vq.mean).toFixed(2).padStart(9)} | ${(f.makespanS / lb.mean).toFixed(2).padStart(9)} | ` +
    `${String(f.notCompleted).padStart(13)} | ${String(f.busyFreezes).padStart(12)} | ${String(f.pvbOverlaps).padStart(12)} |`;
  const groupLine = (name: string, g: Group) => `${name}: mean of ${g.n} runs ${g.mean.toFixed(1)} s, spread ${pct(g.spread)} (max - min) / mean`;
  console.log(
    [
      "",
      `side by side on the real node: ${ns.backups} backups per run (${NAMESPACES} namespaces x ${PODS} pods x ${ROUNDS} rounds), ` +
        `${SLOTS} slots, freeze held ${HOLD_S} s, ${DATA_MIB} MiB per volume (kopia); ratios to the means`,
      "| run              | makespan s | mean wait s | max wait s | / velero  | / bound   | not Completed | busy freezes | PVB overlaps |",
      "| ---------------- | ---------- | ----------- | ---------- | --------- | --------- | ------------- | ------------ | ------------ |",
      ...figures.map(row),
      groupLine("velero-queue", vq),
      groupLine("lower-bound", lb),
      groupLine("gate-itemblock", ib),
      `goal: gate-itemblock <= 1.1x lower bound: ${(ib.mean / lb.mean).toFixed(2)}x; <= 0.5x velero-queue: ${(ib.mean / vq.mean).toFixed(2)}x`,
      `goal: gate-namespace not slower than velero-queue beyond noise: ${(ns.makespanS / vq.mean).toFixed(2)}x (velero-queue spread ${pct(vq.spread)})`,
    ].join("\n"),
  );
  console.log(
    JSON.stringify({
      bench: "sidebyside-node",
      namespaces: NAMESPACES,
      pods: PODS,
      rounds: ROUNDS,
      slots: SLOTS,
      holdS: HOLD_S,
      dataMiB: DATA_MIB,
      veleroQueueMeanS: r(vq.mean),
      veleroQueueSpread: r(vq.spread),
      lowerBoundMeanS: r(lb.mean),
      lowerBoundSpread: r(lb.spread),
      itemBlockMeanS: r(ib.mean),
      itemBlockSpread: r(ib.spread),
      itemBlockOverBound: r(ib.mean / lb.mean),
      itemBlockOverVelero: r(ib.mean / vq.mean),
      namespaceOverVelero: r(ns.makespanS / vq.mean),
      runs: figures.map((f) => ({ ...f, makespanS: r(f.makespanS), meanWaitS: r(f.meanWaitS), maxWaitS: r(f.maxWaitS) })),
    }),
  );
}

main().then(
  () => stopAll().then(() => process.exit(0)),
  (e: unknown) => {
    console.error(`sidebyside failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    if (velero) console.error(velero.logs(30));
    void stopAll().then(() => process.exit(1));
  },
);
