import { ListLookup } from "../lists.js";
import { KEYS, requestsNamespaceLevel, type BackupInfo, type PvInfo } from "../model.js";
import type { Policy } from "../policy.js";
import { Timestamps } from "../times.js";
import { listedPvs, withExtras, type ListedPvs } from "./extraPvs.js";
import { NamespaceResolver, parseSpecInfo, scopeHead, type ParsedSpecInfo } from "./head.js";
import type { BackupScope, PartContext, ScopeHead, ScopePart } from "./model.js";
import { scopePart } from "./part.js";
import { assembleScope } from "./scope.js";
import type { ClusterView, NamespaceContents } from "../view.js";

// Scopes are the expensive part of a plan, so they are kept in pieces (see model.ts):
// - a backup's head stays valid while its spec, labels, annotations, its volume-policy
//   ConfigMap, the view's sync state and the namespace list stay as they were;
// - a namespace's part is shared by every backup with the same part context (spec minus its
//   namespace lists, filter, volume rules) and stays valid while that namespace's contents
//   version stays put (and, for the rare part that reads a PV bound elsewhere, the PVs);
// - the PVs a backup lists directly stay valid while no PV changes.
// An event in one namespace thus recomputes only that namespace's parts, and a backup whose
// parts are all unchanged keeps its scope object.

interface PartEntry {
  readonly part: ScopePart;
  readonly contents: NamespaceContents;
  readonly version: number;
  readonly pvVersion: number;
}

interface Entry {
  backup: BackupInfo;
  readonly fingerprint: string;
  /** Parts of the fingerprint, kept apart so that checking an entry reads neither the spec nor the fingerprint. */
  readonly readsPolicy: boolean;
  readonly synced: boolean;
  readonly namespacesVersion: number;
  readonly head: ScopeHead;
  readonly namespaces: ListLookup;
  parts?: readonly ScopePart[];
  listed?: ListedPvs;
  scope?: BackupScope;
  contentsVersion: number;
  pvVersion: number;
  /** The scope depends on PVs beyond the namespaces' versions (lists PVs, or reads a PV bound elsewhere). */
  pvSensitive: boolean;
}

export interface ScopeCacheOptions {
  /**
   * Another cache whose parts this one may use (read only): the admission webhook keeps the
   * scopes of candidates apart from those of backups, but a candidate usually has the same
   * part context as a queued run of its Schedule, whose parts it can then reuse.
   */
  readonly partsFrom?: ScopeCache;
}

export class ScopeCache {
  /** The backups' creation times, parsed once: kept with the scopes, for the plans that sort them. */
  readonly times = new Timestamps();
  // Not readonly: `forgetAll` replaces them.
  private entries = new Map<string, Entry>();
  private parts = new Map<string, PartEntry>();
  private listed = new Map<string, { listed: ListedPvs; pvVersion: number }>();
  private specs = new Map<string, ParsedSpecInfo>();
  private resolver?: { version: number; resolver: NamespaceResolver };
  private changes?: { at: number; since: Map<number, ReadonlySet<string> | undefined> };
  private unswept = false;
  private policy?: Policy;
  private view?: ClusterView;
  hits = 0;
  misses = 0;

  constructor(private readonly o: ScopeCacheOptions = {}) {}

  scopeOf(backup: BackupInfo, view: ClusterView, policy: Policy): BackupScope {
    if (policy !== this.policy || view !== this.view) {
      this.entries.clear();
      this.parts.clear();
      this.listed.clear();
      this.resolver = undefined;
      this.policy = policy;
      this.view = view;
    }
    const id = backup.uid || `${backup.namespace}/${backup.name}`;
    let entry = this.entries.get(id);
    if (entry && !this.sameInputs(entry, backup, view)) entry = undefined;
    if (!entry) {
      // Spelled once: a candidate's spec is new on every review, and its key is its JSON.
      const specKey = specKeyOf(backup);
      const head = scopeHead(backup, view, policy, this.specInfo(specKey, backup), this.resolverFor(view));
      entry = {
        backup,
        fingerprint: fingerprintOf(backup, view, specKey),
        readsPolicy: hasPolicyRef(backup),
        synced: view.synced,
        namespacesVersion: view.namespacesVersion,
        head,
        namespaces: new ListLookup(head.namespaces),
        contentsVersion: -1,
        pvVersion: -1,
        pvSensitive: false,
      };
      if (this.entries.has(id)) this.unswept = true;
      this.entries.set(id, entry);
    }
    const changed = this.staleNamespaces(entry, view);
    if (entry.scope && changed?.size === 0) {
      entry.contentsVersion = view.contentsVersion;
      this.hits++;
      return entry.scope;
    }
    return this.refresh(entry, view, changed);
  }

