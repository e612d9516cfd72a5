import type { KubeAccess } from "../kube/http.js";
import { BackupIndex } from "../core/backupIndex.js";
import type { BackupInfo, ConfigMapInfo, NamespaceInfo, PodInfo, PvcInfo, PvInfo, RestoreInfo } from "../core/model.js";
import { trim, type ObjectKind, type Trimmed } from "../core/velero/objects.js";
import { ClusterView } from "../core/view.js";
import type { BackoffOptions } from "../kube/backoff.js";
import { Reflector, type Decoded, type RawObject, type ReflectorSink } from "../kube/reflector.js";
import { sameValue } from "../kube/sameValue.js";
import type { Logger } from "../logging/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import { Interner, slimNamespace, slimPod, slimPv, slimPvc, withSpecHash } from "./slim.js";

// The ClusterCache: one reflector per collection the core reads (Backups, Restores and ConfigMaps in
// Velero's namespace; Namespaces, Pods, PVCs and PVs everywhere), feeding a ClusterView and a
// map of Backups. Objects are trimmed as they arrive; an update that changes nothing the core
// keeps (pod status churn, for instance) is dropped without touching the view or notifying.

/** The informer-fed picture of the cluster: what the webhooks and the controller read. */
export interface ClusterCache {
  /** The core's indexed view, kept current by the watches. */
  readonly view: ClusterView;
  /** Backups in Velero's namespace, as last observed. */
  backups(): readonly BackupInfo[];
  backup(name: string): BackupInfo | undefined;
  /** Those of `backups()` in an in-flight phase, kept as backups change (a review reads only these). */
  inFlight(): readonly BackupInfo[];
  /** Those of `backups()` labelled as runs of this Schedule. */
  runsOf(schedule: string): readonly BackupInfo[];
  /** True once every watch has listed; stays true across watch restarts. */
  synced(): boolean;
  /** Called after each applied change; `kind` says which source changed. */
  onChange(listener: (change: CacheChange) => void): () => void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface CacheChange {
  readonly kind: "Backup" | "Restore" | "Namespace" | "Pod" | "PersistentVolumeClaim" | "PersistentVolume" | "ConfigMap" | "Resync";
  readonly type: "ADDED" | "MODIFIED" | "DELETED" | "RELISTED";
  readonly namespace?: string;
  readonly name?: string;
}

export interface ClusterCacheOptions {
  veleroNamespace: string;
  metrics?: Pick<Metrics, "viewSynced" | "watchRestarts">;
  log: Logger;
  /** Reconnect backoff of every watch. */
  backoff?: BackoffOptions;
  /** Server-side timeout of each watch request, seconds. Default: random in [300, 600). */
  watchTimeoutSeconds?: () => number;
  /** Abort a watch this long past its timeout. Default 30 s. */
  stallGraceMs?: number;
  /** List page size. Default 500. */
  pageSize?: number;
}

export interface ClusterCacheImpl extends ClusterCache {
  /** Resolves once every collection has been listed (rejects if `signal` aborts first). */
  waitForSync(signal?: AbortSignal): Promise<void>;
  /** Per collection: objects held, complete lists, last resourceVersion. */
  stats(): Record<string, { objects: number; lists: number; resourceVersion: string }>;
}

type Kind = Exclude<CacheChange["kind"], "Resync">;

/** What every held kind has: a name, and a namespace unless cluster-scoped. */
interface Named {
  readonly namespace?: string;
  readonly name: string;
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf("/");
  return slash < 0 ? ["", key] : [key.slice(0, slash), key.slice(slash + 1)];
}

export function createClusterCache(kc: KubeAccess, o: ClusterCacheOptions): ClusterCacheImpl {
  const view = new ClusterView();
  view.synced = false;
  o.metrics?.viewSynced.set(0);
  const backups = new BackupIndex();
  const interner = new Interner();
  const listeners = new Set<(change: CacheChange) => void>();
  const syncWaiters = new Set<() => void>();
  let unsynced = 0;
  let started = false;

  const notify = (change: CacheChange) => {
    for (const l of [...listeners]) {
      try {
        l(change);
      } catch (e) {
        o.log.error({ err: e, change }, "cache change listener failed");
      }
    }
  };

  const decoder =
    <K extends ObjectKind>(kind: K, slim: (v: Trimmed<K>) => Trimmed<K>) =>
    (raw: RawObject): Decoded<Trimmed<K>> => {
      raw.kind ??= kind;
      const r = trim(kind, raw);
      return r.ok ? { ok: true, value: slim(r.value) } : { ok: false, error: r.error };
    };

  /**
   * A sink over one collection of the view (get, set, delete and every object held); unchanged
   * updates are dropped, and a deletion of an object not held is not news.
   */
  const sink = <T extends Named>(
    kind: Kind,
    store: {
      get(ns: string, name: string): T | undefined;
      set(value: T): void;
      del(ns: string, name: string): void;
      all(): Iterable<T>;
      same?(a: T, b: T): boolean;
    },
  ): ReflectorSink<T> => ({
    upsert(key, value, type) {
      const [ns, name] = splitKey(key);
      const old = store.get(ns, name);
      if (old !== undefined && (store.same ?? sameValue)(old, value)) return;
      store.set(value);
      if (type) notify({ kind, type, ...(ns ? { namespace: ns } : {}), name });
    },
    remove(key, type) {
      const [ns, name] = splitKey(key);
      if (store.get(ns, name) === undefined) return;
      store.del(ns, name);
      if (type) notify({ kind, type, ...(ns ? { namespace: ns } : {}), name });
    },
    listed(first) {
      if (first && --unsynced === 0) {
        view.synced = true;
        o.metrics?.viewSynced.set(1);
        o.log.info("cluster view synced: every collection listed");
        for (const w of [...syncWaiters]) w();
      }
      notify({ kind: "Resync", type: "RELISTED" });
    },
    *keys() {
      for (const x of store.all()) yield x.namespace ? `${x.namespace}/${x.name}` : x.name;
    },
  });

  const common = {
    kc,
    log: o.log,
    ...(o.metrics ? { metrics: o.metrics } : {}),
    ...(o.backoff ? { backoff: o.backoff } : {}),
    ...(o.watchTimeoutSeconds ? { watchTimeoutSeconds: o.watchTimeoutSeconds } : {}),
    ...(o.stallGraceMs !== undefined ? { stallGraceMs: o.stallGraceMs } : {}),
    ...(o.pageSize ? { pageSize: o.pageSize } : {}),
  };
  const vns = encodeURIComponent(o.veleroNamespace);

  const reflectors = [
    new Reflector<NamespaceInfo>({
      ...common,
      resource: "namespaces",
      path: "/api/v1/namespaces",
      decode: decoder("Namespace", (v) => slimNamespace(v, interner)),
      sink: sink<NamespaceInfo>("Namespace", {
        get: (_, name) => view.namespace(name),
        set: (v) => view.setNamespace(v),
        del: (_, name) => view.deleteNamespace(name),
        all: () => view.namespaces(),
      }),
    }),
    new Reflector<PodInfo>({
      ...common,
      resource: "pods",
      path: "/api/v1/pods",
      decode: decoder("Pod", (v) => slimPod(v, interner, view)),
      sink: sink<PodInfo>("Pod", {
        get: (ns, name) => view.contents(ns).pods.get(name),
        set: (v) => view.setPod(v),
        del: (ns, name) => view.deletePod(ns, name),
        all: () => view.allPods(),
      }),
    }),
    new Reflector<PvcInfo>({
      ...common,
      resource: "persistentvolumeclaims",
      path: "/api/v1/persistentvolumeclaims",
      decode: decoder("PersistentVolumeClaim", (v) => slimPvc(v, interner, view)),
      sink: sink<PvcInfo>("PersistentVolumeClaim", {
        get: (ns, name) => view.contents(ns).pvcs.get(name),
        set: (v) => view.setPvc(v),
        del: (ns, name) => view.deletePvc(ns, name),
        all: () => view.allPvcs(),
      }),
    }),
    new Reflector<PvInfo>({
      ...common,
      resource: "persistentvolumes",
      path: "/api/v1/persistentvolumes",
      decode: decoder("PersistentVolume", (v) => slimPv(v, interner, view)),
      sink: sink<PvInfo>("PersistentVolume", {
        get: (_, name) => view.pv(name),
        set: (v) => view.setPv(v),
        del: (_, name) => view.deletePv(name),
        all: () => view.pvs(),
      }),
    }),
    new Reflector<ConfigMapInfo>({
      ...common,
      resource: "configmaps",
      path: `/api/v1/namespaces/${vns}/configmaps`,
      decode: decoder("ConfigMap", (v) => v),
      sink: sink<ConfigMapInfo>("ConfigMap", {
        get: (ns, name) => view.configMap(ns, name),
        set: (v) => view.setConfigMap(v),
        del: (ns, name) => view.deleteConfigMap(ns, name),
        all: () => view.configMaps(),
        same: (a, b) => sameValue(a.data, b.data),
      }),
    }),
    new Reflector<BackupInfo>({
      ...common,
      resource: "backups",
      path: `/apis/velero.io/v1/namespaces/${vns}/backups`,
      decode: decoder("Backup", withSpecHash),
      sink: sink<BackupInfo>("Backup", {
        get: (ns, name) => backups.get(ns, name),
        set: (v) => backups.set(v),
        del: (ns, name) => backups.delete(ns, name),
        all: () => backups.all(),
        // Every new resourceVersion of a Backup matters to the controller (optimistic writes).
        same: (a, b) => a.resourceVersion === b.resourceVersion,
      }),
    }),
    new Reflector<RestoreInfo>({
      ...common,
      resource: "restores",
      path: `/apis/velero.io/v1/namespaces/${vns}/restores`,
      decode: decoder("Restore", (v) => v),
      sink: sink<RestoreInfo>("Restore", {
        get: (ns, name) => view.restore(ns, name),
        set: (v) => view.setRestore(v),
        del: (ns, name) => view.deleteRestore(ns, name),
        all: () => view.restores(),
      }),
    }),
  ];
  unsynced = reflectors.length;

  return {
    view,
    backups: () => backups.all(),
    backup: (name) => backups.get(o.veleroNamespace, name),
    inFlight: () => backups.inFlight(),
    runsOf: (schedule) => backups.runsOf(schedule),
    synced: () => view.synced,
    onChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    async start() {
      if (started) return;
      started = true;
      for (const r of reflectors) r.start();
    },
    async stop() {
      await Promise.all(reflectors.map((r) => r.stop()));
    },
    waitForSync(signal) {
      if (view.synced) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const done = () => {
          syncWaiters.delete(done);
          signal?.removeEventListener("abort", aborted);
          resolve();
        };
        const aborted = () => {
          syncWaiters.delete(done);
          reject(signal?.reason ?? new Error("aborted"));
        };
        syncWaiters.add(done);
        signal?.addEventListener("abort", aborted, { once: true });
      });
    },
    stats() {
      return Object.fromEntries(reflectors.map((r) => [r.resource, { objects: r.size, lists: r.lists, resourceVersion: r.resourceVersion }]));
    },
  };
}
