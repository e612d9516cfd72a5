import { globMatcher, hasWildcard, listMatcher, namespacePatternError } from "./glob.js";
import { listErrors, type SpecError } from "./backupSpec.js";

// How Velero turns includedNamespaces/excludedNamespaces into the namespaces a backup covers
// (pkg/util/collections NamespaceIncludesExcludes.ResolveNamespaceList with wildcard expansion).

export type NamespaceResolution = { ok: true; namespaces: string[] } | { ok: false; error: string };

/**
 * Resolves namespace lists against the existing namespaces (sorted names). Patterns expand
 * when the include list is not empty and some entry holds `*`, `?` or `[`; a pattern list
 * that matches nothing then covers nothing, not everything.
 */
export function resolveNamespaces(
  includes: readonly string[],
  excludes: readonly string[],
  existing: readonly string[],
): NamespaceResolution {
  let inc = includes;
  let exc = excludes;
  let expanded = false;
  if (includes.length > 0 && [...includes, ...excludes].some(hasWildcard)) {
    for (const pattern of [...includes, ...excludes]) {
      const error = namespacePatternError(pattern);
      if (error) return { ok: false, error: `${pattern}: ${error}` };
    }
    inc = expand(includes, existing);
    exc = expand(excludes, existing);
    expanded = true;
  }
  if (expanded && inc.length === 0) return { ok: true, namespaces: [] };
  if (inc.length > 0 && !inc.includes("*")) return { ok: true, namespaces: named(inc, exc, existing) };
  const excluded = listMatcher(exc);
  return { ok: true, namespaces: existing.filter((ns) => !excluded(ns)) };
}

/**
 * The namespaces of `existing` (sorted) named in `includes` and not in `excludes` (all literal
 * here), in order. Each name is looked up rather than every namespace matched: an admission
 * review resolves each new spec's lists, and with thousands of namespaces the scan was the slow
 * part of a review's first sight of a spec.
 */
function named(includes: readonly string[], excludes: readonly string[], existing: readonly string[]): string[] {
  const excluded = new Set(excludes);
  const found = new Set<string>();
  for (const ns of includes) if (!excluded.has(ns) && isIn(existing, ns)) found.add(ns);
  return [...found].sort();
}

/** Binary search: `sorted` is in Array.prototype.sort's order, which is that of `<` on strings. */
function isIn(sorted: readonly string[], name: string): boolean {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as string) < name) lo = mid + 1;
    else hi = mid;
  }
  return sorted[lo] === name;
}

function expand(patterns: readonly string[], existing: readonly string[]): string[] {
  const out = new Set<string>();
  for (const pattern of patterns) {
    if (!hasWildcard(pattern)) {
      out.add(pattern);
      continue;
    }
    const match = globMatcher(pattern);
    for (const ns of existing) if (match(ns)) out.add(ns);
  }
  return [...out];
}

/**
 * The namespace set Velero's own queue compares (backup_queue_controller namespacesForBackup):
 * the spec's lists as written, against every namespace; invalid lists count as no namespace.
 * Namespace-level conflicts use exactly this set so that they agree with Velero case for case.
 */
export function veleroQueueNamespaces(includes: readonly string[], excludes: readonly string[], existing: readonly string[]): string[] {
  const resolved = resolveNamespaces(includes, excludes, existing);
  return resolved.ok ? resolved.namespaces : [];
}

/**
 * The namespaces the backup controller will back up: empty includes mean `*`, namespaces
 * labelled velero.io/exclude-from-backup=true join the excludes, and the lists are then
 * validated as Velero does, so an invalid list is a FailedValidation prediction.
 */
export function backupNamespaces(
  includes: readonly string[],
  excludes: readonly string[],
  existing: readonly string[],
  labelledExcluded: readonly string[],
): { ok: true; namespaces: string[] } | { ok: false; errors: SpecError[] } {
  const inc = includes.length === 0 ? ["*"] : includes;
  const errors = listErrors("spec.includedNamespaces", "spec.excludedNamespaces", inc, excludes, false);
  const incSet = new Set(inc);
  const excSet = new Set(excludes);
  for (const ns of labelledExcluded) {
    if (incSet.has(ns) && !excSet.has(ns)) {
      errors.push({
        field: "spec.includedNamespaces",
        message: `${ns} is labelled velero.io/exclude-from-backup=true, so Velero excludes it and refuses to include it as well`,
      });
    }
  }
  for (const [field, list] of [
    ["spec.includedNamespaces", includes],
    ["spec.excludedNamespaces", excludes],
  ] as const) {
    list.forEach((pattern, i) => {
      const error = namespacePatternError(pattern);
      if (error) errors.push({ field: `${field}[${i}]`, message: error });
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  const resolved = resolveNamespaces(inc, [...excludes, ...labelledExcluded], existing);
  return resolved.ok ? resolved : { ok: false, errors: [{ field: "spec.includedNamespaces", message: resolved.error }] };
}