  /**
   * The namespaces of the backup whose contents changed since its scope was made: empty when
   * the scope is still good, undefined when any part may have changed (a first scope, a scope
   * that reads PVs beyond its namespaces, or changes too far back for the view to name them).
   */
  private staleNamespaces(entry: Entry, view: ClusterView): ReadonlySet<string> | undefined {
    if (!entry.scope || !entry.parts) return undefined;
    if (entry.pvSensitive && entry.pvVersion !== view.pvVersion) return undefined;
    if (entry.contentsVersion === view.contentsVersion) return NOTHING;
    if (entry.pvSensitive) return undefined;
    const changed = this.changedSince(view, entry.contentsVersion);
    if (!changed) return undefined;
    const mine = entry.namespaces.positions;
    let stale: Set<string> | undefined;
    for (const ns of changed) if (mine.has(ns)) (stale ??= new Set()).add(ns);
    return stale ?? NOTHING;
  }

  // Every backup asks about the same few versions within one plan: answered once each.
  private changedSince(view: ClusterView, version: number): ReadonlySet<string> | undefined {
    if (this.changes?.at !== view.contentsVersion) this.changes = { at: view.contentsVersion, since: new Map() };
    const since = this.changes.since;
    if (!since.has(version)) since.set(version, view.changedSince(version));
    return since.get(version);
  }

  /**
   * Forgets every backup, part, spec and PV list (the namespace resolver stays). New tables, not
   * emptied ones: deleting entry by entry makes V8 shrink each table into a new one, which the
   * long-lived cache kept past scavenges, and with it the parts it held (docs/performance.md).
   */
  forgetAll(): void {
    this.entries = new Map();
    this.parts = new Map();
    this.listed = new Map();
    this.specs = new Map();
    this.changes = undefined;
    this.unswept = false;
  }

  /** Forgets backups that are gone (and parts no backup uses), so the cache does not outgrow the queue. */
  retain(ids: ReadonlySet<string>): void {
    for (const id of this.entries.keys())
      if (!ids.has(id)) {
        this.entries.delete(id);
        this.unswept = true;
      }
    // Parts, specs and PV lists outlive their backups only when an entry went or was replaced;
    // sweeping them costs every entry's parts, so it is done only then (not on every plan).
    if (!this.unswept) return;
    this.unswept = false;
    const liveParts = new Set<ScopePart>();
    const liveSpecs = new Set<string>();
    const liveListed = new Set<string>();
    for (const e of this.entries.values()) {
      for (const p of e.parts ?? []) liveParts.add(p);
      liveSpecs.add(specKeyOf(e.backup));
      if (e.head.context && e.head.listsPvs) liveListed.add(e.head.context.key);
    }
    for (const [k, p] of this.parts) if (!liveParts.has(p.part)) this.parts.delete(k);
    for (const k of this.specs.keys()) if (!liveSpecs.has(k)) this.specs.delete(k);
    for (const k of this.listed.keys()) if (!liveListed.has(k)) this.listed.delete(k);
  }

  /** Remakes the parts of the namespaces named in `stale` (all of them when it is undefined). */
  private refresh(entry: Entry, view: ClusterView, stale: ReadonlySet<string> | undefined): BackupScope {
    const { head } = entry;
    const ctx = head.context;
    entry.contentsVersion = view.contentsVersion;
    entry.pvVersion = view.pvVersion;
    if (!ctx) {
      this.misses++;
      entry.scope ??= assembleScope(head, [], undefined, entry.namespaces);
      return entry.scope;
    }
    let changed = !entry.scope || !entry.parts;
    let parts: ScopePart[];
    let pvSensitive = head.listsPvs;
    const renew = (ns: string, i: number) => {
      const part = this.part(ctx, view, ns);
      if (part.readsForeignPvs) pvSensitive = true;
      if (part !== entry.parts?.[i]) changed = true;
      parts[i] = part;
    };
    if (stale && entry.parts) {
      // Only a few namespaces moved; the others' parts (and their PV independence) stand.
      parts = [...entry.parts];
      const at = entry.namespaces.positions;
      for (const ns of stale) renew(ns, at.get(ns) as number);
    } else {
      parts = new Array<ScopePart>(head.namespaces.length);
      head.namespaces.forEach(renew);
    }
    const listed = head.listsPvs ? this.listedPvs(ctx, view) : undefined;
    if (listed !== entry.listed) changed = true;
    entry.pvSensitive = pvSensitive;
    if (!changed && entry.scope) {
      this.hits++;
      return entry.scope;
    }
    this.misses++;
    entry.parts = parts;
    entry.listed = listed;
    entry.scope = assembleScope(
      head,
      withExtras(entry.namespaces, parts, listed, (ns, extras) => this.part(ctx, view, ns, extras)),
      listed,
      entry.namespaces,
    );
    return entry.scope;
  }

