import { ClaimIndex, conflictBetween, describeConflict, type Blockers, type Conflict, type ScopedBackup } from "../conflict/conflicts.js";
import { IN_FLIGHT_PHASES, KEYS, QUEUED_PHASES, type BackupInfo, type ConflictLevel } from "../model.js";
import type { Policy } from "../policy.js";
import { ScopeCache } from "../scope/cache.js";
import type { BackupScope } from "../scope/scope.js";
import type { ClusterView } from "../view.js";

// The queue, decided: plan(snapshot, policy, now) -> Plan. Pure: the same snapshot, policy and
// instant always give the same plan, whatever order the backups arrive in.

export interface Snapshot {
  readonly view: ClusterView;
  readonly backups: readonly BackupInfo[];
}

/** A queued backup, where it stands and why it waits. */
export interface QueueEntry {
  readonly backup: string;
  /** 1 = next. */
  readonly position: number;
  readonly priority: number;
  /** Priority after aging, which decides the order. */
  readonly effectivePriority: number;
  readonly level: ConflictLevel;
  /** The backups it waits behind, in order: at most MAX_BLOCKERS; `moreBlockers` says whether there are more. */
  readonly waitingFor: readonly string[];
  readonly conflicts: readonly Conflict[];
  /** True when it waits behind more backups than `waitingFor` names. */
  readonly moreBlockers?: true;
  readonly reason: string;
}

/** A queued backup names at most this many backups it waits behind (a backup of every namespace may wait behind thousands). */
export const MAX_BLOCKERS = 20;

export interface Promotion {
  readonly backup: string;
  readonly level: ConflictLevel;
  readonly reason: string;
}

export interface Supersession {
  readonly backup: string;
  readonly by: string;
  readonly reason: string;
}

/** Two in-flight backups that share an exclusive unit (drift after they started, or another writer). */
export interface Overlap {
  readonly backups: readonly [string, string];
  readonly conflict: Conflict;
  readonly reason: string;
}

export interface Plan {
  readonly level: ConflictLevel;
  readonly limit: number;
  readonly inFlight: readonly string[];
  readonly promotions: readonly Promotion[];
  /** Backups still waiting, in queue order. */
  readonly queue: readonly QueueEntry[];
  readonly supersessions: readonly Supersession[];
  readonly overlaps: readonly Overlap[];
  /** Every backup the plan judged, with its scope (not serialized). */
  readonly scopes: ReadonlyMap<string, BackupScope>;
}

export interface PlanOptions {
  /** Reuse scopes across plans; a fresh cache is used when none is given. */
  readonly cache?: ScopeCache;
  /**
   * The last plan made with the same cache, view and policy. When only the cluster's contents
   * moved since (the backups, their phases and the queue order did not), the plan redoes just
   * the backups those changes touch; otherwise it starts afresh. Either way the result equals
   * a plan made from nothing. A plan can be built on once: what it remembers passes on.
   */
  readonly previous?: Plan;
}

export function plan(snapshot: Snapshot, policy: Policy, now: number, options: PlanOptions = {}): Plan {
  const cache = options.cache ?? new ScopeCache();
  const backups = snapshot.backups.filter((b) => b.namespace === policy.veleroNamespace);
  const memory = options.previous && reusable(options.previous, snapshot.view, policy, cache, backups, now);
  return (memory && replan(memory, now)) ?? planAfresh(snapshot.view, backups, policy, now, cache);
}

/**
 * What a plan keeps for the next one. Members of `index` are the in-flight backups (by creation)
 * and then the queued ones (in queue order). For queued member i, `blocked[i]` is whom it waits
 * behind among those ahead of it, `decided[i]` what became of it, and `promotedBefore[i]` and
 * `queuedBefore[i]` how many members ahead of it were promoted and left queued.
 */
interface Memory {
  used: boolean;
  readonly view: ClusterView;
  readonly policy: Policy;
  readonly cache: ScopeCache;
  readonly backups: readonly BackupInfo[];
  readonly now: number;
  /** The first instant at which aging moves a queued backup's priority (and maybe the order). */
  readonly orderValidUntil: number;
  readonly versions: ViewVersions;
  readonly infos: readonly BackupInfo[];
  readonly index: ClaimIndex;
  readonly inFlight: number;
  readonly priorities: readonly Ordered[];
  readonly supersessions: readonly Supersession[];
  readonly blocked: readonly Blockers[];
  readonly decided: Decisions;
}

