import fc from "fast-check";
import { policySchema, type Policy } from "../../../src/core/policy.js";
import { backup, boundClaim, ns, pod, pvc } from "../../support/builders.js";
import { cluster } from "./cluster.js";

// Arbitraries for property tests: small clusters and queues described as plain data (so a
// shrunk counterexample prints readably), then turned into the raw objects kubectl prints.

const NAMESPACES = ["shop", "shop-db", "web", "web-2", "data", "ops"] as const;
const APPS = ["a", "b"] as const;
const GROUP_KEY = "velero.io/volume-group";
export const T0 = Date.parse("2026-01-01T00:00:00Z");

export interface PvcModel {
  readonly name: string;
  readonly bound: boolean;
  readonly app?: string;
  readonly group?: string;
  readonly excluded: boolean;
}

export interface PodModel {
  readonly name: string;
  readonly claims: readonly string[];
  readonly running: boolean;
  readonly scheduled: boolean;
  readonly app?: string;
  readonly preHook: boolean;
  readonly postHook: boolean;
  /** Volume names listed in backup.velero.io/backup-volumes. */
  readonly fsVolumes: readonly string[];
  readonly fsExcludes: readonly string[];
  readonly emptyDir: boolean;
}

export interface NamespaceModel {
  readonly name: string;
  readonly excludeFromBackup: boolean;
  readonly namespaceLevel: boolean;
  readonly pvcs: readonly PvcModel[];
  readonly pods: readonly PodModel[];
}

export interface ClusterModel {
  readonly namespaces: readonly NamespaceModel[];
}

const pvcModel = (i: number): fc.Arbitrary<PvcModel> =>
  fc
    .record({
      name: fc.constant(`data-${i}`),
      // Mostly bound; sometimes Pending, sometimes labelled velero.io/exclude-from-backup.
      state: fc.integer({ min: 0, max: 9 }),
      app: fc.option(fc.constantFrom(...APPS), { nil: undefined }),
      group: fc.option(fc.constantFrom("g1", "g2"), { freq: 3, nil: undefined }),
    })
    .map(({ state, ...m }) => ({ ...m, bound: state < 8, excluded: state === 9 }));

const podModel = (i: number, claimNames: readonly string[]): fc.Arbitrary<PodModel> => {
  const pool = [...claimNames, "missing-claim"];
  const claims = fc.subarray(pool, { maxLength: Math.min(2, pool.length) });
  return claims.chain((cs) => {
    const volumeNames = [...cs.map((c) => `vol-${c}`), "scratch"];
    return fc.record({
      name: fc.constant(`pod-${i}`),
      claims: fc.constant(cs),
      running: fc.integer({ min: 0, max: 4 }).map((r) => r > 0),
      scheduled: fc.integer({ min: 0, max: 4 }).map((r) => r > 0),
      app: fc.option(fc.constantFrom(...APPS), { nil: undefined }),
      preHook: fc.integer({ min: 0, max: 3 }).map((r) => r === 0),
      postHook: fc.integer({ min: 0, max: 5 }).map((r) => r === 0),
      fsVolumes: fc.integer({ min: 0, max: 3 }).chain((r) => (r === 0 ? fc.subarray(volumeNames, { minLength: 1 }) : fc.constant<string[]>([]))),
      fsExcludes: fc.integer({ min: 0, max: 4 }).chain((r) => (r === 0 ? fc.subarray(volumeNames, { minLength: 1 }) : fc.constant<string[]>([]))),
      emptyDir: fc.boolean(),
    });
  });
};

const namespaceModel = (name: string): fc.Arbitrary<NamespaceModel> =>
  fc.integer({ min: 0, max: 3 }).chain((pvcCount) => {
    const pvcArbs = Array.from({ length: pvcCount }, (_, i) => pvcModel(i));
    const claimNames = Array.from({ length: pvcCount }, (_, i) => `data-${i}`);
    return fc.record({
      name: fc.constant(name),
      excludeFromBackup: fc.integer({ min: 0, max: 7 }).map((r) => r === 0),
      namespaceLevel: fc.integer({ min: 0, max: 5 }).map((r) => r === 0),
      pvcs: fc.tuple(...pvcArbs).map((xs) => [...xs] as PvcModel[]),
      pods: fc
        .integer({ min: 0, max: 3 })
        .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => podModel(i, claimNames))).map((xs) => [...xs] as PodModel[])),
    });
  });

export const clusterModel: fc.Arbitrary<ClusterModel> = fc
  .subarray([...NAMESPACES], { minLength: 1, maxLength: 5 })
  .chain((names) => fc.tuple(...names.map(namespaceModel)).map((namespaces) => ({ namespaces: [...namespaces] })));

