import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { conflictBetween, type ScopedBackup } from "../../src/core/conflict/conflicts.js";
import { howMade, plan, planWakeAt, type Plan } from "../../src/core/decision/plan.js";
import { MadePlan } from "../../src/core/decision/planMemory.js";
import { ORIGIN_NAMESPACE } from "../../src/core/decision/tenants.js";
import { windowClock, windowOf, windowStateOf } from "../../src/core/decision/windows.js";
import { planWrites, tenantReadable } from "../../src/core/decision/writes.js";
import { QUEUED_PHASES, type BackupInfo } from "../../src/core/model.js";
import { parsePolicy, policySchema, type Policy } from "../../src/core/policy.js";
import { ScopeCache } from "../../src/core/scope/cache.js";
import { scopeOf } from "../../src/core/scope/scope.js";
import { Timestamps } from "../../src/core/times.js";
import type { ClusterView } from "../../src/core/view.js";
import { backup, boundClaim, ns, pod } from "../support/builders.js";
import { backupModels, clusterModel, load, policyArb, T0 } from "./support/arbitraries.js";
import { cluster } from "./support/cluster.js";
import { testSealer } from "./support/sealer.js";

// Start windows (docs/rules.md, "Windows"): the section's checks, the clock of a window (with
// DST days), the rule in the plan, the plan's validity, the writes, then the invariants.

const iso = (t: number) => (Number.isFinite(t) ? new Date(t).toISOString() : String(t));
const windowsPolicy = (windows: object[], over: object = {}): Policy => policySchema.parse({ priorities: { agingSeconds: 0 }, ...over, windows });
const oneWindow = (w: object) => windowsPolicy([w]).windows![0]!;

describe("the windows section is checked, naming the field at fault", () => {
  it.each<{ name: string; windows: unknown; error: string }>([
    { name: "not a list", windows: { start: "22:00" }, error: "windows: " },
    {
      name: "an unknown time zone",
      windows: [{ timeZone: "Europe/Berlim", allow: [{ start: "22:00", end: "05:00" }] }],
      error: "windows.0.timeZone: not a time zone",
    },
    { name: "neither allow nor blackout", windows: [{ timeZone: "UTC" }], error: "windows.0.allow: give exactly one of allow and blackout" },
    {
      name: "both allow and blackout",
      windows: [{ allow: [{ start: "22:00", end: "05:00" }], blackout: [{ start: "08:00", end: "18:00" }] }],
      error: "windows.0.blackout: give exactly one",
    },
    { name: "a time of day past 23:59", windows: [{ allow: [{ start: "24:00", end: "05:00" }] }], error: 'windows.0.allow.0.start: a time of day "HH:MM"' },
    { name: "a time without its leading zero", windows: [{ allow: [{ start: "9:00", end: "17:00" }] }], error: "windows.0.allow.0.start: a time of day" },
    { name: "a span of no length", windows: [{ allow: [{ start: "05:00", end: "05:00" }] }], error: "windows.0.allow.0.end: start and end are equal" },
    { name: "an unknown day", windows: [{ blackout: [{ start: "08:00", end: "18:00", days: ["Monday"] }] }], error: "windows.0.blackout.0.days.0:" },
    { name: "an empty list of days", windows: [{ blackout: [{ start: "08:00", end: "18:00", days: [] }] }], error: "windows.0.blackout.0.days:" },
    { name: "an empty allow list", windows: [{ allow: [] }], error: "windows.0.allow:" },
    { name: "a max wait of zero", windows: [{ allow: [{ start: "22:00", end: "05:00" }], maxWaitSeconds: 0 }], error: "windows.0.maxWaitSeconds:" },
    { name: "an unknown max-wait action", windows: [{ allow: [{ start: "22:00", end: "05:00" }], onMaxWait: "Skip" }], error: "windows.0.onMaxWait:" },
    {
      name: "a namespace that is no namespace name or glob",
      windows: [{ selector: { namespaces: ["Shop_1"] }, allow: [{ start: "22:00", end: "05:00" }] }],
      error: "windows.0.selector.namespaces.0: not a namespace name or glob",
    },
    { name: "an unknown selector field", windows: [{ selector: { labels: {} }, allow: [{ start: "22:00", end: "05:00" }] }], error: "windows.0.selector:" },
    { name: "an unknown window field", windows: [{ allow: [{ start: "22:00", end: "05:00" }], zone: "UTC" }], error: "windows.0:" },
  ])("$name", ({ windows, error }) => {
    const result = parsePolicy({ windows });
    expect(result.ok).toBe(false);
    expect(result.ok ? "" : result.error).toContain(error);
  });

  it("a good section parses, with the documented defaults (UTC, every day, started anyway)", () => {
    const result = parsePolicy({ windows: [{ allow: [{ start: "22:00", end: "05:00" }], maxWaitSeconds: 3600 }] });
    expect(result.ok && result.policy.windows).toEqual([
      { selector: {}, timeZone: "UTC", allow: [{ start: 22 * 60, end: 5 * 60 }], maxWaitSeconds: 3600, onMaxWait: "Start" },
    ]);
    expect(parsePolicy({}).ok && (parsePolicy({}) as { policy: Policy }).policy.windows).toBeUndefined();
  });
});

