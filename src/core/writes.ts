import { KEYS, levelAnnotations, type BackupInfo } from "./model.js";
import type { Plan, QueueEntry } from "./plan.js";
import type { Policy } from "./policy.js";

// From a plan to the fewest writes that make the cluster show it. Pure: the controller applies
// these with optimistic concurrency and re-plans on any conflict.

export const PROMOTED_AT = "backup-gate.io/promoted-at";
export const NUDGED_AT = "backup-gate.io/nudged-at";

export type WriteKind = "enqueue" | "promote" | "supersede" | "position" | "nudge";

export interface BackupWrite {
  readonly kind: WriteKind;
  readonly backup: string;
  /** The version the write was planned against; a mismatch is a conflict, not an overwrite. */
  readonly resourceVersion: string;
  readonly status?: { readonly phase?: string; readonly queuePosition?: number; readonly failureReason?: string };
  /** Annotations to set; null removes one. */
  readonly annotations?: Readonly<Record<string, string | null>>;
  readonly event?: { readonly type: "Normal" | "Warning"; readonly reason: string; readonly message: string };
}

export interface WritePlan {
  readonly writes: readonly BackupWrite[];
  /** ReadyToStart backups without backup-gate's mark: another writer promoted them. */
  readonly foreign: readonly string[];
}

export interface WriteContext {
  readonly policy: Policy;
  readonly now: number;
  /** Who promotes: written into backup-gate.io/promoted-by. */
  readonly identity: string;
}

export function planWrites(plan: Plan, backups: readonly BackupInfo[], ctx: WriteContext): WritePlan {
  const byName = new Map(backups.filter((b) => b.namespace === ctx.policy.veleroNamespace).map((b) => [b.name, b]));
  const nowIso = new Date(ctx.now).toISOString();
  const writes: BackupWrite[] = [];

  for (const p of plan.promotions) {
    const b = byName.get(p.backup);
    if (!b) continue;
    const waited = Math.max(0, Math.round((ctx.now - (Date.parse(b.creationTimestamp) || ctx.now)) / 1000));
    writes.push({
      kind: "promote", backup: b.name, resourceVersion: b.resourceVersion,
      status: { phase: "ReadyToStart", queuePosition: 0 },
      annotations: { [KEYS.promotedBy]: ctx.identity, [PROMOTED_AT]: nowIso, ...levelAnnotations(b.annotations, p.level), [KEYS.reason]: p.reason, [KEYS.waitingFor]: null },
      event: { type: "Normal", reason: "Started", message: `ReadyToStart after waiting ${waited}s: ${p.reason}` },
    });
  }

  for (const s of plan.supersessions) {
    const b = byName.get(s.backup);
    if (!b) continue;
    writes.push({
      kind: "supersede", backup: b.name, resourceVersion: b.resourceVersion,
      status: { phase: "Failed", failureReason: s.reason },
      annotations: { [KEYS.reason]: s.reason, [KEYS.waitingFor]: null },
      event: { type: "Warning", reason: "Superseded", message: s.reason },
    });
  }

  // Staleness is judged on what the plan has decided (position, whom it waits for); the reason
  // text, which is costly to build, is read only for the backups that get a write.
  const annotationsOf = (b: BackupInfo, q: QueueEntry) =>
    ({ ...levelAnnotations(b.annotations, q.level), [KEYS.waitingFor]: q.waitingFor.join(","), [KEYS.reason]: q.reason });
  const stale: { b: BackupInfo; q: QueueEntry; score: number }[] = [];
  for (const q of plan.queue) {
    const b = byName.get(q.backup);
    if (!b) continue;
    if (b.phase !== "Queued") {
      writes.push({
        kind: "enqueue", backup: b.name, resourceVersion: b.resourceVersion,
        status: { phase: "Queued", queuePosition: q.position }, annotations: annotationsOf(b, q),
        event: { type: "Normal", reason: "Queued", message: `queued at position ${q.position}: ${q.reason}` },
      });
      continue;
    }
    const shown = b.queuePosition ?? 0;
    const waitingChanged = (b.annotations[KEYS.waitingFor] ?? "") !== q.waitingFor.join(",");
    const score = Math.abs(shown - q.position) / q.position + (waitingChanged ? 1 : 0);
    if (score > 0) stale.push({ b, q, score });
  }
  // Each promotion earns a few position writes, spent on the stalest positions first.
  const budget = plan.promotions.length * ctx.policy.positionUpdates.writesPerDequeue;
  stale.sort((x, y) => y.score - x.score || x.q.position - y.q.position);
  for (const { b, q } of stale.slice(0, budget)) {
    const changed = Object.entries(annotationsOf(b, q)).filter(([k, v]) => (b.annotations[k] ?? "") !== v);
    writes.push({
      kind: "position", backup: b.name, resourceVersion: b.resourceVersion,
      ...(b.queuePosition !== q.position ? { status: { queuePosition: q.position } } : {}),
      ...(changed.length > 0 ? { annotations: Object.fromEntries(changed) } : {}),
    });
  }

  const foreign: string[] = [];
  const nudgeAfter = ctx.policy.nudgeAfterSeconds * 1000;
  for (const name of plan.inFlight) {
    const b = byName.get(name);
    if (!b || b.phase !== "ReadyToStart") continue;
    if (!b.annotations[KEYS.promotedBy]) { foreign.push(b.name); continue; }
    const last = Math.max(Date.parse(b.annotations[PROMOTED_AT] ?? "") || 0, Date.parse(b.annotations[NUDGED_AT] ?? "") || 0);
    if (ctx.now - last >= nudgeAfter) {
      writes.push({
        kind: "nudge", backup: b.name, resourceVersion: b.resourceVersion, annotations: { [NUDGED_AT]: nowIso },
        event: { type: "Normal", reason: "Nudged", message: `still ReadyToStart after ${Math.round((ctx.now - last) / 1000)}s; updated so that Velero sees it` },
      });
    }
  }
  return { writes, foreign: foreign.sort() };
}
