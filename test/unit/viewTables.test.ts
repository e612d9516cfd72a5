import { describe, expect, it } from "vitest";
import { lastJsonOf } from "../support/childJson.js";

// A namespace keeps its pods and claims each in one array in name order (src/core/nameTable.ts),
// not in a Map: a Map's hash table is about 37 B an entry, and at 100k pods + 100k claims the
// difference was 4 MiB of `serve`'s heap (docs/performance.md, "Tables in name order"). A
// process of its own measures what the view adds per item after a full collection.
const N = 100_000;

const bytesPerItem = (mode: "view" | "maps") =>
  lastJsonOf<{ bytesPerItem: number }>("test/support/viewTables/child.ts", [String(N), mode], ["--expose-gc"]).bytesPerItem;

describe(`what a view of one namespace of ${N} pods and ${N} claims adds per item`, () => {
  it.each([
    // A slot (8 B) per item, and the room an array grows by.
    { mode: "view", atLeast: 4, atMost: 16 },
    // Control: a Map per kind beside it, as the view once kept, is seen.
    { mode: "maps", atLeast: 30, atMost: Infinity },
  ] as const)("$mode: $atLeast to $atMost bytes", ({ mode, atLeast, atMost }) => {
    const got = bytesPerItem(mode);
    expect(got).toBeGreaterThanOrEqual(atLeast);
    expect(got).toBeLessThanOrEqual(atMost);
  });
});
