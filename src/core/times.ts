/**
 * Creation timestamps, each string parsed once. Plans and admission rebuilds sort the same
 * thousands of backups again and again, so whoever keeps scopes across them keeps one of these.
 */
export class Timestamps {
  readonly #parsed = new Map<string, number>();

  /** Milliseconds since the epoch; NaN when the timestamp does not parse. */
  parse(timestamp: string): number {
    let t = this.#parsed.get(timestamp);
    if (t === undefined) {
      t = Date.parse(timestamp);
      if (this.#parsed.size > 100_000) this.#parsed.clear();
      this.#parsed.set(timestamp, t);
    }
    return t;
  }

  /**
   * These timestamps and `timestamp`, parsed but not kept: an admission candidate is stamped
   * with the time of its review, a new string every time, which would fill the table.
   */
  besides(timestamp: string): Timestamps {
    return new Besides(this, timestamp);
  }

  /** How many timestamps are kept. */
  get size(): number {
    return this.#parsed.size;
  }
}

class Besides extends Timestamps {
  readonly #kept: Timestamps;
  readonly #timestamp: string;
  readonly #at: number;

  constructor(kept: Timestamps, timestamp: string) {
    super();
    this.#kept = kept;
    this.#timestamp = timestamp;
    this.#at = Date.parse(timestamp);
  }

  override parse(timestamp: string): number {
    return timestamp === this.#timestamp ? this.#at : this.#kept.parse(timestamp);
  }
}
