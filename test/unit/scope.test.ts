import { describe, expect, it } from "vitest";
import type { BackupInfo } from "../../src/core/model.js";
import { trim } from "../../src/core/velero/objects.js";
import { parseBackupSpec } from "../../src/core/velero/backupSpec.js";
import { scopeOf } from "../../src/core/scope/scope.js";
import { volumeRules } from "../../src/core/velero/volumes.js";
import { ScopeCache } from "../../src/core/scope/cache.js";
import type { ClusterView } from "../../src/core/view.js";
import { DEFAULT_POLICY, policySchema, type Policy } from "../../src/core/policy.js";
import { backup, boundClaim, configMap, ns, pod, pvc } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// Scope tables: each case cites the Velero 1.18 rule it pins (docs/velero-scope.md).

const estate = () => [
  ns("shop"),
  ns("shop-staging"),
  ns("web"),
  ns("kube-system"),
  ns("secret-ns", { labels: { "velero.io/exclude-from-backup": "true" } }),
  pod("shop", "db-0", { claims: ["data-db-0"], labels: { app: "db" } }),
  ...boundClaim("shop", "data-db-0"),
  pod("shop", "api", { labels: { app: "api" }, volumes: [{ name: "tmp", emptyDir: {} }] }),
  pod("shop-staging", "db-0", { claims: ["data"], labels: { app: "db" } }),
  ...boundClaim("shop-staging", "data"),
  pod("web", "nginx", { labels: { app: "web" } }),
];

function scope(
  spec: object,
  policy: Policy = DEFAULT_POLICY,
  extra: object[] = [],
  meta: { annotations?: Record<string, string>; labels?: Record<string, string> } = {},
) {
  const s = cluster(...estate(), ...extra, backup("b", spec, meta));
  return scopeOf(s.backups[0]!, s.view, policy);
}

describe("namespaces (prepareBackupRequest + NamespaceIncludesExcludes.ResolveNamespaceList)", () => {
  it.each([
    {
      name: "empty includedNamespaces means every namespace, minus those labelled exclude-from-backup",
      spec: {},
      expected: ["kube-system", "shop", "shop-staging", "web"],
    },
    { name: "a lone * means every namespace", spec: { includedNamespaces: ["*"] }, expected: ["kube-system", "shop", "shop-staging", "web"] },
    { name: "a glob expands against existing namespaces", spec: { includedNamespaces: ["shop*"] }, expected: ["shop", "shop-staging"] },
    { name: "? matches one character", spec: { includedNamespaces: ["we?"] }, expected: ["web"] },
    { name: "[...] is a character class", spec: { includedNamespaces: ["[sw]*"] }, expected: ["shop", "shop-staging", "web"] },
    { name: "excludes take globs too", spec: { excludedNamespaces: ["shop*", "kube-*"] }, expected: ["web"] },
    { name: "a glob that matches nothing covers nothing, not everything", spec: { includedNamespaces: ["nope-*"] }, expected: [] },
    { name: "a literal name that does not exist covers nothing", spec: { includedNamespaces: ["missing"] }, expected: [] },
  ])("$name", ({ spec, expected }) => {
    expect(scope(spec).namespaces).toEqual(expected);
  });

  it("Velero's queue compares the lists as written, so a namespace labelled exclude-from-backup still counts there", () => {
    expect(scope({}).queueNamespaces).toEqual(["kube-system", "secret-ns", "shop", "shop-staging", "web"]);
  });
});

