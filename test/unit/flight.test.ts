import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AdmissionEngine } from "../../src/admission/engine.js";
import { FakeClusterCache } from "../support/fakes/clusterCache.js";
import { StaticPolicySource } from "../support/fakes/policySource.js";
import { changedSpecFields, flightChangeOf, mayBeInFlight, specChangeInFlight, type FlightSnapshot } from "../../src/core/decision/flight.js";
import type { BackupInfo } from "../../src/core/model.js";
import { DEFAULT_POLICY, type Policy } from "../../src/core/policy.js";
import { ScopeCache } from "../../src/core/scope/cache.js";
import type { ScopedBackup } from "../../src/core/conflict/conflicts.js";
import { writingRestores } from "../../src/core/decision/restores.js";
import { backup, boundClaim, ns, pod, restore } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// The one rule for "may this backup be in flight next to these" (core/decision/flight.ts) and the guard
// that keeps its snapshot (admission/flightGuard.ts): pending moves, replicas, spec edits.

const NOW = Date.parse("2026-01-01T12:00:00Z");
const policy: Policy = { ...DEFAULT_POLICY, maxConcurrentBackups: 2, priorities: { ...DEFAULT_POLICY.priorities, agingSeconds: 0 } };
const estate = () => [
  ns("shop"),
  ns("web"),
  pod("shop", "cart-0", { claims: ["cart-data"], labels: { app: "cart" } }),
  ...boundClaim("shop", "cart-data"),
  pod("shop", "orders-0", { claims: ["orders-data"], labels: { app: "orders" } }),
  ...boundClaim("shop", "orders-data"),
  pod("web", "nginx", { labels: { app: "web" } }),
];
const app = (name: string, label: string, o: Parameters<typeof backup>[2] = {}) =>
  backup(name, { includedNamespaces: ["shop"], labelSelector: { matchLabels: { app: label } } }, o);
const web = (name: string, o: Parameters<typeof backup>[2] = {}) => backup(name, { includedNamespaces: ["web"] }, o);
const info = (raw: object): BackupInfo => cluster(raw).backups[0] as BackupInfo;

describe("mayBeInFlight: the rule", () => {
  const snap = cluster(...estate());
  const scopes = new ScopeCache();
  const scoped = (raw: object): ScopedBackup => {
    const b = info(raw);
    return { name: b.name, phase: b.phase, scope: scopes.scopeOf(b, snap.view, policy) };
  };
  it.each<{ name: string; candidate: object; inFlight: object[]; limit: number; allowed: boolean; reason: RegExp }>([
    {
      name: "nothing in flight",
      candidate: app("c", "cart"),
      inFlight: [],
      limit: 1,
      allowed: true,
      reason: /^conflicts with nothing in flight; 1 of 1 slots in use$/,
    },
    {
      name: "shares only a namespace (ItemBlock level)",
      candidate: app("c", "cart"),
      inFlight: [app("o", "orders", { phase: "InProgress" })],
      limit: 2,
      allowed: true,
      reason: /2 of 2 slots/,
    },
    {
      name: "shares a snapshotted PVC",
      candidate: app("c", "cart"),
      inFlight: [app("c0", "cart", { phase: "InProgress" })],
      limit: 4,
      allowed: false,
      reason: /^backup c may not become ReadyToStart: it conflicts with c0 \(InProgress\): both snapshot PVC shop\/cart-data$/,
    },
    {
      name: "the limit is full",
      candidate: app("c", "cart"),
      inFlight: [web("w", { phase: "InProgress" })],
      limit: 1,
      allowed: false,
      reason: /^backup c may not become ReadyToStart: 1 of 1 backups are already in flight \(w\); maxConcurrentBackups is 1$/,
    },
    {
      name: "the conflict is named before the limit",
      candidate: app("c", "cart"),
      inFlight: [web("w", { phase: "InProgress" }), app("c0", "cart", { phase: "ReadyToStart" })],
      limit: 2,
      allowed: false,
      reason: /conflicts with c0 \(ReadyToStart\)/,
    },
  ])("$name", ({ candidate, inFlight, limit, allowed, reason }) => {
    const snapshot: FlightSnapshot = { inFlight: inFlight.map(scoped), limit };
    const d = mayBeInFlight(scoped(candidate), snapshot, "become ReadyToStart");
    expect(d.allowed).toBe(allowed);
    expect(d.reasons[0]).toMatch(reason);
  });
});

