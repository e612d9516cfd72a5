import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// src/core decides; it must not do I/O or read the clock. eslint enforces this while editing;
// this test enforces it for any tool that skips lint.
const CORE = "src/core";
const ALLOWED = new Set(["zod", "yaml", "picomatch"]);

describe("src/core is pure", () => {
  const files = readdirSync(CORE).filter((f) => f.endsWith(".ts"));
  it.each(files)("%s imports only src/core and pure libraries, and reads no clock", (f) => {
    const text = readFileSync(join(CORE, f), "utf8");
    const imports = [...text.matchAll(/^import[^"']*["']([^"']+)["']/gm)].map((m) => m[1]!);
    for (const spec of imports) {
      expect(spec.startsWith("./") || ALLOWED.has(spec), `${f} imports ${spec}`).toBe(true);
    }
    expect(text).not.toMatch(/Date\.now\(|new Date\(\)|performance\.now|Math\.random|process\.|setTimeout|setInterval/);
  });
});
