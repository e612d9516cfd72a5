import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { conflictsWith, type ScopedBackup } from "../../src/core/conflict/conflicts.js";
import { mayBeInFlight } from "../../src/core/decision/flight.js";
import { howMade, plan, type Plan } from "../../src/core/decision/plan.js";
import { decideRestoreAdmission, namespaceMet, restoreTarget, writingRestores } from "../../src/core/decision/restores.js";
import { ORIGIN_NAMESPACE } from "../../src/core/decision/tenants.js";
import { IN_FLIGHT_PHASES, QUEUED_PHASES, type BackupInfo, type PodInfo, type RestoreInfo } from "../../src/core/model.js";
import { parsePolicy, policySchema, type Policy } from "../../src/core/policy.js";
import { ScopeCache } from "../../src/core/scope/cache.js";
import { scopeOf } from "../../src/core/scope/scope.js";
import { loadSnapshot, trim } from "../../src/core/velero/objects.js";
import { backup, boundClaim, ns, pod, restore } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// Restores (docs/rules.md, "Restores"): where a Restore writes, which phases write, the hold in
// the plan, the admission verdict on a Restore, then the invariants over generated estates.

const NOW = Date.parse("2026-01-01T12:00:00Z");
const at = (minute: number) => new Date(Date.parse("2026-01-01T10:00:00Z") + minute * 60_000).toISOString();
const policyOf = (over: object = {}): Policy => policySchema.parse({ priorities: { agingSeconds: 0 }, ...over });

/** `shop` and `web` hold a volume each (a backup of them claims a unit there); `docs` is stateless; `strict` asks for Namespace level; `empty` is bare. */
const estate = () => [
  ns("shop"),
  ns("web"),
  ns("docs"),
  ns("strict", { annotations: { "backup-gate.io/conflict-level": "Namespace" } }),
  ns("empty"),
  pod("shop", "db", { claims: ["data"] }),
  ...boundClaim("shop", "data"),
  pod("web", "app", { claims: ["files"] }),
  ...boundClaim("web", "files"),
  pod("docs", "site"),
  pod("strict", "site"),
];

const restoreOf = (raw: object): RestoreInfo => {
  const r = trim("Restore", raw);
  if (!r.ok) throw r.error;
  return r.value;
};
const podOf = (raw: object): PodInfo => {
  const p = trim("Pod", raw);
  if (!p.ok) throw p.error;
  return p.value;
};
const backupOf = (raw: object): BackupInfo => {
  const b = trim("Backup", raw);
  if (!b.ok) throw b.error;
  return b.value;
};

describe("where a restore writes (Velero 1.18's namespace resolution)", () => {
  it.each<{ case: string; spec: object; backed?: object; into: string[]; notInto: string[] }>([
    { case: "everything its backup holds", spec: { backupName: "b" }, backed: { includedNamespaces: ["shop"] }, into: ["shop"], notInto: ["web"] },
    { case: "a backup not in the view: every namespace its lists allow", spec: { backupName: "gone" }, into: ["shop", "web"], notInto: [] },
    {
      case: "includedNamespaces narrow the backup's",
      spec: { backupName: "b", includedNamespaces: ["shop"] },
      backed: {},
      into: ["shop"],
      notInto: ["web"],
    },
    { case: "`*` includes all", spec: { backupName: "b", includedNamespaces: ["*"] }, backed: {}, into: ["shop", "web"], notInto: [] },
    { case: "excludedNamespaces leave a namespace out", spec: { backupName: "b", excludedNamespaces: ["shop"] }, backed: {}, into: ["web"], notInto: ["shop"] },
    { case: "patterns match as Velero's globs", spec: { backupName: "b", includedNamespaces: ["sh*"] }, backed: {}, into: ["shop"], notInto: ["web"] },
    {
      case: "the backup's own excludes hold nothing to restore",
      spec: { backupName: "b" },
      backed: { excludedNamespaces: ["web"] },
      into: ["shop"],
      notInto: ["web"],
    },
    {
      case: "namespaceMapping writes into the target, not the source",
      spec: { backupName: "b", namespaceMapping: { shop: "shop-copy" } },
      backed: { includedNamespaces: ["shop"] },
      into: ["shop-copy"],
      notInto: ["shop"],
    },
    {
      case: "a mapping onto an existing namespace writes into it",
      spec: { backupName: "b", namespaceMapping: { web: "shop" } },
      backed: { includedNamespaces: ["web"] },
      into: ["shop"],
      notInto: ["web"],
    },
    {
      case: "a mapping from a namespace the restore excludes writes nothing",
      spec: { backupName: "b", namespaceMapping: { web: "shop" }, excludedNamespaces: ["web"] },
      backed: { includedNamespaces: ["web"] },
      into: [],
      notInto: ["shop", "web"],
    },
    { case: "an unreadable spec: every namespace", spec: { includedNamespaces: "shop" }, into: ["shop", "web", "anything"], notInto: [] },
  ])("$case", ({ spec, backed, into, notInto }) => {
    const t = restoreTarget(restoreOf(restore("r1", spec, { phase: "InProgress" })), backed ? backupOf(backup("b", backed)) : undefined);
    for (const n of into) expect(t.writesInto(n), `writes into ${n}`).toBe(true);
    for (const n of notInto) expect(t.writesInto(n), `writes into ${n}`).toBe(false);
  });
});

