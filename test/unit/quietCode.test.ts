import { describe, expect, it } from "vitest";
import { lastJsonOfAsync } from "../support/childJson.js";
import { imageNodeFlags } from "../support/imageRuntime.js";

// Between bursts, V8 used to throw the webhook's optimized code away, and the next burst ran on
// cold code for 150-370 ms (docs/performance.md, "A burst after a quiet minute"). Optimized code
// holds the maps of the objects it was compiled for weakly, and a review's objects live a
// millisecond. Two things let those maps die in a quiet period:
// - V8's memory reducer, whose collections keep no unused map: the image runs node without it
//   (the Dockerfile's ENTRYPOINT, read here);
// - a few ordinary collections (V8 keeps an unused map through two): `serve` keeps the maps that
//   optimized code embeds through any number (keepOptimizedCode).
// A process of its own (test/support/quietCode/child.ts) makes a function hot on parsed bodies,
// goes quiet, and says whether V8 collected and whether the function is still optimized.
interface Quiet {
  optimizedBefore: boolean;
  optimizedAfter: boolean;
  majorWhileQuiet: number;
}

function quietPeriod(quiet: "reducer" | "collections", nodeFlags: readonly string[], asServe: boolean): Promise<Quiet> {
  const flags = ["--allow-natives-syntax", "--expose-gc", ...nodeFlags];
  return lastJsonOfAsync("test/support/quietCode/child.ts", [quiet, ...(asServe ? ["serve"] : [])], flags, 140_000);
}

const image = imageNodeFlags();

describe.concurrent("a quiet period after a burst", () => {
  it.each([
    // Idle after a collection that grew the heap, until the first full collection or 110 s: the
    // reducer would have run by then, at a try or through its 100 s watchdog.
    { name: "idle, the image's node flags: no collection", quiet: "reducer", flags: image, asServe: true, collected: false, kept: true },
    { name: "idle, node's defaults (control): the reducer collects", quiet: "reducer", flags: [], asServe: true, collected: true, kept: undefined },
    // 20 full collections, as watch events bring about between bursts.
    { name: "20 collections, as serve runs: the code is kept", quiet: "collections", flags: image, asServe: true, collected: true, kept: true },
    {
      name: "20 collections, without keepOptimizedCode (control): the code is lost",
      quiet: "collections",
      flags: image,
      asServe: false,
      collected: true,
      kept: false,
    },
  ] as const)(
    "$name",
    async ({ quiet, flags, asServe, collected, kept }) => {
      const got = await quietPeriod(quiet, flags, asServe);
      expect(got.optimizedBefore).toBe(true);
      expect(got.majorWhileQuiet > 0).toBe(collected);
      if (kept !== undefined) expect(got.optimizedAfter).toBe(kept);
    },
    150_000,
  );

  it("the image's entrypoint turns the memory reducer off", () => {
    expect(image).toContain("--no-memory-reducer");
  });
});
