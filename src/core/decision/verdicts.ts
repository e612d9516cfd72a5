import { admission, asCandidate, refusalOf, type AdmissionDecision } from "./admission.js";
import { ClaimIndex } from "../conflict/claimIndex.js";
import { conflictBetween, describedOnce, type Conflict, type ScopedBackup } from "../conflict/conflicts.js";
import { KEYS, QUEUED_PHASES, type BackupInfo } from "../model.js";
import { byCreationIn, queueOrder, supersede } from "./order.js";
import { MAX_BLOCKERS } from "./planModel.js";
import { startReason, waitReason, windowWaitReason } from "./reasons.js";
import { heldByWindow, windowStateOf, Zones } from "./windows.js";
import type { Policy } from "../policy.js";
import type { BackupScope } from "../scope/scope.js";
import { Timestamps } from "../times.js";

// The admission webhooks' verdicts on a Backup about to be created, over a snapshot of the
// queue, with the plan's own steps (queue order, supersession, promotions). They give the
// answer `decideAdmission` gives with a full plan, judging only the candidate:
//
// - its own scope, spec errors and the serial-workload rule;
// - conflicts with backups in flight, live;
// - conflicts with queued backups ahead of it: through the snapshot's index of the queue (a
//   "base", built from an earlier state), plus the backups changed since, judged live;
// - free slots: the limit, minus backups in flight, minus the base's promotions ahead of it.
//
// The snapshot (admission/engine.ts keeps it fresh) supplies the live backups and the scopes.

/** A queued backup in the base, as it was when the base was built. */
export interface BaseEntry {
  readonly backup: BackupInfo;
  readonly scoped: ScopedBackup;
}

/** The queue as of the base's build: queued backups (after supersession) and the plan's promotions. */
export interface QueueBase {
  readonly queued: ReadonlyMap<string, BaseEntry>;
  readonly index: ClaimIndex;
  /** Queued backups the plan would promote now. */
  readonly promoted: readonly BackupInfo[];
}

export interface QueueSnapshot {
  readonly policy: Policy;
  readonly now: number;
  /** Backups in flight in Velero's namespace, as observed. */
  inFlight(): readonly BackupInfo[];
  /** A backup as observed now, by name. */
  backup(name: string): BackupInfo | undefined;
  /** Every backup observed (read only when there is no base). */
  backups(): readonly BackupInfo[];
  /** Runs of a Schedule, as observed. */
  runsOf(schedule: string): readonly BackupInfo[];
  /** The scope of an observed backup. */
  scopeOf(b: BackupInfo): BackupScope;
  /** The scope of the candidate (not a backup yet). */
  candidateScopeOf(b: BackupInfo): BackupScope;
  /** Absent while the first base is built. */
  readonly base?: QueueBase;
  /** Backups changed since the base's build started: judged live. */
  readonly changed: ReadonlySet<string>;
  /** Creation times parsed once, kept across reviews (parsed afresh when absent). */
  readonly times?: Timestamps;
}

/** The mutating webhook's verdict: admit, or admit with why it will wait (or a refusal, which the validating webhook sends). */
export function admissionVerdict(snapshot: QueueSnapshot, candidate: BackupInfo): AdmissionDecision {
  const { policy, now } = snapshot;
  const created = asCandidate(candidate, now);
  const scope = created.namespace === policy.veleroNamespace ? snapshot.candidateScopeOf(created) : undefined;
  const runs = runsLike(snapshot, created);
  const early = refusalOf(created, scope, runs, policy);
  if (early) return early;
  if (!scope) return admission(created, scope, policy, [], { reason: undefined });

  const replaced = supersededBy(created, runs, policy);
  if (!replaced) return admission(created, scope, policy, [], { reason: undefined });
  const me: ScopedBackup = { name: created.name, phase: "", scope };
  const isOther = (b: BackupInfo) => !(b.namespace === created.namespace && b.name === created.name);
  const times = (snapshot.times ?? new Timestamps()).besides(created.creationTimestamp);
  const inFlight = snapshot
    .inFlight()
    .filter((b) => isOther(b) && b.namespace === policy.veleroNamespace)
    .sort(byCreationIn(times));
  const isLiveQueued = (b: BackupInfo | undefined): b is BackupInfo =>
    b !== undefined && isOther(b) && b.namespace === policy.veleroNamespace && QUEUED_PHASES.has(b.phase) && !replaced.has(b.name);
  const ahead = aheadOf(snapshot, created, times);

  const conflicts = [...conflictsInFlight(snapshot, me, inFlight), ...conflictsAhead(snapshot, me, (b) => isLiveQueued(b) && ahead(b))];
  const free = policy.maxConcurrentBackups - inFlight.length - promotedAhead(snapshot, (b) => isLiveQueued(b) && ahead(b));
  const superseded = [...replaced].sort();
  const window = policy.windows && windowStateOf(created, policy, now, times);
  const describe = describedOnce();
  if (window && "held" in window && window.held) {
    // Outside its window it queues behind every backup free to start: the window is its reason.
    const shown = conflicts.slice(0, MAX_BLOCKERS);
    const then =
      shown.length > 0 ? `; then ${waitReason(scope, shown, conflicts.length > shown.length, policy.maxConcurrentBackups, describe)}` : "";
    return admission(created, scope, policy, superseded, { conflicts: shown, reason: windowWaitReason(window.wait) + then, describe });
  }
  if (conflicts.length === 0 && free > 0) {
    return admission(created, scope, policy, superseded, {
      reason: startReason(scope, policy.maxConcurrentBackups - free + 1, policy.maxConcurrentBackups),
    });
  }
  const shown = conflicts.slice(0, MAX_BLOCKERS);
  return admission(created, scope, policy, superseded, {
    conflicts: shown,
    reason: waitReason(scope, shown, conflicts.length > shown.length, policy.maxConcurrentBackups, describe),
    describe,
  });
}

