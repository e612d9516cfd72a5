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
    { input: "0", expected: 0 },
    { input: "1", expected: 1 },
    { input: "007", expected: 7 },
    { input: "+5", expected: 5 },
    { input: "-5", expected: -5 },
    { input: "1.5", expected: 1.5 },
    { input: ".5", expected: 0.5 },
    { input: "1.", expected: 1 },
    { input: "500m", expected: 0.5 },
    { input: "1k", expected: 1e3 },
    { input: "1M", expected: 1e6 },
    { input: "1G", expected: 1e9 },
    { input: "1T", expected: 1e12 },
    { input: "1P", expected: 1e15 },
    { input: "1E", expected: 1e18 },
    { input: "1n", expected: 1e-9 },
    { input: "1u", expected: 1e-6 },
    { input: "1.5G", expected: 1.5e9 },
    // binary SI suffixes
    { input: "1Ki", expected: 1024 },
    { input: "1Mi", expected: 2 ** 20 },
    { input: "1Gi", expected: 2 ** 30 },
    { input: "10Gi", expected: 10 * 2 ** 30 },
    { input: "1Ti", expected: 2 ** 40 },
    { input: "1Pi", expected: 2 ** 50 },
    { input: "1Ei", expected: 2 ** 60 },
    { input: "1.5Ki", expected: 1536 },
    { input: "0.5Gi", expected: 2 ** 29 },
    // exponents
    { input: "1e3", expected: 1000 },
    { input: "1E3", expected: 1000 },
    { input: "1e+3", expected: 1000 },
    { input: "1e-3", expected: 0.001 },
    { input: "1.5e2", expected: 150 },
    { input: "2E0", expected: 2 },
    // ParseQuantity quirks: a lone sign, a lone dot or a bare suffix read as 0; "1.G" is allowed
    { input: "-", expected: 0 },
    { input: "+", expected: 0 },
    { input: ".", expected: 0 },
    { input: "Gi", expected: 0 },
    { input: "k", expected: 0 },
    { input: "000", expected: 0 },
    { input: "1.G", expected: 1e9 },
  ])("$input = $expected", ({ input, expected }) => {
    expect(parseQuantity(input)).toBe(expected);
  });

  it.each([
    { name: "empty string", input: "" },
    { name: "unknown suffix", input: "1KB" },
    { name: "lower-case k with i", input: "1ki" },
    { name: "upper-case K alone", input: "1K" },
    { name: "e without exponent", input: "1e" },
    { name: "e with a sign only", input: "1e-" },
    { name: "exponent that is not an integer", input: "1e1.5" },
    { name: "exponent beyond int64", input: "1e99999999999999999999" },
    { name: "digits after a binary suffix", input: "1Ki5" },
    { name: "exponent after a suffix", input: "1Gie3" },
    { name: "two dots", input: "1.2.3" },
    { name: "inner space", input: "1 Gi" },
    { name: "leading space (ParseQuantity does not trim)", input: " 1Gi" },
    { name: "trailing space", input: "1Gi " },
    { name: "two signs", input: "--1" },
    { name: "sign after the number", input: "1-" },
    { name: "letters only, not a suffix", input: "abc" },
    { name: "non-ASCII digit", input: "\uff11" },
  ])("rejects $name: $input", ({ input }) => {
    expect(parseQuantity(input)).toBeUndefined();
    expect(parseQuantityExact(input)).toBeUndefined();
  });

  it.each([
    { name: "rounds up to nano precision (0.1n -> 1n)", a: "0.1n", b: "1n" },
    { name: "rounds away from zero for negatives", a: "-0.1n", b: "-1n" },
    { name: "rounds 1.0000000001 up", a: "1.0000000001", b: "1000000001n" },
    { name: "a tiny exponent rounds to 1n", a: "1e-1000", b: "1n" },
    { name: "binary suffixes cap at 2^63-1 (8Ei)", a: "8Ei", b: "9223372036854775807" },
    { name: "binary suffixes cap at 2^63-1 (100Ei)", a: "100Ei", b: "9223372036854775807" },
    { name: "binary cap applies to negatives", a: "-8Ei", b: "-9223372036854775807" },
    { name: "decimal values are not capped", a: "10E", b: "10000000000000000000" },
    { name: "1Gi equals 1073741824", a: "1Gi", b: "1073741824" },
    { name: "1000Mi is below 1Gi", a: "1000Mi", b: "1048576000" },
    { name: "1e3 equals 1k", a: "1e3", b: "1k" },
  ])("$name", ({ a, b }) => {
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
    { a: "1Gi", b: "1G", expected: 1 },
    { a: "1G", b: "1Gi", expected: -1 },
    { a: "999Mi", b: "1Gi", expected: -1 },
    { a: "1024Mi", b: "1Gi", expected: 0 },
    { a: "-1", b: "0", expected: -1 },
    { a: "0", b: "-0", expected: 0 },
    { a: "1.5", b: "1500m", expected: 0 },
    { a: "100Gi", b: "107374182400", expected: 0 },
  ] as const)("compare($a, $b) = $expected", ({ a, b, expected }) => {
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
