import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeOverlaps, findOverlaps, parseProbeRecord, readProbeRecords, type ProbeRecord } from "../support/overlap.js";

const rec = (backup: string, name: string, start: number, end: number, kind = "Pod", namespace = "ns"): ProbeRecord => ({
  backup,
  kind,
  namespace,
  name,
  start: BigInt(start),
  end: BigInt(end),
});

describe("findOverlaps", () => {
  it("reports two backups on the same item at overlapping times", () => {
    const o = findOverlaps([rec("a", "p", 0, 10), rec("b", "p", 5, 15)]);
    expect(o).toHaveLength(1);
    expect(o[0]).toMatchObject({ kind: "Pod", namespace: "ns", name: "p" });
    expect([o[0]!.a.backup, o[0]!.b.backup]).toEqual(["a", "b"]);
  });

  it("treats intervals as half-open: touching is not overlapping", () => {
    expect(findOverlaps([rec("a", "p", 0, 10), rec("b", "p", 10, 20)])).toEqual([]);
  });

  it("ignores one backup's own records", () => {
    expect(findOverlaps([rec("a", "p", 0, 10), rec("a", "p", 5, 15)])).toEqual([]);
  });

  it("keys on kind, namespace and name", () => {
    expect(
      findOverlaps([
        rec("a", "x", 0, 10, "Pod", "ns1"),
        rec("b", "x", 0, 10, "Pod", "ns2"),
        rec("c", "x", 0, 10, "PersistentVolumeClaim", "ns1"),
        rec("d", "y", 0, 10, "Pod", "ns1"),
      ]),
    ).toEqual([]);
  });

  it("finds containment and reports every overlapping pair", () => {
    const o = findOverlaps([rec("a", "p", 0, 100), rec("b", "p", 10, 20), rec("c", "p", 30, 40), rec("d", "p", 200, 300)]);
    expect(o.map((x) => `${x.a.backup}-${x.b.backup}`).sort()).toEqual(["a-b", "a-c"]);
  });

  it("does not stop scanning at a same-backup record", () => {
    const o = findOverlaps([rec("a", "p", 0, 100), rec("a", "p", 1, 2), rec("b", "p", 50, 60)]);
    expect(o.map((x) => `${x.a.backup}-${x.b.backup}`)).toEqual(["a-b"]);
  });

  it("agrees with the brute-force definition on random inputs", () => {
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const rs: ProbeRecord[] = [];
      for (let i = 0; i < 12; i++) {
        const s = rnd(50);
        rs.push(rec(`b${rnd(3)}`, `p${rnd(2)}`, s, s + 1 + rnd(10), rnd(2) ? "Pod" : "PersistentVolume", rnd(2) ? "ns" : ""));
      }
      let expected = 0;
      for (let i = 0; i < rs.length; i++)
        for (let j = i + 1; j < rs.length; j++) {
          const a = rs[i]!,
            b = rs[j]!;
          if (a.backup !== b.backup && a.kind === b.kind && a.namespace === b.namespace && a.name === b.name && a.start < b.end && b.start < a.end) expected++;
        }
      expect(findOverlaps(rs)).toHaveLength(expected);
    }
  });

  it("describes overlaps on one line each", () => {
    const text = describeOverlaps(findOverlaps([rec("a", "p", 0, 10_000_000), rec("b", "p", 5_000_000, 15_000_000)]));
    expect(text).toBe("Pod ns/p: a [1970-01-01T00:00:00.000Z, 1970-01-01T00:00:00.010Z) overlaps b [1970-01-01T00:00:00.005Z, 1970-01-01T00:00:00.015Z)");
  });
});

describe("probe records", () => {
  it("parses the probe's format with nanosecond precision", () => {
    const r = parseProbeRecord(
      JSON.stringify({
        backup: "b",
        kind: "PersistentVolume",
        namespace: "",
        name: "pv1",
        start: "2026-01-01T00:00:00.123456789Z",
        end: "2026-01-01T00:00:01Z",
        startNs: "1767225600123456789",
        endNs: "1767225601000000000",
        pid: 7,
      }),
    );
    expect(r).toEqual({ backup: "b", kind: "PersistentVolume", namespace: "", name: "pv1", start: 1767225600123456789n, end: 1767225601000000000n });
  });

  it("falls back to RFC3339Nano without losing nanoseconds", () => {
    const r = parseProbeRecord(
      JSON.stringify({ backup: "b", kind: "Pod", namespace: "n", name: "p", start: "2026-01-01T00:00:00.123456789Z", end: "2026-01-01T01:00:00.5+01:00" }),
    );
    expect(r.start).toBe(1767225600123456789n);
    expect(r.end).toBe(1767225600500000000n);
  });

  it("rejects malformed records with the file name", () => {
    expect(() => parseProbeRecord("{", "f.json")).toThrow(/f\.json: not JSON/);
    expect(() => parseProbeRecord(JSON.stringify({ kind: "Pod", name: "p", startNs: "1", endNs: "2" }), "g.json")).toThrow(/g\.json: field backup/);
    expect(() => parseProbeRecord(JSON.stringify({ backup: "b", kind: "Pod", name: "p", startNs: "3", endNs: "2" }))).toThrow(/end before start/);
  });

  it("reads a directory, skipping temporary files", () => {
    const dir = mkdtempSync(join(tmpdir(), "probe-"));
    writeFileSync(join(dir, "1.json"), JSON.stringify({ backup: "a", kind: "Pod", namespace: "n", name: "p", startNs: "0", endNs: "10" }));
    writeFileSync(join(dir, "2.json"), JSON.stringify({ backup: "b", kind: "Pod", namespace: "n", name: "p", startNs: "5", endNs: "15" }));
    writeFileSync(join(dir, ".3.tmp"), "partial");
    const rs = readProbeRecords(dir);
    expect(rs).toHaveLength(2);
    expect(findOverlaps(rs)).toHaveLength(1);
  });
});
