import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY, policySchema, type Policy } from "../../src/core/policy.js";
import { prepareTrace, simulate, type Planner, type SimResult, type Strategy } from "../../src/sim/engine.js";
import { figuresOf, percentile } from "../../src/sim/figures.js";
import { planWith, strategies, veleroPolicy } from "../../src/sim/strategies.js";
import { parseTrace, type Trace } from "../../src/sim/trace.js";
import { boundClaim, ns, pod } from "../support/builders.js";

// The simulator's engine on tiny traces: what each strategy starts when, the invariant check
// (and that it fails on a broken planner), and trace validation naming the field.

const policy: Policy = { ...DEFAULT_POLICY, maxConcurrentBackups: 4 };

// shop: apps db (its own volume), cart and orders (their own volumes), sharing the namespace.
// data: pg. web: stateless.
const estate = [
  ns("shop"),
  ns("web"),
  ns("data"),
  pod("shop", "db-0", { claims: ["data-db-0"], labels: { app: "db" } }),
  ...boundClaim("shop", "data-db-0"),
  pod("shop", "cart-0", { claims: ["cart-data"], labels: { app: "cart" } }),
  ...boundClaim("shop", "cart-data"),
  pod("shop", "orders-0", { claims: ["orders-data"], labels: { app: "orders" } }),
  ...boundClaim("shop", "orders-data"),
  pod("data", "pg-0", { claims: ["pg"], labels: { app: "pg" } }),
  ...boundClaim("data", "pg"),
  pod("web", "nginx", { labels: { app: "web" } }),
];

type Entry = Record<string, unknown> & { name: string; arrival: number };
const app = (name: string, label: string, arrival: number, duration = 100, extra: object = {}): Entry => ({
  name,
  spec: { includedNamespaces: ["shop"], labelSelector: { matchLabels: { app: label } } },
  arrival,
  duration,
  ...extra,
});
const nsBackup = (name: string, namespaces: string[], arrival: number, duration = 100, extra: object = {}): Entry => ({
  name,
  spec: { includedNamespaces: namespaces },
  arrival,
  duration,
  ...extra,
});

function traceOf(backups: Entry[], extra: object = {}): Trace {
  const r = parseTrace({ cluster: { kind: "List", items: estate }, backups, ...extra }, "test");
  if (!r.ok) throw new Error(r.error);
  return r.trace;
}

function run(backups: Entry[], strategyName: string, p: Policy = policy): SimResult {
  const trace = traceOf(backups);
  const strategy = strategies(p).find((s) => s.name === strategyName)!;
  return simulate(prepareTrace(trace, p), strategy);
}
const starts = (r: SimResult) => Object.fromEntries(r.runs.map((x) => [x.name, x.start]));

