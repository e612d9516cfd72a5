import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HOLDS_FILE, holdsFile } from "../../bench/traces/holds.js";
import { runSimulate } from "../../src/cli/simulate.js";
import { policySchema, type Policy } from "../../src/core/policy.js";
import { prepareTrace, simulate, type SimResult } from "../../src/sim/engine.js";
import { compareHolds, holdsOf, type HoldComparison } from "../../src/sim/holds.js";
import { replay } from "../../src/sim/index.js";
import { oneQueue, planWith, strategies, withoutHold, type Hold } from "../../src/sim/strategies.js";
import { parseTrace, type Trace } from "../../src/sim/trace.js";
import { boundClaim, ns, pod } from "../support/builders.js";
import { scratch } from "./support/cli.js";

// `simulate` compares each hold of issue 19 (budgets, windows, restores) with the same run
// without it, measured from who was in flight when (docs/simulate.md, "Holds"). Tables per
// hold on tiny traces, then over generated traces: the run with the holds never breaks one,
// while the run without them does (the positive control), and a run that breaks one is caught.

const file = scratch("bg-simholds-");
const T0 = "2026-01-05T07:00:00Z"; // a Monday
const SHOPS = ["shop-1", "shop-2", "shop-3", "shop-4", "shop-5", "shop-6"];

/** Each shop: a database pod with one CSI volume of driver csi.a; web: stateless. */
const estate = [
  ...SHOPS.flatMap((s) => [
    ns(s),
    pod(s, "db", { claims: ["data"], labels: { app: "db" } }),
    ...boundClaim(s, "data", { storageClass: "gp3", pvOpts: { csiDriver: "csi.a", storageClass: "gp3" } }),
  ]),
  ns("web"),
  pod("web", "nginx"),
];

type Entry = { name: string; arrival: number; duration: number; spec?: object; labels?: object };
const shop = (s: string, arrival: number, duration = 100, spec: object = {}): Entry => ({
  name: `${s}-${arrival}`,
  spec: { includedNamespaces: [s], ...spec },
  arrival,
  duration,
});

function traceOf(doc: { backups: Entry[]; policy?: object; restores?: object[] }): Trace {
  const r = parseTrace({ t0: T0, cluster: { kind: "List", items: estate }, policy: { priorities: { agingSeconds: 0 } }, ...doc }, "test");
  if (!r.ok) throw new Error(r.error);
  return r.trace;
}

/** The comparison and the run with the holds (itemblock), as `simulate` makes them. */
function compare(doc: Parameters<typeof traceOf>[0]): { c: HoldComparison; withHolds: SimResult; without: Record<string, SimResult> } {
  const trace = traceOf(doc);
  const { runs, holds } = replay(trace, trace.policy!);
  const by = Object.fromEntries(runs.map((r) => [r.result.strategy, r.result]));
  return { c: holds!, withHolds: by.itemblock!, without: by };
}
const startOf = (r: SimResult, name: string) => r.runs.find((x) => x.name === name)?.start;

describe("which holds a replay compares", () => {
  it.each<{ name: string; policy: object; restores?: object[]; holds: Hold[] }>([
    { name: "no section, no restore: none (the output is as before)", policy: {}, holds: [] },
    { name: "a budgets section that sets no limit changes nothing: none", policy: { budgets: { defaultStorageLocation: "s3" } }, holds: [] },
    { name: "a budget", policy: { budgets: { snapshotsPerDriver: 2 } }, holds: ["budgets"] },
    { name: "a window", policy: { windows: [{ blackout: [{ start: "07:00", end: "08:00" }] }] }, holds: ["windows"] },
    { name: "a restore in the trace (restores hold backups by default)", policy: {}, restores: [{ name: "r", arrival: 0, duration: 1 }], holds: ["restores"] },
    {
      name: "a restore, but restores.holdBackups false: none",
      policy: { restores: { holdBackups: false } },
      restores: [{ name: "r", arrival: 0, duration: 1 }],
      holds: [],
    },
    {
      name: "all three, in this order",
      policy: { budgets: { snapshotsPerDriver: 2 }, windows: [{ blackout: [{ start: "07:00", end: "08:00" }] }] },
      restores: [{ name: "r", arrival: 0, duration: 1 }],
      holds: ["budgets", "windows", "restores"],
    },
  ])("$name", ({ policy, restores, holds }) => {
    const trace = traceOf({ backups: [shop("shop-1", 0)], policy, ...(restores ? { restores } : {}) });
    expect(holdsOf(trace, trace.policy!)).toEqual(holds);
    const names = strategies(trace.policy!, false, holdsOf(trace, trace.policy!)).map((s) => s.name);
    expect(names.slice(5)).toEqual(holds.map((h) => ({ budgets: "no-budgets", windows: "no-windows", restores: "no-restore-holds" })[h]));
    expect(replay(trace, trace.policy!).holds === undefined).toBe(holds.length === 0);
  });
});

