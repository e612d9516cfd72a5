import picomatch from "picomatch";

// Velero matches namespace and resource patterns with gobwas/glob and no separators: `*` and
// `?` cross every character, `[...]` and `[!...]` are classes, `{a,b}` are alternatives.
// picomatch with path handling switched off behaves the same on names that hold no `/`,
// which Kubernetes names never do.
const OPTIONS: picomatch.PicomatchOptions = {
  dot: true,
  nonegate: true,
  noextglob: true,
  noglobstar: true,
  strictBrackets: true,
  posix: true,
};

/** A matcher for one pattern; a pattern that does not compile matches nothing, as in Velero. */
export function globMatcher(pattern: string): (name: string) => boolean {
  if (!hasWildcard(pattern)) return (name: string) => name === pattern;
  try {
    return picomatch(pattern, OPTIONS);
  } catch {
    return () => false;
  }
}

/**
 * One matcher for a list: literal names through a Set, patterns one by one. A list of N
 * names against M candidates costs N + M, not N * M (a spec may list thousands of names).
 */
export function listMatcher(patterns: readonly string[]): (name: string) => boolean {
  const literal = new Set<string>();
  const globs: ((name: string) => boolean)[] = [];
  for (const p of patterns) {
    if (hasWildcard(p)) globs.push(globMatcher(p));
    else literal.add(p);
  }
  return globs.length === 0 ? (name) => literal.has(name) : (name) => literal.has(name) || globs.some((m) => m(name));
}

export function hasWildcard(pattern: string): boolean {
  return /[*?[{]/.test(pattern);
}

/** Why a namespace pattern is refused, in Velero's words, or undefined when it is usable. */
export function namespacePatternError(pattern: string): string | undefined {
  if (/[|()!{},]/.test(pattern)) return "wildcard pattern contains unsupported characters: |, (, ), !, {, }, ,";
  if (pattern.includes("**")) return "wildcard pattern contains consecutive asterisks (only single * allowed)";
  const bracketError = bracketProblem(pattern);
  if (bracketError) return bracketError;
  if (pattern === "") return undefined;
  const literal = pattern.replace(/[*?[\]]/g, "x");
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(literal) || literal.length > 63) {
    return `invalid namespace "${pattern}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character`;
  }
  return undefined;
}

function bracketProblem(pattern: string): string | undefined {
  let open = -1;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "[" && open < 0) open = i;
    else if (c === "]") {
      if (open < 0) return "wildcard pattern contains unmatched closing bracket ']'";
      if (i === open + 1) return "wildcard pattern contains empty bracket pattern '[]'";
      open = -1;
    }
  }
  return open >= 0 ? "wildcard pattern contains unclosed bracket '['" : undefined;
}