describe("simulate: the engine replays a trace through plan()", () => {
  it.each<{ name: string; backups: Entry[]; strategy: string; expected: Record<string, number> }>([
    {
      name: "two backups sharing a PVC serialize at ItemBlock",
      backups: [app("db-a", "db", 0), app("db-b", "db", 10)],
      strategy: "itemblock",
      expected: { "db-a": 0, "db-b": 100 },
    },
    {
      name: "two backups sharing only a namespace run together at ItemBlock",
      backups: [app("cart", "cart", 0), app("orders", "orders", 10)],
      strategy: "itemblock",
      expected: { cart: 0, orders: 10 },
    },
    {
      name: "... and serialize under velero",
      backups: [app("cart", "cart", 0), app("orders", "orders", 10)],
      strategy: "velero",
      expected: { cart: 0, orders: 100 },
    },
    {
      name: "... and at our Namespace level",
      backups: [app("cart", "cart", 0), app("orders", "orders", 10)],
      strategy: "namespace",
      expected: { cart: 0, orders: 100 },
    },
    {
      name: "one-at-a-time runs them one by one in queue order",
      backups: [app("cart", "cart", 0), nsBackup("pg", ["data"], 5, 50), app("orders", "orders", 10)],
      strategy: "one-at-a-time",
      expected: { cart: 0, pg: 100, orders: 150 },
    },
    {
      name: "the reference ignores conflicts",
      backups: [app("db-a", "db", 0), app("db-b", "db", 10)],
      strategy: "reference",
      expected: { "db-a": 0, "db-b": 10 },
    },
    {
      name: "the limit holds for every strategy, the reference too",
      backups: [
        nsBackup("a", ["web"], 0),
        nsBackup("b", ["data"], 0),
        nsBackup("c", ["web"], 0, 100, { spec: { includedNamespaces: ["web"], snapshotVolumes: false } }),
      ],
      strategy: "reference",
      expected: { a: 0, b: 0, c: 100 },
    },
    {
      name: "an all-namespace backup waits for what runs, then blocks what comes later (rule 2)",
      backups: [app("cart", "cart", 0), nsBackup("all", [], 10, 100, { spec: {} }), nsBackup("pg", ["data"], 20)],
      strategy: "itemblock",
      expected: { cart: 0, all: 100, pg: 200 },
    },
  ])("$name", ({ name, backups, strategy, expected }) => {
    const r = run(backups, strategy, strategy === "reference" && name.includes("limit") ? { ...policy, maxConcurrentBackups: 2 } : policy);
    expect(starts(r)).toEqual(expected);
    expect(r.stalled).toEqual([]);
  });

  it("waits are arrival -> start; figures: mean, p95, max, makespan, in flight over time", () => {
    const r = run([app("db-a", "db", 0), app("db-b", "db", 10), nsBackup("pg", ["data"], 20, 30)], "itemblock");
    const f = figuresOf(r, 4);
    expect(r.runs.map((x) => [x.name, x.start, x.end])).toEqual([
      ["db-a", 0, 100],
      ["db-b", 100, 200],
      ["pg", 20, 50],
    ]);
    expect(f).toMatchObject({ backups: 3, started: 3, meanWait: 30, p95Wait: 90, maxWait: 90, makespan: 200, inFlightMax: 2, violations: 0 });
    expect(f.inFlightMean).toBeCloseTo((100 + 30 + 100) / 200);
    expect(r.inFlight).toEqual([
      { t: 0, n: 1 },
      { t: 20, n: 2 },
      { t: 50, n: 1 },
      { t: 200, n: 0 },
    ]);
    expect(f.sparkline).toHaveLength(4);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 95)).toBe(19);
  });

  it("records whom a backup waited for and the planner's reason", () => {
    const r = run([app("db-a", "db", 0), app("db-b", "db", 10)], "itemblock");
    expect(r.runs[1]).toMatchObject({
      name: "db-b",
      waitingFor: ["db-a"],
      waitedForSlot: false,
      reason: "waits behind db-a (InProgress): both snapshot PVC shop/data-db-0",
    });
  });

  it("durationPerItem counts the pods, PVCs and PVs of the predicted scope, plus durationBase", () => {
    const trace = traceOf([
      {
        name: "cart",
        spec: { includedNamespaces: ["shop"], labelSelector: { matchLabels: { app: "cart" } } },
        arrival: 0,
        durationPerItem: 10,
        durationBase: 5,
      },
    ]);
    const prepared = prepareTrace(trace, policy);
    expect(prepared.backups[0]).toMatchObject({ items: 3, duration: 35 });
  });

  it("with aging on, a slot-free instant at which the queue order changes is an event (not only arrivals and completions)", () => {
    const aging: Policy = { ...policy, priorities: { ...policy.priorities, agingSeconds: 60 } };
    const prio = (p: number) => ({ labels: { "backup-gate.io/priority": String(p) } });
    // x holds data until 1000; y holds web until 110. s (priority 0, created 1) waits for y; m
    // (priority 2, created 100) goes ahead of s and waits for x. At 121 s has aged to m's priority
    // and, created earlier, goes ahead of m: nothing in flight conflicts with it, so it starts.
    const r = run(
      [
        nsBackup("x", ["data"], 0, 1000, prio(10)),
        nsBackup("y", ["web"], 0, 110, prio(10)),
        nsBackup("s", ["web"], 1, 10, prio(0)),
        nsBackup("m", ["data", "web"], 100, 10, prio(2)),
      ],
      "namespace",
      aging,
    );
    expect(starts(r)).toEqual({ x: 0, y: 0, s: 121, m: 1000 });
  });
});

