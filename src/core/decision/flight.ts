import { conflictBetween, describeConflict, type Conflict, type ScopedBackup } from "../conflict/conflicts.js";
import { IN_FLIGHT_PHASES, type BackupInfo } from "../model.js";
import { restoreActivity } from "./reasons.js";
import { restoreHoldOf, type RestoreTarget } from "./restores.js";

// May this backup be in flight next to these? The one rule behind every way a backup gets in
// flight: a create straight into ReadyToStart/InProgress, a transition into those phases by any
// writer, and the controller's own promotions. Pure: the caller gives the snapshot of what is
// in flight (observed, plus transitions allowed and not yet observed) and the limit.

export interface FlightSnapshot {
  /** Backups in flight, the candidate left out; judged in this order (the first conflict is named). */
  readonly inFlight: readonly ScopedBackup[];
  /** maxConcurrentBackups. */
  readonly limit: number;
  /** Restores writing now (none when the policy's `restores.holdBackups` is off). */
  readonly restores?: readonly RestoreTarget[];
}

/** A backup about to be in flight: its scope, and its spec (the restore rule reads its namespace lists). */
export interface FlightCandidate extends ScopedBackup {
  readonly spec?: unknown;
}

/** What the candidate is about to do, as the refusal says it: "become ReadyToStart", "be created InProgress". */
export type FlightMove = string;

export interface FlightDecision {
  readonly allowed: boolean;
  /** Why: the conflict or the full limit for a refusal, the room left for an allowance. */
  readonly reasons: readonly string[];
  /** The first backup in flight it conflicts with. */
  readonly conflictWith?: string;
  readonly conflict?: Conflict;
  /** The restore writing into what it would hold (docs/rules.md, "Restores"). */
  readonly restore?: string;
}

/** How many names a refusal over the limit lists before "and N more". */
const NAMES_SHOWN = 5;

export function mayBeInFlight(candidate: FlightCandidate, snapshot: FlightSnapshot, move: FlightMove): FlightDecision {
  const conflict = firstConflict(candidate, snapshot.inFlight);
  if (conflict) {
    const reason = `backup ${candidate.name} may not ${move}: it conflicts with ${conflict.with} (${conflict.withPhase}): ${describeConflict(conflict)}`;
    return { allowed: false, reasons: [reason], conflictWith: conflict.with, conflict };
  }
  // A backup of a half-restored namespace is the bug the restore hold prevents, whoever moves it.
  const hold = snapshot.restores && restoreHoldOf({ scope: candidate.scope, spec: candidate.spec }, snapshot.restores);
  if (hold) {
    const reason = `backup ${candidate.name} may not ${move}: ${restoreActivity(hold)}, which it would hold; it may once the restore is done`;
    return { allowed: false, reasons: [reason], restore: hold.restore };
  }
  const inUse = snapshot.inFlight.length;
  if (inUse + 1 > snapshot.limit) {
    const names =
      snapshot.inFlight
        .slice(0, NAMES_SHOWN)
        .map((b) => b.name)
        .join(", ") + (inUse > NAMES_SHOWN ? ` and ${inUse - NAMES_SHOWN} more` : "");
    return {
      allowed: false,
      reasons: [
        `backup ${candidate.name} may not ${move}: ${inUse} of ${snapshot.limit} backups are already in flight (${names}); maxConcurrentBackups is ${snapshot.limit}`,
      ],
    };
  }
  return { allowed: true, reasons: [`conflicts with nothing in flight; ${inUse + 1} of ${snapshot.limit} slots in use`] };
}

function firstConflict(candidate: ScopedBackup, inFlight: readonly ScopedBackup[]): Conflict | undefined {
  for (const b of inFlight) {
    const c = conflictBetween(candidate, b);
    if (c) return c;
  }
  return undefined;
}

/** Which update of a Backup the in-flight rule judges. */
export type FlightChange =
  /** Into ReadyToStart/InProgress from a phase that is not in flight (or a create in one of them). */
  | { readonly kind: "enters"; readonly phase: string }
  /** Velero's own move ReadyToStart -> InProgress, or any move out of flight: never the gate's business. */
  | { readonly kind: "none" }
  /** Stays in flight (other than Velero's pickup): only its spec is judged. */
  | { readonly kind: "stays"; readonly phase: string };

export function flightChangeOf(oldPhase: string | undefined, newPhase: string): FlightChange {
  const wasInFlight = oldPhase !== undefined && IN_FLIGHT_PHASES.has(oldPhase);
  if (!IN_FLIGHT_PHASES.has(newPhase)) return { kind: "none" };
  if (!wasInFlight) return { kind: "enters", phase: newPhase };
  return oldPhase === "ReadyToStart" && newPhase === "InProgress" ? { kind: "none" } : { kind: "stays", phase: newPhase };
}

/** The move as a refusal words it. */
export function moveOf(change: { readonly phase: string }, creating: boolean): FlightMove {
  return creating ? `be created ${change.phase}` : `become ${change.phase}`;
}

// A backup in flight has been read (InProgress) or will be read (ReadyToStart) by Velero as its
// spec stands, and the gate judged it on that spec: a change of what it touches would make the
// gate's picture false. Fields that only say where the data goes, how long it is kept or how
// long to wait touch nothing in the cluster; every other field (including ones this version does
// not know) counts as part of the scope, the safe side.
export const SCOPE_NEUTRAL_SPEC_FIELDS: ReadonlySet<string> = new Set([
  "ttl",
  "storageLocation",
  "volumeSnapshotLocations",
  "csiSnapshotTimeout",
  "itemOperationTimeout",
  "metadata",
]);

export interface SpecChangeDecision {
  readonly allowed: boolean;
  readonly reasons: readonly string[];
  /** The spec fields whose change is refused, as spec.<field>. */
  readonly fields: readonly string[];
}

/** A spec edit of a backup in flight: refused when it changes a field that decides what the backup touches. */
export function specChangeInFlight(old: BackupInfo, next: BackupInfo): SpecChangeDecision {
  const fields = changedSpecFields(old.spec, next.spec)
    .filter((f) => !SCOPE_NEUTRAL_SPEC_FIELDS.has(f))
    .map((f) => `spec.${f}`);
  if (fields.length === 0) return { allowed: true, reasons: ["no change to what the backup touches"], fields };
  return {
    allowed: false,
    fields,
    reasons: [
      `backup ${next.name} is ${next.phase}: ${fields.join(", ")} may not change while it is in flight, because Velero reads the spec when it starts the backup and the gate judged it on the spec it had; ` +
        "labels and annotations stay editable; to back up something else, create a new Backup",
    ],
  };
}

/** Top-level spec fields whose values differ (null and absent are the same, as Velero reads them). */
export function changedSpecFields(a: unknown, b: unknown): string[] {
  const x = asRecord(a);
  const y = asRecord(b);
  const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])].sort();
  return keys.filter((k) => canonical(x[k]) !== canonical(y[k]));
}

function asRecord(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** JSON with object keys sorted and nulls dropped: equal values give equal strings. */
function canonical(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  return JSON.stringify(v, (_k, value: unknown) => {
    if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const inner = (value as Record<string, unknown>)[k];
      if (inner !== null && inner !== undefined) sorted[k] = inner;
    }
    return sorted;
  });
}
