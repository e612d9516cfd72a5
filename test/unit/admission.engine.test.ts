import { describe, expect, it } from "vitest";
import { AdmissionEngine } from "../../src/admission/engine.js";
import { FakeClusterCache } from "../support/fakes/clusterCache.js";
import { StaticPolicySource } from "../support/fakes/policySource.js";
import { decideAdmission } from "../../src/core/decision/admission.js";
import type { BackupInfo } from "../../src/core/model.js";
import { DEFAULT_POLICY, policySchema, type Policy } from "../../src/core/policy.js";
import { backup, boundClaim, ns, pod } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// The admission engine judges only the candidate against an index of the queue; the core's
// decideAdmission runs a full plan. With the index built from the current cache the two must
// give the same decision, field for field. Scenarios: a fixed table, then seeded random ones.

const NOW = Date.parse("2026-01-01T12:00:00Z");
const at = (minute: number) => new Date(Date.parse("2026-01-01T11:00:00Z") + minute * 60_000).toISOString();

const estate = () => [
  ns("shop"),
  ns("web"),
  ns("data"),
  ns("strict", { annotations: { "backup-gate.io/conflict-level": "Namespace" } }),
  pod("shop", "cart-0", { claims: ["cart-data"], labels: { app: "cart" } }),
  ...boundClaim("shop", "cart-data"),
  pod("shop", "orders-0", { claims: ["orders-data"], labels: { app: "orders" } }),
  ...boundClaim("shop", "orders-data"),
  pod("web", "nginx", { labels: { app: "web" } }),
  pod("data", "pg-0", { claims: ["pg"], labels: { app: "pg" }, annotations: { "pre.hook.backup.velero.io/command": '["/bin/sync"]' } }),
  ...boundClaim("data", "pg"),
  pod("strict", "s-0", { claims: ["s-data"] }),
  ...boundClaim("strict", "s-data"),
];

async function both(policy: Policy, backups: object[], candidateRaw: object) {
  const snap = cluster(...estate(), ...backups);
  const candidate = cluster(candidateRaw).backups[0] as BackupInfo;
  const expected = decideAdmission(snap, policy, NOW, candidate);
  const engine = new AdmissionEngine({ cache: new FakeClusterCache(snap.view, snap.backups), policy: new StaticPolicySource(policy), now: () => NOW });
  await engine.start();
  const actual = engine.decide(candidate, NOW);
  engine.stop();
  return { expected, actual };
}

const sched = (name: string) => ({ labels: { "velero.io/schedule-name": name } });
const app = (name: string, appLabel: string, o: Parameters<typeof backup>[2] = {}, extra: object = {}) =>
  backup(name, { includedNamespaces: ["shop"], labelSelector: { matchLabels: { app: appLabel } }, ...extra }, o);
const noAging: Policy = { ...DEFAULT_POLICY, priorities: { ...DEFAULT_POLICY.priorities, agingSeconds: 0 } };

