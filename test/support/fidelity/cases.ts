import fc from "fast-check";

// The differential fidelity suite's cases: a small estate and one Backup spec, drawn so that
// every scope rule the core implements is exercised (namespace globs and the exclude label,
// both resource-filter styles, label and or-selectors, spec and annotation hooks, the two pod
// volume annotations with odd spacing, defaultVolumesToFsBackup, snapshotVolumes, volume
// policies, volume groups under the policy's key and a backup's own key). A case names its
// namespaces from a prefix, so that cases can share one cluster.

export const GROUP_KEY = "velero.io/volume-group";
export const OWN_GROUP_KEY = "example.com/group";
export const EXCLUDE = "velero.io/exclude-from-backup";
/** The node's CSI driver and StorageClass (test/support/node.ts), named by some volume policies. */
export const CSI_DRIVER = "hostpath.csi.backup-gate.io";
export const CSI_CLASS = "bg-hostpath";

/** A hook's command: it appends its phase to the pod's record file, so the run is observed. */
export const hookCommand = (phase: "pre" | "post") => ["/bin/sh", "-c", `echo ${phase} >> /records/hooks.log`];

export interface VolumeCase {
  readonly name: string;
  /** emptyDir and configMap are pod volumes; pvc mounts the claim `claim`. */
  readonly source: "emptyDir" | "configMap" | "pvc";
  readonly claim?: string;
}

export interface PodCase {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly volumes: readonly VolumeCase[];
}

export interface PvcCase {
  readonly name: string;
  readonly labels: Record<string, string>;
  /** False: the claim stays unbound (Pending). */
  readonly bound: boolean;
}

export interface NamespaceCase {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly pods: readonly PodCase[];
  readonly pvcs: readonly PvcCase[];
}

export interface FidelityCase {
  readonly namespaces: readonly NamespaceCase[];
  readonly spec: Record<string, unknown>;
  /** The `policy.yaml` of a volume-policy ConfigMap the spec refers to, if any. */
  readonly volumePolicy?: string;
}

const VOLUME_NAMES = ["cfg", "data", "tmp"] as const;

/** A comma list of names as people write it: with or without spaces, sometimes a leading one. */
const nameList = (names: readonly string[]) =>
  fc
    .tuple(fc.subarray([...names], { minLength: 1 }), fc.constantFrom(",", ", ", " ,"), fc.boolean())
    .map(([picked, sep, lead]) => `${lead ? " " : ""}${picked.join(sep)}`);

/** Mostly `usual`, now and then the other value; shrinks to `usual`. */
const mostly = (usual: boolean) => fc.oneof({ weight: 3, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: fc.constant(!usual) });

/** Undefined three times in four: most groups use the policy's key, some a backup's own. */
const rarely = <T>(a: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });

const labelsArb = fc
  .record(
    {
      app: fc.constantFrom("a", "b"),
      tier: fc.option(fc.constantFrom("db", "web"), { nil: undefined }),
      exclude: mostly(false),
    },
    { requiredKeys: ["app"] },
  )
  .map(({ app, tier, exclude }) => ({
    app,
    ...(tier ? { tier } : {}),
    ...(exclude ? { [EXCLUDE]: "true" } : {}),
  }));

function podArb(name: string, claims: readonly string[]): fc.Arbitrary<PodCase> {
  const volumes = fc
    .tuple(fc.subarray(["cfg", "tmp"] as const), fc.subarray([...claims], { maxLength: Math.min(2, claims.length) }), fc.boolean())
    .map(([plain, mounted, withConfigMap]) => [
      ...plain.map((v): VolumeCase => ({ name: v, source: "emptyDir" })),
      ...mounted.map((claim, i): VolumeCase => ({ name: i === 0 ? "data" : `data-${claim}`, source: "pvc", claim })),
      ...(withConfigMap ? [{ name: "settings", source: "configMap" } as VolumeCase] : []),
    ]);
  const annotations = fc
    .record({
      optIn: fc.option(nameList(VOLUME_NAMES), { nil: undefined }),
      optOut: fc.option(nameList(VOLUME_NAMES), { nil: undefined }),
      preHook: fc.boolean(),
      postHook: fc.boolean(),
    })
    .map(({ optIn, optOut, preHook, postHook }) => ({
      ...(optIn !== undefined ? { "backup.velero.io/backup-volumes": optIn } : {}),
      ...(optOut !== undefined ? { "backup.velero.io/backup-volumes-excludes": optOut } : {}),
      ...(preHook ? { "pre.hook.backup.velero.io/command": JSON.stringify(hookCommand("pre")), "pre.hook.backup.velero.io/container": "main" } : {}),
      ...(postHook ? { "post.hook.backup.velero.io/command": JSON.stringify(hookCommand("post")), "post.hook.backup.velero.io/container": "main" } : {}),
    }));
  return fc.record({ labels: labelsArb, annotations, volumes }).map((p) => ({ name, ...p }));
}