describe("simulate: the velero strategy is our Namespace level with priorities off", () => {
  it("its policy is the Namespace level with every priority 0 and aging off", () => {
    const p = { ...policy, priorities: { manual: 7, scheduled: 3, schedules: { x: 9 }, agingSeconds: 60 } };
    const velero = strategies(p).find((s) => s.name === "velero")!;
    // And no hold: restores hold no backup (Velero's queue ignores them; simHolds.test.ts).
    expect(velero.policy).toEqual({
      ...p,
      conflictLevel: "Namespace",
      priorities: { manual: 0, scheduled: 0, schedules: {}, agingSeconds: 0 },
      restores: { onConflict: "Warn", holdBackups: false },
    });
    expect(veleroPolicy(p)).toEqual(velero.policy);
  });

  // pg runs 0..100; a scheduled run and a manual backup (and one labelled priority 50) queue
  // behind it in that order. Priorities would start the manual one first; Velero goes by creation.
  const backups = [
    nsBackup("pg", ["data"], 0),
    nsBackup("nightly-run", ["data"], 10, 100, { labels: { "velero.io/schedule-name": "nightly" } }),
    nsBackup("manual", ["data"], 20),
    nsBackup("urgent", ["data"], 30, 100, { labels: { "backup-gate.io/priority": "50" } }),
  ];
  it("where priorities reorder the queue, namespace starts by priority and velero by creation", () => {
    expect(starts(run(backups, "namespace"))).toEqual({ pg: 0, urgent: 100, manual: 200, "nightly-run": 300 });
    expect(starts(run(backups, "velero"))).toEqual({ pg: 0, "nightly-run": 100, manual: 200, urgent: 300 });
  });

  it("and the velero run equals a run of plan() at Namespace level with priorities off", () => {
    const trace = prepareTrace(traceOf(backups.map((b) => ({ ...b, labels: {} }))), policy);
    const direct: Strategy = { name: "direct", description: "", policy: veleroPolicy(policy), planner: planWith(veleroPolicy(policy)) };
    const velero = strategies(policy).find((s) => s.name === "velero")!;
    expect(simulate(trace, velero).runs).toEqual(simulate(trace, direct).runs);
  });
});

describe("simulate: the invariant check", () => {
  const everything: Planner = (snapshot) => ({
    promotions: snapshot.backups.filter((b) => b.phase === "New" || b.phase === "Queued").map((b) => ({ backup: b.name })),
    queue: [],
    supersessions: [],
  });
  const nothing: Planner = (snapshot) => ({
    promotions: [],
    supersessions: [],
    queue: snapshot.backups.filter((b) => b.phase === "New" || b.phase === "Queued").map((b) => ({ backup: b.name, waitingFor: [], reason: "never" })),
  });
  const broken = (planner: Planner, p: Policy = policy): Strategy => ({ name: "broken", description: "", policy: p, planner: () => planner });
  const trace = () => prepareTrace(traceOf([app("db-a", "db", 0), app("db-b", "db", 10), app("cart", "cart", 20), nsBackup("pg", ["data"], 30)]), policy);

  it("reports two conflicting backups in flight together when a planner promotes everything", () => {
    const r = simulate(trace(), broken(everything));
    expect(r.violations).toEqual([{ at: 10, backups: ["db-a", "db-b"], reason: "both snapshot PVC shop/data-db-0" }]);
    expect(r.violatingInstants).toBe(3); // at 10, 20, 30; db-a ends at 100
    expect(figuresOf(r)).toMatchObject({ violations: 1, inFlightMax: 4 });
  });

  it("judges at the strategy's level: at Namespace level the same run breaks it more", () => {
    const r = simulate(trace(), broken(everything, { ...policy, conflictLevel: "Namespace" }));
    expect(r.violations.map((v) => v.backups)).toEqual([
      ["db-a", "db-b"],
      ["db-a", "cart"],
      ["db-b", "cart"],
    ]);
  });

  it("reports the backups a planner never starts as stalled", () => {
    const r = simulate(trace(), broken(nothing));
    expect(r.stalled).toEqual(["db-a", "db-b", "cart", "pg"]);
    expect(figuresOf(r)).toMatchObject({ started: 0, stalled: 4 });
  });

  it("the safe strategies never break it; the reference does, and says so", () => {
    const t = trace();
    const counts = Object.fromEntries(strategies(policy).map((s) => [s.name, simulate(t, s).violations.length]));
    expect(counts).toEqual({ "one-at-a-time": 0, velero: 0, namespace: 0, itemblock: 0, reference: 1 });
  });
});

