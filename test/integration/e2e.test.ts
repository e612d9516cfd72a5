/**
 * End to end: real kube-apiserver, real Velero 1.18.3 (its queue off:
 * --disable-controllers=backup-queue --concurrent-backups 4) with the probe plugin holding
 * every pod, PVC and PV for PROBE_SLEEP, and backup-gate serve (separate process, webhooks
 * registered) promoting the backups.
 *
 * One workload, one scenario of 13 backups run at ItemBlock level and again at Namespace
 * level (the policy switched at run time), then serial workloads (Forbid, Replace). Checked
 * over everything that ran:
 * - integrity: no item of a unit exclusive for both backups (per the core's scopes) is
 *   processed by two backups at overlapping times. Overlaps on items only one side (or neither)
 *   needs exclusively, e.g. a manifest-only backup reading a pod another backup snapshots, are
 *   allowed by design and only counted;
 * - concurrency: backups sharing a namespace but no exclusive unit run at the same time;
 * - levels: at Namespace level, no two backups sharing a namespace run at the same time;
 * - fidelity: the pods, PVCs and PVs the core predicts (from a snapshot taken before any
 *   backup ran) are exactly what the probe saw Velero process.
 *
 * Pods never run here (no kubelet), so Velero runs no hook and no file-system backup, and a
 * hostPath PV is never snapshotted; the gate still claims those units exclusively, which is
 * what the integrity check holds it to.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import {
  exclusiveOverlaps,
  fidelityDiff,
  predict,
  predictedItems,
  probeSpan,
  snapshotCluster,
  spansOverlap,
  Timeline,
  type Prediction,
} from "../support/e2e.js";
import { createWithWarnings, startGate, type GateProcess } from "../support/gate.js";
import { backupBody } from "../support/builders.js";
import {
  bindPvcToPv,
  clients,
  createNamespace,
  createPod,
  createPv,
  createPvc,
  createSchedule,
  createWorkload,
  getBackup,
  updateVelero,
  type BackupOptions,
  type Clients,
  type VeleroObject,
} from "../support/objects.js";
import { describeOverlaps, readProbeRecords } from "../support/overlap.js";
import { startVelero, waitForBackupDone, type Velero } from "../support/velero.js";
import { sleep, waitFor } from "../support/wait.js";

const VELERO = "velero";
const GATE_NS = "backup-gate";
const PROBE_SLEEP = "400ms";
const CONCURRENCY = 4;
const POLICY = (level: string, serial = "Forbid") =>
  `conflictLevel: ${level}\nmaxConcurrentBackups: ${CONCURRENCY}\npriorities: {agingSeconds: 0}\nserialWorkloads: ${serial}\n`;
const TEST_TIMEOUT_MS = 300_000;

const NS = { shop: "e2e-shop", hooks: "e2e-hooks", shared: "e2e-shared", vg: "e2e-vg", stateless: "e2e-stateless" };

interface Spec {
  name: string;
  o: BackupOptions;
}

/** The scenario: 13 backups, in creation order. */
function scenario(p: string): Spec[] {
  const app = (ns: string, a: string, spec: Record<string, unknown> = {}): BackupOptions => ({
    includedNamespaces: [ns],
    spec: { labelSelector: { matchLabels: { app: a } }, ...spec },
  });
  const manifests = { snapshotVolumes: false };
  return [
    { name: `${p}cart`, o: app(NS.shop, "cart") },
    { name: `${p}orders`, o: app(NS.shop, "orders") },
    { name: `${p}cart-again`, o: app(NS.shop, "cart") }, // shares cart's unit: waits for it
    { name: `${p}shop-manifests`, o: { includedNamespaces: [NS.shop], spec: manifests } }, // manifest-only
    { name: `${p}shared-a`, o: app(NS.shared, "a") },
    { name: `${p}shared-b`, o: app(NS.shared, "b") }, // one PVC mounted by both pods: waits for shared-a
    { name: `${p}vg-a`, o: app(NS.vg, "vga") },
    { name: `${p}vg-b`, o: app(NS.vg, "vgb") }, // a volume group joins both PVCs: waits for vg-a
    { name: `${p}hooks-all`, o: { includedNamespaces: [NS.hooks], spec: manifests } }, // hook annotation: exclusive even manifest-only
    { name: `${p}hooks-db`, o: app(NS.hooks, "db", manifests) },
    { name: `${p}stateless`, o: { includedNamespaces: [NS.stateless] } },
    // Cluster-scoped only (PVs), manifests only: conflicts with nothing at ItemBlock level.
    {
      name: `${p}cluster-pvs`,
      o: {
        includedNamespaces: ["*"],
        spec: { includedClusterScopedResources: ["persistentvolumes"], excludedNamespaceScopedResources: ["*"], snapshotVolumes: false },
      },
    },
    // Every namespace, manifests only: still runs the hook on e2e-hooks/db.
    { name: `${p}all-manifests`, o: { includedNamespaces: ["*"], spec: manifests } },
  ];
}

