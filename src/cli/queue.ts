import { decideAdmission } from "../core/decision/admission.js";
import { IN_FLIGHT_PHASES, KEYS, type BackupInfo } from "../core/model.js";
import { trim } from "../core/velero/objects.js";
import type { BudgetHold } from "../core/decision/budgets.js";
import { basePriority, effectivePriorityOf } from "../core/decision/order.js";
import { plan, type Plan, type Snapshot } from "../core/decision/plan.js";
import type { Policy } from "../core/policy.js";
import { TENANT_STARTED } from "../core/decision/reasons.js";
import { tenantOf } from "../core/decision/tenants.js";
import { PROMOTED_AT } from "../core/decision/writes.js";
import type { KubeTarget } from "./kubeconfig.js";
import { readLive } from "./live.js";
import { asDocument, type Format } from "./output.js";
import { clearProgress, progress } from "./progress.js";
import { readDocument, UsageError } from "./readInput.js";

// `queue` and `explain`: the live queue and one backup's wait, in plain words, read through the
// user's kubeconfig and planned by the same core the controller runs.

export const EXPLAIN_USAGE = "backup-gate explain BACKUP | -f FILE [-o json|yaml|wide] [--kubeconfig FILE] [--context NAME] [--gate-namespace NS]";

/** What `queue` and `explain` read: the cluster, the policy, and a note when the policy is not the gate's. */
export interface QueueInput {
  readonly snapshot: Snapshot;
  readonly policy: Policy;
  readonly policyNote?: string;
}

export interface LiveCommandOptions extends KubeTarget {
  readonly gateNamespace: string;
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/** One line of `queue`: a backup in flight, about to start, or waiting. */
export interface QueueRow {
  readonly backup: string;
  readonly phase: string;
  /** 1 is next; 0 for a backup the controller starts at its next plan; null in flight, or failed at its next plan (a missed window). */
  readonly position: number | null;
  readonly priority: number;
  readonly effectivePriority: number;
  /** Queued: creation until now. In flight: creation until backup-gate promoted it (null when it did not). */
  readonly waitedSeconds: number | null;
  readonly waitingFor: readonly string[];
  readonly reason: string;
  /** With tenants in the policy: its tenant (absent: none, an administrator's). */
  readonly tenant?: string;
  /** With tenants in the policy, for a waiting backup: the reason in words its tenant may read. */
  readonly tenantReason?: string;
}

/** The rows `queue` shows, in order: in flight, starting next, then the queue from position 1. */
export function queueRows(live: QueueInput, result: Plan, now: number): QueueRow[] {
  const byName = new Map(live.snapshot.backups.map((b) => [b.name, b]));
  const created = (b: BackupInfo) => Date.parse(b.creationTimestamp);
  const seconds = (from: number, to: number) => (Number.isFinite(from) && Number.isFinite(to) ? Math.max(0, Math.round((to - from) / 1000)) : null);
  const row = (name: string, r: Pick<QueueRow, "position" | "waitedSeconds" | "waitingFor" | "reason" | "tenantReason">): QueueRow => {
    const b = byName.get(name);
    const tenant = live.policy.tenants && b ? tenantOf(b, live.policy) : undefined;
    const { tenantReason, ...rest } = r;
    return {
      backup: name,
      phase: b?.phase || "New",
      priority: b ? basePriority(b, live.policy) : 0,
      effectivePriority: b ? effectivePriorityOf(b, live.policy, now) : 0,
      ...rest,
      ...(tenant !== undefined ? { tenant } : {}),
      ...(live.policy.tenants && tenantReason !== undefined ? { tenantReason } : {}),
    };
  };
  const waitedNow = (name: string) => {
    const b = byName.get(name);
    return b ? seconds(created(b), now) : null;
  };
  return [
    ...result.inFlight.map((name) => {
      const b = byName.get(name);
      const promotedAt = b?.annotations[PROMOTED_AT];
      return row(name, {
        position: null,
        waitingFor: [],
        waitedSeconds: b && promotedAt ? seconds(created(b), Date.parse(promotedAt)) : null,
        reason: b?.annotations[KEYS.promotedBy] ? "in flight" : "in flight; started without backup-gate (before it ran, or by another writer)",
      });
    }),
    ...result.promotions.map((p) =>
      row(p.backup, {
        position: 0,
        waitedSeconds: waitedNow(p.backup),
        waitingFor: [],
        reason: `starts at the controller's next plan: ${p.reason}`,
        tenantReason: TENANT_STARTED,
      }),
    ),
    ...result.queue.map((q) =>
      row(q.backup, {
        position: q.position,
        waitedSeconds: waitedNow(q.backup),
        waitingFor: q.waitingFor,
        reason: q.reason,
        ...(q.tenantReason !== undefined ? { tenantReason: q.tenantReason } : {}),
      }),
    ),
    ...(result.missedWindows ?? []).map((m) =>
      row(m.backup, { position: null, waitedSeconds: waitedNow(m.backup), waitingFor: [], reason: `fails at the controller's next plan: ${m.reason}` }),
    ),
  ];
}

/** The document `queue -o json|yaml` prints (the fields are documented in docs/reference.md). */
export interface QueueReport {
  readonly level: string;
  readonly limit: number;
  readonly note?: string;
  readonly rows: readonly QueueRow[];
}

/** `queue` in the chosen format, planned now on what `live` holds. */
export function renderQueue(live: QueueInput, now: number, format: Format): string {
  const result = plan(live.snapshot, live.policy, now);
  const rows = queueRows(live, result, now);
  const report: QueueReport = { level: result.level, limit: result.limit, ...(live.policyNote ? { note: live.policyNote } : {}), rows };
  const doc = asDocument(report, format);
  if (doc !== undefined) return doc;
  const wide = format === "wide";
  const byName = new Map(live.snapshot.backups.map((b) => [b.name, b]));
  const header: Cells = {
    backup: "BACKUP",
    phase: "PHASE",
    position: "POS",
    priority: "PRIO",
    waited: "WAITED",
    waitingFor: "WAITING FOR",
    level: "LEVEL",
    base: "BASE",
    age: "AGE",
    tenant: "TENANT",
    reason: "REASON",
  };
  const cells = rows.map((r): Cells => {
    const scope = result.scopes.get(r.backup);
    const created = Date.parse(byName.get(r.backup)?.creationTimestamp ?? "");
    return {
      backup: r.backup,
      phase: r.phase,
      position: r.position === null ? "-" : r.position === 0 ? "next" : String(r.position),
      // Aging stops at promotion: a backup in flight shows the priority it was given.
      priority: String(r.position === null ? r.priority : r.effectivePriority),
      waited: r.waitedSeconds === null ? "-" : duration(r.waitedSeconds * 1000),
      waitingFor: r.waitingFor.join(",") || "-",
      level: scope ? scope.level : "-",
      base: String(r.priority),
      age: Number.isFinite(created) ? duration(now - created) : "-",
      tenant: r.tenant ?? "-",
      reason: r.reason,
    };
  });
  // With tenants, whose each backup is: "-" for an administrator's (no tenant).
  const tenantCol: readonly (keyof Cells)[] = live.policy.tenants ? ["tenant"] : [];
  const cols: readonly (keyof Cells)[] = wide
    ? ["backup", ...tenantCol, "phase", "position", "priority", "base", "level", "age", "waited", "waitingFor"]
    : ["backup", ...tenantCol, "phase", "position", "priority", "waited", "waitingFor"];
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(header[c].length, ...cells.map((r) => r[c].length))]));
  const line = (r: Cells) => [...cols.map((c) => r[c].padEnd(width[c] ?? 0)), r.reason].join("  ");
  return [
    `level ${result.level}, ${result.inFlight.length} of ${result.limit} in flight, ${result.queue.length + result.promotions.length} waiting${live.policyNote ? `\nnote: ${live.policyNote}` : ""}`,
    line(header),
    ...cells.map(line),
  ].join("\n");
}

