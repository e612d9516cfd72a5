import { KEYS, levelAnnotations, type BackupInfo } from "../model.js";
import { orderQueue } from "./order.js";
import type { Plan, QueueEntry } from "./planModel.js";
import type { Policy } from "../policy.js";
import { nudgeDecision, overlapping, takeBacks, type InFlightBackup } from "./readyToStart.js";
import { TENANT_STARTED, TENANT_SUPERSEDED, TENANT_TAKEN_BACK } from "./reasons.js";
import { nonAdminBackupOf, tenantOf } from "./tenants.js";

// From a plan to the fewest writes that make the cluster show it. Pure: the controller applies
// these with optimistic concurrency and re-plans on any conflict.

export const PROMOTED_AT = "backup-gate.io/promoted-at";
export const NUDGED_AT = "backup-gate.io/nudged-at";
/** The gate's record of a promotion: a MAC over the backup's uid, promoted-by and promoted-at. */
export const PROMOTION_SEAL = "backup-gate.io/promotion-seal";
/** Why the gate took a ReadyToStart backup back to Queued (kept until it is promoted again). */
export const TAKEN_BACK = "backup-gate.io/taken-back";

export type WriteKind = "enqueue" | "promote" | "supersede" | "position" | "nudge" | "takeBack" | "missWindow";

export interface BackupWrite {
  readonly kind: WriteKind;
  readonly backup: string;
  /** The version the write was planned against; a mismatch is a conflict, not an overwrite. */
  readonly resourceVersion: string;
  readonly status?: { readonly phase?: string; readonly queuePosition?: number; readonly failureReason?: string };
  /** Annotations to set; null removes one. */
  readonly annotations?: Readonly<Record<string, string | null>>;
  readonly event?: WriteEvent;
  /**
   * With tenants.nonAdminEvents: the same news for the backup's NonAdminBackup (named by OADP's
   * origin annotations), in words its tenant may read; posted in the tenant's namespace.
   */
  readonly tenantEvent?: WriteEvent & { readonly target: { readonly namespace: string; readonly name: string } };
}

export interface WriteEvent {
  readonly type: "Normal" | "Warning";
  readonly reason: string;
  readonly message: string;
}

/**
 * The texts of a write its backup's tenant can read: OADP's non-admin controller copies a Velero
 * Backup's spec and status to the NonAdminBackup, never its annotations or Events. The gate
 * writes no spec, so this is the status it writes.
 */
export function tenantReadable(w: BackupWrite): string[] {
  return [
    ...(w.status ? Object.values(w.status).map(String) : []),
    ...(w.tenantEvent ? [w.tenantEvent.reason, w.tenantEvent.message] : []),
  ];
}

/**
 * A reason written into a backup's status (e.g. status.failureReason): OADP copies status to the
 * NonAdminBackup, so a tenant's backup gets the tenant-safe text, anyone else's the full one.
 */
export function statusReason(b: BackupInfo, policy: Policy, reasons: { readonly admin: string; readonly tenant: string }): string {
  return tenantOf(b, policy) === undefined ? reasons.admin : reasons.tenant;
}

/** The Event for the NonAdminBackup `b` was made for, when the policy posts them and `b` names one. */
function tenantEventOf(b: BackupInfo, policy: Policy, event: WriteEvent): Pick<BackupWrite, "tenantEvent"> {
  const target = policy.tenants?.nonAdminEvents ? nonAdminBackupOf(b) : undefined;
  return target ? { tenantEvent: { ...event, target } } : {};
}

export interface WritePlan {
  readonly writes: readonly BackupWrite[];
  /** ReadyToStart backups the gate's record does not show it promoted: another writer did. */
  readonly foreign: readonly string[];
}

/** What the gate's record of a promotion covers; none of it can be changed without breaking the seal. */
export interface SealedFields {
  readonly uid: string;
  readonly promotedBy: string;
  readonly promotedAt: string;
}

/**
 * Makes the seal of a promotion. Only the gate can (it holds the key), so anyone may write the
 * promoted-by annotation but no one else can make a seal that matches it. Must be deterministic.
 */
export interface PromotionSealer {
  seal(fields: SealedFields): string;
}

/** Whether the gate's record shows it promoted `b`: a seal over its uid and promotion annotations that matches. */
export function promotedByGate(b: BackupInfo, sealer: PromotionSealer): boolean {
  const promotedBy = b.annotations[KEYS.promotedBy];
  const promotedAt = b.annotations[PROMOTED_AT];
  const seal = b.annotations[PROMOTION_SEAL];
  if (!promotedBy || !promotedAt || !seal || !b.uid) return false;
  return seal === sealer.seal({ uid: b.uid, promotedBy, promotedAt });
}

export interface WriteContext {
  readonly policy: Policy;
  readonly now: number;
  /** Who promotes: written into backup-gate.io/promoted-by. */
  readonly identity: string;
  /** Seals each promotion, and checks the seals of the backups in flight. */
  readonly sealer: PromotionSealer;
}