function pvcArb(name: string): fc.Arbitrary<PvcCase> {
  return fc
    .record({
      labels: labelsArb,
      group: fc.option(fc.constantFrom("g1", "g2"), { nil: undefined, freq: 2 }),
      ownGroup: rarely(fc.constantFrom("x1", "x2")),
      bound: mostly(true),
    })
    .map(({ labels, group, ownGroup, bound }) => ({
      name,
      bound,
      labels: { ...labels, ...(group ? { [GROUP_KEY]: group } : {}), ...(ownGroup ? { [OWN_GROUP_KEY]: ownGroup } : {}) },
    }));
}

function namespaceArb(name: string): fc.Arbitrary<NamespaceCase> {
  const claims = ["c1", "c2", "c3"];
  return fc
    .record({
      excluded: mostly(false),
      pvcs: fc.subarray(claims, { minLength: 0 }).chain((names) => fc.tuple(...names.map(pvcArb))),
    })
    .chain(({ excluded, pvcs }) =>
      // Pods mount bound claims only: a pod on a Pending claim never runs, and pods must run.
      fc
        .tuple(
          ...["p1", "p2"].map((p) =>
            podArb(
              p,
              pvcs.filter((c) => c.bound).map((c) => c.name),
            ),
          ),
        )
        .map((pods): NamespaceCase => ({ name, labels: excluded ? { [EXCLUDE]: "true" } : {}, pods, pvcs })),
    );
}

const selectorArb = fc.oneof(
  fc.constantFrom("a", "b").map((app) => ({ matchLabels: { app } })),
  fc.constant({ matchExpressions: [{ key: "tier", operator: "Exists" }] }),
  fc.constant({ matchExpressions: [{ key: "app", operator: "In", values: ["a"] }] }),
);

