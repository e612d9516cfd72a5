import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { withoutMember } from "../../src/kube/dropMember.js";

// Lists and watch events are parsed without `metadata.managedFields` (src/kube/dropMember.ts):
// the text left must parse to exactly the object without that member, whatever the JSON's
// spacing, the member's place among its siblings, and wherever else the same key appears.

const PATH = ["metadata", "managedFields"] as const;
const json = fc.jsonValue({ maxDepth: 3 });
const key = fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("managedFields", "metadata", 'man"aged', "a\\b"));
const members = fc.dictionary(key, json, { maxKeys: 4 });

/** An object with `metadata.managedFields` (or not) among other members, in any order. */
const object = fc
  .record({
    before: members,
    metaBefore: members,
    managed: fc.option(json, { nil: undefined }),
    metaAfter: members,
    after: members,
    metaIsObject: fc.boolean(),
  })
  .map(({ before, metaBefore, managed, metaAfter, after, metaIsObject }) => {
    const metadata: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(metaBefore)) if (k !== "managedFields") metadata[k] = v;
    if (managed !== undefined) metadata.managedFields = managed;
    for (const [k, v] of Object.entries(metaAfter)) if (k !== "managedFields") metadata[k] = v;
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(before)) if (k !== "metadata") o[k] = v;
    o.metadata = metaIsObject ? metadata : managed;
    for (const [k, v] of Object.entries(after)) if (k !== "metadata") o[k] = v;
    return o;
  });

/** JSON.parse of the whole text, then the member deleted. */
const expected = (text: string) => {
  const copy = JSON.parse(text) as Record<string, unknown>;
  const metadata = copy.metadata;
  if (metadata && typeof metadata === "object" && !Array.isArray(metadata)) delete (metadata as Record<string, unknown>).managedFields;
  return copy;
};

describe("withoutMember: metadata.managedFields cut from the text", () => {
  it("parses to the object without it, compact or indented (property)", () => {
    fc.assert(
      fc.property(object, fc.constantFrom(undefined, 1, "\t", "\r\n "), (o, space) => {
        const text = JSON.stringify(o, null, space);
        expect(JSON.parse(withoutMember(text, PATH))).toEqual(expected(text));
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    { what: "first of several", text: '{"metadata":{"managedFields":[{"a":1}],"name":"p"}}', left: '{"metadata":{"name":"p"}}' },
    { what: "last of several", text: '{"metadata":{"name":"p","managedFields":[]}}', left: '{"metadata":{"name":"p"}}' },
    { what: "alone", text: '{"metadata":{"managedFields":[{"k:{\\"ip\\":\\"10.0.0.1\\"}":{}}]}}', left: '{"metadata":{}}' },
    // Controls: the same key anywhere else is data, and stays.
    { what: "at the top level", text: '{"managedFields":[1],"metadata":{}}', left: '{"managedFields":[1],"metadata":{}}' },
    { what: "in a ConfigMap's data", text: '{"metadata":{},"data":{"managedFields":"x"}}', left: '{"metadata":{},"data":{"managedFields":"x"}}' },
    { what: "in an annotation", text: '{"metadata":{"annotations":{"managedFields":"[]"}}}', left: '{"metadata":{"annotations":{"managedFields":"[]"}}}' },
    { what: "in a string", text: '{"metadata":{"name":"\\"managedFields\\":1"}}', left: '{"metadata":{"name":"\\"managedFields\\":1"}}' },
    { what: "not JSON (left to JSON.parse)", text: '{"metadata":{"managedFields"[]}}', left: '{"metadata":{"managedFields"[]}}' },
  ])("$what", ({ text, left }) => {
    expect(withoutMember(text, PATH)).toBe(left);
  });

  it("a watch event's object, one level down", () => {
    const line = '{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"p","managedFields":[{"manager":"kubelet"}]}}}';
    expect(JSON.parse(withoutMember(line, ["object", ...PATH]))).toEqual({ type: "MODIFIED", object: { kind: "Pod", metadata: { name: "p" } } });
  });
});