export function planWrites(plan: Plan, backups: readonly BackupInfo[], ctx: WriteContext): WritePlan {
  const byName = new Map(backups.filter((b) => b.namespace === ctx.policy.veleroNamespace).map((b) => [b.name, b]));
  const w: Writing = { byName, ctx, nowIso: new Date(ctx.now).toISOString() };
  const inFlight = orderQueue(
    plan.inFlight.flatMap((name) => byName.get(name) ?? []),
    ctx.policy,
    ctx.now,
  ).map(({ backup: b }) => ({ info: b, backup: b.name, phase: b.phase, promotedByGate: promotedByGate(b, ctx.sealer) }));
  // Overlapping ReadyToStart backups go back first: no promotion or nudge waits on them.
  const writes = [
    ...takeBackWrites(w, inFlight, plan),
    ...promotionWrites(w, plan),
    ...supersessionWrites(w, plan),
    ...missedWindowWrites(w, plan),
    ...queueWrites(w, plan),
  ];
  const nudges = nudgeWrites(w, inFlight, plan);
  return { writes: [...writes, ...nudges.writes], foreign: nudges.foreign.sort() };
}

/** What every step of planWrites reads. */
interface Writing {
  readonly byName: ReadonlyMap<string, BackupInfo>;
  readonly ctx: WriteContext;
  readonly nowIso: string;
}

type InFlight = InFlightBackup & { readonly info: BackupInfo };

function takeBackWrites({ byName, ctx }: Writing, inFlight: readonly InFlight[], plan: Plan): BackupWrite[] {
  return takeBacks(inFlight, plan.overlaps).map((t) => {
    const b = byName.get(t.backup) as BackupInfo;
    return {
      kind: "takeBack",
      backup: b.name,
      resourceVersion: b.resourceVersion,
      status: { phase: "Queued" },
      annotations: {
        [TAKEN_BACK]: t.reason,
        [KEYS.reason]: t.reason,
        [KEYS.promotedBy]: null,
        [PROMOTED_AT]: null,
        [PROMOTION_SEAL]: null,
        [NUDGED_AT]: null,
      },
      event: { type: "Warning", reason: "TakenBack", message: t.reason },
      ...tenantEventOf(b, ctx.policy, { type: "Warning", reason: "TakenBack", message: TENANT_TAKEN_BACK }),
    };
  });
}

function promotionWrites({ byName, ctx, nowIso }: Writing, plan: Plan): BackupWrite[] {
  const writes: BackupWrite[] = [];
  for (const p of plan.promotions) {
    const b = byName.get(p.backup);
    if (!b) continue;
    const waited = Math.max(0, Math.round((ctx.now - (Date.parse(b.creationTimestamp) || ctx.now)) / 1000));
    writes.push({
      kind: "promote",
      backup: b.name,
      resourceVersion: b.resourceVersion,
      status: { phase: "ReadyToStart", queuePosition: 0 },
      annotations: {
        [KEYS.promotedBy]: ctx.identity,
        [PROMOTED_AT]: nowIso,
        [PROMOTION_SEAL]: ctx.sealer.seal({ uid: b.uid, promotedBy: ctx.identity, promotedAt: nowIso }),
        [TAKEN_BACK]: null,
        ...levelAnnotations(b.annotations, p.level),
        [KEYS.reason]: p.reason,
        [KEYS.waitingFor]: null,
      },
      event: { type: "Normal", reason: "Started", message: `ReadyToStart after waiting ${waited}s: ${p.reason}` },
      ...tenantEventOf(b, ctx.policy, {
        type: "Normal",
        reason: "Started",
        message: `ReadyToStart after waiting ${waited}s: ${TENANT_STARTED}`,
      }),
    });
  }
  return writes;
}

function supersessionWrites({ byName, ctx }: Writing, plan: Plan): BackupWrite[] {
  const writes: BackupWrite[] = [];
  for (const s of plan.supersessions) {
    const b = byName.get(s.backup);
    if (b)
      writes.push(
        failBeforeRun(b, ctx.policy, "supersede", "Superseded", { admin: s.reason, tenant: s.tenantReason ?? TENANT_SUPERSEDED }),
      );
  }
  return writes;
}

/**
 * Backups that waited past their window's maxWaitSeconds (onMaxWait: Fail): failed before they
 * run, as a superseded run is.
 */
function missedWindowWrites({ byName, ctx }: Writing, plan: Plan): BackupWrite[] {
  const writes: BackupWrite[] = [];
  for (const m of plan.missedWindows ?? []) {
    const b = byName.get(m.backup);
    if (b) writes.push(failBeforeRun(b, ctx.policy, "missWindow", "WindowMissed", { admin: m.reason, tenant: m.tenantReason }));
  }
  return writes;
}