describe("the velero strategy is Velero's queue: it knows no hold", () => {
  it.each<{ name: string; policy: object; restores?: object[]; backups: Entry[]; starts: number[] }>([
    { name: "a budget", policy: { budgets: { snapshotsPerDriver: 1 } }, backups: [shop("shop-1", 0), shop("shop-2", 0)], starts: [0, 0] },
    { name: "a window", policy: { windows: [{ blackout: [{ start: "07:00", end: "08:00" }] }] }, backups: [shop("shop-1", 0)], starts: [0] },
    {
      name: "a restore",
      policy: {},
      restores: [{ name: "r", spec: { includedNamespaces: ["shop-1"] }, arrival: 0, duration: 500 }],
      backups: [shop("shop-1", 10)],
      starts: [10],
    },
  ])("$name", ({ policy, restores, backups, starts }) => {
    const { without } = compare({ backups, policy: { priorities: { agingSeconds: 0 }, ...policy }, ...(restores ? { restores } : {}) });
    expect(backups.map((b) => startOf(without.velero!, b.name))).toEqual(starts);
    // The control: the policy's level keeps the hold.
    expect(backups.map((b) => startOf(without.itemblock!, b.name))).not.toEqual(starts);
  });
});

describe("a trace's restores", () => {
  it.each<{ name: string; restores: object[]; error?: string }>([
    { name: "a restore writing for a while", restores: [{ name: "r-1", spec: { includedNamespaces: ["shop-1"] }, arrival: 10, duration: 60 }] },
    {
      name: "its spec is a Restore's, read as the core reads it",
      restores: [{ name: "r", spec: { namespaceMapping: { a: 1 } }, arrival: 0, duration: 1 }],
      error: "restores[0].spec:",
    },
    { name: "a duration is required", restores: [{ name: "r", arrival: 0 }], error: "restores[0].duration:" },
    { name: "an unknown field is named", restores: [{ name: "r", arrival: 0, duration: 1, phase: "InProgress" }], error: "restores[0].phase: unknown field" },
    {
      name: "names are unique",
      restores: [
        { name: "r", arrival: 0, duration: 1 },
        { name: "r", arrival: 5, duration: 1 },
      ],
      error: "restores[1].name: duplicate name r (also restores[0])",
    },
  ])("$name", ({ restores, error }) => {
    const r = parseTrace({ cluster: { kind: "List", items: estate }, backups: [shop("shop-1", 0)], restores }, "t");
    if (error === undefined) expect(r.ok).toBe(true);
    else expect(r.ok ? "ok" : r.error).toContain(error);
  });

  it("a name also given to a Restore of the cluster is refused", () => {
    const listed = { apiVersion: "velero.io/v1", kind: "Restore", metadata: { namespace: "velero", name: "r" }, spec: {}, status: { phase: "Completed" } };
    const r = parseTrace(
      { cluster: { kind: "List", items: [...estate, listed] }, backups: [shop("shop-1", 0)], restores: [{ name: "r", arrival: 0, duration: 1 }] },
      "t",
    );
    expect(r.ok ? "ok" : r.error).toBe("restores[0].name: r is also a Restore in the cluster");
  });

  it("writes only while it runs, and a run leaves the view as it found it", () => {
    const trace = traceOf({
      backups: [shop("shop-1", 0, 10), shop("shop-1", 50, 10)],
      restores: [{ name: "r", spec: { includedNamespaces: ["shop-1"] }, arrival: 20, duration: 100 }],
    });
    const policy = trace.policy!;
    const r = simulate(
      prepareTrace(trace, policy),
      strategies(policy).find((s) => s.name === "itemblock")!,
    );
    expect([startOf(r, "shop-1-0"), startOf(r, "shop-1-50")]).toEqual([0, 120]);
    expect(r.runs.find((x) => x.name === "shop-1-50")?.reason).toContain("velero/r");
    expect([...trace.view.restores()]).toEqual([]);
  });
});

