import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compareQuantities, parseQuantity, parseQuantityExact, quantityToNumber, type Quantity } from "../../src/core/velero/quantity.js";

const exact = (s: string): Quantity => {
  const q = parseQuantityExact(s);
  if (q === undefined) throw new Error(`${s} did not parse`);
  return q;
};

describe("parseQuantity: apimachinery resource.ParseQuantity (v0.33)", () => {
  it.each([
    // plain numbers and decimal SI suffixes
    ["0", 0],
    ["1", 1],
    ["007", 7],
    ["+5", 5],
    ["-5", -5],
    ["1.5", 1.5],
    [".5", 0.5],
    ["1.", 1],
    ["500m", 0.5],
    ["1k", 1e3],
    ["1M", 1e6],
    ["1G", 1e9],
    ["1T", 1e12],
    ["1P", 1e15],
    ["1E", 1e18],
    ["1n", 1e-9],
    ["1u", 1e-6],
    ["1.5G", 1.5e9],
    // binary SI suffixes
    ["1Ki", 1024],
    ["1Mi", 2 ** 20],
    ["1Gi", 2 ** 30],
    ["10Gi", 10 * 2 ** 30],
    ["1Ti", 2 ** 40],
    ["1Pi", 2 ** 50],
    ["1Ei", 2 ** 60],
    ["1.5Ki", 1536],
    ["0.5Gi", 2 ** 29],
    // exponents
    ["1e3", 1000],
    ["1E3", 1000],
    ["1e+3", 1000],
    ["1e-3", 0.001],
    ["1.5e2", 150],
    ["2E0", 2],
    // ParseQuantity quirks: a lone sign, a lone dot or a bare suffix read as 0; "1.G" is allowed
    ["-", 0],
    ["+", 0],
    [".", 0],
    ["Gi", 0],
    ["k", 0],
    ["000", 0],
    ["1.G", 1e9],
  ])("%s = %d", (input, expected) => {
    expect(parseQuantity(input)).toBe(expected);
  });

  it.each([
    ["empty string", ""],
    ["unknown suffix", "1KB"],
    ["lower-case k with i", "1ki"],
    ["upper-case K alone", "1K"],
    ["e without exponent", "1e"],
    ["e with a sign only", "1e-"],
    ["exponent that is not an integer", "1e1.5"],
    ["exponent beyond int64", "1e99999999999999999999"],
    ["digits after a binary suffix", "1Ki5"],
    ["exponent after a suffix", "1Gie3"],
    ["two dots", "1.2.3"],
    ["inner space", "1 Gi"],
    ["leading space (ParseQuantity does not trim)", " 1Gi"],
    ["trailing space", "1Gi "],
    ["two signs", "--1"],
    ["sign after the number", "1-"],
    ["letters only, not a suffix", "abc"],
    ["non-ASCII digit", "\uff11"],
  ])("rejects %s: %j", (_name, input) => {
    expect(parseQuantity(input)).toBeUndefined();
    expect(parseQuantityExact(input)).toBeUndefined();
  });

  it.each([
    ["rounds up to nano precision (0.1n -> 1n)", "0.1n", "1n"],
    ["rounds away from zero for negatives", "-0.1n", "-1n"],
    ["rounds 1.0000000001 up", "1.0000000001", "1000000001n"],
    ["a tiny exponent rounds to 1n", "1e-1000", "1n"],
    ["binary suffixes cap at 2^63-1 (8Ei)", "8Ei", "9223372036854775807"],
    ["binary suffixes cap at 2^63-1 (100Ei)", "100Ei", "9223372036854775807"],
    ["binary cap applies to negatives", "-8Ei", "-9223372036854775807"],
    ["decimal values are not capped", "10E", "10000000000000000000"],
    ["1Gi equals 1073741824", "1Gi", "1073741824"],
    ["1000Mi is below 1Gi", "1000Mi", "1048576000"],
    ["1e3 equals 1k", "1e3", "1k"],
  ])("%s", (_name, a, b) => {
    expect(compareQuantities(exact(a), exact(b))).toBe(0);
  });

  it("an exponent is truncated to int32 as Go's int32() does (1e4294967297 = 1e1)", () => {
    expect(compareQuantities(exact("1e4294967297"), exact("10"))).toBe(0);
  });

  it("huge exponents compare without expanding", () => {
    expect(compareQuantities(exact("1e2000000000"), exact("9e1999999999"))).toBe(1);
    expect(compareQuantities(exact("-1e2000000000"), exact("1"))).toBe(-1);
    expect(quantityToNumber(exact("1e2000000000"))).toBe(Infinity);
  });

  it.each([
    ["1Gi", "1G", 1],
    ["1G", "1Gi", -1],
    ["999Mi", "1Gi", -1],
    ["1024Mi", "1Gi", 0],
    ["-1", "0", -1],
    ["0", "-0", 0],
    ["1.5", "1500m", 0],
    ["100Gi", "107374182400", 0],
  ] as const)("compare(%s, %s) = %d", (a, b, expected) => {
    expect(compareQuantities(exact(a), exact(b))).toBe(expected);
  });

  it("never throws, on any string", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme-ascii", maxLength: 40 }), (s) => {
        const q = parseQuantityExact(s);
        if (q !== undefined) expect(typeof quantityToNumber(q)).toBe("number");
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.stringMatching(/^[+-]?[0-9]{0,25}(\.[0-9]{0,25})?([eE][+-]?[0-9]{1,12}|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$/), (s) => {
        // Every non-empty string of this grammar parses (ParseQuantity rejects only "").
        expect(parseQuantityExact(s)).toEqual(s === "" ? undefined : expect.anything());
      }),
      { numRuns: 2000 },
    );
  });

  it("agrees with integer arithmetic for integers with every suffix", () => {
    const suffixes = { "": 1n, k: 10n ** 3n, M: 10n ** 6n, G: 10n ** 9n, Ki: 1n << 10n, Mi: 1n << 20n, Gi: 1n << 30n, Ti: 1n << 40n };
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 6n }),
        fc.constantFrom(...Object.keys(suffixes)),
        fc.bigInt({ min: 0n, max: 10n ** 6n }),
        fc.constantFrom(...Object.keys(suffixes)),
        (n, s, m, t) => {
          const a = n * suffixes[s as keyof typeof suffixes];
          const b = m * suffixes[t as keyof typeof suffixes];
          const expected = a === b ? 0 : a < b ? -1 : 1;
          expect(compareQuantities(exact(`${n}${s}`), exact(`${m}${t}`))).toBe(expected);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