describe("a window's clock: open or not, when that changes, and the span named (Intl time zones, DST)", () => {
  const nightly = (zone: string) => ({ timeZone: zone, allow: [{ start: "22:00", end: "05:00" }] });
  it.each<{ name: string; window: object; now: string; open: boolean; nextChange: string; span: string }>([
    {
      name: "Berlin, before a night window: opens at 22:00 CET",
      window: nightly("Europe/Berlin"),
      now: "2026-03-28T12:00:00Z",
      open: false,
      nextChange: "2026-03-28T21:00:00.000Z",
      span: "22:00-05:00",
    },
    {
      name: "Berlin, in the night DST starts: closes at 05:00 CEST, an hour earlier in UTC",
      window: nightly("Europe/Berlin"),
      now: "2026-03-28T23:00:00Z",
      open: true,
      nextChange: "2026-03-29T03:00:00.000Z",
      span: "",
    },
    {
      name: "Berlin, a span in the skipped hour opens at the jump (02:00 CET -> 03:00 CEST)",
      window: { timeZone: "Europe/Berlin", allow: [{ start: "02:30", end: "04:00" }] },
      now: "2026-03-29T00:00:00Z",
      open: false,
      nextChange: "2026-03-29T01:00:00.000Z",
      span: "03:00-04:00",
    },
    {
      name: "Berlin, the night DST ends: a span in the repeated hour opens in its first pass",
      window: { timeZone: "Europe/Berlin", allow: [{ start: "02:30", end: "02:45" }] },
      now: "2026-10-25T00:00:00Z",
      open: false,
      nextChange: "2026-10-25T00:30:00.000Z",
      span: "02:30-02:45",
    },
    {
      name: "Berlin, after the first pass of the repeated hour: opens again in the second",
      window: { timeZone: "Europe/Berlin", allow: [{ start: "02:30", end: "02:45" }] },
      now: "2026-10-25T00:50:00Z",
      open: false,
      nextChange: "2026-10-25T01:30:00.000Z",
      span: "02:30-02:45",
    },
    {
      name: "New York, the eve of DST: opens at 22:00 EST",
      window: nightly("America/New_York"),
      now: "2026-03-07T12:00:00Z",
      open: false,
      nextChange: "2026-03-08T03:00:00.000Z",
      span: "22:00-05:00",
    },
    {
      name: "New York, in the night DST starts: closes at 05:00 EDT",
      window: nightly("America/New_York"),
      now: "2026-03-08T04:00:00Z",
      open: true,
      nextChange: "2026-03-08T09:00:00.000Z",
      span: "",
    },
    {
      name: "New York, business-hours blackout on the Friday before DST ends: opens 18:00 EDT",
      window: { timeZone: "America/New_York", blackout: [{ start: "08:00", end: "18:00", days: ["Mon", "Tue", "Wed", "Thu", "Fri"] }] },
      now: "2026-10-30T14:00:00Z",
      open: false,
      nextChange: "2026-10-30T22:00:00.000Z",
      span: "18:00-08:00",
    },
    {
      name: "New York, the same blackout over the weekend DST ends: closes Monday 08:00 EST",
      window: { timeZone: "America/New_York", blackout: [{ start: "08:00", end: "18:00", days: ["Mon", "Tue", "Wed", "Thu", "Fri"] }] },
      now: "2026-10-31T12:00:00Z",
      open: true,
      nextChange: "2026-11-02T13:00:00.000Z",
      span: "",
    },
    {
      name: "New York, the night DST ends: a span in the repeated hour opens again in EST",
      window: { timeZone: "America/New_York", allow: [{ start: "01:30", end: "01:45" }] },
      now: "2026-11-01T05:50:00Z",
      open: false,
      nextChange: "2026-11-01T06:30:00.000Z",
      span: "01:30-01:45",
    },
    {
      name: "a span crossing midnight belongs to the day it starts: Friday's night, Saturday 01:00",
      window: { allow: [{ start: "22:00", end: "02:00", days: ["Fri"] }] },
      now: "2026-01-03T01:00:00Z",
      open: true,
      nextChange: "2026-01-03T02:00:00.000Z",
      span: "",
    },
    {
      name: "Saturday 03:00, past Friday's night: opens next Friday",
      window: { allow: [{ start: "22:00", end: "02:00", days: ["Fri"] }] },
      now: "2026-01-03T03:00:00Z",
      open: false,
      nextChange: "2026-01-09T22:00:00.000Z",
      span: "22:00-02:00",
    },
    {
      name: "blackouts that join up are read as one: opens at the end of the last",
      window: {
        blackout: [
          { start: "08:00", end: "12:00" },
          { start: "12:00", end: "18:00" },
        ],
      },
      now: "2026-01-05T09:00:00Z",
      open: false,
      nextChange: "2026-01-05T18:00:00.000Z",
      span: "18:00-08:00",
    },
    {
      name: "a window that never opens",
      window: {
        blackout: [
          { start: "00:00", end: "12:00" },
          { start: "12:00", end: "00:00" },
        ],
      },
      now: "2026-01-05T09:00:00Z",
      open: false,
      nextChange: "Infinity",
      span: "never",
    },
  ])("$name", ({ window, now, open, nextChange, span }) => {
    const c = windowClock(oneWindow(window), 0, Date.parse(now));
    expect({ open: c.open, nextChange: iso(c.nextChange), span: open ? "" : c.wait.span }).toEqual({ open, nextChange, span });
  });
});

