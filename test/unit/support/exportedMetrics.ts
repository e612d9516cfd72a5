import { createMetrics } from "../../../src/metrics/metrics.js";

// What the gate exports, read from its real prom-client registry (the one /metrics serves), so a
// check against it can never drift from a hand-kept list.

export interface Exported {
  /** Metric families by name, with their type (counter, gauge, histogram, summary). */
  readonly families: ReadonlyMap<string, string>;
  /** Every series name a query can select: a histogram or summary as its _bucket/_sum/_count series. */
  readonly series: ReadonlySet<string>;
}

export async function exportedMetrics(): Promise<Exported> {
  const families = new Map((await createMetrics().registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
  const series = new Set<string>();
  for (const [name, type] of families) {
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) series.add(name + s);
    else if (type === "summary") for (const s of ["", "_sum", "_count"]) series.add(name + s);
    else series.add(name);
  }
  return { families, series };
}

/** The family a series belongs to (a histogram's `_bucket` series belongs to the histogram). */
export function familyOf(series: string, families: ReadonlyMap<string, string>): string | undefined {
  if (families.has(series)) return series;
  const m = /^(.*)_(bucket|sum|count)$/.exec(series);
  return m && families.has(m[1] as string) ? m[1] : undefined;
}
