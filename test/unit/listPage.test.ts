import fc from "fast-check";
import { startLocalApi, type LocalApi } from "../support/localApi.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRequester, statusOf, type Requester } from "../../src/kube/http.js";
import { ListPageError, ListPageParser, parseListPage } from "../../src/kube/listPage.js";

/** What parseListPage gives, put back together as one value (items as an array, if any). */
function itemByItem(text: string): { items: unknown[]; fields: Record<string, unknown> } {
  const items: unknown[] = [];
  const fields = parseListPage(text, (item) => items.push(item));
  return { items, fields };
}

/** The same, with the text pushed in chunks cut at `cuts`. */
function inChunks(text: string, cuts: number[]): { items: unknown[]; fields: Record<string, unknown> } {
  const items: unknown[] = [];
  const p = new ListPageParser((item) => items.push(item));
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...at, text.length]) {
    p.push(text.slice(from, to));
    from = to;
  }
  return { items, fields: p.end() };
}

/** The same split of `JSON.parse(text)`. */
function whole(text: string): { items: unknown[]; fields: Record<string, unknown> } {
  const { items, ...fields } = JSON.parse(text) as { items?: unknown };
  return Array.isArray(items) ? { items, fields } : { items: [], fields: items === undefined ? fields : { ...fields, items } };
}

describe("a list page parsed item by item", () => {
  const pod = (name: string) => ({ metadata: { name, namespace: "shop", resourceVersion: "12" }, spec: { volumes: [] } });
  const cases: { name: string; text: string; items: number }[] = [
    { name: "items empty", text: '{"kind":"PodList","metadata":{"resourceVersion":"7"},"items":[]}', items: 0 },
    { name: "items absent", text: '{"kind":"PodList","metadata":{"resourceVersion":"7"}}', items: 0 },
    { name: "empty object", text: "{}", items: 0 },
    { name: "items null", text: '{"items":null,"metadata":{}}', items: 0 },
    { name: "two pods", text: JSON.stringify({ kind: "PodList", metadata: { resourceVersion: "9", continue: "abc" }, items: [pod("a"), pod("b")] }), items: 2 },
    {
      name: "strings with escaped quotes, backslashes and braces",
      text: String.raw`{"items":[{"a":"x\"}]{[\\","b":"\\\\"},{"c":"\\\"\\"}],"metadata":{"continue":"}\""}}`,
      items: 2,
    },
    { name: "nested arrays and objects", text: '{"items":[{"a":[[1,[2,{"b":[]}]],{}]},{"c":{"d":{"e":[{}]}}}]}', items: 2 },
    { name: "unicode and escapes", text: '{"items":[{"n":"żółw 🐢 \\u00e9\\n\\t","k":"\\ud83d\\ude00"}]}', items: 1 },
    { name: "metadata after items", text: '{"items":[{"metadata":{"name":"x"}}],"metadata":{"resourceVersion":"42","continue":"c"},"kind":"List"}', items: 1 },
    { name: "whitespace everywhere", text: ' \n{ "items" : [ { "a" : 1 } , { "b" : [ 2 , 3 ] } ] ,\r\n\t"metadata" : { } } \n', items: 2 },
    { name: "scalars among items", text: '{"items":[1,-2.5e3,true,false,null,"s",{}]}', items: 7 },
    { name: "a __proto__ field", text: '{"__proto__":{"a":1},"items":[{"__proto__":[]}]}', items: 1 },
    { name: "an escaped field name", text: '{"\\u0069tems":[{"a":1}],"m\\"x":2}', items: 1 },
  ];
  it.each(cases)("$name: the same values as JSON.parse of the whole", ({ text, items }) => {
    const got = itemByItem(text);
    expect(got).toEqual(whole(text));
    expect(got.items).toHaveLength(items);
    // One character at a time: every string, escape and bracket spans chunks.
    expect(
      inChunks(
        text,
        [...text].map((_, k) => k),
      ),
    ).toEqual(whole(text));
  });

  it("hands each item on before the next one is parsed", () => {
    const seen: string[] = [];
    expect(() => parseListPage('{"items":[{"n":"a"},{"n":"b"},x]}', (item) => seen.push((item as { n: string }).n))).toThrow(/at character 30/);
    // The bad third element fails only after the first two were handed on.
    expect(seen).toEqual(["a", "b"]);
  });

  it("property: for any JSON array of objects and other fields, the same as JSON.parse", () => {
    const obj = fc.dictionary(fc.string(), fc.jsonValue());
    fc.assert(
      fc.property(fc.array(obj, { maxLength: 8 }), obj, fc.boolean(), fc.constantFrom("", " ", "\n  "), (items, other, itemsFirst, ws) => {
        const rest = Object.entries(other).filter(([k]) => k !== "items");
        const page = Object.fromEntries(itemsFirst ? [["items", items], ...rest] : [...rest, ["items", items]]);
        const text = JSON.stringify(page, null, ws);
        expect(itemByItem(text)).toEqual(whole(text));
      }),
      { numRuns: 500 },
    );
  });

  it("property: any cut of the text into chunks gives the same as JSON.parse", () => {
    const obj = fc.dictionary(fc.string(), fc.jsonValue());
    fc.assert(
      fc.property(fc.array(obj, { maxLength: 6 }), obj, fc.array(fc.nat(), { maxLength: 30 }), (items, other, cuts) => {
        const text = JSON.stringify({ ...other, items });
        expect(inChunks(text, cuts)).toEqual(whole(text));
      }),
      { numRuns: 500 },
    );
  });

  const bad: { name: string; text: string; error: RegExp }[] = [
    { name: "empty", text: "", error: /at character 0: unexpected end/ },
    { name: "an array cut short", text: "[{}", error: /expected a JSON object/ },
    { name: "truncated in an item", text: '{"items":[{"a":"b"', error: /unexpected end/ },
    { name: "truncated between items", text: '{"items":[{"a":1},', error: /unexpected end/ },
    { name: "an item that is not JSON", text: '{"items":[{"a":tru}]}', error: /at character 10: .*JSON/ },
    { name: "a missing comma", text: '{"items":[{} {}]}', error: /expected ',' or ']' in items/ },
    { name: "mismatched brackets", text: '{"items":[{"a":[1}]]}', error: /at character 10/ },
    { name: "text after the object", text: '{"items":[]} x', error: /text after the list object/ },
    { name: "a field name without quotes", text: "{items:[]}", error: /expected a field name/ },
    { name: "an unterminated string", text: '{"metadata":"abc', error: /unexpected end/ },
    { name: "a scalar cut short", text: '{"metadata":12', error: /unexpected end/ },
    { name: "a missing value", text: '{"metadata":,"items":[]}', error: /at character 12: unexpected ","/ },
  ];
  it.each(bad)("bad JSON ($name) gives a clear error", ({ text, error }) => {
    expect(() => JSON.parse(text) as unknown).toThrow(); // a positive control: each case is bad JSON
    expect(() => itemByItem(text)).toThrow(ListPageError);
    expect(() => itemByItem(text)).toThrow(error);
  });

  it("refuses JSON that is not a list object", () => {
    expect(() => itemByItem("[]")).toThrow(/expected a JSON object, found "\["/);
    expect(() => itemByItem('"items"')).toThrow(/expected a JSON object/);
  });

  it("refuses a second items field rather than guess which one counts", () => {
    expect(() => itemByItem('{"items":[{}],"items":[]}')).toThrow(/a second 'items' field/);
  });
});

