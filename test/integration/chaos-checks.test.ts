/**
 * The chaos suite's own checks, on made-up histories: they must be able to fail. No cluster
 * needed (the balancer runs over loopback TCP).
 */
import { createServer, connect, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { inFlightSpan, type PhaseStep } from "../support/backupObserver.js";
import { Balancer, conflicts, envInt, metricSum, overlapCheck, prng, randomBackups, tally, type ChaosBackup } from "../support/chaos.js";
import type { VeleroObject } from "../support/objects.js";

const step = (phase: string, rv: number, exact = true): PhaseStep => ({ phase, rv: BigInt(rv), at: 0, exact });
const history = (entries: Record<string, [string, number][]>) =>
  new Map(Object.entries(entries).map(([name, steps]) => [name, steps.map(([p, rv]) => step(p, rv))]));

describe("in-flight spans and the overlap check", () => {
  it.each([
    { case: "never started", steps: [["Queued", 1]], span: undefined },
    {
      case: "promoted, ran, completed",
      steps: [
        ["Queued", 1],
        ["ReadyToStart", 5],
        ["InProgress", 6],
        ["Completed", 9],
      ],
      span: [5n, 9n],
    },
    {
      case: "still running",
      steps: [
        ["ReadyToStart", 5],
        ["InProgress", 6],
      ],
      span: [5n, undefined],
    },
    // The design's in flight ends when Velero leaves InProgress, before Completed.
    {
      case: "finalizing is out of flight",
      steps: [
        ["ReadyToStart", 5],
        ["InProgress", 6],
        ["Finalizing", 7],
        ["Completed", 9],
      ],
      span: [5n, 7n],
    },
    {
      case: "failed validation at once",
      steps: [
        ["ReadyToStart", 5],
        ["FailedValidation", 6],
      ],
      span: [5n, 6n],
    },
  ] as { case: string; steps: [string, number][]; span?: [bigint, bigint | undefined] }[])("$case", ({ steps, span }) => {
    const s = inFlightSpan(steps.map(([p, rv]) => step(p, rv)));
    expect(s && [s.start, s.end]).toEqual(span);
  });

  const a: ChaosBackup = { name: "a", apps: ["x"] };
  const b: ChaosBackup = { name: "b", apps: ["x", "y"] };
  const c: ChaosBackup = { name: "c", apps: ["z"] };

  it("counts conflicting backups in flight at once, in revision order", () => {
    const h = history({
      a: [
        ["ReadyToStart", 10],
        ["InProgress", 11],
        ["Completed", 20],
      ],
      b: [
        ["Queued", 2],
        ["ReadyToStart", 15],
        ["Completed", 30],
      ],
      c: [
        ["ReadyToStart", 12],
        ["Completed", 25],
      ],
    });
    const r = overlapCheck(h, [a, b, c]);
    expect(r.overlaps).toEqual(["a [10, 20) and b [15, 30) share x"]);
    expect(r.maxInFlight).toBe(3);
  });

  it("a promotion at the revision right after the other's end is no overlap; one still running overlaps everything after it", () => {
    expect(
      overlapCheck(
        history({
          a: [
            ["ReadyToStart", 10],
            ["Completed", 20],
          ],
          b: [
            ["ReadyToStart", 21],
            ["Completed", 22],
          ],
        }),
        [a, b],
      ).overlaps,
    ).toEqual([]);
    expect(
      overlapCheck(
        history({
          a: [
            ["ReadyToStart", 10],
            ["InProgress", 11],
          ],
          b: [
            ["ReadyToStart", 40],
            ["Completed", 41],
          ],
        }),
        [a, b],
      ).overlaps,
    ).toHaveLength(1);
    expect(conflicts(a, c)).toBe(false);
  });
});

describe("tally", () => {
  const backup = (name: string, phase?: string, validationErrors?: string[]): VeleroObject => ({
    metadata: { name },
    ...(phase !== undefined ? { status: { phase, ...(validationErrors ? { validationErrors } : {}) } } : {}),
  });
  it.each([
    { phase: "Completed", as: "completed" },
    { phase: "Queued", as: "stuck" },
    { phase: "ReadyToStart", as: "stuck" },
    { phase: undefined, as: "stuck" },
    { phase: "InProgress", as: "lost" },
    { phase: "Failed", as: "lost" },
    { phase: "gone", as: "lost" },
  ])("$phase counts as $as", ({ phase, as }) => {
    const current = new Map(phase === "gone" ? [] : [["b", backup("b", phase)]]);
    const t = tally(current, ["b"], (o) => o.status?.phase === "Completed");
    expect({ completed: t.completed, stuck: t.stuck, lost: t.lost }).toEqual({ completed: 0, stuck: 0, lost: 0, [as]: 1 });
  });
  it("an expected FailedValidation (scenario 5) counts as completed", () => {
    const t = tally(new Map([["b", backup("b", "FailedValidation", ["BackupStorageLocation default is in Unavailable status"])]]), ["b"], (o) =>
      JSON.stringify(o.status?.validationErrors ?? []).includes("Unavailable"),
    );
    expect(t.completed).toBe(1);
  });
});

describe("small parts", () => {
  it("the PRNG replays a seed, and random backups are reproducible", () => {
    expect(randomBackups(prng(7), "p", 20, ["a", "b", "c"])).toEqual(randomBackups(prng(7), "p", 20, ["a", "b", "c"]));
    expect(randomBackups(prng(7), "p", 20, ["a", "b", "c"])).not.toEqual(randomBackups(prng(8), "p", 20, ["a", "b", "c"]));
  });
  it("knobs refuse garbage with the variable's name", () => {
    process.env.CHAOS_TEST_KNOB = "lots";
    expect(() => envInt("CHAOS_TEST_KNOB", 1)).toThrow(/CHAOS_TEST_KNOB must be a non-negative integer, not "lots"/);
    process.env.CHAOS_TEST_KNOB = "42";
    expect(envInt("CHAOS_TEST_KNOB", 1)).toBe(42);
    delete process.env.CHAOS_TEST_KNOB;
    expect(envInt("CHAOS_TEST_KNOB", 1)).toBe(1);
  });
  it("metricSum adds the samples whose labels match", () => {
    const text = 'x_total{resource="backups",reason="expired"} 2\nx_total{resource="pods",reason="expired"} 3\nx_total_other 9\ny 1\n';
    expect(metricSum(text, "x_total", { reason: "expired" })).toBe(5);
    expect(metricSum(text, "x_total", { resource: "backups" })).toBe(2);
    expect(metricSum(text, "y")).toBe(1);
  });
});

describe("the balancer", () => {
  const servers: Server[] = [];
  let balancer: Balancer | undefined;
  afterEach(async () => {
    await balancer?.stop();
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });
  const echo = async (id: string) => {
    const s = createServer((sock) => sock.end(id));
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    return `https://127.0.0.1:${(s.address() as { port: number }).port}`;
  };
  const ask = (port: number) =>
    new Promise<string>((resolve) => {
      let text = "";
      const sock = connect(port, "127.0.0.1");
      sock.on("data", (d: Buffer) => (text += d.toString()));
      sock.on("close", () => resolve(text));
      sock.on("error", () => resolve(""));
    });

  it("spreads connections over live backends, skips a dead one and stops routing to a removed one", async () => {
    balancer = new Balancer();
    await balancer.start();
    balancer.add("one", await echo("one"));
    balancer.add("two", await echo("two"));
    const first = [await ask(balancer.port), await ask(balancer.port)].sort();
    expect(first).toEqual(["one", "two"]);
    balancer.add("dead", "https://127.0.0.1:9");
    const some = await Promise.all(Array.from({ length: 6 }, () => ask(balancer!.port)));
    expect(some.every((x) => x === "one" || x === "two")).toBe(true);
    balancer.remove("one");
    balancer.remove("dead");
    expect(await Promise.all(Array.from({ length: 4 }, () => ask(balancer!.port)))).toEqual(["two", "two", "two", "two"]);
  });
});
