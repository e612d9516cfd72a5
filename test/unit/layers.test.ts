import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { describe, expect, it } from "vitest";

// The folders of src/ in layers, highest first: a folder may import only folders below it
// (docs/architecture.md). purity.test.ts holds src/core to its stricter rule.
const LAYERS = ["cli", "admission", "controller", "policy", "tls", "sim", "report", "cluster", "service", "metrics", "core"];

// Imports that still point up, each a debt to pay; the list must shrink, never grow.
const KNOWN_UPWARD = ["service -> cluster (service/events.ts)"];

// Inside src/core, the same for its folders; its top-level files (the model, the view, the
// policy) are the vocabulary at the bottom, named "(top)".
const CORE_LAYERS = ["decision", "conflict", "scope", "velero", "(top)"];
const CORE_KNOWN_UPWARD = ["(top) -> velero (objects.ts)"];

interface Edge { readonly from: string; readonly to: string; readonly file: string }

/** The folder a path under `root` lies in; a file directly under `root` lies in `top` when given. */
function folderOf(path: string, top: string | undefined): string {
  const [first, ...rest] = path.split("/");
  return top !== undefined && rest.length === 0 ? top : first!;
}

function folderImports(root: string, top?: string): Edge[] {
  const edges: Edge[] = [];
  for (const file of readdirSync(root, { recursive: true, encoding: "utf8" })) {
    if (!file.endsWith(".ts")) continue;
    const from = folderOf(file, top);
    const text = readFileSync(join(root, file), "utf8");
    for (const m of text.matchAll(/^(?:import|export)[^"';]*from ["'](\.[^"']+)["']/gm)) {
      const to = folderOf(normalize(join(dirname(file), m[1]!)), top);
      if (to !== from) edges.push({ from, to, file });
    }
  }
  return edges;
}

/** The imports that do not point down the layers, one line per folder pair. */
function upward(edges: readonly Edge[], layers: readonly string[]): string[] {
  const rank = (f: string) => { const r = layers.indexOf(f); if (r < 0) throw new Error(`src/${f} is in no layer`); return r; };
  const found = new Map<string, string>();
  for (const e of edges) {
    if (rank(e.from) >= rank(e.to)) found.set(`${e.from} -> ${e.to}`, e.file);
  }
  return [...found].map(([pair, file]) => `${pair} (${file})`).sort();
}

describe("src/ imports point down the layers", () => {
  it("every folder is in a layer, and only the known debts point up", () => {
    expect(upward(folderImports("src"), LAYERS)).toEqual(KNOWN_UPWARD);
  });

  it("inside src/core, every folder is in a layer, and only the known debts point up", () => {
    const edges = folderImports("src/core", "(top)");
    // The check sees the core's own arrows (positive control): scope reads Velero's semantics.
    expect(edges.some((e) => e.from === "scope" && e.to === "velero") && edges.some((e) => e.from === "velero" && e.to === "(top)")).toBe(true);
    expect(upward(edges, CORE_LAYERS)).toEqual(CORE_KNOWN_UPWARD);
  });

  it.each([
    { case: "a lower folder importing a higher one", edges: [{ from: "core", to: "cluster", file: "core/x.ts" }], found: ["core -> cluster (core/x.ts)"] },
    { case: "two folders importing each other", edges: [{ from: "tls", to: "policy", file: "tls/a.ts" }, { from: "policy", to: "tls", file: "policy/b.ts" }], found: ["tls -> policy (tls/a.ts)"] },
    { case: "imports that point down", edges: [{ from: "cli", to: "core", file: "cli/a.ts" }], found: [] },
  ])("the check finds $case", ({ edges, found }) => {
    expect(upward(edges, LAYERS)).toEqual(found);
  });
});