/**
 * A namespace's contents made anew (pods, PVCs, PVs); mostly with its labels kept, so that
 * only the contents move, and sometimes not.
 */
export function contentsChange(model: ClusterModel): fc.Arbitrary<ClusterModel> {
  return fc
    .record({
      at: fc.nat({ max: model.namespaces.length - 1 }),
      relabel: fc.integer({ min: 0, max: 5 }).map((r) => r === 0),
    })
    .chain(({ at, relabel }) => {
      const old = model.namespaces[at] as NamespaceModel;
      return namespaceModel(old.name).map((fresh) => ({
        namespaces: model.namespaces.map((n, i) =>
          i !== at ? n : relabel ? fresh : { ...fresh, excludeFromBackup: old.excludeFromBackup, namespaceLevel: old.namespaceLevel },
        ),
      }));
    });
}

/** The raw objects of a cluster model, in a canonical order. */
export function clusterObjects(model: ClusterModel): object[] {
  const out: object[] = [];
  for (const n of model.namespaces) {
    out.push(
      ns(n.name, {
        labels: n.excludeFromBackup ? { "velero.io/exclude-from-backup": "true" } : {},
        annotations: n.namespaceLevel ? { "backup-gate.io/conflict-level": "Namespace" } : {},
      }),
    );
    for (const c of n.pvcs) {
      const labels: Record<string, string> = {};
      if (c.app) labels.app = c.app;
      if (c.group) labels[GROUP_KEY] = c.group;
      if (c.excluded) labels["velero.io/exclude-from-backup"] = "true";
      if (c.bound) out.push(...boundClaim(n.name, c.name, { labels, pvOpts: { csiDriver: "csi.example.com" } }));
      else out.push(pvc(n.name, c.name, { labels, pv: null }));
    }
    for (const p of n.pods) {
      const annotations: Record<string, string> = {};
      if (p.preHook) annotations["pre.hook.backup.velero.io/command"] = '["/bin/sync"]';
      if (p.postHook) annotations["post.hook.backup.velero.io/command"] = '["/bin/true"]';
      if (p.fsVolumes.length > 0) annotations["backup.velero.io/backup-volumes"] = p.fsVolumes.join(",");
      if (p.fsExcludes.length > 0) annotations["backup.velero.io/backup-volumes-excludes"] = p.fsExcludes.join(",");
      out.push(
        pod(n.name, p.name, {
          claims: [...p.claims],
          volumes: p.emptyDir ? [{ name: "scratch", emptyDir: {} }] : [],
          phase: p.running ? "Running" : "Pending",
          node: p.scheduled ? "node-1" : null,
          labels: p.app ? { app: p.app } : {},
          annotations,
        }),
      );
    }
  }
  return out;
}

// --- Backups ---

const namespaceList = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constant([] as string[]) },
  { weight: 2, arbitrary: fc.constant(["*"]) },
  { weight: 5, arbitrary: fc.subarray([...NAMESPACES, "ghost"], { minLength: 1, maxLength: 3 }) },
  { weight: 3, arbitrary: fc.subarray(["shop*", "*-db", "web-?", "[sd]*", "w*b", "nothing-*"], { minLength: 1, maxLength: 2 }) },
  { weight: 1, arbitrary: fc.constant(["*", "web"]) },
);
const excludeList = fc.oneof(
  { weight: 6, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.subarray([...NAMESPACES], { minLength: 1, maxLength: 2 }) },
  { weight: 1, arbitrary: fc.subarray(["shop*", "*-2", "o?s"], { minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.constant(["*"]) },
);
const selector = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constantFrom(...APPS).map((app) => ({ matchLabels: { app } })) },
  { weight: 1, arbitrary: fc.constant({ matchExpressions: [{ key: "app", operator: "Exists" }] }) },
  { weight: 1, arbitrary: fc.constant({ matchExpressions: [{ key: "app", operator: "NotIn", values: ["a"] }] }) },
);
const hookResources = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  {
    weight: 1,
    arbitrary: fc
      .record(
        {
          name: fc.constant("freeze"),
          includedNamespaces: fc.option(fc.subarray([...NAMESPACES, "*"], { minLength: 1, maxLength: 2 }), { nil: undefined }),
          labelSelector: fc.option(
            fc.constantFrom(...APPS).map((app) => ({ matchLabels: { app } })),
            { nil: undefined },
          ),
          pre: fc.constant([{ exec: { command: ["/bin/fsfreeze", "--freeze", "/data"] } }]),
        },
        { requiredKeys: ["name", "pre"] },
      )
      .map((h) => ({ resources: [h] })),
  },
);
const resources = fc.oneof(
  { weight: 8, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: fc.constant({ includedResources: ["configmaps", "deployments"] }) },
  { weight: 1, arbitrary: fc.constant({ includedNamespaceScopedResources: ["pods", "persistentvolumeclaims"] }) },
);

