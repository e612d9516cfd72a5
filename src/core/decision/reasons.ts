import type { Conflict } from "../conflict/conflicts.js";
import { describeConflict } from "../conflict/conflicts.js";
import type { BackupScope } from "../scope/scope.js";

// The words a person reads, shared by the plan and the admission verdicts.

function levelNote(scope: BackupScope): string {
  return scope.levelReason ? ` (judged at Namespace level: ${scope.levelReason})` : "";
}

export function startReason(scope: BackupScope, inUse: number, limit: number): string {
  return `conflicts with nothing in flight or ahead of it; ${inUse} of ${limit} slots in use${levelNote(scope)}`;
}

export function waitReason(scope: BackupScope, conflicts: readonly Conflict[], more: boolean, limit: number): string {
  return (
    (conflicts.length > 0
      ? conflicts.map((c) => `waits behind ${c.with} (${c.withPhase || "New"}): ${describeConflict(c)}`).join("; ") +
        (more ? "; and behind more backups" : "")
      : `waits for a free slot: ${limit} of ${limit} backups in flight`) + levelNote(scope)
  );
}

/** Why two in-flight backups overlap. */
export function overlapReason(c: Conflict, name: string): string {
  return `${c.with} and ${name} are in flight together: ${describeConflict(c)}`;
}
