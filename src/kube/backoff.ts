// Reconnect delays for the watches: jittered exponential backoff, capped, and reset once a
// connection has stayed healthy for a while (so one blip after a day of calm waits the
// initial delay again, while a flapping server is not hammered).

export interface BackoffOptions {
  /** First delay, in ms. Default 500. */
  initialMs?: number;
  /** Largest delay, in ms. Default 30 000. */
  maxMs?: number;
  /** Growth per consecutive failure. Default 2. */
  factor?: number;
  /** Fraction of each delay that is random, 0..1: the delay is d * (1 - jitter * r). Default 0.5. */
  jitter?: number;
  /** A connection healthy at least this long resets the sequence. Default 60 000. */
  resetAfterMs?: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly resetAfterMs: number;
  private readonly random: () => number;
  /** Consecutive failures since the last reset. */
  private attempt = 0;
  private healthySince: number | undefined;

  constructor(o: BackoffOptions = {}) {
    this.initialMs = o.initialMs ?? 500;
    this.maxMs = o.maxMs ?? 30_000;
    this.factor = o.factor ?? 2;
    this.jitter = Math.min(1, Math.max(0, o.jitter ?? 0.5));
    this.resetAfterMs = o.resetAfterMs ?? 60_000;
    this.random = o.random ?? Math.random;
    if (!(this.initialMs > 0) || !(this.maxMs >= this.initialMs) || !(this.factor >= 1)) {
      throw new Error(`invalid backoff: initialMs ${this.initialMs}, maxMs ${this.maxMs}, factor ${this.factor}`);
    }
  }

  /** Consecutive failures counted so far. */
  get failures(): number {
    return this.attempt;
  }

  /** The connection is up (a watch was accepted, or a list succeeded) as of `now`. */
  healthy(now: number): void {
    this.healthySince ??= now;
  }

  /**
   * A failure at `now`: returns how long to wait before the next try. A connection that had
   * been healthy for `resetAfterMs` first resets the sequence.
   */
  failure(now: number): number {
    if (this.healthySince !== undefined && now - this.healthySince >= this.resetAfterMs) this.attempt = 0;
    this.healthySince = undefined;
    const base = Math.min(this.maxMs, this.initialMs * Math.pow(this.factor, this.attempt));
    this.attempt++;
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  reset(): void {
    this.attempt = 0;
    this.healthySince = undefined;
  }
}
