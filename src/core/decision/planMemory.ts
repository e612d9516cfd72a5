import type { Blockers, ClaimIndex } from "../conflict/claimIndex.js";
import type { BackupInfo } from "../model.js";
import type { Policy } from "../policy.js";
import type { ScopeCache } from "../scope/cache.js";
import type { BackupScope } from "../scope/scope.js";
import type { ClusterView } from "../view.js";
import type { Ordered } from "./order.js";
import type { Overlap, Plan, Promotion, QueueEntry, Supersession } from "./planModel.js";
import type { Queued } from "./queueEntry.js";
import type { MissedWindow, WindowState } from "./windows.js";
import type { RestoreTarget } from "./restores.js";

/**
 * What a plan keeps for the next one. Members of `index` are the in-flight backups (by creation)
 * and then the queued ones (in queue order). For queued member i, `blocked[i]` is whom it waits
 * behind among those ahead of it, and `decided` what became of it.
 */
export interface Memory {
  used: boolean;
  readonly view: ClusterView;
  readonly policy: Policy;
  readonly cache: ScopeCache;
  readonly backups: readonly BackupInfo[];
  readonly now: number;
  /** The first instant at which aging moves a queued backup's priority (and maybe the order). */
  readonly orderValidUntil: number;
  /**
   * The first instant at which time alone changes what may start or must fail: a window that
   * governs a queued backup opens or closes, or a held backup's max wait ends (windows only).
   */
  readonly wakeAt?: number;
  readonly versions: ViewVersions;
  readonly infos: readonly BackupInfo[];
  readonly index: ClaimIndex;
  readonly inFlight: number;
  readonly priorities: readonly Ordered[];
  readonly supersessions: readonly Supersession[];
  readonly blocked: readonly Blockers[];
  readonly decided: Decisions;
  /** Each member's tenant (undefined: none), when the policy has tenants. */
  readonly classes?: readonly (string | undefined)[];
  /** Each member's start-window state (undefined: free to start), when the policy has windows. */
  readonly windows?: readonly (WindowState | undefined)[];
  /** Backups failed for waiting past their window's maxWaitSeconds, when the policy has windows. */
  readonly missedWindows?: readonly MissedWindow[];
  /** The restores writing now, when there are any (they may hold queued backups). */
  readonly restores?: readonly RestoreTarget[];
}

export interface Started {
  readonly inUse: number;
  readonly promotion: Promotion;
}
export type Decided = Started | Queued;

/**
 * What became of each member (`each[i]`), and for each i how many members before it were
 * promoted (`promotedBefore[i]`) and left queued (`queuedBefore[i]`).
 */
export interface Decisions {
  readonly each: readonly Decided[];
  readonly promotedBefore: Int32Array;
  readonly queuedBefore: Int32Array;
  readonly promotions: readonly Promotion[];
  readonly queue: readonly QueueEntry[];
}

export const NO_DECISIONS: Decisions = {
  each: [],
  promotedBefore: new Int32Array(0),
  queuedBefore: new Int32Array(0),
  promotions: [],
  queue: [],
};

export interface ViewVersions {
  readonly contents: number;
  readonly pv: number;
  readonly namespaces: number;
  readonly synced: boolean;
  readonly restores: number;
}

export function versionsOf(view: ClusterView): ViewVersions {
  return {
    contents: view.contentsVersion,
    pv: view.pvVersion,
    namespaces: view.namespacesVersion,
    synced: view.synced,
    restores: view.restoresVersion,
  };
}

export type PlanMaking = "afresh" | "incremental";

/**
 * A plan, with what the next plan can build on in a private field: spreads, equality checks
 * and JSON see the plan alone. (Not a WeakMap keyed by the plan: see docs/performance.md.)
 */
export class MadePlan implements Plan {
  readonly level: Plan["level"];
  readonly limit: number;
  readonly inFlight: readonly string[];
  readonly promotions: readonly Promotion[];
  readonly queue: readonly QueueEntry[];
  readonly supersessions: readonly Supersession[];
  readonly overlaps: readonly Overlap[];
  /** Only when the policy has windows. */
  declare readonly missedWindows?: readonly MissedWindow[];
  declare readonly scopes: ReadonlyMap<string, BackupScope>;
  readonly #memory: Memory;
  readonly #made: PlanMaking;

  constructor(
    fields: Omit<Plan, "scopes">,
    members: readonly { readonly name: string; readonly scope: BackupScope }[],
    memory: Memory,
    made: PlanMaking,
  ) {
    this.level = fields.level;
    this.limit = fields.limit;
    this.inFlight = fields.inFlight;
    this.promotions = fields.promotions;
    this.queue = fields.queue;
    this.supersessions = fields.supersessions;
    this.overlaps = fields.overlaps;
    if (fields.missedWindows) this.missedWindows = fields.missedWindows;
    this.#memory = memory;
    this.#made = made;
    // Built when read: a replan changes a handful of scopes, and copying thousands is its largest cost.
    let scopes: Map<string, BackupScope> | undefined;
    Object.defineProperty(this, "scopes", {
      enumerable: true,
      configurable: true,
      get: () => (scopes ??= new Map(members.map((b) => [b.name, b.scope]))),
    });
  }

  static memoryOf(p: Plan): Memory | undefined {
    return #memory in p ? p.#memory : undefined;
  }

  static madeOf(p: Plan): PlanMaking | undefined {
    return #made in p ? p.#made : undefined;
  }
}
