import { writeFileSync } from "node:fs";
import { basename, dirname, extname, resolve } from "node:path";
import { Command } from "commander";
import { parsePolicy, type Policy } from "../core/policy.js";
import { timelineHtml } from "../report/timeline.js";
import {
  holdJsonLine,
  holdTable,
  jsonLine,
  parseTrace,
  replay,
  table,
  tenantJsonLine,
  tenantTable,
  timelineGroups,
  type HoldComparison,
  type StrategyRun,
} from "../sim/index.js";
import { parseOptions } from "./commander.js";
import { loadPolicy } from "./plan.js";
import { clearProgress, progress } from "./progress.js";
import { readDocument, UsageError } from "./readInput.js";

export const SIMULATE_USAGE = `backup-gate simulate --trace FILE [--level Namespace|ItemBlock] [--concurrency N] [--policy FILE] [--html OUT]

  FILE      a trace: a cluster and backups with arrival and duration (docs/simulate.md)
  --policy  a policy document or its ConfigMap (default: the trace's policy, else the defaults)
  --level   the policy's level: one-at-a-time's, and the one the reference is checked at
  --concurrency  maxConcurrentBackups of every strategy (default: the policy's)
  --html    also write a self-contained HTML timeline of every strategy to OUT`;

export interface SimulateOptions {
  readonly trace?: string;
  readonly level?: string;
  readonly concurrency?: string;
  readonly policy?: string;
  readonly html?: string;
}

/** `simulate`'s flags; main gives it its action. */
export function simulateCommand(): Command {
  return new Command("simulate")
    .description("replay a trace of backups under Velero's rule and backup-gate's, side by side (offline)")
    .usage("--trace FILE [--level Namespace|ItemBlock] [--concurrency N] [--policy FILE] [--html OUT]")
    .option("--trace <file>", "a trace: a cluster and backups with arrival and duration (docs/simulate.md; required)")
    .option("--level <level>", "the policy's level (Namespace or ItemBlock): one-at-a-time's, and the one the reference is checked at")
    .option("--concurrency <n>", "maxConcurrentBackups of every strategy (default: the policy's)")
    .option("--policy <file>", "a policy document or its ConfigMap (default: the trace's policy, else the defaults)")
    .option("--html <out>", "also write a self-contained HTML timeline of every strategy to OUT");
}

/** `simulate` from its arguments, in-process. */
export function runSimulate(args: readonly string[]): { output: string; failed: boolean } {
  return simulate(parseOptions<SimulateOptions>(simulateCommand(), args));
}

/** The report, and whether a safe strategy broke the invariant or stalled (exit code 1). */
export function simulate(values: SimulateOptions): { output: string; failed: boolean } {
  if (!values.trace) throw new UsageError(`--trace is required\n${SIMULATE_USAGE}`);
  const file = values.trace;
  const parsed = parseTrace(readDocument(file, "trace"), basename(file, extname(file)), (cluster) => readDocument(resolve(dirname(file), cluster), "cluster"));
  if (!parsed.ok) throw new UsageError(`trace ${file}: ${parsed.error}`);
  const trace = parsed.trace;

  let policy: Policy = values.policy !== undefined || !trace.policy ? loadPolicy(values.policy, values.level) : trace.policy;
  if (values.policy === undefined && trace.policy && values.level !== undefined) {
    if (values.level !== "Namespace" && values.level !== "ItemBlock") throw new UsageError(`--level must be Namespace or ItemBlock, not ${values.level}`);
    policy = { ...policy, conflictLevel: values.level };
  }
  if (values.concurrency !== undefined) {
    const n = /^\d+$/.test(values.concurrency) ? Number(values.concurrency) : NaN;
    const checked = parsePolicy({ maxConcurrentBackups: n });
    if (!checked.ok) throw new UsageError(`--concurrency must be a whole number from 1 to 1000, not ${values.concurrency}`);
    policy = { ...policy, maxConcurrentBackups: n };
  }

  const show = progress();
  const { runs, holds } = replay(trace, policy, show && ((name, i, n) => show(`simulating ${trace.backups.length} backups: ${name} (${i + 1} of ${n})...`)));
  clearProgress();
  if (values.html !== undefined) {
    const html = timelineHtml({ title: `backup-gate simulate: ${trace.name}`, t0: new Date(trace.t0).toISOString(), groups: timelineGroups(runs) });
    try {
      writeFileSync(values.html, html);
    } catch (e) {
      throw new UsageError(`cannot write --html ${values.html}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const holdReport = holdLines(trace.name, holds);
  const broken = runs.filter((r) => !r.ignoresConflicts && (r.figures.violations > 0 || r.figures.stalled > 0));
  const output = [
    `trace ${trace.name}: ${trace.backups.length} backups, concurrency ${policy.maxConcurrentBackups}, policy level ${policy.conflictLevel}`,
    table(runs),
    ...tenantComparison(runs, policy),
    ...holdReport.table,
    ...runs
      .filter((r) => r.ignoresConflicts && r.figures.violations > 0)
      .map((r) => `note: ${r.result.strategy} ignores conflicts by design; its ${r.figures.violations} violations are expected`),
    ...broken.flatMap((r) => [
      ...r.result.violations
        .slice(0, 5)
        .map((v) => `INVARIANT VIOLATED: ${r.result.strategy}: ${v.backups[0]} and ${v.backups[1]} in flight together at ${v.at}s: ${v.reason}`),
      ...(r.result.stalled.length
        ? [`STALLED: ${r.result.strategy}: ${r.result.stalled.length} backups never started: ${r.result.stalled.slice(0, 5).join(", ")}`]
        : []),
    ]),
    ...holdReport.broken,
    ...runs.map((r) => jsonLine(r.result, r.figures)),
    ...tenantJson(trace.name, runs),
    ...holdReport.json,
  ].join("\n");
  return { output, failed: broken.length > 0 || holdReport.broken.length > 0 };
}

/** With tenants: waits per tenant under one queue at the policy's level, and under fair sharing. */
function tenantComparison(runs: readonly StrategyRun[], policy: Policy): string[] {
  const fair = runs.find((r) => r.result.strategy === "fair");
  const one = runs.find((r) => r.result.strategy === policy.conflictLevel.toLowerCase());
  if (!fair?.tenantWaits || !one?.tenantWaits) return [];
  return [tenantTable({ strategy: one.result.strategy, waits: one.tenantWaits }, { strategy: "fair", waits: fair.tenantWaits })];
}

/** With holds: what each changed, a HOLD BROKEN line per hold the run with them broke (a bug), and the JSON line. */
function holdLines(trace: string, holds: HoldComparison | undefined): { table: string[]; broken: string[]; json: string[] } {
  if (!holds) return { table: [], broken: [], json: [] };
  return {
    table: [holdTable(holds)],
    broken: holds.broken.map((b) => `HOLD BROKEN: ${holds.strategy}: ${b}`),
    json: [holdJsonLine(trace, holds)],
  };
}

function tenantJson(trace: string, runs: readonly StrategyRun[]): string[] {
  const byStrategy = Object.fromEntries(runs.flatMap((r) => (r.tenantWaits ? [[r.result.strategy, r.tenantWaits]] : [])));
  return Object.keys(byStrategy).length ? [tenantJsonLine(trace, byStrategy)] : [];
}
