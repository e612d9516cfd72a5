/**
 * A burst of overlapping backups on the real node (test/support/node.ts), and what it left in
 * the records: the estate (real pods with real data: a freeze-hook pod, CSI PVCs Velero
 * snapshots, volumes the node-agent copies by file system, emptyDirs, a PVC two pods share, a
 * volume group Velero snapshots with a real VolumeGroupSnapshot), the backups, a recorder of phases and VolumeSnapshots (watches), and one run
 * that starts the burst in one of three ways and reduces its records to integrity figures
 * (test/support/integrityChecks.ts).
 */
import { AdmissionregistrationV1Api, AppsV1Api, type V1Pod } from "@kubernetes/client-node";
import { join } from "node:path";
import {
  freezeOverlaps,
  maxInFlight,
  pvbOverlaps,
  snapshotOverlaps,
  snapshotRecords,
  type BackupSpan,
  type FreezeAttempt,
  type GroupSnapshotSeen,
  type IntegrityOverlap,
  type PvbRecord,
  type RunFigures,
  type VolumeSnapshotSeen,
} from "./integrityChecks.js";
import type { TestNode, NodeCsi } from "./node.js";
import { freezePod, readFreezeRecords } from "./nodeFreeze.js";
import { createBackup, createNamespace, TERMINAL_BACKUP_PHASES, updateVelero, type Clients, type VeleroObject } from "./objects.js";
import { startWatch, type StartedWatch } from "./watch.js";
import { waitForClaimsBound, waitForPodsReady, type PodRef } from "./podReadiness.js";
import { sleep, waitFor } from "./wait.js";

export const VELERO_NS = "velero";
/** The policy's volume group key: Velero's default, so Velero cuts real VolumeGroupSnapshots of the group. */
export const GROUP_KEY = "velero.io/volume-group";
export const NS = { app: "bu-app", files: "bu-files", shared: "bu-shared", vg: "bu-vg", lone: "bu-lone" } as const;
/**
 * The e2e suite's workloads (test/integration/e2e.test.ts) as real pods: its shop, hooks and
 * stateless namespaces (its shared PVC and volume group are bu-shared and bu-vg above).
 */
export const E2E_NS = { shop: "e2e-shop", hooks: "e2e-hooks", stateless: "e2e-stateless" } as const;

export interface Estate {
  /** Freeze-hook pods ("ns/pod") and their records directories. */
  freezePods: Map<string, string>;
  /** "ns/pod/volume" -> the data it holds ("pvc ns/claim" or "pod ns/pod/volume"). */
  podVolume: Map<string, string>;
}

interface PlainPod {
  name: string;
  app: string;
  /** Volume name -> PVC name. */
  pvcs?: Record<string, string>;
  emptyDirs?: string[];
  /** Volumes the node-agent copies (backup.velero.io/backup-volumes). */
  fsBackup?: string[];
  /** Random data written to the first volume before the pod is ready. */
  dataMiB?: number;
  /** The container's name (default `app`). */
  container?: string;
  annotations?: Record<string, string>;
}

function plainPod(image: string, p: PlainPod): V1Pod {
  const vols = [...Object.keys(p.pvcs ?? {}), ...(p.emptyDirs ?? [])];
  const first = vols[0];
  const start = [
    ...(first && p.dataMiB ? [`dd if=/dev/urandom of=/v/${first}/blob-$(hostname) bs=1048576 count=${p.dataMiB} 2>/dev/null`] : []),
    "touch /tmp/ready",
    "trap 'exit 0' TERM",
    "while :; do sleep 1 & wait $!; done",
  ].join("\n");
  return {
    metadata: {
      name: p.name,
      labels: { app: p.app },
      annotations:
        p.fsBackup || p.annotations ? { ...(p.fsBackup ? { "backup.velero.io/backup-volumes": p.fsBackup.join(",") } : {}), ...p.annotations } : undefined,
    },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: p.container ?? "app",
          image,
          imagePullPolicy: "Never",
          command: ["/bin/sh", "-c", start],
          readinessProbe: { exec: { command: ["test", "-f", "/tmp/ready"] }, periodSeconds: 1 },
          volumeMounts: vols.map((v) => ({ name: v, mountPath: `/v/${v}` })),
        },
      ],
      volumes: [
        ...Object.entries(p.pvcs ?? {}).map(([name, claimName]) => ({ name, persistentVolumeClaim: { claimName } })),
        ...(p.emptyDirs ?? []).map((name) => ({ name, emptyDir: {} })),
      ],
    },
  };
}

