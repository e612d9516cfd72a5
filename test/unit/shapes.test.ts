import { describe, expect, it } from "vitest";
import { plan, type Plan } from "../../src/core/decision/plan.js";
import { DEFAULT_POLICY, policySchema, type Policy } from "../../src/core/policy.js";
import { ScopeCache } from "../../src/core/scope/cache.js";
import { scopeOf } from "../../src/core/scope/scope.js";
import { backup, boundClaim, ns, pod, pvc } from "../support/builders.js";
import { Interner, slimPod, slimPvc } from "../../src/cluster/slim.js";
import { trim } from "../../src/core/velero/objects.js";
import { cluster } from "./support/cluster.js";

// A plan makes thousands of scopes, parts and queue entries, and its loops read their fields:
// objects of one kind must keep one shape (the same own properties, in the same order), or V8
// reads them through slower polymorphic lookups (docs/performance.md, "Core notes"). Optional
// fields are therefore always present, undefined when unset, never added to some objects only.

/** Each distinct list of own property keys (symbols included) among `objects`. */
function shapesOf(objects: readonly object[]): string[][] {
  const shapes = new Map<string, string[]>();
  for (const o of objects) {
    const keys = Reflect.ownKeys(o).map(String);
    shapes.set(keys.join(","), keys);
  }
  return [...shapes.values()];
}

const NOW = Date.parse("2026-01-01T12:00:00Z");
const policy: Policy = { ...DEFAULT_POLICY, maxConcurrentBackups: 2 };

// Backups with and without every optional field: a reason for their level, a serial key, blockers
// past the limit, none at all.
const snapshot = () =>
  cluster(
    ns("shop"),
    ns("web"),
    ns("data", { annotations: { "backup-gate.io/conflict-level": "Namespace" } }),
    pod("shop", "cart-0", { claims: ["cart-data"], labels: { app: "cart" } }),
    ...boundClaim("shop", "cart-data"),
    pod("web", "nginx", { labels: { app: "web" } }),
    pod("data", "pg-0", { claims: ["pg"], labels: { app: "pg" } }),
    ...boundClaim("data", "pg"),
    backup("all", {}, { phase: "InProgress", created: "2026-01-01T10:00:00Z" }),
    backup("nightly-1", { includedNamespaces: ["shop"] }, { created: "2026-01-01T10:01:00Z", labels: { "velero.io/schedule-name": "nightly" } }),
    backup("strict", { includedNamespaces: ["data"] }, { created: "2026-01-01T10:02:00Z", annotations: { "backup-gate.io/conflict-level": "Namespace" } }),
    backup("web", { includedNamespaces: ["web"], snapshotVolumes: false }, { created: "2026-01-01T10:03:00Z" }),
    ...Array.from({ length: 25 }, (_, i) => backup(`many-${i}`, {}, { created: `2026-01-01T10:${String(10 + i)}:00Z` })),
    backup("bad", { includedNamespaces: "shop" }, { created: "2026-01-01T10:59:00Z" }),
  );

