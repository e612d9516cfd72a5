import type { HoldComparison, Pair, Waits } from "./holds.js";
import type { BackupRun, SimResult } from "./engine.js";

// The figures of one run, a table of several, and one JSON line per run.

export interface Figures {
  readonly backups: number;
  readonly started: number;
  readonly superseded: number;
  readonly stalled: number;
  /** Queue wait (arrival -> start) of the backups that started, in seconds. */
  readonly meanWait: number;
  readonly p95Wait: number;
  readonly maxWait: number;
  /** Last completion - first arrival, in seconds. */
  readonly makespan: number;
  readonly inFlightMax: number;
  /** Time-weighted over the makespan. */
  readonly inFlightMean: number;
  /** In flight over the makespan, one character per slice, scaled to the limit. */
  readonly sparkline: string;
  readonly violations: number;
  readonly violatingInstants: number;
}

const BARS = "▁▂▃▄▅▆▇█";

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The integral of the in-flight step function over [a, b]. */
function area(steps: SimResult["inFlight"], a: number, b: number): number {
  let sum = 0;
  for (let i = 0; i < steps.length; i++) {
    const from = Math.max(a, steps[i]!.t);
    const to = Math.min(b, steps[i + 1]?.t ?? Infinity);
    if (to > from) sum += (to - from) * steps[i]!.n;
  }
  return sum;
}

