import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

// src/core decides; it must not do I/O or read the clock. eslint enforces this while editing;
// this test enforces it for any tool that skips lint.
const CORE = "src/core";
const ALLOWED = new Set(["zod", "yaml", "picomatch"]);

describe("src/core is pure", () => {
  const files = readdirSync(CORE, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  const insideCore = (f: string, spec: string) => spec.startsWith(".") && !relative(resolve(CORE), resolve(CORE, dirname(f), spec)).startsWith("..");
  it.each(files)("%s imports only src/core and pure libraries, and reads no clock", (f) => {
    const text = readFileSync(join(CORE, f), "utf8");
    const imports = [...text.matchAll(/^(?:import|export)[^"';]*from ["']([^"']+)["']/gm)].map((m) => m[1]!);
    for (const spec of imports) {
      expect(insideCore(f, spec) || ALLOWED.has(spec), `${f} imports ${spec}`).toBe(true);
    }
    expect(text).not.toMatch(/Date\.now\(|new Date\(\)|performance\.now|Math\.random|process\.|setTimeout|setInterval/);
  });
});
