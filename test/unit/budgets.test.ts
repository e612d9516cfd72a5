import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { conflictBetween } from "../../src/core/conflict/conflicts.js";
import { BUDGET_KINDS, storageLocationOf, workOf, type BudgetKind } from "../../src/core/decision/budgets.js";
import { howMade, plan, type Plan, type PlanMaking } from "../../src/core/decision/plan.js";
import { ORIGIN_NAMESPACE } from "../../src/core/decision/tenants.js";
import type { BackupInfo } from "../../src/core/model.js";
import { parsePolicy, policySchema, type Policy } from "../../src/core/policy.js";
import { ScopeCache } from "../../src/core/scope/cache.js";
import { scopeOf } from "../../src/core/scope/scope.js";
import { trim } from "../../src/core/velero/objects.js";
import { prepareTrace, simulate } from "../../src/sim/engine.js";
import { strategies } from "../../src/sim/strategies.js";
import { parseTrace } from "../../src/sim/trace.js";
import { backup, boundClaim, ns, pod } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// Budgets (docs/rules.md, "Budgets"): the work a scope predicts, the limits a policy sets, the
// hold and its reasons as tables; then the invariants over generated estates, and no starvation.

const NOW = Date.parse("2026-01-01T12:00:00Z");
const at = (minute: number) => new Date(Date.parse("2026-01-01T10:00:00Z") + minute * 60_000).toISOString();
const withBudgets = (budgets: object, over: object = {}): Policy =>
  policySchema.parse({ priorities: { agingSeconds: 0 }, maxConcurrentBackups: 10, ...over, budgets });
const FS = { "backup.velero.io/backup-volumes": "cache" };
const cache = { name: "cache", emptyDir: {} };

/** A namespace whose backup snapshots one CSI volume (driver, storage class) and copies one pod volume on a node. */
const workload = (name: string, o: { driver?: string; storageClass?: string; dbNode?: string; fsNode?: string } = {}) => [
  ns(name),
  pod(name, "db", { claims: ["data"], node: o.dbNode ?? "node-1", labels: { app: "db" } }),
  ...boundClaim(name, "data", { storageClass: o.storageClass ?? "fast", pvOpts: { csiDriver: o.driver ?? "csi.a", storageClass: o.storageClass ?? "fast" } }),
  pod(name, "web", { volumes: [cache], node: o.fsNode ?? "node-2", annotations: FS, labels: { app: "web" } }),
];

const estate = () => [
  ...workload("ns-a"),
  ...workload("ns-b"),
  ...workload("ns-c", { driver: "csi.b", storageClass: "slow", fsNode: "node-3" }),
  ...workload("ns-d", { fsNode: "node-3" }),
  ns("ns-x"),
  pod("ns-x", "web"),
];

const run = (policy: Policy, ...backups: object[]) => plan(cluster(...estate(), ...backups), policy, NOW);
const started = (p: Plan) => p.promotions.map((x) => x.backup);
const entry = (p: Plan, name: string) => p.queue.find((q) => q.backup === name);
/** A backup of one namespace: snapshots and file-system backups unless told otherwise. */
const bk = (name: string, namespace: string, o: { phase?: string; minute?: number; spec?: object } = {}) =>
  backup(name, { includedNamespaces: [namespace], ...o.spec }, { created: at(o.minute ?? 1), ...(o.phase ? { phase: o.phase } : {}) });
const flying = (name: string, namespace: string, spec: object = {}) => bk(name, namespace, { phase: "InProgress", minute: 0, spec });

describe("the work a scope predicts for budgets (docs/rules.md: Budgets)", () => {
  it.each<{ name: string; objects: object[]; spec: object; drivers: string[]; classes: string[]; nodes: string[] }>([
    {
      name: "a CSI snapshot: the PV's driver and the claim's storage class; a file-system backup: its pod's node",
      objects: workload("w"),
      spec: {},
      drivers: ["csi.a"],
      classes: ["fast"],
      nodes: ["node-2"],
    },
    {
      name: "the claim's storage class wins over the volume's",
      objects: [
        ns("w"),
        pod("w", "db", { claims: ["data"] }),
        ...boundClaim("w", "data", { storageClass: "gold", pvOpts: { csiDriver: "csi.a", storageClass: "old" } }),
      ],
      spec: {},
      drivers: ["csi.a"],
      classes: ["gold"],
      nodes: [],
    },
    {
      name: "a volume without a CSI source counts for its storage class only",
      objects: [ns("w"), pod("w", "db", { claims: ["data"] }), ...boundClaim("w", "data", { storageClass: "local" })],
      spec: {},
      drivers: [],
      classes: ["local"],
      nodes: [],
    },
    { name: "snapshotVolumes: false: no snapshot work", objects: workload("w"), spec: { snapshotVolumes: false }, drivers: [], classes: [], nodes: ["node-2"] },
    {
      name: "defaultVolumesToFsBackup: the claim is copied on its pod's node instead of snapshotted",
      objects: workload("w", { dbNode: "node-7" }),
      spec: { defaultVolumesToFsBackup: true },
      drivers: [],
      classes: [],
      nodes: ["node-2", "node-7"],
    },
    {
      name: "an unscheduled pod's volume is on no node",
      objects: [ns("w"), pod("w", "web", { volumes: [cache], node: null, annotations: FS })],
      spec: {},
      drivers: [],
      classes: [],
      nodes: [],
    },
    { name: "manifests only: no volume work", objects: [ns("w"), pod("w", "web")], spec: {}, drivers: [], classes: [], nodes: [] },
  ])("$name", ({ objects, spec, drivers, classes, nodes }) => {
    const policy = withBudgets({ fsBackupsPerNode: 1 });
    const snapshot = cluster(...objects, backup("b", { includedNamespaces: ["w"], ...spec }));
    const b = snapshot.backups[0] as BackupInfo;
    const work = workOf(b, scopeOf(b, snapshot.view, policy), policy);
    expect({ drivers: work.snapshotsPerDriver, classes: work.snapshotsPerStorageClass, nodes: work.fsBackupsPerNode }).toEqual({ drivers, classes, nodes });
  });

  it("a backup Velero would refuse does no work, not even to its storage location", () => {
    const policy = withBudgets({ backupsPerStorageLocation: 1 });
    const snapshot = cluster(...workload("w"), backup("bad", { includedNamespaces: "w" }));
    const b = snapshot.backups[0] as BackupInfo;
    expect(Object.values(workOf(b, scopeOf(b, snapshot.view, policy), policy)).flat()).toEqual([]);
  });

  it.each<{ name: string; spec: object; budgets: object; expected: string }>([
    { name: "the spec's storage location", spec: { storageLocation: "offsite" }, budgets: {}, expected: "offsite" },
    { name: "an empty one is Velero's default location, named `default` unless told", spec: { storageLocation: "" }, budgets: {}, expected: "default" },
    { name: "none at all: the same", spec: {}, budgets: {}, expected: "default" },
    { name: "the policy names the default location", spec: {}, budgets: { defaultStorageLocation: "primary" }, expected: "primary" },
  ])("storage location: $name", ({ spec, budgets, expected }) => {
    const b = cluster(backup("b", spec)).backups[0] as BackupInfo;
    expect(storageLocationOf(b, withBudgets(budgets))).toBe(expected);
  });
});

