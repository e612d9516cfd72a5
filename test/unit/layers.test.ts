import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, normalize } from "node:path";
import { describe, expect, it } from "vitest";

// The folders of src/ in layers, highest first: a folder may import only folders below it
// (docs/architecture.md). purity.test.ts holds src/core to its stricter rule.
const LAYERS = ["cli", "admission", "controller", "policy", "tls", "sim", "report", "cluster", "kube", "logging", "metrics", "core"];

// Inside src/core, the same for its folders; its top-level files (the model, the view, the
// policy) are the vocabulary at the bottom, named "(top)".
const CORE_LAYERS = ["decision", "conflict", "scope", "velero", "(top)"];

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly file: string;
}

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
  const rank = (f: string) => {
    const r = layers.indexOf(f);
    if (r < 0) throw new Error(`src/${f} is in no layer`);
    return r;
  };
  const found = new Map<string, string>();
  for (const e of edges) {
    if (rank(e.from) >= rank(e.to)) found.set(`${e.from} -> ${e.to}`, e.file);
  }
  return [...found].map(([pair, file]) => `${pair} (${file})`).sort();
}

/** The folders that import each other, directly or through others: one line per cycle. */
function cycles(edges: readonly Edge[]): string[] {
  const next = new Map<string, Set<string>>();
  for (const e of edges) next.set(e.from, (next.get(e.from) ?? new Set()).add(e.to));
  const reach = (from: string): Set<string> => {
    const seen = new Set<string>();
    const todo = [from];
    for (let f = todo.pop(); f !== undefined; f = todo.pop()) {
      for (const t of next.get(f) ?? [])
        if (!seen.has(t)) {
          seen.add(t);
          todo.push(t);
        }
    }
    return seen;
  };
  const reached = new Map([...next.keys()].map((f) => [f, reach(f)]));
  const found = new Set<string>();
  for (const [f, r] of reached) {
    if (!r.has(f)) continue;
    found.add(
      [...r]
        .filter((t) => reached.get(t)?.has(f))
        .sort()
        .join(" <-> "),
    );
  }
  return [...found].sort();
}

/** Imports that leave src/ (test/ fakes, say): production code ships none of them. */
const outsideSrc = (edges: readonly Edge[]) =>
  edges
    .filter((e) => e.to === "..")
    .map((e) => e.file)
    .sort();

const srcFolders = () =>
  readdirSync("src", { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();

describe("src/ imports point down the layers", () => {
  it("the layers name exactly the folders of src/", () => {
    expect([...LAYERS].sort()).toEqual(srcFolders());
  });

  it("the scan sees the imports between folders", () => {
    // Positive control for the scan itself: an empty edge list would pass every check below.
    const pairs = new Set(folderImports("src").map((e) => `${e.from} -> ${e.to}`));
    expect(pairs).toContain("cluster -> kube");
    expect(pairs).toContain("cli -> admission");
  });

  it("no import points up", () => {
    expect(upward(folderImports("src"), LAYERS)).toEqual([]);
  });

  it("no folders import each other", () => {
    expect(cycles(folderImports("src"))).toEqual([]);
  });

  it("nothing in src/ imports from outside it (the fakes live in test/)", () => {
    expect(outsideSrc(folderImports("src"))).toEqual([]);
  });

  it("an import of a test fake from src/ is caught", () => {
    const root = mkdtempSync(join(tmpdir(), "layers-"));
    try {
      mkdirSync(join(root, "admission"));
      writeFileSync(join(root, "admission", "engine.ts"), 'import { FakeClusterCache } from "../../test/support/fakes/clusterCache.js";\n');
      expect(outsideSrc(folderImports(root))).toEqual(["admission/engine.ts"]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("an import added from a lower folder to a higher one is caught", () => {
    const edges = [...folderImports("src"), { from: "kube", to: "cluster", file: "kube/events.ts" }];
    expect(upward(edges, LAYERS)).toEqual(["kube -> cluster (kube/events.ts)"]);
    expect(cycles(edges)).toEqual(["cluster <-> kube"]);
  });

  it("inside src/core, every folder is in a layer, and none points up", () => {
    const edges = folderImports("src/core", "(top)");
    // The check sees the core's own arrows (positive control): scope reads Velero's semantics.
    expect(edges.some((e) => e.from === "scope" && e.to === "velero") && edges.some((e) => e.from === "velero" && e.to === "(top)")).toBe(true);
    expect(upward(edges, CORE_LAYERS)).toEqual([]);
  });

  it.each([
    { case: "a lower folder importing a higher one", edges: [{ from: "core", to: "cluster", file: "core/x.ts" }], found: ["core -> cluster (core/x.ts)"] },
    {
      case: "two folders importing each other",
      edges: [
        { from: "tls", to: "policy", file: "tls/a.ts" },
        { from: "policy", to: "tls", file: "policy/b.ts" },
      ],
      found: ["tls -> policy (tls/a.ts)"],
    },
    { case: "imports that point down", edges: [{ from: "cli", to: "core", file: "cli/a.ts" }], found: [] },
  ])("the check finds $case", ({ edges, found }) => {
    expect(upward(edges, LAYERS)).toEqual(found);
  });

  it.each([
    { case: "two folders importing each other", imports: ["tls -> policy", "policy -> tls"], found: ["policy <-> tls"] },
    {
      case: "a cycle through three folders",
      imports: ["cli -> kube", "kube -> cluster", "cluster -> cli", "cli -> core"],
      found: ["cli <-> cluster <-> kube"],
    },
    { case: "two separate cycles", imports: ["a -> b", "b -> a", "c -> d", "d -> c"], found: ["a <-> b", "c <-> d"] },
    { case: "a diamond, no cycle", imports: ["cli -> policy", "cli -> tls", "policy -> core", "tls -> core"], found: [] },
  ])("the cycle check finds $case", ({ imports, found }) => {
    const edges = imports.map((i) => {
      const [from = "", to = ""] = i.split(" -> ");
      return { from, to, file: `${from}/x.ts` };
    });
    expect(cycles(edges)).toEqual(found);
  });
});