/** Fails a backup before it runs: Velero's Failed with a failureReason (the gate alone writes queue phases). */
function failBeforeRun(
  b: BackupInfo,
  policy: Policy,
  kind: BackupWrite["kind"],
  eventReason: string,
  reasons: { readonly admin: string; readonly tenant: string },
): BackupWrite {
  return {
    kind,
    backup: b.name,
    resourceVersion: b.resourceVersion,
    // status reaches the tenant (OADP copies it to the NonAdminBackup); the annotation and Event do not.
    status: { phase: "Failed", failureReason: statusReason(b, policy, reasons) },
    annotations: { [KEYS.reason]: reasons.admin, [KEYS.waitingFor]: null },
    event: { type: "Warning", reason: eventReason, message: reasons.admin },
    ...tenantEventOf(b, policy, { type: "Warning", reason: eventReason, message: reasons.tenant }),
  };
}

// Staleness is judged on what the plan has decided (position, whom it waits for); the reason
// text, which is costly to build, is read only for the backups that get a write.
const queueAnnotations = (b: BackupInfo, q: QueueEntry) => ({
  ...levelAnnotations(b.annotations, q.level),
  [KEYS.waitingFor]: q.waitingFor.join(","),
  [KEYS.reason]: q.reason,
});

/** New arrivals get a position; then each promotion earns a few position writes, spent on the stalest first. */
function queueWrites({ byName, ctx }: Writing, plan: Plan): BackupWrite[] {
  const writes: BackupWrite[] = [];
  const stale: { b: BackupInfo; q: QueueEntry; score: number }[] = [];
  for (const q of plan.queue) {
    const b = byName.get(q.backup);
    if (!b) continue;
    // A backup taken back to Queued shows no position yet: it gets one like a new arrival.
    if (b.phase !== "Queued" || !b.queuePosition) {
      writes.push({
        kind: "enqueue",
        backup: b.name,
        resourceVersion: b.resourceVersion,
        status: { phase: "Queued", queuePosition: q.position },
        annotations: queueAnnotations(b, q),
        event: { type: "Normal", reason: "Queued", message: `queued at position ${q.position}: ${q.reason}` },
        ...(q.tenantReason === undefined
          ? {}
          : tenantEventOf(b, ctx.policy, {
              type: "Normal",
              reason: "Queued",
              message: `queued at position ${q.position}: ${q.tenantReason}`,
            })),
      });
      continue;
    }
    const score = staleness(b, q);
    if (score > 0) stale.push({ b, q, score });
  }
  const budget = plan.promotions.length * ctx.policy.positionUpdates.writesPerDequeue;
  stale.sort((x, y) => y.score - x.score || x.q.position - y.q.position);
  for (const { b, q } of stale.slice(0, budget)) {
    const changed = Object.entries(queueAnnotations(b, q)).filter(([k, v]) => (b.annotations[k] ?? "") !== v);
    writes.push({
      kind: "position",
      backup: b.name,
      resourceVersion: b.resourceVersion,
      ...(b.queuePosition !== q.position ? { status: { queuePosition: q.position } } : {}),
      ...(changed.length > 0 ? { annotations: Object.fromEntries(changed) } : {}),
    });
  }
  return writes;
}

/** How far the position a backup shows is from its place in the plan (relative), plus 1 when whom it waits for changed. */
function staleness(b: BackupInfo, q: QueueEntry): number {
  const shown = b.queuePosition ?? 0;
  const waitingChanged = (b.annotations[KEYS.waitingFor] ?? "") !== q.waitingFor.join(",");
  return Math.abs(shown - q.position) / q.position + (waitingChanged ? 1 : 0);
}

/** Nudges for idle ReadyToStart backups, and the ReadyToStart backups another writer promoted. */
function nudgeWrites({ ctx, nowIso }: Writing, inFlight: readonly InFlight[], plan: Plan): { writes: BackupWrite[]; foreign: string[] } {
  const writes: BackupWrite[] = [];
  const foreign: string[] = [];
  const overlaps = overlapping(plan.overlaps);
  for (const f of inFlight) {
    const b = f.info;
    if (b.phase !== "ReadyToStart") continue;
    if (!f.promotedByGate) foreign.push(b.name);
    const last = Math.max(Date.parse(b.annotations[PROMOTED_AT] ?? "") || 0, Date.parse(b.annotations[NUDGED_AT] ?? "") || 0);
    const d = nudgeDecision({ ...f, overlaps: overlaps.has(b.name), idleMs: ctx.now - last }, ctx.policy.nudgeAfterSeconds * 1000);
    if (d.nudge) {
      writes.push({
        kind: "nudge",
        backup: b.name,
        resourceVersion: b.resourceVersion,
        annotations: { [NUDGED_AT]: nowIso },
        event: { type: "Normal", reason: "Nudged", message: d.reason },
      });
    }
  }
  return { writes, foreign };
}
