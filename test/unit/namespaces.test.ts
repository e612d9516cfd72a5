import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { resolveNamespaces } from "../../src/core/velero/namespaces.js";
import { globMatcher, namespacePatternError } from "../../src/core/velero/glob.js";

// resolveNamespaces looks each literal name up in the sorted namespace list instead of matching
// every namespace (src/core/velero/namespaces.ts, `named`): the same answer as Velero's
// definition, every namespace tested against the include and exclude lists.

// Velero's definition as the gate wrote it before the lookup: expand the patterns against the
// existing namespaces, then test every namespace against both lists.
function byDefinition(includes: readonly string[], excludes: readonly string[], existing: readonly string[]) {
  const wild = (p: string) => /[*?[{]/.test(p);
  const expand = (list: readonly string[]) => [...new Set(list.flatMap((p) => (wild(p) ? existing.filter((ns) => globMatcher(p)(ns)) : [p])))];
  let [inc, exc] = [includes, excludes];
  if (includes.length > 0 && [...includes, ...excludes].some(wild)) {
    const error = [...includes, ...excludes].map((p) => [p, namespacePatternError(p)]).find(([, e]) => e);
    if (error) return { ok: false, error: `${error[0]}: ${error[1]}` };
    [inc, exc] = [expand(includes), expand(excludes)];
    if (inc.length === 0) return { ok: true, namespaces: [] };
  }
  const matches = (list: readonly string[], ns: string) => list.some((p) => globMatcher(p)(ns));
  const all = inc.length === 0 || inc.includes("*");
  return { ok: true, namespaces: existing.filter((ns) => !matches(exc, ns) && (all || matches(inc, ns))) };
}

const name = fc.constantFrom("a", "b", "c", "ab", "team-1", "team-2", "team-10", "a-b", "Z");
const pattern = fc.oneof(name, fc.constantFrom("*", "team-*", "a?", "[ab]", "team-1?"));
const existing = fc.uniqueArray(name, { maxLength: 9 }).map((xs) => [...xs].sort());

describe("resolveNamespaces", () => {
  it("literal lists: the existing namespaces named and not excluded, in order (property)", () => {
    fc.assert(
      fc.property(fc.array(name, { minLength: 1, maxLength: 6 }), fc.array(name, { maxLength: 4 }), existing, (inc, exc, ex) => {
        const got = resolveNamespaces(inc, exc, ex);
        expect(got).toEqual({ ok: true, namespaces: ex.filter((ns) => inc.includes(ns) && !exc.includes(ns)) });
      }),
      { numRuns: 2000 },
    );
  });

  it("any lists: as Velero's definition (property)", () => {
    fc.assert(
      fc.property(fc.array(pattern, { maxLength: 5 }), fc.array(pattern, { maxLength: 3 }), existing, (inc, exc, ex) => {
        expect(resolveNamespaces(inc, exc, ex)).toEqual(byDefinition(inc, exc, ex));
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    { includes: ["b", "a", "b", "zz"], excludes: [], namespaces: ["a", "b"] },
    { includes: ["b", "a"], excludes: ["a"], namespaces: ["b"] },
    { includes: [], excludes: ["a"], namespaces: ["b", "c"] },
    { includes: ["*"], excludes: ["c"], namespaces: ["a", "b"] },
    { includes: ["x*"], excludes: [], namespaces: [] },
  ])("$includes minus $excludes in [a, b, c]: $namespaces", ({ includes, excludes, namespaces }) => {
    expect(resolveNamespaces(includes, excludes, ["a", "b", "c"])).toEqual({ ok: true, namespaces });
  });
});