describe("validation (prepareBackupRequest): a typed error naming the field, never a throw", () => {
  it.each([
    { name: "* mixed with other namespaces", spec: { includedNamespaces: ["*", "shop"] }, field: "spec.includedNamespaces" },
    { name: "* in excludedNamespaces", spec: { excludedNamespaces: ["*"] }, field: "spec.excludedNamespaces" },
    { name: "a namespace both included and excluded", spec: { includedNamespaces: ["shop"], excludedNamespaces: ["shop"] }, field: "spec.excludedNamespaces" },
    { name: "an included namespace labelled exclude-from-backup", spec: { includedNamespaces: ["secret-ns"] }, field: "spec.includedNamespaces" },
    { name: "an unclosed bracket", spec: { includedNamespaces: ["shop[a"] }, field: "spec.includedNamespaces[0]" },
    { name: "a brace pattern", spec: { includedNamespaces: ["{shop,web}"] }, field: "spec.includedNamespaces[0]" },
    { name: "consecutive asterisks", spec: { excludedNamespaces: ["sh**"] }, field: "spec.excludedNamespaces[0]" },
    { name: "an invalid namespace name", spec: { includedNamespaces: ["Shop_1"] }, field: "spec.includedNamespaces[0]" },
    {
      name: "old and new resource filters mixed",
      spec: { includedResources: ["pods"], includedNamespaceScopedResources: ["pods"] },
      field: "spec.includedResources",
    },
    { name: "* mixed with other resources (old filters)", spec: { includedResources: ["*", "pods"] }, field: "spec.includedResources" },
    { name: "* in excludedResources (old filters)", spec: { excludedResources: ["*"] }, field: "spec.excludedResources" },
    { name: "a resource both included and excluded", spec: { includedResources: ["pods"], excludedResources: ["pods"] }, field: "spec.excludedResources" },
    {
      name: "excluded * with includes (new cluster-scoped filters)",
      spec: { includedClusterScopedResources: ["storageclasses"], excludedClusterScopedResources: ["*"] },
      field: "spec.excludedClusterScopedResources",
    },
    {
      name: "* mixed in new namespace-scoped includes",
      spec: { includedNamespaceScopedResources: ["*", "pods"] },
      field: "spec.includedNamespaceScopedResources",
    },
    {
      name: "labelSelector and orLabelSelectors both set",
      spec: { labelSelector: { matchLabels: { a: "b" } }, orLabelSelectors: [{ matchLabels: { c: "d" } }] },
      field: "spec.orLabelSelectors",
    },
    {
      name: "a selector operator that does not exist",
      spec: { labelSelector: { matchExpressions: [{ key: "a", operator: "Near" }] } },
      field: "spec.labelSelector.matchExpressions[0].operator",
    },
    {
      name: "In without values",
      spec: { labelSelector: { matchExpressions: [{ key: "a", operator: "In" }] } },
      field: "spec.labelSelector.matchExpressions[0].values",
    },
    { name: "a list where a string is due", spec: { includedNamespaces: "shop" }, field: "spec.includedNamespaces" },
    {
      name: "a hook without a command",
      spec: { hooks: { resources: [{ name: "h", pre: [{ exec: { command: [] } }] }] } },
      field: "spec.hooks.resources[0].pre[0].exec.command",
    },
  ])("$name", ({ spec, field }) => {
    const result = scope(spec);
    expect(result.errors.map((e) => e.field)).toContain(field);
    expect(result.exclusive.size).toBe(0);
    expect(result.items.pods).toEqual([]);
  });

  it("an includeExcludePolicy in the resource policy cannot go with old filters", () => {
    const cm = configMap("velero", "rp", { "policy.yaml": "version: v1\nincludeExcludePolicy:\n  includedNamespaceScopedResources: [pods]\n" });
    const result = scope({ includedResources: ["pods"], resourcePolicy: { kind: "configmap", name: "rp" } }, DEFAULT_POLICY, [cm]);
    expect(result.errors.map((e) => e.field)).toEqual(["spec.resourcePolicy"]);
  });
});

