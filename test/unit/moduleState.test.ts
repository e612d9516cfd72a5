import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

// No module-level mutable state in src/: a cache or a counter belongs to an object that its
// caller creates and holds (a view, a scope cache, an engine), so that two engines in one
// process, or two tests, never share it. Constant tables are fine when their type says they
// are read only (ReadonlySet, ReadonlyMap, readonly arrays): the compiler then refuses writes.

const SRC = "src";
const COLLECTIONS = new Set(["Map", "Set", "WeakMap", "WeakSet"]);
const MUTATORS = ["push", "pop", "shift", "unshift", "splice", "sort", "reverse", "fill", "copyWithin"];

interface Finding {
  readonly line: number;
  readonly name: string;
  readonly why: string;
}

const isReadonlyType = (type: ts.TypeNode | undefined): boolean =>
  type !== undefined &&
  ((ts.isTypeOperatorNode(type) && type.operator === ts.SyntaxKind.ReadonlyKeyword) ||
    (ts.isTypeReferenceNode(type) && /^Readonly/.test(type.typeName.getText())));

const isAsConst = (e: ts.Expression): boolean => ts.isAsExpression(e) && e.type.getText() === "const";

function mutatedLater(text: string, name: string): boolean {
  const id = name.replace(/\$/g, "\\$");
  return new RegExp(`\\b${id}\\.(${MUTATORS.join("|")})\\(|\\b${id}\\[[^\\]]*\\]\\s*=[^=]|\\b${id}\\.length\\s*=[^=]`).test(text);
}

function declarationFinding(decl: ts.VariableDeclaration, text: string): string | undefined {
  const init = decl.initializer;
  if (!init || !ts.isIdentifier(decl.name)) return undefined;
  if (ts.isNewExpression(init) && ts.isIdentifier(init.expression) && COLLECTIONS.has(init.expression.text)) {
    const kind = init.expression.text;
    if (kind.startsWith("Weak") || !isReadonlyType(decl.type)) return `a module-level new ${kind}`;
  }
  if (ts.isArrayLiteralExpression(init) && !isReadonlyType(decl.type) && mutatedLater(text, decl.name.text)) {
    return "a module-level array that is changed later";
  }
  return undefined;
}

/** Module-level `let`/`var`, mutable collections, changed arrays and static fields that are not readonly. */
export function moduleStateIn(text: string, file = "x.ts"): Finding[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const findings: Finding[] = [];
  const lineOf = (n: ts.Node) => source.getLineAndCharacterOfPosition(n.getStart()).line + 1;
  for (const statement of source.statements) {
    if (ts.isVariableStatement(statement)) {
      const list = statement.declarationList;
      const isConst = (list.flags & ts.NodeFlags.Const) !== 0;
      for (const decl of list.declarations) {
        const name = decl.name.getText();
        const why = isConst ? declarationFinding(decl, text) : `a module-level ${list.flags & ts.NodeFlags.Let ? "let" : "var"}`;
        if (why && !(decl.initializer && isAsConst(decl.initializer))) findings.push({ line: lineOf(decl), name, why });
      }
    }
    if (ts.isClassDeclaration(statement)) {
      for (const member of statement.members) {
        const modifiers = ts.canHaveModifiers(member) ? (ts.getModifiers(member) ?? []) : [];
        const has = (k: ts.SyntaxKind) => modifiers.some((m) => m.kind === k);
        if (ts.isPropertyDeclaration(member) && has(ts.SyntaxKind.StaticKeyword) && !has(ts.SyntaxKind.ReadonlyKeyword)) {
          findings.push({
            line: lineOf(member),
            name: `${statement.name?.text ?? "class"}.${member.name.getText()}`,
            why: "a static field that is not readonly",
          });
        }
      }
    }
  }
  return findings;
}

describe("src/ keeps no module-level mutable state", () => {
  const files = readdirSync(SRC, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));

  it.each(files)("%s", (f) => {
    const found = moduleStateIn(readFileSync(join(SRC, f), "utf8"), f).map((x) => `${f}:${x.line} ${x.name}: ${x.why}`);
    expect(found).toEqual([]);
  });

  it("the check finds each kind of module-level state (positive control)", () => {
    const planted = [
      "let seq = 0;",
      "export var hits = 0;",
      "const cache = new Map<string, number>();",
      "const seen: Set<string> = new Set();",
      "const byPod = new WeakMap<object, string>();",
      "const pods: ReadonlyMap<object, string> = new WeakMap();",
      "const scratch: string[] = [];",
      "function use() { scratch.push('x'); }",
      "const order = [1, 2];",
      "export function reset() { order.length = 0; }",
      "class Engine { static count = 0; }",
    ].join("\n");
    expect(moduleStateIn(planted).map(({ name, why }) => ({ name, why }))).toEqual([
      { name: "seq", why: "a module-level let" },
      { name: "hits", why: "a module-level var" },
      { name: "cache", why: "a module-level new Map" },
      { name: "seen", why: "a module-level new Set" },
      { name: "byPod", why: "a module-level new WeakMap" },
      { name: "pods", why: "a module-level new WeakMap" },
      { name: "scratch", why: "a module-level array that is changed later" },
      { name: "order", why: "a module-level array that is changed later" },
      { name: "Engine.count", why: "a static field that is not readonly" },
    ]);
  });

  it("read-only tables and state inside functions and instances pass", () => {
    const allowed = [
      "const NEVER: ReadonlySet<string> = new Set(['a']);",
      "export const TYPES: ReadonlyMap<string, string> = new Map([['a', 'b']]);",
      "const NAMES = ['a', 'b'] as const;",
      "const EMPTY: readonly number[] = [];",
      "const LIST = ['a', 'b'];",
      "const TABLE = { a: 1 };",
      "function f() { let n = 0; const m = new Map(); m.set('a', n++); return m; }",
      "class Cache { readonly #entries = new Map(); static readonly LIMIT = 4; private hits = 0; }",
    ].join("\n");
    expect(moduleStateIn(allowed)).toEqual([]);
  });
});
