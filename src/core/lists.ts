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

  /**
   * The index of `item` (-1 when absent). A short list is scanned: most backups name one
   * namespace, and a Map for each would cost more than it saves.
   */
  indexOf(item: string): number {
    if (this.list.length <= SCANNED) return this.list.indexOf(item);
    return this.positions.get(item) ?? -1;
  }
}

const SCANNED = 8;
