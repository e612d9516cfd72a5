import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { conflictBetween } from "../../src/core/conflict/conflicts.js";
import { orderQueue } from "../../src/core/decision/order.js";
import { howMade, plan, type Plan, type PlanMaking } from "../../src/core/decision/plan.js";
import { fairOrder, ORIGIN_NAME, ORIGIN_NAMESPACE, tenantOf } from "../../src/core/decision/tenants.js";
import { planWrites, tenantReadable } from "../../src/core/decision/writes.js";
import { IN_FLIGHT_PHASES, QUEUED_PHASES, type BackupInfo } from "../../src/core/model.js";
import { ScopeCache } from "../../src/core/scope/cache.js";
import { trim } from "../../src/core/velero/objects.js";
import { DEFAULT_POLICY, parsePolicy, policySchema, type Policy } from "../../src/core/policy.js";
import { Timestamps } from "../../src/core/times.js";
import { backup, boundClaim, ns, pod } from "../support/builders.js";
import { cluster } from "./support/cluster.js";
import { testSealer } from "./support/sealer.js";

// Tenants (docs/rules.md, "Tenants" and "Tenant-safe visibility"): tables per rule, then the
// invariants over generated estates with several tenants.

const NOW = Date.parse("2026-01-01T12:00:00Z");
const at = (minute: number) => new Date(Date.parse("2026-01-01T10:00:00Z") + minute * 60_000).toISOString();
const noAging: Policy = { ...DEFAULT_POLICY, priorities: { ...DEFAULT_POLICY.priorities, agingSeconds: 0 } };
const withTenants = (tenants: object, over: object = {}): Policy => policySchema.parse({ priorities: { agingSeconds: 0 }, ...over, tenants });

/** A tenant's backup as OADP's non-admin controller makes it: the origin namespace annotated, only that namespace included. */
const nab = (name: string, tenant: string, o: { phase?: string; created: string; finished?: string; labels?: Record<string, string> }) =>
  backup(name, { includedNamespaces: [tenant] }, { ...o, annotations: { [ORIGIN_NAMESPACE]: tenant } });

// Stateless tenant namespaces (their backups conflict with nothing at ItemBlock level, so only
// the slots decide), and one with a volume.
const estate = () => [
  ns("team-a"),
  ns("team-b"),
  ns("team-c"),
  pod("team-a", "web"),
  pod("team-b", "web"),
  pod("team-c", "db", { claims: ["data"] }),
  ...boundClaim("team-c", "data"),
];

const run = (policy: Policy, ...backups: object[]) => plan(cluster(...estate(), ...backups), policy, NOW);
const started = (p: Plan) => p.promotions.map((x) => x.backup);
const entry = (p: Plan, name: string) => p.queue.find((q) => q.backup === name);

/** Tenant A: `inFlight` backups running, then `queued` waiting, all older than anything else. */
const burst = (inFlight: number, queued: number) => [
  ...Array.from({ length: inFlight }, (_, i) => nab(`a-run-${i}`, "team-a", { phase: "InProgress", created: at(0) })),
  ...Array.from({ length: queued }, (_, i) => nab(`a-${String(i).padStart(3, "0")}`, "team-a", { created: at(1) })),
];

describe("a backup's tenant (docs/rules.md: Tenants)", () => {
  it.each<{ name: string; tenants: object | undefined; annotations: Record<string, string>; labels: Record<string, string>; expected: string | undefined }>([
    { name: "OADP's origin-namespace annotation names it", tenants: {}, annotations: { [ORIGIN_NAMESPACE]: "team-a" }, labels: {}, expected: "team-a" },
    {
      name: "else the configured label",
      tenants: { label: "example.com/tenant" },
      annotations: {},
      labels: { "example.com/tenant": "blue" },
      expected: "blue",
    },
    {
      name: "the annotation wins over the label",
      tenants: { label: "example.com/tenant" },
      annotations: { [ORIGIN_NAMESPACE]: "team-a" },
      labels: { "example.com/tenant": "blue" },
      expected: "team-a",
    },
    { name: "a label that is not configured names no tenant", tenants: {}, annotations: {}, labels: { "example.com/tenant": "blue" }, expected: undefined },
    { name: "neither: no tenant (an administrator's backup)", tenants: { label: "example.com/tenant" }, annotations: {}, labels: {}, expected: undefined },
    {
      name: "without a tenants section nothing is a tenant's",
      tenants: undefined,
      annotations: { [ORIGIN_NAMESPACE]: "team-a" },
      labels: {},
      expected: undefined,
    },
  ])("$name", ({ tenants, annotations, labels, expected }) => {
    const policy = policySchema.parse(tenants ? { tenants } : {});
    const b = cluster(backup("x", {}, { annotations, labels })).backups[0] as BackupInfo;
    expect(tenantOf(b, policy)).toBe(expected);
  });
});

