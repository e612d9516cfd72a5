import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import type { Clients } from "../objects.js";
import type { ProbeRecord } from "../overlap.js";
import type { ItemOutcome, Outcomes } from "./compare.js";

// What Velero actually did in one backup, per pod, PVC and PV, from its own records:
// - items: the probe BackupItemAction's records (every pod, PVC and PV it processed);
// - file-system backups: the PodVolumeBackups labelled with the backup's name;
// - snapshots: Velero's volume info in the backup storage (`<backup>-volumeinfo.json.gz`),
//   one entry per PVC/PV with its backup method, or `skipped`, and the VolumeSnapshots in the
//   backup's tarball (Velero 1.18 stores no VolumeSnapshot list of its own and deletes them
//   from the cluster): the volume info has no entry for a claim whose PV the backup leaves
//   out, though Velero snapshots it;
//   A grouped claim's snapshot is one member of a VolumeGroupSnapshot: its VolumeSnapshot names
//   the group in `status.volumeGroupSnapshotName` (groupSnapshots);
// - items Velero failed (named in `<backup>-results.gz`; the probe never sees them) count as
//   included, with nothing done: Velero processed them. With EnableCSI an unbound claim fails
//   so ("no volume backing this claim");
// - hooks: the records the pods write themselves (each hook appends its phase to the pod's
//   hooks.log on a hostPath volume; cases.ts hookCommand). Velero's log lines are not used:
//   their fields are not a stable interface.

interface Outcome {
  included: boolean;
  work: Set<string>;
}

export interface VeleroRecords {
  readonly probe: readonly ProbeRecord[];
  /** PodVolumeBackups (raw objects) of this backup. */
  readonly podVolumeBackups?: readonly {
    metadata?: { annotations?: Record<string, string> };
    spec?: { pod?: { namespace?: string; name?: string }; volume?: string };
  }[];
  /** Entries of `<backup>-volumeinfo.json.gz`. */
  readonly volumeInfos?: readonly VolumeInfo[];
  /** The CSI VolumeSnapshots in the backup's tarball. */
  readonly csiSnapshots?: readonly {
    metadata?: { namespace?: string };
    spec?: { source?: { persistentVolumeClaimName?: string } };
    status?: { volumeGroupSnapshotName?: string };
  }[];
  /** Hook runs the pods recorded (one per line of their hooks.log). */
  readonly hookRuns?: readonly HookRun[];
  /** Errors and warnings of `<backup>-results.gz`, as "namespace: message" (cluster-scoped: "cluster: ..."). */
  readonly errors?: readonly string[];
  readonly warnings?: readonly string[];
  /** The Backup's status as Velero left it. */
  readonly status?: { csiVolumeSnapshotsAttempted?: number; hookStatus?: { hooksAttempted?: number; hooksFailed?: number } };
}

export interface HookRun {
  readonly namespace: string;
  readonly pod: string;
  readonly phase: string;
}

export interface VolumeInfo {
  readonly pvcName?: string;
  readonly pvcNamespace?: string;
  readonly pvName?: string;
  readonly backupMethod?: string;
  readonly skipped?: boolean;
}

type At = (key: string) => Outcome;

/** Per pod, PVC and PV: whether Velero included it and what work it did, from each of its records in turn. */
export function observedOutcomes(backup: string, r: VeleroRecords): Outcomes {
  const out = new Map<string, Outcome>();
  const at: At = (key) => {
    let o = out.get(key);
    if (!o) {
      o = { included: false, work: new Set() };
      out.set(key, o);
    }
    return o;
  };
  includedByProbe(backup, r, at);
  fileSystemBackups(r, at);
  snapshots(r, at);
  failedItems(r, at);
  for (const hook of r.hookRuns ?? []) at(`Pod ${hook.namespace}/${hook.pod}`).work.add(`${hook.phase} hooks`);
  return new Map([...out].map(([k, o]): [string, ItemOutcome] => [k, { included: o.included, work: [...o.work].sort() }]));
}

function includedByProbe(backup: string, r: VeleroRecords, at: At): void {
  for (const p of r.probe) {
    if (p.backup !== backup) continue;
    at(p.kind === "PersistentVolume" ? `PersistentVolume ${p.name}` : `${p.kind} ${p.namespace}/${p.name}`).included = true;
  }
}