describe("which limit applies to a name (docs/rules.md: Budgets)", () => {
  /** How many of 12 backups that each copy a pod volume on `node` start under the limits ("none": all, no budget applies). */
  const limitFor = (limits: unknown, node: string): string => {
    const policy = withBudgets({ fsBackupsPerNode: limits }, { maxConcurrentBackups: 20 });
    const spaces = Array.from({ length: 12 }, (_, i) => `w${String(i).padStart(2, "0")}`);
    const p = plan(
      cluster(
        ...spaces.flatMap((w) => [ns(w), pod(w, "web", { volumes: [cache], node, annotations: FS })]),
        ...spaces.map((w, i) => backup(`b-${w}`, { includedNamespaces: [w] }, { created: at(i) })),
      ),
      policy,
      NOW,
    );
    return p.promotions.length === spaces.length ? "none" : String(p.promotions.length);
  };
  it.each<{ name: string; limits: unknown; node: string; expected: string }>([
    { name: "a number limits every name", limits: 3, node: "node-9", expected: "3" },
    { name: "an exact name", limits: { "node-9": 2 }, node: "node-9", expected: "2" },
    { name: "a name no key matches has no budget", limits: { "node-1": 2 }, node: "node-9", expected: "none" },
    { name: "a pattern", limits: { "node-*": 4 }, node: "node-9", expected: "4" },
    { name: "the exact name wins over a pattern", limits: { "*": 1, "node-9": 5 }, node: "node-9", expected: "5" },
    { name: "among matching patterns the smallest limit, whatever the order", limits: { "*": 6, "node-?": 2, "node-[0-9]": 3 }, node: "node-9", expected: "2" },
  ])("$name", ({ limits, node, expected }) => {
    expect(limitFor(limits, node)).toBe(expected);
  });
});