async function buildWorkload(c: Clients): Promise<void> {
  for (const ns of Object.values(NS)) await createNamespace(c, ns);
  for (const a of ["cart", "orders", "pay"]) await createWorkload(c, NS.shop, a);
  // Hooks: a pod with a pre-backup hook annotation and a volume, and one without.
  await createPvc(c, NS.hooks, "data-db");
  await createPv(c, "pv-e2e-hooks-db");
  await bindPvcToPv(c, NS.hooks, "data-db", "pv-e2e-hooks-db");
  await createPod(c, NS.hooks, "db", {
    pvcs: ["data-db"],
    labels: { app: "db" },
    annotations: { "pre.hook.backup.velero.io/command": '["/bin/sync"]', "pre.hook.backup.velero.io/container": "main" },
  });
  await createPod(c, NS.hooks, "web", { labels: { app: "web" } });
  // A shared PVC mounted by two pods.
  await createPvc(c, NS.shared, "shared-data");
  await createPv(c, "pv-e2e-shared");
  await bindPvcToPv(c, NS.shared, "shared-data", "pv-e2e-shared");
  await createPod(c, NS.shared, "a", { pvcs: ["shared-data"], labels: { app: "a" } });
  await createPod(c, NS.shared, "b", { pvcs: ["shared-data"], labels: { app: "b" } });
  // A volume group: two PVCs, one pod each.
  for (const x of ["a", "b"]) {
    await createPvc(c, NS.vg, `vg-${x}`, { labels: { "velero.io/volume-group": "g1" } });
    await createPv(c, `pv-e2e-vg-${x}`);
    await bindPvcToPv(c, NS.vg, `vg-${x}`, `pv-e2e-vg-${x}`);
    await createPod(c, NS.vg, `vg${x}`, { pvcs: [`vg-${x}`], labels: { app: `vg${x}` } });
  }
  await createPod(c, NS.stateless, "s1", { labels: { app: "s" } });
  await createPod(c, NS.stateless, "s2", { labels: { app: "s" } });
}