/** A claim's copy is told on the claim (Velero names it in the PVB's `velero.io/pvc-name`), as the prediction does. */
function fileSystemBackups(r: VeleroRecords, at: At): void {
  for (const pvb of r.podVolumeBackups ?? []) {
    const pod = pvb.spec?.pod;
    if (!pod?.namespace || !pod.name || !pvb.spec?.volume) continue;
    const claim = pvb.metadata?.annotations?.["velero.io/pvc-name"];
    if (claim) at(`PersistentVolumeClaim ${pod.namespace}/${claim}`).work.add("file-system backup");
    else at(`Pod ${pod.namespace}/${pod.name}`).work.add(`file-system backup ${pvb.spec.volume}`);
  }
}

/** From Velero's volume info and from the VolumeSnapshots in the backup's tarball. */
function snapshots(r: VeleroRecords, at: At): void {
  for (const v of r.volumeInfos ?? []) {
    if (v.skipped || (v.backupMethod !== "CSISnapshot" && v.backupMethod !== "NativeSnapshot")) continue;
    at(v.pvcName && v.pvcNamespace ? `PersistentVolumeClaim ${v.pvcNamespace}/${v.pvcName}` : `PersistentVolume ${v.pvName}`).work.add("snapshot");
  }
  for (const vs of r.csiSnapshots ?? []) {
    const claim = vs.spec?.source?.persistentVolumeClaimName;
    if (claim && vs.metadata?.namespace) at(`PersistentVolumeClaim ${vs.metadata.namespace}/${claim}`).work.add("snapshot");
  }
}

/** The claims Velero snapshotted as members of a VolumeGroupSnapshot, by group ("ns/name"). */
export function groupSnapshots(r: VeleroRecords): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const vs of r.csiSnapshots ?? []) {
    const group = vs.status?.volumeGroupSnapshotName;
    const claim = vs.spec?.source?.persistentVolumeClaimName;
    if (!group || !claim || !vs.metadata?.namespace) continue;
    const key = `${vs.metadata.namespace}/${group}`;
    groups.set(key, [...(groups.get(key) ?? []), `PersistentVolumeClaim ${vs.metadata.namespace}/${claim}`].sort());
  }
  return groups;
}

/** An item Velero failed was still included. */
function failedItems(r: VeleroRecords, at: At): void {
  const keyOf: Record<string, (e: { namespace?: string; name: string }) => string> = {
    pods: (e) => `Pod ${e.namespace}/${e.name}`,
    persistentvolumeclaims: (e) => `PersistentVolumeClaim ${e.namespace}/${e.name}`,
    persistentvolumes: (e) => `PersistentVolume ${e.name}`,
  };
  for (const e of itemErrors(r.errors ?? [])) {
    const key = keyOf[e.resource]?.(e);
    if (!key) continue;
    at(key).included = true;
  }
}

/** The hook runs recorded under `<dir>/<namespace>/<pod>/hooks.log` for the given namespaces. */
export function readHookRecords(dir: string, namespaces: readonly string[]): HookRun[] {
  const runs: HookRun[] = [];
  const list = (d: string) => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  };
  for (const namespace of namespaces) {
    for (const pod of list(join(dir, namespace))) {
      let text = "";
      try {
        text = readFileSync(join(dir, namespace, pod, "hooks.log"), "utf8");
      } catch {
        continue;
      }
      for (const line of text.split("\n")) {
        const phase = line.trim();
        if (phase === "pre" || phase === "post") runs.push({ namespace, pod, phase });
        else if (phase) throw new Error(`malformed hook record in ${join(dir, namespace, pod, "hooks.log")}: ${JSON.stringify(line)}`);
      }
    }
  }
  return runs;
}

/** A gzip object of the backup storage (gofakes3 checks no signature, so a plain GET reads it). */
export async function readStorageObject(s3Url: string, bucket: string, key: string): Promise<Buffer | undefined> {
  const res = await fetch(`${s3Url}/${bucket}/${key}`);
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`GET ${bucket}/${key} from the S3 server: HTTP ${res.status}`);
  return gunzipSync(Buffer.from(await res.arrayBuffer()));
}

