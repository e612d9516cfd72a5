// Kubernetes resource quantities ("10Gi", "1.5e3", "500m"), parsed the way apimachinery's
// resource.ParseQuantity (k8s.io/apimachinery v0.33, pkg/api/resource/quantity.go) does, so that
// comparisons agree with Velero's volume-policy capacity checks to the last digit.
//
// What ParseQuantity does, and so what this module does:
// - grammar: [sign] digits [. digits] suffix; the suffix is a binary SI suffix (Ki..Ei), a decimal
//   SI suffix (n, u, m, "", k, M, G, T, P, E) or an exponent (e|E followed by a signed integer);
// - a lone sign, a lone "." or a number with no digits reads as 0 ("-", "Gi", ".k" are 0);
// - the value is exact, then rounded away from zero to a multiple of 10^-9 (nano);
// - a value written with a binary suffix is capped at 2^63-1 in magnitude;
// - an exponent is read as int64 and then truncated to int32 (Go's int32() conversion).

/** An exact quantity: mantissa * 10^exp10. Normalised: the mantissa has no trailing zeros, and 0 is {0n, 0}. */
export interface Quantity {
  readonly mantissa: bigint;
  readonly exp10: number;
}

export const ZERO_QUANTITY: Quantity = { mantissa: 0n, exp10: 0 };

const BINARY_SUFFIXES: Readonly<Record<string, number>> = { Ki: 10, Mi: 20, Ti: 40, Gi: 30, Pi: 50, Ei: 60 };
const DECIMAL_SUFFIXES: Readonly<Record<string, number>> = {
  n: -9,
  u: -6,
  m: -3,
  "": 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const SUFFIX_LETTERS = "eEinumkKMGTP";
const MAX_INT64 = (1n << 63n) - 1n;
const MIN_INT64 = -(1n << 63n);
const NANO = -9;

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

function normalise(mantissa: bigint, exp10: number): Quantity {
  if (mantissa === 0n) return ZERO_QUANTITY;
  let m = mantissa;
  let e = exp10;
  while (m % 10n === 0n) {
    m /= 10n;
    e += 1;
  }
  return { mantissa: m, exp10: e };
}

function digitCount(m: bigint): number {
  return (m < 0n ? -m : m).toString().length;
}

/** Splits like apimachinery's parseQuantityString; undefined on ErrFormatWrong. */
function split(str: string): { positive: boolean; num: string; denom: string; suffix: string } | undefined {
  const end = str.length;
  const positive = str[0] !== "-";
  let pos = skipWhile(str, str[0] === "-" || str[0] === "+" ? 1 : 0, (c) => c === "0");
  if (pos >= end) return { positive, num: "0", denom: "", suffix: "" };
  const numStart = pos;
  pos = skipWhile(str, pos, isDigit);
  const num = pos === numStart ? "0" : str.slice(numStart, pos);
  if (pos >= end) return { positive, num, denom: "", suffix: "" };
  let denom = "";
  if (str[pos] === ".") {
    const denomStart = pos + 1;
    pos = skipWhile(str, denomStart, isDigit);
    denom = str.slice(denomStart, pos);
    if (pos >= end) return { positive, num, denom, suffix: "" };
  }
  const suffixStart = pos;
  pos = skipWhile(str, pos, (c) => SUFFIX_LETTERS.includes(c));
  if (str[pos] === "-" || str[pos] === "+") pos++;
  pos = skipWhile(str, pos, isDigit);
  if (pos < end) return undefined;
  return { positive, num, denom, suffix: str.slice(suffixStart) };
}

/** The first position at or after `pos` whose character does not pass `keep` (or the end). */
function skipWhile(str: string, pos: number, keep: (c: string) => boolean): number {
  while (pos < str.length && keep(str[pos] as string)) pos++;
  return pos;
}

/** Go's strconv.ParseInt(s, 10, 64). */
function parseInt64(s: string): bigint | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const v = BigInt(s);
  return v > MAX_INT64 || v < MIN_INT64 ? undefined : v;
}

function interpretSuffix(suffix: string): { base: 2 | 10; exponent: number } | undefined {
  const dec = DECIMAL_SUFFIXES[suffix];
  if (dec !== undefined && Object.hasOwn(DECIMAL_SUFFIXES, suffix)) return { base: 10, exponent: dec };
  const bin = BINARY_SUFFIXES[suffix];
  if (bin !== undefined && Object.hasOwn(BINARY_SUFFIXES, suffix)) return { base: 2, exponent: bin };
  if (suffix.length > 1 && (suffix[0] === "E" || suffix[0] === "e")) {
    const parsed = parseInt64(suffix.slice(1));
    if (parsed === undefined) return undefined;
    return { base: 10, exponent: Number(BigInt.asIntN(32, parsed)) };
  }
  return undefined;
}