interface Started { readonly inUse: number; readonly promotion: Promotion }
type Decided = Started | Queued;
interface Decisions {
  readonly each: readonly Decided[];
  readonly promotedBefore: Int32Array;
  readonly queuedBefore: Int32Array;
  readonly promotions: readonly Promotion[];
  readonly queue: readonly QueueEntry[];
}
interface ViewVersions { readonly contents: number; readonly pv: number; readonly namespaces: number; readonly synced: boolean }

// A plan keeps what the next one can build on in a hidden property, not in a WeakMap keyed by
// the plan: V8's young-generation collector keeps a WeakMap's values alive while it cannot yet
// tell whether their key is, so every plan's memory (index, blockers, entries: megabytes) was
// copied and then promoted to the old generation, and full plans spent a fifth of their time
// in the collector.
const MEMORY = Symbol("plan memory");
type Remembered = Memory & { made: PlanMaking };

function memoryOf(p: Plan): Remembered | undefined {
  return (p as { [MEMORY]?: Remembered })[MEMORY];
}

export type PlanMaking = "afresh" | "incremental";
/** Whether a plan was made from nothing or built on the previous one (for the controller's log and tests). */
export function howMade(p: Plan): PlanMaking | undefined {
  return memoryOf(p)?.made;
}

function versionsOf(view: ClusterView): ViewVersions {
  return { contents: view.contentsVersion, pv: view.pvVersion, namespaces: view.namespacesVersion, synced: view.synced };
}

// Runs once per plan over every backup, mostly before V8 has optimized it: indexed loops, since
// unoptimized iteration allocates a result object per step.
function planAfresh(view: ClusterView, backups: readonly BackupInfo[], policy: Policy, now: number, cache: ScopeCache): Plan {
  const inFlight = backups.filter((b) => IN_FLIGHT_PHASES.has(b.phase)).sort(byCreation);
  const { queued, supersessions } = supersede(backups.filter((b) => QUEUED_PHASES.has(b.phase)), policy);
  const priorities = orderQueue(queued, policy, now);
  const infos = inFlight.concat(priorities.map((q) => q.backup));
  const index = new ClaimIndex();
  for (let i = 0; i < infos.length; i++) {
    const b = infos[i] as BackupInfo;
    index.add({ name: b.name, phase: b.phase, scope: cache.scopeOf(b, view, policy) });
  }
  const blocked: Blockers[] = new Array(infos.length);
  for (let i = inFlight.length; i < infos.length; i++) blocked[i] = index.blockersOf(index.member(i), MAX_BLOCKERS, i);
  return decide({
    used: false, view, policy, cache, backups, now, orderValidUntil: nextAgingStep(priorities, policy, now), versions: versionsOf(view),
    infos, index, inFlight: inFlight.length, priorities, supersessions, blocked, decided: NO_DECISIONS,
  }, undefined, "afresh");
}

const NO_DECISIONS: Decisions = { each: [], promotedBefore: new Int32Array(0), queuedBefore: new Int32Array(0), promotions: [], queue: [] };

/** The memory of `previous` when the queue is as it left it (only the cluster's contents moved). */
function reusable(previous: Plan, view: ClusterView, policy: Policy, cache: ScopeCache, backups: readonly BackupInfo[], now: number): Memory | undefined {
  const m = memoryOf(previous);
  if (!m || m.used) return undefined;
  m.used = true; // its index is about to change, or be dropped
  if (m.view !== view || m.policy !== policy || m.cache !== cache) return undefined;
  if (now < m.now || now >= m.orderValidUntil) return undefined;
  if (view.namespacesVersion !== m.versions.namespaces || view.synced !== m.versions.synced) return undefined;
  if (backups.length !== m.backups.length || backups.some((b, i) => b !== m.backups[i])) return undefined;
  return m;
}

/**
 * The plan after the cluster's contents moved: rescope the backups of the namespaces that
 * changed (all of them when the view cannot say which, or a PV moved), and redo the blockers of
 * the backups whose claims changed and of every backup claiming where those claims moved (it is
 * usually rescoped anyway, its own part there being new). Undefined when a scope changed beyond
 * its claims (then the whole plan is redone).
 */