describe("which window governs a backup: the first whose selector matches (every field given must match)", () => {
  const windows = windowsPolicy([
    { name: "shop-nights", selector: { namespaces: ["shop-*"], matchLabels: { tier: "heavy" } }, allow: [{ start: "22:00", end: "05:00" }] },
    { name: "payroll", selector: { schedules: ["payroll"] }, blackout: [{ start: "08:00", end: "18:00" }] },
    { name: "everything", selector: { namespaces: ["*"] }, blackout: [{ start: "12:00", end: "13:00" }] },
  ]).windows!;
  it.each<{ name: string; included: string[] | undefined; labels: Record<string, string>; expected: string | undefined }>([
    { name: "namespace glob and label both match", included: ["shop-eu"], labels: { tier: "heavy" }, expected: "shop-nights" },
    { name: "the label is missing: the next window that matches", included: ["shop-eu"], labels: {}, expected: "everything" },
    { name: "one of several namespaces matching is enough", included: ["web", "shop-us"], labels: { tier: "heavy" }, expected: "shop-nights" },
    { name: "a schedule's run", included: ["hr"], labels: { "velero.io/schedule-name": "payroll" }, expected: "payroll" },
    { name: "a backup of every namespace (none listed) matches the glob *", included: undefined, labels: {}, expected: "everything" },
    { name: "an explicit * matches the glob *", included: ["*"], labels: {}, expected: "everything" },
  ])("$name", ({ included, labels, expected }) => {
    const b = cluster(backup("x", included ? { includedNamespaces: included } : {}, { labels })).backups[0] as BackupInfo;
    const i = windowOf(b, windows);
    expect(i === undefined ? undefined : windows[i]?.name).toBe(expected);
  });
});