/** Builds the estate and waits for every pod to be Running and ready. */
export async function buildEstate(c: Clients, node: TestNode, csi: NodeCsi): Promise<Estate> {
  const image = node.images.busybox;
  const claims: PodRef[] = [];
  const pvc = async (ns: string, name: string, labels?: Record<string, string>) => {
    claims.push({ namespace: ns, name });
    return c.core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: {
        metadata: { name, labels },
        spec: { accessModes: ["ReadWriteOnce"], storageClassName: csi.storageClass, resources: { requests: { storage: "16Mi" } } },
      },
    });
  };
  for (const ns of [...Object.values(NS), ...Object.values(E2E_NS)]) await createNamespace(c, ns);
  const freezePods = new Map<string, string>();
  const pods: [string, V1Pod][] = [];

  // bu-app: a freeze-hook pod (its emptyDir copied by file system), a pod whose CSI PVC is
  // snapshotted, and a pod with only an emptyDir (nothing of it is copied).
  const dbRecords = join(node.recordsDir, NS.app, "db");
  freezePods.set(`${NS.app}/db`, dbRecords);
  pods.push([NS.app, freezePod("db", { image, recordsDir: dbRecords, dataMiB: 2 })]);
  await pvc(NS.app, "web-data");
  pods.push([NS.app, plainPod(image, { name: "web", app: "web", pvcs: { data: "web-data" }, dataMiB: 1 })]);
  pods.push([NS.app, plainPod(image, { name: "cache", app: "cache", emptyDirs: ["scratch"], dataMiB: 1 })]);
  // bu-files: a CSI PVC copied by file system (no hook: a second copy is not stopped by a freeze).
  await pvc(NS.files, "files-data");
  pods.push([NS.files, plainPod(image, { name: "files", app: "files", pvcs: { data: "files-data" }, fsBackup: ["data"], dataMiB: 6 })]);
  // bu-shared: one PVC mounted by two pods.
  await pvc(NS.shared, "shared");
  for (const x of ["a", "b"]) pods.push([NS.shared, plainPod(image, { name: x, app: x, pvcs: { data: "shared" }, dataMiB: 1 })]);
  // bu-vg: two PVCs of one volume group, one pod each.
  for (const x of ["a", "b"]) {
    await pvc(NS.vg, `vg-${x}`, { [GROUP_KEY]: "g1" });
    pods.push([NS.vg, plainPod(image, { name: `vg${x}`, app: `vg${x}`, pvcs: { data: `vg-${x}` }, dataMiB: 1 })]);
  }
  // bu-lone: backed up by one backup only.
  await pvc(NS.lone, "lone-data");
  pods.push([NS.lone, plainPod(image, { name: "lone", app: "lone", pvcs: { data: "lone-data" }, emptyDirs: ["tmp"], dataMiB: 1 })]);

  // The e2e workloads. e2e-shop: three apps with a CSI PVC each.
  for (const a of ["cart", "orders", "pay"]) {
    await pvc(E2E_NS.shop, `data-${a}-0`);
    pods.push([E2E_NS.shop, plainPod(image, { name: `${a}-0`, app: a, pvcs: { data: `data-${a}-0` }, dataMiB: 1 })]);
  }
  // e2e-hooks: a pod with a pre-backup hook annotation and a volume, and one without.
  await pvc(E2E_NS.hooks, "data-db");
  pods.push([
    E2E_NS.hooks,
    plainPod(image, {
      name: "db",
      app: "db",
      container: "main",
      pvcs: { data: "data-db" },
      dataMiB: 1,
      annotations: { "pre.hook.backup.velero.io/command": '["/bin/sync"]', "pre.hook.backup.velero.io/container": "main" },
    }),
  ]);
  pods.push([E2E_NS.hooks, plainPod(image, { name: "web", app: "web" })]);
  // e2e-stateless: two pods, no volumes.
  for (const x of ["s1", "s2"]) pods.push([E2E_NS.stateless, plainPod(image, { name: x, app: "s" })]);

  await waitForClaimsBound(c, claims, `the estate's ${claims.length} claims`);
  for (const [namespace, body] of pods) await c.core.createNamespacedPod({ namespace, body });
  await waitForPodsReady(
    c,
    node,
    pods.map(([namespace, body]) => ({ namespace, name: body.metadata!.name! })),
    `the estate's ${pods.length} pods`,
  );

  const podVolume = new Map<string, string>();
  for (const [ns, p] of pods) {
    for (const v of p.spec!.volumes ?? []) {
      const claim = v.persistentVolumeClaim?.claimName;
      podVolume.set(`${ns}/${p.metadata!.name}/${v.name}`, claim ? `pvc ${ns}/${claim}` : `pod ${ns}/${p.metadata!.name}/${v.name}`);
    }
  }
  return { freezePods, podVolume };
}