  private part(ctx: PartContext, view: ClusterView, ns: string, extras?: readonly PvInfo[]): ScopePart {
    const key = extras ? `${ctx.key}\u0000${ns}\u0000${extras.map((pv) => pv.name).join(",")}` : `${ctx.key}\u0000${ns}`;
    const contents = view.contents(ns);
    const cached = this.cachedPart(key, contents, view, extras) ?? this.o.partsFrom?.sharedPart(key, contents, view, this.policy, extras);
    if (cached) return cached;
    const part = scopePart(ctx, view, ns, extras);
    this.parts.set(key, { part, contents, version: contents.version, pvVersion: view.pvVersion });
    return part;
  }

  private cachedPart(
    key: string,
    contents: NamespaceContents,
    view: ClusterView,
    extras: readonly PvInfo[] | undefined,
  ): ScopePart | undefined {
    const cached = this.parts.get(key);
    if (
      cached &&
      cached.contents === contents &&
      cached.version === contents.version &&
      ((!cached.part.readsForeignPvs && !extras) || cached.pvVersion === view.pvVersion)
    )
      return cached.part;
    return undefined;
  }

  /** A part this cache holds, still good, for another cache judging with the same view and policy. */
  private sharedPart(
    key: string,
    contents: NamespaceContents,
    view: ClusterView,
    policy: Policy | undefined,
    extras: readonly PvInfo[] | undefined,
  ): ScopePart | undefined {
    return view === this.view && policy === this.policy ? this.cachedPart(key, contents, view, extras) : undefined;
  }

  private listedPvs(ctx: PartContext, view: ClusterView): ListedPvs {
    const cached = this.listed.get(ctx.key);
    if (cached && cached.pvVersion === view.pvVersion) return cached.listed;
    const listed = listedPvs(ctx, view);
    this.listed.set(ctx.key, { listed, pvVersion: view.pvVersion });
    return listed;
  }

  private specInfo(key: string, backup: BackupInfo): ParsedSpecInfo {
    let info = this.specs.get(key);
    if (!info) {
      info = parseSpecInfo(backup.spec);
      this.specs.set(key, info);
    }
    return info;
  }

  private resolverFor(view: ClusterView): NamespaceResolver {
    if (this.resolver?.version !== view.namespacesVersion)
      this.resolver = { version: view.namespacesVersion, resolver: new NamespaceResolver(view) };
    return this.resolver.resolver;
  }

  /** The head's inputs are unchanged: the same backup object (or an equal fingerprint) and namespace list. */
  private sameInputs(entry: Entry, backup: BackupInfo, view: ClusterView): boolean {
    if (entry.namespacesVersion !== view.namespacesVersion) return false;
    if (entry.backup === backup && !entry.readsPolicy && entry.synced === view.synced) return true;
    if (fingerprintOf(backup, view) !== entry.fingerprint) return false;
    entry.backup = backup;
    return true;
  }
}

const NOTHING: ReadonlySet<string> = new Set();

function specKeyOf(backup: BackupInfo): string {
  return backup.specHash ?? JSON.stringify(backup.spec ?? null);
}

function hasPolicyRef(backup: BackupInfo): boolean {
  return typeof (backup.spec as { resourcePolicy?: { name?: unknown } } | null)?.resourcePolicy?.name === "string";
}

function fingerprintOf(backup: BackupInfo, view: ClusterView, specKey = specKeyOf(backup)): string {
  const policyRef = (backup.spec as { resourcePolicy?: { name?: unknown } } | null)?.resourcePolicy?.name;
  const cmVersion = typeof policyRef === "string" ? (view.configMap(backup.namespace, policyRef)?.version ?? -1) : 0;
  return [
    specKey,
    backup.namespace,
    cmVersion,
    requestsNamespaceLevel(backup.annotations) ? "Namespace" : "",
    backup.labels[KEYS.scheduleName] ?? "",
    view.synced ? "synced" : "unsynced",
  ].join("\u0000");
}