// Plans at one instant: 2026-01-05 is a Monday; times in UTC.
const MON_NOON = Date.parse("2026-01-05T12:00:00Z");
// Each namespace has a volume, so two backups of one namespace conflict.
const estate = () => [
  ns("shop"),
  ns("web"),
  ns("hr"),
  ...["shop", "web", "hr"].flatMap((n) => [pod(n, "app", { claims: ["data"] }), ...boundClaim(n, "data")]),
];
const nightly = { name: "nightly", selector: { schedules: ["heavy"] }, timeZone: "Europe/Berlin", allow: [{ start: "22:00", end: "05:00" }] };
const heavy = (name: string, o: { created?: string; included?: string[]; phase?: string; annotations?: Record<string, string> } = {}) =>
  backup(
    name,
    { includedNamespaces: o.included ?? ["shop"] },
    { created: o.created ?? "2026-01-05T11:00:00Z", labels: { "velero.io/schedule-name": "heavy" }, ...o },
  );
const light = (name: string, included: string[], created = "2026-01-05T11:30:00Z") => backup(name, { includedNamespaces: included }, { created });
const started = (p: Plan) => p.promotions.map((x) => x.backup);
const queued = (p: Plan) => p.queue.map((q) => q.backup);

describe("the rule in the plan: outside its window a backup waits, queued behind those that may start", () => {
  it.each<{
    name: string;
    window: object;
    backups: object[];
    now: string;
    started: string[];
    queue: string[];
    missed: string[];
    reasonOf?: string;
    reason?: string;
  }>([
    {
      name: "outside its window: waits, with the span and zone",
      window: nightly,
      backups: [heavy("h")],
      now: "2026-01-05T12:00:00Z",
      started: [],
      queue: ["h"],
      missed: [],
      reasonOf: "h",
      reason: "waits for its window 22:00-05:00 (Europe/Berlin): nightly opens Mon 2026-01-05 22:00",
    },
    { name: "inside its window: starts", window: nightly, backups: [heavy("h")], now: "2026-01-05T22:30:00Z", started: ["h"], queue: [], missed: [] },
    {
      name: "a backup no window selects starts at any time",
      window: nightly,
      backups: [light("l", ["shop"])],
      now: "2026-01-05T12:00:00Z",
      started: ["l"],
      queue: [],
      missed: [],
    },
    {
      name: "a held backup blocks none behind it: a later backup of the same namespace starts",
      window: nightly,
      backups: [heavy("h", { included: ["shop", "web"] }), light("l", ["shop"])],
      now: "2026-01-05T12:00:00Z",
      started: ["l"],
      queue: ["h"],
      missed: [],
    },
    {
      name: "held, it queues behind a waiting backup created after it, and names whom it would wait behind next",
      window: nightly,
      backups: [
        heavy("h", { included: ["web"] }),
        light("run", ["web"]),
        backup("later", { includedNamespaces: ["web"] }, { created: "2026-01-05T11:40:00Z" }),
      ],
      now: "2026-01-05T12:00:00Z",
      started: ["run"],
      queue: ["later", "h"],
      missed: [],
      reasonOf: "h",
      reason: "waits for its window 22:00-05:00 (Europe/Berlin): nightly opens Mon 2026-01-05 22:00; then waits behind",
    },
    {
      name: "past maxWaitSeconds with onMaxWait Start: started anyway, and the start reason says so",
      window: { ...nightly, maxWaitSeconds: 1800 },
      backups: [heavy("h")],
      now: "2026-01-05T12:00:00Z",
      started: ["h"],
      queue: [],
      missed: [],
      reasonOf: "h",
      reason: "outside its window 22:00-05:00 (Europe/Berlin), started anyway after waiting 1800s (nightly: onMaxWait Start)",
    },
    {
      name: "before maxWaitSeconds: still waits, and the reason says what happens after",
      window: { ...nightly, maxWaitSeconds: 7200, onMaxWait: "Fail" },
      backups: [heavy("h")],
      now: "2026-01-05T12:00:00Z",
      started: [],
      queue: ["h"],
      missed: [],
      reasonOf: "h",
      reason: "; after 7200s of waiting it is failed",
    },
    {
      name: "past maxWaitSeconds with onMaxWait Fail: failed, out of the queue",
      window: { ...nightly, maxWaitSeconds: 1800, onMaxWait: "Fail" },
      backups: [heavy("h"), light("l", ["web"])],
      now: "2026-01-05T12:00:00Z",
      started: ["l"],
      queue: [],
      missed: ["h"],
      reasonOf: "h",
      reason: "waited past 1800s (maxWaitSeconds) outside its window 22:00-05:00 (Europe/Berlin): not started (nightly: onMaxWait Fail)",
    },
    {
      name: "a business-hours blackout: waits for the evening",
      window: {
        selector: { namespaces: ["shop"] },
        timeZone: "America/New_York",
        blackout: [{ start: "08:00", end: "18:00", days: ["Mon", "Tue", "Wed", "Thu", "Fri"] }],
      },
      backups: [light("l", ["shop"])],
      now: "2026-01-05T15:00:00Z",
      started: [],
      queue: ["l"],
      missed: [],
      reasonOf: "l",
      reason: "waits for its window 18:00-08:00 (America/New_York): windows[0] opens Mon 2026-01-05 18:00",
    },
  ])("$name", ({ window, backups, now, started: s, queue, missed, reasonOf, reason }) => {
    const p = plan(cluster(...estate(), ...backups), windowsPolicy([window]), Date.parse(now));
    expect({ started: started(p), queue: queued(p), missed: (p.missedWindows ?? []).map((m) => m.backup) }).toEqual({ started: s, queue, missed });
    if (reasonOf) {
      const said = [...p.promotions, ...p.queue, ...(p.missedWindows ?? [])].find((x) => x.backup === reasonOf)?.reason;
      expect(said).toContain(reason);
    }
  });

  it("without a windows section the plan carries no missedWindows key (today's plan, bit for bit)", () => {
    const p = plan(cluster(...estate(), heavy("h")), policySchema.parse({}), MON_NOON);
    expect("missedWindows" in p).toBe(false);
    expect(started(p)).toEqual(["h"]);
  });

  it("a tenant reads the span and zone, no other backup's name", () => {
    const policy = windowsPolicy([nightly], { tenants: {} });
    const mine = heavy("team-a-nightly", { included: ["shop"], annotations: { [ORIGIN_NAMESPACE]: "shop" } });
    const p = plan(cluster(...estate(), mine, light("other-tenants-run", ["shop"])), policy, MON_NOON);
    const entry = p.queue.find((q) => q.backup === "team-a-nightly");
    expect(entry?.tenantReason).toBe("waits for its window 22:00-05:00 (Europe/Berlin); then waits behind 1 other backup of its namespaces");
    expect(entry?.reason).toContain("waits for its window 22:00-05:00 (Europe/Berlin)");
  });
});