describe("items (item collector + ItemBlock actions + itemInclusionChecks)", () => {
  it.each([
    {
      name: "a namespace backup takes its pods, PVCs and their PVs",
      spec: { includedNamespaces: ["shop"] },
      items: { pods: ["shop/api", "shop/db-0"], pvcs: ["shop/data-db-0"], pvs: ["pv-shop-data-db-0"] },
    },
    {
      name: "a selector picks pods; related PVCs and PVs come regardless of the selector",
      spec: { includedNamespaces: ["shop"], labelSelector: { matchLabels: { app: "db" } } },
      items: { pods: ["shop/db-0"], pvcs: ["shop/data-db-0"], pvs: ["pv-shop-data-db-0"] },
    },
    {
      name: "orLabelSelectors take the union",
      spec: { includedNamespaces: ["shop", "web"], orLabelSelectors: [{ matchLabels: { app: "api" } }, { matchLabels: { app: "web" } }] },
      items: { pods: ["shop/api", "web/nginx"], pvcs: [], pvs: [] },
    },
    {
      name: "includedResources: [pods] keeps PVCs out even as related items (namespaced items must pass the resource filter)",
      spec: { includedNamespaces: ["shop"], includedResources: ["pods"] },
      items: { pods: ["shop/api", "shop/db-0"], pvcs: [], pvs: [] },
    },
    {
      name: "excluding PVs keeps them out as related items (ShouldExclude)",
      spec: { includedNamespaces: ["shop"], excludedResources: ["persistentvolumes"] },
      items: { pods: ["shop/api", "shop/db-0"], pvcs: ["shop/data-db-0"], pvs: [] },
    },
    {
      name: "includeClusterResources: false keeps PVs out",
      spec: { includedNamespaces: ["shop"], includeClusterResources: false },
      items: { pods: ["shop/api", "shop/db-0"], pvcs: ["shop/data-db-0"], pvs: [] },
    },
    {
      name: "new-style filters: excluding pods still pulls PVCs and PVs in",
      spec: { includedNamespaces: ["shop"], excludedNamespaceScopedResources: ["pods"] },
      items: { pods: [], pvcs: ["shop/data-db-0"], pvs: ["pv-shop-data-db-0"] },
    },
    {
      name: "a cluster-scoped-only backup (new style) takes no pods",
      spec: { includedNamespaces: ["shop"], includedNamespaceScopedResources: ["configmaps"], includedClusterScopedResources: ["storageclasses"] },
      items: { pods: [], pvcs: [], pvs: [] },
    },
  ])("$name", ({ spec, items }) => {
    expect(scope(spec).items).toEqual(items);
  });

  it("items labelled velero.io/exclude-from-backup=true are skipped", () => {
    const extra = [pod("web", "skip-me", { labels: { "velero.io/exclude-from-backup": "true" } })];
    expect(scope({ includedNamespaces: ["web"] }, DEFAULT_POLICY, extra).items.pods).toEqual(["web/nginx"]);
  });

  it("a bound PVC pulls in the running pods that mount it (a shared RWX claim joins both pods)", () => {
    const extra = [
      ns("rwx"),
      ...boundClaim("rwx", "shared"),
      pod("rwx", "a", { claims: ["shared"], labels: { app: "a" } }),
      pod("rwx", "b", { claims: ["shared"], labels: { app: "b" } }),
      pod("rwx", "stopped", { claims: ["shared"], phase: "Pending", labels: { app: "c" } }),
    ];
    const result = scope({ includedNamespaces: ["rwx"], labelSelector: { matchLabels: { app: "a" } } }, DEFAULT_POLICY, extra);
    expect(result.items.pods).toEqual(["rwx/a", "rwx/b"]);
    expect(result.units).toHaveLength(1);
  });

  it("an unbound PVC pulls in nothing (the PVC action needs phase Bound and spec.volumeName)", () => {
    const extra = [
      ns("pend"),
      pvc("pend", "claim", { pv: null }),
      pod("pend", "p", { claims: ["claim"], labels: { app: "p" } }),
      pod("pend", "q", { claims: ["claim"], labels: { app: "q" } }),
    ];
    const result = scope({ includedNamespaces: ["pend"], labelSelector: { matchLabels: { app: "p" } } }, DEFAULT_POLICY, extra);
    expect(result.items).toEqual({ pods: ["pend/p"], pvcs: ["pend/claim"], pvs: [] });
    expect(result.exclusive.size).toBe(0);
  });

  it("volume-group siblings come with a selected PVC (spec.volumeGroupSnapshotLabelKey, server default velero.io/volume-group)", () => {
    const vg = { labels: { "velero.io/volume-group": "g1" } };
    const extra = [ns("vg"), ...boundClaim("vg", "a", { labels: { ...vg.labels, pick: "yes" } }), ...boundClaim("vg", "b", vg), ...boundClaim("vg", "c")];
    const result = scope({ includedNamespaces: ["vg"], labelSelector: { matchLabels: { pick: "yes" } } }, DEFAULT_POLICY, extra);
    expect(result.items.pvcs).toEqual(["vg/a", "vg/b"]);
  });
});

