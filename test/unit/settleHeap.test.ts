import { getHeapStatistics } from "node:v8";
import { describe, expect, it } from "vitest";
import { settleHeap } from "../../src/cli/v8Flags.js";

// serve collects the whole heap once the first admission index is built (src/cli/v8Flags.ts), so
// that the first burst of reviews does not pay the mark-compact the start deferred.

const MiB = 2 ** 20;

describe("settleHeap", () => {
  it("collects what the start left behind, without --expose-gc", () => {
    let garbage: number[][] | undefined = Array.from({ length: 400 }, (_, i) => Array.from({ length: 10_000 }, (_, k) => i + k + 0.5));
    const held = getHeapStatistics().used_heap_size;
    garbage = undefined;
    // Control: dropping the reference frees nothing until a collection runs.
    expect(getHeapStatistics().used_heap_size).toBeGreaterThanOrEqual(held);
    settleHeap();
    expect(held - getHeapStatistics().used_heap_size).toBeGreaterThan(25 * MiB);
    expect(garbage).toBeUndefined();
  });
});