export interface BurstBackup {
  name: string;
  namespaces: string[];
  app?: string;
  /** Extra spec fields (the e2e scenario's manifest-only and cluster-scoped backups). */
  spec?: Record<string, unknown>;
}

/**
 * The burst, in creation order: pairs that share a freeze pod, a copied volume, a snapshotted
 * PVC, a shared PVC or a volume group come first (so that without a gate they start together),
 * then backups sharing a namespace but no unit, one spanning two namespaces, and a disjoint one;
 * then the e2e suite's scenario on its workloads (its shared and volume-group pairs are the
 * ones above), ending with its backup of every namespace, manifests only.
 */
export function burstBackups(prefix: string): BurstBackup[] {
  const b = (name: string, namespaces: string[], app?: string, spec?: Record<string, unknown>): BurstBackup => ({
    name: `${prefix}${name}`,
    namespaces,
    app,
    spec,
  });
  const manifests = { snapshotVolumes: false };
  return [
    b("app", [NS.app]),
    b("files", [NS.files]),
    b("app-db", [NS.app], "db"),
    b("files-again", [NS.files]),
    b("shared-a", [NS.shared], "a"),
    b("shared-b", [NS.shared], "b"),
    b("vg-a", [NS.vg], "vga"),
    b("vg-b", [NS.vg], "vgb"),
    b("app-web", [NS.app], "web"),
    b("app-again", [NS.app]),
    b("app-files", [NS.app, NS.files]),
    b("lone", [NS.lone]),
    b("cart", [E2E_NS.shop], "cart"),
    b("orders", [E2E_NS.shop], "orders"),
    b("cart-again", [E2E_NS.shop], "cart"),
    b("shop-manifests", [E2E_NS.shop], undefined, manifests),
    b("hooks-all", [E2E_NS.hooks], undefined, manifests),
    b("hooks-db", [E2E_NS.hooks], "db", manifests),
    b("stateless", [E2E_NS.stateless]),
    b("cluster-pvs", ["*"], undefined, {
      includedClusterScopedResources: ["persistentvolumes"],
      excludedNamespaceScopedResources: ["*"],
      snapshotVolumes: false,
    }),
    b("all-manifests", ["*"], undefined, manifests),
  ];
}

/**
 * Phase changes of the Velero namespace's Backups, and every VolumeSnapshot of a PVC and
 * VolumeGroupSnapshot created while it runs, as seen (Velero deletes the group snapshots before
 * the backup ends, and labels a group's members only after they appear: the last sighting of
 * each keeps what it ever said).
 */