describe("exclusive units (hooks, snapshots, file-system backups)", () => {
  it.each([
    {
      name: "a bound PVC is snapshotted by default (snapshotVolumes nil means true)",
      spec: { includedNamespaces: ["shop"] },
      exclusive: { "shop/pod:db-0": "snapshot PVC shop/data-db-0" },
    },
    { name: "snapshotVolumes: false makes a manifest-only backup", spec: { includedNamespaces: ["shop"], snapshotVolumes: false }, exclusive: {} },
    {
      name: "defaultVolumesToFsBackup backs up every pod volume but the excluded kinds",
      spec: { includedNamespaces: ["shop"], snapshotVolumes: false, defaultVolumesToFsBackup: true },
      exclusive: {
        "shop/pod:api": "file-system back up volume tmp of pod shop/api",
        "shop/pod:db-0": "file-system back up volume vol-data-db-0 of pod shop/db-0",
      },
    },
    {
      name: "a spec hook on matching pods",
      spec: {
        includedNamespaces: ["shop"],
        snapshotVolumes: false,
        hooks: { resources: [{ name: "freeze", labelSelector: { matchLabels: { app: "api" } }, pre: [{ exec: { command: ["sync"] } }] }] },
      },
      exclusive: { "shop/pod:api": "run pre hooks on pod shop/api (spec.hooks.resources freeze)" },
    },
    {
      name: "a spec hook scoped to other namespaces does not apply",
      spec: {
        includedNamespaces: ["shop"],
        snapshotVolumes: false,
        hooks: { resources: [{ name: "h", includedNamespaces: ["web"], pre: [{ exec: { command: ["x"] } }] }] },
      },
      exclusive: {},
    },
    {
      name: "a spec hook with no pre or post runs nothing",
      spec: { includedNamespaces: ["shop"], snapshotVolumes: false, hooks: { resources: [{ name: "h" }] } },
      exclusive: {},
    },
  ])("$name", ({ spec, exclusive }) => {
    expect(Object.fromEntries(scope(spec).exclusive)).toEqual(exclusive);
  });

  it("pod annotation hooks replace spec hooks for that phase", () => {
    const extra = [ns("hooks"), pod("hooks", "db", { annotations: { "pre.hook.backup.velero.io/command": '["/bin/freeze"]' } })];
    const result = scope({ includedNamespaces: ["hooks"], snapshotVolumes: false }, DEFAULT_POLICY, extra);
    expect(Object.fromEntries(result.exclusive)).toEqual({ "hooks/pod:db": "run pre hooks on pod hooks/db (annotation pre.hook.backup.velero.io/command)" });
  });

  it("a volume opted into file-system backup by annotation is not snapshotted", () => {
    const extra = [
      ns("fs"),
      ...boundClaim("fs", "data"),
      pod("fs", "app", { claims: ["data"], annotations: { "backup.velero.io/backup-volumes": "vol-data" } }),
    ];
    const result = scope({ includedNamespaces: ["fs"] }, DEFAULT_POLICY, extra);
    expect(Object.fromEntries(result.exclusive)).toEqual({ "fs/pod:app": "file-system back up volume vol-data of pod fs/app" });
  });

  it("the server default defaultVolumesToFsBackup comes from the policy when the spec leaves it unset", () => {
    const result = scope({ includedNamespaces: ["web"], snapshotVolumes: false }, { ...DEFAULT_POLICY, defaultVolumesToFsBackup: true }, [
      pod("web", "cache", {
        volumes: [
          { name: "scratch", emptyDir: {} },
          { name: "cfg", configMap: { name: "c" } },
        ],
      }),
    ]);
    expect([...result.exclusive.keys()]).toEqual(["web/pod:cache"]);
  });

  it.each([
    { action: "skip", exclusive: {} },
    { action: "snapshot", exclusive: { "shop/pod:db-0": "snapshot PVC shop/data-db-0" } },
    { action: "fs-backup", exclusive: { "shop/pod:db-0": "file-system back up volume vol-data-db-0 of pod shop/db-0" } },
  ])("a volume policy action $action decides the volume's data (first match wins)", ({ action, exclusive }) => {
    const cm = configMap("velero", "rp", {
      "policy.yaml": `version: v1\nvolumePolicies:\n- conditions: {storageClass: [standard]}\n  action: {type: ${action}}\n- conditions: {}\n  action: {type: snapshot}\n`,
    });
    const result = scope({ includedNamespaces: ["shop"], resourcePolicy: { kind: "configmap", name: "rp" } }, DEFAULT_POLICY, [cm]);
    expect(Object.fromEntries(result.exclusive)).toEqual(exclusive);
  });

  it("a volume policy that cannot be read makes every volume exclusive (safe side) and says so", () => {
    const cm = configMap("velero", "rp", { "policy.yaml": "version: v2\n" });
    const result = scope({ includedNamespaces: ["shop"], snapshotVolumes: false, resourcePolicy: { kind: "configmap", name: "rp" } }, DEFAULT_POLICY, [cm]);
    expect([...result.exclusive.keys()].sort()).toEqual(["shop/pod:api", "shop/pod:db-0"]);
    expect(result.notes[0]).toMatch(/resource policy ConfigMap velero\/rp is invalid/);
  });

  it("a missing volume-policy ConfigMap makes every volume exclusive and says so", () => {
    const result = scope({ includedNamespaces: ["shop"], resourcePolicy: { kind: "configmap", name: "gone" } });
    expect(result.notes[0]).toMatch(/not in the cluster view/);
    expect(result.exclusive.size).toBe(2);
  });

  it("policy-named exclusive resources are units of their own per namespace", () => {
    const result = scope({ includedNamespaces: ["web"], snapshotVolumes: false }, { ...DEFAULT_POLICY, exclusiveResources: ["virtualmachines.kubevirt.io"] });
    expect(Object.fromEntries(result.exclusive)).toEqual({
      "web/virtualmachines.kubevirt.io": "back up virtualmachines.kubevirt.io in namespace web (an exclusive resource)",
    });
  });
});

