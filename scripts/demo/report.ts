/**
 * The demo's report: what each backup of the burst did (created, waited, ran), as an HTML
 * timeline (src/report/timeline.ts, one bar per backup) and as plain text with the same
 * figures. Pure: the demo records the times, this module only formats them.
 */
import { timelineHtml, type TimelineInput, type TimelineMark } from "../../src/report/timeline.js";

/** One Backup as the demo saw it. Times are Unix milliseconds. */
export interface BackupRecord {
  readonly name: string;
  /** What kind of backup it is, e.g. "per-app", "manifest-only". */
  readonly description?: string;
  /** When it was created. */
  readonly arrival: number;
  /** When it was first seen in flight (ReadyToStart or later); absent: it never started. */
  readonly start?: number;
  /** When it was first seen in a terminal phase. */
  readonly end?: number;
  /** Its last phase. */
  readonly phase: string;
  /** Every backup it was said to wait behind (backup-gate.io/waiting-for), in order seen. */
  readonly waitingFor: readonly string[];
  /** It waited, at some point, only for a free slot. */
  readonly waitedForSlot: boolean;
  /** The first reason the gate gave for its wait. */
  readonly reason?: string;
}

/** A create the validating webhook refused. */
export interface Rejection {
  readonly name: string;
  readonly at: number;
  readonly status: number;
  readonly message: string;
}

/** Two backups that processed the same item at the same time (from the probe plugin's records). */
export interface OverlapNote {
  readonly at: number;
  readonly label: string;
}

/** A pod volume Velero copied by file system: one PodVolumeBackup. */
export interface VolumeCopy {
  readonly backup: string;
  /** namespace/name */
  readonly pod: string;
  readonly volume: string;
  readonly phase: string;
  readonly bytes: number;
  readonly start?: number;
  readonly end?: number;
}

/** A freeze a pre-backup hook took on a pod (its hook records), until the post hook released it. */
export interface FreezeNote {
  /** namespace/name */
  readonly pod: string;
  readonly at: number;
  /** Absent: never released. */
  readonly releasedAt?: number;
  /** The hook found the volume already frozen by another backup (an overlap). */
  readonly busy: boolean;
}

/** The work the backups did on the real node. */
export interface DemoWork {
  readonly volumeCopies: readonly VolumeCopy[];
  readonly freezes: readonly FreezeNote[];
  /** Per backup, Velero's own count (status.hookStatus). */
  readonly hooks: readonly { readonly backup: string; readonly attempted: number; readonly failed: number }[];
}

export interface DemoReportInput {
  readonly title?: string;
  readonly level: string;
  readonly slots: number;
  readonly backups: readonly BackupRecord[];
  readonly rejections?: readonly Rejection[];
  /** Absent: the probe's records were not checked. */
  readonly overlaps?: readonly OverlapNote[];
  /** Absent: no real work was recorded (no node). */
  readonly work?: DemoWork;
}

export interface BackupFigures {
  readonly name: string;
  readonly description?: string;
  readonly phase: string;
  /** Seconds from creation to start (to the end of the run if it never started). */
  readonly wait: number;
  /** Seconds from start to end; absent if it did not both start and end. */
  readonly run?: number;
  readonly waitingFor: readonly string[];
}

export interface DemoFigures {
  readonly t0: number;
  /** Seconds from the first creation to the last end. */
  readonly makespan: number;
  readonly meanWait: number;
  readonly maxWait: number;
  readonly maxWaitBackup?: string;
  readonly waitedBehindConflict: number;
  readonly backups: readonly BackupFigures[];
}

const sec = (ms: number) => ms / 1000;
const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
const round1 = (x: number) => Math.round(x * 10) / 10;