type Cells = Record<"backup" | "phase" | "position" | "priority" | "waited" | "waitingFor" | "level" | "base" | "age" | "tenant" | "reason", string>;

export async function runQueue(o: LiveCommandOptions, format: Format, now: number): Promise<string> {
  const live = await readLive({ ...o, progress: progress() });
  clearProgress();
  return renderQueue(live, now, format);
}

/** One backup's wait, as `explain -o json|yaml` prints it. */
export interface Explanation {
  readonly backup: string;
  /** Queued, StartsNext, FailsNext, InFlight, NotQueued (live backups); WouldWait, WouldStart, WouldBeRejected (a file). */
  readonly state: "Queued" | "StartsNext" | "FailsNext" | "InFlight" | "NotQueued" | "WouldWait" | "WouldStart" | "WouldBeRejected";
  readonly phase?: string;
  readonly level?: string;
  readonly levelReason?: string;
  readonly position?: number;
  readonly waitingFor?: readonly string[];
  /** The budget that holds it (docs/rules.md, "Budgets"). */
  readonly budget?: BudgetHold;
  readonly reasons: readonly string[];
  readonly warnings: readonly string[];
  /** With tenants in the policy: its tenant (absent: none). */
  readonly tenant?: string;
  /** With tenants in the policy, for a live waiting backup: why it waits in words its tenant may read. */
  readonly tenantReason?: string;
  /** The sentence the text form prints. */
  readonly summary: string;
}

/** Why a live backup waits, or what a Backup not yet created would meet. */
export function explain(live: QueueInput, now: number, target: { name: string } | { backup: unknown; file: string }): Explanation {
  if ("file" in target) {
    const trimmed = trim("Backup", { metadata: { namespace: live.policy.veleroNamespace }, ...(target.backup as object) });
    if (!trimmed.ok) throw new UsageError(`${target.file}: ${trimmed.error.message}`);
    const d = decideAdmission(live.snapshot, live.policy, now, trimmed.value);
    const waits = d.reasons.some((r) => r.startsWith("waits"));
    const name = trimmed.value.name;
    const state = d.verdict === "reject" ? "WouldBeRejected" : waits ? "WouldWait" : "WouldStart";
    const summary =
      d.verdict === "reject"
        ? `${name} would be rejected: ${d.message}`
        : `${name} would ${waits ? "wait" : "start at once"} (judged at ${d.level} level): ${d.reasons.join("; ")}`;
    return {
      backup: name,
      state,
      level: d.level,
      ...(d.waitingFor.length ? { waitingFor: d.waitingFor } : {}),
      reasons: d.reasons,
      warnings: d.warnings,
      summary,
    };
  }
  return explainLive(live, now, target.name);
}

