// Rules for in-flight backups Velero may not have started yet (ReadyToStart): which go back to
// Queued because they overlap another in-flight backup, and which the gate may nudge. Velero's
// backup controller starts a ReadyToStart backup on the next update it sees, so a nudge is
// exactly the write that makes Velero run it: only a backup the gate itself promoted, that
// overlaps nothing in flight, is ever nudged.

/** An in-flight backup as these rules see it. */
export interface InFlightBackup {
  readonly backup: string;
  /** ReadyToStart (Velero has not started it) or InProgress (it has). */
  readonly phase: string;
  /** The gate's own record (its seal) shows it promoted this backup; the promoted-by annotation alone never does. */
  readonly promotedByGate: boolean;
}

/** Two in-flight backups that share an exclusive unit at the configured level (a plan's `overlaps`). */
export interface OverlapPair {
  readonly backups: readonly [string, string];
  readonly reason: string;
}

export interface TakeBack {
  readonly backup: string;
  /** The in-flight backups it overlaps that stay in flight. */
  readonly overlaps: readonly string[];
  readonly reason: string;
}

/**
 * Which ReadyToStart backups go back to Queued so that no two overlapping backups stay in flight.
 * `inFlight` is in queue order (priority, then creation, then name). Kept first: InProgress
 * backups (Velero runs them; never taken back), then the gate's own promotions (judged against
 * what was in flight), then the rest; each group in queue order. A ReadyToStart backup that
 * overlaps one already kept goes back; one that overlaps only backups going back stays.
 */
export function takeBacks(inFlight: readonly InFlightBackup[], overlaps: readonly OverlapPair[]): TakeBack[] {
  const partners = partnersOf(overlaps);
  const kept = new Set<string>();
  const back: TakeBack[] = [];
  for (const b of [...inFlight].sort((x, y) => keepRank(x) - keepRank(y))) {
    const clashes = (partners.get(b.backup) ?? []).filter((p) => kept.has(p.with));
    if (b.phase !== "ReadyToStart" || clashes.length === 0) {
      kept.add(b.backup);
      continue;
    }
    back.push({
      backup: b.backup,
      overlaps: clashes.map((c) => c.with),
      reason: `taken back to Queued before Velero started it: ${clashes.map((c) => c.reason).join("; ")}; it waits its turn again`,
    });
  }
  return back;
}

// Array.prototype.sort is stable: within a rank the queue order stands.
function keepRank(b: InFlightBackup): number {
  if (b.phase !== "ReadyToStart") return 0;
  return b.promotedByGate ? 1 : 2;
}

function partnersOf(overlaps: readonly OverlapPair[]): Map<string, { with: string; reason: string }[]> {
  const partners = new Map<string, { with: string; reason: string }[]>();
  const add = (a: string, b: string, reason: string) => {
    const list = partners.get(a) ?? [];
    list.push({ with: b, reason });
    partners.set(a, list);
  };
  for (const o of overlaps) {
    add(o.backups[0], o.backups[1], o.reason);
    add(o.backups[1], o.backups[0], o.reason);
  }
  return partners;
}

/** Every backup named in an overlap. */
export function overlapping(overlaps: readonly OverlapPair[]): ReadonlySet<string> {
  return new Set(overlaps.flatMap((o) => o.backups));
}

export interface NudgeCandidate extends InFlightBackup {
  /** Part of an overlap (with any in-flight backup at the configured level). */
  readonly overlaps: boolean;
  /** Milliseconds since the gate last promoted or nudged it (by its annotations). */
  readonly idleMs: number;
}

export interface NudgeDecision {
  readonly nudge: boolean;
  readonly reason: string;
}

/** Whether the gate updates a ReadyToStart backup so that Velero sees it, and why (not). */
export function nudgeDecision(b: NudgeCandidate, nudgeAfterMs: number): NudgeDecision {
  const idle = Math.round(b.idleMs / 1000);
  if (b.phase !== "ReadyToStart")
    return { nudge: false, reason: `${b.phase || "no phase"}: only a ReadyToStart backup waits for Velero to see it` };
  if (!b.promotedByGate)
    return {
      nudge: false,
      reason: "backup-gate's record does not show that it promoted this backup (a promoted-by annotation alone is not its record)",
    };
  if (b.overlaps) return { nudge: false, reason: "it overlaps another backup in flight: a nudge would make Velero run both" };
  if (b.idleMs < nudgeAfterMs) return { nudge: false, reason: `touched ${idle}s ago; nudged after ${Math.round(nudgeAfterMs / 1000)}s` };
  return { nudge: true, reason: `still ReadyToStart after ${idle}s; updated so that Velero sees it` };
}