describe("which restore phases hold backups (Velero 1.18 RestorePhase)", () => {
  it.each<{ phase: string | undefined; writing: boolean }>([
    { phase: undefined, writing: false },
    { phase: "New", writing: false },
    { phase: "FailedValidation", writing: false },
    { phase: "InProgress", writing: true },
    { phase: "WaitingForPluginOperations", writing: true },
    { phase: "WaitingForPluginOperationsPartiallyFailed", writing: true },
    { phase: "Finalizing", writing: true },
    { phase: "FinalizingPartiallyFailed", writing: true },
    { phase: "Completed", writing: false },
    { phase: "PartiallyFailed", writing: false },
    { phase: "Failed", writing: false },
  ])("$phase: writing=$writing", ({ phase, writing }) => {
    const s = cluster(...estate(), restore("r1", {}, phase === undefined ? {} : { phase }));
    expect(writingRestores(s.view, s.backups, policyOf()).length).toBe(writing ? 1 : 0);
  });
});

describe("a New restore queued behind one in progress holds (Velero 1.18 runs one restore at a time)", () => {
  it.each<{ case: string; others: { phase: string; namespace?: string }[]; phase: string | undefined; holds: boolean }>([
    { case: "New, another InProgress: it writes next", others: [{ phase: "InProgress" }], phase: "New", holds: true },
    { case: "no phase yet, another InProgress: the same", others: [{ phase: "InProgress" }], phase: undefined, holds: true },
    { case: "New, none other (control): Velero picks it up at once, or never if its restore controller is off", others: [], phase: "New", holds: false },
    { case: "New, another only Finalizing (the worker is free again)", others: [{ phase: "Finalizing" }], phase: "New", holds: false },
    { case: "New, another InProgress outside Velero's namespace", others: [{ phase: "InProgress", namespace: "elsewhere" }], phase: "New", holds: false },
  ])("$case: holds=$holds", ({ others, phase, holds }) => {
    const s = cluster(
      ...estate(),
      ...others.map((o, i) => restore(`r0-${i}`, { backupName: "old", includedNamespaces: ["web"] }, o)),
      restore("r1", { backupName: "old", includedNamespaces: ["shop"] }, phase === undefined ? {} : { phase }),
    );
    const held = writingRestores(s.view, s.backups, policyOf()).map((t) => t.restore);
    expect(held.includes("velero/r1")).toBe(holds);
  });

  it("the backup waits with a reason saying the restore writes next; the guard refuses another writer's move the same way", () => {
    const objects = [
      restoring(["web"], { name: "r0" }),
      restore("r1", { backupName: "old", includedNamespaces: ["shop"] }, { phase: "New" }),
      backup("b", { includedNamespaces: ["shop"] }, { phase: "New", created: "2026-01-01T11:00:00Z" }),
    ];
    const p = run(policyOf({ conflictLevel: "Namespace" }), ...objects);
    expect(started(p)).toEqual([]);
    expect(entry(p, "b")?.reason).toBe("waits for restore velero/r1, next in Velero's restore queue, which will write into namespace shop");
    const s = cluster(...estate(), ...objects);
    const policy = policyOf({ conflictLevel: "Namespace" });
    const b = s.backups[0] as BackupInfo;
    const d = mayBeInFlight(
      { name: "b", phase: "New", scope: new ScopeCache().scopeOf(b, s.view, policy), spec: b.spec },
      { inFlight: [], limit: 4, restores: writingRestores(s.view, s.backups, policy) },
      "become ReadyToStart",
    );
    expect(d.reasons[0]).toBe(
      "backup b may not become ReadyToStart: restore velero/r1 will write into namespace shop next (New, queued behind a restore in progress), which it would hold; it may once the restore is done",
    );
  });
});