describe("objects a plan makes in bulk keep one shape", () => {
  const made: Plan = plan(snapshot(), policy, NOW);
  const again = plan(snapshot(), policy, NOW, { cache: new ScopeCache() });
  // A backup held by a budget, one waiting behind it, and a part that claims a unit for hooks alone (no volume work).
  const withBudgets: Plan = plan(
    cluster(
      ...["a", "b"].flatMap((n) => [ns(n), pod(n, "db", { claims: ["data"] }), ...boundClaim(n, "data")]),
      ns("c"),
      pod("c", "hooked", { annotations: { "pre.hook.backup.velero.io/command": '["/bin/sync"]' } }),
      backup("run-a", { includedNamespaces: ["a"] }, { phase: "InProgress", created: "2026-01-01T10:00:00Z" }),
      backup("q-b", { includedNamespaces: ["b"] }, { created: "2026-01-01T10:01:00Z" }),
      backup("q-b-again", { includedNamespaces: ["b"] }, { created: "2026-01-01T10:02:00Z" }),
      backup("q-c", { includedNamespaces: ["c"] }, { created: "2026-01-01T10:03:00Z" }),
    ),
    policySchema.parse({ maxConcurrentBackups: 4, budgets: { snapshotsPerStorageClass: 1 } }),
    NOW,
  );

  it("the check tells shapes apart (positive control)", () => {
    expect(shapesOf([{ a: 1 }, { a: 2 }])).toHaveLength(1);
    expect(shapesOf([{ a: 1 }, { a: 1, b: 2 }])).toHaveLength(2);
    expect(
      shapesOf([
        { a: 1, b: 2 },
        { b: 2, a: 1 },
      ]),
    ).toHaveLength(2);
    expect(shapesOf([{ a: 1 }, { a: 1, [Symbol("hidden")]: 1 }])).toHaveLength(2);
  });

  it("the table covers the optional fields", () => {
    const scopes = [...made.scopes.values()];
    expect(scopes.some((s) => s.levelReason !== undefined) && scopes.some((s) => s.levelReason === undefined)).toBe(true);
    expect(scopes.some((s) => s.serialKey !== undefined) && scopes.some((s) => s.serialKey === undefined)).toBe(true);
    expect(scopes.some((s) => s.errors.length > 0)).toBe(true);
    expect(made.queue.some((q) => q.moreBlockers) && made.queue.some((q) => !q.moreBlockers)).toBe(true);
    expect(withBudgets.queue.some((q) => q.budget) && withBudgets.queue.some((q) => !q.budget)).toBe(true);
    const parts = [...withBudgets.scopes.values()].flatMap((s) => s.claims.parts);
    expect(parts.some((p) => p.work.snapshotClasses.length > 0) && parts.some((p) => p.work.snapshotClasses.length === 0)).toBe(true);
  });

  it.each([
    { kind: "scopes (ScopeCache)", objects: () => [...made.scopes.values()] },
    { kind: "scopes (scopeOf)", objects: () => snapshot().backups.map((b) => scopeOf(b, snapshot().view, policy)) },
    { kind: "scopes of two caches", objects: () => [...made.scopes.values(), ...again.scopes.values()] },
    { kind: "scope parts", objects: () => [...made.scopes.values()].flatMap((s) => s.claims.parts) },
    { kind: "queue entries", objects: () => made.queue },
    { kind: "queue entries, some held by a budget", objects: () => withBudgets.queue },
    { kind: "scope parts with and without volume work", objects: () => [...withBudgets.scopes.values()].flatMap((s) => s.claims.parts) },
    { kind: "promotions", objects: () => made.promotions },
  ])("$kind", ({ objects }) => {
    expect(shapesOf(objects())).toHaveLength(1);
  });

  it("scopes and queue entries have these fields, in this order", () => {
    expect(shapesOf([...made.scopes.values()])).toEqual([
      ["errors", "queueNamespaces", "namespaces", "level", "strictNamespaces", "listsPvs", "notes", "levelReason", "serialKey"],
    ]);
    expect(shapesOf(made.queue)).toEqual([["backup", "position", "priority", "effectivePriority", "level", "moreBlockers"]]);
  });

  it("a plan shows only its fields: what the next plan builds on is private", () => {
    expect(Reflect.ownKeys(made)).toEqual(["level", "limit", "inFlight", "promotions", "queue", "supersessions", "overlaps", "scopes"]);
  });
});

// The cluster cache holds a trimmed object per pod and claim (100k of each in bench/rss.bench.ts):
// one hidden class per kind keeps every field inside the object, with no property array.
describe("the objects the cluster cache keeps per pod and claim keep one shape", () => {
  const decoded = (kind: "Pod" | "PersistentVolumeClaim", o: object): object => {
    const r = trim(kind, JSON.parse(JSON.stringify(o)));
    if (!r.ok) throw r.error;
    return r.value;
  };
  const i = new Interner();
  const pods = [
    pod("shop", "a", { claims: ["data"] }),
    pod("shop", "b", { node: null, phase: null }),
    pod("shop", "c", {
      volumes: [
        { name: "share", nfs: { server: "s", path: "/p" } },
        { name: "tmp", emptyDir: {} },
      ],
    }),
  ].map((p) => slimPod(decoded("Pod", p) as never, i));
  const claims = [pvc("shop", "bound"), pvc("shop", "pending", { pv: null, phase: null })].map((c) => slimPvc(decoded("PersistentVolumeClaim", c) as never, i));

  it("the table covers the optional fields", () => {
    expect(pods.map((p) => p.nodeName === undefined)).toEqual([false, true, false]);
    expect(claims.map((c) => c.volumeName === undefined)).toEqual([false, true]);
    expect(pods.flatMap((p) => p.volumes).map((v) => [v.claimName !== undefined, v.nfs !== undefined])).toEqual([
      [true, false],
      [false, true],
      [false, false],
    ]);
  });

  it.each([
    { kind: "pods", objects: () => pods },
    { kind: "claims", objects: () => claims },
    { kind: "pod volumes", objects: () => pods.flatMap((p) => p.volumes) },
  ])("$kind", ({ objects }) => {
    expect(shapesOf(objects())).toHaveLength(1);
  });
});