describe("budgets: each budget's most backups in flight, without and with", () => {
  it.each<{
    name: string;
    budgets: object;
    spec?: object;
    kind: string;
    budget: string;
    limit: number;
    without: number;
    with: number;
    meanWait: [number, number];
  }>([
    {
      name: "six shops snapshot csi.a at once; the budget lets 2 run",
      budgets: { snapshotsPerDriver: { "csi.a": 2 } },
      kind: "snapshotsPerDriver",
      budget: "csi.a",
      limit: 2,
      without: 6,
      with: 2,
      meanWait: [0, 100],
    },
    {
      name: "a pattern's limit",
      budgets: { snapshotsPerStorageClass: { "gp*": 3 } },
      kind: "snapshotsPerStorageClass",
      budget: "gp3",
      limit: 3,
      without: 6,
      with: 3,
      meanWait: [0, 50],
    },
    {
      name: "Velero's default storage location, one at a time",
      budgets: { backupsPerStorageLocation: 1 },
      kind: "backupsPerStorageLocation",
      budget: "default",
      limit: 1,
      without: 6,
      with: 1,
      meanWait: [0, 250],
    },
    {
      name: "file-system backups of node-1 (the volumes are copied, not snapshotted)",
      budgets: { fsBackupsPerNode: 4, snapshotsPerDriver: 1 },
      spec: { defaultVolumesToFsBackup: true },
      kind: "fsBackupsPerNode",
      budget: "node-1",
      limit: 4,
      without: 6,
      with: 4,
      meanWait: [0, 100 / 3],
    },
    {
      name: "a limit above the demand changes nothing",
      budgets: { snapshotsPerDriver: 10 },
      kind: "snapshotsPerDriver",
      budget: "csi.a",
      limit: 10,
      without: 6,
      with: 6,
      meanWait: [0, 0],
    },
  ])("$name", ({ budgets, spec, kind, budget, limit, without, with: withHolds, meanWait }) => {
    const { c } = compare({ backups: SHOPS.map((s) => shop(s, 0, 100, spec)), policy: { maxConcurrentBackups: 8, priorities: { agingSeconds: 0 }, budgets } });
    expect(c.budgets?.without).toBe("no-budgets");
    expect(c.budgets?.peaks).toContainEqual({ kind, name: budget, limit, without, with: withHolds });
    expect([c.budgets?.waits.without.mean, c.budgets?.waits.with.mean]).toEqual(meanWait);
    expect(c.broken).toEqual([]);
  });
});

describe("windows: backups started while their window was closed, without and with", () => {
  // 07:00-08:00 UTC on Monday is closed for shop-1; t0 is 07:00.
  const window = (o: object = {}) => ({ name: "shop-1-off", selector: { namespaces: ["shop-1"] }, blackout: [{ start: "07:00", end: "08:00" }], ...o });
  it.each<{
    name: string;
    window: object;
    backup: Entry;
    governed: number;
    outside: [number, number];
    afterMaxWait: [number, number];
    failed: [number, number];
    start: [number | undefined, number | undefined];
  }>([
    {
      name: "held until it opens",
      window: window(),
      backup: shop("shop-1", 0),
      governed: 1,
      outside: [1, 0],
      afterMaxWait: [0, 0],
      failed: [0, 0],
      start: [0, 3600],
    },
    {
      name: "failed after its max wait (onMaxWait Fail)",
      window: window({ maxWaitSeconds: 600, onMaxWait: "Fail" }),
      backup: shop("shop-1", 0),
      governed: 1,
      outside: [1, 0],
      afterMaxWait: [0, 0],
      failed: [0, 1],
      start: [0, undefined],
    },
    {
      name: "started closed after its max wait (onMaxWait Start): allowed, counted apart",
      window: window({ maxWaitSeconds: 600, onMaxWait: "Start" }),
      backup: shop("shop-1", 0),
      governed: 1,
      outside: [1, 1],
      afterMaxWait: [0, 1],
      failed: [0, 0],
      start: [0, 600],
    },
    {
      name: "arrives once it is open",
      window: window(),
      backup: shop("shop-1", 4000),
      governed: 1,
      outside: [0, 0],
      afterMaxWait: [0, 0],
      failed: [0, 0],
      start: [4000, 4000],
    },
    {
      name: "a backup it does not govern",
      window: window(),
      backup: shop("shop-2", 0),
      governed: 0,
      outside: [0, 0],
      afterMaxWait: [0, 0],
      failed: [0, 0],
      start: [0, 0],
    },
  ])("$name", ({ window: w, backup, governed, outside, afterMaxWait, failed, start }) => {
    const { c, withHolds, without } = compare({ backups: [backup], policy: { priorities: { agingSeconds: 0 }, windows: [w] } });
    expect(c.windows?.windows).toEqual([
      {
        window: "shop-1-off",
        zone: "UTC",
        governed,
        outside: { without: outside[0], with: outside[1] },
        afterMaxWait: { without: afterMaxWait[0], with: afterMaxWait[1] },
        failed: { without: failed[0], with: failed[1] },
      },
    ]);
    expect([startOf(without["no-windows"]!, backup.name), startOf(withHolds, backup.name)]).toEqual(start);
    expect(c.broken).toEqual([]);
  });
});

