// Lookups over a scope's namespace lists, built once per list: heads share their lists across
// plans, so comparing a short list with a long one, or finding a namespace's place in a backup
// of every namespace, costs the short side, not the list.

const sets = new WeakMap<readonly string[], ReadonlySet<string>>();
export function setOf(list: readonly string[]): ReadonlySet<string> {
  let set = sets.get(list);
  if (!set) {
    set = new Set(list);
    sets.set(list, set);
  }
  return set;
}

const orders = new WeakMap<readonly string[], ReadonlyMap<string, number>>();
/** Each item's index in `list`. */
export function positions(list: readonly string[]): ReadonlyMap<string, number> {
  let at = orders.get(list);
  if (!at) {
    at = new Map(list.map((k, i) => [k, i]));
    orders.set(list, at);
  }
  return at;
}