describe("mayBeInFlight: a restore writing into what the backup would hold (docs/rules.md, Restores)", () => {
  const withRestore = (phase: string) => cluster(...estate(), restore("dr-shop", { backupName: "old", includedNamespaces: ["shop"] }, { phase }));
  it.each<{ name: string; candidate: object; restorePhase: string; holdBackups: boolean; allowed: boolean; reason: RegExp }>([
    {
      name: "into a namespace the restore is writing: refused, naming the restore",
      candidate: app("c", "cart"),
      restorePhase: "InProgress",
      holdBackups: true,
      allowed: false,
      reason:
        /^backup c may not be created ReadyToStart: restore velero\/dr-shop is writing into namespace shop, which it would hold; it may once the restore is done$/,
    },
    {
      name: "another namespace (control): allowed",
      candidate: web("w"),
      restorePhase: "InProgress",
      holdBackups: true,
      allowed: true,
      reason: /^conflicts with nothing in flight/,
    },
    {
      name: "the restore is done: allowed",
      candidate: app("c", "cart"),
      restorePhase: "Completed",
      holdBackups: true,
      allowed: true,
      reason: /^conflicts with nothing in flight/,
    },
    {
      name: "restores.holdBackups: false: allowed",
      candidate: app("c", "cart"),
      restorePhase: "InProgress",
      holdBackups: false,
      allowed: true,
      reason: /^conflicts with nothing in flight/,
    },
  ])("$name", ({ candidate, restorePhase, holdBackups, allowed, reason }) => {
    const snap = withRestore(restorePhase);
    const p: Policy = { ...policy, restores: { onConflict: "Warn", holdBackups } };
    const b = info(candidate);
    const restores = writingRestores(snap.view, snap.backups, p);
    const d = mayBeInFlight(
      { name: b.name, phase: b.phase, scope: new ScopeCache().scopeOf(b, snap.view, p), spec: b.spec },
      { inFlight: [], limit: 2, ...(restores.length > 0 ? { restores } : {}) },
      "be created ReadyToStart",
    );
    expect(d.allowed).toBe(allowed);
    expect(d.reasons[0]).toMatch(reason);
  });
});

describe("flightChangeOf: which writes the rule judges", () => {
  it.each<{ from: string | undefined; to: string; kind: string }>([
    { from: undefined, to: "ReadyToStart", kind: "enters" },
    { from: undefined, to: "InProgress", kind: "enters" },
    { from: undefined, to: "", kind: "none" },
    { from: "Queued", to: "ReadyToStart", kind: "enters" },
    { from: "", to: "InProgress", kind: "enters" },
    { from: "Completed", to: "InProgress", kind: "enters" },
    { from: "ReadyToStart", to: "InProgress", kind: "none" },
    { from: "ReadyToStart", to: "ReadyToStart", kind: "stays" },
    { from: "InProgress", to: "InProgress", kind: "stays" },
    { from: "InProgress", to: "ReadyToStart", kind: "stays" },
    { from: "InProgress", to: "Completed", kind: "none" },
  ])("$from -> $to: $kind", ({ from, to, kind }) => {
    expect(flightChangeOf(from, to).kind).toBe(kind);
  });
});

describe("specChangeInFlight: a backup in flight keeps what it touches", () => {
  const base = { includedNamespaces: ["shop"], ttl: "720h0m0s", labelSelector: { matchLabels: { app: "cart" } } };
  it.each<{ name: string; spec: object; fields: string[] }>([
    { name: "same spec", spec: base, fields: [] },
    {
      name: "keys in another order, a null for an absent field",
      spec: { labelSelector: { matchLabels: { app: "cart" } }, ttl: "720h0m0s", includedNamespaces: ["shop"], hooks: null },
      fields: [],
    },
    { name: "ttl and storage location only", spec: { ...base, ttl: "1h0m0s", storageLocation: "other" }, fields: [] },
    { name: "widened namespaces", spec: { ...base, includedNamespaces: ["shop", "web"] }, fields: ["spec.includedNamespaces"] },
    {
      name: "selector and hooks",
      spec: { ...base, labelSelector: { matchLabels: { app: "orders" } }, hooks: { resources: [{ name: "h" }] } },
      fields: ["spec.hooks", "spec.labelSelector"],
    },
    {
      name: "volume settings and resource policy",
      spec: { ...base, snapshotVolumes: false, defaultVolumesToFsBackup: true, resourcePolicy: { kind: "configmap", name: "p" } },
      fields: ["spec.defaultVolumesToFsBackup", "spec.resourcePolicy", "spec.snapshotVolumes"],
    },
    { name: "a field this version does not know", spec: { ...base, futureScope: ["x"] }, fields: ["spec.futureScope"] },
  ])("$name", ({ spec, fields }) => {
    const old = info(backup("b", base, { phase: "ReadyToStart" }));
    const next = info(backup("b", spec, { phase: "ReadyToStart" }));
    const d = specChangeInFlight(old, next);
    expect(d.fields).toEqual(fields);
    expect(d.allowed).toBe(fields.length === 0);
    if (!d.allowed)
      expect(d.reasons[0]).toBe(
        `backup b is ReadyToStart: ${fields.join(", ")} may not change while it is in flight, because Velero reads the spec when it starts the backup and the gate judged it on the spec it had; labels and annotations stay editable; to back up something else, create a new Backup`,
      );
  });

  it("changedSpecFields: null and absent agree, deep values compare by content", () => {
    expect(changedSpecFields({ a: null, b: { x: 1, y: [1, 2] } }, { b: { y: [1, 2], x: 1 } })).toEqual([]);
    expect(changedSpecFields({ b: { y: [1, 2] } }, { b: { y: [2, 1] } })).toEqual(["b"]);
    expect(changedSpecFields(undefined, { a: 1 })).toEqual(["a"]);
  });
});