describe("restores: backups in flight while a restore wrote into them, without and with", () => {
  const writing = (spec: object, arrival = 0, duration = 500) => ({ name: "r", spec, arrival, duration });
  it.each<{ name: string; backups: Entry[]; restore: object; inFlight: [number, number]; started: [number, number]; start: [string, number, number] }>([
    {
      name: "into the backup's namespace: held until the restore ends",
      backups: [shop("shop-1", 10)],
      restore: writing({ includedNamespaces: ["shop-1"] }),
      inFlight: [1, 0],
      started: [1, 0],
      start: ["shop-1-10", 10, 500],
    },
    {
      name: "into another namespace: nothing",
      backups: [shop("shop-1", 10)],
      restore: writing({ includedNamespaces: ["shop-2"] }),
      inFlight: [0, 0],
      started: [0, 0],
      start: ["shop-1-10", 10, 10],
    },
    {
      name: "mapped into the backup's namespace",
      backups: [shop("shop-1", 10)],
      restore: writing({ namespaceMapping: { "old-shop": "shop-1" } }),
      inFlight: [1, 0],
      started: [1, 0],
      start: ["shop-1-10", 10, 500],
    },
    {
      name: "begins while the backup runs: the hold cannot prevent it (admission warns)",
      backups: [shop("shop-1", 0, 1000)],
      restore: writing({ includedNamespaces: ["shop-1"] }, 100),
      inFlight: [1, 1],
      started: [0, 0],
      start: ["shop-1-0", 0, 0],
    },
    {
      name: "of a backup that arrives after the restore began: narrowed from then on, as in the plan",
      backups: [shop("shop-2", 5), shop("shop-1", 10)],
      restore: writing({ backupName: "shop-2-5" }),
      inFlight: [1, 0],
      started: [1, 0],
      start: ["shop-1-10", 10, 10],
    },
    {
      name: "of a backup in the trace: only its namespaces are restored",
      backups: [shop("shop-2", 0), shop("shop-1", 10)],
      restore: writing({ backupName: "shop-2-0" }, 200),
      inFlight: [0, 0],
      started: [0, 0],
      start: ["shop-1-10", 10, 10],
    },
  ])("$name", ({ backups, restore, inFlight, started, start }) => {
    const { c, withHolds, without } = compare({ backups, restores: [restore] });
    expect(c.restores).toMatchObject({
      without: "no-restore-holds",
      restores: 1,
      inFlightDuring: { without: inFlight[0], with: inFlight[1] },
      startedDuring: { without: started[0], with: started[1] },
    });
    expect([startOf(without["no-restore-holds"]!, start[0]), startOf(withHolds, start[0])]).toEqual(start.slice(1));
    expect(c.broken).toEqual([]);
  });
});

// Generated traces: shops' backups under a snapshot budget, a window over some shops and a
// restore. The run with the holds never breaks one; the checker is not blind: handed the run
// without the holds as if it had them, it reports each broken hold (the positive control).
const genCase = fc.record({
  limit: fc.integer({ min: 1, max: 3 }),
  backups: fc.array(fc.record({ shop: fc.constantFrom(...SHOPS), arrival: fc.integer({ min: 0, max: 3000 }), duration: fc.integer({ min: 30, max: 900 }) }), {
    minLength: 2,
    maxLength: 10,
  }),
  windowShops: fc.subarray(SHOPS, { minLength: 1 }),
  onMaxWait: fc.constantFrom("Start", "Fail"),
  restore: fc.record({ shop: fc.constantFrom(...SHOPS), arrival: fc.integer({ min: 0, max: 3000 }), duration: fc.integer({ min: 60, max: 1200 }) }),
});