/** A spec over namespaces named `${prefix}-a`, `-b`, `-c`: lists, globs and filters as people write them. */
function specArb(prefix: string): fc.Arbitrary<{ spec: Record<string, unknown>; volumePolicy?: string }> {
  const included = fc.constantFrom<string[]>(
    [`${prefix}-a`],
    [`${prefix}-a`, `${prefix}-b`],
    [`${prefix}-*`],
    [`${prefix}-?`],
    [`${prefix}-[ab]`],
    [`${prefix}-a`, `${prefix}-c`],
  );
  const excluded = fc.constantFrom<string[]>([], [], [`${prefix}-b`], [`${prefix}-c*`]);
  const oldFilters = fc.record(
    {
      includedResources: fc.constantFrom<string[] | undefined>(
        undefined,
        ["pods"],
        ["pods", "persistentvolumeclaims"],
        ["persistentvolumeclaims", "persistentvolumes"],
      ),
      excludedResources: fc.constantFrom<string[] | undefined>(undefined, ["persistentvolumes"], ["pods"]),
      includeClusterResources: fc.constantFrom<boolean | undefined>(undefined, true, false),
    },
    { requiredKeys: [] },
  );
  const newFilters = fc.record(
    {
      includedNamespaceScopedResources: fc.constantFrom<string[] | undefined>(undefined, ["pods"], ["pods", "persistentvolumeclaims"]),
      excludedNamespaceScopedResources: fc.constantFrom<string[] | undefined>(undefined, ["pods"], ["persistentvolumeclaims"]),
      excludedClusterScopedResources: fc.constantFrom<string[] | undefined>(undefined, ["persistentvolumes"]),
    },
    { requiredKeys: [] },
  );
  const hooks = fc
    .option(
      fc.record({
        labelSelector: fc.option(selectorArb, { nil: undefined }),
        includedNamespaces: fc.option(fc.constantFrom([`${prefix}-a`], [`${prefix}-*`]), { nil: undefined }),
        pre: fc.boolean(),
        post: fc.boolean(),
      }),
      { nil: undefined },
    )
    .map(
      (h) =>
        h && {
          resources: [
            {
              name: "freeze",
              ...(h.includedNamespaces ? { includedNamespaces: h.includedNamespaces } : {}),
              ...(h.labelSelector ? { labelSelector: h.labelSelector } : {}),
              ...(h.pre ? { pre: [{ exec: { container: "main", command: hookCommand("pre"), onError: "Continue" } }] } : {}),
              ...(h.post ? { post: [{ exec: { container: "main", command: hookCommand("post"), onError: "Continue" } }] } : {}),
            },
          ],
        },
    );
  const policy = fc.option(
    fc.constantFrom(
      "version: v1\nvolumePolicies:\n- conditions: {volumeTypes: [emptyDir]}\n  action: {type: fs-backup}\n",
      "version: v1\nvolumePolicies:\n- conditions: {pvcLabels: {tier: db}}\n  action: {type: skip}\n",
      "version: v1\nvolumePolicies:\n- conditions: {volumeTypes: [emptyDir]}\n  action: {type: skip}\n- conditions: {}\n  action: {type: fs-backup}\n",
      `version: v1\nvolumePolicies:\n- conditions: {csi: {driver: ${CSI_DRIVER}}, pvcLabels: {app: a}}\n  action: {type: fs-backup}\n- conditions: {csi: {driver: ${CSI_DRIVER}}}\n  action: {type: snapshot}\n`,
      `version: v1\nvolumePolicies:\n- conditions: {storageClass: [${CSI_CLASS}], capacity: "0,2Gi"}\n  action: {type: skip}\n- conditions: {volumeTypes: [emptyDir]}\n  action: {type: fs-backup}\n`,
      "version: v1\nvolumePolicies:\n- conditions: {pvcPhase: [Bound], pvcLabels: {tier: web}}\n  action: {type: fs-backup}\n",
    ),
    { nil: undefined, freq: 2 },
  );
  return fc
    .record({
      includedNamespaces: fc.option(included, { nil: undefined }),
      excludedNamespaces: excluded,
      filters: fc.oneof(oldFilters, newFilters, fc.constant({})),
      selector: fc.oneof(
        fc.constant({}),
        selectorArb.map((labelSelector) => ({ labelSelector })),
        fc.tuple(selectorArb, selectorArb).map(([x, y]) => ({ orLabelSelectors: [x, y] })),
      ),
      hooks,
      defaultVolumesToFsBackup: fc.constantFrom<boolean | undefined>(undefined, true, false),
      snapshotVolumes: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant(false) }),
      ownKey: fc.boolean(),
      policy,
    })
    .map((s) => ({
      spec: {
        ...(s.includedNamespaces ? { includedNamespaces: s.includedNamespaces } : { includedNamespaces: [`${prefix}-*`] }),
        ...(s.excludedNamespaces.length > 0 ? { excludedNamespaces: s.excludedNamespaces } : {}),
        ...dropUndefined(s.filters),
        ...s.selector,
        ...(s.hooks ? { hooks: s.hooks } : {}),
        ...(s.defaultVolumesToFsBackup !== undefined ? { defaultVolumesToFsBackup: s.defaultVolumesToFsBackup } : {}),
        ...(s.snapshotVolumes !== undefined ? { snapshotVolumes: s.snapshotVolumes } : {}),
        ...(s.ownKey ? { volumeGroupSnapshotLabelKey: OWN_GROUP_KEY } : {}),
        ...(s.policy ? { resourcePolicy: { kind: "configmap", name: `${prefix}-volume-policy` } } : {}),
      },
      ...(s.policy ? { volumePolicy: s.policy } : {}),
    }));
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** A case over namespaces `${prefix}-a`, `-b` and `-c`. */
export function caseArb(prefix: string): fc.Arbitrary<FidelityCase> {
  return fc
    .tuple(namespaceArb(`${prefix}-a`), namespaceArb(`${prefix}-b`), namespaceArb(`${prefix}-c`), specArb(prefix))
    .map(([a, b, c, { spec, volumePolicy }]) => ({ namespaces: [a, b, c], spec, ...(volumePolicy ? { volumePolicy } : {}) }));
}

/** Where the objects go and what they run. */
export interface Placement {
  readonly veleroNamespace: string;
  /** The image a pod runs (on the real node, one that stays up: `sleep`). */
  readonly image: string;
  /** Storage class of the claims and their PVs ("" for static hostPath PVs). */
  readonly storageClass: string;
  /** PV source: hostPath (no driver; Velero cannot snapshot it) or a CSI driver's. */
  readonly pvSource: (pvName: string) => Record<string, unknown>;
  /** Bound claims are provisioned by the StorageClass (no PV objects of the case's own). */
  readonly provision?: boolean;
  /** The class of claims that must stay Pending (one no provisioner serves). */
  readonly unboundStorageClass?: string;
  /** Host directory of hook records: each pod mounts `<dir>/<ns>/<pod>` (hostPath) at /records. */
  readonly recordsDir?: string;
}

export interface CaseObjects {
  readonly namespaces: object[];
  readonly pvcs: object[];
  readonly pvs: object[];
  readonly pods: object[];
  readonly configMaps: object[];
}