describe("a budget holds a backup that conflicts with nothing (docs/rules.md: Budgets)", () => {
  it.each<{ name: string; kind: BudgetKind; budgets: object; backups: object[]; expectStarted: string[]; of?: string; reason?: string }>([
    {
      name: "per storage location: two in flight to the default location, a third waits; one to another location starts",
      kind: "backupsPerStorageLocation",
      budgets: { backupsPerStorageLocation: { default: 2 } },
      backups: [
        flying("run-1", "ns-a", { storageLocation: "default" }),
        flying("run-2", "ns-b"),
        bk("q-default", "ns-c", { spec: { storageLocation: "" } }),
        bk("q-offsite", "ns-d", { minute: 2, spec: { storageLocation: "offsite" } }),
      ],
      expectStarted: ["q-offsite"],
      of: "q-default",
      reason: "waits for budget backups to storage location default: 2 of 2 backups in flight (budgets.backupsPerStorageLocation)",
    },
    {
      name: "per CSI driver: a snapshot on a busy driver waits; one on another driver, and a manifest-only backup, start",
      kind: "snapshotsPerDriver",
      budgets: { snapshotsPerDriver: { "csi.a": 1 } },
      backups: [
        flying("run-a", "ns-a"),
        bk("q-b", "ns-b"),
        bk("q-c", "ns-c", { minute: 2 }),
        bk("q-d-manifests", "ns-d", { minute: 3, spec: { snapshotVolumes: false } }),
      ],
      expectStarted: ["q-c", "q-d-manifests"],
      of: "q-b",
      reason: "waits for budget snapshots on driver csi.a: 1 of 1 backups in flight (budgets.snapshotsPerDriver)",
    },
    {
      name: "per storage class",
      kind: "snapshotsPerStorageClass",
      budgets: { snapshotsPerStorageClass: { fast: 1, slow: 1 } },
      backups: [flying("run-a", "ns-a"), bk("q-b", "ns-b"), bk("q-c", "ns-c", { minute: 2 })],
      expectStarted: ["q-c"],
      of: "q-b",
      reason: "waits for budget snapshots of storage class fast: 1 of 1 backups in flight (budgets.snapshotsPerStorageClass)",
    },
    {
      name: "per node, for file-system backups: node-2 is busy, node-3 is not",
      kind: "fsBackupsPerNode",
      budgets: { fsBackupsPerNode: 1 },
      backups: [flying("run-a", "ns-a"), bk("q-b", "ns-b"), bk("q-c", "ns-c", { minute: 2 })],
      expectStarted: ["q-c"],
      of: "q-b",
      reason: "waits for budget file-system backups on node node-2: 1 of 1 backups in flight (budgets.fsBackupsPerNode)",
    },
    {
      name: "promotions earlier in the same plan count: of three on one driver with room for two, the third waits",
      kind: "snapshotsPerDriver",
      budgets: { snapshotsPerDriver: 2 },
      backups: [bk("q-a", "ns-a"), bk("q-b", "ns-b", { minute: 2 }), bk("q-d", "ns-d", { minute: 3 })],
      expectStarted: ["q-a", "q-b"],
      of: "q-d",
      reason: "waits for budget snapshots on driver csi.a: 2 of 2 backups in flight (budgets.snapshotsPerDriver)",
    },
    {
      name: "a held backup keeps a unit of each of its budgets: one behind it that needs one of them waits",
      kind: "fsBackupsPerNode",
      // q-a is held by driver csi.a; it also needs node-2, which has room for one: q-b may not take it.
      budgets: { snapshotsPerDriver: { "csi.a": 1 }, fsBackupsPerNode: { "node-2": 1 } },
      backups: [
        flying("run-d", "ns-d", { labelSelector: { matchLabels: { app: "db" } } }),
        bk("q-a", "ns-a"),
        bk("q-b", "ns-b", { minute: 2, spec: { snapshotVolumes: false } }),
      ],
      expectStarted: [],
      of: "q-b",
      reason: "waits for budget file-system backups on node node-2: 0 of 1 backups in flight, 1 kept for a backup ahead (budgets.fsBackupsPerNode)",
    },
    {
      name: "positive control: without the held backup ahead, the same backup starts",
      kind: "fsBackupsPerNode",
      budgets: { snapshotsPerDriver: { "csi.a": 1 }, fsBackupsPerNode: { "node-2": 1 } },
      backups: [flying("run-d", "ns-d", { labelSelector: { matchLabels: { app: "db" } } }), bk("q-b", "ns-b", { minute: 2, spec: { snapshotVolumes: false } })],
      expectStarted: ["q-b"],
    },
    {
      name: "a backup behind a held one that needs none of its budgets overtakes it",
      kind: "snapshotsPerDriver",
      budgets: { snapshotsPerDriver: { "csi.a": 1 } },
      backups: [flying("run-a", "ns-a"), bk("q-b", "ns-b"), bk("q-c", "ns-c", { minute: 2 })],
      expectStarted: ["q-c"],
      of: "q-b",
      reason: "waits for budget snapshots on driver csi.a: 1 of 1 backups in flight (budgets.snapshotsPerDriver)",
    },
    {
      name: "a held backup still protects what it claims: one behind it that conflicts with it waits behind it",
      kind: "snapshotsPerDriver",
      budgets: { snapshotsPerDriver: { "csi.a": 1 } },
      backups: [
        flying("run-a", "ns-a"),
        bk("q-b", "ns-b"),
        backup("q-b-again", { includedNamespaces: ["ns-b"], storageLocation: "offsite" }, { created: at(2) }),
      ],
      expectStarted: [],
      of: "q-b-again",
      reason: "waits behind q-b (New): both ",
    },
  ])("$kind: $name", ({ budgets, backups, expectStarted, of, reason }) => {
    const p = run(withBudgets(budgets), ...backups);
    expect(started(p)).toEqual(expectStarted);
    if (of) expect(entry(p, of)?.reason).toContain(reason);
  });

  it("the entry carries the budget that holds it (plan and explain -o json)", () => {
    const p = run(withBudgets({ snapshotsPerDriver: { "csi.a": 1 } }), flying("run-a", "ns-a"), bk("q-b", "ns-b"));
    expect(JSON.parse(JSON.stringify(entry(p, "q-b")))).toMatchObject({
      budget: { kind: "snapshotsPerDriver", name: "csi.a", inFlight: 1, kept: 0, limit: 1 },
    });
  });

  it("a slot wait is still a slot wait when budgets have room", () => {
    const p = run(withBudgets({ snapshotsPerDriver: 5 }, { maxConcurrentBackups: 1 }), flying("run-a", "ns-a"), bk("q-c", "ns-c"));
    expect(entry(p, "q-c")?.reason).toBe("waits for a free slot: 1 of 1 backups in flight");
  });

  it("with no budgets section, or one that sets no limit, the plan is today's, byte for byte", () => {
    const backups = [flying("run-a", "ns-a"), bk("q-b", "ns-b"), bk("q-c", "ns-c", { minute: 2 }), bk("q-d", "ns-d", { minute: 3 })];
    const today = run(policySchema.parse({ priorities: { agingSeconds: 0 }, maxConcurrentBackups: 10 }), ...backups);
    expect(JSON.stringify(today)).not.toContain("budget");
    expect(JSON.stringify(run(withBudgets({}), ...backups))).toBe(JSON.stringify(today));
    expect(JSON.stringify(run(withBudgets({ defaultStorageLocation: "x" }), ...backups))).toBe(JSON.stringify(today));
    // Positive control: a budget changes it.
    expect(JSON.stringify(run(withBudgets({ snapshotsPerDriver: 1 }), ...backups))).not.toBe(JSON.stringify(today));
  });
});

