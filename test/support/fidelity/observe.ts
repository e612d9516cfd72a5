import { gunzipSync } from "node:zlib";
import type { Clients } from "../objects.js";
import type { ProbeRecord } from "../overlap.js";
import type { ItemOutcome, Outcomes } from "./compare.js";

// What Velero actually did in one backup, per pod, PVC and PV, from its own records:
// - items: the probe BackupItemAction's records (every pod, PVC and PV it processed);
// - file-system backups: the PodVolumeBackups labelled with the backup's name;
// - snapshots: Velero's volume info in the backup storage (`<backup>-volumeinfo.json.gz`),
//   one entry per PVC/PV with its backup method, or `skipped`;
// - hooks: the backup's log in the backup storage, one "running exec hook" line per hook run.

interface Outcome { included: boolean; work: Set<string> }

export interface VeleroRecords {
  readonly probe: readonly ProbeRecord[];
  /** PodVolumeBackups (raw objects) of this backup. */
  readonly podVolumeBackups?: readonly { spec?: { pod?: { namespace?: string; name?: string }; volume?: string } }[];
  /** Entries of `<backup>-volumeinfo.json.gz`. */
  readonly volumeInfos?: readonly VolumeInfo[];
  /** Lines of `<backup>-logs.gz`. */
  readonly logLines?: readonly string[];
}

export interface VolumeInfo {
  readonly pvcName?: string;
  readonly pvcNamespace?: string;
  readonly pvName?: string;
  readonly backupMethod?: string;
  readonly skipped?: boolean;
}

export function observedOutcomes(backup: string, r: VeleroRecords): Outcomes {
  const out = new Map<string, Outcome>();
  const at = (key: string) => {
    let o = out.get(key);
    if (!o) { o = { included: false, work: new Set() }; out.set(key, o); }
    return o;
  };
  for (const p of r.probe) {
    if (p.backup !== backup) continue;
    at(p.kind === "PersistentVolume" ? `PersistentVolume ${p.name}` : `${p.kind} ${p.namespace}/${p.name}`).included = true;
  }
  for (const pvb of r.podVolumeBackups ?? []) {
    const pod = pvb.spec?.pod;
    if (pod?.namespace && pod.name && pvb.spec?.volume) at(`Pod ${pod.namespace}/${pod.name}`).work.add(`file-system backup ${pvb.spec.volume}`);
  }
  for (const v of r.volumeInfos ?? []) {
    if (v.skipped || (v.backupMethod !== "CSISnapshot" && v.backupMethod !== "NativeSnapshot")) continue;
    at(v.pvcName && v.pvcNamespace ? `PersistentVolumeClaim ${v.pvcNamespace}/${v.pvcName}` : `PersistentVolume ${v.pvName}`).work.add("snapshot");
  }
  for (const hook of hookRuns(r.logLines ?? [])) at(`Pod ${hook.namespace}/${hook.pod}`).work.add(`${hook.phase} hooks`);
  return new Map([...out].map(([k, o]): [string, ItemOutcome] => [k, { included: o.included, work: [...o.work].sort() }]));
}

/** Velero's logrus text lines: key=value or key="quoted value". */
export function logFields(line: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const m of line.matchAll(/([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const raw = m[2] ?? "";
    fields[m[1] as string] = raw.startsWith("\"") ? (JSON.parse(raw) as string) : raw;
  }
  return fields;
}

/** One entry per exec hook Velero ran on a pod (its hook handler logs "running exec hook" first). */
export function hookRuns(lines: readonly string[]): { namespace: string; pod: string; phase: string }[] {
  const runs: { namespace: string; pod: string; phase: string }[] = [];
  for (const line of lines) {
    if (!line.includes("running exec hook")) continue;
    const f = logFields(line);
    const phase = f.hookPhase;
    const pod = f.name ?? f.pod;
    if (phase && pod && f.namespace) runs.push({ namespace: f.namespace, pod, phase });
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
export async function readVeleroRecords(c: Clients, veleroNamespace: string, s3Url: string, backup: string, probe: readonly ProbeRecord[]): Promise<VeleroRecords> {
  const pvbs = await c.custom.listNamespacedCustomObject({
    group: "velero.io", version: "v1", namespace: veleroNamespace, plural: "podvolumebackups", labelSelector: `velero.io/backup-name=${backup}`,
  }) as { items: NonNullable<VeleroRecords["podVolumeBackups"]>[number][] };
  const info = await readStorageObject(s3Url, "velero", `backups/${backup}/${backup}-volumeinfo.json.gz`);
  const logs = await readStorageObject(s3Url, "velero", `backups/${backup}/${backup}-logs.gz`);
  return {
    probe,
    podVolumeBackups: pvbs.items,
    volumeInfos: info ? (JSON.parse(info.toString("utf8")) as VolumeInfo[]) : [],
    logLines: logs ? logs.toString("utf8").split("\n") : [],
  };
}
