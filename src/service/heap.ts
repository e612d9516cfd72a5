import { setFlagsFromString } from "node:v8";

// V8 allocates straight into the old generation at every allocation site whose objects it has
// seen survive (pretenuring), and here it kept that choice for as long as the process ran. The
// gate builds thousands of long-lived scopes with the same code that later judges each admission
// candidate, whose scope is garbage a millisecond later: with pretenuring, every candidate's
// scope went to the old generation, which only a mark-compact collects. Under the Deployment's
// heap cap (--max-old-space-size=256) with 10,000 backups and 50,000 pods in view, that was a
// mark-compact every ten seconds or so at 200 reviews a second, and its marking steps stalled the
// reviews behind them: p99 33 ms, against 2.6 ms without (bench/admission.bench.ts, PRETENURE=1
// for the former). NODE_OPTIONS refuses this V8 flag, so the process sets it itself, before it
// builds anything.

/** Sets the V8 flags `backup-gate serve` runs with. */
export function tuneHeap(): void {
  setFlagsFromString("--no-allocation-site-pretenuring");
}
