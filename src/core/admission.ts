import { IN_FLIGHT_PHASES, KEYS, levelAnnotations, QUEUED_PHASES, type BackupInfo, type ConflictLevel } from "./model.js";
import { plan, type PlanOptions, type Snapshot } from "./plan.js";
import type { Policy } from "./policy.js";
import type { SpecError } from "./backupSpec.js";
import { describeConflict as describe } from "./conflicts.js";

// The verdict on a Backup about to be created: what the webhooks answer and annotate.

export type Verdict = "admit" | "admit-with-warning" | "reject";

export interface AdmissionDecision {
  readonly verdict: Verdict;
  readonly level: ConflictLevel;
  /** For a rejection: the message the API server returns to the client. */
  readonly message?: string;
  readonly errors: readonly SpecError[];
  readonly waitingFor: readonly string[];
  readonly warnings: readonly string[];
  /** Annotations the mutating webhook sets on the backup. */
  readonly annotations: Readonly<Record<string, string>>;
  readonly reasons: readonly string[];
}

export function decideAdmission(snapshot: Snapshot, policy: Policy, now: number, candidate: BackupInfo, options: PlanOptions = {}): AdmissionDecision {
  const created: BackupInfo = {
    ...candidate,
    uid: candidate.uid || `admission:${candidate.namespace}/${candidate.name}`,
    creationTimestamp: candidate.creationTimestamp || new Date(now).toISOString(),
    phase: "",
  };
  const others = snapshot.backups.filter((b) => !(b.namespace === created.namespace && b.name === created.name));
  const result = plan({ view: snapshot.view, backups: [...others, created] }, policy, now, options);
  const scope = result.scopes.get(created.name);
  const level = scope?.level ?? policy.conflictLevel;
  const reject = (message: string, errors: readonly SpecError[] = []): AdmissionDecision =>
    ({ verdict: "reject", level, message, errors, waitingFor: [], warnings: [], annotations: {}, reasons: [message] });

  if (scope && scope.errors.length > 0) {
    return reject(`backup ${created.name} is invalid and Velero would fail it: ${scope.errors.map((e) => `${e.field}: ${e.message}`).join("; ")}`, scope.errors);
  }
  const schedule = created.labels[KEYS.scheduleName];
  if (schedule && policy.serialWorkloads === "Forbid") {
    const running = others
      .filter((b) => b.namespace === created.namespace && b.labels[KEYS.scheduleName] === schedule && (IN_FLIGHT_PHASES.has(b.phase) || QUEUED_PHASES.has(b.phase)))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    const first = running[0];
    if (first) {
      return reject(`schedule ${schedule} already has run ${first.name} ${first.phase || "New"}; serialWorkloads is Forbid, so ${created.name} is refused (Velero's schedule controller tries again at its next check)`);
    }
  }

  const superseded = result.supersessions.filter((s) => s.by === created.name).map((s) => `${created.name} supersedes queued run ${s.backup} (serialWorkloads: Replace)`);
  const promoted = result.promotions.find((p) => p.backup === created.name);
  const entry = result.queue.find((q) => q.backup === created.name);
  const notes = scope?.notes ?? [];
  if (promoted || !entry) {
    const reason = promoted?.reason ?? "starts when the controller next plans";
    return {
      verdict: superseded.length > 0 || notes.length > 0 ? "admit-with-warning" : "admit",
      level, errors: [], waitingFor: [], warnings: [...superseded, ...notes],
      annotations: { ...levelAnnotations(created.annotations, level), [KEYS.reason]: reason, [KEYS.waitingFor]: "" },
      reasons: [reason],
    };
  }
  const warnings = [
    ...entry.conflicts.map((c) => `backup ${created.name} will wait behind ${c.with}: ${describe(c)}`),
    ...(entry.conflicts.length === 0 ? [`backup ${created.name} will wait: ${entry.reason}`] : []),
    ...superseded,
    ...notes,
  ];
  return {
    verdict: "admit-with-warning",
    level, errors: [], waitingFor: entry.waitingFor, warnings,
    annotations: { ...levelAnnotations(created.annotations, level), [KEYS.reason]: entry.reason, [KEYS.waitingFor]: entry.waitingFor.join(",") },
    reasons: [entry.reason],
  };
}