function replan(m: Memory, now: number): Plan | undefined {
  const { view, policy, cache, index } = m;
  const changed = view.pvVersion === m.versions.pv ? view.changedSince(m.versions.contents) : undefined;
  const touched = new Set<number>();
  if (changed) { for (const ns of changed) for (const i of index.inScope(ns)) touched.add(i); }
  else for (let i = 0; i < index.size; i++) touched.add(i);

  const redo = new Set<number>();
  for (const i of touched) {
    const old = index.member(i);
    const scope = cache.scopeOf(m.infos[i] as BackupInfo, view, policy);
    if (scope === old.scope) continue;
    if (!sameHead(scope, old.scope)) return undefined;
    const moved = claimsMoved(old.scope, scope, changed);
    index.replace(i, { ...old, scope }, moved);
    redo.add(i);
    for (const ns of moved) for (const j of index.claimingIn(ns)) redo.add(j);
  }
  const blocked = redo.size === 0 ? m.blocked : [...m.blocked];
  for (const i of redo) if (i >= m.inFlight) (blocked as Blockers[])[i] = index.blockersOf(index.member(i), MAX_BLOCKERS, i);
  return decide({ ...m, used: false, now, versions: versionsOf(view), blocked }, redo, "incremental");
}

// The parts a scope's head decides (level, namespace lists, serial key) never move with the
// cluster's contents; checked anyway, since the shortcut above relies on it.
function sameHead(a: BackupScope, b: BackupScope): boolean {
  return a.level === b.level && a.queueNamespaces === b.queueNamespaces && a.strictNamespaces === b.strictNamespaces
    && a.serialKey === b.serialKey && a.errors === b.errors;
}

/** The namespaces where two scopes of one backup claim differently (among `within` when given). */
function claimsMoved(a: BackupScope, b: BackupScope, within: ReadonlySet<string> | undefined): string[] {
  const [was, now] = [a.claims.byNamespace, b.claims.byNamespace];
  if (within) return [...within].filter((ns) => was.get(ns) !== now.get(ns));
  const moved: string[] = [];
  for (const [ns, part] of was) if (now.get(ns) !== part) moved.push(ns);
  for (const ns of now.keys()) if (!was.has(ns)) moved.push(ns);
  return moved;
}

/**
 * Promotions and the queue from who blocks whom: the first unblocked backups take the free
 * slots. After a replan, what was decided ahead of the first member in `redo` stands; past the
 * last one, once the slots and positions come out as they did, so does everything behind. Only
 * the stretch between is decided again, keeping each decision that came out the same.
 */
function decide(m: Memory, redo: ReadonlySet<number> | undefined, made: PlanMaking): Plan {
  const { index, policy } = m;
  const limit = policy.maxConcurrentBackups;
  const n = index.size;
  const was = m.decided;
  const each: Decided[] = new Array(n);
  const promotedBefore = new Int32Array(n + 1);
  const queuedBefore = new Int32Array(n + 1);
  let from = m.inFlight;
  let last = n - 1;
  if (redo) {
    from = n;
    last = -1;
    for (const i of redo) { from = Math.min(from, i); last = Math.max(last, i); }
    from = Math.max(m.inFlight, from);
    for (let i = m.inFlight; i < from; i++) each[i] = was.each[i] as Decided;
    promotedBefore.set(was.promotedBefore.subarray(0, from + 1));
    queuedBefore.set(was.queuedBefore.subarray(0, from + 1));
  }
  const promotions = was.promotions.slice(0, promotedBefore[from]);
  const queue = was.queue.slice(0, queuedBefore[from]);
  const initiallyFree = limit - m.inFlight;
  for (let i = from; i < n; i++) {
    if (redo && i > last && promotions.length === was.promotedBefore[i] && queue.length === was.queuedBefore[i]) {
      // Everything behind comes out as before.
      for (let j = i; j < n; j++) each[j] = was.each[j] as Decided;
      promotedBefore.set(was.promotedBefore.subarray(i), i);
      queuedBefore.set(was.queuedBefore.subarray(i), i);
      promotions.push(...was.promotions.slice(promotions.length));
      queue.push(...was.queue.slice(queue.length));
      break;
    }
    const blocked = m.blocked[i] as Blockers;
    const before = redo && !redo.has(i) ? was.each[i] : undefined;
    const b = index.member(i);
    let d: Decided;
    if (blocked.blockers.length === 0 && promotions.length < initiallyFree) {
      const inUse = m.inFlight + promotions.length + 1;
      d = before && !(before instanceof Queued) && before.inUse === inUse ? before
        : { inUse, promotion: { backup: b.name, level: b.scope.level, reason: startReason(b.scope, inUse, limit) } };
      promotions.push(d.promotion);
    } else {
      const position = queue.length + 1;
      d = before instanceof Queued && before.position === position ? before
        : new Queued(b, m.priorities[i - m.inFlight] as Ordered, position, blocked, limit);
      queue.push(d);
    }
    each[i] = d;
    promotedBefore[i + 1] = promotions.length;
    queuedBefore[i + 1] = queue.length;
  }

  const members = index.snapshot();
  let scopes: Map<string, BackupScope> | undefined;
  const result: Plan = {
    level: policy.conflictLevel,
    limit,
    inFlight: m.infos.slice(0, m.inFlight).map((b) => b.name),
    promotions,
    queue,
    supersessions: m.supersessions,
    overlaps: overlapsOf(index, m.inFlight),
    // Built when read: a replan changes a handful of scopes, and copying thousands is its largest cost.
    get scopes() { return (scopes ??= new Map(members.map((b) => [b.name, b.scope]))); },
  };
  // Not enumerable: spreads, equality checks and JSON see the plan alone.
  Object.defineProperty(result, MEMORY, { value: { ...m, made, decided: { each, promotedBefore, queuedBefore, promotions, queue } } });
  return result;
}

