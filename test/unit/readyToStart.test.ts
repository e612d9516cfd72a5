import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HmacSealer } from "../../src/controller/promotionSeal.js";
import { plan } from "../../src/core/decision/plan.js";
import { DEFAULT_POLICY, type Policy } from "../../src/core/policy.js";
import { nudgeDecision, takeBacks, type InFlightBackup, type NudgeCandidate, type OverlapPair } from "../../src/core/decision/readyToStart.js";
import { planWrites, promotedByGate } from "../../src/core/decision/writes.js";
import type { BackupInfo } from "../../src/core/model.js";
import { backup, ns } from "../support/builders.js";
import { cluster } from "./support/cluster.js";
import { testSealer } from "./support/sealer.js";

// ReadyToStart backups Velero has not started: which go back to Queued when they overlap, which
// may be nudged, and whose promoted-by annotation the gate trusts (only one its own seal matches).

const inFlight = (backup: string, phase: "ReadyToStart" | "InProgress", promotedByGate = true): InFlightBackup => ({ backup, phase, promotedByGate });
const pair = (a: string, b: string): OverlapPair => ({ backups: [a, b], reason: `${a} and ${b} are in flight together: both in namespace shop` });

describe("takeBacks: which of two overlapping in-flight backups goes back to Queued", () => {
  it.each<{ name: string; inFlight: InFlightBackup[]; overlaps: OverlapPair[]; back: string[] }>([
    { name: "no overlap: nothing goes back", inFlight: [inFlight("a", "ReadyToStart"), inFlight("b", "ReadyToStart")], overlaps: [], back: [] },
    {
      name: "two ReadyToStart, both the gate's: the later in queue order",
      inFlight: [inFlight("a", "ReadyToStart"), inFlight("b", "ReadyToStart")],
      overlaps: [pair("a", "b")],
      back: ["b"],
    },
    {
      name: "queue order decides, not the pair's order",
      inFlight: [inFlight("b", "ReadyToStart"), inFlight("a", "ReadyToStart")],
      overlaps: [pair("a", "b")],
      back: ["a"],
    },
    {
      name: "never one InProgress: the ReadyToStart one goes back even when it is first in queue order",
      inFlight: [inFlight("a", "ReadyToStart"), inFlight("b", "InProgress")],
      overlaps: [pair("a", "b")],
      back: ["a"],
    },
    {
      name: "two InProgress: Velero runs both; nothing to take back",
      inFlight: [inFlight("a", "InProgress"), inFlight("b", "InProgress")],
      overlaps: [pair("a", "b")],
      back: [],
    },
    {
      name: "another writer's promotion goes back before the gate's own, whatever the queue order",
      inFlight: [inFlight("a", "ReadyToStart", false), inFlight("b", "ReadyToStart")],
      overlaps: [pair("a", "b")],
      back: ["a"],
    },
    {
      name: "two foreign ReadyToStart: the later in queue order",
      inFlight: [inFlight("a", "ReadyToStart", false), inFlight("b", "ReadyToStart", false)],
      overlaps: [pair("b", "a")],
      back: ["b"],
    },
    {
      name: "a chain a-b-c: b goes back, c then overlaps nothing kept and stays",
      inFlight: [inFlight("a", "ReadyToStart"), inFlight("b", "ReadyToStart"), inFlight("c", "ReadyToStart")],
      overlaps: [pair("a", "b"), pair("b", "c")],
      back: ["b"],
    },
    {
      name: "one InProgress overlapping two ReadyToStart: both go back",
      inFlight: [inFlight("x", "ReadyToStart"), inFlight("y", "ReadyToStart"), inFlight("run", "InProgress")],
      overlaps: [pair("run", "x"), pair("run", "y")],
      back: ["x", "y"],
    },
  ])("$name", ({ inFlight: backups, overlaps, back }) => {
    const result = takeBacks(backups, overlaps);
    expect(result.map((t) => t.backup).sort()).toEqual(back);
    for (const t of result) {
      expect(t.reason).toMatch(/^taken back to Queued before Velero started it: .+ are in flight together: .+; it waits its turn again$/);
      // What it went back for stays in flight, and is never itself taken back.
      for (const o of t.overlaps) expect(back).not.toContain(o);
    }
  });

  it("for any in-flight set and overlaps: no InProgress backup goes back, no overlapping pair stays unless both are InProgress, and each one back overlaps one that stays", () => {
    const names = ["a", "b", "c", "d", "e", "f"];
    const arb = fc.record({
      backups: fc.array(fc.record({ phase: fc.constantFrom("ReadyToStart", "InProgress"), promotedByGate: fc.boolean() }), {
        minLength: names.length,
        maxLength: names.length,
      }),
      edges: fc.uniqueArray(
        fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 })).filter(([x, y]) => x < y),
        { maxLength: 15, selector: ([x, y]) => `${x}-${y}` },
      ),
    });
    fc.assert(
      fc.property(arb, ({ backups, edges }) => {
        const inFlightSet = backups.map((b, i) => inFlight(names[i]!, b.phase, b.promotedByGate));
        const overlaps = edges.map(([x, y]) => pair(names[x]!, names[y]!));
        const result = takeBacks(inFlightSet, overlaps);
        const back = new Set(result.map((t) => t.backup));
        const phase = (n: string) => inFlightSet.find((b) => b.backup === n)!.phase;
        for (const n of back) expect(phase(n)).toBe("ReadyToStart");
        for (const o of overlaps) {
          const [x, y] = o.backups;
          if (!back.has(x) && !back.has(y)) expect([phase(x), phase(y)]).toEqual(["InProgress", "InProgress"]);
        }
        for (const t of result) {
          expect(t.overlaps.length).toBeGreaterThan(0);
          for (const o of t.overlaps) expect(back.has(o)).toBe(false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("never takes back an InProgress backup, nor leaves two overlapping backups in flight unless both are InProgress (all phase mixes of 3)", () => {
    const names = ["a", "b", "c"];
    const overlaps = [pair("a", "b"), pair("b", "c"), pair("a", "c")];
    const phases = ["ReadyToStart", "InProgress"] as const;
    for (let mask = 0; mask < 64; mask++) {
      const backups = names.map((n, i) => inFlight(n, phases[(mask >> i) & 1]!, ((mask >> (i + 3)) & 1) === 1));
      const back = new Set(takeBacks(backups, overlaps).map((t) => t.backup));
      const stays = backups.filter((b) => !back.has(b.backup));
      for (const b of backups) if (b.phase === "InProgress") expect(back.has(b.backup)).toBe(false);
      for (const o of overlaps) {
        const [x, y] = o.backups.map((n) => stays.find((s) => s.backup === n));
        if (x && y) expect([x.phase, y.phase]).toEqual(["InProgress", "InProgress"]);
      }
    }
  });
});

describe("nudgeDecision: which ReadyToStart backups the gate may update so that Velero sees them", () => {
  const base: NudgeCandidate = { backup: "r", phase: "ReadyToStart", promotedByGate: true, overlaps: false, idleMs: 61_000 };
  it.each<{ name: string; candidate: Partial<NudgeCandidate>; nudge: boolean; reason: RegExp }>([
    {
      name: "the gate's own, overlapping nothing, idle past nudgeAfterSeconds",
      candidate: {},
      nudge: true,
      reason: /^still ReadyToStart after 61s; updated so that Velero sees it$/,
    },
    { name: "not idle long enough", candidate: { idleMs: 30_000 }, nudge: false, reason: /touched 30s ago; nudged after 60s/ },
    {
      name: "not promoted by the gate (a forged or foreign promotion)",
      candidate: { promotedByGate: false },
      nudge: false,
      reason: /record does not show that it promoted/,
    },
    { name: "part of an overlap, even the gate's own promotion", candidate: { overlaps: true }, nudge: false, reason: /overlaps another backup in flight/ },
    { name: "part of an overlap and foreign", candidate: { overlaps: true, promotedByGate: false }, nudge: false, reason: /record does not show/ },
    { name: "already started by Velero", candidate: { phase: "InProgress" }, nudge: false, reason: /only a ReadyToStart backup/ },
  ])("$name", ({ candidate, nudge, reason }) => {
    const d = nudgeDecision({ ...base, ...candidate }, 60_000);
    expect(d.nudge).toBe(nudge);
    expect(d.reason).toMatch(reason);
  });
});

describe("promotedByGate: the promoted-by annotation is trusted only with the gate's seal", () => {
  const key = Buffer.alloc(32, 7);
  const sealer = new HmacSealer(key);
  const AT = "2026-01-01T12:00:00.000Z";
  const genuine = {
    "backup-gate.io/promoted-by": "gate-0",
    "backup-gate.io/promoted-at": AT,
    "backup-gate.io/promotion-seal": sealer.seal({ uid: "uid-1", promotedBy: "gate-0", promotedAt: AT }),
  };
  const info = (annotations: Record<string, string>, uid = "uid-1") =>
    ({
      namespace: "velero",
      name: "b",
      uid,
      resourceVersion: "1",
      labels: {},
      annotations,
      creationTimestamp: AT,
      spec: {},
      phase: "ReadyToStart",
    }) as BackupInfo;
  it.each<{ name: string; backup: BackupInfo; trusted: boolean; using?: HmacSealer }>([
    { name: "sealed by the gate (positive control)", backup: info(genuine), trusted: true },
    {
      name: "promoted-by and promoted-at written by another writer, no seal",
      backup: info({ "backup-gate.io/promoted-by": "gate-0", "backup-gate.io/promoted-at": AT }),
      trusted: false,
    },
    { name: "a made-up seal", backup: info({ ...genuine, "backup-gate.io/promotion-seal": "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }), trusted: false },
    { name: "a genuine seal copied onto another backup (another uid)", backup: info(genuine, "uid-2"), trusted: false },
    {
      name: "promoted-at moved (a replayed or edited promotion)",
      backup: info({ ...genuine, "backup-gate.io/promoted-at": "2026-01-01T12:05:00.000Z" }),
      trusted: false,
    },
    { name: "promoted-by changed", backup: info({ ...genuine, "backup-gate.io/promoted-by": "someone" }), trusted: false },
    { name: "sealed under another install's key", backup: info(genuine), trusted: false, using: new HmacSealer(Buffer.alloc(32, 8)) },
    { name: "no uid (not yet created)", backup: info(genuine, ""), trusted: false },
  ])("$name: trusted=$trusted", ({ backup: b, trusted, using }) => {
    expect(promotedByGate(b, using ?? sealer)).toBe(trusted);
  });

  it("refuses a key shorter than 32 bytes", () => {
    expect(() => new HmacSealer(Buffer.alloc(16))).toThrow(/at least 32/);
  });
});

describe("planWrites for ReadyToStart backups", () => {
  const NOW = Date.parse("2026-01-01T12:00:00Z");
  const policy: Policy = {
    ...DEFAULT_POLICY,
    conflictLevel: "Namespace",
    maxConcurrentBackups: 4,
    priorities: { ...DEFAULT_POLICY.priorities, agingSeconds: 0 },
  };
  const longAgo = new Date(NOW - 10 * 60_000).toISOString();
  const sealed = (name: string, o: { created: string; phase?: string }) =>
    backup(
      name,
      { includedNamespaces: ["shop"] },
      {
        phase: o.phase ?? "ReadyToStart",
        created: o.created,
        annotations: {
          "backup-gate.io/promoted-by": "gate-0",
          "backup-gate.io/promoted-at": longAgo,
          "backup-gate.io/promotion-seal": testSealer.seal({ uid: `uid-${name}`, promotedBy: "gate-0", promotedAt: longAgo }),
        },
      },
    );
  const writesFor = (...backups: object[]) => {
    const s = cluster(ns("shop"), ns("other"), ...backups);
    return planWrites(plan(s, policy, NOW), s.backups, { policy, now: NOW, identity: "gate-0", sealer: testSealer });
  };

  it("positive control: the gate's own ReadyToStart backup, idle past nudgeAfterSeconds, is nudged", () => {
    const w = writesFor(sealed("mine", { created: "2026-01-01T11:00:00Z" }));
    expect(w.writes.map((x) => `${x.kind} ${x.backup}`)).toEqual(["nudge mine"]);
    expect(w.foreign).toEqual([]);
  });

  it("a forged promoted-by annotation (no seal) is never nudged, and is named foreign", () => {
    const forged = backup(
      "forged",
      { includedNamespaces: ["shop"] },
      { phase: "ReadyToStart", annotations: { "backup-gate.io/promoted-by": "gate-0", "backup-gate.io/promoted-at": longAgo } },
    );
    const w = writesFor(forged);
    expect(w.writes).toEqual([]);
    expect(w.foreign).toEqual(["forged"]);
  });

  it("two overlapping ReadyToStart backups: the later goes back to Queued with a reason and an Event, and neither is nudged", () => {
    const w = writesFor(sealed("first", { created: "2026-01-01T11:00:00Z" }), sealed("second", { created: "2026-01-01T11:01:00Z" }));
    expect(w.writes).toEqual([
      {
        kind: "takeBack",
        backup: "second",
        resourceVersion: expect.any(String),
        status: { phase: "Queued" },
        annotations: {
          "backup-gate.io/taken-back": expect.stringMatching(/^taken back to Queued before Velero started it: first and second are in flight together: .*shop/),
          "backup-gate.io/reason": expect.stringMatching(/^taken back to Queued/),
          "backup-gate.io/promoted-by": null,
          "backup-gate.io/promoted-at": null,
          "backup-gate.io/promotion-seal": null,
          "backup-gate.io/nudged-at": null,
        },
        event: { type: "Warning", reason: "TakenBack", message: expect.stringMatching(/^taken back to Queued before Velero started it/) },
      },
    ]);
  });

  it("a ReadyToStart backup overlapping one InProgress goes back, whichever came first; the InProgress one is never written", () => {
    const w = writesFor(sealed("ready", { created: "2026-01-01T11:00:00Z" }), sealed("running", { created: "2026-01-01T11:01:00Z", phase: "InProgress" }));
    expect(w.writes.map((x) => `${x.kind} ${x.backup}`)).toEqual(["takeBack ready"]);
  });

  it("once taken back (Queued, no position), it is queued behind the one it overlapped with a position", () => {
    const back = { ...backup("second", { includedNamespaces: ["shop"] }, { phase: "Queued", created: "2026-01-01T11:01:00Z" }) };
    const w = writesFor(sealed("first", { created: "2026-01-01T11:00:00Z" }), back);
    expect(w.writes).toEqual([
      expect.objectContaining({
        kind: "enqueue",
        backup: "second",
        status: { phase: "Queued", queuePosition: 1 },
        annotations: expect.objectContaining({ "backup-gate.io/waiting-for": "first" }),
      }),
      expect.objectContaining({ kind: "nudge", backup: "first" }),
    ]);
  });
});