describe("end to end: Velero + backup-gate on a real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let velero: Velero;
  let gate: GateProcess;
  let cluster: object[];
  const created: VeleroObject[] = [];
  /** Backups that ran (reached a terminal phase other than a rejection or supersession) and must match the prediction. */
  const ran: string[] = [];
  let prediction: () => Prediction;

  const create = async (name: string, o: BackupOptions, dryRun = false) => {
    const res = await createWithWarnings(cp, `/apis/velero.io/v1/namespaces/${VELERO}/backups${dryRun ? "?dryRun=All" : ""}`, backupBody(name, VELERO, o));
    if (res.status === 201 && !dryRun) created.push(res.body as VeleroObject);
    return res;
  };
  const setPolicy = (text: string) =>
    c.core.replaceNamespacedConfigMap({
      name: "backup-gate-policy",
      namespace: GATE_NS,
      body: { metadata: { name: "backup-gate-policy", namespace: GATE_NS }, data: { "policy.yaml": text } },
    });
  /** Switches the policy and waits until admission judges a fresh backup by it (dry run: nothing is stored). */
  const switchPolicy = async (text: string, check: (res: Awaited<ReturnType<typeof create>>) => boolean, what: string) => {
    await setPolicy(text);
    await waitFor(`the gate to apply the new policy (${what})`, async () => check(await create("policy-probe", { includedNamespaces: [NS.stateless] }, true)), {
      timeoutMs: 30_000,
      intervalMs: 500,
    });
  };
  const runAll = async (specs: Spec[]) => {
    for (const s of specs) {
      const res = await create(s.name, s.o);
      expect(res.status, `create ${s.name}: ${JSON.stringify(res.body)}`).toBe(201);
    }
    const done = await Promise.all(specs.map((s) => waitForBackupDone(velero, cp, s.name, 240_000)));
    for (const d of done) {
      expect(["Completed", "PartiallyFailed"], `${d.metadata.name}: ${JSON.stringify(d.status)}`).toContain(d.status?.phase);
      ran.push(d.metadata.name);
    }
    return done;
  };

  beforeAll(async () => {
    cp = await startControlPlane({ name: "e2e" });
    c = clients(cp.kubeConfig);
    for (const ns of [VELERO, GATE_NS]) await createNamespace(c, ns);
    await c.core.createNamespacedConfigMap({
      namespace: GATE_NS,
      body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": POLICY("ItemBlock") } },
    });
    await buildWorkload(c);
    cluster = await snapshotCluster(cp);
    let cached: { n: number; p: Prediction } | undefined;
    prediction = () => {
      if (cached?.n !== created.length)
        cached = { n: created.length, p: predict(cluster, created, { conflictLevel: "ItemBlock", priorities: { agingSeconds: 0 } }) };
      return cached.p;
    };
    gate = await startGate(cp, { identity: "e2e-gate", register: true });
    velero = await startVelero(cp, { concurrentBackups: CONCURRENCY, disableQueue: true, probeSleep: PROBE_SLEEP });
  }, 600_000);
  afterAll(async () => {
    await velero?.stop();
    await gate?.stop();
    await cp?.stop();
  });

  it(
    "ItemBlock level: backups that share no exclusive unit run together, even in one namespace; those that share one never overlap",
    async () => {
      const specs = scenario("ib-");
      await runAll(specs);
      const records = readProbeRecords(velero.probeDir);
      const span = (n: string) => probeSpan(records, `ib-${n}`);
      // Concurrency: same namespace, different apps.
      expect(spansOverlap(span("cart"), span("orders")), `cart ${String(span("cart"))} orders ${String(span("orders"))}`).toBe(true);
      // Serialized: they share an exclusive unit (PVC, shared PVC, volume group, hook pod).
      for (const [a, b] of [
        ["cart", "cart-again"],
        ["shared-a", "shared-b"],
        ["vg-a", "vg-b"],
        ["hooks-all", "hooks-db"],
        ["hooks-all", "all-manifests"],
        ["hooks-db", "all-manifests"],
      ] as const) {
        expect(spansOverlap(span(a), span(b)), `${a} ${String(span(a))} and ${b} ${String(span(b))} ran at once`).toBe(false);
      }
      // Backups sharing a namespace ran together somewhere (the point of ItemBlock level).
      const p = prediction();
      const pairs: string[] = [];
      for (const a of specs)
        for (const b of specs) {
          if (a.name >= b.name) continue;
          const sa = p.scopes.get(a.name)!,
            sb = p.scopes.get(b.name)!;
          if (sa.queueNamespaces.some((n) => sb.queueNamespaces.includes(n)) && spansOverlap(probeSpan(records, a.name), probeSpan(records, b.name)))
            pairs.push(`${a.name}+${b.name}`);
        }
      console.log(`ItemBlock level: ${pairs.length} pairs of backups sharing a namespace ran at the same time: ${pairs.join(", ")}`);
      expect(pairs.length).toBeGreaterThanOrEqual(2);
      const { exclusive, allowed } = exclusiveOverlaps(p, records);
      expect(exclusive, describeOverlaps(exclusive)).toEqual([]);
      console.log(`ItemBlock level: ${allowed.length} item overlaps, all on units not exclusive for both backups (manifest-only reads; allowed by design)`);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "Namespace level, switched at run time: backups that share a namespace never run at the same time",
    async () => {
      await switchPolicy(
        POLICY("Namespace"),
        (r) => r.body?.metadata?.annotations?.["backup-gate.io/conflict-level"] === "Namespace",
        "conflictLevel Namespace",
      );
      const specs = scenario("ns-");
      await runAll(specs);
      const records = readProbeRecords(velero.probeDir);
      const p = prediction();
      const bad: string[] = [];
      let together = 0;
      for (const a of specs)
        for (const b of specs) {
          if (a.name >= b.name) continue;
          const sa = p.scopes.get(a.name)!,
            sb = p.scopes.get(b.name)!;
          const shared = sa.queueNamespaces.filter((n) => sb.queueNamespaces.includes(n));
          const at = spansOverlap(probeSpan(records, a.name), probeSpan(records, b.name));
          if (at && shared.length > 0) bad.push(`${a.name} and ${b.name} share ${shared.join(",")} but ran at once`);
          if (at) together++;
        }
      expect(bad).toEqual([]);
      console.log(`Namespace level: ${together} pairs of backups ran at the same time, none sharing a namespace`);
      // Back to ItemBlock for the next tests: the next decision uses it.
      await switchPolicy(
        POLICY("ItemBlock"),
        (r) => r.body?.metadata?.annotations?.["backup-gate.io/conflict-level"] === "ItemBlock",
        "conflictLevel ItemBlock",
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "serial workload, Forbid: a run is refused while the last run is in flight; retried like Velero's schedule controller, the runs never overlap",
    async () => {
      const sched = { includedNamespaces: [NS.shop], labels: { "velero.io/schedule-name": "nightly" } };
      expect((await create("nightly-1", sched)).status).toBe(201);
      const refused = await create("nightly-2", sched);
      expect(refused.status).toBe(403);
      expect(refused.body.message).toMatch(/schedule nightly already has run nightly-1 .*serialWorkloads is Forbid/);
      // Velero's schedule controller tries again at its next check; here every second.
      let attempts = 1;
      await waitFor(
        "run nightly-2 to be admitted once nightly-1 is done",
        async () => {
          attempts++;
          const r = await create("nightly-2", sched);
          if (r.status === 403) return false;
          expect(r.status, JSON.stringify(r.body)).toBe(201);
          return true;
        },
        { timeoutMs: 120_000, intervalMs: 1000 },
      );
      // Admitted once nightly-1 left flight: it may still be finalizing (not in flight, as the
      // design counts it; its items were all processed), never before.
      const first = await getBackup(c, VELERO, "nightly-1");
      expect([
        "WaitingForPluginOperations",
        "WaitingForPluginOperationsPartiallyFailed",
        "Finalizing",
        "FinalizingPartiallyFailed",
        "Completed",
        "PartiallyFailed",
      ]).toContain(first.status?.phase);
      const done = await waitForBackupDone(velero, cp, "nightly-2");
      expect(done.status?.phase).toBe("Completed");
      ran.push("nightly-1", "nightly-2");
      const records = readProbeRecords(velero.probeDir);
      expect(spansOverlap(probeSpan(records, "nightly-1"), probeSpan(records, "nightly-2"))).toBe(false);
      console.log(`Forbid: nightly-2 was refused ${attempts - 1} times while nightly-1 ran, then admitted`);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "serial workload, Replace: a newer run supersedes the older queued run; the run in flight is left alone; nothing piles up",
    async () => {
      await switchPolicy(POLICY("ItemBlock", "Replace"), (r) => r.status === 201, "serialWorkloads Replace");
      const sched = { includedNamespaces: [NS.shop], labels: { "velero.io/schedule-name": "hourly" } };
      expect((await create("hourly-1", sched)).status).toBe(201);
      await waitFor("hourly-1 to be in flight", async () => ["ReadyToStart", "InProgress"].includes((await getBackup(c, VELERO, "hourly-1")).status?.phase));
      expect((await create("hourly-2", sched)).status).toBe(201);
      await waitFor("hourly-2 to be Queued behind hourly-1", async () => (await getBackup(c, VELERO, "hourly-2")).status?.phase === "Queued", {
        timeoutMs: 20_000,
      });
      expect((await create("hourly-3", sched)).status).toBe(201);
      const superseded = await waitFor(
        "hourly-2 to be superseded (Failed)",
        async () => {
          const b = await getBackup(c, VELERO, "hourly-2");
          return b.status?.phase === "Failed" ? b : undefined;
        },
        { timeoutMs: 20_000 },
      );
      expect(superseded.status.failureReason).toMatch(/hourly-3/);
      const queued = await Promise.all(["hourly-2", "hourly-3"].map(async (n) => (await getBackup(c, VELERO, n)).status?.phase));
      expect(queued.filter((x) => x === "Queued" || x === undefined || x === "New").length).toBeLessThanOrEqual(1);
      const [d1, d3] = await Promise.all([waitForBackupDone(velero, cp, "hourly-1"), waitForBackupDone(velero, cp, "hourly-3")]);
      expect([d1.status?.phase, d3.status?.phase]).toEqual(["Completed", "Completed"]);
      ran.push("hourly-1", "hourly-3");
      const records = readProbeRecords(velero.probeDir);
      expect(records.filter((r) => r.backup === "hourly-2")).toEqual([]);
      expect(spansOverlap(probeSpan(records, "hourly-1"), probeSpan(records, "hourly-3"))).toBe(false);
      await switchPolicy(POLICY("ItemBlock"), (r) => r.status === 201, "serialWorkloads Forbid");
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "a real Schedule (@every 2s) under Forbid: its runs never overlap and never pile up",
    async () => {
      const t = await Timeline.start(cp, VELERO);
      try {
        await createSchedule(c, VELERO, "real", { schedule: "@every 2s", includedNamespaces: [NS.shop] });
        // The schedule controller reconciles on spec changes (and once a minute): change the
        // period every second so it checks often, as a busy cluster's minute ticks would.
        const end = Date.now() + 20_000;
        for (let i = 0; Date.now() < end; i++) {
          await updateVelero(c, "schedules", VELERO, "real", (o) => {
            o.spec.schedule = i % 2 ? "@every 2s" : "@every 3s";
          });
          await sleep(1000);
        }
        await updateVelero(c, "schedules", VELERO, "real", (o) => {
          o.spec.paused = true;
        });
        const runs = await waitFor(
          "the real Schedule's runs to reach a terminal phase",
          async () => {
            const list = (await c.custom.listNamespacedCustomObject({
              group: "velero.io",
              version: "v1",
              namespace: VELERO,
              plural: "backups",
              labelSelector: "velero.io/schedule-name=real",
            })) as { items: VeleroObject[] };
            return list.items.every((b) => ["Completed", "PartiallyFailed", "Failed"].includes(b.status?.phase)) ? list.items : undefined;
          },
          { timeoutMs: 120_000, intervalMs: 1000 },
        );
        const names = runs.map((r) => r.metadata.name).sort();
        expect(names.length, "the schedule fired at least twice").toBeGreaterThanOrEqual(2);
        for (const r of runs) expect(r.status?.phase, `${r.metadata.name}: ${JSON.stringify(r.status)}`).toBe("Completed");
        created.push(...runs);
        ran.push(...names);
        // Never two runs queued or in flight at once (created -> done with its items, through the
        // watch), so none piled up. Velero's schedule controller may create the next run while the
        // last one is Finalizing (it waits only for New/InProgress); Finalizing holds no items.
        const alive = names.map(
          (n) =>
            [t.phases.get(n)![0]!.at, t.firstAt(n, ["WaitingForPluginOperations", "Finalizing", "Completed", "PartiallyFailed", "Failed"]) ?? Date.now()] as [
              number,
              number,
            ],
        );
        const records = readProbeRecords(velero.probeDir);
        for (let i = 0; i < names.length; i++)
          for (let j = i + 1; j < names.length; j++) {
            expect(spansOverlap(probeSpan(records, names[i]!), probeSpan(records, names[j]!)), `${names[i]} and ${names[j]} processed items at once`).toBe(
              false,
            );
          }
        for (let i = 0; i < names.length; i++)
          for (let j = i + 1; j < names.length; j++) {
            expect(spansOverlap(alive[i], alive[j]), `${names[i]} and ${names[j]} were both queued or running`).toBe(false);
          }
        const refusals = (readFileSync(velero.process.logFile, "utf8").match(/error creating Backup[^\n]*already has run real-/g) ?? []).length;
        console.log(
          `real Schedule: ${names.length} runs (${names.join(", ")}), one at a time; Velero's log shows ${refusals} creates refused by the gate (Forbid)`,
        );
      } finally {
        t.stop();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it("integrity over every scenario: no item of a unit exclusive for both backups was processed by two backups at once", () => {
    const records = readProbeRecords(velero.probeDir);
    expect(ran.length).toBeGreaterThan(0);
    const { exclusive, allowed } = exclusiveOverlaps(prediction(), records);
    expect(exclusive, describeOverlaps(exclusive)).toEqual([]);
    console.log(
      `integrity: ${records.length} probe records of ${ran.length} backups; 0 exclusive overlaps; ${allowed.length} allowed overlaps ` +
        `(items of units not exclusive for both, e.g. a manifest-only backup reading a pod another backup snapshots):\n${describeOverlaps(allowed)}`,
    );
  });

  it("fidelity over every scenario: the pods, PVCs and PVs the core predicted for each backup are exactly what Velero processed", () => {
    const records = readProbeRecords(velero.probeDir);
    const p = prediction();
    const diff = fidelityDiff(p, records, ran);
    expect(diff, diff.join("\n")).toEqual([]);
    // Not vacuous: every scenario backup that should process items did.
    const compared = ran.reduce((n, b) => n + predictedItems(p.scopes.get(b)!).length, 0);
    expect(compared).toBeGreaterThan(100);
    console.log(
      `fidelity: ${ran.length} backups, ${compared} predicted pods/PVCs/PVs, all processed by Velero and nothing else; e.g. ib-vg-a: ${predictedItems(p.scopes.get("ib-vg-a")!).join(", ")}`,
    );
  });
});
