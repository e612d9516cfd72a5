// A list page read item by item, as its text arrives. `JSON.parse` of a whole page (500
// objects, megabytes) makes every object of the page live at once, and the page's text, one
// string of megabytes, lives in V8's large-object space until a full GC; with a small young
// generation V8 promotes the parsed page to the old generation, which sets the peak RSS while
// listing (docs/performance.md, "List pages item by item, and our own watch"). Here the
// answer's chunks are fed to a scanner that tracks strings, escapes and nesting; each element
// of the top-level `items` array is cut out, parsed on its own and handed on at once, so only
// one raw object (and one chunk of text) is alive at a time. Other top-level fields are parsed
// as usual.

import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, COLON, COMMA, isSpace, OPEN_BRACE, OPEN_BRACKET, QUOTE } from "./jsonChars.js";

/** The top-level fields of a list page other than `items`, e.g. `metadata`. */
export type ListFields = Record<string, unknown>;

/** Bad JSON in a list page: where (character offset) and what. */
export class ListPageError extends Error {
  constructor(
    readonly offset: number,
    detail: string,
  ) {
    super(`unreadable list page at character ${offset}: ${detail}`);
    this.name = "ListPageError";
  }
}

/** Where the scanner is in the list object, between values. */
const enum At {
  Start, // before "{"
  FirstKey, // after "{": a key or "}"
  Key, // after ",": a key
  Colon, // after a key
  Value, // after ":"
  FirstItem, // after "items": [": an item or "]"
  Item, // after "," in items
  AfterItem, // after an item: "," or "]"
  AfterValue, // after a field's value: "," or "}"
  Done, // after the closing "}"
}

/** What the value being cut out is. */
const enum Cut {
  None,
  Key,
  Field,
  Item,
}

/**
 * Reads a list answer (a JSON object) pushed in chunks of any size and calls `onItem` with each
 * element of its top-level `items` array, in order, parsed on its own; `end()` returns the other
 * top-level fields. The same values as `JSON.parse` of the whole text gives, in any order of
 * keys; bad JSON throws a ListPageError (from `push` or `end`).
 */
export class ListPageParser {
  private at = At.Start;
  private offset = 0; // characters before the current chunk
  private readonly fields: ListFields = {};
  private key = "";
  private sawItems = false;
  // The value being cut out: its kind, where it began, its text from earlier chunks, and the
  // scanner's state inside it.
  private cut = Cut.None;
  private cutAt = 0;
  private pieces: string[] = [];
  private depth = 0;
  private inString = false;
  private escaped = false;
  private scalar = false;

  /** `itemText` may change each item's text before it is parsed (e.g. cut a member nothing reads). */
  constructor(
    private readonly onItem: (item: unknown) => void,
    private readonly itemText: (text: string) => string = (text) => text,
  ) {}

