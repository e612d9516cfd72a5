import { describe, expect, it } from "vitest";
import { lastJsonOf } from "../support/childJson.js";

// A namespace's indexes keep each pod's unit id and its graph (src/core/view.ts,
// src/core/namespaceGraph.ts: the items in name order, the relations as typed arrays), and
// nothing else: at 50k pods, member lists per unit and claim lists made by push (17 slots for
// one pod) were 29 MB of the admission bench's heap, and a list per claim, even of one slot,
// is an array per pod. A process of its own counts the arrays and their element bytes in heap
// snapshots, before and after the indexes are made.
const N = 2000;

function added(mode: "indexes" | "spelled" | "pushed"): { arraysPerPod: number; elementBytesPerPod: number } {
  return lastJsonOf("test/support/viewIndexes/child.ts", [String(N), mode]);
}

describe(`what the indexes of a namespace of ${N} pods, each with its claim, add per pod`, () => {
  it.each([
    // No array per pod, unit or claim: the graph's three lists (pods, claims, PVs) and the unit
    // names hold a slot (8 bytes) per item; each item's unit is a number in a typed array.
    { mode: "indexes", arrays: 0, elementBytesAtMost: 40, elementBytesAtLeast: 0 },
    // Controls: the shapes the indexes once had are seen. A unit spelled with its member lists...
    { mode: "spelled", arrays: 3, elementBytesAtMost: Infinity, elementBytesAtLeast: 400 },
    // ...and a claim list made by push, which reserves 17 slots for its one pod.
    { mode: "pushed", arrays: 1, elementBytesAtMost: Infinity, elementBytesAtLeast: 150 },
  ] as const)("$mode: $arrays arrays per pod", ({ mode, arrays, elementBytesAtMost, elementBytesAtLeast }) => {
    const got = added(mode);
    expect(got.arraysPerPod).toBeCloseTo(arrays, 1);
    expect(got.elementBytesPerPod).toBeLessThanOrEqual(elementBytesAtMost);
    expect(got.elementBytesPerPod).toBeGreaterThanOrEqual(elementBytesAtLeast);
  });
});