function overlapsOf(index: ClaimIndex, inFlight: number): Overlap[] {
  const overlaps: Overlap[] = [];
  for (let i = 0; i < inFlight; i++) {
    const b = index.member(i);
    for (const other of index.blockersOf(b, Infinity, i).blockers) {
      const c = conflictBetween(b, other) as Conflict;
      overlaps.push({ backups: [c.with, b.name], conflict: c, reason: `${c.with} and ${b.name} are in flight together: ${describeConflict(c)}` });
    }
  }
  return overlaps;
}

// A queued backup's conflict details and reason cost more than the decision itself and are read
// for a handful of backups per plan (the writes) or all of them (the CLI): computed on first
// read, and then kept; so are the names it waits for (an array per queued backup per plan). A plan makes thousands of entries, so they are instances of one class
// with the lazy fields as getters (per-object accessors cost V8 a hidden class per object and
// were a tenth of a full plan); `toJSON` writes every field out, in the interface's order.
class Queued implements QueueEntry {
  readonly backup: string;
  readonly position: number;
  readonly priority: number;
  readonly effectivePriority: number;
  readonly level: ConflictLevel;
  readonly moreBlockers: true | undefined;
  readonly #of: ScopedBackup;
  readonly #blockers: readonly ScopedBackup[];
  readonly #limit: number;
  #details: { readonly conflicts: readonly Conflict[]; readonly reason: string } | undefined;
  #waitingFor: readonly string[] | undefined;

  constructor(b: ScopedBackup, o: Ordered, position: number, { blockers, more }: Blockers, limit: number) {
    this.backup = b.name;
    this.position = position;
    this.priority = o.priority;
    this.effectivePriority = o.effectivePriority;
    this.level = b.scope.level;
    this.moreBlockers = more ? true : undefined;
    this.#of = b;
    this.#blockers = blockers;
    this.#limit = limit;
  }