const run = (policy: Policy, ...objects: object[]) => plan(cluster(...estate(), ...objects), policy, NOW);
const started = (p: Plan) => p.promotions.map((x) => x.backup);
const entry = (p: Plan, name: string) => p.queue.find((q) => q.backup === name);
const restoring = (namespaces: string[], o: { phase?: string; namespace?: string; name?: string } = {}) =>
  restore(
    o.name ?? "r1",
    { backupName: "old", includedNamespaces: namespaces },
    { phase: o.phase ?? "InProgress", ...(o.namespace ? { namespace: o.namespace } : {}) },
  );

describe("a backup does not start while a restore writes into what it would hold (the plan)", () => {
  it.each<{ case: string; policy: object; spec: object; restores: object[]; starts: boolean; reason?: string }>([
    {
      case: "Namespace level: a restore into its namespace holds it",
      policy: { conflictLevel: "Namespace" },
      spec: { includedNamespaces: ["shop"] },
      restores: [restoring(["shop"])],
      starts: false,
      reason: "waits for restore velero/r1 writing into namespace shop",
    },
    {
      case: "Namespace level: a restore into another namespace does not",
      policy: { conflictLevel: "Namespace" },
      spec: { includedNamespaces: ["shop"] },
      restores: [restoring(["web"])],
      starts: true,
    },
    {
      case: "Namespace level: even a stateless namespace is held",
      policy: { conflictLevel: "Namespace" },
      spec: { includedNamespaces: ["docs"] },
      restores: [restoring(["docs"])],
      starts: false,
      reason: "waits for restore velero/r1 writing into namespace docs",
    },
    {
      case: "ItemBlock level: a restore into a namespace where it claims a unit holds it",
      policy: {},
      spec: { includedNamespaces: ["shop", "docs"] },
      restores: [restoring(["shop"])],
      starts: false,
      reason: "waits for restore velero/r1 writing into namespace shop",
    },
    {
      case: "ItemBlock level: a namespace where it claims nothing is not held",
      policy: {},
      spec: { includedNamespaces: ["docs"] },
      restores: [restoring(["docs"])],
      starts: true,
    },
    {
      case: "ItemBlock level: a namespace annotated conflict-level Namespace is held",
      policy: {},
      spec: { includedNamespaces: ["strict"] },
      restores: [restoring(["strict"])],
      starts: false,
      reason: "waits for restore velero/r1 writing into namespace strict",
    },
    {
      case: "the first writing restore by name is named",
      policy: {},
      spec: { includedNamespaces: ["shop", "web"] },
      restores: [restoring(["web"], { name: "r2" }), restoring(["shop"], { name: "r3" })],
      starts: false,
      reason: "waits for restore velero/r2 writing into namespace web",
    },
    {
      case: "a mapped restore holds the target namespace",
      policy: {},
      spec: { includedNamespaces: ["web"] },
      restores: [
        restore("r1", { backupName: "old", namespaceMapping: { shop: "web" } }, { phase: "InProgress" }),
        backup("old", { includedNamespaces: ["shop"] }, { phase: "Completed" }),
      ],
      starts: false,
      reason: "waits for restore velero/r1 writing into namespace web",
    },
    {
      case: "a mapped restore does not hold its source namespace",
      policy: {},
      spec: { includedNamespaces: ["shop"] },
      restores: [
        restore("r1", { backupName: "old", namespaceMapping: { shop: "web" } }, { phase: "InProgress" }),
        backup("old", { includedNamespaces: ["shop"] }, { phase: "Completed" }),
      ],
      starts: true,
    },
    {
      case: "ItemBlock level: a namespace the restore is creating (absent now) that the backup lists is held",
      policy: {},
      spec: { includedNamespaces: ["shop-copy"] },
      restores: [
        restore("r1", { backupName: "old", namespaceMapping: { shop: "shop-copy" } }, { phase: "InProgress" }),
        backup("old", { includedNamespaces: ["shop"] }, { phase: "Completed" }),
      ],
      starts: false,
      reason: "waits for restore velero/r1 writing into namespace shop-copy",
    },
    {
      case: "Namespace level: the same (Velero's queue would see no namespace yet)",
      policy: { conflictLevel: "Namespace" },
      spec: { includedNamespaces: ["shop-copy"] },
      restores: [restore("r1", { backupName: "old", namespaceMapping: { shop: "shop-copy" } }, { phase: "InProgress" })],
      starts: false,
      reason: "waits for restore velero/r1 writing into namespace shop-copy",
    },
    {
      case: "ItemBlock level: an existing namespace with nothing in it yet, being restored into, is held",
      policy: {},
      spec: { includedNamespaces: ["empty"] },
      restores: [restoring(["empty"])],
      starts: false,
      reason: "waits for restore velero/r1 writing into namespace empty",
    },
    {
      case: "a backup of every namespace is held by a restore creating one",
      policy: {},
      spec: { excludedNamespaces: ["shop", "web", "strict"] },
      restores: [restore("r1", { backupName: "old", namespaceMapping: { shop: "shop-copy" } }, { phase: "InProgress" })],
      starts: false,
      reason: "waits for restore velero/r1 writing into namespace shop-copy",
    },
    {
      case: "a backup that does not list the namespace being created is not held",
      policy: {},
      spec: { includedNamespaces: ["web", "other-*"] },
      restores: [
        restore("r1", { backupName: "old", namespaceMapping: { shop: "shop-copy" } }, { phase: "InProgress" }),
        backup("old", { includedNamespaces: ["shop"] }, { phase: "Completed" }),
      ],
      starts: true,
    },
    {
      case: "a finished restore holds nothing",
      policy: {},
      spec: { includedNamespaces: ["shop"] },
      restores: [restoring(["shop"], { phase: "Completed" })],
      starts: true,
    },
    {
      case: "a restore not yet started holds nothing",
      policy: {},
      spec: { includedNamespaces: ["shop"] },
      restores: [restoring(["shop"], { phase: "New" })],
      starts: true,
    },
    {
      case: "a restore outside Velero's namespace is not Velero's",
      policy: {},
      spec: { includedNamespaces: ["shop"] },
      restores: [restoring(["shop"], { namespace: "elsewhere" })],
      starts: true,
    },
    {
      case: "restores.holdBackups: false lets it start",
      policy: { restores: { holdBackups: false } },
      spec: { includedNamespaces: ["shop"] },
      restores: [restoring(["shop"])],
      starts: true,
    },
    {
      case: "a restore whose spec cannot be read holds every namespace",
      policy: {},
      spec: { includedNamespaces: ["shop"] },
      restores: [restore("r1", { namespaceMapping: ["web"] }, { phase: "InProgress" })],
      starts: false,
      reason: "waits for restore velero/r1 writing into namespace shop",
    },
  ])("$case", ({ policy, spec, restores, starts, reason }) => {
    const p = run(policyOf(policy), backup("b1", spec, { created: at(1) }), ...restores);
    expect(started(p)).toEqual(starts ? ["b1"] : []);
    if (reason) expect(entry(p, "b1")?.reason).toBe(reason);
  });

  it("a held backup keeps its place and does not hold a backup behind it that conflicts with nothing", () => {
    const p = run(
      policyOf(),
      backup("b1", { includedNamespaces: ["shop"] }, { created: at(1) }),
      backup("b2", { includedNamespaces: ["web"] }, { created: at(2) }),
      restoring(["shop"]),
    );
    expect(started(p)).toEqual(["b2"]);
    expect(entry(p, "b1")?.position).toBe(1);
  });

  it("a backup that conflicts with one ahead and is held names both", () => {
    const p = run(
      policyOf(),
      backup("b0", { includedNamespaces: ["shop"] }, { created: at(0), phase: "InProgress" }),
      backup("b1", { includedNamespaces: ["shop"] }, { created: at(1) }),
      restoring(["shop"]),
    );
    expect(entry(p, "b1")?.reason).toMatch(/^waits behind b0 \(InProgress\): .*; waits for restore velero\/r1 writing into namespace shop$/);
  });

  it("a backup held by its tenant's limit and by a restore names both (each hold alone would let it start)", () => {
    const p = run(
      policyOf({ tenants: { maxInFlightPerTenant: 1 } }),
      backup("nab-0", { includedNamespaces: ["web"] }, { created: at(0), phase: "InProgress", annotations: { [ORIGIN_NAMESPACE]: "shop" } }),
      backup("nab-1", { includedNamespaces: ["shop"] }, { created: at(1), annotations: { [ORIGIN_NAMESPACE]: "shop" } }),
      restoring(["shop"]),
    );
    expect(entry(p, "nab-1")?.reason).toBe(
      "waits for its tenant's limit: tenant shop has 1 of 1 backups in flight (tenants.maxInFlightPerTenant); waits for restore velero/r1 writing into namespace shop",
    );
  });

  it("a tenant reads that its backup waits for a restore, with no restore or namespace named", () => {
    const tenantBackup = backup("nab-1", { includedNamespaces: ["shop"] }, { created: at(1), annotations: { [ORIGIN_NAMESPACE]: "shop" } });
    const p = run(policyOf({ tenants: {} }), tenantBackup, restoring(["shop"], { name: "dr-shop-7" }));
    const e = entry(p, "nab-1");
    expect(e?.reason).toBe("waits for restore velero/dr-shop-7 writing into namespace shop");
    expect(e?.tenantReason).toBe("waits for a restore into its namespaces");
  });

  it("starts once the restore is done", () => {
    const b = backup("b1", { includedNamespaces: ["shop"] }, { created: at(1) });
    expect(started(run(policyOf(), b, restoring(["shop"], { phase: "Finalizing" })))).toEqual([]);
    expect(started(run(policyOf(), b, restoring(["shop"], { phase: "PartiallyFailed" })))).toEqual(["b1"]);
  });

  it("with no restores the plan is today's, byte for byte", () => {
    const objects = [backup("b1", { includedNamespaces: ["shop"] }, { created: at(1) }), backup("b2", {}, { created: at(2) })];
    const without = run(policyOf(), ...objects);
    const finished = run(policyOf({ restores: { onConflict: "Deny" } }), ...objects, restoring(["shop"], { phase: "Completed" }));
    expect(JSON.stringify(finished)).toBe(JSON.stringify(without));
  });

  it("plans are made afresh while a restore moves or writes, and build on the last one again once it is done", () => {
    const s = cluster(...estate(), backup("b1", { includedNamespaces: ["shop"] }, { created: at(1) }));
    const cache = new ScopeCache();
    const policy = policyOf();
    const first = plan(s, policy, NOW, { cache });
    expect(started(first)).toEqual(["b1"]);
    s.view.setRestore(restoreOf(restoring(["shop"])));
    const second = plan(s, policy, NOW, { cache, previous: first });
    expect([howMade(second), started(second)]).toEqual(["afresh", []]);
    s.view.setPod(podOf(pod("shop", "extra", { claims: ["data"] })));
    const third = plan(s, policy, NOW, { cache, previous: second });
    expect([howMade(third), started(third)]).toEqual(["afresh", []]);
    s.view.setRestore(restoreOf(restoring(["shop"], { phase: "Completed" })));
    const fourth = plan(s, policy, NOW, { cache, previous: third });
    s.view.setPod(podOf(pod("shop", "more", { claims: ["data"] })));
    const fifth = plan(s, policy, NOW, { cache, previous: fourth });
    expect([howMade(fourth), howMade(fifth), started(fifth)]).toEqual(["afresh", "incremental", ["b1"]]);
    expect(JSON.stringify(fifth)).toBe(JSON.stringify(plan(s, policy, NOW)));
  });
});

