/**
 * Helpers for the end-to-end suites (real API server + real Velero + probe + backup-gate):
 * a snapshot of the cluster as `backup-gate plan` reads it, the core's prediction for a set
 * of backups, the probe's view of the same backups, and a timeline of phase changes seen
 * through a watch.
 */
import type { ControlPlane } from "./controlPlane.js";
import type { VeleroObject } from "./objects.js";
import { findOverlaps, type Overlap, type ProbeRecord } from "./overlap.js";
import { startWatch, type StartedWatch } from "./watch.js";
import { listCluster } from "../../src/cli/live.js";
import { createRequester } from "../../src/kube/http.js";
import { loadSnapshot } from "../../src/core/velero/objects.js";
import { parsePolicy, type Policy } from "../../src/core/policy.js";
import { scopeOf, type BackupScope } from "../../src/core/scope/scope.js";
import type { ClusterView } from "../../src/core/view.js";

/** The cluster as `backup-gate plan` reads it, without the Backups (a List's items). */
export async function snapshotCluster(cp: ControlPlane, veleroNamespace = "velero"): Promise<object[]> {
  const items = await listCluster(createRequester(cp.kubeConfig), veleroNamespace);
  return items.filter((i) => (i as { kind: string }).kind !== "Backup");
}

export interface Prediction {
  view: ClusterView;
  policy: Policy;
  scopes: Map<string, BackupScope>;
  /** The unit an item belongs to ("Pod ns/name", "PersistentVolumeClaim ns/name", "PersistentVolume /name"). */
  unitOfItem(item: string): string | undefined;
}

/**
 * The core's prediction for `backups` over a cluster snapshot taken before they ran
 * (`backup-gate plan`'s `backups{name}.items` and `.exclusive`).
 */
export function predict(cluster: readonly object[], backups: readonly VeleroObject[], policyDoc: unknown): Prediction {
  const loaded = loadSnapshot({ kind: "List", items: [...cluster, ...backups.map((b) => ({ kind: "Backup", ...b }))] });
  if (!loaded.ok) throw new Error(`snapshot: ${loaded.error}`);
  const parsed = parsePolicy(policyDoc);
  if (!parsed.ok) throw new Error(`policy: ${parsed.error}`);
  const { view } = loaded.snapshot;
  const policy = parsed.policy;
  const scopes = new Map<string, BackupScope>();
  for (const b of loaded.snapshot.backups) scopes.set(b.name, scopeOf(b, view, policy));
  const groupKey = policy.volumeGroupSnapshotLabelKey;
  const pvUnit = new Map<string, string>();
  for (const ns of view.namespaceNames()) {
    const contents = view.contents(ns);
    for (const pvc of contents.pvcs.values()) {
      const u = contents.unitOf(`pvc:${pvc.name}`, groupKey);
      if (u) for (const pv of u.pvs) pvUnit.set(pv, u.id);
    }
  }
  const unitOfItem = (item: string): string | undefined => {
    const m = /^(\S+) ([^/]*)\/(.+)$/.exec(item);
    if (!m) return undefined;
    const [, kind, ns, name] = m as unknown as [string, string, string, string];
    if (kind === "Pod") return view.contents(ns).unitOf(`pod:${name}`, groupKey)?.id;
    if (kind === "PersistentVolumeClaim") return view.contents(ns).unitOf(`pvc:${name}`, groupKey)?.id;
    if (kind === "PersistentVolume") return pvUnit.get(name);
    return undefined;
  };
  return { view, policy, scopes, unitOfItem };
}

export const itemKey = (r: { kind: string; namespace: string; name: string }) => `${r.kind} ${r.namespace}/${r.name}`;

/** The predicted items of a scope in the probe's notation, sorted. */
export function predictedItems(scope: BackupScope): string[] {
  return [
    ...scope.items.pods.map((p) => `Pod ${p}`),
    ...scope.items.pvcs.map((p) => `PersistentVolumeClaim ${p}`),
    ...scope.items.pvs.map((p) => `PersistentVolume /${p}`),
  ].sort();
}