export class BurstRecorder {
  readonly phases = new Map<string, { phase: string; at: number }[]>();
  readonly snapshots = new Map<string, VolumeSnapshotSeen>();
  readonly groupSnapshots = new Map<string, GroupSnapshotSeen>();
  private readonly since = Date.now();
  private watches: StartedWatch[] = [];

  static async start(node: TestNode): Promise<BurstRecorder> {
    const r = new BurstRecorder();
    r.watches.push(
      await startWatch(node.kubeConfig, `/apis/velero.io/v1/namespaces/${VELERO_NS}/backups`, {}, (_t, o: VeleroObject) => {
        const list = r.phases.get(o.metadata.name) ?? [];
        const phase = (o.status?.phase as string | undefined) ?? "";
        if (list.at(-1)?.phase !== phase) list.push({ phase, at: Date.now() });
        r.phases.set(o.metadata.name, list);
      }),
    );
    r.watches.push(
      await startWatch(node.kubeConfig, "/apis/snapshot.storage.k8s.io/v1/volumesnapshots", {}, (_t, o: VeleroObject) => {
        const claim = o.spec?.source?.persistentVolumeClaimName as string | undefined;
        if (!claim || !r.fresh(o)) return;
        const ns = o.metadata.namespace;
        const name = `${ns}/${o.metadata.name}`;
        const was = r.snapshots.get(name);
        const group = o.status?.volumeGroupSnapshotName as string | undefined;
        r.snapshots.set(name, {
          name,
          pvc: `${ns}/${claim}`,
          backup: (o.metadata.labels?.["velero.io/backup-name"] as string | undefined) ?? was?.backup,
          groupSnapshot: group ? `${ns}/${group}` : was?.groupSnapshot,
        });
      }),
    );
    r.watches.push(
      await startWatch(node.kubeConfig, "/apis/groupsnapshot.storage.k8s.io/v1beta2/volumegroupsnapshots", {}, (_t, o: VeleroObject) => {
        if (!r.fresh(o)) return;
        const name = `${o.metadata.namespace}/${o.metadata.name}`;
        r.groupSnapshots.set(name, {
          name,
          backup: (o.metadata.labels?.["velero.io/backup-name"] as string | undefined) ?? r.groupSnapshots.get(name)?.backup,
        });
      }),
    );
    return r;
  }

  /** Created since the recorder started (second resolution): earlier runs' objects are not this run's. */
  private fresh(o: VeleroObject): boolean {
    const t = Date.parse(String(o.metadata.creationTimestamp ?? ""));
    return Number.isFinite(t) && t >= Math.floor(this.since / 1000) * 1000;
  }

  /** When the backup first showed a terminal phase. */
  doneAt(name: string): number | undefined {
    return this.phases.get(name)?.find((p) => TERMINAL_BACKUP_PHASES.has(p.phase))?.at;
  }

  /** The InProgress span: from the first InProgress to the first phase after it. */
  span(name: string): BackupSpan | undefined {
    const list = this.phases.get(name) ?? [];
    const i = list.findIndex((p) => p.phase === "InProgress");
    if (i < 0) return undefined;
    return { backup: name, fromMs: list[i]!.at, toMs: list.slice(i + 1).find((p) => p.phase !== "InProgress")?.at };
  }

  stop(): void {
    for (const w of this.watches) w.abort();
  }
}

/** How a run starts the burst. */
export type BurstMode =
  /** Created through the API server with the gate's webhooks registered: the gate promotes them. */
  | "gate"
  /** Velero's queue off, no gate: created ReadyToStart and kicked, so Velero starts them at once. */
  | "no-queue"
  /** Velero's own queue (no gate): created New. */
  | "velero-queue";

export interface BurstResult {
  figures: RunFigures;
  overlaps: IntegrityOverlap[];
  /** Backups not terminal when the run's wait ended, with their last phase. */
  stuck: string[];
  phases: Record<string, string>;
  /** The run's PodVolumeBackups, one line each (backup, volume, times): what the PVB check saw. */
  pvbs: string[];
  /** The run's snapshots, one line per PVC and backup ("via" the group snapshot that cut it). */
  snapshots: string[];
  /** The VolumeGroupSnapshots Velero cut for the run's backups. */
  groupSnapshots: number;
}