/** Requester.list over real HTTP from a local server that sends the page in small chunks. */
describe("Requester.list", () => {
  let api: LocalApi;
  let answer: { code: number; text: string } = { code: 200, text: "{}" };
  let requester: Requester;
  beforeAll(async () => {
    api = await startLocalApi((_req, res) => {
      res.writeHead(answer.code, { "Content-Type": "application/json" });
      let i = 0;
      const next = () => {
        if (i >= answer.text.length) return void res.end();
        res.write(answer.text.slice(i, (i += 7)));
        setImmediate(next);
      };
      next();
    });
    requester = createRequester(api.kc);
  });
  afterAll(() => api.close());

  const list = async (onItem: (item: unknown) => void = () => {}) =>
    requester.list("/api/v1/pods", { limit: 2 }, onItem).then(
      (fields) => ({ fields, error: undefined }),
      (e: unknown) => ({ fields: undefined, error: e as Error }),
    );

  it("hands on each item and returns the other fields, from a page sent in pieces", async () => {
    const page = { items: [{ metadata: { name: "a" }, s: 'x"}]' }, { metadata: { name: "b" } }], metadata: { resourceVersion: "9", continue: "c" } };
    answer = { code: 200, text: JSON.stringify(page) };
    const items: unknown[] = [];
    expect(await list((item) => items.push(item))).toEqual({ fields: { metadata: { resourceVersion: "9", continue: "c" } }, error: undefined });
    expect(items).toEqual(page.items);
  });

  it("turns a 410 into the API status error (the continue token expired)", async () => {
    answer = { code: 410, text: JSON.stringify({ kind: "Status", code: 410, reason: "Expired", message: "continue too old" }) };
    const { error } = await list();
    expect(statusOf(error)).toBe(410);
    expect(error?.message).toMatch(/GET \/api\/v1\/pods: 410 Expired: continue too old/);
  });

  it("rejects bad JSON with a clear error, and passes on an item callback's error as it is", async () => {
    answer = { code: 200, text: '{"items":[{"a":1},{"a":tru}]}' };
    expect((await list()).error?.message).toMatch(/GET \/api\/v1\/pods: unreadable JSON: unreadable list page at character 18/);
    answer = { code: 200, text: '{"items":[{"a":1}' };
    expect((await list()).error?.message).toMatch(/unreadable JSON: .*unexpected end/);
    answer = { code: 200, text: '{"items":[{"a":1}]}' };
    const boom = new Error("sink failed");
    expect(
      (
        await list(() => {
          throw boom;
        })
      ).error,
    ).toBe(boom);
  });
});
