import { globMatcher, listMatcher } from "./glob.js";
import { usesOldResourceFilters, type BackupSpec } from "./backupSpec.js";

// Velero resolves resource names through API discovery to group-resource strings. The core
// has no discovery, so it knows the built-in names the rules hinge on and keeps any other
// name as written (Velero does the same with a name discovery cannot resolve).
const ALIASES: Readonly<Record<string, string>> = {
  po: "pods",
  pod: "pods",
  pods: "pods",
  pvc: "persistentvolumeclaims",
  persistentvolumeclaim: "persistentvolumeclaims",
  persistentvolumeclaims: "persistentvolumeclaims",
  pv: "persistentvolumes",
  persistentvolume: "persistentvolumes",
  persistentvolumes: "persistentvolumes",
  ns: "namespaces",
  namespace: "namespaces",
  namespaces: "namespaces",
  cm: "configmaps",
  configmap: "configmaps",
  configmaps: "configmaps",
  sa: "serviceaccounts",
  serviceaccount: "serviceaccounts",
  serviceaccounts: "serviceaccounts",
  deploy: "deployments.apps",
  deployment: "deployments.apps",
  deployments: "deployments.apps",
  sts: "statefulsets.apps",
  statefulset: "statefulsets.apps",
  statefulsets: "statefulsets.apps",
};

const CLUSTER_SCOPED: ReadonlySet<string> = new Set([
  "persistentvolumes",
  "namespaces",
  "nodes",
  "storageclasses.storage.k8s.io",
  "clusterroles.rbac.authorization.k8s.io",
  "clusterrolebindings.rbac.authorization.k8s.io",
  "customresourcedefinitions.apiextensions.k8s.io",
  "priorityclasses.scheduling.k8s.io",
  "volumesnapshotcontents.snapshot.storage.k8s.io",
  "volumesnapshotclasses.snapshot.storage.k8s.io",
  "csidrivers.storage.k8s.io",
  "csinodes.storage.k8s.io",
  "volumeattachments.storage.k8s.io",
  "mutatingwebhookconfigurations.admissionregistration.k8s.io",
  "validatingwebhookconfigurations.admissionregistration.k8s.io",
  "apiservices.apiregistration.k8s.io",
  "priorityclasses",
  "storageclasses",
  "clusterroles",
  "clusterrolebindings",
]);

export function canonicalResource(name: string): string {
  const lower = name.toLowerCase();
  return ALIASES[lower] ?? lower;
}

export function isClusterScoped(resource: string): boolean {
  return CLUSTER_SCOPED.has(canonicalResource(resource));
}

/** Velero's IncludesExcludesInterface: what is collected directly, and what is kept out even as a related item. */
export interface ResourceFilter {
  shouldInclude(resource: string): boolean;
  shouldExclude(resource: string): boolean;
}

class PatternList {
  private readonly items: readonly string[];
  private readonly matchers: ReadonlyArray<(s: string) => boolean>;
  constructor(items: readonly string[]) {
    this.items = items.map((i) => (i === "*" ? i : canonicalResource(i)));
    this.matchers = this.items.map(globMatcher);
  }
  get empty(): boolean {
    return this.items.length === 0;
  }
  get star(): boolean {
    return this.items.includes("*");
  }
  match(resource: string): boolean {
    return this.matchers.some((m) => m(resource));
  }
  /** Velero's IncludesExcludes.ShouldInclude when this list holds the includes. */
  admits(resource: string): boolean {
    return this.empty || this.star || this.match(resource);
  }
}

/** The resource filter of a backup, old style (GlobalIncludesExcludes) or new style (ScopeIncludesExcludes). */
export function resourceFilter(spec: BackupSpec, namespacesIncludeEverything: boolean): ResourceFilter {
  return usesOldResourceFilters(spec) ? oldStyle(spec, namespacesIncludeEverything) : newStyle(spec);
}

function oldStyle(spec: BackupSpec, namespacesIncludeEverything: boolean): ResourceFilter {
  const includes = new PatternList(spec.includedResources);
  const excludes = new PatternList(spec.excludedResources.filter((e) => e !== "*"));
  const icr = spec.includeClusterResources;
  const filterIncludes = (r: string) => !excludes.match(r) && includes.admits(r);
  return {
    shouldInclude(resource) {
      const r = canonicalResource(resource);
      if (isClusterScoped(r)) {
        if (icr === false) return false;
        if (r !== "namespaces" && icr === undefined && !namespacesIncludeEverything) return false;
      }
      return filterIncludes(r);
    },
    shouldExclude(resource) {
      const r = canonicalResource(resource);
      if (excludes.match(r)) return true;
      if (isClusterScoped(r)) return icr === false || (icr === undefined && !filterIncludes(r));
      return false;
    },
  };
}

// Velero always adds volumesnapshotcontents to the cluster-scoped excludes, so the branch of
// ScopeIncludesExcludes that would collect every cluster-scoped type when nothing is listed
// never fires: a new-style backup collects a cluster-scoped type directly only when it lists it.
function newStyle(spec: BackupSpec): ResourceFilter {
  const nsIncludes = new PatternList(spec.includedNamespaceScopedResources);
  const nsExcludes = new PatternList(spec.excludedNamespaceScopedResources);
  const clIncludes = new PatternList(spec.includedClusterScopedResources);
  const clExcludes = new PatternList(spec.excludedClusterScopedResources);
  return {
    shouldInclude(resource) {
      const r = canonicalResource(resource);
      if (!isClusterScoped(r)) return !nsExcludes.star && !nsExcludes.match(r) && nsIncludes.admits(r);
      if (clExcludes.star || clExcludes.match(r)) return false;
      return clIncludes.star || clIncludes.match(r) || r === "namespaces";
    },
    shouldExclude(resource) {
      const r = canonicalResource(resource);
      return isClusterScoped(r) ? clExcludes.match(r) : nsExcludes.match(r);
    },
  };
}

/** A plain include/exclude list of resources, as hooks use. */
export function resourceList(includes: readonly string[], excludes: readonly string[]): (resource: string) => boolean {
  const inc = new PatternList(includes);
  const exc = new PatternList(excludes.filter((e) => e !== "*"));
  return (resource) => {
    const r = canonicalResource(resource);
    return !exc.match(r) && inc.admits(r);
  };
}

/** A plain include/exclude list of namespaces with globs, as hooks use (no expansion). */
export function namespaceList(includes: readonly string[], excludes: readonly string[]): (namespace: string) => boolean {
  const included = listMatcher(includes);
  const excluded = listMatcher(excludes);
  const all = includes.length === 0 || includes.includes("*");
  return (ns) => !excluded(ns) && (all || included(ns));
}