export interface BurstRun {
  label: string;
  mode: BurstMode;
  backups: BurstBackup[];
  timeoutMs?: number;
}

/** Runs one burst and reduces its records to overlaps and figures. */
export async function runBurst(node: TestNode, c: Clients, estate: Estate, run: BurstRun): Promise<BurstResult> {
  await waitForThawed(estate);
  const freezeBefore = new Map([...estate.freezePods].map(([pod, dir]) => [pod, readFreezeRecords(dir).length]));
  const recorder = await BurstRecorder.start(node);
  const names = run.backups.map((b) => b.name);
  const t0 = Date.now();
  try {
    await startBackups(c, run);
    const deadline = Date.now() + (run.timeoutMs ?? 240_000);
    while (Date.now() < deadline && names.some((n) => recorder.doneAt(n) === undefined)) await sleep(500);
    const stuck = names.filter((n) => recorder.doneAt(n) === undefined).map((n) => `${n} (${recorder.phases.get(n)?.at(-1)?.phase ?? "never seen"})`);
    const end = Math.max(...names.map((n) => recorder.doneAt(n) ?? Date.now()));

    const spans = names.map((n) => recorder.span(n)).filter((s): s is BackupSpan => s !== undefined);
    const freezes = freezeAttempts(estate, freezeBefore);
    const pvbs = await podVolumeBackups(c, estate, new Set(names));
    const snapshots = snapshotRecords([...recorder.snapshots.values()], [...recorder.groupSnapshots.values()]).filter(
      (s) => names.includes(s.backup) || s.backup.startsWith("unattributed "),
    );
    const byKind = { freeze: freezeOverlaps(freezes), podVolumeBackup: pvbOverlaps(pvbs), snapshot: snapshotOverlaps(snapshots, spans) };
    const phases = Object.fromEntries(names.map((n) => [n, recorder.phases.get(n)?.at(-1)?.phase ?? ""]));
    return {
      figures: {
        run: run.label,
        backups: names.length,
        terminal: names.length - stuck.length,
        freeze: byKind.freeze.length,
        podVolumeBackup: byKind.podVolumeBackup.length,
        snapshot: byKind.snapshot.length,
        maxInFlight: maxInFlight(spans),
        makespanS: (end - t0) / 1000,
      },
      overlaps: [...byKind.freeze, ...byKind.podVolumeBackup, ...byKind.snapshot],
      stuck,
      phases,
      pvbs: pvbs.map((p) => `${p.backup} ${p.volume} ${iso(p.fromMs)}..${iso(p.toMs)}`),
      snapshots: snapshots.map((x) => `${x.backup} ${x.pvc}${x.groupSnapshot ? ` via ${x.groupSnapshot}` : ""}`),
      groupSnapshots: [...recorder.groupSnapshots.values()].filter((g) => g.backup !== undefined && names.includes(g.backup)).length,
    };
  } finally {
    recorder.stop();
  }
}

async function startBackups(c: Clients, run: BurstRun): Promise<void> {
  const spec = (b: BurstBackup) => ({ ...(b.app ? { labelSelector: { matchLabels: { app: b.app } } } : {}), ...b.spec });
  if (run.mode === "no-queue") {
    // As node.test.ts: Velero's queue is off; create them ReadyToStart, then update them so its backup controller looks.
    for (const b of run.backups) {
      await createBackup(c, VELERO_NS, b.name, { includedNamespaces: b.namespaces, spec: spec(b), status: { phase: "ReadyToStart" } });
    }
    for (const b of run.backups) {
      await updateVelero(c, "backups", VELERO_NS, b.name, (o) => {
        o.metadata.labels = { ...o.metadata.labels, "backup-gate.io/test-kick": "1" };
      });
    }
    return;
  }
  for (const b of run.backups) await createBackup(c, VELERO_NS, b.name, { includedNamespaces: b.namespaces, spec: spec(b) });
}