describe("the plan's validity ends at the next window boundary", () => {
  const policy = windowsPolicy([nightly]);
  const snapshot = cluster(...estate(), heavy("h"));
  const opens = Date.parse("2026-01-05T21:00:00Z"); // 22:00 in Berlin
  const validUntil = (p: Plan) => MadePlan.memoryOf(p)?.orderValidUntil;

  it("says so: the plan made at noon is valid until the window opens", () => {
    expect(iso(validUntil(plan(snapshot, policy, MON_NOON)) ?? NaN)).toBe(iso(opens));
  });

  it.each<{ name: string; later: number; made: string; started: string[] }>([
    { name: "positive control: a plan made before the window opens is built on before it opens", later: opens - 60_000, made: "incremental", started: [] },
    { name: "at the opening, the earlier plan is not reused: made afresh, the backup starts", later: opens, made: "afresh", started: ["h"] },
  ])("$name", ({ later, made, started: s }) => {
    const cache = new ScopeCache();
    const before = plan(snapshot, policy, MON_NOON, { cache });
    const after = plan(snapshot, policy, later, { cache, previous: before });
    expect({ made: howMade(after), started: started(after) }).toEqual({ made, started: s });
  });

  it("ends at a max wait too", () => {
    const p = plan(snapshot, windowsPolicy([{ ...nightly, maxWaitSeconds: 7200 }]), MON_NOON);
    expect(iso(validUntil(p) ?? NaN)).toBe("2026-01-05T13:00:00.000Z");
  });

  it.each<{ name: string; policy: Policy; wake: string | undefined }>([
    { name: "the controller wakes at the opening (planWakeAt)", policy: windowsPolicy([nightly]), wake: iso(opens) },
    { name: "and at a max wait", policy: windowsPolicy([{ ...nightly, maxWaitSeconds: 7200 }]), wake: "2026-01-05T13:00:00.000Z" },
    {
      name: "aging steps alone never wake it (control: the plan's validity does end at one)",
      policy: policySchema.parse({ priorities: { agingSeconds: 600 } }),
      wake: undefined,
    },
  ])("$name", ({ policy: p, wake }) => {
    const made = plan(snapshot, p, MON_NOON);
    const at = planWakeAt(made);
    expect(Number.isFinite(at) ? iso(at) : undefined).toBe(wake);
    if (!p.windows) expect(validUntil(made)).toBeLessThan(Infinity);
  });
});

