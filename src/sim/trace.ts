import { z } from "zod";
import type { BackupInfo } from "../core/model.js";
import { loadSnapshot, MAX_SPEC_DEPTH, tooDeep } from "../core/velero/objects.js";
import { readRestoreSpec } from "../core/velero/restoreSpec.js";
import { parsePolicy, type Policy } from "../core/policy.js";
import { ORIGIN_NAME, ORIGIN_NAMESPACE } from "../core/decision/tenants.js";
import type { ClusterView } from "../core/view.js";

// A trace for `backup-gate simulate`: a cluster (the List `plan` reads) and the backups that
// arrive over time, each with how long it runs. Documented in docs/simulate.md. Reading files
// is the caller's job (clusterFile goes through `readCluster`), so this stays testable.

const stringMap = z.record(z.string(), z.string());
// A Backup's name as Kubernetes allows it (DNS subdomain), so that traces stay replayable on a
// real cluster.
const backupName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a lowercase DNS name (a-z, 0-9, '-', '.')");

const traceBackup = z
  .strictObject({
    name: backupName,
    /** velero.io/v1 BackupSpec, as in a Backup object. */
    spec: z
      .record(z.string(), z.unknown())
      .default({})
      .superRefine((spec, ctx) => {
        const path = tooDeep(spec, MAX_SPEC_DEPTH - 1);
        if (path) ctx.addIssue({ code: "custom", path: path.slice(0, 3), message: `nests deeper than ${MAX_SPEC_DEPTH} levels below here` });
      }),
    labels: stringMap.default({}),
    annotations: stringMap.default({}),
    /**
     * A tenant's backup, made as OADP's non-admin controller makes it: the tenant's namespace is
     * its origin-namespace annotation and its only included namespace.
     */
    tenant: z
      .string()
      .max(63)
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a namespace name (a lowercase DNS label)")
      .optional(),
    /** Seconds from t0 at which the Backup is created. */
    arrival: z.number().min(0),
    /** Seconds it runs once started. */
    duration: z.number().positive().optional(),
    /** Seconds per pod, PVC and PV in its predicted scope; plus durationBase. */
    durationPerItem: z.number().min(0).optional(),
    durationBase: z.number().min(0).optional(),
  })
  .superRefine((b, ctx) => {
    if ((b.duration === undefined) === (b.durationPerItem === undefined)) {
      ctx.addIssue({ code: "custom", path: ["duration"], message: "give exactly one of duration or durationPerItem" });
    }
    if (b.durationBase !== undefined && b.durationPerItem === undefined) {
      ctx.addIssue({ code: "custom", path: ["durationBase"], message: "durationBase goes with durationPerItem" });
    }
    if (b.durationPerItem !== undefined && b.durationPerItem === 0 && !b.durationBase) {
      ctx.addIssue({ code: "custom", path: ["durationPerItem"], message: "a backup must take some time: durationPerItem and durationBase are both 0" });
    }
  });

/** A Velero Restore that writes (phase InProgress) from its arrival for its duration, then is Completed. */
const traceRestore = z.strictObject({
  name: backupName,
  /** velero.io/v1 RestoreSpec, as in a Restore object (backupName, includedNamespaces, namespaceMapping, ...). */
  spec: z
    .record(z.string(), z.unknown())
    .default({})
    .superRefine((spec, ctx) => {
      const read = readRestoreSpec(spec);
      if (!read.ok) ctx.addIssue({ code: "custom", message: read.error });
    }),
  /** Seconds from t0 at which it starts writing. */
  arrival: z.number().min(0),
  /** Seconds it writes. */
  duration: z.number().positive(),
});

const clusterList = z.looseObject({ kind: z.literal("List"), items: z.array(z.unknown()) });

export const traceSchema = z
  .strictObject({
    /** Names the trace in the output; default: the file name. */
    name: z.string().min(1).optional(),
    description: z.string().optional(),
    /** The instant arrival 0 stands for (creation timestamps are t0 + arrival). */
    t0: z.iso.datetime({ offset: true }).default("2026-01-01T00:00:00Z"),
    /** A policy document (the policy.yaml key); --policy replaces it, --level/--concurrency override it. */
    policy: z.unknown().optional(),
    cluster: clusterList.optional(),
    /** A file holding the cluster List, relative to the trace. */
    clusterFile: z.string().min(1).optional(),
    backups: z.array(traceBackup).min(1),
    /** Restores that run during the trace (they hold backups: policy `restores`). */
    restores: z.array(traceRestore).default([]),
  })
  .superRefine((t, ctx) => {
    if ((t.cluster === undefined) === (t.clusterFile === undefined)) {
      ctx.addIssue({ code: "custom", path: ["cluster"], message: "give exactly one of cluster (an inline List) or clusterFile" });
    }
    const seen = new Map<string, number>();
    t.backups.forEach((b, i) => {
      const first = seen.get(b.name);
      if (first !== undefined) ctx.addIssue({ code: "custom", path: ["backups", i, "name"], message: `duplicate name ${b.name} (also backups[${first}])` });
      else seen.set(b.name, i);
    });
    const restores = new Map<string, number>();
    t.restores.forEach((r, i) => {
      const first = restores.get(r.name);
      if (first !== undefined) ctx.addIssue({ code: "custom", path: ["restores", i, "name"], message: `duplicate name ${r.name} (also restores[${first}])` });
      else restores.set(r.name, i);
    });
  });