  #explain(): { readonly conflicts: readonly Conflict[]; readonly reason: string } {
    if (!this.#details) {
      const conflicts = this.#blockers.map((other) => conflictBetween(this.#of, other) as Conflict);
      this.#details = { conflicts, reason: waitReason(this.#of.scope, conflicts, this.moreBlockers === true, this.#limit) };
    }
    return this.#details;
  }
  get waitingFor(): readonly string[] { return (this.#waitingFor ??= this.#blockers.map((x) => x.name)); }
  get conflicts(): readonly Conflict[] { return this.#explain().conflicts; }
  get reason(): string { return this.#explain().reason; }

  toJSON(): QueueEntry {
    const { backup, position, priority, effectivePriority, level, waitingFor, conflicts, moreBlockers, reason } = this;
    return { backup, position, priority, effectivePriority, level, waitingFor, conflicts, ...(moreBlockers ? { moreBlockers } : {}), reason };
  }
}

/** When aging next moves the effective priority of one of `queued` after `now` (Infinity without aging). */
function nextAgingStep(queued: readonly Ordered[], policy: Policy, now: number): number {
  const aging = policy.priorities.agingSeconds * 1000;
  if (aging === 0) return Infinity;
  let next = Infinity;
  for (const { created } of queued) {
    if (!Number.isFinite(created)) continue;
    const steps = Math.floor(Math.max(0, now - created) / aging);
    next = Math.min(next, created + (steps + 1) * aging);
  }
  return next;
}

// The words a person reads, shared by the plan and the admission verdicts.
function levelNote(scope: BackupScope): string {
  return scope.levelReason ? ` (judged at Namespace level: ${scope.levelReason})` : "";
}

export function startReason(scope: BackupScope, inUse: number, limit: number): string {
  return `conflicts with nothing in flight or ahead of it; ${inUse} of ${limit} slots in use${levelNote(scope)}`;
}

export function waitReason(scope: BackupScope, conflicts: readonly Conflict[], more: boolean, limit: number): string {
  return (conflicts.length > 0
    ? conflicts.map((c) => `waits behind ${c.with} (${c.withPhase || "New"}): ${describeConflict(c)}`).join("; ")
      + (more ? "; and behind more backups" : "")
    : `waits for a free slot: ${limit} of ${limit} backups in flight`) + levelNote(scope);
}

/** Base priority from the label, the Schedule, or whether a person made the backup. */
export function basePriority(backup: BackupInfo, policy: Policy): number {
  const label = backup.labels[KEYS.priority];
  if (label !== undefined && /^-?\d+$/.test(label.trim())) return Number.parseInt(label, 10);
  const schedule = backup.labels[KEYS.scheduleName];
  if (schedule) return policy.priorities.schedules[schedule] ?? policy.priorities.scheduled;
  return policy.priorities.manual;
}

export function effectivePriorityOf(backup: BackupInfo, policy: Policy, now: number): number {
  return aged(basePriority(backup, policy), parseTime(backup.creationTimestamp), policy, now);
}

/** A base priority after aging, for a backup created at `created` (NaN: unknown, no aging). */
function aged(base: number, created: number, policy: Policy, now: number): number {
  const aging = policy.priorities.agingSeconds;
  if (aging === 0) return base;
  const waited = Number.isFinite(created) ? Math.max(0, now - created) : 0;
  return base + Math.floor(waited / (aging * 1000));
}

interface Ordered {
  readonly backup: BackupInfo;
  readonly priority: number;
  readonly effectivePriority: number;
  /** NaN when the creation time is unknown (it then sorts as the earliest). */
  readonly created: number;
}

/** Queue order of two backups: effective priority (higher first), then creation time, then name. */
export function queueOrder(a: BackupInfo, b: BackupInfo, policy: Policy, now: number): number {
  return effectivePriorityOf(b, policy, now) - effectivePriorityOf(a, policy, now) || byCreation(a, b);
}

/** Queue order: effective priority (higher first), then creation time, then name. */
export function orderQueue(queued: readonly BackupInfo[], policy: Policy, now: number): Ordered[] {
  return queued
    .map((backup): Ordered => {
      const priority = basePriority(backup, policy);
      const created = parseTime(backup.creationTimestamp);
      return { backup, priority, effectivePriority: aged(priority, created, policy, now), created };
    })
    .sort((a, b) => b.effectivePriority - a.effectivePriority || (a.created || 0) - (b.created || 0) || byName(a.backup, b.backup));
}

// Creation times parsed once per timestamp string (plans sort thousands of backups).
const parsedTimes = new Map<string, number>();
function parseTime(timestamp: string): number {
  let t = parsedTimes.get(timestamp);
  if (t === undefined) {
    t = Date.parse(timestamp);
    if (parsedTimes.size > 100_000) parsedTimes.clear();
    parsedTimes.set(timestamp, t);
  }
  return t;
}
function createdAt(b: BackupInfo): number {
  return parseTime(b.creationTimestamp) || 0;
}

function byName(a: BackupInfo, b: BackupInfo): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Creation time, then name: the order of backups in flight. */
export function byCreation(a: BackupInfo, b: BackupInfo): number {
  return createdAt(a) - createdAt(b) || byName(a, b);
}

// Under `Replace`, only the newest queued run of a Schedule stays queued; the older queued runs
// are superseded (failed with a reason by the controller). Runs already in flight are kept.
export function supersede(waiting: readonly BackupInfo[], policy: Policy): { queued: BackupInfo[]; supersessions: Supersession[] } {
  if (policy.serialWorkloads !== "Replace") return { queued: [...waiting], supersessions: [] };
  const newest = new Map<string, BackupInfo>();
  for (const b of waiting) {
    const schedule = b.labels[KEYS.scheduleName];
    if (!schedule) continue;
    const current = newest.get(schedule);
    if (!current || byCreation(current, b) < 0) newest.set(schedule, b);
  }
  const queued: BackupInfo[] = [];
  const supersessions: Supersession[] = [];
  for (const b of waiting) {
    const schedule = b.labels[KEYS.scheduleName];
    const keep = schedule ? newest.get(schedule) : b;
    if (!keep || keep === b) queued.push(b);
    else supersessions.push({ backup: b.name, by: keep.name, reason: `superseded by ${keep.name}, a newer run of schedule ${schedule} (serialWorkloads: Replace)` });
  }
  return { queued, supersessions: supersessions.sort((a, b) => (a.backup < b.backup ? -1 : 1)) };
}