describe("a backup's completion time, the turn of its tenant (Velero's status.completionTimestamp)", () => {
  it.each<{ name: string; completionTimestamp: unknown; kept: string | undefined }>([
    { name: "an RFC 3339 time is kept", completionTimestamp: "2026-01-01T10:03:00Z", kept: "2026-01-01T10:03:00Z" },
    { name: "none: none", completionTimestamp: undefined, kept: undefined },
    { name: "a time that does not parse is dropped; the backup is still read", completionTimestamp: "yesterday", kept: undefined },
    { name: "a number is dropped; the backup is still read", completionTimestamp: 1767261780, kept: undefined },
  ])("$name", ({ completionTimestamp, kept }) => {
    const raw = backup("b", {}, { phase: "Completed" });
    const t = trim("Backup", { ...raw, status: { ...raw.status, completionTimestamp } });
    if (!t.ok) throw t.error;
    expect(t.value.phase).toBe("Completed");
    expect(t.value.completionTimestamp).toBe(kept);
  });
});

describe("fair sharing of free slots (docs/rules.md: Tenants)", () => {
  it.each<{ name: string; policy: Policy; backups: object[]; expectStarted: string[]; expectFirst?: string }>([
    {
      name: "without tenants (today): tenant A's 200 queued go first, B's one waits behind all of them",
      policy: { ...noAging, maxConcurrentBackups: 5 },
      backups: [...burst(4, 200), nab("b-0", "team-b", { created: at(2) })],
      expectStarted: ["a-000"],
      expectFirst: "a-001",
    },
    {
      name: "tenant A with 200 queued and 4 in flight, tenant B with 1: B gets the next free slot",
      policy: withTenants({}, { maxConcurrentBackups: 5 }),
      backups: [...burst(4, 200), nab("b-0", "team-b", { created: at(2) })],
      expectStarted: ["b-0"],
      expectFirst: "a-000",
    },
    {
      name: "an administrator's all-namespace backup behind a burst is next in line, and nothing it conflicts with overtakes it",
      policy: withTenants({}, { maxConcurrentBackups: 5, conflictLevel: "Namespace" }),
      backups: [...burst(4, 50), backup("admin-all", {}, { created: at(3) })],
      expectStarted: [],
      expectFirst: "admin-all",
    },
    {
      name: "a tenant at its limit waits though slots are free; another tenant starts",
      policy: withTenants({ maxInFlightPerTenant: 4 }, { maxConcurrentBackups: 10 }),
      backups: [...burst(4, 3), nab("b-0", "team-b", { created: at(2) })],
      expectStarted: ["b-0"],
      expectFirst: "a-000",
    },
    {
      name: "weights share the slots: A (weight 2) gets two for B's one",
      policy: withTenants({ weights: { "team-a": 2 } }, { maxConcurrentBackups: 3 }),
      backups: [...burst(0, 6), ...Array.from({ length: 6 }, (_, i) => nab(`b-${i}`, "team-b", { created: at(2) }))],
      expectStarted: ["a-000", "b-0", "a-001"],
      expectFirst: "a-002",
    },
    {
      name: "the untenanted class has its own weight",
      policy: withTenants({ untenantedWeight: 3 }, { maxConcurrentBackups: 4 }),
      backups: [...burst(0, 4), ...Array.from({ length: 4 }, (_, i) => backup(`admin-${i}`, { includedNamespaces: ["team-b"] }, { created: at(2) }))],
      expectStarted: ["a-000", "admin-0", "admin-1", "admin-2"],
      expectFirst: "a-001",
    },
    {
      name: "one slot: when it frees, the tenant whose backup just finished waits behind the other (its turn is that finish)",
      policy: withTenants({}, { maxConcurrentBackups: 1 }),
      backups: [nab("a-done", "team-a", { phase: "Completed", created: at(0), finished: at(3) }), ...burst(0, 5), nab("b-0", "team-b", { created: at(2) })],
      expectStarted: ["b-0"],
      expectFirst: "a-000",
    },
    {
      name: "control: the same queue with no completion time on record: the older backup goes first, as without memory",
      policy: withTenants({}, { maxConcurrentBackups: 1 }),
      backups: [nab("a-done", "team-a", { phase: "Completed", created: at(0) }), ...burst(0, 5), nab("b-0", "team-b", { created: at(2) })],
      expectStarted: ["a-000"],
      expectFirst: "b-0",
    },
    {
      name: "with aging, a backup ages from its turn across classes: the just-served tenant's old backup does not out-age the other",
      policy: withTenants({}, { maxConcurrentBackups: 1, priorities: { agingSeconds: 600 } }),
      backups: [nab("a-done", "team-a", { phase: "Completed", created: at(0), finished: at(100) }), ...burst(0, 5), nab("b-0", "team-b", { created: at(50) })],
      expectStarted: ["b-0"],
      expectFirst: "a-000",
    },
    {
      name: "a class-mate created after X does not move X's turn (it overtook X): X keeps its place",
      policy: withTenants({}, { maxConcurrentBackups: 1 }),
      backups: [...burst(0, 1), nab("a-late", "team-a", { phase: "Completed", created: at(5), finished: at(9) }), nab("b-0", "team-b", { created: at(2) })],
      expectStarted: ["a-000"],
      expectFirst: "b-0",
    },
    {
      name: "within a tenant the order is today's: priority first",
      policy: withTenants({}, { maxConcurrentBackups: 5 }),
      backups: [...burst(4, 3), nab("a-urgent", "team-a", { created: at(5), labels: { "backup-gate.io/priority": "50" } })],
      expectStarted: ["a-urgent"],
      expectFirst: "a-000",
    },
  ])("$name", ({ policy, backups, expectStarted, expectFirst }) => {
    const p = run(policy, ...backups);
    expect(started(p)).toEqual(expectStarted);
    if (expectFirst) expect(p.queue[0]?.backup).toBe(expectFirst);
  });

  it("with no tenants section the plan is today's, byte for byte (the same JSON)", () => {
    const backups = [...burst(2, 5), nab("b-0", "team-b", { created: at(2) }), backup("admin", {}, { created: at(3) })];
    const plain = run({ ...DEFAULT_POLICY, maxConcurrentBackups: 3 }, ...backups);
    expect(JSON.stringify(plain.queue)).not.toContain("tenant");
    const again = run(policySchema.parse({ maxConcurrentBackups: 3 }), ...backups);
    expect(JSON.stringify(again)).toBe(JSON.stringify(plain));
  });
});