describe("the writes: a missed window fails the backup with its reason (Velero's Failed, failureReason)", () => {
  it.each<{ name: string; tenant: boolean; failureReason: string }>([
    {
      name: "an administrator's backup reads the full reason",
      tenant: false,
      failureReason: "waited past 1800s (maxWaitSeconds) outside its window 22:00-05:00 (Europe/Berlin): not started (nightly: onMaxWait Fail)",
    },
    {
      name: "a tenant's backup reads the tenant-safe reason",
      tenant: true,
      failureReason: "waited past 1800s (maxWaitSeconds) outside its window 22:00-05:00 (Europe/Berlin): not started",
    },
  ])("$name", ({ tenant, failureReason }) => {
    const policy = windowsPolicy([{ ...nightly, maxWaitSeconds: 1800, onMaxWait: "Fail" }], { tenants: {} });
    const snapshot = cluster(...estate(), heavy("h", { phase: "Queued", ...(tenant ? { annotations: { [ORIGIN_NAMESPACE]: "shop" } } : {}) }));
    const p = plan(snapshot, policy, MON_NOON);
    const { writes } = planWrites(p, snapshot.backups, { policy, now: MON_NOON, identity: "gate", sealer: testSealer });
    const w = writes.find((x) => x.backup === "h");
    expect(w).toMatchObject({
      kind: "missWindow",
      status: { phase: "Failed", failureReason },
      annotations: { "backup-gate.io/reason": expect.stringContaining("onMaxWait Fail") },
      event: { type: "Warning", reason: "WindowMissed" },
    });
    if (tenant) for (const text of tenantReadable(w!)) expect(text).not.toContain("nightly");
  });
});

// --- invariants over generated queues and windows ---

const NOW = T0 + 121 * 60_000;
const hhmm = (h: number) => `${String(h).padStart(2, "0")}:00`;
const spanArb = fc
  .tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 1, max: 23 }))
  .map(([start, length]) => ({ start: hhmm(start), end: hhmm((start + length) % 24) }));
const windowArb = fc.record({
  selector: fc.constantFrom({}, { schedules: ["s1"] }, { schedules: ["s2"] }, { namespaces: ["shop*", "web"] }, { namespaces: ["*"] }),
  timeZone: fc.constantFrom("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"),
  kind: fc.constantFrom("allow", "blackout"),
  spans: fc.array(spanArb, { minLength: 1, maxLength: 2 }),
  maxWait: fc.constantFrom(undefined, 600, 7200),
  onMaxWait: fc.constantFrom("Start", "Fail"),
});
const windowsArb = fc.tuple(policyArb, fc.array(windowArb, { minLength: 1, maxLength: 3 })).map(([policy, ws]) =>
  policySchema.parse({
    ...policy,
    windows: ws.map((w) => ({
      selector: w.selector,
      timeZone: w.timeZone,
      [w.kind]: w.spans,
      ...(w.maxWait ? { maxWaitSeconds: w.maxWait, onMaxWait: w.onMaxWait } : {}),
    })),
  }),
);
const scoped = (b: BackupInfo, view: ClusterView, policy: Policy): ScopedBackup => ({ name: b.name, phase: b.phase, scope: scopeOf(b, view, policy) });
const heldAt = (b: BackupInfo, policy: Policy, now: number) => {
  const s = windowStateOf(b, policy, now, new Timestamps());
  return s !== undefined && "held" in s ? s.held : s !== undefined;
};

