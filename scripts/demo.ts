/**
 * `npm run demo`: the local stack (README, "The two commands").
 *
 * Starts a control plane (etcd + kube-apiserver with Velero's CRDs), an in-memory S3 server,
 * Velero with its own queue disabled, and backup-gate with dev certificates from certs/ and
 * its webhooks registered; creates a small estate and a burst of backups; shows the queue
 * live; writes a report (demo-report/report.html and report.txt); then keeps the stack
 * running until Ctrl-C (or exits at once with --no-wait or DEMO_EXIT=1).
 *
 * Environment: DEMO_EXIT=1 (as --no-wait), DEMO_REPORT_DIR (default demo-report/),
 * DEMO_PROBE_SLEEP (how long Velero's probe plugin holds each pod/PVC/PV, default 2s).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { startControlPlane, type ControlPlane } from "../test/support/controlPlane.js";
import { createWithWarnings } from "../test/support/gate.js";
import { backupBody, clients, createNamespace, isApiError, type VeleroObject } from "../test/support/objects.js";
import { describeOverlaps, findOverlaps, readProbeRecords } from "../test/support/overlap.js";
import { repoRoot, toolPath } from "../test/support/tools.js";
import { startVelero, type Velero } from "../test/support/velero.js";
import { sleep, waitFor } from "../test/support/wait.js";
import { startWatch, type StartedWatch } from "../test/support/watch.js";
import { writeDevCerts } from "../src/tls/devCerts.js";
import { createEstate, demoBackups, demoPolicy } from "./demo/estate.js";
import { demoReportHtml, demoReportText, type DemoReportInput, type OverlapNote, type Rejection } from "./demo/report.js";
import { startDemoGate, waitForPort, type DemoGate } from "./demo/stack.js";
import { Tracker } from "./demo/tracker.js";
import { LiveView } from "./demo/view.js";

const VELERO_NS = "velero";
const GATE_NS = "backup-gate";
const SLOTS = 4;
const LEVEL = "ItemBlock";
const VELERO_PORT = 8080;
const ALL_DONE_TIMEOUT_MS = 300_000;

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
const probeSleep = process.env.DEMO_PROBE_SLEEP ?? "2s";
const started = Date.now();
const show = (p: string) => (p.startsWith(repoRoot) ? relative(process.cwd(), p) || "." : p);

let view: LiveView | undefined;
const say = (s: string) => {
  if (view) view.note(s);
  else console.log(`[demo +${((Date.now() - started) / 1000).toFixed(1)}s] ${s}`);
};

// ---- stopping: Ctrl-C at any point stops whatever has started, in reverse order ----
let cp: ControlPlane | undefined;
let gate: DemoGate | undefined;
let velero: Velero | undefined;
let watch: StartedWatch | undefined;
let poller: NodeJS.Timeout | undefined;
let stopping: Promise<void> | undefined;

function stopAll(): Promise<void> {
  stopping ??= (async () => {
    if (poller) clearInterval(poller);
    watch?.abort();
    view = undefined;
    // Velero first (its writes go through the gate's webhooks), then the gate, then the API server.
    await velero?.stop().catch(() => {});
    await gate?.stop().catch(() => {});
    await cp?.stop().catch(() => {});
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
    console.log(`\n${sig}: stopping Velero, backup-gate and the control plane (Ctrl-C again to kill at once)...`);
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
  for (const t of ["controlplane", "etcd", "kube-apiserver", "velero", "velero-plugin-for-aws", "s3", "probe"] as const) toolPath(t);

  const runDir = mkdtempSync(join(process.env.BACKUP_GATE_DEMO_TMP ?? tmpdir(), "backup-gate-demo-"));
  const logDir = join(runDir, "logs");
  say(`starting the control plane (etcd + kube-apiserver, Velero's CRDs); logs in ${logDir}`);
  cp = await startControlPlane({ name: "demo", dir: runDir });
  const c = clients(cp.kubeConfig);
  say(`control plane ready at ${cp.host}`);

  for (const ns of [VELERO_NS, GATE_NS]) await createNamespace(c, ns).catch((e: unknown) => { if (!isApiError(e, 409)) throw e; });
  await createEstate(c);
  say("sample estate: shop (cart + orders, each pod/PVC/PV), db (postgres), analytics (clickhouse), web (stateless)");
  await c.core.createNamespacedConfigMap({ namespace: GATE_NS, body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": demoPolicy(SLOTS) } } });

  await writeDevCerts(certsDir);
  say(`dev certificates written to ${show(certsDir)}/ (ca.crt, tls.crt, tls.key)`);
  gate = await startDemoGate(cp, { certsDir, logDir, namespace: GATE_NS });
  say(`backup-gate serving at ${gate.url} (--tls-dir ${show(certsDir)}), webhooks registered`);

  // Only one Velero per machine: its metrics server binds *:8080.
  for (;;) {
    await waitForPort(VELERO_PORT, say);
    say(`starting Velero (--disable-controllers=backup-queue --concurrent-backups ${SLOTS}, probe plugin holding each item ${probeSleep}) and the S3 server`);
    try {
      velero = await startVelero(cp, { concurrentBackups: SLOTS, disableQueue: true, probeSleep });
      break;
    } catch (e) {
      if (!/port 8080 is in use/.test((e as Error).message)) throw e;
      say("port 8080 was taken again before Velero started; waiting again");
    }
  }
  say("Velero ready (BackupStorageLocation default is Available)");

  // ---- the burst, watched live ----
  const tracker = new Tracker();
  const rejections: Rejection[] = [];
  const problems: string[] = [];
  watch = await startWatch(cp.kubeConfig, `/apis/velero.io/v1/namespaces/${VELERO_NS}/backups`, {},
    (_type, o: VeleroObject) => tracker.observe(o, Date.now()));
  const liveView = new LiveView();
  view = liveView;
  let t0: number | undefined;
  const header = () => ({ elapsedSeconds: t0 === undefined ? 0 : (Date.now() - t0) / 1000, slots: SLOTS, level: LEVEL });
  const poll = async () => {
    const list = await c.custom.listNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: VELERO_NS, plural: "backups" }) as { items: VeleroObject[] };
    const now = Date.now();
    for (const o of list.items) tracker.observe(o, now);
    if (view) view.draw(tracker.rows(), header());
  };
  let polling = false;
  poller = setInterval(() => {
    if (polling) return;
    polling = true;
    poll().catch(() => {}).finally(() => { polling = false; });
  }, 1000);

  const stamp = Date.now();
  for (const b of demoBackups(utcStamp(stamp), utcStamp(stamp + 3_600_000))) {
    const at = Date.now();
    t0 ??= at;
    tracker.created(b.name, at, b.description);
    const res = await createWithWarnings(cp, `/apis/velero.io/v1/namespaces/${VELERO_NS}/backups`, backupBody(b.name, VELERO_NS, b.options));
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

  const input: DemoReportInput = { level: LEVEL, slots: SLOTS, backups: records, rejections, overlaps };
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

  const kubeconfig = cp.kubeconfigPath;
  console.log(`
== the stack ==
kubeconfig:  ${kubeconfig}
  ${toolPath("kubectl")} --kubeconfig ${kubeconfig} get backups -n ${VELERO_NS}
  ${toolPath("velero")} --kubeconfig ${kubeconfig} -n ${VELERO_NS} backup get
  (kubectl and the velero CLI are built into the tools cache; they are not on PATH)
backup-gate: ${gate.url} (certificates in ${show(certsDir)}/)
logs:        ${logDir}  (backup-gate.log, velero-1.log, kube-apiserver.log, ...)`);

  if (exitAfterReport) {
    console.log("\n--no-wait / DEMO_EXIT=1: stopping everything.");
    await stopAll();
    return problems.length ? 1 : 0;
  }
  console.log("\nThe stack keeps running; try the commands above. Ctrl-C stops everything.");
  await new Promise<never>(() => { setInterval(() => {}, 1 << 30); }); // until a signal
  return 0;
}

main().then(
  (code) => {
    void stopAll().then(() => process.exit(code));
  },
  (e: unknown) => {
    view = undefined;
    console.error(`demo failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    void stopAll().then(() => process.exit(1));
  },
);
