import { describe, expect, it } from "vitest";
import { lastJsonOf } from "../support/childJson.js";

// The cache slims a pod's claim name, a claim's volume name and a volume's claim name to the
// string the view already holds for that object (src/cluster/slim.ts, `Held`): at 100k pods with
// a claim each, the second copy of every claim name was 3 MiB of heap. Strings have no identity a
// test can see, so a process of its own counts them in a heap snapshot.
const N = 200;

function copies(held: "held" | "none", order: string): { claimNames: number; volumeNames: number; held: number[] } {
  return lastJsonOf("test/support/heapCopies/child.ts", [String(N), held, order]);
}

describe(`copies of ${N} claim names and ${N} volume names, with a volume, a claim and a pod each`, () => {
  it.each([
    { held: "held", order: "pvs,claims,pods", claimNames: N, volumeNames: N },
    { held: "held", order: "claims,pvs,pods", claimNames: N, volumeNames: N },
    // A claim arriving after its pods cannot take their string (the view has no index from a
    // claim to its pods while it fills): the pods keep a copy of their own.
    { held: "held", order: "pods,claims,pvs", claimNames: 2 * N, volumeNames: N },
    // Control: without the view's strings, every object holds its own copy.
    { held: "none", order: "pvs,claims,pods", claimNames: 3 * N, volumeNames: 2 * N },
  ] as const)("$held, $order: $claimNames claim names, $volumeNames volume names", ({ held, order, claimNames, volumeNames }) => {
    expect(copies(held, order)).toEqual({ claimNames, volumeNames, held: [N, N, N] });
  });
});
