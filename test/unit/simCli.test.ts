import { readFileSync } from "node:fs";
import { runCli, scratch } from "./support/cli.js";
import { describe, expect, it } from "vitest";
import { runSimulate } from "../../src/cli/simulate.js";
import { UsageError } from "../../src/cli/readInput.js";

// `backup-gate simulate` as a user runs it: a real process, its stdout, stderr and exit code.
// A tsx process takes a few seconds on a busy machine, so process tests get their own timeout
// and the finer input checks call the command in-process.
const PROCESS_TIMEOUT = 30_000;

const run = (...args: string[]) => runCli("simulate", ...args);
const file = scratch("bg-sim-");
const TRACE = "test/fixtures/sim-shop.yaml";
const STRATEGIES = ["one-at-a-time", "velero", "namespace", "itemblock", "reference"];

describe("backup-gate simulate", () => {
  it(
    "prints a table and one JSON line per strategy",
    async () => {
      const { code, stdout, stderr } = await run("--trace", TRACE);
      expect(stderr).toBe("");
      expect(code).toBe(0);
      const lines = stdout.trimEnd().split("\n");
      expect(lines[0]).toBe("trace shop: 4 backups, concurrency 4, policy level ItemBlock");
      expect(lines[1]).toMatch(/^strategy\s+level\s+mean wait\s+p95 wait\s+max wait\s+makespan\s+in flight max\s+mean\s+violations\s+in flight over time$/);
      expect(lines.slice(2, 7).map((l) => l.split(/\s+/)[0])).toEqual(STRATEGIES);
      const json = lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
      expect(json.map((j) => [j.sim, j.strategy])).toEqual(STRATEGIES.map((s) => ["shop", s]));
      const by = Object.fromEntries(json.map((j) => [j.strategy, j]));
      // api and worker both snapshot the shared uploads volume; db has its own; web is elsewhere.
      expect(by.itemblock).toMatchObject({
        level: "ItemBlock",
        concurrency: 4,
        backups: 4,
        started: 4,
        meanWait: 22.5,
        maxWait: 90,
        makespan: 185,
        violations: 0,
      });
      expect(by.velero).toMatchObject({ level: "Namespace", meanWait: 72.5, makespan: 285, violations: 0 });
      expect(by["one-at-a-time"]).toMatchObject({ concurrency: 1, inFlightMax: 1 });
      expect(by.reference).toMatchObject({ meanWait: 0, violations: 1 });
      expect(stdout).toMatch(/^note: reference ignores conflicts by design; its 1 violations are expected$/m);
    },
    PROCESS_TIMEOUT,
  );

  it("--concurrency and --level override the trace's policy", () => {
    const { output, failed } = runSimulate(["--trace", TRACE, "--concurrency", "1", "--level", "Namespace"]);
    expect(failed).toBe(false);
    const json = output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
    expect(json.map((j) => j.concurrency)).toEqual([1, 1, 1, 1, 1]);
    expect(json.find((j) => j.strategy === "reference")).toMatchObject({ level: "Namespace", violations: 0 });
  });

  it(
    "--html writes a self-contained page with one bar per backup for each strategy",
    async () => {
      const out = file("timeline.html", "");
      const { code } = await run("--trace", TRACE, "--html", out);
      expect(code).toBe(0);
      const html = readFileSync(out, "utf8");
      expect(html).toMatch(/^<!doctype html>/);
      expect(html).not.toMatch(/<script|<link|\bsrc=|href=|@import|url\(/);
      const sections = html.split('<section class="group">').slice(1);
      expect(sections.map((s) => /<h2>([^<]+)<\/h2>/.exec(s)?.[1])).toEqual(STRATEGIES);
      for (const s of sections) {
        expect([...s.matchAll(/<g class="bar[^"]*" data-backup="([^"]+)"/g)].map((m) => m[1]).sort()).toEqual(["api", "db", "web", "worker"]);
      }
      const itemblock = sections[3]!;
      expect(itemblock).toMatch(/<g class="bar" data-backup="worker"><title>worker: created at 10s\nwaited 1m30s behind api\n/);
      expect(itemblock).toMatch(/data-backup="worker"><title>[^<]*<\/title><rect class="wait conflict"/);
      expect(sections[4]).toMatch(/<g class="mark"><title>at 10s: api and worker in flight together: both snapshot PVC shop\/uploads/);
    },
    PROCESS_TIMEOUT,
  );

  it.each([
    { name: "a missing file", args: ["--trace", "/no/such/trace.yaml"], message: /^backup-gate: cannot read trace \/no\/such\/trace\.yaml: ENOENT\n$/ },
    {
      name: "a field of the wrong type, named",
      args: ["--trace", file("t1.yaml", "cluster: {kind: List, items: []}\nbackups:\n- {name: a, arrival: soon, duration: 5}\n")],
      message: /^backup-gate: trace .*t1\.yaml: backups\[0\]\.arrival: .*expected number/,
    },
    { name: "an unknown flag", args: ["--trace", TRACE, "--frobnicate"], message: /Unknown option '--frobnicate'/ },
  ])(
    "bad input: $name gets one line and exit code 2, never a stack trace",
    async ({ args, message }) => {
      const { code, stdout, stderr } = await run(...args);
      expect(code).toBe(2);
      expect(stdout).toBe("");
      expect(stderr).toMatch(message);
      expect(stderr.trimEnd().split("\n")).toHaveLength(1);
    },
    PROCESS_TIMEOUT,
  );

  it.each([
    { name: "no --trace", args: [], message: /^--trace is required\n/ },
    {
      name: "a backup with no duration",
      args: ["--trace", file("t2.yaml", "cluster: {kind: List, items: []}\nbackups:\n- {name: a, arrival: 0}\n")],
      message: /^trace .*t2\.yaml: backups\[0\]\.duration: give exactly one of duration or durationPerItem$/,
    },
    {
      name: "a missing clusterFile, relative to the trace",
      args: ["--trace", file("t3.yaml", "clusterFile: nothere.yaml\nbackups:\n- {name: a, arrival: 0, duration: 1}\n")],
      message: /^cannot read cluster .*bg-sim-.*\/nothere\.yaml: ENOENT$/,
    },
    { name: "a bad --concurrency", args: ["--trace", TRACE, "--concurrency", "0"], message: /^--concurrency must be a whole number from 1 to 1000, not 0$/ },
    { name: "a bad --level", args: ["--trace", TRACE, "--level", "Pod"], message: /^--level must be Namespace or ItemBlock, not Pod$/ },
    {
      name: "a bad --policy",
      args: ["--trace", TRACE, "--policy", file("p.yaml", "priorities: {agingSeconds: -1}\n")],
      message: /^policy .*p\.yaml: priorities\.agingSeconds: /,
    },
    {
      name: "an --html path that cannot be written",
      args: ["--trace", TRACE, "--html", "/no/such/dir/x.html"],
      message: /^cannot write --html \/no\/such\/dir\/x\.html: ENOENT$/,
    },
  ])("bad input: $name is a UsageError (one line, exit code 2) naming what is wrong", ({ args, message }) => {
    let error: unknown;
    try {
      runSimulate(args);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(message);
  });
});