describe("window properties", () => {
  /** The plan over the same queue with the backups held (or failed) by a window removed, and no windows. */
  const withoutHeld = (snapshot: ReturnType<typeof load>, policy: Policy, now: number, drop: boolean) => {
    const backups = drop ? snapshot.backups.filter((b) => !(QUEUED_PHASES.has(b.phase) && heldAt(b, policy, now))) : snapshot.backups;
    return plan({ ...snapshot, backups }, { ...policy, windows: undefined }, now);
  };
  const delaysOnly = (snapshot: ReturnType<typeof load>, policy: Policy, drop: boolean) => {
    const p = plan(snapshot, policy, NOW);
    const free = withoutHeld(snapshot, policy, NOW, drop);
    const held = p.queue.filter((q) => !free.queue.some((f) => f.backup === q.backup)).map((q) => q.backup);
    return (
      JSON.stringify(started(p)) === JSON.stringify(started(free)) &&
      JSON.stringify(queued(p)) === JSON.stringify([...queued(free).filter((n) => !held.includes(n)), ...held])
    );
  };
  const allow = (policy: Policy) => ({ ...policy, serialWorkloads: "Allow" as const });

  it("windows only delay: the backups free to start are decided as if the held ones were not there, in the same order", () => {
    fc.assert(
      fc.property(clusterModel, backupModels(), windowsArb, (model, backups, policy) => {
        expect(delaysOnly(load(model, backups), allow(policy), true)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("positive control: keeping the held backups in the comparison plan does show a difference", () => {
    const out = fc.check(
      fc.property(clusterModel, backupModels(), windowsArb, (model, backups, policy) => delaysOnly(load(model, backups), allow(policy), false)),
      { numRuns: 300 },
    );
    expect(out.failed).toBe(true);
  });

  it("never starts a held backup, never passes the limit, never starts two that conflict", () => {
    fc.assert(
      fc.property(clusterModel, backupModels(), windowsArb, (model, backups, policy) => {
        const snapshot = load(model, backups);
        const p = plan(snapshot, policy, NOW);
        const byName = new Map(snapshot.backups.map((b) => [b.name, b]));
        for (const x of p.promotions) expect(heldAt(byName.get(x.backup)!, policy, NOW), `${x.backup} started while held`).toBe(false);
        expect(p.promotions.length === 0 || p.inFlight.length + p.promotions.length <= policy.maxConcurrentBackups).toBe(true);
        const running = p.promotions.map((x) => scoped(byName.get(x.backup)!, snapshot.view, policy));
        const flying = p.inFlight.map((n) => scoped(byName.get(n)!, snapshot.view, policy));
        for (const [i, a] of running.entries())
          for (const b of [...flying, ...running.slice(i + 1)]) expect(conflictBetween(a, b), `${a.name} and ${b.name} run together`).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });

  it("is deterministic: the same queue in another order gives the same plan", () => {
    fc.assert(
      fc.property(clusterModel, backupModels(), windowsArb, fc.integer(), (model, backups, policy, seed) => {
        const snapshot = load(model, backups);
        const shuffled = [...snapshot.backups].sort((a, b) => (hash(a.name + seed) - hash(b.name + seed)) | 0 || (a.name < b.name ? -1 : 1));
        expect(JSON.stringify(plan({ ...snapshot, backups: shuffled }, policy, NOW))).toBe(JSON.stringify(plan(snapshot, policy, NOW)));
      }),
      { numRuns: 100 },
    );
  });

  /**
   * A small world: every backup waits at first and runs for its duration once started; time
   * moves to the next end of a run or the end of the plan's validity (a window opening, a max
   * wait). Says "done" when every backup has run or was failed, else where it got stuck; throws
   * if a backup starts while its window holds it.
   */
  const runToEnd = (snapshot0: ReturnType<typeof load>, policy: Policy, minutes: readonly number[]): string => {
    let snapshot = snapshot0;
    const ends = new Map<string, number>();
    const failed = new Set<string>();
    let now = NOW;
    // Aging ends a plan's validity every ten minutes: a day is some 150 steps.
    for (let step = 0; step < 3000; step++) {
      const phaseOf = (b: BackupInfo) =>
        failed.has(b.name) ? "Failed" : ends.has(b.name) ? ((ends.get(b.name) as number) <= now ? "Completed" : "InProgress") : b.phase;
      snapshot = { ...snapshot, backups: snapshot.backups.map((b) => (phaseOf(b) === b.phase ? b : { ...b, phase: phaseOf(b) })) };
      if (!snapshot.backups.some((b) => QUEUED_PHASES.has(b.phase) || b.phase === "InProgress")) return "done";
      const p = plan(snapshot, policy, now);
      for (const x of p.promotions) {
        if (
          heldAt(
            snapshot.backups.find((b) => b.name === x.backup)!,
            policy,
            now,
          )
        )
          throw new Error(`${x.backup} started at ${iso(now)} while held`);
        ends.set(x.backup, now + (minutes[Number(x.backup.slice(1)) % minutes.length] as number) * 60_000);
      }
      for (const m of p.missedWindows ?? []) failed.add(m.backup);
      if (p.promotions.length > 0 || (p.missedWindows ?? []).length > 0) continue;
      const next = Math.min(...[...ends.values()].filter((t) => t > now), MadePlan.memoryOf(p)?.orderValidUntil ?? Infinity);
      if (next === Infinity) return `stuck at ${iso(now)} with ${queued(p).join(",")}`;
      now = next;
    }
    return "not done in 3000 steps";
  };

  it("nothing starves: every backup starts (or is failed by its max wait), each only while its window allows", () => {
    fc.assert(
      fc.property(
        clusterModel,
        backupModels({ phases: ["Queued"], minLength: 1, maxLength: 6 }),
        windowsArb,
        fc.array(fc.integer({ min: 5, max: 180 }), { minLength: 6, maxLength: 6 }),
        (model, backups, policy, minutes) => {
          fc.pre(policy.windows!.every((w, i) => windowClock(w, i, NOW).open || windowClock(w, i, NOW).nextChange < Infinity || w.maxWaitSeconds));
          expect(runToEnd(load(model, backups), policy, minutes)).toBe("done");
        },
      ),
      { numRuns: 40 },
    );
  });

  it.each<{ name: string; windows: object[]; expected: string }>([
    {
      name: "positive control: a window that never opens, with no max wait, starves its backups (and the check says so)",
      windows: [
        {
          blackout: [
            { start: "00:00", end: "12:00" },
            { start: "12:00", end: "00:00" },
          ],
        },
      ],
      expected: "stuck at 2026-01-01T02:01:00.000Z with h1,h2",
    },
    {
      name: "the same window with a max wait: the backups start anyway",
      windows: [
        {
          blackout: [
            { start: "00:00", end: "12:00" },
            { start: "12:00", end: "00:00" },
          ],
          maxWaitSeconds: 3600,
        },
      ],
      expected: "done",
    },
  ])("$name", ({ windows, expected }) => {
    const snapshot = cluster(
      ...estate(),
      backup("h1", { includedNamespaces: ["shop"] }, { created: iso(T0), phase: "Queued" }),
      backup("h2", { includedNamespaces: ["web"] }, { created: iso(T0), phase: "Queued" }),
    );
    expect(runToEnd(snapshot, windowsPolicy(windows), [30])).toBe(expected);
  });

  it("positive control: the held-start check fails on a plan that ignores windows", () => {
    const out = fc.check(
      fc.property(clusterModel, backupModels(), windowsArb, (model, backups, policy) => {
        const snapshot = load(model, backups);
        const p = plan(snapshot, { ...policy, windows: undefined }, NOW);
        return p.promotions.every(
          (x) =>
            !heldAt(
              snapshot.backups.find((b) => b.name === x.backup)!,
              policy,
              NOW,
            ),
        );
      }),
      { numRuns: 300 },
    );
    expect(out.failed).toBe(true);
  });
});

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
  return h;
}
