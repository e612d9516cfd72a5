import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ListLookup } from "../../src/core/lists.js";

// A ListLookup scans a short list and asks a Map for a long one (src/core/lists.ts): either way
// its answers are the list's own, on both sides of the length where it switches.

const lists = fc.uniqueArray(fc.stringMatching(/^[a-z]{1,3}$/), { maxLength: 24 });

describe("ListLookup", () => {
  it("finds each item where the list has it, and -1 for an item it lacks", () => {
    fc.assert(
      fc.property(lists, fc.stringMatching(/^[a-z]{1,3}$/), (list, probe) => {
        const lookup = new ListLookup(list);
        list.forEach((item, i) => expect(lookup.indexOf(item)).toBe(i));
        expect(lookup.indexOf(probe)).toBe(list.indexOf(probe));
      }),
    );
  });

  it("is tested on short and long lists alike", () => {
    // Positive control for the property above: both sides of the switch are generated.
    const lengths = fc.sample(lists, 300).map((l) => l.length);
    expect(lengths.some((n) => n <= 8)).toBe(true);
    expect(lengths.some((n) => n > 8)).toBe(true);
  });
});
