import { parseArgs } from "node:util";
import { decideAdmission } from "../core/admission.js";
import { IN_FLIGHT_PHASES, KEYS, type BackupInfo } from "../core/model.js";
import { trim } from "../core/objects.js";
import { basePriority, effectivePriorityOf, plan, type Plan } from "../core/plan.js";
import { PROMOTED_AT } from "../core/writes.js";
import { readLive, type Live } from "./live.js";
import { clearProgress, progress } from "./progress.js";
import { readDocument, UsageError } from "./readInput.js";

// `queue` and `explain`: the live queue and one backup's wait, in plain words, read through the
// user's kubeconfig and planned by the same core the controller runs.

export const QUEUE_USAGE = `backup-gate queue [--kubeconfig FILE] [--gate-namespace NS] [--json]
backup-gate explain BACKUP | -f FILE [--kubeconfig FILE] [--gate-namespace NS]`;

const common = {
  kubeconfig: { type: "string" }, "gate-namespace": { type: "string" }, json: { type: "boolean", default: false }, file: { type: "string", short: "f" },
} as const;

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/** One line of `queue`: a backup in flight, about to start, or waiting. */
export interface QueueRow {
  readonly backup: string;
  readonly phase: string;
  /** 1 is next; 0 for a backup the controller starts at its next plan; null in flight. */
  readonly position: number | null;
  readonly priority: number;
  readonly effectivePriority: number;
  /** Queued: creation until now. In flight: creation until backup-gate promoted it (null when it did not). */
  readonly waitedSeconds: number | null;
  readonly waitingFor: readonly string[];
  readonly reason: string;
}

/** The rows `queue` shows, in order: in flight, starting next, then the queue from position 1. */
export function queueRows(live: Live, result: Plan, now: number): QueueRow[] {
  const byName = new Map(live.snapshot.backups.map((b) => [b.name, b]));
  const created = (b: BackupInfo) => Date.parse(b.creationTimestamp);
  const seconds = (from: number, to: number) => (Number.isFinite(from) && Number.isFinite(to) ? Math.max(0, Math.round((to - from) / 1000)) : null);
  const row = (name: string, r: Pick<QueueRow, "position" | "waitedSeconds" | "waitingFor" | "reason">): QueueRow => {
    const b = byName.get(name);
    return {
      backup: name, phase: b?.phase || "New",
      priority: b ? basePriority(b, live.policy) : 0, effectivePriority: b ? effectivePriorityOf(b, live.policy, now) : 0, ...r,
    };
  };
  const waitedNow = (name: string) => { const b = byName.get(name); return b ? seconds(created(b), now) : null; };
  return [
    ...result.inFlight.map((name) => {
      const b = byName.get(name);
      const promotedAt = b?.annotations[PROMOTED_AT];
      return row(name, {
        position: null, waitingFor: [],
        waitedSeconds: b && promotedAt ? seconds(created(b), Date.parse(promotedAt)) : null,
        reason: b?.annotations[KEYS.promotedBy] ? "in flight" : "in flight; started without backup-gate (before it ran, or by another writer)",
      });
    }),
    ...result.promotions.map((p) => row(p.backup, { position: 0, waitedSeconds: waitedNow(p.backup), waitingFor: [], reason: `starts at the controller's next plan: ${p.reason}` })),
    ...result.queue.map((q) => row(q.backup, { position: q.position, waitedSeconds: waitedNow(q.backup), waitingFor: q.waitingFor, reason: q.reason })),
  ];
}

export async function runQueue(args: string[], now: number): Promise<string> {
  const { values } = parseArgs({ args, options: common, strict: true });
  const live = await readLive({ ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}), gateNamespace: values["gate-namespace"] ?? "backup-gate", progress: progress() });
  clearProgress();
  const result = plan(live.snapshot, live.policy, now);
  const rows = queueRows(live, result, now);
  if (values.json) return JSON.stringify({ level: result.level, limit: result.limit, ...(live.policyNote ? { note: live.policyNote } : {}), rows }, null, 2);
  const header = { backup: "BACKUP", phase: "PHASE", position: "POS", priority: "PRIO", waited: "WAITED", waitingFor: "WAITING FOR", reason: "REASON" };
  const cells = rows.map((r) => ({
    backup: r.backup, phase: r.phase,
    position: r.position === null ? "-" : r.position === 0 ? "next" : String(r.position),
    // Aging stops at promotion: a backup in flight shows the priority it was given.
    priority: String(r.position === null ? r.priority : r.effectivePriority),
    waited: r.waitedSeconds === null ? "-" : duration(r.waitedSeconds * 1000),
    waitingFor: r.waitingFor.join(",") || "-",
    reason: r.reason,
  }));
  const cols = ["backup", "phase", "position", "priority", "waited", "waitingFor"] as const;
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(header[c].length, ...cells.map((r) => r[c].length))]));
  const line = (r: typeof header) => [...cols.map((c) => r[c].padEnd(width[c] ?? 0)), r.reason].join("  ");
  return [`level ${result.level}, ${result.inFlight.length} of ${result.limit} in flight, ${result.queue.length + result.promotions.length} waiting${live.policyNote ? `\nnote: ${live.policyNote}` : ""}`, line(header), ...cells.map(line)].join("\n");
}

export async function runExplain(args: string[], now: number): Promise<string> {
  const { values, positionals } = parseArgs({ args, options: common, strict: true, allowPositionals: true });
  const name = positionals[0];
  if (!name === !values.file) throw new UsageError(`explain takes a backup name or -f FILE\n${QUEUE_USAGE}`);
  const live = await readLive({ ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}), gateNamespace: values["gate-namespace"] ?? "backup-gate", progress: progress() });
  clearProgress();
  if (values.file) {
    const raw = readDocument(values.file, "backup");
    const trimmed = trim("Backup", { metadata: { namespace: live.policy.veleroNamespace }, ...(raw as object) });
    if (!trimmed.ok) throw new UsageError(`${values.file}: ${trimmed.error.message}`);
    const d = decideAdmission(live.snapshot, live.policy, now, trimmed.value);
    const waits = d.reasons.some((r) => r.startsWith("waits"));
    const head = d.verdict === "reject" ? `${trimmed.value.name} would be rejected: ${d.message}`
      : `${trimmed.value.name} would ${waits ? "wait" : "start at once"} (judged at ${d.level} level): ${d.reasons.join("; ")}`;
    return [head, ...d.warnings.map((w) => `warning: ${w}`)].join("\n");
  }
  const result = plan(live.snapshot, live.policy, now);
  const b = live.snapshot.backups.find((x) => x.name === name);
  if (!b) throw new UsageError(`no backup ${name} in namespace ${live.policy.veleroNamespace}`);
  const scope = result.scopes.get(b.name);
  const level = scope ? `${scope.level} level${scope.levelReason ? ` (${scope.levelReason})` : ""}` : "";
  const entry = result.queue.find((q) => q.backup === b.name);
  if (entry) return `${b.name} is #${entry.position} in the queue, judged at ${level}: ${entry.reason}`;
  const promoted = result.promotions.find((p) => p.backup === b.name);
  if (promoted) return `${b.name} starts at the controller's next plan, judged at ${level}: ${promoted.reason}`;
  if (IN_FLIGHT_PHASES.has(b.phase)) return `${b.name} is ${b.phase}: it is not waiting.`;
  return `${b.name} is ${b.phase || "New"}: it is not queued (it finished, failed, or is outside the queue).`;
}
