import { inspect } from "node:util";
import { assertChildrenAlive } from "./proc.js";

export interface WaitOptions {
  /** Give up after this long (required in spirit: every wait has a timeout). Default 30 s. */
  timeoutMs?: number;
  /** Poll interval. Default 200 ms. */
  intervalMs?: number;
}

export class WaitTimeoutError extends Error {
  override name = "WaitTimeoutError";
}

/**
 * Polls `fn` until it returns a value other than `undefined`, `null` or `false`,
 * and returns that value. Throws after `timeoutMs` with a message naming what it
 * waited for and the last value or error seen. If a process started by the
 * harness dies meanwhile, throws at once with that process's last log lines.
 */
export async function waitFor<T>(description: string, fn: () => T | Promise<T>, opts: WaitOptions = {}): Promise<Exclude<T, undefined | null | false>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 200;
  const deadline = Date.now() + timeoutMs;
  let last: unknown = undefined;
  let lastErr: unknown = undefined;
  for (;;) {
    assertChildrenAlive();
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v as Exclude<T, undefined | null | false>;
      last = v;
      lastErr = undefined;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const detail =
        lastErr !== undefined ? `; last error: ${lastErr instanceof Error ? lastErr.message : inspect(lastErr)}` : `; last value: ${JSON.stringify(last)}`;
      throw new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${description}${detail}`);
    }
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Asserts that `fn` keeps returning true for `durationMs` (polled every
 * `intervalMs`): for facts that are only observable as "nothing happened",
 * e.g. a controller ignoring an object. Throws at the first false, naming it.
 */
export async function expectStays(description: string, fn: () => boolean | Promise<boolean>, durationMs: number, intervalMs = 250): Promise<void> {
  const end = Date.now() + durationMs;
  for (;;) {
    assertChildrenAlive();
    if (!(await fn())) throw new Error(`expected ${description} to hold for ${durationMs} ms, but it stopped holding`);
    if (Date.now() >= end) return;
    await sleep(Math.min(intervalMs, end - Date.now()));
  }
}