const iso = (ms: number | undefined) => (ms === undefined ? "-" : new Date(ms).toISOString().slice(11, 19));

function freezeAttempts(estate: Estate, before: Map<string, number>): FreezeAttempt[] {
  return [...estate.freezePods].flatMap(([pod, dir]) =>
    readFreezeRecords(dir)
      .slice(before.get(pod) ?? 0)
      .filter((r) => r.kind === "freeze")
      .map((r) => ({ pod, outcome: r.outcome === "held" ? ("held" as const) : ("busy" as const), atMs: r.atMs })),
  );
}

/** A run starts with every freeze released (a freeze left held would make every later one busy). */
async function waitForThawed(estate: Estate): Promise<void> {
  await waitFor(
    "every freeze-hook pod to be thawed before the run",
    () =>
      [...estate.freezePods.values()].every((dir) => {
        const held = readFreezeRecords(dir).filter((r) => r.outcome === "held" || r.outcome === "released");
        return held.at(-1)?.outcome !== "held";
      }),
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

async function podVolumeBackups(c: Clients, estate: Estate, names: Set<string>): Promise<PvbRecord[]> {
  const list = (await c.custom.listNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: VELERO_NS, plural: "podvolumebackups" })) as {
    items: VeleroObject[];
  };
  const ms = (t: unknown) => (typeof t === "string" ? Date.parse(t) : undefined);
  return list.items
    .map((p) => ({ p, backup: p.metadata.labels?.["velero.io/backup-name"] as string | undefined }))
    .filter((x): x is { p: VeleroObject; backup: string } => x.backup !== undefined && names.has(x.backup))
    .map(({ p, backup }) => {
      const where = `${p.spec?.pod?.namespace}/${p.spec?.pod?.name}/${p.spec?.volume}`;
      return { backup, volume: estate.podVolume.get(where) ?? `pod ${where}`, fromMs: ms(p.status?.startTimestamp), toMs: ms(p.status?.completionTimestamp) };
    });
}

/** Turns Velero's own queue on or off (a rollout of the server) and waits for the new server alone. */
export async function setVeleroQueue(node: TestNode, c: Clients, enabled: boolean): Promise<void> {
  const apps = node.kubeConfig.makeApiClient(AppsV1Api);
  const d = await apps.readNamespacedDeployment({ name: "velero", namespace: VELERO_NS });
  const c0 = d.spec!.template.spec!.containers[0]!;
  const flag = "--disable-controllers=backup-queue";
  c0.args = [...(c0.args ?? []).filter((a) => a !== flag), ...(enabled ? [] : [flag])];
  await apps.replaceNamespacedDeployment({ name: "velero", namespace: VELERO_NS, body: d });
  await waitFor(
    `the Velero server to roll out with its queue ${enabled ? "on" : "off"}`,
    async () => {
      const x = await apps.readNamespacedDeployment({ name: "velero", namespace: VELERO_NS });
      const s = x.status;
      if ((s?.observedGeneration ?? 0) < (x.metadata?.generation ?? 1) || s?.updatedReplicas !== 1 || s.replicas !== 1 || s.availableReplicas !== 1)
        return false;
      const pods = (await c.core.listNamespacedPod({ namespace: VELERO_NS })).items.filter((p) => p.metadata?.name?.startsWith("velero-"));
      return pods.length === 1 && pods[0]!.status?.phase === "Running" && !pods[0]!.metadata?.deletionTimestamp;
    },
    { timeoutMs: 120_000, intervalMs: 1_000 },
  );
}

/** Deletes the gate's webhook configurations (`serve --register-url` leaves them when it stops). */
export async function unregisterGate(node: TestNode, name = "backup-gate"): Promise<void> {
  const api = node.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  await api.deleteMutatingWebhookConfiguration({ name }).catch(() => undefined);
  await api.deleteValidatingWebhookConfiguration({ name }).catch(() => undefined);
}
