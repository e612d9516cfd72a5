import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { TENANT_BURST_FILE, tenantBurstFile, tenantBurstTrace, type TenantBurstOptions } from "../../bench/traces/tenantBurst.js";
import { runSimulate } from "../../src/cli/simulate.js";
import { ORIGIN_NAME, ORIGIN_NAMESPACE } from "../../src/core/decision/tenants.js";
import { DEFAULT_POLICY } from "../../src/core/policy.js";
import { prepareTrace, simulate, type SimResult } from "../../src/sim/engine.js";
import { tenantWaits } from "../../src/sim/figures.js";
import { strategies } from "../../src/sim/strategies.js";
import { parseTrace, type Trace } from "../../src/sim/trace.js";

// `simulate` with tenants (issue 19): traces name a backup's tenant, and the replay compares one
// queue with fair sharing. The property: tenant A's burst and tenant B's one backup; B waits no
// longer with fair sharing than with one queue, and at most for one slot to free.

function traceOf(doc: object): Trace {
  const r = parseTrace(doc, "test");
  if (!r.ok) throw new Error(r.error);
  return r.trace;
}

/** The one-queue and the fair replay of a trace (at its policy's level, ItemBlock). */
function replay(trace: Trace): { one: SimResult; fair: SimResult } {
  const policy = trace.policy ?? DEFAULT_POLICY;
  const prepared = prepareTrace(trace, policy);
  const all = strategies(policy, true);
  const run = (name: string) =>
    simulate(
      prepared,
      all.find((s) => s.name === name)!,
    );
  return { one: run("itemblock"), fair: run("fair") };
}

/**
 * How long a backup arriving at `arrival` waits in `r` if it takes the k-th slot to free: none
 * if a slot is free, else until the k-th run end after it arrived.
 */
function slotsBound(r: SimResult, arrival: number, k: number): number {
  const flying = r.runs.filter((x) => x.start !== undefined && x.start <= arrival + 1e-9 && x.end! > arrival + 1e-9);
  if (flying.length < r.limit) return 0;
  const ends = r.runs.flatMap((x) => (x.end !== undefined && x.end > arrival + 1e-9 ? [x.end] : [])).sort((a, b) => a - b);
  return ends[k - 1]! - arrival;
}

// B's bound with fair sharing (docs/rules.md, "a lone backup is served within a bound"): the
// first slot to free. With two slots or more A still runs something then, so it ranks behind B;
// with one slot A runs nothing when it frees, its head ties with B at rank 0, and A's turn (the
// finish just now) is later than B's.

const lone = "tenant-01-0";
const waitOf = (r: SimResult, name: string) => {
  const x = r.runs.find((y) => y.name === name)!;
  return x.start! - x.arrival;
};

const genBurst: fc.Arbitrary<TenantBurstOptions> = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  burst: fc.integer({ min: 6, max: 30 }),
  others: fc.constant(1),
  maxOthers: fc.constant(1),
  concurrency: fc.integer({ min: 1, max: 4 }),
  admin: fc.constant(false),
});

describe("a trace's tenants", () => {
  it.each<{ name: string; entry: object; annotations?: object; includedNamespaces?: string[]; error?: string }>([
    {
      name: "tenant: made as OADP makes it (origin annotations, only the tenant's namespace)",
      entry: { name: "b-1", tenant: "team-b", spec: { includedNamespaces: ["team-a", "team-b"] }, arrival: 0, duration: 1 },
      annotations: { [ORIGIN_NAMESPACE]: "team-b", [ORIGIN_NAME]: "b-1" },
      includedNamespaces: ["team-b"],
    },
    {
      name: "no tenant: as given",
      entry: { name: "x", spec: { includedNamespaces: ["team-a"] }, arrival: 0, duration: 1 },
      annotations: {},
      includedNamespaces: ["team-a"],
    },
    {
      name: "a tenant that is no namespace name is refused, naming the field",
      entry: { name: "x", tenant: "Team B", arrival: 0, duration: 1 },
      error: "backups[0].tenant: must be a namespace name",
    },
  ])("$name", ({ entry, annotations, includedNamespaces, error }) => {
    const r = parseTrace({ cluster: { kind: "List", items: [] }, backups: [entry] }, "t");
    if (error) {
      expect(r.ok ? "accepted" : r.error).toContain(error);
      return;
    }
    if (!r.ok) throw new Error(r.error);
    expect(r.trace.backups[0]?.annotations).toEqual(annotations);
    expect(r.trace.backups[0]?.spec.includedNamespaces).toEqual(includedNamespaces);
  });
});