export function demoFigures(input: DemoReportInput): DemoFigures {
  const bs = input.backups;
  const t0 = bs.length ? Math.min(...bs.map((b) => b.arrival)) : 0;
  const tEnd = bs.length ? Math.max(...bs.flatMap((b) => [b.arrival, b.start ?? b.arrival, b.end ?? b.start ?? b.arrival])) : 0;
  const backups = bs.map((b): BackupFigures => ({
    name: b.name,
    ...(b.description ? { description: b.description } : {}),
    phase: b.phase,
    wait: sec((b.start ?? tEnd) - b.arrival),
    ...(b.start !== undefined && b.end !== undefined ? { run: sec(b.end - b.start) } : {}),
    waitingFor: b.waitingFor,
  }));
  const waits = backups.map((b) => b.wait);
  const maxWait = waits.length ? Math.max(...waits) : 0;
  const maxWaitBackup = backups.find((b) => b.wait === maxWait)?.name;
  return {
    t0,
    makespan: sec(tEnd - t0),
    meanWait: waits.length ? waits.reduce((a, b) => a + b, 0) / waits.length : 0,
    maxWait,
    ...(maxWaitBackup !== undefined && waits.length ? { maxWaitBackup } : {}),
    waitedBehindConflict: bs.filter((b) => b.waitingFor.length > 0).length,
    backups,
  };
}

const mib = (bytes: number) => `${round1(bytes / 2 ** 20)} MiB`;

/** One sentence on the real work: hooks, freezes and file-system copies. */
export function workSummary(w: DemoWork): string {
  const attempted = w.hooks.reduce((a, h) => a + h.attempted, 0);
  const failed = w.hooks.reduce((a, h) => a + h.failed, 0);
  const busy = w.freezes.filter((f) => f.busy).length;
  const bytes = w.volumeCopies.reduce((a, v) => a + v.bytes, 0);
  return (
    `Real work: ${plural(attempted, "hook")} run by Velero (${failed} failed), ` +
    `${plural(w.freezes.length - busy, "freeze")} held${busy ? `, ${busy} found the pod already frozen (an overlap)` : ", never two on one pod at once"}, ` +
    `${plural(w.volumeCopies.length, "PodVolumeBackup")} (kopia) copying ${mib(bytes)}`
  );
}

export function demoTimeline(input: DemoReportInput): TimelineInput {
  const f = demoFigures(input);
  const rel = (ms: number) => sec(ms - f.t0);
  const marks: TimelineMark[] = [
    ...(input.overlaps ?? []).map((o) => ({ at: rel(o.at), label: o.label })),
    ...(input.work?.freezes ?? []).filter((f) => f.busy).map((f) => ({ at: rel(f.at), label: `${f.pod}: freeze found the pod already frozen` })),
  ];
  const rejected = (input.rejections ?? []).map((r) => `${r.name} rejected at ${round1(rel(r.at))}s (${r.status}): ${r.message}`);
  const subtitle = [
    `${input.backups.length} backups, ${input.level} level, ${input.slots} slots. Makespan ${round1(f.makespan)}s; ` +
      `wait mean ${round1(f.meanWait)}s, max ${round1(f.maxWait)}s${f.maxWaitBackup ? ` (${f.maxWaitBackup})` : ""}; ` +
      `${f.waitedBehindConflict} waited behind a conflict.`,
    ...rejected,
    input.overlaps === undefined
      ? ""
      : input.overlaps.length === 0
        ? "Probe check: no pod, PVC or PV was processed by two backups at the same time."
        : `Probe check: ${plural(input.overlaps.length, "overlap")} (marked on the axis).`,
    input.work ? workSummary(input.work) : "",
  ]
    .filter((s) => s !== "")
    .map((s) => (/[.!?)]$/.test(s) ? s : `${s}.`))
    .join(" ");
  return {
    title: input.title ?? "backup-gate demo: the burst",
    t0: new Date(f.t0).toISOString(),
    groups: [
      {
        title: `${input.level} level, ${input.slots} slots`,
        subtitle,
        bars: input.backups.map((b) => ({
          name: b.name,
          arrival: rel(b.arrival),
          ...(b.start !== undefined ? { start: rel(b.start) } : {}),
          ...(b.end !== undefined ? { end: rel(b.end) } : {}),
          waitingFor: b.waitingFor,
          waitedForSlot: b.waitedForSlot,
          ...(b.reason ? { reason: b.reason } : {}),
          ...(b.phase !== "Completed" ? { status: b.start === undefined ? `not started (${b.phase || "New"})` : b.phase } : {}),
        })),
        marks,
      },
    ],
  };
}