describe("a budget-held backup keeps a unit of its tenant's limit (docs/rules.md: Budgets)", () => {
  const TENANT = "example.com/tenant";
  const of = (tenant: string): { labels: Record<string, string> } => ({ labels: { [TENANT]: tenant } });
  const backups = [
    backup("run-admin", { includedNamespaces: ["ns-a"] }, { phase: "InProgress", created: at(0) }),
    backup("run-t", { includedNamespaces: ["ns-c"], snapshotVolumes: false }, { phase: "InProgress", created: at(0), ...of("t") }),
    backup("x", { includedNamespaces: ["ns-b"] }, { created: at(1), ...of("t") }),
    backup("y", { includedNamespaces: ["ns-d"], snapshotVolumes: false }, { created: at(2), ...of("t") }),
  ];
  it.each<{ name: string; maxInFlightPerTenant: number; expectStarted: string[]; reason?: string; tenantReason?: string }>([
    {
      name: "x waits for driver csi.a and keeps its tenant's second unit: y, behind it, may not take it",
      maxInFlightPerTenant: 2,
      expectStarted: [],
      reason: "waits for its tenant's limit: tenant t has 1 of 2 backups in flight, 1 kept for a backup ahead (tenants.maxInFlightPerTenant)",
      tenantReason: "waits for its tenant's limit: 1 of 2 backups in flight, 1 kept for a backup ahead",
    },
    { name: "with room for both, y starts", maxInFlightPerTenant: 3, expectStarted: ["y"] },
  ])("$name", ({ maxInFlightPerTenant, expectStarted, reason, tenantReason }) => {
    const policy = withBudgets({ snapshotsPerDriver: { "csi.a": 1 } }, { tenants: { label: TENANT, maxInFlightPerTenant } });
    const p = run(policy, ...backups);
    expect(started(p)).toEqual(expectStarted);
    expect(entry(p, "x")?.reason).toBe("waits for budget snapshots on driver csi.a: 1 of 1 backups in flight (budgets.snapshotsPerDriver)");
    if (reason) expect(entry(p, "y")).toMatchObject({ reason, tenantReason });
  });
});

describe("budget reasons a tenant may read (docs/rules.md: Budgets, Tenant-safe visibility)", () => {
  const nab = (name: string, tenant: string, o: { phase?: string; minute: number }) =>
    backup(
      name,
      { includedNamespaces: [tenant] },
      { created: at(o.minute), annotations: { [ORIGIN_NAMESPACE]: tenant }, ...(o.phase ? { phase: o.phase } : {}) },
    );
  it.each<{ name: string; budgets: object; admin: string; tenant: string }>([
    {
      name: "per driver: the driver and counts, not the backup in flight",
      budgets: { snapshotsPerDriver: 1 },
      admin: "waits for budget snapshots on driver csi.a: 1 of 1 backups in flight (budgets.snapshotsPerDriver)",
      tenant: "waits for budget snapshots on driver csi.a: 1 of 1 backups in flight",
    },
    {
      name: "per node",
      budgets: { fsBackupsPerNode: 1 },
      admin: "waits for budget file-system backups on node node-2: 1 of 1 backups in flight (budgets.fsBackupsPerNode)",
      tenant: "waits for budget file-system backups on node node-2: 1 of 1 backups in flight",
    },
  ])("$name", ({ budgets, admin, tenant }) => {
    const policy = withBudgets(budgets, { tenants: {} });
    const p = run(policy, nab("a-run", "ns-a", { phase: "InProgress", minute: 0 }), nab("b-0", "ns-b", { minute: 1 }));
    const q = entry(p, "b-0");
    expect(q?.reason).toBe(admin);
    expect(q?.tenantReason).toBe(tenant);
    expect(q?.tenantReason).not.toContain("a-run");
    expect(q?.tenantReason).not.toContain("ns-a");
  });
});

describe("a bad budgets section is refused, naming the field (the gate then keeps its last good policy)", () => {
  it.each([
    { case: "a zero limit for every node", budgets: { fsBackupsPerNode: 0 }, field: "budgets.fsBackupsPerNode" },
    { case: "a fractional limit by name", budgets: { snapshotsPerDriver: { "csi.a": 1.5 } }, field: "budgets.snapshotsPerDriver.csi.a" },
    { case: "a limit past 1000", budgets: { backupsPerStorageLocation: { default: 1001 } }, field: "budgets.backupsPerStorageLocation.default" },
    { case: "a word instead of a limit", budgets: { snapshotsPerStorageClass: "many" }, field: "budgets.snapshotsPerStorageClass" },
    { case: "a list instead of a map", budgets: { snapshotsPerStorageClass: ["fast"] }, field: "budgets.snapshotsPerStorageClass" },
    { case: "a pattern that does not compile", budgets: { fsBackupsPerNode: { "node-[12": 1 } }, field: "budgets.fsBackupsPerNode.node-[12" },
    { case: "an empty default location", budgets: { defaultStorageLocation: "" }, field: "budgets.defaultStorageLocation" },
    { case: "an unknown key (a typo)", budgets: { snapshotsPerDrivers: 2 }, field: "budgets" },
    { case: "a number instead of a section", budgets: 3, field: "budgets" },
  ])("$case", ({ budgets, field }) => {
    const r = parsePolicy({ budgets });
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : r.error.slice(0, field.length + 2)).toBe(`${field}: `);
  });

  it("positive control: a good section parses", () => {
    const r = parsePolicy({
      budgets: {
        backupsPerStorageLocation: { default: 2, "*": 4 },
        snapshotsPerDriver: { "ebs.csi.aws.com": 3 },
        snapshotsPerStorageClass: 5,
        fsBackupsPerNode: { "worker-*": 2 },
      },
    });
    expect(r.ok).toBe(true);
  });
});

