import { describe, expect, it } from "vitest";
import { plan } from "../../src/core/decision/plan.js";
import { DEFAULT_POLICY, type Policy } from "../../src/core/policy.js";
import { planWrites, type BackupWrite } from "../../src/core/decision/writes.js";
import { ScopeCache } from "../../src/core/scope/cache.js";
import type { BackupInfo } from "../../src/core/model.js";
import { backup, ns } from "../support/builders.js";
import { cluster } from "./support/cluster.js";
import { testSealer } from "./support/sealer.js";

// From plan to writes: the fewest writes that make the cluster show the plan.

const NOW = Date.parse("2026-01-01T12:00:00Z");
const policy: Policy = { ...DEFAULT_POLICY, maxConcurrentBackups: 1, priorities: { ...DEFAULT_POLICY.priorities, agingSeconds: 0 } };
const ctx = (over: Partial<Parameters<typeof planWrites>[2]> = {}) => ({ policy, now: NOW, identity: "gate-0", sealer: testSealer, ...over });
const created = (min: number) => new Date(NOW - (60 - min) * 60_000).toISOString();
const writesFor = (backups: object[], over: Partial<Parameters<typeof planWrites>[2]> = {}) => {
  const s = cluster(ns("a"), ...backups);
  return planWrites(plan(s, over.policy ?? policy, NOW), s.backups, ctx(over));
};
const kinds = (ws: readonly BackupWrite[]) => ws.map((w) => `${w.kind} ${w.backup}`);

const queued = (name: string, min: number, position: number, annotations: Record<string, string> = {}) => ({
  ...backup(
    name,
    { includedNamespaces: ["a"] },
    {
      phase: "Queued",
      created: created(min),
      annotations: {
        "backup-gate.io/conflict-level": "ItemBlock",
        "backup-gate.io/conflict-level-source": "gate",
        "backup-gate.io/waiting-for": "",
        "backup-gate.io/reason": "waits for a free slot: 1 of 1 backups in flight",
        ...annotations,
      },
    },
  ),
  status: { phase: "Queued", queuePosition: position },
});
const running = backup("running", { includedNamespaces: ["a"] }, { phase: "InProgress", created: created(0) });