/** Rounds |m| * 10^e away from zero to a multiple of 10^-9. */
function roundUpToNano(mantissa: bigint, exp10: number): Quantity {
  if (exp10 >= NANO || mantissa === 0n) return normalise(mantissa, exp10);
  const sign = mantissa < 0n ? -1n : 1n;
  const abs = mantissa * sign;
  const shift = NANO - exp10;
  if (shift > digitCount(abs)) return normalise(sign, NANO); // 0 < |value| < 10^-9
  const div = 10n ** BigInt(shift);
  const q = (abs + div - 1n) / div;
  return normalise(sign * q, NANO);
}

/** Parses a Kubernetes quantity exactly as resource.ParseQuantity would; undefined when it would fail. */
export function parseQuantityExact(str: string): Quantity | undefined {
  if (typeof str !== "string" || str.length === 0) return undefined;
  const parts = split(str);
  if (parts === undefined) return undefined;
  const suffix = interpretSuffix(parts.suffix);
  if (suffix === undefined) return undefined;
  let mantissa = BigInt(parts.num + parts.denom);
  if (!parts.positive) mantissa = -mantissa;
  let exp10 = -parts.denom.length;
  if (suffix.base === 10) {
    exp10 += suffix.exponent;
    return roundUpToNano(mantissa, exp10);
  }
  mantissa *= 1n << BigInt(suffix.exponent);
  const rounded = roundUpToNano(mantissa, exp10);
  // BinarySI values are capped at MaxInt64 in magnitude.
  const cap: Quantity = normalise(MAX_INT64, 0);
  if (compareQuantities(absQuantity(rounded), cap) > 0) {
    return rounded.mantissa < 0n ? normalise(-MAX_INT64, 0) : cap;
  }
  return rounded;
}

function absQuantity(q: Quantity): Quantity {
  return q.mantissa < 0n ? { mantissa: -q.mantissa, exp10: q.exp10 } : q;
}

/** Exact comparison, as Quantity.Cmp: -1, 0 or 1. */
export function compareQuantities(a: Quantity, b: Quantity): -1 | 0 | 1 {
  const sa = signOf(a.mantissa);
  const sb = signOf(b.mantissa);
  if (sa !== sb) return sa < sb ? -1 : 1;
  if (sa === 0) return 0;
  const magnitude = compareMagnitudes(a, b);
  if (magnitude === 0) return 0;
  return (sa < 0 ? -magnitude : magnitude) as -1 | 1;
}

function signOf(m: bigint): -1 | 0 | 1 {
  return m === 0n ? 0 : m < 0n ? -1 : 1;
}

/** Compares |a| and |b|: by order of magnitude first, so huge exponents never expand. */
function compareMagnitudes(a: Quantity, b: Quantity): -1 | 0 | 1 {
  const ma = digitCount(a.mantissa) + a.exp10;
  const mb = digitCount(b.mantissa) + b.exp10;
  if (ma !== mb) return ma < mb ? -1 : 1;
  // Same order of magnitude: the exponents differ by less than the mantissas' lengths.
  const e = Math.min(a.exp10, b.exp10);
  const absA = (a.mantissa < 0n ? -a.mantissa : a.mantissa) * 10n ** BigInt(a.exp10 - e);
  const absB = (b.mantissa < 0n ? -b.mantissa : b.mantissa) * 10n ** BigInt(b.exp10 - e);
  return absA === absB ? 0 : absA < absB ? -1 : 1;
}

export function isZeroQuantity(q: Quantity): boolean {
  return q.mantissa === 0n;
}

/** The nearest double (may be ±Infinity for absurd exponents). */
export function quantityToNumber(q: Quantity): number {
  return Number(`${q.mantissa}e${q.exp10}`);
}

/** A quantity in its base unit (bytes for storage), as the nearest double; undefined if ParseQuantity would fail. */
export function parseQuantity(s: string): number | undefined {
  const q = parseQuantityExact(s);
  return q === undefined ? undefined : quantityToNumber(q);
}

/** A short canonical rendering for messages: mantissa and power of ten. */
export function formatQuantity(q: Quantity): string {
  if (q.exp10 === 0) return q.mantissa.toString();
  if (q.exp10 > 0 && q.exp10 <= 21) return (q.mantissa * 10n ** BigInt(q.exp10)).toString();
  return `${q.mantissa}e${q.exp10}`;
}
