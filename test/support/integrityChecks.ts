/**
 * The integrity checks of the real-node burst (test/integration/node-integrity.test.ts), as
 * pure functions over what the node recorded: the freeze hooks' records, the PodVolumeBackups'
 * times and the VolumeSnapshots and VolumeGroupSnapshots Velero made, against the backups'
 * InProgress spans.
 *
 * - Intervals are half-open [from, to): touching is not overlapping. A missing end means
 *   "still running" (open to the right), so an unfinished record can only add overlaps.
 * - Every function reports each offending pair once, with what it saw, so a failure reads
 *   as evidence rather than a count.
 */

export interface Span {
  fromMs: number;
  /** Undefined: not ended (treated as open to the right). */
  toMs?: number;
}

export type OverlapKind = "freeze" | "podVolumeBackup" | "snapshot";

export interface IntegrityOverlap {
  kind: OverlapKind;
  /** The pod (freeze), volume (PodVolumeBackup) or PVC (snapshot). */
  subject: string;
  /** The two backups; a freeze record does not know them, so they are the two hold times there. */
  a: string;
  b: string;
  detail: string;
}

/** One hook run of a pod's freeze (nodeFreeze.ts): `busy` means the pod was already frozen. */
export interface FreezeAttempt {
  pod: string;
  outcome: "held" | "busy";
  atMs: number;
}

/** One PodVolumeBackup: `volume` names the data it copies (the PVC if any, else pod/volume). */
export interface PvbRecord {
  backup: string;
  volume: string;
  /** From status.startTimestamp; undefined if it never started (it then copied nothing). */
  fromMs?: number;
  toMs?: number;
}

/**
 * One VolumeSnapshot as the node recorded it: its PVC, the backup Velero labelled it with (a
 * group member gets the label only after Velero saw it), and the VolumeGroupSnapshot
 * ("ns/name") that cut it, if any.
 */
export interface VolumeSnapshotSeen {
  name: string;
  pvc: string;
  backup?: string;
  groupSnapshot?: string;
}

/** One VolumeGroupSnapshot as recorded ("ns/name"), with the backup Velero created it for. */
export interface GroupSnapshotSeen {
  name: string;
  backup?: string;
}

/** One PVC one backup snapshotted, alone or as a member of a group snapshot. */
export interface SnapshotRecord {
  backup: string;
  pvc: string;
  /** The VolumeGroupSnapshot that cut it with its group (undefined: a snapshot of its own). */
  groupSnapshot?: string;
}

/**
 * Who snapshotted each PVC, read from the records. A group snapshot cuts all its members at
 * once for the backup that created it, so a member counts for that backup even where Velero
 * never labelled the member (it failed first) or labelled it for another. A snapshot no backup
 * can be named for is kept as "unattributed …": it has no span, so it can only add overlaps.
 */
export function snapshotRecords(snapshots: readonly VolumeSnapshotSeen[], groups: readonly GroupSnapshotSeen[]): SnapshotRecord[] {
  const groupBackup = new Map(groups.map((g) => [g.name, g.backup] as const));
  return snapshots.flatMap((s) => {
    const viaGroup = s.groupSnapshot === undefined ? undefined : groupBackup.get(s.groupSnapshot);
    const backups = [...new Set([s.backup, viaGroup].filter((b): b is string => b !== undefined))];
    if (backups.length === 0) backups.push(`unattributed ${s.name}`);
    return backups.map((backup) => ({ backup, pvc: s.pvc, groupSnapshot: s.groupSnapshot }));
  });
}

/** A backup's InProgress span (it runs its items, hooks, volume copies and snapshots in it). */
export interface BackupSpan extends Span {
  backup: string;
}

export const spansOverlap = (a: Span, b: Span): boolean => a.fromMs < (b.toMs ?? Infinity) && b.fromMs < (a.toMs ?? Infinity);

const iso = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? "…" : new Date(ms).toISOString().slice(11, 23));
const showSpan = (s: Span) => `[${iso(s.fromMs)}, ${iso(s.toMs)})`;

/**
 * Freezes of one pod held by two backups at once: the freeze hook takes an O_EXCL lock, so
 * every `busy` attempt is a second backup freezing a pod another backup holds.
 */
