import { parseArgs } from "node:util";
import { decideAdmission } from "../core/admission.js";
import { IN_FLIGHT_PHASES } from "../core/model.js";
import { trim } from "../core/objects.js";
import { plan } from "../core/plan.js";
import { readLive } from "./live.js";
import { readDocument, UsageError } from "./readInput.js";

// `queue` and `explain`: the live queue and one backup's wait, in plain words, read through the
// user's kubeconfig and planned by the same core the controller runs.

export const QUEUE_USAGE = `backup-gate queue [--kubeconfig FILE] [--gate-namespace NS] [--json]
backup-gate explain BACKUP | -f FILE [--kubeconfig FILE] [--gate-namespace NS]`;

const common = {
  kubeconfig: { type: "string" }, "gate-namespace": { type: "string" }, json: { type: "boolean", default: false }, file: { type: "string", short: "f" },
} as const;

function progress(): ((line: string) => void) | undefined {
  return process.stderr.isTTY ? (line) => process.stderr.write(`\r\x1b[2K${line}`) : undefined;
}

function clearProgress(): void {
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[2K");
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

export async function runQueue(args: string[], now: number): Promise<string> {
  const { values } = parseArgs({ args, options: common, strict: true });
  const live = await readLive({ ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}), gateNamespace: values["gate-namespace"] ?? "backup-gate", progress: progress() });
  clearProgress();
  const result = plan(live.snapshot, live.policy, now);
  const byName = new Map(live.snapshot.backups.map((b) => [b.name, b]));
  const waited = (name: string) => duration(now - (Date.parse(byName.get(name)?.creationTimestamp ?? "") || now));
  const rows = [
    ...result.inFlight.map((name) => ({ backup: name, phase: byName.get(name)?.phase ?? "", position: "", priority: "", waited: waited(name), waitingFor: "", reason: "in flight" })),
    ...result.promotions.map((p) => ({ backup: p.backup, phase: byName.get(p.backup)?.phase || "New", position: "next", priority: "", waited: waited(p.backup), waitingFor: "", reason: `starts at the controller's next plan: ${p.reason}` })),
    ...result.queue.map((q) => ({ backup: q.backup, phase: byName.get(q.backup)?.phase || "New", position: String(q.position), priority: String(q.effectivePriority), waited: waited(q.backup), waitingFor: q.waitingFor.join(","), reason: q.reason })),
  ];
  if (values.json) return JSON.stringify({ level: result.level, limit: result.limit, rows }, null, 2);
  const header = { backup: "BACKUP", phase: "PHASE", position: "POS", priority: "PRIO", waited: "WAITED", waitingFor: "WAITING FOR", reason: "REASON" };
  const cols = ["backup", "phase", "position", "priority", "waited", "waitingFor"] as const;
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(header[c].length, ...rows.map((r) => r[c].length))]));
  const line = (r: typeof header) => [...cols.map((c) => r[c].padEnd(width[c] ?? 0)), r.reason].join("  ");
  return [`level ${result.level}, ${result.inFlight.length} of ${result.limit} in flight, ${result.queue.length} waiting${live.policyNote ? `\nnote: ${live.policyNote}` : ""}`, line(header), ...rows.map(line)].join("\n");
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
