import { setFlagsFromString } from "node:v8";

// An admission candidate's scope is garbage a millisecond later, yet V8's allocation-site
// pretenuring put it in the old generation, whose mark-compacts stalled reviews under the heap
// cap (docs/performance.md, "Pretenuring"). NODE_OPTIONS refuses this flag: set it before
// anything is built.

/** Turns off V8's allocation-site pretenuring for `backup-gate serve`. */
export function disablePretenuring(): void {
  setFlagsFromString("--no-allocation-site-pretenuring");
}
