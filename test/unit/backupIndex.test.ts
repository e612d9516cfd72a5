import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BackupIndex } from "../../src/core/backupIndex.js";
import { IN_FLIGHT_PHASES, KEYS, type BackupInfo } from "../../src/core/model.js";

// The index answers a review's two questions (who is in flight, which runs a Schedule has)
// from subsets it keeps as backups change: they must always equal filtering every backup.

const info = (namespace: string, name: string, phase: string, schedule?: string): BackupInfo => ({
  namespace,
  name,
  uid: `uid-${namespace}-${name}`,
  resourceVersion: "1",
  labels: schedule === undefined ? {} : { [KEYS.scheduleName]: schedule },
  annotations: {},
  creationTimestamp: "2026-01-01T00:00:00Z",
  spec: {},
  specHash: "h",
  phase,
});

const SCHEDULES = ["nightly", "hourly"];

function expectSubsetsMatch(index: BackupIndex): void {
  const all = index.all();
  expect(new Set(index.inFlight())).toEqual(new Set(all.filter((b) => IN_FLIGHT_PHASES.has(b.phase))));
  for (const s of SCHEDULES) {
    expect(new Set(index.runsOf(s))).toEqual(new Set(all.filter((b) => b.labels[KEYS.scheduleName] === s)));
  }
}

describe("the backup index", () => {
  it.each([
    {
      name: "a backup that starts is in flight",
      steps: [
        ["velero", "a", "New"],
        ["velero", "a", "InProgress"],
      ],
      flying: ["a"],
    },
    {
      name: "a backup that finishes leaves the flight",
      steps: [
        ["velero", "a", "InProgress"],
        ["velero", "a", "Completed"],
      ],
      flying: [],
    },
    {
      name: "a deleted backup leaves the flight",
      steps: [
        ["velero", "a", "ReadyToStart"],
        ["velero", "a", null],
      ],
      flying: [],
    },
    {
      name: "the same name in two namespaces is two backups",
      steps: [
        ["velero", "a", "InProgress"],
        ["other", "a", "InProgress"],
        ["other", "a", "Failed"],
      ],
      flying: ["velero/a"],
    },
  ] as const)("$name", ({ steps, flying }) => {
    const index = new BackupIndex();
    for (const [ns, name, phase] of steps) {
      if (phase === null) index.delete(ns, name);
      else index.set(info(ns, name, phase));
    }
    expect(
      index
        .inFlight()
        .map((b) => (b.namespace === "velero" ? b.name : `${b.namespace}/${b.name}`))
        .sort(),
    ).toEqual(flying.map((f) => f.replace(/^velero\//, "")).sort());
  });

  it("moves a run between Schedules when its label changes, and forgets a Schedule without runs", () => {
    const index = new BackupIndex();
    index.set(info("velero", "r1", "New", "nightly"));
    index.set(info("velero", "r1", "New", "hourly"));
    expect(index.runsOf("nightly")).toEqual([]);
    expect(index.runsOf("hourly").map((b) => b.name)).toEqual(["r1"]);
    index.delete("velero", "r1");
    expect(index.runsOf("hourly")).toEqual([]);
  });

  it("keeps the order backups were first set, and the same list until something changes", () => {
    const index = new BackupIndex();
    for (const n of ["c", "a", "b"]) index.set(info("velero", n, "New"));
    index.set(info("velero", "c", "Completed"));
    const list = index.all();
    expect(list.map((b) => b.name)).toEqual(["c", "a", "b"]);
    expect(index.all()).toBe(list);
    index.delete("velero", "a");
    expect(index.all().map((b) => b.name)).toEqual(["c", "b"]);
  });

  it("keeps its subsets equal to filtering every backup, whatever the changes", () => {
    const op = fc.record({
      namespace: fc.constantFrom("velero", "other"),
      name: fc.constantFrom("a", "b", "c", "d"),
      phase: fc.option(fc.constantFrom("", "New", "Queued", "ReadyToStart", "InProgress", "Completed", "Failed"), { nil: null }),
      schedule: fc.constantFrom(undefined, ...SCHEDULES),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const index = new BackupIndex();
        for (const o of ops) {
          if (o.phase === null) index.delete(o.namespace, o.name);
          else index.set(info(o.namespace, o.name, o.phase, o.schedule));
          expectSubsetsMatch(index);
        }
      }),
      { numRuns: 300 },
    );
  });
});