describe("planWrites", () => {
  it("promotes through an update that marks the promoter and clears the wait", () => {
    const { writes } = writesFor([backup("b1", { includedNamespaces: ["a"] }, { phase: "Queued", created: created(0) })]);
    expect(writes).toEqual([
      expect.objectContaining({
        kind: "promote",
        backup: "b1",
        resourceVersion: expect.any(String),
        status: { phase: "ReadyToStart", queuePosition: 0 },
        annotations: expect.objectContaining({
          "backup-gate.io/promoted-by": "gate-0",
          "backup-gate.io/promoted-at": "2026-01-01T12:00:00.000Z",
          "backup-gate.io/waiting-for": null,
          "backup-gate.io/promotion-seal": "test-seal:uid-b1:gate-0:2026-01-01T12:00:00.000Z",
        }),
        event: expect.objectContaining({ reason: "Started", message: expect.stringMatching(/^ReadyToStart after waiting 3600s: /) }),
      }),
    ]);
  });

  it("queues a New backup with its position, level and reason in one write, with a Queued event", () => {
    const { writes } = writesFor([
      backup("running", { includedNamespaces: ["a"] }, { phase: "InProgress", created: created(0) }),
      backup("new", { includedNamespaces: ["a"] }, { phase: "New", created: created(1) }),
    ]);
    expect(writes).toEqual([
      expect.objectContaining({
        kind: "enqueue",
        backup: "new",
        status: { phase: "Queued", queuePosition: 1 },
        annotations: {
          "backup-gate.io/conflict-level": "ItemBlock",
          "backup-gate.io/conflict-level-source": "gate",
          "backup-gate.io/waiting-for": "",
          "backup-gate.io/reason": "waits for a free slot: 1 of 1 backups in flight",
        },
        event: expect.objectContaining({ reason: "Queued" }),
      }),
    ]);
  });

  it.each<{ name: string; backups: object[]; expected: string[] }>([
    { name: "positions already right: no write", backups: [running, queued("q1", 1, 1), queued("q2", 2, 2)], expected: [] },
    { name: "stale positions wait while nothing is dequeued", backups: [running, queued("q1", 1, 2), queued("q2", 2, 3)], expected: [] },
    {
      name: "a dequeue pays for one correction, spent on the stalest position (the new next backup first)",
      backups: [
        backup("done", { includedNamespaces: ["a"] }, { phase: "Completed", created: created(0) }),
        queued("q0", 0, 1),
        queued("q1", 1, 2),
        queued("q2", 2, 3),
      ],
      expected: ["promote q0", "position q1"],
    },
  ])("$name", ({ backups, expected }) => {
    expect(kinds(writesFor(backups).writes)).toEqual(expected);
  });

  it("nudges a ReadyToStart backup Velero has not picked up in nudgeAfterSeconds, and not before", () => {
    const promoted = (at: number) => {
      const promotedAt = new Date(NOW - at * 1000).toISOString();
      return backup(
        "r",
        { includedNamespaces: ["a"] },
        {
          phase: "ReadyToStart",
          annotations: {
            "backup-gate.io/promoted-by": "gate-0",
            "backup-gate.io/promoted-at": promotedAt,
            "backup-gate.io/promotion-seal": testSealer.seal({ uid: "uid-r", promotedBy: "gate-0", promotedAt }),
          },
        },
      );
    };
    expect(kinds(writesFor([promoted(61)]).writes)).toEqual(["nudge r"]);
    expect(kinds(writesFor([promoted(30)]).writes)).toEqual([]);
  });

  it("names a ReadyToStart backup without the promoter's mark as foreign, and does not nudge it", () => {
    const w = writesFor([backup("x", { includedNamespaces: ["a"] }, { phase: "ReadyToStart" })]);
    expect(w.foreign).toEqual(["x"]);
    expect(w.writes).toEqual([]);
  });

  it("fails a superseded run with the reason (Replace)", () => {
    const sched = { labels: { "velero.io/schedule-name": "s" } };
    const { writes } = writesFor(
      [
        backup("run-1", { includedNamespaces: ["a"] }, { ...sched, phase: "InProgress", created: created(0) }),
        backup("run-2", { includedNamespaces: ["a"] }, { ...sched, phase: "Queued", created: created(1) }),
        backup("run-3", { includedNamespaces: ["a"] }, { ...sched, phase: "New", created: created(2) }),
      ],
      { policy: { ...policy, serialWorkloads: "Replace" } },
    );
    expect(writes.find((w) => w.kind === "supersede")).toMatchObject({
      backup: "run-2",
      status: { phase: "Failed", failureReason: "superseded by run-3, a newer run of schedule s (serialWorkloads: Replace)" },
    });
  });
});

describe("pacing: draining a queue of 1,000 costs at most 2 writes per dequeue", () => {
  it("counts promotions and position writes over a full drain, one backup in flight at a time", () => {
    const s = cluster(ns("a"), ...Array.from({ length: 1000 }, (_, i) => queued(`q${String(i).padStart(4, "0")}`, 1, i + 1)));
    const state = new Map<string, BackupInfo>(s.backups.map((b) => [b.name, { ...b, specHash: "same" }]));
    const scopes = new ScopeCache();
    let writes = 0;
    let dequeues = 0;
    let now = NOW;
    while ([...state.values()].some((b) => b.phase !== "Completed")) {
      const backups = [...state.values()];
      const p = plan({ view: s.view, backups }, policy, now, { cache: scopes });
      const w = planWrites(p, backups, { policy, now, identity: "gate-0", sealer: testSealer });
      for (const write of w.writes) {
        const b = state.get(write.backup)!;
        state.set(b.name, {
          ...b,
          phase: write.status?.phase ?? b.phase,
          queuePosition: write.status?.queuePosition ?? b.queuePosition,
          annotations: {
            ...b.annotations,
            ...(Object.fromEntries(Object.entries(write.annotations ?? {}).filter(([, v]) => v !== null)) as Record<string, string>),
          },
        });
        writes++;
        if (write.kind === "promote") dequeues++;
      }
      // The running backup completes before the next event (backups take minutes; events are ms apart).
      for (const b of state.values()) if (b.phase === "ReadyToStart") state.set(b.name, { ...b, phase: "Completed" });
      now += 5_000;
    }
    expect(dequeues).toBe(1000);
    expect(writes / dequeues).toBeLessThanOrEqual(2);
  }, 60_000);
});