// --- Invariants over generated estates -------------------------------------------------
//
// Six namespaces, each with a database pod whose claim is snapshotted (driver csi.a, csi.b, or
// none; storage class fast or slow; on one of three nodes) and a web pod whose emptyDir is copied
// with a file-system backup on another node. Backups of one namespace, some snapshot-free, some
// of the database only, to one of two storage locations or the default; sometimes with tenants.

const SPACES = Array.from({ length: 6 }, (_, i) => `p${i}`);
const NODES = ["node-1", "node-2", "node-3"];
const DRIVERS = ["csi.a", "csi.b", ""];
const genEstateObjects = SPACES.flatMap((w, i) => [
  ns(w),
  pod(w, "db", { claims: ["data"], node: NODES[i % 3], labels: { app: "db" } }),
  ...boundClaim(w, "data", {
    storageClass: i % 2 ? "slow" : "fast",
    pvOpts: { ...(DRIVERS[i % 3] ? { csiDriver: DRIVERS[i % 3] } : {}), storageClass: i % 2 ? "slow" : "fast" },
  }),
  pod(w, "web", { volumes: [cache], node: NODES[(i + 1) % 3], annotations: FS, labels: { app: "web" } }),
]);

interface GenBackup {
  readonly space: number;
  readonly phase: string;
  readonly minute: number;
  readonly snapshots: boolean;
  readonly dbOnly: boolean;
  readonly location: string;
  readonly priority: number | undefined;
}

const genBackup: fc.Arbitrary<GenBackup> = fc.record({
  space: fc.integer({ min: 0, max: SPACES.length - 1 }),
  phase: fc.constantFrom("", "New", "Queued", "Queued", "ReadyToStart", "InProgress", "Completed"),
  minute: fc.integer({ min: 0, max: 100 }),
  snapshots: fc.boolean(),
  dbOnly: fc.boolean(),
  location: fc.constantFrom("", "default", "offsite"),
  priority: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined, freq: 3 }),
});

/** A limit for every name, or for some names only. */
const genLimits = (names: readonly string[]) =>
  fc.option(fc.oneof(fc.integer({ min: 1, max: 3 }), fc.dictionary(fc.constantFrom(...names), fc.integer({ min: 1, max: 3 }), { minKeys: 1 })), {
    nil: undefined,
  });

const genPolicy: fc.Arbitrary<Policy> = fc
  .record({
    conflictLevel: fc.constantFrom("Namespace", "ItemBlock"),
    maxConcurrentBackups: fc.integer({ min: 1, max: 8 }),
    agingSeconds: fc.constantFrom(0, 600),
    tenants: fc.option(fc.record({ maxInFlightPerTenant: fc.integer({ min: 1, max: 3 }) }), { nil: undefined }),
    backupsPerStorageLocation: genLimits(["default", "offsite"]),
    snapshotsPerDriver: genLimits(["csi.a", "csi.b"]),
    snapshotsPerStorageClass: genLimits(["fast", "slow"]),
    fsBackupsPerNode: genLimits(NODES),
    // With the other hold beside budgets: a start window over some namespaces, open or shut at NOW (12:00 UTC).
    window: fc.option(fc.record({ spaces: fc.subarray(SPACES, { minLength: 1 }), open: fc.boolean() }), { nil: undefined }),
  })
  .map(({ agingSeconds, tenants, conflictLevel, maxConcurrentBackups, window, ...budgets }) =>
    policySchema.parse({
      conflictLevel,
      maxConcurrentBackups,
      priorities: { agingSeconds },
      ...(tenants ? { tenants } : {}),
      budgets: Object.fromEntries(Object.entries(budgets).filter(([, v]) => v !== undefined)),
      ...(window
        ? { windows: [{ selector: { namespaces: window.spaces }, allow: [window.open ? { start: "11:00", end: "13:00" } : { start: "22:00", end: "05:00" }] }] }
        : {}),
    }),
  );

function backupOf(g: GenBackup, i: number): object {
  const space = SPACES[g.space] as string;
  return backup(
    `bk-${i}`,
    {
      includedNamespaces: [space],
      storageLocation: g.location,
      ...(g.snapshots ? {} : { snapshotVolumes: false }),
      ...(g.dbOnly ? { labelSelector: { matchLabels: { app: "db" } } } : {}),
    },
    {
      ...(g.phase === "" ? {} : { phase: g.phase }),
      created: new Date(NOW - (101 - g.minute) * 60_000).toISOString(),
      labels: g.priority === undefined ? {} : { "backup-gate.io/priority": String(g.priority) },
      annotations: { [ORIGIN_NAMESPACE]: space },
    },
  );
}