/** Why a live backup waits, starts next, or does neither. */
function explainLive(live: QueueInput, now: number, name: string): Explanation {
  const result = plan(live.snapshot, live.policy, now);
  const b = live.snapshot.backups.find((x) => x.name === name && x.namespace === live.policy.veleroNamespace);
  if (!b) throw new UsageError(`no backup ${name} in namespace ${live.policy.veleroNamespace}`);
  const scope = result.scopes.get(b.name);
  const judged = scope ? { level: scope.level, ...(scope.levelReason ? { levelReason: scope.levelReason } : {}) } : {};
  const level = scope ? `${scope.level} level${scope.levelReason ? ` (${scope.levelReason})` : ""}` : "";
  const tenant = live.policy.tenants ? tenantOf(b, live.policy) : undefined;
  const base = { backup: b.name, phase: b.phase || "New", ...judged, warnings: [], ...(tenant !== undefined ? { tenant } : {}) };
  // What its tenant reads (the Event on its NonAdminBackup, with tenants.nonAdminEvents) after the full reason.
  const tenantSays = (tenantReason: string | undefined): { said: { tenantReason?: string }; line: string } =>
    tenantReason === undefined
      ? { said: {}, line: "" }
      : { said: { tenantReason }, line: tenant === undefined ? "" : `\nits tenant ${tenant} reads: ${tenantReason}` };
  const entry = result.queue.find((q) => q.backup === b.name);
  if (entry) {
    const { said, line } = tenantSays(entry.tenantReason);
    return {
      ...base,
      state: "Queued",
      position: entry.position,
      waitingFor: entry.waitingFor,
      ...(entry.budget ? { budget: entry.budget } : {}),
      reasons: [entry.reason],
      ...said,
      summary: `${b.name} is #${entry.position} in the queue, judged at ${level}: ${entry.reason}${line}`,
    };
  }
  const promoted = result.promotions.find((p) => p.backup === b.name);
  if (promoted) {
    const { said, line } = tenantSays(live.policy.tenants ? TENANT_STARTED : undefined);
    return {
      ...base,
      state: "StartsNext",
      position: 0,
      reasons: [promoted.reason],
      ...said,
      summary: `${b.name} starts at the controller's next plan, judged at ${level}: ${promoted.reason}${line}`,
    };
  }
  const missed = result.missedWindows?.find((m) => m.backup === b.name);
  if (missed) return { ...base, state: "FailsNext", reasons: [missed.reason], summary: `${b.name} fails at the controller's next plan: ${missed.reason}` };
  if (IN_FLIGHT_PHASES.has(b.phase)) return { ...base, state: "InFlight", reasons: [], summary: `${b.name} is ${b.phase}: it is not waiting.` };
  return {
    ...base,
    state: "NotQueued",
    reasons: [],
    summary: `${b.name} is ${b.phase || "New"}: it is not queued (it finished, failed, or is outside the queue).`,
  };
}

/** `explain` in the chosen format: the sentence (and warnings); wide adds one line per field. */
export function renderExplanation(e: Explanation, format: Format): string {
  const doc = asDocument(e, format);
  if (doc !== undefined) return doc;
  const lines = [e.summary, ...e.warnings.map((w) => `warning: ${w}`)];
  if (format !== "wide") return lines.join("\n");
  const field = (name: string, value: string | number | undefined) => (value === undefined || value === "" ? [] : [`  ${name}: ${value}`]);
  return [
    ...lines,
    ...field("state", e.state),
    ...field("tenant", e.tenant),
    ...field("phase", e.phase),
    ...field("level", e.level),
    ...field("level reason", e.levelReason),
    ...field("position", e.position),
    ...field("waiting for", e.waitingFor?.join(", ")),
    ...field(
      "budget",
      e.budget && `${e.budget.name} (budgets.${e.budget.kind}): ${e.budget.inFlight} in flight, ${e.budget.kept} kept, limit ${e.budget.limit}`,
    ),
  ].join("\n");
}

export async function runExplain(o: LiveCommandOptions & { name?: string; file?: string }, format: Format, now: number): Promise<string> {
  if (!o.name === !o.file) throw new UsageError(`explain takes a backup name or -f FILE\n${EXPLAIN_USAGE}`);
  const backup = o.file ? readDocument(o.file, "backup") : undefined;
  const live = await readLive({ ...o, progress: progress() });
  clearProgress();
  return renderExplanation(explain(live, now, o.file ? { backup, file: o.file } : { name: o.name ?? "" }), format);
}