describe("fair sharing in the simulator (property over generated multi-tenant traces)", () => {
  it("B's one backup waits no longer with fair sharing than in one queue, and at most for one slot to free", () => {
    fc.assert(
      fc.property(genBurst, (o) => {
        const { one, fair } = replay(traceOf(tenantBurstTrace(o)));
        const arrival = fair.runs.find((x) => x.name === lone)!.arrival;
        expect(waitOf(fair, lone)).toBeLessThanOrEqual(waitOf(one, lone));
        expect(waitOf(fair, lone)).toBeLessThanOrEqual(slotsBound(fair, arrival, 1) + 1e-9);
        // The per-tenant figures say the same.
        const b = (r: SimResult) => tenantWaits(r, (n) => (n.startsWith("tenant-01") ? "tenant-01" : "tenant-00")).find((w) => w.tenant === "tenant-01")!;
        expect(b(fair).maxWait).toBeLessThanOrEqual(b(one).maxWait);
      }),
      { numRuns: 25 },
    );
  });

  it("positive control: in one queue, B's backup waits for more slots to free (the bound check can fail)", () => {
    const result = fc.check(
      fc.property(genBurst, (o) => {
        const { one } = replay(traceOf(tenantBurstTrace(o)));
        return waitOf(one, lone) <= slotsBound(one, one.runs.find((x) => x.name === lone)!.arrival, 1) + 1e-9;
      }),
      { numRuns: 25 },
    );
    expect(result.failed).toBe(true);
  });

  it("the issue's example: A's burst of 200, B's one backup: B waits for the burst in one queue, for one slot with fair sharing", () => {
    const trace = traceOf(tenantBurstTrace({ seed: 7, burst: 200, others: 1, maxOthers: 1, concurrency: 4, admin: false }));
    const { one, fair } = replay(trace);
    const arrival = fair.runs.find((x) => x.name === lone)!.arrival;
    expect(waitOf(fair, lone)).toBeLessThanOrEqual(slotsBound(fair, arrival, 1) + 1e-9);
    // In one queue it waits for most of the burst: far more than the longest single run (600 s).
    expect(waitOf(one, lone)).toBeGreaterThan(10 * 600);
  });
});

describe("backup-gate simulate with tenants", () => {
  it("bench/traces/tenant-burst.yaml is what bench/traces/tenantBurst.ts writes (the documented figures' trace)", () => {
    expect(readFileSync(TENANT_BURST_FILE, "utf8")).toBe(tenantBurstFile());
  });

  const write = (doc: object) => {
    const file = join(mkdtempSync(join(tmpdir(), "sim-tenants-")), "trace.yaml");
    writeFileSync(file, stringify(doc));
    return file;
  };
  const small = { seed: 3, burst: 12, others: 2, maxOthers: 2, concurrency: 2, admin: true };

  it("adds the fair strategy and a table of each tenant's mean and max wait, one queue beside fair", () => {
    const { output, failed } = runSimulate(["--trace", write(tenantBurstTrace(small))]);
    expect(failed).toBe(false);
    const lines = output.split("\n");
    expect(lines.some((l) => /^fair +ItemBlock /.test(l))).toBe(true);
    const at = lines.findIndex((l) => l.startsWith("waits per tenant, one queue (itemblock) and fair sharing (fair)"));
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1]).toMatch(/^tenant +backups +itemblock mean +itemblock max +fair mean +fair max$/);
    expect(lines.slice(at + 2, at + 6).map((l) => l.split(/ +/)[0])).toEqual(["tenant-00", "tenant-01", "tenant-02", "-"]);
    const json = JSON.parse(lines.at(-1)!) as { tenantWaits: Record<string, { tenant: string }[]> };
    expect(Object.keys(json.tenantWaits)).toContain("fair");
  });

  it("without tenants: no fair strategy and no tenant table (as before)", () => {
    const doc = tenantBurstTrace(small);
    const untenanted = { ...doc, backups: doc.backups.map((b) => ({ name: b.name, arrival: b.arrival, duration: b.duration, spec: {} })) };
    const { output } = runSimulate(["--trace", write(untenanted)]);
    expect(output).not.toMatch(/^fair /m);
    expect(output).not.toContain("waits per tenant");
  });
});
