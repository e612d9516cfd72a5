import { describe, expect, it } from "vitest";
import {
  figuresTable,
  freezeOverlaps,
  maxInFlight,
  pvbOverlaps,
  snapshotOverlaps,
  snapshotRecords,
  spansOverlap,
  type BackupSpan,
  type FreezeAttempt,
  type GroupSnapshotSeen,
  type PvbRecord,
  type SnapshotRecord,
  type VolumeSnapshotSeen,
} from "../support/integrityChecks.js";
import { BurstRecorder, burstBackups, E2E_NS, NS } from "../support/nodeBurst.js";

describe("spansOverlap (half-open, an open end runs on)", () => {
  const rows: { name: string; a: [number, number?]; b: [number, number?]; overlap: boolean }[] = [
    { name: "disjoint", a: [0, 10], b: [20, 30], overlap: false },
    { name: "touching", a: [0, 10], b: [10, 20], overlap: false },
    { name: "crossing", a: [0, 10], b: [9, 20], overlap: true },
    { name: "contained", a: [0, 100], b: [40, 50], overlap: true },
    { name: "open a reaches a later b", a: [0], b: [500, 600], overlap: true },
    { name: "open b after a ended", a: [0, 10], b: [10], overlap: false },
  ];
  it.each(rows)("$name", ({ a, b, overlap }) => {
    const s = (x: [number, number?]) => ({ fromMs: x[0], toMs: x[1] });
    expect(spansOverlap(s(a), s(b))).toBe(overlap);
    expect(spansOverlap(s(b), s(a))).toBe(overlap);
  });
});

describe("freezeOverlaps: every busy freeze is a second backup freezing a frozen pod", () => {
  const rows: { name: string; attempts: FreezeAttempt[]; want: string[] }[] = [
    { name: "none recorded", attempts: [], want: [] },
    {
      name: "held one after another",
      attempts: [
        { pod: "ns/db", outcome: "held", atMs: 0 },
        { pod: "ns/db", outcome: "held", atMs: 50 },
      ],
      want: [],
    },
    {
      name: "a busy attempt is an overlap",
      attempts: [
        { pod: "ns/db", outcome: "held", atMs: 0 },
        { pod: "ns/db", outcome: "busy", atMs: 5 },
      ],
      want: ["ns/db"],
    },
    {
      name: "two pods, out of order, one busy each",
      attempts: [
        { pod: "ns/b", outcome: "busy", atMs: 9 },
        { pod: "ns/a", outcome: "held", atMs: 0 },
        { pod: "ns/b", outcome: "held", atMs: 1 },
        { pod: "ns/a", outcome: "busy", atMs: 3 },
      ],
      want: ["ns/a", "ns/b"],
    },
  ];
  it.each(rows)("$name", ({ attempts, want }) => {
    const got = freezeOverlaps(attempts);
    expect(got.map((o) => o.subject)).toEqual(want);
    for (const o of got) expect(o.kind).toBe("freeze");
  });
});

describe("pvbOverlaps: two backups copying one volume at once", () => {
  const pvb = (backup: string, volume: string, fromMs?: number, toMs?: number): PvbRecord => ({ backup, volume, fromMs, toMs });
  const rows: { name: string; pvbs: PvbRecord[]; want: string[] }[] = [
    { name: "one after another", pvbs: [pvb("a", "ns/pvc", 0, 10), pvb("b", "ns/pvc", 10, 20)], want: [] },
    { name: "overlapping on one volume", pvbs: [pvb("a", "ns/pvc", 0, 10), pvb("b", "ns/pvc", 5, 20)], want: ["ns/pvc a b"] },
    { name: "overlapping on distinct volumes", pvbs: [pvb("a", "ns/x", 0, 10), pvb("b", "ns/y", 5, 20)], want: [] },
    { name: "one backup, two pods of a shared volume", pvbs: [pvb("a", "ns/pvc", 0, 10), pvb("a", "ns/pvc", 5, 20)], want: [] },
    { name: "an unfinished copy overlaps a later one", pvbs: [pvb("a", "ns/pvc", 0), pvb("b", "ns/pvc", 100, 110)], want: ["ns/pvc a b"] },
    { name: "a copy that never started copied nothing", pvbs: [pvb("a", "ns/pvc"), pvb("b", "ns/pvc", 100, 110)], want: [] },
    {
      name: "three at once: every pair",
      pvbs: [pvb("a", "v", 0, 10), pvb("b", "v", 1, 10), pvb("c", "v", 2, 10)],
      want: ["v a b", "v a c", "v b c"],
    },
  ];
  it.each(rows)("$name", ({ pvbs, want }) => {
    expect(pvbOverlaps(pvbs).map((o) => `${o.subject} ${o.a} ${o.b}`)).toEqual(want);
  });
});

