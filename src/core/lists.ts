// Lookups over one list of names, built on first use and kept by whoever holds the list (a
// scope, a scope-cache entry): heads share their lists across plans, so comparing a short list
// with a long one, or finding a namespace's place in a backup of every namespace, costs the
// short side, not the list.
export class ListLookup {
  #set: ReadonlySet<string> | undefined;
  #positions: ReadonlyMap<string, number> | undefined;

  constructor(readonly list: readonly string[]) {}

  get set(): ReadonlySet<string> {
    return (this.#set ??= new Set(this.list));
  }

  /** Each item's index in the list. */
  get positions(): ReadonlyMap<string, number> {
    return (this.#positions ??= new Map(this.list.map((k, i) => [k, i])));
  }
}