export function demoReportHtml(input: DemoReportInput): string {
  return timelineHtml(demoTimeline(input));
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + " ".repeat(n - s.length);
}

export function demoReportText(input: DemoReportInput): string {
  const f = demoFigures(input);
  const lines: string[] = [];
  lines.push(`${input.backups.length} backups, ${input.level} level, ${input.slots} slots`);
  lines.push(
    `makespan ${round1(f.makespan)}s   wait: mean ${round1(f.meanWait)}s, max ${round1(f.maxWait)}s` +
      `${f.maxWaitBackup ? ` (${f.maxWaitBackup})` : ""}   waited behind a conflict: ${f.waitedBehindConflict}`,
  );
  lines.push("");
  const nameW = Math.max(6, ...f.backups.map((b) => b.name.length)) + 2;
  const descW = Math.max(4, ...f.backups.map((b) => (b.description ?? "").length)) + 2;
  lines.push(`${pad("BACKUP", nameW)}${pad("KIND", descW)}${pad("PHASE", 17)}${pad("WAIT", 8)}${pad("RUN", 8)}WAITED BEHIND`);
  for (const b of f.backups) {
    lines.push(
      `${pad(b.name, nameW)}${pad(b.description ?? "", descW)}${pad(b.phase || "New", 17)}${pad(`${round1(b.wait)}s`, 8)}` +
        `${pad(b.run === undefined ? "-" : `${round1(b.run)}s`, 8)}${b.waitingFor.length ? b.waitingFor.join(", ") : "-"}`,
    );
  }
  const rej = input.rejections ?? [];
  if (rej.length) {
    lines.push("");
    for (const r of rej) lines.push(`rejected ${r.name} (HTTP ${r.status}): ${r.message}`);
  }
  if (input.overlaps !== undefined) {
    lines.push("");
    lines.push(
      input.overlaps.length === 0
        ? "probe check: no pod, PVC or PV was processed by two backups at the same time"
        : `probe check: ${plural(input.overlaps.length, "overlap")}:\n${input.overlaps.map((o) => `  ${o.label}`).join("\n")}`,
    );
  }
  if (input.work) lines.push("", ...workText(input.work, f.t0));
  return lines.join("\n");
}

/** The real work as text: Velero's hook counts, each freeze from the hook records, each file-system copy. */
function workText(w: DemoWork, t0: number): string[] {
  const rel = (ms: number) => `${round1(sec(ms - t0))}s`;
  const lines = [`${workSummary(w)}.`, "", "freezes (pre-backup hook took it, post-backup hook released it; from the pods' hook records):"];
  const podW = Math.max(4, ...w.freezes.map((f) => f.pod.length), ...w.volumeCopies.map((v) => v.pod.length)) + 2;
  for (const f of [...w.freezes].sort((a, b) => a.at - b.at)) {
    lines.push(
      `  ${pad(f.pod, podW)}${
        f.busy
          ? `at ${rel(f.at)}: BUSY, already frozen by another backup`
          : `held ${rel(f.at)} .. ${f.releasedAt === undefined ? "never released" : `${rel(f.releasedAt)} (${round1(sec(f.releasedAt - f.at))}s)`}`
      }`,
    );
  }
  lines.push("", "file-system copies (PodVolumeBackups, kopia):");
  const nameW = Math.max(6, ...w.volumeCopies.map((v) => v.backup.length)) + 2;
  lines.push(`  ${pad("BACKUP", nameW)}${pad("POD", podW)}${pad("VOLUME", 8)}${pad("PHASE", 11)}${pad("BYTES", 11)}TIME`);
  for (const v of [...w.volumeCopies].sort((a, b) => (a.start ?? 0) - (b.start ?? 0))) {
    const time = v.start !== undefined && v.end !== undefined ? `${rel(v.start)} .. ${rel(v.end)}` : "-";
    lines.push(`  ${pad(v.backup, nameW)}${pad(v.pod, podW)}${pad(v.volume, 8)}${pad(v.phase || "New", 11)}${pad(mib(v.bytes), 11)}${time}`);
  }
  return lines;
}