export function figuresOf(r: SimResult, slices = 40): Figures {
  const started = r.runs.filter((x): x is BackupRun & { start: number; end: number } => x.start !== undefined);
  const waits = started.map((x) => x.start - x.arrival).sort((a, b) => a - b);
  const first = Math.min(...r.runs.map((x) => x.arrival));
  const last = started.length ? Math.max(...started.map((x) => x.end)) : first;
  const makespan = last - first;
  let sparkline = "";
  if (makespan > 0) {
    const width = makespan / slices;
    for (let i = 0; i < slices; i++) {
      const mean = area(r.inFlight, first + i * width, first + (i + 1) * width) / width;
      sparkline += BARS[Math.min(BARS.length - 1, Math.round((mean / r.limit) * (BARS.length - 1)))];
    }
  }
  return {
    backups: r.runs.length,
    started: started.length,
    superseded: r.runs.filter((x) => x.outcome === "superseded").length,
    stalled: r.stalled.length,
    meanWait: waits.length ? waits.reduce((a, b) => a + b, 0) / waits.length : 0,
    p95Wait: percentile(waits, 95),
    maxWait: waits.at(-1) ?? 0,
    makespan,
    inFlightMax: Math.max(0, ...r.inFlight.map((s) => s.n)),
    inFlightMean: makespan > 0 ? area(r.inFlight, first, last) / makespan : 0,
    sparkline,
    violations: r.violations.length,
    violatingInstants: r.violatingInstants,
  };
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** `{"sim":"<trace>","strategy":...}`: times in seconds. */
export function jsonLine(r: SimResult, f: Figures): string {
  return JSON.stringify({
    sim: r.trace,
    strategy: r.strategy,
    level: r.level,
    concurrency: r.limit,
    backups: f.backups,
    started: f.started,
    superseded: f.superseded,
    stalled: f.stalled,
    meanWait: round(f.meanWait),
    p95Wait: round(f.p95Wait),
    maxWait: round(f.maxWait),
    makespan: round(f.makespan),
    inFlightMax: f.inFlightMax,
    inFlightMean: round(f.inFlightMean, 2),
    violations: f.violations,
    violatingInstants: f.violatingInstants,
    sparkline: f.sparkline,
  });
}

/** 42s, 3m05s, 2h07m. */
export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${round(seconds)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function table(results: readonly { result: SimResult; figures: Figures }[]): string {
  const header = ["strategy", "level", "mean wait", "p95 wait", "max wait", "makespan", "in flight max", "mean", "violations", "in flight over time"];
  const rows = results.map(({ result: r, figures: f }) => [
    r.strategy,
    r.level,
    duration(f.meanWait),
    duration(f.p95Wait),
    duration(f.maxWait),
    duration(f.makespan),
    `${f.inFlightMax}/${r.limit}`,
    f.inFlightMean.toFixed(2),
    String(f.violations) + (f.stalled ? ` (${f.stalled} stalled)` : ""),
    f.sparkline,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** One tenant's backups under one strategy: how long they waited (seconds). */
export interface TenantWaits {
  /** "-": backups with no tenant (administrators'). */
  readonly tenant: string;
  readonly backups: number;
  readonly started: number;
  readonly meanWait: number;
  readonly maxWait: number;
}

/** Queue waits per tenant, tenants by name and the untenanted ("-") last. */
export function tenantWaits(r: SimResult, tenantOf: (name: string) => string | undefined): TenantWaits[] {
  const byTenant = new Map<string, BackupRun[]>();
  for (const x of r.runs) {
    const t = tenantOf(x.name) ?? "-";
    byTenant.set(t, [...(byTenant.get(t) ?? []), x]);
  }
  const key = (t: string) => (t === "-" ? "\uffff" : t);
  return [...byTenant]
    .sort(([a], [b]) => (key(a) < key(b) ? -1 : 1))
    .map(([tenant, runs]) => {
      const waits = runs.flatMap((x) => (x.start === undefined ? [] : [x.start - x.arrival]));
      return {
        tenant,
        backups: runs.length,
        started: waits.length,
        meanWait: waits.length ? waits.reduce((a, b) => a + b, 0) / waits.length : 0,
        maxWait: Math.max(0, ...waits),
      };
    });
}

/**
 * Each tenant's mean and max wait under one queue and under fair sharing, side by side. With
 * more than `rows` tenants, those whose longest wait fair sharing changes most are shown.
 */
export function tenantTable(
  oneQueue: { strategy: string; waits: readonly TenantWaits[] },
  fair: { strategy: string; waits: readonly TenantWaits[] },
  rows = 12,
): string {
  const fairOf = new Map(fair.waits.map((w) => [w.tenant, w]));
  let shown = oneQueue.waits.map((w) => ({ w, f: fairOf.get(w.tenant) }));
  const hidden = Math.max(0, shown.length - rows);
  if (hidden > 0) {
    const change = (x: (typeof shown)[number]) => Math.abs(x.w.maxWait - (x.f?.maxWait ?? 0));
    const keep = new Set([...shown].sort((a, b) => change(b) - change(a)).slice(0, rows));
    shown = shown.filter((x) => keep.has(x));
  }
  const header = ["tenant", "backups", `${oneQueue.strategy} mean`, `${oneQueue.strategy} max`, `${fair.strategy} mean`, `${fair.strategy} max`];
  const cells = shown.map(({ w, f }) => [
    w.tenant,
    String(w.backups),
    duration(w.meanWait),
    duration(w.maxWait),
    f ? duration(f.meanWait) : "-",
    f ? duration(f.maxWait) : "-",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((x, i) => x.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [
    `waits per tenant, one queue (${oneQueue.strategy}) and fair sharing (${fair.strategy}); "-" is backups with no tenant:`,
    line(header),
    ...cells.map(line),
    ...(hidden > 0 ? [`(${hidden} more tenants, whose longest wait fair sharing changes least)`] : []),
  ].join("\n");
}

/** `{"sim":"<trace>","tenantWaits":{"<strategy>":[...]}}`: times in seconds. */
export function tenantJsonLine(trace: string, byStrategy: Readonly<Record<string, readonly TenantWaits[]>>): string {
  const rounded = Object.fromEntries(
    Object.entries(byStrategy).map(([s, waits]) => [s, waits.map((w) => ({ ...w, meanWait: round(w.meanWait), maxWait: round(w.maxWait) }))]),
  );
  return JSON.stringify({ sim: trace, tenantWaits: rounded });
}

/**
 * What each hold changed: per budget its most backups in flight, per window the backups started
 * while it was closed, for restores the backups in flight while one wrote into them; and the
 * waits, each beside the run without that hold.
 */
export function holdTable(c: HoldComparison): string {
  const rows: string[][] = [];
  const waits = (w: Pair<Waits>) => [
    "wait mean / max",
    `${duration(w.without.mean)} / ${duration(w.without.max)}`,
    `${duration(w.with.mean)} / ${duration(w.with.max)}`,
  ];
  const group = (hold: string, lines: string[][]) => lines.forEach((l, i) => rows.push([i === 0 ? hold : "", ...l]));
  if (c.budgets) {
    for (const p of c.budgets.peaks) group(`budget ${p.kind} ${p.name}`, [[`most in flight at once (limit ${p.limit})`, String(p.without), String(p.with)]]);
    group(`budgets (${c.budgets.without})`, [waits(c.budgets.waits)]);
  }
  if (c.windows) {
    for (const w of c.windows.windows) {
      group(`window ${w.window} (${w.zone})`, [
        [`of ${w.governed} it governs: started while it was closed`, String(w.outside.without), String(w.outside.with)],
        ["  of them after their max wait (onMaxWait Start)", String(w.afterMaxWait.without), String(w.afterMaxWait.with)],
        ["failed after their max wait (onMaxWait Fail)", String(w.failed.without), String(w.failed.with)],
      ]);
    }
    group(`windows (${c.windows.without})`, [waits(c.windows.waits)]);
  }
  if (c.restores) {
    const r = c.restores;
    group(`restores (${r.restores}; ${r.without})`, [
      ["backups in flight while a restore wrote into them", String(r.inFlightDuring.without), String(r.inFlightDuring.with)],
      ["  of them started while it wrote", String(r.startedDuring.without), String(r.startedDuring.with)],
      waits(r.waits),
    ]);
  }
  const header = ["hold", "measure", "without", "with"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((x, i) => x.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [
    `what each hold changed: ${c.strategy} with the policy's holds, beside ${c.strategy} without one (the strategy in brackets), measured from who was in flight when:`,
    line(header),
    ...rows.map(line),
  ].join("\n");
}

/** `{"sim":"<trace>","holds":{"strategy":...,"budgets":...,"windows":...,"restores":...}}`: times in seconds. */
export function holdJsonLine(trace: string, c: HoldComparison): string {
  const w = (x: Pair<Waits>) => ({
    without: { mean: round(x.without.mean), max: round(x.without.max) },
    with: { mean: round(x.with.mean), max: round(x.with.max) },
  });
  return JSON.stringify({
    sim: trace,
    holds: {
      strategy: c.strategy,
      ...(c.budgets ? { budgets: { ...c.budgets, waits: w(c.budgets.waits) } } : {}),
      ...(c.windows ? { windows: { ...c.windows, waits: w(c.windows.waits) } } : {}),
      ...(c.restores ? { restores: { ...c.restores, waits: w(c.restores.waits) } } : {}),
      broken: c.broken.length,
    },
  });
}
