// A self-contained HTML timeline of backups: one bar per backup, its waiting segment (arrival
// or creation -> start) and its running segment (start -> end), the waiting segment coloured
// by why it waited (a conflict, or only a free slot) and titled with whom it waited for.
// Groups (e.g. strategies of a simulation, or runs of the local stack) stand side by side on
// one shared time axis. No external assets: inline CSS and SVG only.

export interface TimelineBar {
  /** The backup's name. */
  readonly name: string;
  /** The row: bars with the same lane share it (default: the name). */
  readonly lane?: string;
  /** Seconds from t0 at which it was created (or arrived). */
  readonly arrival: number;
  /** Seconds from t0 at which it started; absent: it never started. */
  readonly start?: number;
  /** Seconds from t0 at which it ended; absent with a start: still running at the end of the axis. */
  readonly end?: number;
  /** Whom it waited behind (conflicts); empty or absent with a wait: it waited for a slot. */
  readonly waitingFor?: readonly string[];
  /** It also waited, at some point, only for a free slot. */
  readonly waitedForSlot?: boolean;
  /** Why it waited, as the planner said it. */
  readonly reason?: string;
  /** Anything but a normal completion, e.g. "superseded", "failed", "not started". */
  readonly status?: string;
}

export interface TimelineMark {
  /** Seconds from t0. */
  readonly at: number;
  readonly label: string;
}

export interface TimelineGroup {
  readonly title: string;
  readonly subtitle?: string;
  readonly bars: readonly TimelineBar[];
  /** Instants to flag on the axis (e.g. two conflicting backups in flight together). */
  readonly marks?: readonly TimelineMark[];
}

