/**
 * `npm run demo`: the local stack on a real node (README, "The two commands").
 *
 * Starts the real one-node cluster of the tests (test/support/node.ts: etcd, kube-apiserver,
 * containerd, kubelet, controller-manager, scheduler), Velero on it (server and node-agent as
 * pods, an S3 server, its own queue disabled) and backup-gate with dev certificates from
 * certs/ and its webhooks registered; creates a small estate of running pods (stateful apps
 * with data, freeze hooks and file-system backups); sends a burst of backups; shows the queue
 * live; writes a report (demo-report/report.html and report.txt) with the real work (hook
 * records, PodVolumeBackups with their bytes); then keeps the stack running until Ctrl-C (or
 * exits at once with --no-wait or DEMO_EXIT=1). Every exit, Ctrl-C included, stops the node.
 *
 * Needs root (the node makes links, mounts and cgroups). Environment: DEMO_EXIT=1 (as
 * --no-wait), DEMO_REPORT_DIR (default demo-report/), DEMO_DATA_MIB (data per stateful app,
 * default 16), DEMO_HOLD_S (seconds each freeze hook holds, default 3).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { startNodeVelero, startNodeWhenFree, type NodeVelero, type TestNode } from "../test/support/node.js";
import { createWithWarnings } from "../test/support/gate.js";
import { backupBody } from "../test/support/builders.js";
import { clients, createNamespace, isApiError, type Clients, type VeleroObject } from "../test/support/objects.js";
import { freezeWindows, readFreezeRecords } from "../test/support/nodeFreeze.js";
import { describeOverlaps, findOverlaps, readProbeRecords } from "../test/support/overlap.js";
import { repoRoot, toolPath } from "../test/support/tools.js";
import { sleep, waitFor } from "../test/support/wait.js";
import { startWatch, type StartedWatch } from "../test/support/watch.js";
import { writeDevCerts } from "../src/tls/devCerts.js";
import { createEstate, demoBackups, demoPolicy, recordsDirOf, STATEFUL_APPS } from "./demo/estate.js";
import { demoReportHtml, demoReportText, type DemoReportInput, type DemoWork, type OverlapNote, type Rejection } from "./demo/report.js";
import { startDemoGate, type DemoGate } from "./demo/stack.js";
import { Tracker } from "./demo/tracker.js";
import { LiveView } from "./demo/view.js";

const VELERO_NS = "velero";
const GATE_NS = "backup-gate";
const SLOTS = 4;
const LEVEL = "ItemBlock";
const ALL_DONE_TIMEOUT_MS = 420_000;
const NODE_WAIT_MS = 1_800_000;

const USAGE = `npm run demo [-- --no-wait]

  --no-wait   exit (stopping everything) once the report is written; same as DEMO_EXIT=1`;

const { values: flags } = parseArgs({ options: { "no-wait": { type: "boolean" }, help: { type: "boolean", short: "h" } }, strict: true });
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
const exitAfterReport = Boolean(flags["no-wait"]) || process.env.DEMO_EXIT === "1";
const reportDir = resolve(process.env.DEMO_REPORT_DIR ?? join(repoRoot, "demo-report"));
const certsDir = join(repoRoot, "certs");
const positive = (name: string, dflt: number) => {
  const n = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${process.env[name]}: expected a non-negative number`);
  return n;
};
const dataMiB = positive("DEMO_DATA_MIB", 16);
const holdSeconds = positive("DEMO_HOLD_S", 3);
const started = Date.now();
const show = (p: string) => (p.startsWith(repoRoot) ? relative(process.cwd(), p) || "." : p);

let view: LiveView | undefined;
const say = (s: string) => {
  if (view) view.note(s);
  else console.log(`[demo +${((Date.now() - started) / 1000).toFixed(1)}s] ${s}`);
};

// ---- stopping: Ctrl-C at any point stops whatever has started, in reverse order ----
let node: TestNode | undefined;
let gate: DemoGate | undefined;
let velero: NodeVelero | undefined;
let watch: StartedWatch | undefined;
let poller: NodeJS.Timeout | undefined;
let stopping: Promise<void> | undefined;

function stopAll(): Promise<void> {
  stopping ??= (async () => {
    if (poller) clearInterval(poller);
    watch?.abort();
    view = undefined;
    // Velero first (its writes go through the gate's webhooks), then the gate, then the node.
    await velero?.stop().catch(() => {});
    await gate?.stop().catch(() => {});
    await node?.stop().catch((e: unknown) => console.error(`stopping the node: ${(e as Error).message}`));
  })();
  return stopping;
}

let signalled = 0;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    signalled += 1;
    if (signalled > 1) {
      console.log("\nstopping at once (every child's process group is killed on exit)");
      process.exit(130);
    }
    view = undefined;
    console.log(`\n${sig}: stopping Velero, backup-gate and the node (Ctrl-C again to kill at once; the next node run cleans up what is left)...`);
    void stopAll().then(() => {
      console.log("stopped.");
      process.exit(sig === "SIGINT" ? 130 : 143);
    });
  });
}

function utcStamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, "").slice(0, 14);
}

async function main(): Promise<number> {
  // Fails with "run `bash tools/build.sh`" if the Go tools are missing (npm run demo builds them first).
  for (const t of ["etcd", "kube-apiserver", "kubelet", "kube-controller-manager", "kube-scheduler", "velero", "s3", "images"] as const) toolPath(t);

  say("starting the node (etcd, kube-apiserver, containerd, kubelet, controller-manager, scheduler)");
  node = await startNodeWhenFree({
    waitMs: NODE_WAIT_MS,
    onWait: (line, ms) => say(`${line}; waiting for it (${Math.round(ms / 1000)}s so far; Ctrl-C to give up)`),
  });
  const logDir = join(node.dir, "logs");
  const c = clients(node.kubeConfig);
  say(`node ${node.nodeName} Ready; API server at ${node.host}; logs in ${logDir}`);

  say(`starting Velero on the node (server and node-agent pods, --disable-controllers=backup-queue --concurrent-backups ${SLOTS}) and the S3 server`);
  velero = await startNodeVelero(node, { concurrentBackups: SLOTS, disableQueue: true, nodeAgentConcurrency: SLOTS });
  say("Velero ready (BackupStorageLocation default is Available)");

  await createNamespace(c, GATE_NS).catch((e: unknown) => {
    if (!isApiError(e, 409)) throw e;
  });
  await createEstate(c, { image: node.images.busybox, recordsDir: node.recordsDir, dataMiB, holdSeconds });
  say(
    `sample estate running: shop (cart + orders), db (postgres), analytics (clickhouse): ${dataMiB} MiB each, freeze hooks holding ${holdSeconds}s; web (stateless)`,
  );
  await c.core.createNamespacedConfigMap({
    namespace: GATE_NS,
    body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": demoPolicy(SLOTS) } },
  });

  await writeDevCerts(certsDir);
  say(`dev certificates written to ${show(certsDir)}/ (ca.crt, tls.crt, tls.key)`);
  gate = await startDemoGate(node, { certsDir, logDir, namespace: GATE_NS });
  say(`backup-gate serving at ${gate.url} (--tls-dir ${show(certsDir)}), webhooks registered`);

  // ---- the burst, watched live ----
  const tracker = new Tracker();
  const rejections: Rejection[] = [];
  const problems: string[] = [];
  watch = await startWatch(node.kubeConfig, `/apis/velero.io/v1/namespaces/${VELERO_NS}/backups`, {}, (_type, o: VeleroObject) =>
    tracker.observe(o, Date.now()),
  );
  const liveView = new LiveView();
  view = liveView;
  let t0: number | undefined;
  const header = () => ({ elapsedSeconds: t0 === undefined ? 0 : (Date.now() - t0) / 1000, slots: SLOTS, level: LEVEL });
  const poll = async () => {
    const list = (await c.custom.listNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: VELERO_NS, plural: "backups" })) as {
      items: VeleroObject[];
    };
    const now = Date.now();
    for (const o of list.items) tracker.observe(o, now);
    if (view) view.draw(tracker.rows(), header());
  };
  let polling = false;
  poller = setInterval(() => {
    if (polling) return;
    polling = true;
    poll()
      .catch(() => {})
      .finally(() => {
        polling = false;
      });
  }, 1000);

  const stamp = Date.now();
  for (const b of demoBackups(utcStamp(stamp), utcStamp(stamp + 3_600_000))) {
    const at = Date.now();
    t0 ??= at;
    tracker.created(b.name, at, b.description);
    const res = await createWithWarnings(node, `/apis/velero.io/v1/namespaces/${VELERO_NS}/backups`, backupBody(b.name, VELERO_NS, b.options));
    if (res.status === 201) {
      for (const w of res.warnings) say(`warning: ${w}`);
      if (b.expectRejection) problems.push(`${b.name} was admitted, but serialWorkloads: Forbid should have rejected it`);
    } else {
      tracker.refused(b.name);
      const message = String(res.body?.message ?? JSON.stringify(res.body));
      rejections.push({ name: b.name, at, status: res.status, message });
      say(`rejected ${b.name} (HTTP ${res.status}): ${message}`);
      if (!b.expectRejection) problems.push(`${b.name} was refused: ${message}`);
    }
    await sleep(200);
  }

  try {
    await waitFor("every backup of the burst to finish", () => tracker.allDone(), { timeoutMs: ALL_DONE_TIMEOUT_MS, intervalMs: 250 });
  } catch (e) {
    view = undefined;
    console.log(`\n${(e as Error).message}\n${velero.logs(30)}\n${gate.process.tail(20)}`);
    return 1;
  }
  clearInterval(poller);
  poller = undefined;
  while (polling) await sleep(50);
  await poll().catch(() => {});
  view = undefined;
  watch.abort();

  // ---- the report ----
  const records = tracker.records_();
  const probe = readProbeRecords(velero.probeDir);
  const found = findOverlaps(probe);
  const overlaps: OverlapNote[] = found.map((o) => ({ at: Number(o.b.start / 1_000_000n), label: describeOverlaps([o]) }));
  for (const r of records) if (r.phase !== "Completed") problems.push(`${r.name} ended ${r.phase}`);
  if (found.length) problems.push(`${found.length} overlaps found in the probe's records`);
  if (!rejections.length) problems.push("no create was rejected (the scheduled duplicate should be)");

  const work = await realWork(
    c,
    node,
    records.map((r) => r.name),
  );
  const busy = work.freezes.filter((f) => f.busy);
  if (busy.length) problems.push(`${busy.length} freeze hooks found their pod already frozen (${busy.map((f) => f.pod).join(", ")})`);
  if (!work.volumeCopies.length) problems.push("no PodVolumeBackup was made (Velero copied no volume)");
  for (const v of work.volumeCopies) if (v.phase !== "Completed") problems.push(`PodVolumeBackup of ${v.pod}/${v.volume} for ${v.backup} ended ${v.phase}`);

  const input: DemoReportInput = { level: LEVEL, slots: SLOTS, backups: records, rejections, overlaps, work };
  const text = demoReportText(input);
  mkdirSync(reportDir, { recursive: true });
  const htmlFile = join(reportDir, "report.html");
  const textFile = join(reportDir, "report.txt");
  writeFileSync(htmlFile, demoReportHtml(input));
  writeFileSync(textFile, `${text}\n`);
  writeFileSync(join(reportDir, "report.json"), `${JSON.stringify(input, null, 2)}\n`);

  console.log(`\n== report ==\n${text}\n`);
  console.log(`HTML timeline: ${show(htmlFile)}  (file://${htmlFile})`);
  console.log(`text: ${show(textFile)}`);
  for (const p of problems) console.log(`PROBLEM: ${p}`);

  const kubeconfig = node.kubeconfigPath;
  console.log(`
== the stack ==
kubeconfig:  ${kubeconfig}
  ${toolPath("kubectl")} --kubeconfig ${kubeconfig} get pods -A
  ${toolPath("kubectl")} --kubeconfig ${kubeconfig} get backups,podvolumebackups -n ${VELERO_NS}
  ${toolPath("velero")} --kubeconfig ${kubeconfig} -n ${VELERO_NS} backup describe cart-1 --details
  (kubectl and the velero CLI are built into the tools cache; they are not on PATH)
backup-gate: ${gate.url} (certificates in ${show(certsDir)}/)
logs:        ${logDir}  (backup-gate.log, kubelet.log, kube-apiserver.log, ...; Velero's pods: ${join(node.dir, "pod-logs")})
hook records: ${node.recordsDir}/<namespace>/<pod>/freeze.log
(everything under ${node.dir} is removed when the demo stops)`);

  if (exitAfterReport) {
    console.log("\n--no-wait / DEMO_EXIT=1: stopping everything.");
    await stopAll();
    return problems.length ? 1 : 0;
  }
  console.log("\nThe stack keeps running; try the commands above. Ctrl-C stops everything.");
  await new Promise<never>(() => {
    setInterval(() => {}, 1 << 30);
  }); // until a signal
  return 0;
}

/** What the backups did on the node: Velero's hook counts, the pods' freeze records, the PodVolumeBackups. */
async function realWork(c: Clients, n: TestNode, backups: string[]): Promise<DemoWork> {
  const names = new Set(backups);
  const hooks: DemoWork["hooks"][number][] = [];
  for (const name of backups) {
    try {
      const b = (await c.custom.getNamespacedCustomObject({
        group: "velero.io",
        version: "v1",
        namespace: VELERO_NS,
        plural: "backups",
        name,
      })) as VeleroObject;
      hooks.push({ backup: name, attempted: b.status?.hookStatus?.hooksAttempted ?? 0, failed: b.status?.hookStatus?.hooksFailed ?? 0 });
    } catch (e) {
      if (!isApiError(e, 404)) throw e; // refused at create: never stored
    }
  }
  const freezes: DemoWork["freezes"][number][] = [];
  for (const [ns, app] of STATEFUL_APPS) {
    const records = readFreezeRecords(recordsDirOf(n, ns, app));
    for (const w of freezeWindows(records))
      freezes.push({ pod: `${ns}/${app}`, at: w.fromMs, ...(w.toMs !== undefined ? { releasedAt: w.toMs } : {}), busy: false });
    for (const r of records) if (r.kind === "freeze" && r.outcome === "busy") freezes.push({ pod: `${ns}/${app}`, at: r.atMs, busy: true });
  }
  const pvbs = (await c.custom.listNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: VELERO_NS, plural: "podvolumebackups" })) as {
    items: VeleroObject[];
  };
  const time = (s: unknown) => (typeof s === "string" && Number.isFinite(Date.parse(s)) ? Date.parse(s) : undefined);
  const volumeCopies = pvbs.items
    .filter((p) => names.has(p.metadata.labels?.["velero.io/backup-name"] ?? ""))
    .map((p) => {
      const start = time(p.status?.startTimestamp);
      const end = time(p.status?.completionTimestamp);
      return {
        backup: p.metadata.labels?.["velero.io/backup-name"] as string,
        pod: `${p.spec?.pod?.namespace}/${p.spec?.pod?.name}`,
        volume: String(p.spec?.volume ?? ""),
        phase: String(p.status?.phase ?? ""),
        bytes: Number(p.status?.progress?.bytesDone ?? p.status?.progress?.totalBytes ?? 0),
        ...(start !== undefined ? { start } : {}),
        ...(end !== undefined ? { end } : {}),
      };
    });
  return { hooks, freezes, volumeCopies };
}

main().then(
  (code) => {
    void stopAll().then(() => process.exit(code));
  },
  (e: unknown) => {
    // After Ctrl-C the stack is torn down under main's feet: its errors are expected, and the signal handler exits.
    if (signalled) return;
    view = undefined;
    console.error(`demo failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    void stopAll().then(() => process.exit(1));
  },
);