export type TraceDocument = z.output<typeof traceSchema>;
export type TraceBackup = TraceDocument["backups"][number];
export type TraceRestore = TraceDocument["restores"][number];

export interface Trace {
  readonly name: string;
  readonly t0: number;
  readonly view: ClusterView;
  readonly backups: readonly TraceBackup[];
  readonly restores: readonly TraceRestore[];
  /** The trace's own policy, when it has one. */
  readonly policy?: Policy;
}

export type TraceResult = { ok: true; trace: Trace } | { ok: false; error: string };

/** `backups[3].arrival` from a zod path. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return (
    path
      .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
      .join("")
      .replace(/^\./, "") || "(document)"
  );
}

/**
 * Validates a parsed trace document. `readCluster(file)` returns the parsed document of
 * `clusterFile` (or throws; the caller's error passes through). Errors name the field.
 */
export function parseTrace(doc: unknown, defaultName: string, readCluster?: (file: string) => unknown): TraceResult {
  const result = traceSchema.safeParse(doc);
  if (!result.success) {
    const issue = result.error.issues[0];
    // An unknown key is reported on its parent object; name the key itself.
    const path = [...(issue?.path ?? []), ...(issue?.code === "unrecognized_keys" ? issue.keys.slice(0, 1) : [])];
    const message = issue?.code === "unrecognized_keys" ? "unknown field" : (issue?.message ?? "invalid trace");
    return { ok: false, error: `${fieldPath(path)}: ${message}` };
  }
  const t = result.data;
  let policy: Policy | undefined;
  if (t.policy !== undefined) {
    const parsed = parsePolicy(t.policy);
    if (!parsed.ok) return { ok: false, error: `policy.${parsed.error}` };
    policy = parsed.policy;
  }
  let list: unknown = t.cluster;
  let where = "cluster";
  if (t.clusterFile !== undefined) {
    if (!readCluster) return { ok: false, error: "clusterFile: cannot read files here; give the cluster inline" };
    list = readCluster(t.clusterFile);
    where = `clusterFile ${t.clusterFile}`;
  }
  const loaded = loadSnapshot(list);
  if (!loaded.ok) return { ok: false, error: `${where}: ${loaded.error}` };
  if (loaded.snapshot.backups.length > 0) {
    return { ok: false, error: `${where}: holds Backup objects; a trace's backups go in backups[] (with arrival and duration)` };
  }
  const listed = new Set([...loaded.snapshot.view.restores()].map((r) => r.name));
  const clash = t.restores.findIndex((r) => listed.has(r.name));
  if (clash >= 0) return { ok: false, error: `restores[${clash}].name: ${t.restores[clash]!.name} is also a Restore in the ${where}` };
  return {
    ok: true,
    trace: {
      name: t.name ?? defaultName,
      t0: Date.parse(t.t0),
      view: loaded.snapshot.view,
      backups: t.backups.map(asMadeByOadp),
      restores: t.restores,
      ...(policy ? { policy } : {}),
    },
  };
}

/** A tenant's entry as OADP makes the Backup: origin annotations, and only the tenant's namespace included. */
function asMadeByOadp(b: TraceBackup): TraceBackup {
  if (b.tenant === undefined) return b;
  return {
    ...b,
    spec: { ...b.spec, includedNamespaces: [b.tenant] },
    annotations: { ...b.annotations, [ORIGIN_NAMESPACE]: b.tenant, [ORIGIN_NAME]: b.name },
  };
}

/** The Backup object a trace entry stands for, as `plan` sees it in a given phase. */
export function backupInfo(b: TraceBackup, t0: number, veleroNamespace: string, phase: string, specHash: string): BackupInfo {
  return {
    namespace: veleroNamespace,
    name: b.name,
    uid: `sim-${b.name}`,
    resourceVersion: "1",
    labels: b.labels,
    annotations: b.annotations,
    creationTimestamp: new Date(t0 + Math.round(b.arrival * 1000)).toISOString(),
    spec: b.spec,
    specHash,
    phase,
  };
}