describe("admission engine = core decideAdmission", () => {
  it.each<{ name: string; policy: Policy; backups: object[]; candidate: object }>([
    { name: "nothing else: admit", policy: noAging, backups: [], candidate: app("cart", "cart", { created: "" }) },
    {
      name: "waits behind an in-flight all-namespace backup",
      policy: noAging,
      backups: [backup("all", {}, { phase: "InProgress", created: at(0) })],
      candidate: app("cart", "cart", { created: "" }),
    },
    {
      name: "waits behind a queued backup ahead of it",
      policy: noAging,
      backups: [
        backup("q", { includedNamespaces: ["shop"] }, { phase: "Queued", created: at(0) }),
        backup("x", { includedNamespaces: ["web"] }, { phase: "InProgress", created: at(0) }),
      ],
      candidate: app("cart", "cart", { created: "" }),
    },
    {
      name: "a queued backup of lower priority is not ahead",
      policy: noAging,
      backups: [backup("low", { includedNamespaces: ["shop"] }, { phase: "Queued", created: at(0), labels: { "backup-gate.io/priority": "-5" } })],
      candidate: app("cart", "cart", { created: "" }),
    },
    {
      name: "limit full: waits for a free slot",
      policy: { ...noAging, maxConcurrentBackups: 1 },
      backups: [backup("w", { includedNamespaces: ["web"] }, { phase: "InProgress", created: at(0) })],
      candidate: app("cart", "cart", { created: "" }),
    },
    {
      name: "promotions ahead take the free slots",
      policy: { ...noAging, maxConcurrentBackups: 2 },
      backups: [
        backup("w", { includedNamespaces: ["web"] }, { phase: "InProgress", created: at(0) }),
        backup("d", { includedNamespaces: ["data"] }, { phase: "Queued", created: at(1) }),
      ],
      candidate: app("cart", "cart", { created: "" }),
    },
    {
      name: "Forbid rejects a second run",
      policy: noAging,
      backups: [backup("h-1", { includedNamespaces: ["web"] }, { ...sched("h"), phase: "Queued", created: at(0) })],
      candidate: backup("h-2", { includedNamespaces: ["web"] }, sched("h")),
    },
    {
      name: "Allow queues the second run",
      policy: { ...noAging, serialWorkloads: "Allow" },
      backups: [backup("h-1", { includedNamespaces: ["web"] }, { ...sched("h"), phase: "InProgress", created: at(0) })],
      candidate: backup("h-2", { includedNamespaces: ["web"] }, sched("h")),
    },
    {
      name: "Replace supersedes the queued run",
      policy: { ...noAging, serialWorkloads: "Replace" },
      backups: [
        backup("h-1", { includedNamespaces: ["web"] }, { ...sched("h"), phase: "Queued", created: at(0) }),
        backup("h-0", { includedNamespaces: ["web"] }, { ...sched("h"), phase: "InProgress", created: at(-5) }),
      ],
      candidate: backup("h-2", { includedNamespaces: ["web"] }, sched("h")),
    },
    { name: "invalid spec is rejected", policy: noAging, backups: [], candidate: backup("bad", { includedNamespaces: ["*", "shop"] }) },
    {
      name: "Namespace level: shares a namespace",
      policy: { ...noAging, conflictLevel: "Namespace" },
      backups: [app("orders", "orders", { phase: "InProgress", created: at(0) })],
      candidate: app("cart", "cart", { created: "" }),
    },
    {
      name: "namespace annotated strict",
      policy: noAging,
      backups: [backup("s1", { includedNamespaces: ["strict"], snapshotVolumes: false }, { phase: "InProgress", created: at(0) })],
      candidate: backup("s2", { includedNamespaces: ["strict"], snapshotVolumes: false }),
    },
    {
      name: "hooks make a unit exclusive",
      policy: noAging,
      backups: [backup("d1", { includedNamespaces: ["data"], snapshotVolumes: false }, { phase: "InProgress", created: at(0) })],
      candidate: backup("d2", { includedNamespaces: ["data"], snapshotVolumes: false }),
    },
    {
      name: "a candidate outside Velero's namespace is not judged",
      policy: noAging,
      backups: [],
      candidate: { ...backup("elsewhere", { includedNamespaces: ["shop"] }), metadata: { namespace: "other", name: "elsewhere" } },
    },
    {
      name: "same name as an existing backup: the existing one is ignored",
      policy: noAging,
      backups: [backup("cart", { includedNamespaces: ["shop"] }, { phase: "InProgress", created: at(0) })],
      candidate: app("cart", "cart", { created: "" }),
    },
    {
      name: "tenants: a tenant at its limit waits though a slot is free (the plan's fair order and limit)",
      policy: policySchema.parse({ priorities: { agingSeconds: 0 }, tenants: { maxInFlightPerTenant: 1 } }),
      backups: [
        backup(
          "web-1",
          { includedNamespaces: ["web"] },
          { phase: "InProgress", created: at(0), annotations: { "openshift.io/oadp-nab-origin-namespace": "web" } },
        ),
      ],
      candidate: backup("web-2", { includedNamespaces: ["web"] }, { created: "", annotations: { "openshift.io/oadp-nab-origin-namespace": "web" } }),
    },
    {
      name: "windows: outside its window it waits for the window though a slot is free",
      policy: policySchema.parse({
        priorities: { agingSeconds: 0 },
        windows: [{ selector: { namespaces: ["shop"] }, allow: [{ start: "22:00", end: "05:00" }] }],
      }),
      backups: [],
      candidate: app("cart", "cart", { created: "" }),
    },
    {
      name: "windows: outside its window, the window first, then whom it would wait behind",
      policy: policySchema.parse({
        priorities: { agingSeconds: 0 },
        windows: [{ selector: { namespaces: ["shop"] }, allow: [{ start: "22:00", end: "05:00" }] }],
      }),
      backups: [backup("all", {}, { phase: "InProgress", created: at(0) })],
      candidate: app("cart", "cart", { created: "" }),
    },
    {
      name: "windows: a held backup ahead in queue order does not hold back a candidate free to start",
      policy: policySchema.parse({
        priorities: { agingSeconds: 0 },
        windows: [{ selector: { schedules: ["heavy"] }, allow: [{ start: "22:00", end: "05:00" }] }],
      }),
      backups: [backup("nightly", {}, { created: at(0), phase: "Queued", labels: { "velero.io/schedule-name": "heavy", "backup-gate.io/priority": "50" } })],
      candidate: app("cart", "cart", { created: "" }),
    },
    {
      name: "windows: a held candidate of high priority comes after the queued backups free to start",
      policy: policySchema.parse({
        priorities: { agingSeconds: 0 },
        windows: [{ selector: { schedules: ["heavy"] }, allow: [{ start: "22:00", end: "05:00" }] }],
      }),
      backups: [backup("all", {}, { phase: "InProgress", created: at(0) }), app("queued-cart", "cart", { created: at(1), phase: "Queued" })],
      candidate: backup(
        "nightly",
        { includedNamespaces: ["shop"] },
        { created: "", labels: { "velero.io/schedule-name": "heavy", "backup-gate.io/priority": "50" } },
      ),
    },
    {
      name: "windows: inside its window it starts",
      policy: policySchema.parse({
        priorities: { agingSeconds: 0 },
        windows: [{ selector: { namespaces: ["shop"] }, allow: [{ start: "11:00", end: "13:00" }] }],
      }),
      backups: [],
      candidate: app("cart", "cart", { created: "" }),
    },
    {
      name: "budgets: a backup held by a budget waits though a slot is free (the plan's budgets)",
      policy: policySchema.parse({ priorities: { agingSeconds: 0 }, budgets: { snapshotsPerStorageClass: { standard: 1 } } }),
      backups: [backup("pg", { includedNamespaces: ["data"] }, { phase: "InProgress", created: at(0) })],
      candidate: app("cart", "cart", { created: "" }),
    },
  ])("$name", async ({ name, policy, backups, candidate }) => {
    const { expected, actual } = await both(policy, backups, candidate);
    expect(actual).toEqual(expected);
    if (name.startsWith("budgets"))
      expect(expected.reasons).toEqual(["waits for budget snapshots of storage class standard: 1 of 1 backups in flight (budgets.snapshotsPerStorageClass)"]);
  });

  // Start windows at NOW (12:00 UTC): runs of h are held (one with a max wait it has passed),
  // runs of n are inside their window.
  const windows = [
    {
      selector: { schedules: ["h"], matchLabels: { "backup-gate.io/priority": "20" } },
      allow: [{ start: "22:00", end: "05:00" }],
      maxWaitSeconds: 1800,
      onMaxWait: "Fail",
    },
    { selector: { schedules: ["h"] }, allow: [{ start: "22:00", end: "05:00" }] },
    { selector: { schedules: ["n"] }, allow: [{ start: "11:00", end: "13:00" }] },
  ];
  it.each([
    { name: "", windows: undefined },
    { name: " with start windows", windows },
  ])("agrees on 300 random queues$name", async ({ windows }) => {
    let seed = 42;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const namespaces = [["shop"], ["web"], ["data"], ["strict"], ["shop", "data"], ["*"], []];
    const phases = ["", "New", "Queued", "Queued", "ReadyToStart", "InProgress", "Completed"];
    const spec = () => ({
      includedNamespaces: pick(namespaces),
      ...(rand() < 0.3 ? { labelSelector: { matchLabels: { app: pick(["cart", "orders", "pg"]) } } } : {}),
      ...(rand() < 0.3 ? { snapshotVolumes: false } : {}),
      ...(rand() < 0.15 ? { defaultVolumesToFsBackup: true } : {}),
    });
    const labels = (): Record<string, string> => ({
      ...(rand() < 0.3 ? { "velero.io/schedule-name": pick(["h", "n"]) } : {}),
      ...(rand() < 0.2 ? { "backup-gate.io/priority": String(pick([-1, 0, 5, 20])) } : {}),
    });
    const seen = new Map<string, number>();
    const count = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);
    for (let i = 0; i < 300; i++) {
      const policy = policySchema.parse({
        conflictLevel: pick(["ItemBlock", "ItemBlock", "Namespace"]),
        maxConcurrentBackups: pick([1, 2, 3, 4]),
        serialWorkloads: pick(["Allow", "Forbid", "Replace"]),
        priorities: { agingSeconds: pick([0, 600]) },
        ...(windows ? { windows } : {}),
      });
      const n = Math.floor(rand() * 8);
      const backups = Array.from({ length: n }, (_, k) =>
        backup(`b${k}`, spec(), {
          phase: pick(phases),
          created: at(-Math.floor(rand() * 90)),
          labels: labels(),
          annotations: rand() < 0.1 ? { "backup-gate.io/conflict-level": "Namespace" } : {},
        }),
      );
      const candidate = backup(`c${i}`, spec(), { created: "", labels: labels() });
      const { expected, actual } = await both(policy, backups, candidate);
      count(expected.verdict);
      if (expected.waitingFor.length > 0) count("waits-behind");
      if (expected.reasons[0]?.startsWith("waits for a free slot")) count("slot");
      if (expected.warnings.some((w) => w.includes("supersedes"))) count("supersedes");
      if (expected.reasons[0]?.startsWith("waits for its window")) count("window");
      expect(
        actual,
        `case ${i}: ${JSON.stringify({ policy: { l: policy.conflictLevel, m: policy.maxConcurrentBackups, s: policy.serialWorkloads }, backups, candidate })}`,
      ).toEqual(expected);
    }
    // The generator reaches every kind of answer.
    for (const k of ["admit", "admit-with-warning", "reject", "waits-behind", "slot", "supersedes", ...(windows ? ["window"] : [])])
      expect(seen.get(k) ?? 0, k).toBeGreaterThan(5);
  });
});