describe("a Restore created into what a backup in flight holds (admission)", () => {
  const s = cluster(...estate());
  const inFlight = (name: string, spec: object, level?: "Namespace"): ScopedBackup & { spec: unknown } => ({
    name,
    phase: "InProgress",
    spec,
    scope: scopeOf(backupOf(backup(name, spec, { phase: "InProgress" })), s.view, policyOf(level ? { conflictLevel: level } : {})),
  });
  it.each<{ case: string; policy: object; spec: object; flying: (ScopedBackup & { spec: unknown })[]; verdict: string; says?: RegExp }>([
    {
      case: "into a namespace a backup in flight holds: a warning naming the backup",
      policy: {},
      spec: { backupName: "old", includedNamespaces: ["shop"] },
      flying: [inFlight("nightly", { includedNamespaces: ["shop"] })],
      verdict: "admit-with-warning",
      says: /^restore velero\/r1 writes into namespace shop, which backup nightly in flight is freezing or copying/,
    },
    {
      case: "onConflict: Deny refuses it, naming the backup",
      policy: { restores: { onConflict: "Deny" } },
      spec: { backupName: "old", includedNamespaces: ["shop"] },
      flying: [inFlight("nightly", { includedNamespaces: ["shop"] })],
      verdict: "reject",
      says: /backup nightly in flight.*restores\.onConflict is Deny/,
    },
    {
      case: "into another namespace: admitted",
      policy: { restores: { onConflict: "Deny" } },
      spec: { backupName: "old", includedNamespaces: ["web"] },
      flying: [inFlight("nightly", { includedNamespaces: ["shop"] })],
      verdict: "admit",
    },
    {
      case: "mapped into the backup's namespace: a warning",
      policy: {},
      spec: { backupName: "old", includedNamespaces: ["docs"], namespaceMapping: { docs: "shop" } },
      flying: [inFlight("nightly", { includedNamespaces: ["shop"] })],
      verdict: "admit-with-warning",
      says: /namespace shop, which backup nightly/,
    },
    {
      case: "at ItemBlock level, a namespace the backup claims nothing in: admitted",
      policy: { restores: { onConflict: "Deny" } },
      spec: { backupName: "old", includedNamespaces: ["docs"] },
      flying: [inFlight("nightly", { includedNamespaces: ["docs"] })],
      verdict: "admit",
    },
    {
      case: "at Namespace level, any namespace of the backup",
      policy: { restores: { onConflict: "Deny" } },
      spec: { backupName: "old", includedNamespaces: ["docs"] },
      flying: [inFlight("nightly", { includedNamespaces: ["docs"] }, "Namespace")],
      verdict: "reject",
    },
    {
      case: "an unreadable spec: a warning that says so (taken to write everywhere)",
      policy: {},
      spec: { includedNamespaces: [7] },
      flying: [],
      verdict: "admit-with-warning",
      says: /could not read this Restore's spec \(spec\.includedNamespaces\[0\]: .*\); it is taken to write into every namespace/,
    },
  ])("$case", ({ policy, spec, flying, verdict, says }) => {
    const v = decideRestoreAdmission(restoreOf(restore("r1", spec)), undefined, flying, policyOf(policy), s.view);
    expect(v.verdict).toBe(verdict);
    if (says) expect(v.verdict === "reject" ? v.message : v.warnings[0]).toMatch(says);
  });
});

