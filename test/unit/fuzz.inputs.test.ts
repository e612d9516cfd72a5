import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { stringify } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { readDocument, UsageError } from "../../src/cli/readInput.js";
import { loadSnapshot } from "../../src/core/velero/objects.js";
import { DEFAULT_POLICY } from "../../src/core/policy.js";
import { describeRefusal, readPolicyText } from "../../src/policy/document.js";
import { parseTrace } from "../../src/sim/trace.js";
import { runCli, scratch } from "./support/cli.js";

// Bad input at the policy loader and the snapshot and trace readers: whatever the text, each
// gives a value or one clean line naming the field (or YAML position); never an exception
// escaping, never a hang. YAML bombs (alias expansion, deep nesting) included.

const RUNS = 400;
let tried = 0;
afterAll(() => {
  console.log(`inputs fuzz: ${tried} inputs tried`);
});

const oneLine = (s: string) => s.length > 0 && !s.includes("\n");

/** Runs `f`; a throw of anything but a UsageError with one line fails the property. */
function cleanOrUsageError<T>(f: () => T): T | UsageError {
  try {
    return f();
  } catch (e) {
    if (!(e instanceof UsageError)) throw new Error(`escaped: ${(e as Error)?.stack ?? String(e)}`);
    expect(oneLine(e.message), e.message).toBe(true);
    return e;
  }
}

const dir = mkdtempSync(join(tmpdir(), "bg-fuzz-inputs-"));
let fileSeq = 0;
/** Writes `text` to a fresh file and reads it as the CLI does. */
const readAsCli = (text: string) => {
  tried++;
  const path = join(dir, `doc-${++fileSeq}.yaml`);
  writeFileSync(path, text);
  return cleanOrUsageError(() => readDocument(path, "snapshot"));
};

// Text that is YAML-ish: arbitrary strings, YAML of arbitrary values, and YAML syntax soup.
const yamlSoup = fc
  .array(
    fc.constantFrom(
      "{",
      "}",
      "[",
      "]",
      ":",
      "- ",
      "&a ",
      "*a ",
      "!!str ",
      "!!binary ",
      "? ",
      "|",
      ">",
      "\n",
      "  ",
      "#",
      "---\n",
      "...\n",
      '"',
      "'",
      ",",
      "a",
      "1",
      "null",
      "%YAML 1.2\n",
      "<<: *a\n",
      "\t",
    ),
    { maxLength: 60 },
  )
  .map((xs) => xs.join(""));
const text = fc.oneof(
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.jsonValue({ maxDepth: 5 }).map((v) => stringify(v)),
  fc.json(),
  yamlSoup,
);

// Bombs: alias expansion ("billion laughs") and nesting far deeper than any real document.
const laughs = (levels: number) =>
  [
    "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]",
    ...Array.from({ length: levels }, (_, i) => `a${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(", ")}]`),
  ].join("\n") + "\n";
const BOMBS: { name: string; doc: string }[] = [
  { name: "billion laughs (10^9 strings through aliases)", doc: laughs(8) },
  { name: "flow sequences nested 10,000 deep", doc: `${"[".repeat(10_000)}${"]".repeat(10_000)}\n` },
  { name: "flow maps nested 10,000 deep", doc: `${"{a: ".repeat(10_000)}1${"}".repeat(10_000)}\n` },
  { name: "block maps nested 2,000 deep", doc: Array.from({ length: 2_000 }, (_, i) => `${" ".repeat(i)}a:`).join("\n") + " 1\n" },
  {
    name: "a List whose backup spec nests 10,000 deep",
    doc: `kind: List\nitems:\n- kind: Backup\n  metadata: {name: b, namespace: velero}\n  spec: {labelSelector: ${"{a: ".repeat(10_000)}1${"}".repeat(10_000)}}\n`,
  },
];

describe("the policy document parser (ConfigMap key policy.yaml)", () => {
  const check = (doc: string) => {
    tried++;
    const r = readPolicyText(doc);
    if (r.ok) return;
    expect(oneLine(describeRefusal(r)), describeRefusal(r)).toBe(true);
    expect(r.error.length).toBeGreaterThan(0);
  };

  it("arbitrary text: a policy or a refusal naming the field or position, never a throw", () => {
    fc.assert(fc.property(text, check), { numRuns: RUNS, seed: 8 });
  });

  it("valid documents with one field set to anything: refused naming exactly that field, or accepted", () => {
    const fields = Object.keys(DEFAULT_POLICY) as (keyof typeof DEFAULT_POLICY)[];
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.jsonValue({ maxDepth: 3 }), (field, value) => {
        tried++;
        const r = readPolicyText(stringify({ ...DEFAULT_POLICY, [field]: value }));
        if (!r.ok) expect(r.field === field || r.field.startsWith(`${field}.`), `${field}: ${describeRefusal(r)}`).toBe(true);
      }),
      { numRuns: RUNS, seed: 8 },
    );
  });

  it.each(BOMBS)("$name: refused quickly with one line", ({ doc }) => {
    const t = Date.now();
    check(doc);
    expect(readPolicyText(doc).ok).toBe(false);
    expect(Date.now() - t).toBeLessThan(5_000);
  });

  it("alias expansion is capped (yaml's maxAliasCount): the billion laughs are refused as such", () => {
    const r = readPolicyText(laughs(8));
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : r.error).toMatch(/alias/i);
  });
});

