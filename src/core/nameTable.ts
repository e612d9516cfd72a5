// One namespace's pods (or claims) by name, kept as one array in name order. A Map's hash table
// costs about 37 B an entry and an array slot 8 (12-15 with its growth room): at 100k pods + 100k
// claims that is 4 MiB of `serve`'s heap (docs/performance.md, "Tables in name order"). Lookups
// are a binary search; the lists arrive from the API server in name order, so a first list only
// appends. Hand-written rather than a sorted-map library: those keep keys and values apart (a
// B-tree's two arrays per leaf), and here the key is the item's own name.

export interface Named {
  readonly name: string;
}

export class NameTable<T extends Named> {
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  get(name: string): T | undefined {
    const at = this.#find(name);
    return at >= 0 ? this.#items[at] : undefined;
  }

  /** The item's place in name order, or -1 when the table does not hold it. */
  indexOf(name: string): number {
    const at = this.#find(name);
    return at >= 0 ? at : -1;
  }

  has(name: string): boolean {
    return this.#find(name) >= 0;
  }

  /** Adds the item, or replaces the one of the same name. */
  set(item: T): void {
    const at = this.#find(item.name);
    if (at >= 0) this.#items[at] = item;
    else if (~at === this.#items.length) this.#items.push(item);
    else this.#items.splice(~at, 0, item);
  }

  /** Removes the item named; false when there was none. */
  delete(name: string): boolean {
    const at = this.#find(name);
    if (at < 0) return false;
    this.#items.splice(at, 1);
    return true;
  }

  /** The items in name order. Unlike a Map's, not to be changed while iterated: a splice shifts the items under it. */
  values(): IterableIterator<T> {
    return this.#items.values();
  }

  *keys(): IterableIterator<string> {
    for (const item of this.#items) yield item.name;
  }

  /** The items in name order, as a copy (the table changes in place). */
  toArray(): T[] {
    return this.#items.slice();
  }

  /** `positionOf` in the table, with an append's answer found first. */
  #find(name: string): number {
    const items = this.#items;
    // The common case of a list in name order: after the last item.
    if (items.length === 0 || (items[items.length - 1] as T).name < name) return ~items.length;
    return positionOf(items, name);
  }
}

/** The index of the item named in `items` (in name order), or the bitwise complement of where it would go. */
export function positionOf(items: readonly Named[], name: string): number {
  let [low, high] = [0, items.length - 1];
  while (low <= high) {
    const mid = (low + high) >>> 1;
    const at = (items[mid] as Named).name;
    if (at === name) return mid;
    if (at < name) low = mid + 1;
    else high = mid - 1;
  }
  return ~low;
}