/** The items the probe saw a backup process, sorted and without duplicates. */
export function probedItems(records: readonly ProbeRecord[], backup: string): string[] {
  return [...new Set(records.filter((r) => r.backup === backup).map(itemKey))].sort();
}

/** Differences between predicted and probed items, one line each; empty when equal. */
export function fidelityDiff(prediction: Prediction, records: readonly ProbeRecord[], backups: readonly string[]): string[] {
  const out: string[] = [];
  for (const b of backups) {
    const scope = prediction.scopes.get(b);
    if (!scope) {
      out.push(`${b}: no prediction`);
      continue;
    }
    const want = new Set(predictedItems(scope));
    const got = new Set(probedItems(records, b));
    for (const i of want) if (!got.has(i)) out.push(`${b}: predicted but not processed by Velero: ${i}`);
    for (const i of got) if (!want.has(i)) out.push(`${b}: processed by Velero but not predicted: ${i}`);
  }
  return out;
}

/**
 * Overlaps (two backups processing one item at overlapping times) on items of a unit that is
 * exclusive for both backups, per the core's scopes. Overlaps on other items (manifests of a
 * unit only one of them, or neither, needs exclusively) are allowed by design and returned apart.
 */
export function exclusiveOverlaps(prediction: Prediction, records: readonly ProbeRecord[]): { exclusive: Overlap[]; allowed: Overlap[] } {
  const exclusive: Overlap[] = [];
  const allowed: Overlap[] = [];
  for (const o of findOverlaps(records)) {
    const unit = prediction.unitOfItem(itemKey(o));
    const a = prediction.scopes.get(o.a.backup);
    const b = prediction.scopes.get(o.b.backup);
    // A backup the prediction does not know is treated as holding everything exclusively.
    const holds = (s: BackupScope | undefined) => !s || (unit !== undefined && s.exclusive.has(unit));
    (unit !== undefined && holds(a) && holds(b) ? exclusive : allowed).push(o);
  }
  return { exclusive, allowed };
}

/** [first start, last end] of a backup's probe records, in ms; undefined when it processed nothing. */
export function probeSpan(records: readonly ProbeRecord[], backup: string): [number, number] | undefined {
  const mine = records.filter((r) => r.backup === backup);
  if (mine.length === 0) return undefined;
  let s = mine[0]!.start,
    e = mine[0]!.end;
  for (const r of mine) {
    if (r.start < s) s = r.start;
    if (r.end > e) e = r.end;
  }
  return [Number(s / 1_000_000n), Number(e / 1_000_000n)];
}

export function spansOverlap(a: [number, number] | undefined, b: [number, number] | undefined): boolean {
  return !!a && !!b && a[0] < b[1] && b[0] < a[1];
}

/** Phase changes of every Backup in a namespace, stamped with the local clock when seen. */
export class Timeline {
  readonly created = new Map<string, number>();
  readonly phases = new Map<string, { phase: string; at: number }[]>();
  private w?: StartedWatch;

  static async start(cp: ControlPlane, veleroNamespace: string): Promise<Timeline> {
    const t = new Timeline();
    t.w = await startWatch(cp.kubeConfig, `/apis/velero.io/v1/namespaces/${veleroNamespace}/backups`, {}, (_type, o: VeleroObject) => {
      const phase = (o.status?.phase as string | undefined) ?? "";
      const list = t.phases.get(o.metadata.name) ?? [];
      if (list.at(-1)?.phase !== phase) list.push({ phase, at: Date.now() });
      t.phases.set(o.metadata.name, list);
    });
    return t;
  }

  /** Call just before creating the backup. */
  markCreated(name: string): void {
    this.created.set(name, Date.now());
  }

  firstAt(name: string, phases: readonly string[]): number | undefined {
    return this.phases.get(name)?.find((p) => phases.includes(p.phase))?.at;
  }

  stop(): void {
    this.w?.abort();
  }
}