describe("snapshotRecords: who snapshotted each PVC, a group snapshot counting for all its members", () => {
  const vs = (name: string, pvc: string, backup?: string, groupSnapshot?: string): VolumeSnapshotSeen => ({ name, pvc, backup, groupSnapshot });
  const show = (r: SnapshotRecord[]) => r.map((x) => `${x.pvc} ${x.backup}${x.groupSnapshot ? ` via ${x.groupSnapshot}` : ""}`);
  const rows: { name: string; snapshots: VolumeSnapshotSeen[]; groups: GroupSnapshotSeen[]; want: string[] }[] = [
    { name: "a snapshot of its own, labelled", snapshots: [vs("s1", "ns/x", "a")], groups: [], want: ["ns/x a"] },
    {
      name: "members labelled by Velero",
      snapshots: [vs("s1", "ns/x", "a", "ns/g"), vs("s2", "ns/y", "a", "ns/g")],
      groups: [{ name: "ns/g", backup: "a" }],
      want: ["ns/x a via ns/g", "ns/y a via ns/g"],
    },
    {
      name: "a member Velero never labelled still counts for the group's backup",
      snapshots: [vs("s1", "ns/x", "a", "ns/g"), vs("s2", "ns/y", undefined, "ns/g")],
      groups: [{ name: "ns/g", backup: "a" }],
      want: ["ns/x a via ns/g", "ns/y a via ns/g"],
    },
    {
      name: "a member labelled for another backup counts for both",
      snapshots: [vs("s1", "ns/x", "b", "ns/g")],
      groups: [{ name: "ns/g", backup: "a" }],
      want: ["ns/x b via ns/g", "ns/x a via ns/g"],
    },
    {
      name: "no backup to name: unattributed, kept",
      snapshots: [vs("s1", "ns/x", undefined, "ns/gone")],
      groups: [],
      want: ["ns/x unattributed s1 via ns/gone"],
    },
  ];
  it.each(rows)("$name", ({ snapshots, groups, want }) => {
    expect(show(snapshotRecords(snapshots, groups))).toEqual(want);
  });
});

describe("snapshotOverlaps: two backups snapshotting one PVC while both run, per member PVC of a group", () => {
  const span = (backup: string, fromMs: number, toMs?: number): BackupSpan => ({ backup, fromMs, toMs });
  const snap = (backup: string, pvc: string, groupSnapshot?: string): SnapshotRecord => ({ backup, pvc, groupSnapshot });
  const rows: { name: string; snapshots: SnapshotRecord[]; spans: BackupSpan[]; want: string[] }[] = [
    { name: "serialized", snapshots: [snap("a", "ns/pvc"), snap("b", "ns/pvc")], spans: [span("a", 0, 10), span("b", 10, 20)], want: [] },
    { name: "concurrent on one PVC", snapshots: [snap("a", "ns/pvc"), snap("b", "ns/pvc")], spans: [span("a", 0, 10), span("b", 5, 20)], want: ["ns/pvc a b"] },
    { name: "concurrent on distinct PVCs", snapshots: [snap("a", "ns/x"), snap("b", "ns/y")], spans: [span("a", 0, 10), span("b", 5, 20)], want: [] },
    {
      name: "concurrent, one snapshots and the other only reads the PVC",
      snapshots: [snap("a", "ns/pvc")],
      spans: [span("a", 0, 10), span("b", 5, 20)],
      want: [],
    },
    {
      name: "two group snapshots of one group at once: an overlap on every member",
      snapshots: [snap("a", "ns/x", "ns/g-a"), snap("a", "ns/y", "ns/g-a"), snap("b", "ns/x", "ns/g-b"), snap("b", "ns/y", "ns/g-b")],
      spans: [span("a", 0, 10), span("b", 9, 20)],
      want: ["ns/x a b", "ns/y a b"],
    },
    {
      name: "a group snapshot and a lone snapshot of one member at once",
      snapshots: [snap("a", "ns/x", "ns/g-a"), snap("a", "ns/y", "ns/g-a"), snap("b", "ns/y")],
      spans: [span("a", 0, 10), span("b", 5, 20)],
      want: ["ns/y a b"],
    },
    {
      name: "group snapshots of one group one after another",
      snapshots: [snap("a", "ns/x", "ns/g-a"), snap("a", "ns/y", "ns/g-a"), snap("b", "ns/x", "ns/g-b"), snap("b", "ns/y", "ns/g-b")],
      spans: [span("a", 0, 10), span("b", 10, 20)],
      want: [],
    },
    { name: "a backup seen in no span counts as running throughout", snapshots: [snap("a", "p"), snap("b", "p")], spans: [span("a", 0, 10)], want: ["p a b"] },
    {
      name: "a backup still running overlaps a later one",
      snapshots: [snap("a", "p"), snap("b", "p")],
      spans: [span("a", 0), span("b", 50, 60)],
      want: ["p a b"],
    },
    { name: "two snapshots of one PVC by one backup", snapshots: [snap("a", "p"), snap("a", "p", "g")], spans: [span("a", 0, 10)], want: [] },
  ];
  it.each(rows)("$name", ({ snapshots, spans, want }) => {
    expect(snapshotOverlaps(snapshots, spans).map((o) => `${o.subject} ${o.a} ${o.b}`)).toEqual(want);
  });

  it("a member's overlap names the group snapshot that cut it", () => {
    const [o] = snapshotOverlaps([snap("a", "ns/y", "ns/g-a"), snap("b", "ns/y")], [span("a", 0, 10), span("b", 5, 20)]);
    expect(o?.detail).toMatch(/a .*\(group snapshot ns\/g-a\) and b .*\(its own snapshot\) both snapshot ns\/y/);
  });
});