describe("read again in Velero 1.18.3's source: what the core once predicted otherwise", () => {
  const copied = (annotations: Record<string, string>, spec: object) => {
    const s = cluster(ns("fs"), pod("fs", "app", { annotations, volumes: ["cfg", "data", "tmp"].map((name) => ({ name, emptyDir: {} })) }), backup("b", spec));
    const parsed = parseBackupSpec(s.backups[0]!.spec);
    if (!parsed.ok) throw new Error("spec");
    const graph = s.view.contents("fs").graph();
    return volumeRules(s.backups[0]!, parsed.spec, s.view, DEFAULT_POLICY, true).fsBackupVolumes(
      graph,
      graph.pods.findIndex((p) => p.name === "app"),
    );
  };

  it.each<{ case: string; annotations: Record<string, string>; spec: object; volumes: string[] }>([
    {
      case: "opt-out list with a space after the comma: ' tmp' matches no volume, so tmp is still copied",
      annotations: { "backup.velero.io/backup-volumes-excludes": "data, tmp" },
      spec: { defaultVolumesToFsBackup: true },
      volumes: ["cfg", "tmp"],
    },
    {
      case: "opt-out list without spaces excludes both",
      annotations: { "backup.velero.io/backup-volumes-excludes": "data,tmp" },
      spec: { defaultVolumesToFsBackup: true },
      volumes: ["cfg"],
    },
    {
      case: "opt-in list with a space after the comma: ' data' matches no volume, so only cfg is copied",
      annotations: { "backup.velero.io/backup-volumes": "cfg, data" },
      spec: {},
      volumes: ["cfg"],
    },
    {
      case: "opt-in list with a leading space on the only name copies nothing",
      annotations: { "backup.velero.io/backup-volumes": " cfg" },
      spec: {},
      volumes: [],
    },
  ])("pod volume annotations are split on ',' and compared exactly: $case", ({ annotations, spec, volumes }) => {
    expect(copied(annotations, spec)).toEqual(volumes);
  });

  it.each<{ case: string; podLabels: Record<string, string>; pvcLabels: Record<string, string> }>([
    { case: "a labelled pod does not pull in the PVC it mounts", podLabels: { pick: "yes", "velero.io/exclude-from-backup": "true" }, pvcLabels: {} },
    {
      case: "a labelled PVC pulls in neither its PV, nor the pods mounting it, nor its group siblings",
      podLabels: {},
      pvcLabels: { pick: "yes", "velero.io/exclude-from-backup": "true" },
    },
  ])("an item labelled velero.io/exclude-from-backup=true joins no ItemBlock, so nothing comes through it: $case", ({ podLabels, pvcLabels }) => {
    const group = { "velero.io/volume-group": "g" };
    const extra = [
      ns("ex"),
      pod("ex", "app", { claims: ["data"], labels: podLabels }),
      ...boundClaim("ex", "data", { labels: { ...group, ...pvcLabels } }),
      ...boundClaim("ex", "sibling", { labels: group }),
    ];
    // The selector lists the labelled item alone; everything else could only come in through it.
    const result = scope({ includedNamespaces: ["ex"], labelSelector: { matchLabels: { pick: "yes" } } }, DEFAULT_POLICY, extra);
    expect(result.items).toEqual({ pods: [], pvcs: [], pvs: [] });
    expect(result.exclusive.size).toBe(0);
  });

  it("a labelled PVC selected by nobody else keeps its PV out of a selector backup", () => {
    const extra = [
      ns("sel"),
      pod("sel", "app", { claims: ["data"], labels: { app: "a" } }),
      ...boundClaim("sel", "data", { labels: { "velero.io/exclude-from-backup": "true" } }),
    ];
    const result = scope({ includedNamespaces: ["sel"], labelSelector: { matchLabels: { app: "a" } } }, DEFAULT_POLICY, extra);
    expect(result.items).toEqual({ pods: ["sel/app"], pvcs: [], pvs: [] });
    expect(result.exclusive.size).toBe(0);
  });

  it("a pod being deleted still joins its block and gets its hooks, but neither it nor its volumes are backed up", () => {
    const extra = [
      ns("del"),
      {
        ...pod("del", "going", { claims: ["data"], annotations: { "pre.hook.backup.velero.io/command": '["/bin/freeze"]' } }),
        metadata: {
          namespace: "del",
          name: "going",
          deletionTimestamp: "2026-01-01T00:00:00Z",
          annotations: { "pre.hook.backup.velero.io/command": '["/bin/freeze"]' },
        },
      },
      ...boundClaim("del", "data"),
    ];
    const result = scope({ includedNamespaces: ["del"], defaultVolumesToFsBackup: true }, DEFAULT_POLICY, extra);
    expect(result.items).toEqual({ pods: [], pvcs: ["del/data"], pvs: ["pv-del-data"] });
    expect(Object.fromEntries(result.exclusive)).toEqual({ "del/pod:going": "run pre hooks on pod del/going (annotation pre.hook.backup.velero.io/command)" });
  });

  it("units are cut with the policy's group key, so a backup naming its own key still shares a unit with one that does not", () => {
    // Policy key: b and c are one group. The backup's own key: a and b are one group. Both backups snapshot b.
    const s = cluster(
      ns("vg"),
      ...boundClaim("vg", "a", { labels: { pick: "own", "example.com/group": "x" } }),
      ...boundClaim("vg", "b", { labels: { "example.com/group": "x", "velero.io/volume-group": "g" } }),
      ...boundClaim("vg", "c", { labels: { pick: "policy", "velero.io/volume-group": "g" } }),
      backup("own-key", { includedNamespaces: ["vg"], volumeGroupSnapshotLabelKey: "example.com/group", labelSelector: { matchLabels: { pick: "own" } } }),
      backup("policy-key", { includedNamespaces: ["vg"], labelSelector: { matchLabels: { pick: "policy" } } }),
    );
    const [own, theirs] = s.backups.map((b) => scopeOf(b, s.view, DEFAULT_POLICY)) as [ReturnType<typeof scopeOf>, ReturnType<typeof scopeOf>];
    expect(own.items.pvcs).toEqual(["vg/a", "vg/b"]);
    expect(theirs.items.pvcs).toEqual(["vg/b", "vg/c"]);
    const shared = [...own.exclusive.keys()].filter((u) => theirs.exclusive.has(u));
    expect(shared.map((u) => own.exclusive.get(u))).toEqual(["snapshot PVC vg/b"]);
  });
});