describe("simulate: trace validation names the field", () => {
  const cluster = { kind: "List", items: estate };
  const ok = { name: "a", spec: {}, arrival: 0, duration: 1 };
  it.each<{ name: string; doc: unknown; message: RegExp }>([
    { name: "not an object", doc: "hello", message: /^\(document\): / },
    { name: "no backups", doc: { cluster }, message: /^backups: / },
    { name: "an empty backups list", doc: { cluster, backups: [] }, message: /^backups: .*>=1/ },
    {
      name: "an arrival that is not a number",
      doc: { cluster, backups: [ok, { ...ok, name: "b", arrival: "soon" }] },
      message: /^backups\[1\]\.arrival: .*expected number/,
    },
    { name: "a negative arrival", doc: { cluster, backups: [{ ...ok, arrival: -1 }] }, message: /^backups\[0\]\.arrival: / },
    {
      name: "neither duration nor durationPerItem",
      doc: { cluster, backups: [{ name: "a", arrival: 0 }] },
      message: /^backups\[0\]\.duration: give exactly one of duration or durationPerItem$/,
    },
    {
      name: "both duration and durationPerItem",
      doc: { cluster, backups: [{ ...ok, durationPerItem: 2 }] },
      message: /^backups\[0\]\.duration: give exactly one/,
    },
    { name: "durationBase without durationPerItem", doc: { cluster, backups: [{ ...ok, durationBase: 2 }] }, message: /^backups\[0\]\.durationBase: / },
    { name: "a zero duration", doc: { cluster, backups: [{ ...ok, duration: 0 }] }, message: /^backups\[0\]\.duration: / },
    { name: "an unknown field, named", doc: { cluster, backups: [{ ...ok, durashun: 3 }] }, message: /^backups\[0\]\.durashun: unknown field$/ },
    {
      name: "a name Kubernetes refuses",
      doc: { cluster, backups: [{ ...ok, name: "Nightly_Run" }] },
      message: /^backups\[0\]\.name: must be a lowercase DNS name/,
    },
    { name: "a duplicate name", doc: { cluster, backups: [ok, { ...ok }] }, message: /^backups\[1\]\.name: duplicate name a \(also backups\[0\]\)$/ },
    { name: "labels that are not strings", doc: { cluster, backups: [{ ...ok, labels: { tier: 1 } }] }, message: /^backups\[0\]\.labels\.tier: / },
    { name: "a spec that is not an object", doc: { cluster, backups: [{ ...ok, spec: "all" }] }, message: /^backups\[0\]\.spec: / },
    { name: "no cluster", doc: { backups: [ok] }, message: /^cluster: give exactly one of cluster \(an inline List\) or clusterFile$/ },
    { name: "both cluster and clusterFile", doc: { cluster, clusterFile: "c.yaml", backups: [ok] }, message: /^cluster: give exactly one/ },
    { name: "a cluster that is not a List", doc: { cluster: { kind: "Pod" }, backups: [ok] }, message: /^cluster\.kind: / },
    {
      name: "an unreadable cluster object, with its index and field",
      doc: { cluster: { kind: "List", items: [{ kind: "Pod", metadata: { name: "x" } }] }, backups: [ok] },
      message: /^cluster: items\[0\] Pod x: metadata\.namespace: /,
    },
    {
      name: "Backups inside the cluster",
      doc: { cluster: { kind: "List", items: [{ kind: "Backup", metadata: { name: "b", namespace: "velero" } }] }, backups: [ok] },
      message: /^cluster: holds Backup objects/,
    },
    { name: "a bad policy, with its field", doc: { cluster, policy: { maxConcurrentBackups: 0 }, backups: [ok] }, message: /^policy\.maxConcurrentBackups: / },
    { name: "a t0 that is not RFC 3339", doc: { cluster, t0: "yesterday", backups: [ok] }, message: /^t0: / },
    { name: "a clusterFile with no reader", doc: { clusterFile: "c.yaml", backups: [ok] }, message: /^clusterFile: / },
  ])("$name", ({ doc, message }) => {
    const r = parseTrace(doc, "t");
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : r.error).toMatch(message);
  });

  it("reads clusterFile through the reader it is given, and keeps the trace's policy", () => {
    const r = parseTrace({ clusterFile: "c.yaml", policy: { maxConcurrentBackups: 2 }, backups: [ok] }, "t", (f) => (f === "c.yaml" ? cluster : undefined));
    expect(r.ok && r.trace.policy?.maxConcurrentBackups).toBe(2);
    expect(r.ok && r.trace.view.namespaceNames()).toEqual(["data", "shop", "web"]);
  });
});

