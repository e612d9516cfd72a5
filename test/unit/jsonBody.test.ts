import { describe, expect, it } from "vitest";
import { parseJsonBody } from "../../src/admission/review.js";

// parseJsonBody refuses prototype keys anywhere in a body, and skips its walk when the text can
// hold none (no "__proto__", no "constructor", no \u escape): the escaped spellings must still be caught.

describe("parseJsonBody", () => {
  it.each([
    { name: "a plain review", text: '{"request":{"uid":"u","object":{"spec":{"includedNamespaces":["a"]}}}}', refusedAt: undefined },
    { name: "__proto__ at the top", text: '{"__proto__":{"x":1}}', refusedAt: "__proto__" },
    { name: "__proto__ deep in a list", text: '{"x":[{"y":{"__proto__":1}}]}', refusedAt: "x.0.y.__proto__" },
    { name: "__proto__ spelled with escapes", text: '{"a":{"\\u005f_proto\\u005f_":1}}', refusedAt: "a.__proto__" },
    { name: "constructor with a prototype", text: '{"constructor":{"prototype":{}}}', refusedAt: "constructor" },
    { name: "constructor spelled with an escape", text: '{"s":{"\\u0063onstructor":{"prototype":{}}}}', refusedAt: "s.constructor" },
    { name: "constructor as a plain value", text: '{"constructor":"x","c":{"constructor":1}}', refusedAt: undefined },
    { name: "an escaped letter elsewhere", text: '{"name":"caf\\u00e9","list":["a\\u0062"]}', refusedAt: undefined },
    { name: "the words inside a string", text: '{"note":"__proto__ and constructor"}', refusedAt: undefined },
  ])("$name", ({ text, refusedAt }) => {
    const parsed = parseJsonBody(text);
    if (refusedAt === undefined) expect(parsed).toEqual({ ok: true, value: JSON.parse(text) });
    else expect(parsed).toEqual({ ok: false, message: `the body holds a forbidden prototype key at ${refusedAt}` });
  });

  it.each(["", "  \n\t"])("an empty body (%j) is refused", (text) => {
    expect(parseJsonBody(text)).toEqual({ ok: false, message: "the body is empty; expected an AdmissionReview as JSON" });
  });
});
