import type { Plan } from "../core/decision/plan.js";
import type { BackupScope } from "../core/scope/scope.js";

// The JSON form of a plan: field names are a public contract (see docs/reference.md), so they are
// spelled out here rather than taken from internal types.

export function scopeJson(scope: BackupScope) {
  return {
    level: scope.level,
    ...(scope.levelReason ? { levelReason: scope.levelReason } : {}),
    errors: scope.errors,
    namespaces: scope.namespaces,
    queueNamespaces: scope.queueNamespaces,
    items: scope.items,
    units: scope.units,
    exclusive: Object.fromEntries(scope.exclusive),
    ...(scope.serialKey ? { serialKey: scope.serialKey } : {}),
    notes: scope.notes,
  };
}

export function planJson(plan: Plan, now: number) {
  return {
    now: new Date(now).toISOString(),
    level: plan.level,
    limit: plan.limit,
    inFlight: plan.inFlight,
    promotions: plan.promotions,
    queue: plan.queue,
    supersessions: plan.supersessions,
    overlaps: plan.overlaps,
    ...(plan.missedWindows ? { missedWindows: plan.missedWindows } : {}),
    backups: Object.fromEntries([...plan.scopes].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, scope]) => [name, scopeJson(scope)])),
  };
}

export function planHuman(plan: Plan): string {
  const lines = [`level ${plan.level}, limit ${plan.limit}, in flight ${plan.inFlight.length}: ${plan.inFlight.join(", ") || "none"}`];
  for (const p of plan.promotions) lines.push(`start  ${p.backup}: ${p.reason}`);
  for (const q of plan.queue) lines.push(`wait   #${q.position} ${q.backup} (priority ${q.effectivePriority}): ${q.reason}`);
  for (const s of plan.supersessions) lines.push(`drop   ${s.backup}: ${s.reason}`);
  for (const m of plan.missedWindows ?? []) lines.push(`fail   ${m.backup}: ${m.reason}`);
  for (const o of plan.overlaps) lines.push(`WARN   ${o.reason}`);
  for (const [name, scope] of plan.scopes) {
    for (const e of scope.errors) lines.push(`INVALID ${name}: ${e.field}: ${e.message}`);
    for (const n of scope.notes) lines.push(`note   ${name}: ${n}`);
  }
  return lines.join("\n");
}