describe("simulate honours start windows with its simulated clock", () => {
  // t0 is Monday 12:00 UTC; the heavy schedule may start only 22:00-05:00 UTC, the payroll one
  // 20:00-21:00 and is failed after an hour outside it.
  const t0 = "2026-01-05T12:00:00Z";
  const windowed: Policy = policySchema.parse({
    maxConcurrentBackups: 4,
    windows: [
      { name: "nightly", selector: { schedules: ["heavy"] }, allow: [{ start: "22:00", end: "05:00" }] },
      { name: "payroll", selector: { schedules: ["payroll"] }, allow: [{ start: "20:00", end: "21:00" }], maxWaitSeconds: 3600, onMaxWait: "Fail" },
    ],
  });
  const scheduled = (name: string, schedule: string, namespaces: string[]) =>
    nsBackup(name, namespaces, 0, 100, { labels: { "velero.io/schedule-name": schedule } });
  const backups = [scheduled("heavy-1", "heavy", ["shop"]), scheduled("payroll-1", "payroll", ["data"]), nsBackup("light", ["shop"], 10)];
  const replay = (p: Policy) =>
    simulate(
      prepareTrace(traceOf(backups, { t0 }), p),
      strategies(p).find((s) => s.name === "itemblock")!,
    );

  it.each<{ name: string; policy: Policy; starts: Record<string, number | undefined>; outcomes: Record<string, string> }>([
    {
      name: "held until its window opens (10 h after t0), blocking no one; a missed window fails the backup at its max wait",
      policy: windowed,
      starts: { "heavy-1": 36_000, "payroll-1": undefined, light: 10 },
      outcomes: { "heavy-1": "completed", "payroll-1": "missed window", light: "completed" },
    },
    {
      name: "positive control: without windows the heavy run starts at t0, and the light one waits behind it",
      policy: { ...windowed, windows: undefined },
      starts: { "heavy-1": 0, "payroll-1": 0, light: 100 },
      outcomes: { "heavy-1": "completed", "payroll-1": "completed", light: "completed" },
    },
  ])("$name", ({ policy: p, starts: expected, outcomes }) => {
    const r = replay(p);
    expect(starts(r)).toEqual(expected);
    expect(Object.fromEntries(r.runs.map((x) => [x.name, x.outcome]))).toEqual(outcomes);
    expect(r.violations).toEqual([]);
  });
});