  push(chunk: string): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.cut !== Cut.None) {
        const from = i;
        const end = this.scan(chunk, i);
        if (end < 0) {
          this.pieces.push(chunk.slice(from));
          break;
        }
        this.finishCut(this.pieces.length === 0 ? chunk.slice(from, end) : this.pieces.join("") + chunk.slice(from, end));
        i = end;
        continue;
      }
      const c = chunk.charCodeAt(i);
      if (isSpace(c)) i++;
      else i = this.step(chunk, i, c);
    }
    this.offset += chunk.length;
  }

  end(): ListFields {
    if (this.at !== At.Done) throw new ListPageError(this.offset, "unexpected end");
    return this.fields;
  }

  /** One structural character `c` at `i` between values; returns where to go on. */
  private step(chunk: string, i: number, c: number): number {
    switch (this.at) {
      case At.Start:
        this.expect(chunk, i, OPEN_BRACE, "a JSON object");
        this.at = At.FirstKey;
        return i + 1;
      case At.FirstKey:
        if (c === CLOSE_BRACE) {
          this.at = At.Done;
          return i + 1;
        }
        this.expect(chunk, i, QUOTE, "a field name or '}'");
        return this.begin(Cut.Key, chunk, i);
      case At.Key:
        this.expect(chunk, i, QUOTE, "a field name");
        return this.begin(Cut.Key, chunk, i);
      case At.Colon:
        this.expect(chunk, i, COLON, "':'");
        this.at = At.Value;
        return i + 1;
      case At.Value:
        if (this.key !== "items" || c !== OPEN_BRACKET) return this.begin(Cut.Field, chunk, i);
        if (this.sawItems) throw new ListPageError(this.offset + i, "a second 'items' field");
        this.sawItems = true;
        this.at = At.FirstItem;
        return i + 1;
      case At.FirstItem:
        if (c === CLOSE_BRACKET) {
          this.at = At.AfterValue;
          return i + 1;
        }
        return this.begin(Cut.Item, chunk, i);
      case At.Item:
        return this.begin(Cut.Item, chunk, i);
      case At.AfterItem:
        if (c === CLOSE_BRACKET) this.at = At.AfterValue;
        else this.expect(chunk, i, COMMA, "',' or ']' in items");
        if (c === COMMA) this.at = At.Item;
        return i + 1;
      case At.AfterValue:
        if (c === CLOSE_BRACE) this.at = At.Done;
        else this.expect(chunk, i, COMMA, "',' or '}'");
        if (c === COMMA) this.at = At.Key;
        return i + 1;
      case At.Done:
        throw new ListPageError(this.offset + i, "text after the list object");
    }
  }

  /** Starts cutting out a value whose first character is at `i`; returns where to go on. */
  private begin(cut: Cut, chunk: string, i: number): number {
    const c = chunk.charCodeAt(i);
    if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET || c === COLON) {
      throw new ListPageError(this.offset + i, `unexpected ${JSON.stringify(chunk[i])}`);
    }
    this.cut = cut;
    this.cutAt = this.offset + i;
    this.depth = c === OPEN_BRACE || c === OPEN_BRACKET ? 1 : 0;
    this.inString = c === QUOTE;
    this.escaped = false;
    this.scalar = this.depth === 0 && !this.inString;
    // The value's text starts at `i`; scanning goes on after its first character.
    const end = this.scan(chunk, i + 1);
    if (end < 0) {
      this.pieces.push(chunk.slice(i));
      return chunk.length;
    }
    this.finishCut(chunk.slice(i, end));
    return end;
  }

  /** Scans the value being cut out from `i`: the index after its end, or -1 if it goes on. */
  private scan(chunk: string, i: number): number {
    // The state in locals for the hot loop, written back when the chunk runs out.
    let { depth, inString, escaped } = this;
    const scalar = this.scalar;
    const n = chunk.length;
    while (i < n) {
      if (inString) {
        const q = skipStringPart(chunk, i, escaped);
        if (q < 0) {
          escaped = q === ESCAPE_PENDING;
          i = n;
          break;
        }
        inString = escaped = false;
        i = q + 1;
        if (depth === 0) {
          this.inString = false;
          return i;
        }
        continue;
      }
      const c = chunk.charCodeAt(i);
      if (scalar) {
        if (isSpace(c) || c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET) return i;
      } else if (c === QUOTE) inString = true;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
      else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) return i + 1;
      i++;
    }
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    return -1;
  }

  /** Parses the value cut out and hands it where it belongs. */
  private finishCut(text: string): void {
    const cut = this.cut;
    this.cut = Cut.None;
    this.pieces = [];
    let value: unknown;
    try {
      value = JSON.parse(cut === Cut.Item ? this.itemText(text) : text);
    } catch (e) {
      throw new ListPageError(this.cutAt, (e as Error).message);
    }
    switch (cut) {
      case Cut.Key:
        this.key = value as string;
        this.at = At.Colon;
        break;
      case Cut.Field:
        // As `JSON.parse` does: an own field even for "__proto__"; the last of repeated fields wins.
        Object.defineProperty(this.fields, this.key, { value, writable: true, enumerable: true, configurable: true });
        this.at = At.AfterValue;
        break;
      case Cut.Item:
        this.at = At.AfterItem;
        this.onItem(value);
        break;
    }
  }

  private expect(chunk: string, i: number, code: number, what: string): void {
    if (chunk.charCodeAt(i) !== code) throw new ListPageError(this.offset + i, `expected ${what}, found ${JSON.stringify(chunk[i])}`);
  }
}

/** `parseListPage` over a whole text: the fields other than `items`, each item to `onItem`. */
export function parseListPage(text: string, onItem: (item: unknown) => void): ListFields {
  const p = new ListPageParser(onItem);
  p.push(text);
  return p.end();
}

/** skipStringPart's answers when the chunk ends inside the string: with or without a "\\" pending. */
const ESCAPE_PENDING = -2,
  NO_ESCAPE = -1;

/**
 * The index of the quote that ends the string being scanned from `i` (`escaped`: the character
 * before `i` was an escaping backslash), or ESCAPE_PENDING / NO_ESCAPE when the chunk ends first.
 * A quote ends the string unless an odd run of backslashes escapes it.
 */
function skipStringPart(chunk: string, i: number, escaped: boolean): number {
  for (;;) {
    const q = chunk.indexOf('"', i);
    const end = q < 0 ? chunk.length : q;
    let b = end;
    while (b > i && chunk.charCodeAt(b - 1) === BACKSLASH) b--;
    // The run of backslashes before `end`, plus the pending escape if the run reaches `i`.
    const odd = ((end - b) % 2 === 1) !== (b === i && escaped);
    if (q < 0) return odd ? ESCAPE_PENDING : NO_ESCAPE;
    if (!odd) return q;
    i = q + 1;
    escaped = false;
  }
}