describe("tenant-safe reasons (docs/rules.md: Tenant-safe visibility)", () => {
  const policy = withTenants({ maxInFlightPerTenant: 1 }, { maxConcurrentBackups: 2 });
  it.each<{ name: string; backups: object[]; of: string; admin: RegExp; tenant: string }>([
    {
      name: "waits for a free slot: counts only",
      backups: [
        nab("b-run", "team-b", { phase: "InProgress", created: at(0) }),
        nab("c-run", "team-c", { phase: "InProgress", created: at(0) }),
        nab("a-0", "team-a", { created: at(1) }),
      ],
      of: "a-0",
      admin: /waits for a free slot: 2 of 2/,
      tenant: "waits for a free slot: 0 backups ahead",
    },
    {
      name: "waits behind a cluster-wide backup, unnamed",
      backups: [backup("admin-all", {}, { phase: "InProgress", created: at(0) }), nab("c-0", "team-c", { created: at(1) })],
      of: "c-0",
      admin: /waits behind admin-all \(InProgress\)/,
      tenant: "waits behind a cluster-wide backup",
    },
    {
      name: "waits for its tenant's limit",
      backups: [nab("a-run", "team-a", { phase: "InProgress", created: at(0) }), nab("a-0", "team-a", { created: at(1) })],
      of: "a-0",
      admin: /waits for its tenant's limit: tenant team-a has 1 of 1/,
      tenant: "waits for its tenant's limit: 1 of 1 backups in flight",
    },
  ])("$name", ({ backups, of, admin, tenant }) => {
    const q = entry(run(policy, ...backups), of);
    expect(q?.reason).toMatch(admin);
    expect(q?.tenantReason).toBe(tenant);
  });

  it("a tenant's superseded backup shows the tenant-safe reason in status; the annotation and Event keep full detail", () => {
    const replace = withTenants({}, { serialWorkloads: "Replace" });
    const runs = [
      nab("a-run-1", "team-a", { created: at(1), labels: { "velero.io/schedule-name": "nightly" } }),
      nab("a-run-2", "team-a", { created: at(2), labels: { "velero.io/schedule-name": "nightly" } }),
    ];
    const snapshot = cluster(...estate(), ...runs);
    const p = plan(snapshot, replace, NOW);
    const w = planWrites(p, snapshot.backups, { policy: replace, now: NOW, identity: "gate-0", sealer: testSealer }).writes.find((x) => x.kind === "supersede");
    expect(w?.status?.failureReason).toBe("superseded by a newer run of its schedule (serialWorkloads: Replace)");
    expect(w?.annotations?.["backup-gate.io/reason"]).toContain("a-run-2");
    expect(w?.event?.message).toContain("a-run-2");
  });
});

// --- Invariants over generated estates -------------------------------------------------
//
// Three tenants, each in its own namespace (a pod with a volume, so their backups can conflict),
// a lone tenant in a stateless namespace, and administrators' backups of one namespace or all.