describe("admission engine: the base goes stale, the answer does not", () => {
  it("a queued backup created after the index was built is still seen (judged live)", async () => {
    const snap = cluster(...estate());
    const cache = new FakeClusterCache(snap.view, snap.backups);
    const engine = new AdmissionEngine({ cache, policy: new StaticPolicySource(noAging), now: () => NOW, rebuildIntervalMs: 60_000 });
    await engine.start();
    await engine.ensureBase();
    const rebuilds = engine.rebuilds;
    cache.setBackup(backup("q", { includedNamespaces: ["shop"] }, { phase: "Queued", created: at(0) }));
    const d = engine.decide(cluster(app("cart", "cart", { created: "" })).backups[0]!, NOW);
    expect(engine.rebuilds).toBe(rebuilds); // no rebuild in between
    expect(d.waitingFor).toEqual(["q"]);
    // and one that left the queue is no longer waited for
    cache.setBackup(backup("q", { includedNamespaces: ["shop"] }, { phase: "Completed", created: at(0) }));
    expect(engine.decide(cluster(app("cart", "cart", { created: "" })).backups[0]!, NOW).verdict).toBe("admit");
    engine.stop();
  });

  it("rebuilds in the background after changes", async () => {
    const snap = cluster(...estate());
    const cache = new FakeClusterCache(snap.view, snap.backups);
    const engine = new AdmissionEngine({ cache, policy: new StaticPolicySource(noAging), now: () => NOW, rebuildIntervalMs: 10 });
    await engine.start();
    const before = engine.rebuilds;
    cache.setBackup(backup("q", { includedNamespaces: ["shop"] }, { phase: "Queued", created: at(0) }));
    const deadline = Date.now() + 5_000;
    while (engine.rebuilds === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(engine.rebuilds).toBeGreaterThan(before);
    engine.stop();
  });
});

describe("admission engine: phase transitions", () => {
  const setup = async (policy: Policy, backups: object[]) => {
    const snap = cluster(...estate(), ...backups);
    const cache = new FakeClusterCache(snap.view, snap.backups);
    const engine = new AdmissionEngine({ cache, policy: new StaticPolicySource(policy), now: () => NOW });
    await engine.start();
    return { engine, info: (raw: object) => cluster(raw).backups[0]! };
  };
  const mark = { "backup-gate.io/promoted-by": "backup-gate" };

  it.each<{ name: string; policy: Policy; backups: object[]; oldRaw: object; newRaw: object; refused: RegExp | null }>([
    {
      name: "conflict with an in-flight backup is refused, naming it",
      policy: noAging,
      backups: [backup("all", {}, { phase: "InProgress", created: at(0) })],
      oldRaw: app("cart", "cart", { phase: "Queued" }),
      newRaw: app("cart", "cart", { phase: "ReadyToStart", annotations: mark }),
      refused: /^backup cart may not become ReadyToStart: it conflicts with all \(InProgress\): both snapshot PVC shop\/cart-data$/,
    },
    {
      name: "over the limit is refused",
      policy: { ...noAging, maxConcurrentBackups: 1 },
      backups: [backup("w", { includedNamespaces: ["web"] }, { phase: "InProgress", created: at(0) })],
      oldRaw: app("cart", "cart", { phase: "Queued" }),
      newRaw: app("cart", "cart", { phase: "ReadyToStart", annotations: mark }),
      refused: /1 of 1 backups are already in flight \(w\)/,
    },
    {
      name: "no conflict, room left: allowed",
      policy: noAging,
      backups: [backup("w", { includedNamespaces: ["web"] }, { phase: "InProgress", created: at(0) })],
      oldRaw: app("cart", "cart", { phase: "Queued" }),
      newRaw: app("cart", "cart", { phase: "ReadyToStart", annotations: mark }),
      refused: null,
    },
    {
      name: "itself in the cache as ReadyToStart does not count",
      policy: { ...noAging, maxConcurrentBackups: 1 },
      backups: [app("cart", "cart", { phase: "ReadyToStart" })],
      oldRaw: app("cart", "cart", { phase: "Queued" }),
      newRaw: app("cart", "cart", { phase: "ReadyToStart", annotations: mark }),
      refused: null,
    },
    {
      name: "not a move into ReadyToStart: allowed",
      policy: { ...noAging, maxConcurrentBackups: 1 },
      backups: [backup("all", {}, { phase: "InProgress", created: at(0) })],
      oldRaw: app("cart", "cart", { phase: "ReadyToStart" }),
      newRaw: app("cart", "cart", { phase: "InProgress" }),
      refused: null,
    },
  ])("$name", async ({ policy, backups, oldRaw, newRaw, refused }) => {
    const { engine, info } = await setup(policy, backups);
    const v = engine.checkTransition(info(oldRaw), info(newRaw));
    if (refused) {
      expect(v.allowed).toBe(false);
      expect(!v.allowed && v.message).toMatch(refused);
    } else {
      expect(v.allowed).toBe(true);
    }
    engine.stop();
  });

  it("flags a promotion without backup-gate's mark as foreign", async () => {
    const { engine, info } = await setup(noAging, []);
    expect(engine.checkTransition(info(app("cart", "cart", { phase: "Queued" })), info(app("cart", "cart", { phase: "ReadyToStart" })))).toEqual({
      allowed: true,
      transition: true,
      foreign: true,
    });
    expect(
      engine.checkTransition(info(app("cart", "cart", { phase: "Queued" })), info(app("cart", "cart", { phase: "ReadyToStart", annotations: mark }))),
    ).toEqual({ allowed: true, transition: true, foreign: false });
    engine.stop();
  });
});