/** Everything Velero recorded of one backup, read from the API server and the backup storage. */
export async function readVeleroRecords(
  c: Clients,
  veleroNamespace: string,
  s3Url: string,
  backup: string,
  probe: readonly ProbeRecord[],
  hookRuns: readonly HookRun[] = [],
): Promise<VeleroRecords> {
  const pvbs = (await c.custom.listNamespacedCustomObject({
    group: "velero.io",
    version: "v1",
    namespace: veleroNamespace,
    plural: "podvolumebackups",
    labelSelector: `velero.io/backup-name=${backup}`,
  })) as { items: NonNullable<VeleroRecords["podVolumeBackups"]>[number][] };
  const info = await readStorageObject(s3Url, "velero", `backups/${backup}/${backup}-volumeinfo.json.gz`);
  const tarball = await readStorageObject(s3Url, "velero", `backups/${backup}/${backup}.tar.gz`);
  const results = await readStorageObject(s3Url, "velero", `backups/${backup}/${backup}-results.gz`);
  const parsed = results ? (JSON.parse(results.toString("utf8")) as { errors?: BackupResult; warnings?: BackupResult }) : {};
  const b = (await c.custom.getNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: veleroNamespace, plural: "backups", name: backup })) as {
    status?: VeleroRecords["status"];
  };
  return {
    probe,
    podVolumeBackups: pvbs.items,
    volumeInfos: info ? (JSON.parse(info.toString("utf8")) as VolumeInfo[]) : [],
    csiSnapshots: tarball
      ? tarFiles(tarball, /^resources\/volumesnapshots\.snapshot\.storage\.k8s\.io\/namespaces\/[^/]+\/[^/]+\.json$/).map(
          (f) => JSON.parse(f.toString("utf8")) as NonNullable<VeleroRecords["csiSnapshots"]>[number],
        )
      : [],
    hookRuns,
    errors: resultLines(parsed.errors),
    warnings: resultLines(parsed.warnings),
    ...(b.status ? { status: b.status } : {}),
  };
}

/** Velero's pkg/util/results.Result: messages for Velero itself, the cluster and each namespace. */
interface BackupResult {
  velero?: string[] | null;
  cluster?: string[] | null;
  namespaces?: Record<string, string[] | null> | null;
}

function resultLines(r: BackupResult | undefined): string[] {
  if (!r) return [];
  return [
    ...(r.velero ?? []).map((m) => `velero: ${m}`),
    ...(r.cluster ?? []).map((m) => `cluster: ${m}`),
    ...Object.entries(r.namespaces ?? {}).flatMap(([ns, ms]) => (ms ?? []).map((m) => `${ns}: ${m}`)),
  ];
}

export interface ItemError {
  readonly namespace: string;
  readonly resource: string;
  readonly name: string;
  readonly error: string;
}

/**
 * The items named in the results file's errors. Velero 1.18 files item errors under "velero"
 * (its log counter hook, pkg/util/logging/log_counter_hook.go, finds no namespace field), so
 * the item is read from the error text: a plugin's "error executing custom action
 * (groupResource=..., namespace=..., name=...)" (pkg/backup/item_backupper.go) or
 * "PVC <ns>/<name> has no volume backing this claim" (pkg/util/kube/pvc_pv.go GetPVForPVC).
 */
export function itemErrors(lines: readonly string[]): ItemError[] {
  const out: ItemError[] = [];
  for (const line of lines) {
    const action = /error executing custom action \(groupResource=([\w.]+), namespace=([\w.-]*), name=([\w.-]+)\)/.exec(line);
    if (action) {
      out.push({ resource: action[1]!, namespace: action[2]!, name: action[3]!, error: line });
      continue;
    }
    const unbound = /PVC ([\w.-]+)\/([\w.-]+) has no volume backing this claim/.exec(line);
    if (unbound) out.push({ resource: "persistentvolumeclaims", namespace: unbound[1]!, name: unbound[2]!, error: line });
  }
  return out;
}

/** The files of an (already gunzipped) tar archive whose names match: ustar headers (GNU and PAX long names), 512-byte blocks. */
export function tarFiles(tar: Buffer, name: RegExp): Buffer[] {
  const out: Buffer[] = [];
  let longName: string | undefined;
  for (let at = 0; at + 512 <= tar.length;) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const field = (from: number, len: number) =>
      header
        .subarray(from, from + len)
        .toString("utf8")
        .replace(/\0.*$/s, "");
    const size = parseInt(field(124, 12).trim() || "0", 8);
    const type = field(156, 1);
    const prefix = field(345, 155);
    const body = tar.subarray(at + 512, at + 512 + size);
    const path = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    if (type === "L") longName = body.toString("utf8").replace(/\0.*$/s, "");
    else if (type === "x") longName = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString("utf8"))?.[1];
    else if ((type === "0" || type === "") && name.test(path.replace(/^\.\//, ""))) out.push(Buffer.from(body));
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}