const TENANTS = ["ns-t0", "ns-t1", "ns-t2"] as const;
const LONE = "ns-lone";
const fixedEstate = [
  ...TENANTS.flatMap((t) => [ns(t), pod(t, "db", { claims: ["data"] }), ...boundClaim(t, "data"), pod(t, "web")]),
  ns(LONE),
  pod(LONE, "web"),
];

interface GenBackup {
  readonly tenant: number | undefined; // index into TENANTS; undefined: an administrator's
  readonly phase: string;
  readonly minute: number;
  readonly manifestsOnly: boolean;
  readonly allNamespaces: boolean;
  readonly priority: number | undefined;
  readonly schedule: boolean;
  /** Minutes after its creation a finished backup completed. */
  readonly ranFor: number;
}

const genBackup: fc.Arbitrary<GenBackup> = fc.record({
  tenant: fc.option(fc.integer({ min: 0, max: TENANTS.length - 1 }), { nil: undefined, freq: 5 }),
  phase: fc.constantFrom("", "New", "Queued", "Queued", "ReadyToStart", "InProgress", "Completed"),
  minute: fc.integer({ min: 0, max: 100 }),
  manifestsOnly: fc.boolean(),
  allNamespaces: fc.boolean(),
  priority: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined, freq: 3 }),
  schedule: fc.boolean(),
  ranFor: fc.integer({ min: 0, max: 60 }),
});

const genPolicy: fc.Arbitrary<Policy> = fc
  .record({
    conflictLevel: fc.constantFrom("Namespace", "ItemBlock"),
    maxConcurrentBackups: fc.integer({ min: 1, max: 6 }),
    serialWorkloads: fc.constantFrom("Allow", "Replace"),
    agingSeconds: fc.constantFrom(0, 600),
    maxInFlightPerTenant: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
    weights: fc.tuple(...TENANTS.map(() => fc.integer({ min: 1, max: 3 }))),
    untenantedWeight: fc.integer({ min: 1, max: 3 }),
    nonAdminEvents: fc.boolean(),
  })
  .map(({ agingSeconds, maxInFlightPerTenant, weights, untenantedWeight, nonAdminEvents, ...p }) =>
    policySchema.parse({
      ...p,
      priorities: { agingSeconds },
      tenants: {
        ...(maxInFlightPerTenant ? { maxInFlightPerTenant } : {}),
        weights: Object.fromEntries(TENANTS.map((t, i) => [t, weights[i]])),
        untenantedWeight,
        nonAdminEvents,
      },
    }),
  );

/** Names carry their class, so a leaked name is easy to tell: `bk-ns-t1-4`, `bk-admin-2`. */
function backupOf(g: GenBackup, i: number): object {
  const tenant = g.tenant === undefined ? undefined : TENANTS[g.tenant];
  const name = `bk-${tenant ?? "admin"}-${i}`;
  const labels: Record<string, string> = {};
  if (g.priority !== undefined) labels["backup-gate.io/priority"] = String(g.priority);
  if (g.schedule) labels["velero.io/schedule-name"] = `nightly-${tenant ?? "admin"}`;
  const spec = {
    ...(tenant ? { includedNamespaces: [tenant] } : g.allNamespaces ? {} : { includedNamespaces: [TENANTS[i % TENANTS.length]] }),
    ...(g.manifestsOnly ? { snapshotVolumes: false } : {}),
  };
  const created = NOW - (101 - g.minute) * 60_000;
  return backup(name, spec, {
    ...(g.phase === "" ? {} : { phase: g.phase }),
    created: new Date(created).toISOString(),
    ...(g.phase === "Completed" ? { finished: new Date(Math.min(NOW, created + g.ranFor * 60_000)).toISOString() } : {}),
    labels,
    // OADP names the NonAdminBackup too (the Event target with tenants.nonAdminEvents).
    ...(tenant ? { annotations: { [ORIGIN_NAMESPACE]: tenant, [ORIGIN_NAME]: `nab-${i}` } } : {}),
  });
}

const estateOf = (gs: readonly GenBackup[], extra: object[] = []) => cluster(...fixedEstate, ...gs.map(backupOf), ...extra);
const genEstate = fc.array(genBackup, { minLength: 1, maxLength: 14 });

/** The fair order the plan uses, rebuilt from the exported steps (after supersession, as the plan). */
function fairOf(backups: readonly BackupInfo[], policy: Policy, p: Plan): BackupInfo[] {
  const superseded = new Set(p.supersessions.map((s) => s.backup));
  const queued = backups.filter((b) => QUEUED_PHASES.has(b.phase) && !superseded.has(b.name));
  const times = new Timestamps();
  const today = orderQueue(queued, policy, NOW, times);
  return fairOrder(today, backups, policy, NOW, times).order.map((o) => o.backup);
}