describe("level fallbacks", () => {
  it("a backup annotated backup-gate.io/conflict-level: Namespace is judged at namespace level, and says why", () => {
    const result = scope({ includedNamespaces: ["shop"] }, DEFAULT_POLICY, [], { annotations: { "backup-gate.io/conflict-level": "Namespace" } });
    expect(result.level).toBe("Namespace");
    expect(result.levelReason).toMatch(/annotated/);
  });

  it("a level the gate itself reported (conflict-level-source: gate) is not a request", () => {
    const result = scope({ includedNamespaces: ["shop"] }, DEFAULT_POLICY, [], {
      annotations: { "backup-gate.io/conflict-level": "Namespace", "backup-gate.io/conflict-level-source": "gate" },
    });
    expect(result.level).toBe("ItemBlock");
  });

  it("an unsynced cluster view makes every scope namespace level", () => {
    const s = cluster(...estate(), backup("b", { includedNamespaces: ["shop"] }));
    s.view.synced = false;
    const result = scopeOf(s.backups[0]!, s.view, DEFAULT_POLICY);
    expect(result.level).toBe("Namespace");
    expect(result.levelReason).toMatch(/not synced/);
  });

  it("namespaces annotated conflict-level: Namespace are listed as strict", () => {
    const extra = [ns("strict", { annotations: { "backup-gate.io/conflict-level": "Namespace" } })];
    expect(scope({}, DEFAULT_POLICY, extra).strictNamespaces).toEqual(["strict"]);
  });
});