/** The raw Kubernetes objects of a case, as a writer would create them. PVs are named `${ns}-${claim}`. */
export function caseObjects(c: FidelityCase, at: Placement): CaseObjects {
  const out: CaseObjects = { namespaces: [], pvcs: [], pvs: [], pods: [], configMaps: [] };
  for (const ns of c.namespaces) {
    out.namespaces.push({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns.name, labels: ns.labels } });
    for (const pvc of ns.pvcs) {
      const pvName = `${ns.name}-${pvc.name}`;
      const storageClassName = !pvc.bound && at.unboundStorageClass !== undefined ? at.unboundStorageClass : at.storageClass;
      out.pvcs.push({
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        metadata: { namespace: ns.name, name: pvc.name, labels: pvc.labels },
        spec: {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: "1Gi" } },
          storageClassName,
          ...(pvc.bound && !at.provision ? { volumeName: pvName } : {}),
        },
      });
      if (pvc.bound && !at.provision) {
        out.pvs.push({
          apiVersion: "v1",
          kind: "PersistentVolume",
          metadata: { name: pvName },
          spec: {
            capacity: { storage: "1Gi" },
            accessModes: ["ReadWriteOnce"],
            persistentVolumeReclaimPolicy: "Delete",
            storageClassName: at.storageClass,
            claimRef: { namespace: ns.name, name: pvc.name },
            ...at.pvSource(pvName),
          },
        });
      }
    }
    for (const pod of ns.pods) {
      const records =
        at.recordsDir === undefined ? [] : [{ name: "records", hostPath: { path: `${at.recordsDir}/${ns.name}/${pod.name}`, type: "DirectoryOrCreate" } }];
      out.pods.push({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { namespace: ns.name, name: pod.name, labels: pod.labels, annotations: pod.annotations },
        spec: {
          terminationGracePeriodSeconds: 0,
          containers: [
            {
              name: "main",
              image: at.image,
              imagePullPolicy: "Never",
              command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
              volumeMounts: [
                ...pod.volumes.map((v) => ({ name: v.name, mountPath: `/mnt/${v.name}` })),
                ...records.map((r) => ({ name: r.name, mountPath: "/records" })),
              ],
            },
          ],
          volumes: [
            ...pod.volumes.map((v) => ({
              name: v.name,
              ...(v.source === "pvc"
                ? { persistentVolumeClaim: { claimName: v.claim } }
                : v.source === "configMap"
                  ? { configMap: { name: "settings", optional: true } }
                  : { emptyDir: {} }),
            })),
            ...records,
          ],
        },
      });
    }
  }
  if (c.volumePolicy !== undefined) {
    const prefix = c.namespaces[0]!.name.replace(/-a$/, "");
    out.configMaps.push({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { namespace: at.veleroNamespace, name: `${prefix}-volume-policy` },
      data: { "policy.yaml": c.volumePolicy },
    });
  }
  return out;
}

/** One line per object, for a mismatch report a person can rebuild the case from. */
export function describeCase(c: FidelityCase): string {
  const lines = [`spec: ${JSON.stringify(c.spec)}`];
  if (c.volumePolicy) lines.push(`volume policy: ${JSON.stringify(c.volumePolicy)}`);
  for (const ns of c.namespaces) {
    lines.push(`namespace ${ns.name} ${JSON.stringify(ns.labels)}`);
    for (const pvc of ns.pvcs) lines.push(`  pvc ${pvc.name} ${pvc.bound ? "bound" : "unbound"} ${JSON.stringify(pvc.labels)}`);
    for (const pod of ns.pods) {
      lines.push(
        `  pod ${pod.name} ${JSON.stringify(pod.labels)} ${JSON.stringify(pod.annotations)} volumes ${pod.volumes.map((v) => `${v.name}:${v.source}${v.claim ? `(${v.claim})` : ""}`).join(" ")}`,
      );
    }
  }
  return lines.join("\n");
}

/**
 * The case cut down to the items named (`Pod ns/p`, `PersistentVolumeClaim ns/c`, `PersistentVolume pv`),
 * with the claims their pods mount and the pods mounting their claims: what a person reads first.
 */
export function reduceToItems(c: FidelityCase, items: readonly string[], claimOfPv: (pv: string) => string | undefined): FidelityCase {
  const keys = new Set(items.map((k) => (k.startsWith("PersistentVolume ") ? (claimOfPv(k.slice("PersistentVolume ".length)) ?? k) : k)));
  const namespaces = c.namespaces
    .map((ns) => {
      const pvcNames = new Set(ns.pvcs.filter((p) => keys.has(`PersistentVolumeClaim ${ns.name}/${p.name}`)).map((p) => p.name));
      const pods = ns.pods.filter((p) => keys.has(`Pod ${ns.name}/${p.name}`) || p.volumes.some((v) => v.claim !== undefined && pvcNames.has(v.claim)));
      for (const p of pods) for (const v of p.volumes) if (v.claim !== undefined) pvcNames.add(v.claim);
      return { ...ns, pods, pvcs: ns.pvcs.filter((p) => pvcNames.has(p.name)) };
    })
    .filter((ns) => ns.pods.length > 0 || ns.pvcs.length > 0);
  return { ...c, namespaces };
}
