import { describe, expect, it } from "vitest";
import { Backoff } from "../../src/kube/backoff.js";

describe("Backoff", () => {
  const fixed = (r: number) => () => r;

  it("doubles from the initial delay up to the cap", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1_000, jitter: 0, random: fixed(0.5) });
    const delays = Array.from({ length: 7 }, (_, i) => b.failure(i));
    expect(delays).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000]);
    expect(b.failures).toBe(7);
  });

  it("jitters each delay down by at most the jitter fraction", () => {
    expect(new Backoff({ initialMs: 1_000, jitter: 0.5, random: fixed(0) }).failure(0)).toBe(1_000);
    expect(new Backoff({ initialMs: 1_000, jitter: 0.5, random: fixed(0.99) }).failure(0)).toBe(505);
    const b = new Backoff({ initialMs: 100, maxMs: 10_000 });
    for (let i = 0; i < 200; i++) {
      const base = Math.min(10_000, 100 * 2 ** i);
      const d = b.failure(0);
      expect(d).toBeGreaterThanOrEqual(base / 2);
      expect(d).toBeLessThanOrEqual(base);
    }
  });

  it("resets after a connection stayed healthy long enough, not before", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 10_000, jitter: 0, resetAfterMs: 60_000 });
    b.failure(0);
    b.failure(0);
    b.failure(0); // 100, 200, 400
    b.healthy(1_000);
    expect(b.failure(30_000)).toBe(800); // healthy for 29 s only: keeps growing
    b.healthy(40_000);
    b.healthy(50_000); // the first healthy instant counts
    expect(b.failure(100_000)).toBe(100); // healthy for 60 s: back to the start
    expect(b.failure(100_001)).toBe(200);
  });

  it("refuses nonsense settings", () => {
    expect(() => new Backoff({ initialMs: 0 })).toThrow(/invalid backoff/);
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow(/invalid backoff/);
    expect(() => new Backoff({ factor: 0.5 })).toThrow(/invalid backoff/);
  });
});