describe("the snapshot reader and the policy", () => {
  it("reads Restores from a kubectl List into the view, keeping one whose spec is unreadable with the reason", () => {
    const r = loadSnapshot({
      kind: "List",
      items: [restore("r1", { includedNamespaces: ["shop"] }, { phase: "InProgress" }), restore("r2", { excludedNamespaces: "x" })],
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const got = [...r.snapshot.view.restores()].map((x) => ({ name: x.name, phase: x.phase, inc: x.includedNamespaces, err: x.specError }));
    expect(got).toEqual([
      { name: "r1", phase: "InProgress", inc: ["shop"], err: undefined },
      { name: "r2", phase: "", inc: [], err: expect.stringMatching(/^spec\.excludedNamespaces: /) as unknown },
    ]);
  });
  it.each([
    { case: "an unknown verdict", restores: { onConflict: "Block" }, field: "restores.onConflict" },
    { case: "a typo", restores: { onconflict: "Deny" }, field: "restores" },
    { case: "a string hold switch", restores: { holdBackups: "no" }, field: "restores.holdBackups" },
  ])("a bad restores section is refused: $case", ({ restores, field }) => {
    const r = parsePolicy({ restores });
    expect(r.ok ? "" : r.error).toMatch(new RegExp(`^${field.replace(/\./g, "\\.")}: `));
  });
});

// Generated estates: backups over four namespaces (some stateful), restores in every phase.
const NAMESPACES = ["shop", "web", "docs", "strict", "empty"];
interface GenBackup {
  namespaces: string[];
  phase: string;
  minute: number;
}
interface GenRestore {
  namespaces: string[];
  mapping: [string, string] | undefined;
  phase: string;
}
const genBackup: fc.Arbitrary<GenBackup> = fc.record({
  namespaces: fc.subarray(NAMESPACES, { minLength: 0, maxLength: 3 }),
  phase: fc.constantFrom("", "New", "Queued", "Queued", "ReadyToStart", "InProgress", "Completed"),
  minute: fc.integer({ min: 0, max: 50 }),
});
const genRestore: fc.Arbitrary<GenRestore> = fc.record({
  namespaces: fc.subarray(NAMESPACES, { minLength: 1, maxLength: 2 }),
  mapping: fc.option(fc.tuple(fc.constantFrom(...NAMESPACES), fc.constantFrom(...NAMESPACES)), { nil: undefined }),
  phase: fc.constantFrom("New", "InProgress", "WaitingForPluginOperations", "Finalizing", "Completed", "Failed"),
});
const genPolicy = fc
  .record({ conflictLevel: fc.constantFrom("Namespace", "ItemBlock"), maxConcurrentBackups: fc.integer({ min: 1, max: 4 }) })
  .map((p) => policyOf(p));
const objectsOf = (bs: readonly GenBackup[], rs: readonly GenRestore[]) => [
  ...bs.map((g, i) => backup(`b${i}`, g.namespaces.length > 0 ? { includedNamespaces: g.namespaces } : {}, { phase: g.phase, created: at(g.minute) })),
  ...rs.map((g, i) =>
    restore(
      `r${i}`,
      { backupName: "gone", includedNamespaces: g.namespaces, ...(g.mapping ? { namespaceMapping: { [g.mapping[0]]: g.mapping[1] } } : {}) },
      { phase: g.phase },
    ),
  ),
];

/** Promoted backups that a writing restore writes into (what the hold forbids). */
function startedIntoRestores(p: Plan, s: ReturnType<typeof cluster>, policy: Policy): string[] {
  const targets = writingRestores(s.view, s.backups, { ...policy, restores: undefined });
  const specOf = (name: string) => s.backups.find((b) => b.name === name)?.spec;
  return p.promotions
    .filter((x) => targets.some((t) => namespaceMet(t, { scope: p.scopes.get(x.backup)!, spec: specOf(x.backup) }) !== undefined))
    .map((x) => x.backup);
}

describe("restore holds (property)", () => {
  const gen = fc.tuple(fc.array(genBackup, { minLength: 1, maxLength: 10 }), fc.array(genRestore, { maxLength: 3 }), genPolicy);

  it("never starts a backup into a namespace a writing restore writes into", () => {
    fc.assert(
      fc.property(gen, ([bs, rs, policy]) => {
        const s = cluster(...estate(), ...objectsOf(bs, rs));
        expect(startedIntoRestores(plan(s, policy, NOW), s, policy)).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });

  it("the check finds one (positive control): with holdBackups false, backups start into restores", () => {
    const result = fc.check(
      fc.property(gen, ([bs, rs, policy0]) => {
        const policy = policyOf({ conflictLevel: policy0.conflictLevel, maxConcurrentBackups: policy0.maxConcurrentBackups, restores: { holdBackups: false } });
        const s = cluster(...estate(), ...objectsOf(bs, rs));
        return startedIntoRestores(plan(s, policy, NOW), s, policy).length === 0;
      }),
      { numRuns: 200 },
    );
    expect(result.failed).toBe(true);
  });

  it("never breaks the conflict rule or the limit", () => {
    fc.assert(
      fc.property(gen, ([bs, rs, policy]) => {
        const s = cluster(...estate(), ...objectsOf(bs, rs));
        const p = plan(s, policy, NOW);
        const flying = s.backups.filter((b) => IN_FLIGHT_PHASES.has(b.phase)).length;
        expect(flying + p.promotions.length <= Math.max(flying, policy.maxConcurrentBackups)).toBe(true);
        const scoped = (name: string, phase: string): ScopedBackup => ({ name, phase, scope: p.scopes.get(name)! });
        const running = [...p.inFlight.map((n) => scoped(n, "InProgress"))];
        for (const x of p.promotions) {
          const me = scoped(x.backup, "");
          for (const other of running) expect(conflictsWith(me, other), `${x.backup} with ${other.name}`).toBe(false);
          running.push(me);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("a plan built on the last one after the cluster or a restore moved equals the plan made from nothing", () => {
    fc.assert(
      fc.property(gen, fc.constantFrom(...NAMESPACES), fc.boolean(), ([bs, rs, policy], where, finish) => {
        const s = cluster(...estate(), ...objectsOf(bs, rs));
        const cache = new ScopeCache();
        const first = plan(s, policy, NOW, { cache });
        if (finish && rs.length > 0) s.view.setRestore({ ...restoreOf(objectsOf([], rs)[0] as object), phase: "Completed" });
        else s.view.setPod(podOf(pod(where, "extra", { claims: ["data"] })));
        const again = plan(s, policy, NOW, { cache, previous: first });
        expect(JSON.stringify(again)).toBe(JSON.stringify(plan(s, policy, NOW)));
      }),
      { numRuns: 100 },
    );
  });

  it("nothing starves: every queued backup starts within a bound once the restores end", () => {
    fc.assert(
      fc.property(gen, fc.integer({ min: 1, max: 4 }), ([bs, rs, policy], restoreRounds) => {
        const s = cluster(...estate(), ...objectsOf(bs, rs));
        let backups: BackupInfo[] = s.backups;
        const queued = () => backups.filter((b) => QUEUED_PHASES.has(b.phase) && b.phase !== "Completed");
        const bound = restoreRounds + 2 * (backups.length + 1);
        const cache = new ScopeCache();
        let previous: Plan | undefined;
        for (let round = 0; round <= bound; round++) {
          if (round === restoreRounds) for (const r of [...s.view.restores()]) s.view.setRestore({ ...r, phase: "Completed" });
          const p: Plan = plan({ view: s.view, backups }, policy, NOW, { cache, ...(previous ? { previous } : {}) });
          previous = p;
          const superseded = new Set(p.supersessions.map((x) => x.backup));
          const promoted = new Set(p.promotions.map((x) => x.backup));
          // In flight for one round, then done: the backups ahead make room.
          backups = backups.map((b) =>
            IN_FLIGHT_PHASES.has(b.phase) || superseded.has(b.name) ? { ...b, phase: "Completed" } : promoted.has(b.name) ? { ...b, phase: "InProgress" } : b,
          );
          if (queued().length === 0 && round >= restoreRounds) return;
        }
        expect.fail(
          `still queued after ${bound} rounds: ${queued()
            .map((b) => b.name)
            .join(", ")}`,
        );
      }),
      { numRuns: 100 },
    );
  });
});