export interface TimelineInput {
  readonly title: string;
  /** What time 0 is (RFC 3339), shown in the header. */
  readonly t0?: string;
  readonly groups: readonly TimelineGroup[];
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
const fmt = (x: number) => Math.round(x * 10) / 10;

/** 42s, 3m05s, 2h07m. */
function span(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${fmt(seconds)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function niceStep(range: number, ticks: number): number {
  const raw = range / ticks;
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  return steps.find((s) => s >= raw) ?? Math.ceil(raw / 86400) * 86400;
}

function describe(b: TimelineBar): string {
  const lines = [`${b.name}: created at ${span(b.arrival)}`];
  if (b.start !== undefined) {
    const waited = b.start - b.arrival;
    if (waited > 0) {
      lines.push(
        b.waitingFor && b.waitingFor.length > 0
          ? `waited ${span(waited)} behind ${b.waitingFor.join(", ")}${b.waitedForSlot ? ", and for a free slot" : ""}`
          : `waited ${span(waited)} for a free slot`,
      );
    } else lines.push("started at once");
    lines.push(b.end !== undefined ? `ran ${span(b.end - b.start)} (${span(b.start)} to ${span(b.end)})` : `running since ${span(b.start)}`);
  } else lines.push(b.waitingFor && b.waitingFor.length > 0 ? `never started; waited behind ${b.waitingFor.join(", ")}` : "never started");
  if (b.reason) lines.push(`reason: ${b.reason}`);
  if (b.status) lines.push(`status: ${b.status}`);
  return lines.join("\n");
}

interface BarPlace {
  /** Time to x within the plot, and the plot's left edge. */
  readonly x: (t: number) => number;
  readonly left: number;
  readonly y: number;
  readonly h: number;
  /** The end of the time axis: where open waits and runs stop. */
  readonly tMax: number;
}

/** One backup's bar: its wait (behind a conflict, or for a slot), then its run, or a "never started" stripe. */
function barSvg(b: TimelineBar, { x, left, y, h, tMax }: BarPlace): string {
  const width = (from: number, to: number, min: number) => fmt(Math.max(min, x(to) - x(from)));
  const waitEnd = b.start ?? tMax;
  const conflict = (b.waitingFor?.length ?? 0) > 0;
  const rects: string[] = [];
  if (waitEnd > b.arrival) {
    rects.push(
      `<rect class="wait ${conflict ? "conflict" : "slot"}" x="${left + x(b.arrival)}" y="${y}" width="${width(b.arrival, waitEnd, 0.5)}" height="${h}"/>`,
    );
  }
  if (b.start !== undefined) {
    const end = b.end ?? tMax;
    rects.push(`<rect class="run${b.end === undefined ? " open" : ""}" x="${left + x(b.start)}" y="${y}" width="${width(b.start, end, 0.5)}" height="${h}"/>`);
  } else rects.push(`<rect class="never" x="${left + x(b.arrival)}" y="${y}" width="${width(b.arrival, tMax, 1)}" height="${h}"/>`);
  return `<g class="bar${b.status ? ` ${esc(b.status.replace(/\s+/g, "-"))}` : ""}" data-backup="${esc(b.name)}"><title>${esc(describe(b))}</title>${rects.join("")}</g>`;
}

export function timelineHtml(input: TimelineInput): string {
  const all = input.groups.flatMap((g) => g.bars);
  const tMin = Math.min(0, ...all.map((b) => b.arrival));
  const tMax = Math.max(
    tMin + 1,
    ...all.flatMap((b) => [b.arrival, b.start ?? b.arrival, b.end ?? b.start ?? b.arrival]),
    ...input.groups.flatMap((g) => (g.marks ?? []).map((m) => m.at)),
  );
  const plotW = 560;
  const x = (t: number) => fmt(((t - tMin) / (tMax - tMin)) * plotW);
  const step = niceStep(tMax - tMin, 6);

  const groups = input.groups.map((g) => {
    const lanes = [...new Set(g.bars.map((b) => b.lane ?? b.name))];
    const row = new Map(lanes.map((l, i) => [l, i]));
    const rowH = lanes.length <= 60 ? 14 : lanes.length <= 300 ? 5 : 2;
    const labels = lanes.length <= 60;
    const labelW = labels ? 150 : 0;
    const top = 24;
    const height = top + lanes.length * rowH + 6;
    const width = labelW + plotW + 10;
    const parts: string[] = [];
    for (let t = Math.ceil(tMin / step) * step; t <= tMax; t += step) {
      parts.push(
        `<line class="grid" x1="${labelW + x(t)}" x2="${labelW + x(t)}" y1="${top - 4}" y2="${height}"/>`,
        `<text class="tick" x="${labelW + x(t)}" y="${top - 8}">${esc(span(t))}</text>`,
      );
    }
    for (const m of g.marks ?? []) {
      parts.push(
        `<g class="mark"><title>${esc(`at ${span(m.at)}: ${m.label}`)}</title><path d="M${labelW + x(m.at) - 4},${top - 18} l8,0 l-4,8 z"/><line x1="${labelW + x(m.at)}" x2="${labelW + x(m.at)}" y1="${top}" y2="${height}"/></g>`,
      );
    }
    if (labels) lanes.forEach((l, i) => parts.push(`<text class="lane" x="${labelW - 6}" y="${top + i * rowH + rowH - 3}">${esc(l)}</text>`));
    const h = Math.max(1, rowH - (rowH > 4 ? 3 : rowH > 2 ? 1 : 0));
    for (const b of g.bars) parts.push(barSvg(b, { x, left: labelW, y: top + row.get(b.lane ?? b.name)! * rowH, h, tMax }));
    return `<section class="group"><h2>${esc(g.title)}</h2>${g.subtitle ? `<p>${esc(g.subtitle)}</p>` : ""}
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${parts.join("\n")}</svg></section>`;
  });

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(input.title)}</title>
<style>
body{font:13px system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:18px;margin:0 0 4px}h2{font-size:15px;margin:0}
.groups{display:flex;gap:24px;overflow-x:auto;align-items:flex-start}
.group p{margin:2px 0 6px;color:#555;max-width:700px}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:18px;height:10px;margin-right:4px;vertical-align:middle}
.grid{stroke:#e4e4e4}.tick{font-size:10px;fill:#777;text-anchor:middle}.lane{font-size:10px;fill:#444;text-anchor:end}
.run{fill:#2f6fbf}.run.open{fill:#7aa7dd}.wait.slot{fill:#c9c9c9}.wait.conflict{fill:#f29a2e}.never{fill:none;stroke:#c0392b;stroke-dasharray:3 2}
.bar.superseded .wait{fill:#bbb;opacity:.5}.bar:hover rect{opacity:.7}
.mark path{fill:#c0392b}.mark line{stroke:#c0392b;stroke-width:.7;opacity:.6}
</style></head><body>
<h1>${esc(input.title)}</h1>
<p>${input.t0 ? `Time 0 is ${esc(input.t0)}. ` : ""}One bar per backup; hover a bar for what it waited for.</p>
<p class="legend"><span><i style="background:#f29a2e"></i>waiting behind a conflict</span><span><i style="background:#c9c9c9"></i>waiting for a free slot</span><span><i style="background:#2f6fbf"></i>running</span><span><i style="border:1px dashed #c0392b"></i>never started</span><span><i style="background:#c0392b;height:8px;width:8px"></i>two conflicting backups in flight together</span></p>
<div class="groups">
${groups.join("\n")}
</div>
</body></html>
`;
}