describe("maxInFlight", () => {
  const rows: { name: string; spans: [number, number?][]; want: number }[] = [
    { name: "none", spans: [], want: 0 },
    {
      name: "serial, touching",
      spans: [
        [0, 10],
        [10, 20],
        [20, 30],
      ],
      want: 1,
    },
    {
      name: "three at once",
      spans: [
        [0, 10],
        [1, 10],
        [2, 5],
        [6, 30],
      ],
      want: 3,
    },
    { name: "an open span stays in flight", spans: [[0], [100, 200], [300, 400]], want: 2 },
  ];
  it.each(rows)("$name", ({ spans, want }) => {
    expect(maxInFlight(spans.map(([fromMs, toMs]) => ({ fromMs, toMs })))).toBe(want);
  });
});

describe("figuresTable", () => {
  it("prints one aligned row per run", () => {
    const t = figuresTable([
      { run: "gate Namespace", backups: 12, terminal: 12, freeze: 0, podVolumeBackup: 0, snapshot: 0, maxInFlight: 3, makespanS: 61.23 },
      { run: "no gate", backups: 12, terminal: 12, freeze: 2, podVolumeBackup: 1, snapshot: 4, maxInFlight: 3, makespanS: 30 },
    ]).split("\n");
    expect(t).toHaveLength(3);
    expect(t[1]).toMatch(/^gate Namespace\s+12\s+12\s+0\s+0\s+0\s+3\s+61\.2$/);
    expect(new Set(t.map((l) => l.length)).size).toBe(1);
  });
});

describe("BurstRecorder.span: a backup's InProgress span from the phases a watch saw", () => {
  const rows: { name: string; phases: [string, number][]; want: { fromMs: number; toMs?: number } | undefined }[] = [
    {
      name: "never in progress",
      phases: [
        ["New", 0],
        ["FailedValidation", 5],
      ],
      want: undefined,
    },
    {
      name: "in progress, then finalizing",
      phases: [
        ["", 0],
        ["Queued", 1],
        ["ReadyToStart", 2],
        ["InProgress", 3],
        ["Finalizing", 9],
        ["Completed", 10],
      ],
      want: { fromMs: 3, toMs: 9 },
    },
    {
      name: "still in progress",
      phases: [
        ["ReadyToStart", 2],
        ["InProgress", 3],
      ],
      want: { fromMs: 3, toMs: undefined },
    },
  ];
  it.each(rows)("$name", ({ phases, want }) => {
    const r = new BurstRecorder();
    r.phases.set(
      "b",
      phases.map(([phase, at]) => ({ phase, at })),
    );
    expect(r.span("b")).toEqual(want && { backup: "b", ...want });
    expect(r.doneAt("b")).toBe(phases.find(([p]) => ["Completed", "FailedValidation"].includes(p))?.[1]);
  });
});

describe("burstBackups: the burst's backups and the e2e scenario's, on the estate's namespaces", () => {
  it("names every backup once, only in namespaces the estate builds (or every namespace)", () => {
    const list = burstBackups("x-");
    const known = new Set<string>([...Object.values(NS), ...Object.values(E2E_NS), "*"]);
    expect(new Set(list.map((b) => b.name)).size).toBe(list.length);
    expect(list.flatMap((b) => b.namespaces).filter((n) => !known.has(n))).toEqual([]);
    for (const ns of Object.values(E2E_NS))
      expect(
        list.some((b) => b.namespaces.includes(ns)),
        ns,
      ).toBe(true);
  });
});