const estateOf = (gs: readonly GenBackup[]) => cluster(...genEstateObjects, ...gs.map(backupOf));
const genBackups = fc.array(genBackup, { minLength: 1, maxLength: 14 });

/** The test's own reading of a limit (the generated policies use a number, or exact names). */
function limitOf(policy: Policy, kind: BudgetKind, name: string): number | undefined {
  const limits = policy.budgets?.[kind];
  return typeof limits === "number" ? limits : limits?.[name];
}

/** Each budget a promotion counts toward that ends up over its limit: `kind name: n of limit`. */
function budgetsExceeded(snapshot: ReturnType<typeof estateOf>, p: Plan, policy: Policy): string[] {
  const byName = new Map(snapshot.backups.map((b) => [b.name, b]));
  const counts = new Map<string, { flying: number; promoted: number; limit: number }>();
  const count = (name: string, promoted: boolean) => {
    const b = byName.get(name) as BackupInfo;
    const work = workOf(b, p.scopes.get(name)!, policy);
    for (const kind of BUDGET_KINDS) {
      for (const n of work[kind]) {
        const limit = limitOf(policy, kind, n);
        if (limit === undefined) continue;
        const c = counts.get(`${kind} ${n}`) ?? { flying: 0, promoted: 0, limit };
        counts.set(`${kind} ${n}`, promoted ? { ...c, promoted: c.promoted + 1 } : { ...c, flying: c.flying + 1 });
      }
    }
  };
  for (const name of p.inFlight) count(name, false);
  for (const name of started(p)) count(name, true);
  return [...counts].filter(([, c]) => c.promoted > 0 && c.flying + c.promoted > c.limit).map(([key, c]) => `${key}: ${c.flying + c.promoted} of ${c.limit}`);
}

