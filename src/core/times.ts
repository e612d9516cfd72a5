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
}