describe("tenant invariants (properties)", () => {
  it("never starts a backup next to one it conflicts with (no overlap)", () => {
    fc.assert(
      fc.property(genEstate, genPolicy, (gs, policy) => {
        const p = plan(estateOf(gs), policy, NOW);
        const running = [...p.inFlight, ...started(p)];
        const scoped = (name: string) => ({ name, phase: "", scope: p.scopes.get(name)! });
        for (const a of started(p)) {
          for (const b of running) if (a !== b) expect(conflictBetween(scoped(a), scoped(b)), `${a} runs with ${b}`).toBeUndefined();
        }
      }),
      { numRuns: 300 },
    );
  });

  it("never exceeds a tenant's limit, nor the limit of slots", () => {
    fc.assert(
      fc.property(genEstate, genPolicy, (gs, policy) => {
        const snapshot = estateOf(gs);
        const p = plan(snapshot, policy, NOW);
        const tenantByName = new Map(snapshot.backups.map((b) => [b.name, tenantOf(b, policy)]));
        if (started(p).length > 0) expect(p.inFlight.length + started(p).length).toBeLessThanOrEqual(policy.maxConcurrentBackups);
        const cap = policy.tenants?.maxInFlightPerTenant;
        if (cap === undefined) return;
        for (const t of TENANTS) {
          const promoted = started(p).filter((n) => tenantByName.get(n) === t).length;
          const flying = p.inFlight.filter((n) => tenantByName.get(n) === t).length;
          if (promoted > 0) expect(flying + promoted, `tenant ${t}`).toBeLessThanOrEqual(cap);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("keeps today's order within each tenant, and protects a waiting backup from what conflicts with it behind (no overtaking)", () => {
    fc.assert(
      fc.property(genEstate, genPolicy, (gs, policy) => {
        const snapshot = estateOf(gs);
        const p = plan(snapshot, policy, NOW);
        const fair = fairOf(
          snapshot.backups.filter((b) => b.namespace === "velero"),
          policy,
          p,
        );
        const today = orderQueue(fair, policy, NOW).map((o) => o.backup.name);
        for (const t of [...TENANTS, undefined]) {
          const mine = (name: string) =>
            tenantOf(
              fair.find((b) => b.name === name)!,
              policy,
            ) === t;
          expect(fair.map((b) => b.name).filter(mine), `class ${t ?? "(none)"}`).toEqual(today.filter(mine));
        }
        // The queue shows the fair order.
        const placeOf = new Map(fair.map((b, i) => [b.name, i]));
        const positions = p.queue.map((q) => placeOf.get(q.backup)!);
        expect(positions).toEqual([...positions].sort((a, b) => a - b));
        // A started backup conflicts with no backup left waiting ahead of it.
        const scoped = (name: string) => ({ name, phase: "", scope: p.scopes.get(name)! });
        for (const s of started(p)) {
          for (const q of p.queue) {
            if (placeOf.get(q.backup)! < placeOf.get(s)!) expect(conflictBetween(scoped(s), scoped(q.backup)), `${s} overtook ${q.backup}`).toBeUndefined();
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("a lone waiting tenant's backup is at most one per other class behind the head, and starts when that many slots are free", () => {
    const lone = backup("bk-lone", { includedNamespaces: [LONE] }, { created: new Date(NOW).toISOString(), annotations: { [ORIGIN_NAMESPACE]: LONE } });
    fc.assert(
      fc.property(genEstate, genPolicy, (gs, policy0) => {
        // ItemBlock level: its stateless namespace conflicts with nothing (at Namespace level an all-namespace backup would).
        const policy = { ...policy0, conflictLevel: "ItemBlock" as const };
        const snapshot = estateOf(gs, [lone]);
        const p = plan(snapshot, policy, NOW);
        const fair = fairOf(snapshot.backups, policy, p).map((b) => b.name);
        const classes = TENANTS.length + 2; // three tenants, the lone one, the untenanted class
        expect(fair.indexOf("bk-lone")).toBeLessThan(classes);
        const free = policy.maxConcurrentBackups - p.inFlight.length;
        if (free >= classes) expect(started(p)).toContain("bk-lone");
      }),
      { numRuns: 300 },
    );
  });

  it("aging still wins: a class head that has out-aged every other queued backup comes first", () => {
    fc.assert(
      fc.property(genEstate, genPolicy, fc.integer({ min: 0, max: TENANTS.length - 1 }), (gs, policy0, t) => {
        const policy = policySchema.parse({ ...policy0, priorities: { agingSeconds: 600 } });
        const tenant = TENANTS[t] as string;
        // Created a day ago: 144 aging steps above any generated priority. Its tenant has nothing in flight.
        const old = backup(
          "bk-old",
          { includedNamespaces: [tenant] },
          { created: new Date(NOW - 86_400_000).toISOString(), annotations: { [ORIGIN_NAMESPACE]: tenant } },
        );
        const others = gs.filter((g) => !(g.tenant === t && IN_FLIGHT_PHASES.has(g.phase)));
        const snapshot = estateOf(others, [old]);
        const p = plan(snapshot, policy, NOW);
        expect(fairOf(snapshot.backups, policy, p)[0]?.name).toBe("bk-old");
      }),
      { numRuns: 200 },
    );
  });
});

describe("tenant-safe visibility (property)", () => {
  /** Every name a tenant must not read in its backup's texts: other classes' backups, other tenants' namespaces. */
  function leaks(snapshot: ReturnType<typeof estateOf>, policy: Policy, textsOf: (p: Plan, b: BackupInfo) => string[]): string[] {
    const p = plan(snapshot, policy, NOW);
    const found: string[] = [];
    for (const b of snapshot.backups) {
      const mine = tenantOf(b, policy);
      if (mine === undefined) continue;
      const foreign = [...snapshot.backups.filter((x) => tenantOf(x, policy) !== mine).map((x) => x.name), ...[...TENANTS, LONE].filter((ns) => ns !== mine)];
      for (const text of textsOf(p, b)) for (const name of foreign) if (text.includes(name)) found.push(`${b.name}: "${text}" names ${name}`);
    }
    return found;
  }

  /** What a tenant can read of its backup: the status the gate writes (OADP copies it), the Event on its NonAdminBackup, and the plan's tenant reason. */
  const tenantTexts = (policy: Policy, snapshot: ReturnType<typeof estateOf>) => (p: Plan, b: BackupInfo) => {
    const writes = planWrites(p, snapshot.backups, { policy, now: NOW, identity: "gate-0", sealer: testSealer }).writes;
    return [
      ...writes.filter((w) => w.backup === b.name).flatMap(tenantReadable),
      ...p.queue.filter((q) => q.backup === b.name).flatMap((q) => q.tenantReason ?? []),
      ...p.supersessions.filter((s) => s.backup === b.name).flatMap((s) => s.tenantReason ?? []),
    ];
  };

  it("no tenant-readable text of one tenant's backup names another tenant's backup or namespace", () => {
    fc.assert(
      fc.property(genEstate, genPolicy, (gs, policy) => {
        const snapshot = estateOf(gs);
        expect(leaks(snapshot, policy, tenantTexts(policy, snapshot))).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it("the check finds a planted name (positive control): the administrators' reasons do name them", () => {
    const adminTexts = (p: Plan, b: BackupInfo) => p.queue.filter((q) => q.backup === b.name).map((q) => q.reason);
    const result = fc.check(
      fc.property(genEstate, genPolicy, (gs, policy) => leaks(estateOf(gs), policy, adminTexts).length === 0),
      { numRuns: 300 },
    );
    expect(result.failed).toBe(true);
    // And one planted by hand: a status text that names an administrator's backup.
    const snapshot = cluster(...fixedEstate, backup("bk-admin-9", {}, { phase: "InProgress", created: at(0) }), nab("bk-ns-t0-1", "ns-t0", { created: at(1) }));
    const policy = withTenants({});
    expect(leaks(snapshot, policy, (p, b) => [...tenantTexts(policy, snapshot)(p, b), "waits behind bk-admin-9"])).toEqual([
      'bk-ns-t0-1: "waits behind bk-admin-9" names bk-admin-9',
    ]);
  });
});

describe("Events on the NonAdminBackup (tenants.nonAdminEvents)", () => {
  const events = { nonAdminEvents: true };
  /** A tenant's backup as OADP makes it, naming its NonAdminBackup. */
  const nabOf = (name: string, tenant: string, o: { phase?: string; created: string; labels?: Record<string, string> }) =>
    backup(name, { includedNamespaces: [tenant] }, { ...o, annotations: { [ORIGIN_NAMESPACE]: tenant, [ORIGIN_NAME]: `my-${name}` } });
  const writesOf = (policy: Policy, backups: object[]) => {
    const snapshot = cluster(...estate(), ...backups);
    return planWrites(plan(snapshot, policy, NOW), snapshot.backups, { policy, now: NOW, identity: "gate-0", sealer: testSealer }).writes;
  };
  const admin = () => backup("admin-all", {}, { phase: "InProgress", created: at(0) });
  const schedule = { "velero.io/schedule-name": "nightly" };

  it.each<{ name: string; tenants: object; over?: object; backups: () => object[]; of: string; kind: string; event?: object; adminNames?: string }>([
    {
      name: "queued: the tenant-safe reason, on the NonAdminBackup in the tenant's namespace",
      tenants: events,
      over: { maxConcurrentBackups: 1 },
      backups: () => [admin(), nabOf("c-0", "team-c", { created: at(1) })],
      of: "c-0",
      kind: "enqueue",
      event: {
        target: { namespace: "team-c", name: "my-c-0" },
        type: "Normal",
        reason: "Queued",
        message: "queued at position 1: waits behind a cluster-wide backup",
      },
      adminNames: "admin-all",
    },
    {
      name: "started",
      tenants: events,
      backups: () => [nabOf("a-0", "team-a", { created: at(1) })],
      of: "a-0",
      kind: "promote",
      event: {
        target: { namespace: "team-a", name: "my-a-0" },
        type: "Normal",
        reason: "Started",
        message: "ReadyToStart after waiting 7140s: conflicts with nothing in flight or ahead of it, and a slot is free",
      },
    },
    {
      name: "superseded",
      tenants: events,
      over: { serialWorkloads: "Replace" },
      backups: () => [nabOf("a-1", "team-a", { created: at(1), labels: schedule }), nabOf("a-2", "team-a", { created: at(2), labels: schedule })],
      of: "a-1",
      kind: "supersede",
      event: {
        target: { namespace: "team-a", name: "my-a-1" },
        type: "Warning",
        reason: "Superseded",
        message: "superseded by a newer run of its schedule (serialWorkloads: Replace)",
      },
      adminNames: "a-2",
    },
    {
      name: "failed past its window's max wait (onMaxWait: Fail)",
      tenants: events,
      over: {
        windows: [{ name: "nights", selector: { namespaces: ["team-a"] }, allow: [{ start: "01:00", end: "02:00" }], maxWaitSeconds: 60, onMaxWait: "Fail" }],
      },
      backups: () => [nabOf("a-0", "team-a", { created: at(1) })],
      of: "a-0",
      kind: "missWindow",
      event: {
        target: { namespace: "team-a", name: "my-a-0" },
        type: "Warning",
        reason: "WindowMissed",
        message: "waited past 60s (maxWaitSeconds) outside its window 01:00-02:00 (UTC): not started",
      },
      adminNames: "nights",
    },
    {
      name: "taken back",
      tenants: events,
      backups: () => [admin(), nabOf("c-0", "team-c", { phase: "ReadyToStart", created: at(1) })],
      of: "c-0",
      kind: "takeBack",
      event: {
        target: { namespace: "team-c", name: "my-c-0" },
        type: "Warning",
        reason: "TakenBack",
        message: "taken back to the queue: it overlaps another backup in flight",
      },
      adminNames: "admin-all",
    },
    {
      name: "off by default: no Event on the NonAdminBackup",
      tenants: {},
      backups: () => [nabOf("a-0", "team-a", { created: at(1) })],
      of: "a-0",
      kind: "promote",
    },
    {
      name: "a backup OADP did not name a NonAdminBackup for (label tenant): none",
      tenants: { ...events, label: "tenant" },
      backups: () => [backup("a-0", { includedNamespaces: ["team-a"] }, { created: at(1), labels: { tenant: "team-a" } })],
      of: "a-0",
      kind: "promote",
    },
  ])("$name", ({ tenants, over, backups, of, kind, event, adminNames }) => {
    const w = writesOf(withTenants(tenants, over), backups()).find((x) => x.backup === of && x.kind === kind);
    expect(w).toBeDefined();
    expect(w?.tenantEvent).toEqual(event);
    // The Event on the Velero Backup keeps full detail (positive control for the leak check).
    if (adminNames) expect(w?.event?.message).toContain(adminNames);
  });

  it("position updates post no Event, on either object", () => {
    const policy = withTenants(events, { maxConcurrentBackups: 1 });
    const queued = (name: string, minute: number, position: number) => ({
      ...nabOf(name, "team-a", { phase: "Queued", created: at(minute) }),
      status: { phase: "Queued", queuePosition: position },
    });
    const writes = writesOf(policy, [nabOf("a-run", "team-a", { phase: "Completed", created: at(0) }), queued("a-1", 1, 2), queued("a-2", 2, 3)]);
    expect(writes.filter((w) => w.kind === "position").length).toBeGreaterThan(0);
    expect(writes.filter((w) => w.kind === "position" && (w.event || w.tenantEvent))).toEqual([]);
  });
});

describe("re-planning with tenants", () => {
  it("a plan built on the last one after the cluster moved equals the plan made from nothing", () => {
    const made: Record<PlanMaking, number> = { afresh: 0, incremental: 0 };
    fc.assert(
      fc.property(genEstate, genPolicy, fc.integer({ min: 0, max: TENANTS.length - 1 }), fc.boolean(), (gs, policy, t, remove) => {
        const snapshot = estateOf(gs);
        const cache = new ScopeCache();
        const first = plan(snapshot, policy, NOW, { cache });
        const tenant = TENANTS[t] as string;
        // A pod starts or goes in one tenant's namespace: its backups' claims move.
        if (remove) snapshot.view.deletePod(tenant, "db");
        else {
          const extra = trim("Pod", pod(tenant, "extra", { claims: ["more"] }));
          if (!extra.ok) throw extra.error;
          snapshot.view.setPod(extra.value);
        }
        const again = plan(snapshot, policy, NOW, { cache, previous: first });
        made[howMade(again) as PlanMaking]++;
        expect(JSON.stringify(again)).toBe(JSON.stringify(plan(snapshot, policy, NOW)));
      }),
      { numRuns: 200 },
    );
    expect(made.incremental).toBeGreaterThan(0);
  });
});

// --- No starvation under a flood ----------------------------------------------------------
//
// Rounds of ten minutes (the aging period) at Namespace level. X, an administrator's backup of
// every namespace, conflicts with everything; tenant ns-t0 floods the queue every round. X's
// class holds nothing else, so X ranks 0; a newcomer ranks at least 0 and ties go by today's
// order, where X (older, aged at least as much) comes first. Only the backups queued at the
// start (finitely many) can be ahead of X, each first of them starts within 2·maxDuration+1
// rounds (nothing that conflicts with it may start meanwhile, and the first free slot is its),
// and class-mates arriving ahead of one of them by priority stop doing so after `spread` rounds.

describe("no starvation with tenants (property)", () => {
  it("an all-namespace backup starts within a bound while a tenant floods the queue", () => {
    const STEP = 600_000;
    const sim = fc.record({
      initial: fc.array(
        genBackup.filter((g) => g.tenant !== undefined),
        { maxLength: 8 },
      ),
      flood: fc.integer({ min: 1, max: 3 }),
      durations: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 4 }),
      policy: genPolicy.map((p) => policySchema.parse({ ...p, conflictLevel: "Namespace", priorities: { agingSeconds: STEP / 1000 } })),
    });
    fc.assert(
      fc.property(sim, ({ initial, flood, durations, policy }) => {
        const x = backup("bk-admin-x", {}, { created: new Date(NOW - 60_000).toISOString() });
        const snapshot = estateOf(initial, [x]);
        const view = snapshot.view;
        let backups: BackupInfo[] = snapshot.backups;
        const priorities = [10, ...initial.map((g) => g.priority ?? 10)];
        const spread = Math.max(...priorities) - Math.min(...priorities);
        const queued = backups.filter((b) => QUEUED_PHASES.has(b.phase)).length;
        const maxDuration = Math.max(...durations);
        const bound = spread + (queued + 1) * (2 * maxDuration + 1);
        const endsAt = new Map<string, number>();
        let started = 0;
        backups.filter((b) => IN_FLIGHT_PHASES.has(b.phase)).forEach((b) => endsAt.set(b.name, durations[started++ % durations.length] as number));
        const cache = new ScopeCache();
        for (let round = 0; round <= bound; round++) {
          const now = NOW + round * STEP;
          backups = backups.map((b) => (endsAt.get(b.name) === round ? { ...b, phase: "Completed", completionTimestamp: new Date(now).toISOString() } : b));
          const fresh = Array.from({ length: flood }, (_, i) =>
            backup(
              `bk-ns-t0-r${round}-${i}`,
              { includedNamespaces: ["ns-t0"] },
              { created: new Date(now).toISOString(), annotations: { [ORIGIN_NAMESPACE]: "ns-t0" } },
            ),
          );
          backups = [...backups, ...cluster(...fresh).backups];
          const p = plan({ view, backups }, policy, now, { cache });
          const promoted = new Set(p.promotions.map((q) => q.backup));
          if (promoted.has("bk-admin-x")) return;
          backups = backups.map((b) => {
            if (!promoted.has(b.name)) return b;
            endsAt.set(b.name, round + (durations[started++ % durations.length] as number));
            return { ...b, phase: "InProgress" };
          });
        }
        expect.fail(`bk-admin-x has not started after ${bound} rounds`);
      }),
      { numRuns: 60 },
    );
  });
});

describe("a bad tenants section is refused, naming the field (the gate then keeps its last good policy)", () => {
  it.each([
    { case: "a zero per-tenant limit", tenants: { maxInFlightPerTenant: 0 }, field: "tenants.maxInFlightPerTenant" },
    { case: "a fractional weight", tenants: { weights: { a: 1.5 } }, field: "tenants.weights.a" },
    { case: "a zero default weight", tenants: { defaultWeight: 0 }, field: "tenants.defaultWeight" },
    { case: "an empty label", tenants: { label: "" }, field: "tenants.label" },
    { case: "an unknown key (a typo)", tenants: { maxInflightPerTenant: 2 }, field: "tenants" },
    { case: "a list instead of a section", tenants: ["a"], field: "tenants" },
  ])("$case", ({ tenants, field }) => {
    const r = parsePolicy({ tenants });
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : r.error).toMatch(new RegExp(`^${field.replace(/\./g, "\\.")}: `));
  });

  it("positive control: a good section parses", () => {
    expect(parsePolicy({ tenants: { maxInFlightPerTenant: 2, weights: { a: 3 } } }).ok).toBe(true);
  });
});