describe("budget invariants (properties)", () => {
  it("promotions never exceed a budget", () => {
    fc.assert(
      fc.property(genBackups, genPolicy, (gs, policy) => {
        const snapshot = estateOf(gs);
        expect(budgetsExceeded(snapshot, plan(snapshot, policy, NOW), policy)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it("the check finds an exceeded budget (positive control): plans made without the budgets do exceed them", () => {
    const result = fc.check(
      fc.property(genBackups, genPolicy, (gs, policy) => {
        const snapshot = estateOf(gs);
        const blind = plan(snapshot, { ...policy, budgets: undefined }, NOW);
        return budgetsExceeded(snapshot, blind, policy).length === 0;
      }),
      { numRuns: 300 },
    );
    expect(result.failed).toBe(true);
  });

  it("never starts a backup next to one it conflicts with, nor past the limit of slots or a tenant's limit", () => {
    fc.assert(
      fc.property(genBackups, genPolicy, (gs, policy) => {
        const snapshot = estateOf(gs);
        const p = plan(snapshot, policy, NOW);
        const running = [...p.inFlight, ...started(p)];
        const scoped = (name: string) => ({ name, phase: "", scope: p.scopes.get(name)! });
        for (const a of started(p)) {
          for (const b of running) if (a !== b) expect(conflictBetween(scoped(a), scoped(b)), `${a} runs with ${b}`).toBeUndefined();
        }
        if (started(p).length > 0) expect(running.length).toBeLessThanOrEqual(policy.maxConcurrentBackups);
        const cap = policy.tenants?.maxInFlightPerTenant;
        if (cap === undefined) return;
        const tenantOf = (name: string) => snapshot.backups.find((b) => b.name === name)?.annotations[ORIGIN_NAMESPACE];
        for (const w of SPACES) {
          const promoted = started(p).filter((n) => tenantOf(n) === w).length;
          if (promoted > 0) expect(p.inFlight.filter((n) => tenantOf(n) === w).length + promoted, w).toBeLessThanOrEqual(cap);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("a backup left waiting that conflicts with nothing and has a slot and its tenant's room is held by a budget or its window, and says so", () => {
    let windowHolds = 0;
    fc.assert(
      fc.property(genBackups, genPolicy, (gs, policy) => {
        const p = plan(estateOf(gs), policy, NOW);
        if (p.inFlight.length + started(p).length >= policy.maxConcurrentBackups) return;
        for (const q of p.queue) {
          if (q.waitingFor.length > 0 || q.reason.startsWith("waits for its tenant's limit")) continue;
          if (q.reason.startsWith("waits for its window")) {
            windowHolds++;
            continue;
          }
          expect(q.budget, q.backup).toBeDefined();
          expect(q.reason).toMatch(/^waits for budget .*\(budgets\.\w+\)$/);
        }
      }),
      { numRuns: 300 },
    );
    // The generated policies do hold backups by their window beside budgets.
    expect(windowHolds).toBeGreaterThan(0);
  });

  /** Tenant-readable texts (with tenants in the policy) that name a backup (`bk-N`) or a namespace (`pN`). */
  const naming = (gs: readonly GenBackup[], policy: Policy, text: (q: Plan["queue"][number]) => string | undefined) =>
    plan(estateOf(gs), { ...policy, tenants: policy.tenants ?? policySchema.parse({ tenants: {} }).tenants }, NOW)
      .queue.map(text)
      .filter((t): t is string => t !== undefined && /bk-\d|\bp\d/.test(t));

  it("a tenant's texts name no backup and no namespace, budget holds included", () => {
    fc.assert(
      fc.property(genBackups, genPolicy, (gs, policy) => {
        expect(naming(gs, policy, (q) => q.tenantReason)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it("the check finds a name (positive control): the administrators' reasons name them", () => {
    const result = fc.check(
      fc.property(genBackups, genPolicy, (gs, policy) => naming(gs, policy, (q) => q.reason).length === 0),
      { numRuns: 300 },
    );
    expect(result.failed).toBe(true);
  });

  it("is deterministic: the same backups in any order give the same plan", () => {
    const input = fc.tuple(genBackups, genPolicy).chain(([gs, policy]) => {
      const objects = [...genEstateObjects, ...gs.map(backupOf)];
      return fc.tuple(fc.constant({ objects, policy }), fc.shuffledSubarray(objects, { minLength: objects.length, maxLength: objects.length }));
    });
    fc.assert(
      fc.property(input, ([{ objects, policy }, shuffled]) => {
        expect(JSON.stringify(plan(cluster(...shuffled), policy, NOW))).toBe(JSON.stringify(plan(cluster(...objects), policy, NOW)));
      }),
      { numRuns: 150 },
    );
  });

  it("a plan built on the last one after pods moved, came or went equals the plan made from nothing", () => {
    const made: Record<PlanMaking, number> = { afresh: 0, incremental: 0 };
    const change = fc.record({ space: fc.integer({ min: 0, max: SPACES.length - 1 }), what: fc.constantFrom("move web", "delete db", "add pod") });
    fc.assert(
      fc.property(genBackups, genPolicy, change, (gs, policy, { space, what }) => {
        const snapshot = estateOf(gs);
        const scopes = new ScopeCache();
        const first = plan(snapshot, policy, NOW, { cache: scopes });
        const w = SPACES[space] as string;
        const set = (o: object) => {
          const t = trim("Pod", o);
          if (!t.ok) throw t.error;
          snapshot.view.setPod(t.value);
        };
        // Moving the web pod to another node changes only where its file-system backup runs, not what the backup claims.
        if (what === "move web") set(pod(w, "web", { volumes: [cache], node: "node-9", annotations: FS, labels: { app: "web" } }));
        else if (what === "delete db") snapshot.view.deletePod(w, "db");
        else set(pod(w, "extra", { volumes: [cache], node: "node-1", annotations: FS }));
        const again = plan(snapshot, policy, NOW, { cache: scopes, previous: first });
        made[howMade(again) as PlanMaking]++;
        expect(JSON.stringify(again)).toBe(JSON.stringify(plan(snapshot, policy, NOW)));
      }),
      { numRuns: 200 },
    );
    expect(made.incremental).toBeGreaterThan(0);
  });
});

// --- No starvation ----------------------------------------------------------------------
//
// Rounds of ten minutes (the aging period). X snapshots a volume of driver csi.a and copies a pod
// volume on node-1; each round brings new backups that need only one of the two (a snapshot on
// csi.a elsewhere, or a file-system backup on node-1), some of higher priority than X. Without
// the unit a held backup keeps, they could take turns so that one of X's budgets is always
// full. With it: after `spread` rounds aging lifts X above every newcomer, the finitely many
// backups ahead of it start, and no backup behind it takes the last unit of a budget it needs.
// With tenants, X also keeps a unit of its tenant's limit, or its class-mates that need no
// budget would fill the limit whenever X waits for the driver (switched off, both runs starve).

describe("no starvation with budgets (property)", () => {
  const STEP = 600_000;
  const A = Array.from({ length: 4 }, (_, i) => `sa${i}`);
  const B = Array.from({ length: 4 }, (_, i) => `fb${i}`);
  const C = Array.from({ length: 4 }, (_, i) => `cs${i}`);
  const TENANT = "example.com/tenant";
  const objects = [
    ns("ns-x"),
    pod("ns-x", "db", { claims: ["data"], node: "node-1", volumes: [cache], annotations: FS }),
    ...boundClaim("ns-x", "data", { pvOpts: { csiDriver: "csi.a" } }),
    ...A.flatMap((w) => [ns(w), pod(w, "db", { claims: ["data"], node: "node-9" }), ...boundClaim(w, "data", { pvOpts: { csiDriver: "csi.a" } })]),
    ...B.flatMap((w) => [ns(w), pod(w, "web", { volumes: [cache], node: "node-1", annotations: FS })]),
    ...C.flatMap((w) => [ns(w), pod(w, "web")]),
  ];
  const sim = fc.record({
    limit: fc.integer({ min: 1, max: 2 }),
    slots: fc.integer({ min: 2, max: 6 }),
    flood: fc.integer({ min: 1, max: 3 }),
    priorities: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 5 }),
    durations: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 4 }),
  });

  type Sim = typeof sim extends fc.Arbitrary<infer T> ? T : never;

  /**
   * The round X starts in, or undefined if it has not started after `rounds`. `tenants`: X and
   * the stateless backups of pool C are tenant t's (limit `s.limit`), the newcomers alternate
   * between A (another tenant's csi.a snapshots) and C, and only the driver has a budget.
   */
  function roundXStarts(s: Sim, rounds: number, finish: boolean, tenants = false): number | undefined {
    const policy = policySchema.parse({
      maxConcurrentBackups: s.slots,
      priorities: { agingSeconds: STEP / 1000 },
      ...(tenants
        ? { tenants: { label: TENANT, maxInFlightPerTenant: s.limit }, budgets: { snapshotsPerDriver: { "csi.a": s.limit } } }
        : { budgets: { snapshotsPerDriver: { "csi.a": s.limit }, fsBackupsPerNode: { "node-1": s.limit } } }),
    });
    const second = tenants ? C : B;
    const tenantOf = (w: string): Record<string, string> => (tenants ? { [TENANT]: C.includes(w) || w === "ns-x" ? "t" : "other" } : {});
    // What X needs is full when it arrives.
    const running = [...A, ...second]
      .filter((_, i) => i % A.length < s.limit)
      .map((w) =>
        backup(`run-${w}`, { includedNamespaces: [w] }, { phase: "InProgress", created: new Date(NOW - 120_000).toISOString(), labels: tenantOf(w) }),
      );
    const snapshot = cluster(
      ...objects,
      ...running,
      backup("x", { includedNamespaces: ["ns-x"] }, { created: new Date(NOW - 60_000).toISOString(), labels: tenantOf("ns-x") }),
    );
    let backups: BackupInfo[] = snapshot.backups;
    const endsAt = new Map<string, number>(running.map((b, i) => [b.metadata.name, 1 + (i % 2)]));
    const scopes = new ScopeCache();
    let made = 0;
    for (let round = 0; round <= rounds; round++) {
      const now = NOW + round * STEP;
      if (finish) backups = backups.map((b) => (endsAt.get(b.name) === round ? { ...b, phase: "Completed" } : b));
      const fresh = Array.from({ length: s.flood }, () => {
        const n = made++;
        const pool = n % 2 ? second : A;
        const priority = 10 + (s.priorities[n % s.priorities.length] as number);
        const w = pool[Math.floor(n / 2) % pool.length] as string;
        return backup(
          `f-${n}`,
          { includedNamespaces: [w] },
          { created: new Date(now).toISOString(), labels: { "backup-gate.io/priority": String(priority), ...tenantOf(w) } },
        );
      });
      backups = [...backups, ...cluster(...fresh).backups];
      const p = plan({ view: snapshot.view, backups }, policy, now, { cache: scopes });
      const promoted = new Set(started(p));
      if (promoted.has("x")) return round;
      backups = backups.map((b) => {
        if (!promoted.has(b.name)) return b;
        endsAt.set(b.name, round + (s.durations[made % s.durations.length] as number));
        return { ...b, phase: "InProgress" };
      });
    }
    return undefined;
  }

  const boundOf = (s: Sim) => {
    const spread = Math.max(...s.priorities);
    const ahead = s.flood * (spread + 2);
    return spread + 2 + (ahead + 1) * (Math.max(...s.durations) + 1);
  };

  it("a backup held by budgets starts within a bound while backups that need one of them keep coming", () => {
    let waited = 0;
    fc.assert(
      fc.property(sim, (s) => {
        const round = roundXStarts(s, boundOf(s), true);
        expect(round, JSON.stringify(s)).toBeDefined();
        if ((round as number) > 1) waited++;
      }),
      { numRuns: 40 },
    );
    // X was held past the first in-flight backups' end in many runs: the newcomers did compete.
    expect(waited).toBeGreaterThan(5);
  });

  it("with tenants: a backup held by a budget starts within a bound while its class-mates that need no budget keep coming", () => {
    let waited = 0;
    fc.assert(
      fc.property(sim, (s) => {
        const round = roundXStarts(s, 2 * boundOf(s), true, true);
        expect(round, JSON.stringify(s)).toBeDefined();
        if ((round as number) > 1) waited++;
      }),
      { numRuns: 40 },
    );
    expect(waited).toBeGreaterThan(5);
  });

  it("the check finds a backup that does not start (positive control): when nothing in flight ever finishes", () => {
    const result = fc.check(
      fc.property(sim, (s) => roundXStarts(s, boundOf(s), false) !== undefined),
      { numRuns: 20 },
    );
    expect(result.failed).toBe(true);
  });
});

describe("the simulator honours budgets (it replays through plan())", () => {
  /** Start times of three backups that each snapshot a csi.a volume, arriving together, 100 s each. */
  const startsUnder = (policyDoc: object) => {
    const items = ["s0", "s1", "s2"].flatMap((w) => [ns(w), pod(w, "db", { claims: ["data"] }), ...boundClaim(w, "data", { pvOpts: { csiDriver: "csi.a" } })]);
    const backups = ["s0", "s1", "s2"].map((w) => ({ name: `b-${w}`, spec: { includedNamespaces: [w] }, arrival: 0, duration: 100 }));
    const r = parseTrace({ cluster: { kind: "List", items }, backups, policy: policyDoc }, "budgets");
    if (!r.ok) throw new Error(r.error);
    const policy = r.trace.policy as Policy;
    const itemblock = strategies(policy).find((x) => x.name === "itemblock")!;
    return Object.fromEntries(simulate(prepareTrace(r.trace, policy), itemblock).runs.map((x) => [x.name, x.start]));
  };

  it.each([
    {
      name: "two at a time on driver csi.a: the third starts when the first is done",
      budgets: { snapshotsPerDriver: { "csi.a": 2 } },
      expected: { "b-s0": 0, "b-s1": 0, "b-s2": 100 },
    },
    {
      name: "one at a time on storage class standard",
      budgets: { snapshotsPerStorageClass: { standard: 1 } },
      expected: { "b-s0": 0, "b-s1": 100, "b-s2": 200 },
    },
    { name: "positive control: without budgets all three start at once", budgets: undefined, expected: { "b-s0": 0, "b-s1": 0, "b-s2": 0 } },
  ])("$name", ({ budgets, expected }) => {
    expect(startsUnder({ maxConcurrentBackups: 4, ...(budgets ? { budgets } : {}) })).toEqual(expected);
  });
});