/**
 * Whether a queued backup is ahead of the candidate in the plan's order: queue order, except
 * that backups held by their start window come after every backup free to start.
 */
function aheadOf(snapshot: QueueSnapshot, created: BackupInfo, times: Timestamps): (b: BackupInfo) => boolean {
  const { policy, now } = snapshot;
  const inOrder = (b: BackupInfo) => queueOrder(b, created, policy, now, times) < 0;
  if (!policy.windows) return inOrder;
  const zones = new Zones();
  const held = (b: BackupInfo) => heldByWindow(b, policy, now, times, zones);
  return held(created) ? (b) => !held(b) || inOrder(b) : (b) => !held(b) && inOrder(b);
}

/** The validating webhook's CREATE refusal, if any: an invalid spec, or a serial run under Forbid. Live data only. */
export function createRefusal(snapshot: QueueSnapshot, candidate: BackupInfo): AdmissionDecision | undefined {
  const created = asCandidate(candidate, snapshot.now);
  const scope = created.namespace === snapshot.policy.veleroNamespace ? snapshot.candidateScopeOf(created) : undefined;
  return refusalOf(created, scope, runsLike(snapshot, created), snapshot.policy);
}

/** The other runs of the candidate's Schedule: all the serial-workload rules read. */
function runsLike(snapshot: QueueSnapshot, created: BackupInfo): readonly BackupInfo[] {
  const schedule = created.labels[KEYS.scheduleName];
  return schedule === undefined ? [] : snapshot.runsOf(schedule);
}

/**
 * serialWorkloads: Replace, by the plan's supersession: the names of the queued runs the
 * candidate supersedes, or undefined when a newer queued run supersedes the candidate itself.
 */
function supersededBy(created: BackupInfo, runs: readonly BackupInfo[], policy: Policy): Set<string> | undefined {
  if (policy.serialWorkloads !== "Replace" || !created.labels[KEYS.scheduleName]) return new Set();
  const queuedRuns = runs.filter(
    (b) =>
      !(b.namespace === created.namespace && b.name === created.name) &&
      b.namespace === policy.veleroNamespace &&
      QUEUED_PHASES.has(b.phase),
  );
  const { supersessions } = supersede([...queuedRuns, created], policy);
  if (supersessions.some((s) => s.backup === created.name)) return undefined;
  return new Set(supersessions.map((s) => s.backup));
}

function conflictsInFlight(snapshot: QueueSnapshot, me: ScopedBackup, inFlight: readonly BackupInfo[]): Conflict[] {
  const conflicts: Conflict[] = [];
  for (const b of inFlight) {
    const c = conflictBetween(me, scopedOf(snapshot, b));
    if (c) conflicts.push(c);
  }
  return conflicts;
}

/** Conflicts with queued backups ahead, in queue order: from the base's index, and live for what changed since. */
function conflictsAhead(snapshot: QueueSnapshot, me: ScopedBackup, countsAhead: (b: BackupInfo) => boolean): Conflict[] {
  const { policy, now, base } = snapshot;
  const found: { backup: BackupInfo; conflict: Conflict }[] = [];
  const fresh = new Set<string>(snapshot.changed);
  if (base) {
    for (const c of base.index.conflictsOf(me)) {
      if (fresh.has(c.with)) continue;
      const entry = base.queued.get(c.with);
      const live = snapshot.backup(c.with);
      if (!entry || !live || !countsAhead(live)) continue;
      if (live === entry.backup || live.resourceVersion === entry.backup.resourceVersion) found.push({ backup: live, conflict: c });
      else fresh.add(c.with);
    }
  } else {
    // No base yet (start-up): judge every queued backup live. Correct, only slower.
    for (const b of snapshot.backups()) fresh.add(b.name);
  }
  for (const name of fresh) {
    const live = snapshot.backup(name);
    if (!live || !countsAhead(live)) continue;
    const c = conflictBetween(me, scopedOf(snapshot, live));
    if (c) found.push({ backup: live, conflict: c });
  }
  found.sort((x, y) => queueOrder(x.backup, y.backup, policy, now, snapshot.times));
  return found.map((f) => f.conflict);
}

/** The base's promotions still queued and ahead of the candidate: the slots they will take first. */
function promotedAhead(snapshot: QueueSnapshot, countsAhead: (b: BackupInfo) => boolean): number {
  let n = 0;
  for (const p of snapshot.base?.promoted ?? []) {
    const live = snapshot.backup(p.name);
    if (live && countsAhead(live)) n++;
  }
  return n;
}

function scopedOf(snapshot: QueueSnapshot, b: BackupInfo): ScopedBackup {
  return { name: b.name, phase: b.phase, scope: snapshot.scopeOf(b) };
}

/**
 * The plan's promotion step for the base: in queue order, a queued backup is promoted when it
 * conflicts with nothing in flight or ahead of it, until the free slots are taken.
 */
export function promotionsOf(inFlight: readonly ScopedBackup[], ordered: readonly BaseEntry[], limit: number): BackupInfo[] {
  const head = new ClaimIndex();
  for (const s of inFlight) head.add(s);
  let free = limit - inFlight.length;
  const promoted: BackupInfo[] = [];
  for (const { backup, scoped } of ordered) {
    if (free <= 0) break;
    if (!head.blockersOf(scoped, 0).more) {
      free--;
      promoted.push(backup);
    }
    head.add(scoped);
  }
  return promoted;
}
