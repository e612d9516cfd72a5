import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

// An admission candidate's scope is garbage a millisecond later, yet V8's allocation-site
// pretenuring put it in the old generation, whose mark-compacts stalled reviews under the heap
// cap (docs/performance.md, "Pretenuring"). NODE_OPTIONS refuses this flag: set it before
// anything is built.

/** Turns off V8's allocation-site pretenuring for `backup-gate serve`. */
export function disablePretenuring(): void {
  setFlagsFromString("--no-allocation-site-pretenuring");
}

// The cache's first sync and the admission index build most of the heap in a few seconds,
// while V8 sets the old generation's next limit from a heap still growing: the first burst of
// reviews then pays the mark-compact the start deferred (about 140 ms of marking at 50k pods,
// which held reviews up to 70 ms). One full collection once the index is built sets that limit
// from what is live: the next mark-compact waits for what reviews leave behind, or for V8's
// memory reducer (docs/performance.md, "The admission tail at 1,000/s").

/** Collects the whole heap once, before the webhook takes its first burst. */
export function settleHeap(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

// Optimized code holds the maps (hidden classes) of the objects it was compiled for weakly, and
// V8 keeps a map that no live object uses through two mark-compacts only. A review's objects
// live a millisecond, so a quiet period with a few collections (watch events still allocate)
// threw the webhook's compiled code away, and the next burst ran on cold code (docs/performance.md,
// "A burst after a quiet minute"). Only maps some optimized code embeds are kept, and only while
// their constructor lives. V8's memory reducer ignores this count: the image's node command line
// turns it off (Dockerfile).

/** Keeps the maps that optimized code embeds through the collections of a quiet period. */
export function keepOptimizedCode(): void {
  setFlagsFromString("--retain-maps-for-n-gc=1000000");
}
