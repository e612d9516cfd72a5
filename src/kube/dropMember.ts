// A member of a JSON object text, cut out before the text is parsed. Listing 100k pods and 100k
// claims, `metadata.managedFields` was about half of what `JSON.parse` made, and its keys (such as
// `k:{"ip":"10.0.1.7"}`, one per pod) are internalized by V8 straight into the old generation,
// where they stayed as garbage until a mark-compact: that garbage set the peak RSS of the sync
// (docs/performance.md). Nothing reads managedFields. Hand-written: no JSON library cuts a member
// from text without parsing it first.

import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, COLON, COMMA, isSpace, OPEN_BRACE, OPEN_BRACKET, QUOTE } from "./jsonChars.js";

/**
 * `text` (one JSON object) without the member at `path` (object keys, outermost first), or `text`
 * itself when it has no such member, when a key on the path is spelled with escapes, or when the
 * text around it is not well-formed JSON (then `JSON.parse` reports it as before). Bad JSON inside
 * the member itself goes with it, unreported: nothing reads that member.
 */
export function withoutMember(text: string, path: readonly string[]): string {
  if (path.length === 0 || text.indexOf(`"${path[path.length - 1]}"`) < 0) return text;
  const span = findMember(text, skipSpace(text, 0), path, 0);
  return span ? text.slice(0, span[0]) + text.slice(span[1]) : text;
}

/**
 * Where to cut the member `path[level]` of the object starting at `i`: from its key (or the comma
 * before it) to its value's end (or the comma after it), so that what is left stays valid JSON.
 */
function findMember(text: string, i: number, path: readonly string[], level: number): [number, number] | undefined {
  if (text.charCodeAt(i) !== OPEN_BRACE) return undefined;
  i = skipSpace(text, i + 1);
  if (text.charCodeAt(i) === CLOSE_BRACE) return undefined;
  let previousEnd = -1; // where the previous member's value ended (its comma follows)
  while (i < text.length) {
    if (text.charCodeAt(i) !== QUOTE) return undefined;
    const keyStart = i;
    const keyEnd = skipString(text, i);
    if (keyEnd < 0) return undefined;
    const key = text.slice(keyStart + 1, keyEnd - 1);
    i = skipSpace(text, keyEnd);
    if (text.charCodeAt(i) !== COLON) return undefined;
    const valueStart = skipSpace(text, i + 1);
    const valueEnd = skipValue(text, valueStart);
    if (valueEnd < 0) return undefined;
    if (key === path[level]) {
      if (level < path.length - 1) return findMember(text, valueStart, path, level + 1);
      const next = skipSpace(text, valueEnd);
      // The first member takes the comma after it; any other, the comma before it.
      if (previousEnd >= 0) return [previousEnd, valueEnd];
      return text.charCodeAt(next) === COMMA ? [keyStart, skipSpace(text, next + 1)] : [keyStart, valueEnd];
    }
    previousEnd = valueEnd;
    i = skipSpace(text, valueEnd);
    if (text.charCodeAt(i) !== COMMA) return undefined; // "}": the object ends without the member
    i = skipSpace(text, i + 1);
  }
  return undefined;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

/** The index after the string starting (with its quote) at `i`, or -1. */
function skipString(text: string, i: number): number {
  for (i++; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i + 1;
  }
  return -1;
}

/** The index after the value starting at `i` (object, array, string or scalar), or -1. */
function skipValue(text: string, i: number): number {
  const first = text.charCodeAt(i);
  if (first === QUOTE) return skipString(text, i);
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET || isSpace(c)) break;
      i++;
    }
    return i;
  }
  let depth = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = skipString(text, i) - 1;
      if (i < 0) return -1;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) return i + 1;
  }
  return -1;
}
