import { IN_FLIGHT_PHASES, KEYS, levelAnnotations, QUEUED_PHASES, type BackupInfo, type ConflictLevel } from "../model.js";
import { plan, type PlanOptions, type Snapshot } from "./plan.js";
import type { BackupScope } from "../scope/scope.js";
import type { Policy } from "../policy.js";
import type { SpecError } from "../velero/backupSpec.js";
import { describeConflict as describe, type Conflict } from "../conflict/conflicts.js";

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

export function decideAdmission(
  snapshot: Snapshot,
  policy: Policy,
  now: number,
  candidate: BackupInfo,
  options: PlanOptions = {},
): AdmissionDecision {
  const created = asCandidate(candidate, now);
  const others = snapshot.backups.filter((b) => !(b.namespace === created.namespace && b.name === created.name));
  const result = plan({ view: snapshot.view, backups: [...others, created] }, policy, now, options);
  const scope = result.scopes.get(created.name);
  const refusal = refusalOf(created, scope, others, policy);
  if (refusal) return refusal;
  const superseded = result.supersessions.filter((s) => s.by === created.name).map((s) => s.backup);
  const entry = result.queue.find((q) => q.backup === created.name);
  const started = result.promotions.find((p) => p.backup === created.name)?.reason;
  const wait = entry ? { conflicts: entry.conflicts, waitingFor: entry.waitingFor, reason: entry.reason } : { reason: started };
  return admission(created, scope, policy, superseded, wait);
}

/** A backup as admission judges it: not yet created, so it has no phase and is created now. */
export function asCandidate(candidate: BackupInfo, now: number): BackupInfo {
  // Copied, then given its fields: a literal that spreads and then sets fields the copy already has
  // leaves V8's fast copy (5 µs of each review; docs/performance.md, "A spec's defaults").
  return Object.assign(
    { ...candidate },
    {
      uid: candidate.uid || `admission:${candidate.namespace}/${candidate.name}`,
      creationTimestamp: candidate.creationTimestamp || new Date(now).toISOString(),
      phase: "",
    },
  );
}

/** The validating webhook's refusals: an invalid spec, or a serial run under Forbid. */
export function refusalOf(
  created: BackupInfo,
  scope: BackupScope | undefined,
  others: readonly BackupInfo[],
  policy: Policy,
): AdmissionDecision | undefined {
  const level = scope?.level ?? policy.conflictLevel;
  const reject = (message: string, errors: readonly SpecError[] = []): AdmissionDecision => ({
    verdict: "reject",
    level,
    message,
    errors,
    waitingFor: [],
    warnings: [],
    annotations: {},
    reasons: [message],
  });
  if (scope && scope.errors.length > 0) {
    return reject(
      `backup ${created.name} is invalid and Velero would fail it: ${scope.errors.map((e) => `${e.field}: ${e.message}`).join("; ")}`,
      scope.errors,
    );
  }
  const schedule = created.labels[KEYS.scheduleName];
  if (!schedule || policy.serialWorkloads !== "Forbid") return undefined;
  const first = firstOtherRun(created, schedule, others);
  return first
    ? reject(
        `schedule ${schedule} already has run ${first.name} ${first.phase || "New"}; serialWorkloads is Forbid, so ${created.name} is refused (Velero's schedule controller tries again at its next check)`,
      )
    : undefined;
}

/** The first (by name) other queued or in-flight run of `schedule` beside `created`. */
function firstOtherRun(created: BackupInfo, schedule: string, others: readonly BackupInfo[]): BackupInfo | undefined {
  let first: BackupInfo | undefined;
  for (const b of others) {
    if (b.namespace !== created.namespace || b.name === created.name || b.labels[KEYS.scheduleName] !== schedule) continue;
    if (!IN_FLIGHT_PHASES.has(b.phase) && !QUEUED_PHASES.has(b.phase)) continue;
    if (!first || b.name < first.name) first = b;
  }
  return first;
}

/**
 * The verdict for an admitted backup: it starts (`wait.reason` says why, or is unknown when
 * the plan had not judged it), or it waits behind `wait.conflicts` (none: for a free slot).
 */
export function admission(
  created: BackupInfo,
  scope: BackupScope | undefined,
  policy: Policy,
  superseded: readonly string[],
  wait: {
    conflicts?: readonly Conflict[];
    waitingFor?: readonly string[];
    reason: string | undefined;
    /** How the conflicts are spelled: pass the reason's, so each is spelled once. */
    describe?: (c: Conflict) => string;
  },
): AdmissionDecision {
  const level = scope?.level ?? policy.conflictLevel;
  const notes = [
    ...superseded.map((s) => `${created.name} supersedes queued run ${s} (serialWorkloads: Replace)`),
    ...(scope?.notes ?? []),
  ];
  const reason = wait.reason ?? "starts when the controller next plans";
  // Filled key by key into an empty object: spread and then given new keys, it lands in V8's
  // old generation, and every review makes one (docs/performance.md, "What a review keeps").
  const annotations = (waitingFor: readonly string[]) => {
    const set: Record<string, string> = Object.assign({}, levelAnnotations(created.annotations, level));
    set[KEYS.reason] = reason;
    set[KEYS.waitingFor] = waitingFor.join(",");
    return set;
  };
  if (!wait.conflicts) {
    return {
      verdict: notes.length > 0 ? "admit-with-warning" : "admit",
      level,
      errors: [],
      waitingFor: [],
      warnings: notes,
      annotations: annotations([]),
      reasons: [reason],
    };
  }
  const waitingFor = wait.waitingFor ?? wait.conflicts.map((c) => c.with);
  const warnings = [
    ...wait.conflicts.map((c) => `backup ${created.name} will wait behind ${c.with}: ${(wait.describe ?? describe)(c)}`),
    ...(wait.conflicts.length === 0 ? [`backup ${created.name} will wait: ${reason}`] : []),
    ...notes,
  ];
  return {
    verdict: "admit-with-warning",
    level,
    errors: [],
    waitingFor,
    warnings,
    annotations: annotations(waitingFor),
    reasons: [reason],
  };
}