describe("the guard: moves allowed and not yet observed count as in flight", () => {
  const setup = (backups: object[], o: { leading?: boolean; self?: string; pendingTtlMs?: number; handoverMs?: number; p?: Policy } = {}) => {
    const snap = cluster(...estate(), ...backups);
    const cache = new FakeClusterCache(snap.view, snap.backups);
    let now = NOW;
    let leading = o.leading ?? true;
    const listeners = new Set<(l: boolean) => void>();
    const leadership =
      o.leading === undefined
        ? undefined
        : {
            isLeader: () => leading,
            onChange: (l: (x: boolean) => void) => {
              listeners.add(l);
              return () => listeners.delete(l);
            },
          };
    const engine = new AdmissionEngine({
      cache,
      policy: new StaticPolicySource(o.p ?? policy),
      now: () => now,
      ...(leadership ? { leadership } : {}),
      ...(o.self ? { self: o.self, identity: "gate-b" } : {}),
      ...(o.pendingTtlMs ? { pendingTtlMs: o.pendingTtlMs } : {}),
      handoverMs: o.handoverMs ?? 0,
    });
    return {
      engine,
      cache,
      tick: (ms: number) => {
        now += ms;
      },
      lead: (l: boolean) => {
        leading = l;
        for (const f of listeners) f(l);
      },
      promote: (raw: object, user = "someone") => {
        const b = info(raw);
        return engine.checkTransition({ ...b, phase: "Queued" }, { ...b, phase: "ReadyToStart" }, { user });
      },
    };
  };

  it("two parallel promotions of conflicting backups: the second is refused, naming the first as allowed and not yet observed", () => {
    const g = setup([app("c1", "cart", { phase: "Queued" }), app("c2", "cart", { phase: "Queued" })]);
    expect(g.promote(app("c1", "cart")).allowed).toBe(true);
    const second = g.promote(app("c2", "cart"));
    expect(second).toMatchObject({ allowed: false, code: 403, conflictWith: "c1" });
    expect(!second.allowed && second.message).toBe(
      "backup c2 may not become ReadyToStart: it conflicts with c1 (ReadyToStart, allowed and not yet observed): both snapshot PVC shop/cart-data",
    );
    expect(g.engine.pendingMoves()).toEqual(["c1"]);
  });

  it("an allowed move counts against the limit too", () => {
    const g = setup([web("w", { phase: "InProgress" })]);
    expect(g.promote(app("c1", "cart")).allowed).toBe(true);
    const third = g.promote(app("o1", "orders"));
    expect(!third.allowed && third.message).toMatch(/2 of 2 backups are already in flight \(w, c1\)/);
  });

  it("confirmed by the watch: the entry goes, the observed backup keeps counting", () => {
    const g = setup([app("c1", "cart", { phase: "Queued" })]);
    expect(g.promote(app("c1", "cart", { phase: "Queued" })).allowed).toBe(true);
    g.cache.setBackup(app("c1", "cart", { phase: "ReadyToStart" }));
    expect(g.engine.pendingMoves()).toEqual([]);
    expect(g.promote(app("c2", "cart")).allowed).toBe(false);
  });

  it("contradicted by the watch (a newer version not in flight): the entry goes", () => {
    const g = setup([app("c1", "cart", { phase: "Queued" })]);
    const queued = g.cache.backup("c1")!;
    expect(g.engine.checkTransition(queued, { ...queued, phase: "ReadyToStart" }).allowed).toBe(true);
    g.cache.setBackup({ ...queued, resourceVersion: String(Number(queued.resourceVersion) + 100), annotations: { x: "y" } });
    expect(g.engine.pendingMoves()).toEqual([]);
    expect(g.promote(app("c2", "cart")).allowed).toBe(true);
  });

  it("the same version seen again keeps the entry; it expires after pendingTtlMs", () => {
    const g = setup([app("c1", "cart", { phase: "Queued" })], { pendingTtlMs: 1000 });
    const queued = g.cache.backup("c1")!;
    expect(g.engine.checkTransition(queued, { ...queued, phase: "ReadyToStart" }).allowed).toBe(true);
    g.cache.setBackup(queued);
    expect(g.engine.pendingMoves()).toEqual(["c1"]);
    g.tick(999);
    expect(g.engine.pendingMoves()).toEqual(["c1"]);
    g.tick(1);
    expect(g.engine.pendingMoves()).toEqual([]);
  });

  it("a dry run is judged and not recorded", () => {
    const g = setup([]);
    const b = info(app("c1", "cart"));
    expect(g.engine.checkTransition({ ...b, phase: "Queued" }, { ...b, phase: "ReadyToStart" }, { dryRun: true }).allowed).toBe(true);
    expect(g.engine.pendingMoves()).toEqual([]);
  });

  it("a create straight into ReadyToStart/InProgress is judged by the same rule", () => {
    const g = setup([app("c0", "cart", { phase: "InProgress" })]);
    const v = g.engine.validateCreate(info(app("c1", "cart", { phase: "ReadyToStart" })), NOW);
    expect(v).toEqual({
      allowed: false,
      code: 403,
      reason: "Forbidden",
      message: "backup c1 may not be created ReadyToStart: it conflicts with c0 (InProgress): both snapshot PVC shop/cart-data",
    });
    expect(g.engine.validateCreate(info(app("o1", "orders", { phase: "InProgress" })), NOW)).toEqual({ allowed: true });
    expect(g.engine.pendingMoves()).toEqual(["o1"]);
    expect(g.engine.validateCreate(info(app("c2", "cart")), NOW)).toEqual({ allowed: true });
  });

  it("the controller's claim and a foreign move exclude each other; a released claim frees the way", () => {
    const g = setup([app("c1", "cart", { phase: "Queued" }), app("c2", "cart", { phase: "Queued" })]);
    expect(g.engine.claim(g.cache.backup("c1")!).allowed).toBe(true);
    expect(g.promote(app("c2", "cart")).allowed).toBe(false);
    g.engine.release("c1");
    expect(g.promote(app("c2", "cart")).allowed).toBe(true);
    expect(g.engine.claim(g.cache.backup("c1")!).reasons[0]).toMatch(/conflicts with c2 \(ReadyToStart, allowed and not yet observed\)/);
  });

  it("spec edits: refused in flight naming the field, labels and annotations pass, Velero's pickup is not judged", () => {
    const g = setup([]);
    const rts = info(app("c1", "cart", { phase: "ReadyToStart" }));
    const widened = { ...rts, spec: { ...(rts.spec as object), includedNamespaces: ["shop", "web"] } };
    const v = g.engine.checkTransition(rts, widened);
    expect(v).toMatchObject({ allowed: false, transition: false, code: 403 });
    expect(!v.allowed && v.message).toMatch(/^backup c1 is ReadyToStart: spec.includedNamespaces may not change while it is in flight/);
    expect(g.engine.checkTransition(rts, { ...rts, labels: { x: "1" }, annotations: { y: "2" } })).toEqual({
      allowed: true,
      transition: false,
      foreign: false,
    });
    expect(g.engine.checkTransition(rts, { ...widened, phase: "InProgress" }).allowed).toBe(true);
  });

  describe("replicas", () => {
    it("a replica that does not lead refuses moves by other writers with a retryable 429, and passes the gate's own", () => {
      const g = setup([], { leading: false, self: "system:serviceaccount:backup-gate:backup-gate" });
      const v = g.promote(app("c1", "cart"));
      expect(v).toMatchObject({ allowed: false, code: 429, reason: "TooManyRequests" });
      expect(!v.allowed && v.message).toBe(
        "backup c1 may not become ReadyToStart through this replica: backup-gate gate-b is not the leader, and only the leader judges moves into ReadyToStart/InProgress by other writers, so that two replicas never allow two conflicting ones; try again (a retry may reach the leader)",
      );
      expect(g.promote(app("c1", "cart"), "system:serviceaccount:backup-gate:backup-gate").allowed).toBe(true);
      expect(g.engine.pendingMoves()).toEqual([]);
    });

    it("spec edits are judged by every replica (they need no shared state)", () => {
      const g = setup([], { leading: false });
      const rts = info(app("c1", "cart", { phase: "InProgress" }));
      expect(g.engine.checkTransition(rts, { ...rts, spec: {} }).allowed).toBe(false);
    });

    it("a new leader waits handoverMs before judging moves by other writers; losing the lead forgets what it allowed", () => {
      const g = setup([], { leading: false, handoverMs: 5000 });
      g.lead(true);
      expect(g.promote(app("c1", "cart"))).toMatchObject({ allowed: false, code: 429 });
      expect(g.engine.claim(info(app("c1", "cart"))).allowed).toBe(false);
      g.tick(5000);
      expect(g.promote(app("c1", "cart")).allowed).toBe(true);
      expect(g.engine.pendingMoves()).toEqual(["c1"]);
      g.lead(false);
      expect(g.engine.pendingMoves()).toEqual([]);
    });
  });

  // The property, and its positive control: with pending entries that expire at once (the old
  // guard, judging from the cache alone), the same generator finds two conflicting in flight.
  const neverTwo = (pendingTtlMs?: number) => {
    const names = ["c1", "c2", "o1", "o2", "w1", "w2"];
    const raw = (n: string, phase: string) =>
      n.startsWith("c") ? app(n, "cart", { phase }) : n.startsWith("o") ? app(n, "orders", { phase }) : web(n, { phase });
    const step = fc.oneof(
      fc.record({ op: fc.constant("promote" as const), name: fc.constantFrom(...names) }),
      fc.record({ op: fc.constant("observe" as const), name: fc.constantFrom(...names) }),
      fc.record({ op: fc.constant("finish" as const), name: fc.constantFrom(...names) }),
      fc.record({ op: fc.constant("lose" as const), name: fc.constantFrom(...names) }),
    );
    return fc.property(fc.array(step, { maxLength: 40 }), fc.integer({ min: 1, max: 3 }), (steps, limit) => {
      const p = { ...policy, maxConcurrentBackups: limit };
      const g = setup(
        names.map((n) => raw(n, "Queued")),
        { p, ...(pendingTtlMs !== undefined ? { pendingTtlMs } : {}) },
      );
      // The truth: what the API server holds (allowed writes land unless lost).
      const stored = new Map(names.map((n) => [n, "Queued"]));
      const landed = new Set<string>();
      for (const s of steps) {
        const cur = g.cache.backup(s.name)!;
        if (s.op === "promote" && stored.get(s.name) === "Queued") {
          if (g.engine.checkTransition(cur, { ...cur, phase: "ReadyToStart" }).allowed) {
            stored.set(s.name, "ReadyToStart");
            landed.add(s.name);
          }
        } else if (s.op === "observe" && landed.has(s.name)) {
          g.cache.setBackup(info(raw(s.name, stored.get(s.name)!)));
          landed.delete(s.name);
        } else if (s.op === "finish" && stored.get(s.name) === "ReadyToStart" && !landed.has(s.name)) {
          stored.set(s.name, "Completed");
          g.cache.setBackup(info(raw(s.name, "Completed")));
        } else if (s.op === "lose" && landed.has(s.name)) {
          // The write failed after the verdict: a newer version, still queued, reaches the watch.
          stored.set(s.name, "Queued");
          landed.delete(s.name);
          g.cache.setBackup(info(raw(s.name, "Queued")));
        }
        const inFlight = [...stored].filter(([, ph]) => ph === "ReadyToStart").map(([n]) => n);
        if (inFlight.length > limit) return false;
        const family = (n: string) => n[0];
        if (new Set(inFlight.filter((n) => family(n) !== "w").map(family)).size !== inFlight.filter((n) => family(n) !== "w").length) return false;
      }
      return true;
    });
  };

  it("property: whatever order moves, confirmations and contradictions come in, the guard never lets two conflicting backups or more than the limit be in flight", () => {
    fc.assert(neverTwo(), { seed: 16, numRuns: 300 });
  });

  it("positive control: without pending entries the same steps put two conflicting backups in flight", () => {
    expect(fc.check(neverTwo(-1), { seed: 16, numRuns: 300 }).failed).toBe(true);
  });
});