describe("the snapshot reader (plan --snapshot): file text, then loadSnapshot", () => {
  const check = (doc: string) => {
    const read = readAsCli(doc);
    if (read instanceof UsageError) return;
    const loaded = loadSnapshot(read);
    if (!loaded.ok) expect(oneLine(loaded.error), loaded.error).toBe(true);
  };

  it("arbitrary text: a value or one UsageError line; loadSnapshot then a snapshot or one line", () => {
    fc.assert(fc.property(text, check), { numRuns: RUNS, seed: 8 });
  });

  it("Lists of arbitrary objects of the kinds the core reads: a snapshot or one line naming item and field", () => {
    const kinds = fc.constantFrom("Namespace", "Pod", "PersistentVolumeClaim", "PersistentVolume", "ConfigMap", "Backup", "Secret");
    const item = fc.record(
      {
        kind: kinds,
        metadata: fc.oneof(fc.record({ name: fc.string({ minLength: 1 }), namespace: fc.string() }), fc.jsonValue({ maxDepth: 2 })),
        spec: fc.jsonValue({ maxDepth: 4 }),
        status: fc.jsonValue({ maxDepth: 2 }),
        data: fc.jsonValue({ maxDepth: 2 }),
      },
      { requiredKeys: ["kind"] },
    );
    fc.assert(
      fc.property(fc.array(item, { maxLength: 6 }), (items) => {
        tried++;
        const loaded = loadSnapshot({ kind: "List", items });
        if (!loaded.ok) expect(loaded.error).toMatch(/^items\[\d+\] \S+ .*: .+/);
      }),
      { numRuns: RUNS, seed: 8 },
    );
  });

  it.each(BOMBS)("$name: one clean line, never a stack overflow or a hang", ({ doc }) => {
    const t = Date.now();
    const read = readAsCli(doc);
    if (!(read instanceof UsageError)) {
      const loaded = loadSnapshot(read);
      expect(loaded.ok).toBe(false);
      if (!loaded.ok) expect(oneLine(loaded.error)).toBe(true);
    }
    expect(Date.now() - t).toBeLessThan(5_000);
  });
});

describe("the trace reader (simulate --trace)", () => {
  const validTrace = {
    t0: "2026-01-01T00:00:00Z",
    cluster: { kind: "List", items: [{ kind: "Namespace", metadata: { name: "shop" } }] },
    backups: [{ name: "a", arrival: 0, duration: 60, spec: { includedNamespaces: ["shop"] } }],
  };
  const check = (doc: unknown) => {
    tried++;
    const r = parseTrace(doc, "fuzz");
    if (!r.ok) expect(oneLine(r.error), r.error).toBe(true);
  };

  it("arbitrary documents: a trace or one line naming the field", () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 5 }), check), { numRuns: RUNS, seed: 8 });
  });

  it("a valid trace with a field replaced by anything: a trace or one line naming that field", () => {
    const paths: [string, (t: typeof validTrace, v: unknown) => unknown][] = [
      ["t0", (t, v) => ({ ...t, t0: v })],
      ["cluster", (t, v) => ({ ...t, cluster: v })],
      ["policy", (t, v) => ({ ...t, policy: v })],
      ["backups", (t, v) => ({ ...t, backups: v })],
      ["backups[0]", (t, v) => ({ ...t, backups: [v] })],
      ["backups[0].spec", (t, v) => ({ ...t, backups: [{ ...t.backups[0], spec: v }] })],
      ["backups[0].arrival", (t, v) => ({ ...t, backups: [{ ...t.backups[0], arrival: v }] })],
      ["cluster.items", (t, v) => ({ ...t, cluster: { kind: "List", items: v } })],
    ];
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue({ maxDepth: 4 }), ([field, set], value) => {
        tried++;
        const r = parseTrace(set(validTrace, value), "fuzz");
        if (!r.ok) {
          expect(oneLine(r.error), r.error).toBe(true);
          expect(r.error.startsWith(field.split(/[.[]/)[0]!), `${field}: ${r.error}`).toBe(true);
        }
      }),
      { numRuns: RUNS, seed: 8 },
    );
  });

  it("a backup spec nested 10,000 deep is refused naming the backup's spec", () => {
    let spec = "1";
    for (let i = 0; i < 10_000; i++) spec = `{"a":${spec}}`;
    const r = parseTrace({ ...validTrace, backups: [{ ...validTrace.backups[0], spec: JSON.parse(`{"labelSelector":${spec}}`) }] }, "fuzz");
    expect(r).toEqual({ ok: false, error: "backups[0].spec.labelSelector.a.a: nests deeper than 32 levels below here" });
  });
});

describe("the CLI on bombs: exit 2 with one line (a real process each)", () => {
  const file = scratch("bg-fuzz-cli-");
  const commands: { name: string; args: (p: string) => string[] }[] = [
    { name: "plan --snapshot", args: (p) => ["plan", "--snapshot", p] },
    { name: "plan --policy", args: (p) => ["plan", "--snapshot", "test/fixtures/shop.yaml", "--policy", p] },
    { name: "simulate --trace", args: (p) => ["simulate", "--trace", p] },
  ];
  const cases = commands.flatMap(({ name, args }) => [BOMBS[0]!, BOMBS[2]!].map((bomb) => ({ name: `${name}: ${bomb.name}`, args, doc: bomb.doc })));
  it.each(cases)(
    "$name",
    async ({ name, args, doc }) => {
      const { code, stdout, stderr } = await runCli(...args(file(`${name.replace(/\W+/g, "-")}.yaml`, doc)));
      expect(code, stderr).toBe(2);
      expect(stdout).toBe("");
      expect(stderr).toMatch(/^backup-gate: [^\n]+\n$/);
    },
    60_000,
  );
});
