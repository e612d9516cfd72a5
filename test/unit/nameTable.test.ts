import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { NameTable } from "../../src/core/nameTable.js";

// A NameTable is a Map by name whose values come out in name order (src/core/nameTable.ts): the
// table's answers against a Map's, after any run of sets and deletes.

type Op = { kind: "set"; name: string; tag: number } | { kind: "delete"; name: string };

const names = fc.constantFrom("a", "b", "c", "db-0", "db-1", "db-10", "db-2", "web-0", "web-00", "Web-0", "z");
const ops = fc.array(
  fc.oneof(fc.record({ kind: fc.constant("set" as const), name: names, tag: fc.nat() }), fc.record({ kind: fc.constant("delete" as const), name: names })),
  { maxLength: 60 },
);

const inOrder = (xs: readonly string[]) => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

describe("NameTable", () => {
  it("answers as a Map by name would, with its items in name order", () => {
    fc.assert(
      fc.property(ops, (run: Op[]) => {
        const table = new NameTable<{ name: string; tag: number }>();
        const model = new Map<string, { name: string; tag: number }>();
        for (const op of run) {
          if (op.kind === "set") {
            const item = { name: op.name, tag: op.tag };
            table.set(item);
            model.set(op.name, item);
          } else expect(table.delete(op.name)).toBe(model.delete(op.name));
        }
        expect(table.size).toBe(model.size);
        expect([...table.keys()]).toEqual(inOrder([...model.keys()]));
        expect([...table.values()].map((x) => x.name)).toEqual(inOrder([...model.keys()]));
        expect(table.toArray()).toEqual([...table.values()]);
        for (const name of ["a", "b", "db-1", "db-10", "web-00", "Web-0", "z", "missing"]) {
          expect(table.get(name)).toBe(model.get(name));
          expect(table.has(name)).toBe(model.has(name));
          expect(table.indexOf(name)).toBe(inOrder([...model.keys()]).indexOf(name));
        }
      }),
    );
  });

  it.each([
    { what: "in name order (a first list)", order: ["a", "b", "c", "d"] },
    { what: "in reverse order", order: ["d", "c", "b", "a"] },
    { what: "shuffled", order: ["c", "a", "d", "b"] },
  ])("keeps items added $what in name order", ({ order }) => {
    const table = new NameTable<{ name: string }>();
    for (const name of order) table.set({ name });
    expect([...table.keys()]).toEqual(["a", "b", "c", "d"]);
  });

  it("replaces an item of the same name in place", () => {
    const table = new NameTable<{ name: string; v: number }>();
    table.set({ name: "a", v: 1 });
    table.set({ name: "b", v: 1 });
    table.set({ name: "a", v: 2 });
    expect(table.toArray()).toEqual([
      { name: "a", v: 2 },
      { name: "b", v: 1 },
    ]);
  });

  it("hands out a copy that later changes do not reach", () => {
    const table = new NameTable<{ name: string }>();
    table.set({ name: "b" });
    const copy = table.toArray();
    table.set({ name: "a" });
    table.delete("b");
    expect(copy).toEqual([{ name: "b" }]);
  });
});