export function freezeOverlaps(attempts: readonly FreezeAttempt[]): IntegrityOverlap[] {
  const lastHeld = new Map<string, number>();
  const out: IntegrityOverlap[] = [];
  for (const r of [...attempts].sort((x, y) => x.atMs - y.atMs)) {
    if (r.outcome === "held") {
      lastHeld.set(r.pod, r.atMs);
      continue;
    }
    const since = lastHeld.get(r.pod);
    out.push({
      kind: "freeze",
      subject: r.pod,
      a: `held since ${iso(since)}`,
      b: `attempt at ${iso(r.atMs)}`,
      detail: `a second freeze of ${r.pod} at ${iso(r.atMs)} found it frozen`,
    });
  }
  return out;
}

/** Two PodVolumeBackups of distinct backups copying one volume at overlapping times. */
export function pvbOverlaps(pvbs: readonly PvbRecord[]): IntegrityOverlap[] {
  const started = pvbs.filter((p): p is PvbRecord & { fromMs: number } => p.fromMs !== undefined);
  const out: IntegrityOverlap[] = [];
  for (const [volume, list] of groupBy(started, (p) => p.volume)) {
    forPairs(list, (a, b) => {
      if (a.backup === b.backup || !spansOverlap(a, b)) return;
      out.push({ kind: "podVolumeBackup", subject: volume, a: a.backup, b: b.backup, detail: `${a.backup} ${showSpan(a)} and ${b.backup} ${showSpan(b)}` });
    });
  }
  return out;
}

/**
 * Two backups that both snapshot one PVC while both run their items, per PVC: a group
 * snapshot counts for each of its members. A backup with no span is one the recorder never saw
 * in progress: it is taken as running throughout, so a gap in the records can only add overlaps.
 */
export function snapshotOverlaps(snapshots: readonly SnapshotRecord[], spans: readonly BackupSpan[]): IntegrityOverlap[] {
  const spanOf = new Map(spans.map((s) => [s.backup, s] as const));
  const out: IntegrityOverlap[] = [];
  for (const [pvc, list] of groupBy(snapshots, (s) => s.pvc)) {
    const how = new Map<string, string>();
    for (const s of list) how.set(s.backup, s.groupSnapshot ? `group snapshot ${s.groupSnapshot}` : "its own snapshot");
    const backups = [...how.keys()].sort();
    forPairs(backups, (a, b) => {
      const sa = spanOf.get(a) ?? { backup: a, fromMs: -Infinity };
      const sb = spanOf.get(b) ?? { backup: b, fromMs: -Infinity };
      if (!spansOverlap(sa, sb)) return;
      out.push({
        kind: "snapshot",
        subject: pvc,
        a,
        b,
        detail: `${a} ${showSpan(sa)} (${how.get(a)}) and ${b} ${showSpan(sb)} (${how.get(b)}) both snapshot ${pvc}`,
      });
    });
  }
  return out;
}

/** The most backups InProgress at one instant (an end at t and a start at t do not meet). */
export function maxInFlight(spans: readonly Span[]): number {
  const events = spans
    .flatMap(
      (s) =>
        [
          [s.fromMs, 1],
          [s.toMs ?? Infinity, -1],
        ] as const,
    )
    .sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let now = 0,
    max = 0;
  for (const [, d] of events) {
    now += d;
    max = Math.max(max, now);
  }
  return max;
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = m.get(k);
    if (list) list.push(it);
    else m.set(k, [it]);
  }
  return m;
}

function forPairs<T>(list: readonly T[], f: (a: T, b: T) => void): void {
  for (let i = 0; i < list.length; i++) for (let j = i + 1; j < list.length; j++) f(list[i]!, list[j]!);
}

export interface RunFigures {
  run: string;
  backups: number;
  terminal: number;
  freeze: number;
  podVolumeBackup: number;
  snapshot: number;
  maxInFlight: number;
  makespanS: number;
}

/** A small fixed-width table, one row per run. */
export function figuresTable(rows: readonly RunFigures[]): string {
  const head = ["run", "backups", "terminal", "freeze overlaps", "PVB overlaps", "snapshot overlaps", "max in flight", "makespan s"];
  const body = rows.map((r) => [r.run, r.backups, r.terminal, r.freeze, r.podVolumeBackup, r.snapshot, r.maxInFlight, r.makespanS.toFixed(1)].map(String));
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join("  ");
  return [line(head), ...body.map(line)].join("\n");
}