export const backupSpec: fc.Arbitrary<Record<string, unknown>> = fc
  .record({
    includedNamespaces: namespaceList,
    excludedNamespaces: excludeList,
    labelSelector: selector,
    snapshotVolumes: fc.constantFrom(true, false, undefined),
    defaultVolumesToFsBackup: fc.constantFrom(true, false, undefined, undefined),
    hooks: hookResources,
    resources,
  })
  .map(({ resources, ...spec }) => {
    const out: Record<string, unknown> = { ...resources };
    for (const [k, v] of Object.entries(spec)) if (v !== undefined) out[k] = v;
    return out;
  });

export const QUEUED = ["", "New", "Queued"] as const;
export const IN_FLIGHT = ["ReadyToStart", "InProgress"] as const;

export interface BackupModel {
  readonly name: string;
  readonly spec: Record<string, unknown>;
  readonly phase: string;
  /** Minutes after T0. */
  readonly createdMinute: number;
  readonly schedule?: string;
  readonly priority?: string;
  readonly namespaceLevel: boolean;
}

export interface BackupOptions {
  readonly phases?: readonly string[];
  /** Schedule labels, priority labels and the conflict-level annotation. */
  readonly schedules?: boolean;
  readonly priorities?: boolean;
  readonly maxLength?: number;
  readonly minLength?: number;
}

const PHASES = ["", "New", "Queued", "ReadyToStart", "InProgress", "Completed"] as const;

/** Backups with unique names. Runs of one Schedule share the Schedule's spec, as Velero makes them. */
export function backupModels(o: BackupOptions = {}): fc.Arbitrary<BackupModel[]> {
  const schedules = fc.tuple(backupSpec, backupSpec);
  return schedules.chain(([s1, s2]) =>
    fc
      .array(
        fc.record({
          spec: backupSpec,
          phase: fc.constantFrom(...(o.phases ?? PHASES)),
          createdMinute: fc.integer({ min: 0, max: 120 }),
          schedule: o.schedules === false ? fc.constant(undefined) : fc.constantFrom(undefined, undefined, undefined, "s1", "s2"),
          priority:
            o.priorities === false
              ? fc.constant(undefined)
              : fc.oneof(
                  { weight: 4, arbitrary: fc.constant(undefined) },
                  { weight: 2, arbitrary: fc.integer({ min: -5, max: 20 }).map(String) },
                  { weight: 1, arbitrary: fc.constant("high") },
                ),
          namespaceLevel: fc.integer({ min: 0, max: 7 }).map((r) => r === 0 && o.schedules !== false),
        }),
        { minLength: o.minLength ?? 1, maxLength: o.maxLength ?? 8 },
      )
      .map((xs) =>
        xs.map((x, i): BackupModel => ({
          name: `b${i}`,
          phase: x.phase,
          createdMinute: x.createdMinute,
          namespaceLevel: x.namespaceLevel,
          ...(x.priority !== undefined ? { priority: x.priority } : {}),
          ...(x.schedule ? { schedule: x.schedule, spec: x.schedule === "s1" ? s1 : s2 } : { spec: x.spec }),
        })),
      ),
  );
}

export function backupObject(b: BackupModel): object {
  const labels: Record<string, string> = {};
  if (b.schedule) labels["velero.io/schedule-name"] = b.schedule;
  if (b.priority !== undefined) labels["backup-gate.io/priority"] = b.priority;
  return backup(b.name, b.spec, {
    phase: b.phase === "" ? undefined : b.phase,
    created: new Date(T0 + b.createdMinute * 60_000).toISOString(),
    labels,
    annotations: b.namespaceLevel ? { "backup-gate.io/conflict-level": "Namespace" } : {},
  });
}

export const policyArb: fc.Arbitrary<Policy> = fc
  .record({
    conflictLevel: fc.constantFrom("Namespace", "ItemBlock"),
    maxConcurrentBackups: fc.integer({ min: 1, max: 5 }),
    serialWorkloads: fc.constantFrom("Allow", "Forbid", "Replace"),
    defaultVolumesToFsBackup: fc.boolean(),
    agingSeconds: fc.constantFrom(0, 600),
    exclusiveResources: fc.constantFrom([], ["virtualmachines.kubevirt.io"]),
  })
  .map(({ agingSeconds, ...p }) => policySchema.parse({ ...p, priorities: { agingSeconds } }));

export function load(model: ClusterModel, backups: readonly BackupModel[]) {
  return cluster(...clusterObjects(model), ...backups.map(backupObject));
}