describe("over generated traces", () => {
  it("the run with the holds never breaks one; the check catches the run without them", () => {
    const brokenWithout = new Set<string>();
    fc.assert(
      fc.property(genCase, (g) => {
        const trace = traceOf({
          backups: g.backups.map((b, i) => ({ ...shop(b.shop, b.arrival, b.duration), name: `b-${i}` })),
          policy: {
            maxConcurrentBackups: 8,
            priorities: { agingSeconds: 0 },
            budgets: { snapshotsPerDriver: g.limit },
            windows: [{ selector: { namespaces: g.windowShops }, blackout: [{ start: "07:00", end: "07:30" }], maxWaitSeconds: 900, onMaxWait: g.onMaxWait }],
          },
          restores: [{ name: "r", spec: { includedNamespaces: [g.restore.shop] }, arrival: g.restore.arrival, duration: g.restore.duration }],
        });
        const policy = trace.policy!;
        const holds = holdsOf(trace, policy);
        const prepared = prepareTrace(trace, policy);
        const all = strategies(policy, false, holds);
        const run = (name: string) =>
          simulate(
            prepared,
            all.find((s) => s.name === name)!,
          );
        const withHolds = run("itemblock");
        const c = compareHolds(prepared, oneQueue(policy), holds, withHolds, (h) =>
          run({ budgets: "no-budgets", windows: "no-windows", restores: "no-restore-holds" }[h]),
        );
        expect(c!.broken).toEqual([]);
        expect(withHolds.violations).toEqual([]);
        // The control: none of the holds, judged as if it had them.
        const bare = holds.reduce<Policy>((p, h) => withoutHold(p, h), oneQueue(policy));
        const none = simulate(prepared, { name: "none", description: "", policy: bare, planner: planWith(bare) });
        for (const b of compareHolds(prepared, oneQueue(policy), holds, none, () => none)!.broken) brokenWithout.add(b.split(" ")[0]!);
      }),
      { numRuns: 60, seed: 19 },
    );
    expect([...brokenWithout].sort()).toEqual(["budget", "restores:", "window"]);
  });
});

describe("simulate --trace bench/traces/holds.yaml", () => {
  it("is what bench/traces/holds.ts writes", () => {
    expect(readFileSync(HOLDS_FILE, "utf8")).toBe(holdsFile());
  });

  it("prints what each hold changed and one JSON line of it", () => {
    const { output, failed } = runSimulate(["--trace", HOLDS_FILE]);
    expect(failed).toBe(false);
    const lines = output.split("\n");
    const table = lines.slice(lines.findIndex((l) => l.startsWith("what each hold changed")));
    expect(table[1]).toMatch(/^hold\s+measure\s+without\s+with$/);
    expect(table[2]).toMatch(/^budget snapshotsPerDriver ebs\.csi\.aws\.com\s+most in flight at once \(limit 2\)\s+6\s+2$/);
    expect(lines.filter((l) => l.startsWith("{")).map((l) => (JSON.parse(l) as { strategy?: string }).strategy)).toEqual([
      "one-at-a-time",
      "velero",
      "namespace",
      "itemblock",
      "reference",
      "no-budgets",
      "no-windows",
      "no-restore-holds",
      undefined,
    ]);
    const holds = (JSON.parse(lines.at(-1)!) as { holds: HoldComparison & { broken: number } }).holds;
    expect(holds).toMatchObject({
      strategy: "itemblock",
      budgets: { without: "no-budgets", peaks: [{ kind: "snapshotsPerDriver", name: "ebs.csi.aws.com", limit: 2, without: 6, with: 2 }] },
      windows: {
        without: "no-windows",
        windows: [
          { window: "analytics-off-hours", governed: 2, outside: { without: 2, with: 0 }, failed: { without: 0, with: 1 } },
          { window: "archive-nights", governed: 1, outside: { without: 1, with: 1 }, afterMaxWait: { without: 0, with: 1 } },
        ],
      },
      restores: { without: "no-restore-holds", restores: 2, inFlightDuring: { without: 2, with: 1 }, startedDuring: { without: 1, with: 0 } },
      broken: 0,
    });
  });

  it("a policy without the holds (--policy) compares nothing", () => {
    const policy = file("policy.yaml", "maxConcurrentBackups: 8\nrestores:\n  holdBackups: false\n");
    const { output } = runSimulate(["--trace", HOLDS_FILE, "--policy", policy]);
    expect(output).not.toContain("what each hold changed");
    expect(output).not.toContain("no-budgets");
  });
});

// The policy of the generated traces parses as written (a typo would make every case vacuous).
it("the generated cases' policy is valid", () => {
  expect(
    policySchema.safeParse({
      budgets: { snapshotsPerDriver: 1 },
      windows: [{ selector: { namespaces: ["shop-1"] }, blackout: [{ start: "07:00", end: "07:30" }] }],
    }).success,
  ).toBe(true);
});