describe("a scope cache reading parts from another (the webhook's candidates, from the queue's cache)", () => {
  const partOf = (cache: ScopeCache, b: BackupInfo, view: ClusterView, policy: Policy) => cache.scopeOf(b, view, policy).claims.partIn("shop");

  it("uses the other's part for the same part context while the namespace and policy are as it saw them, and computes its own otherwise", () => {
    const s = cluster(...estate(), backup("queued", { includedNamespaces: ["shop"] }), backup("candidate", { includedNamespaces: ["shop"] }));
    const [queued, candidate] = s.backups as [BackupInfo, BackupInfo];
    const main = new ScopeCache();
    const candidates = new ScopeCache({ partsFrom: main });
    const shared = partOf(main, queued, s.view, DEFAULT_POLICY);
    expect(shared).toBeDefined();
    expect(partOf(candidates, candidate, s.view, DEFAULT_POLICY)).toBe(shared);

    // Another policy object: the other cache's parts were made under the policy it last saw.
    const other = policySchema.parse({ ...DEFAULT_POLICY });
    const own = partOf(new ScopeCache({ partsFrom: main }), candidate, s.view, other);
    expect(own).not.toBe(shared);
    expect(own).toEqual(shared);

    // The namespace changed since the other cache made its part: that part is stale.
    const added = trim("Pod", pod("shop", "db-1", { claims: ["data-db-0"], labels: { app: "db" } }));
    if (!added.ok) throw added.error;
    s.view.setPod(added.value);
    const fresh = partOf(new ScopeCache({ partsFrom: main }), candidate, s.view, DEFAULT_POLICY);
    expect(fresh).not.toBe(shared);
    expect(fresh?.pods).toContain("shop/db-1");
  });
});

describe("a scope's claims by namespace", () => {
  // Claims find a namespace's part by its place in the scope's namespace list, scanned when short
  // and looked up when long (src/core/scope/scope.ts): both lists give the same answers.
  const busy = Array.from({ length: 10 }, (_, i) => `team-${i}`);
  const teams = busy.flatMap((n) => [ns(n), pod(n, "app", { claims: ["data"] }), ...boundClaim(n, "data")]);

  it.each([
    { name: "a short list with namespaces that claim nothing", spec: {}, extra: [], claimless: ["kube-system", "web"] },
    { name: "a long list with namespaces that claim nothing", spec: {}, extra: teams, claimless: ["kube-system", "web"] },
    { name: "a long list where every namespace claims", spec: { includedNamespaces: ["team-*"] }, extra: teams, claimless: [] as string[] },
  ])("$name: each namespace's part, or none", ({ spec, extra, claimless }) => {
    const s = scope(spec, DEFAULT_POLICY, extra);
    const { claims } = s;
    expect(claims.namespaces).toEqual(s.namespaces.filter((n) => !claimless.includes(n)));
    for (const n of s.namespaces) {
      const at = claims.namespaces.indexOf(n);
      if (at < 0) expect(claims.partIn(n)).toBeUndefined();
      else expect(claims.partIn(n)).toBe(claims.parts[at]);
    }
    expect(claims.partIn("missing")).toBeUndefined();
    expect(claims.size).toBe(claims.parts.reduce((sum, p) => sum + p.claims.size, 0));
  });
});
