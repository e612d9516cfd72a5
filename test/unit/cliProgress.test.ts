import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";

// Long runs show progress on a terminal and nowhere else: `script` gives the CLI a
// pseudo-terminal as a user's shell does (it merges stdout and stderr); a pipe gets none.

const TRACE = "test/fixtures/sim-shop.yaml";
const CLEAR = "\r\u001b[2K";

async function onTerminal(...args: string[]): Promise<string> {
  const cmd = [process.execPath, "--import", "tsx", "src/cli/main.ts", ...args].map((a) => `'${a}'`).join(" ");
  return (await promisify(execFile)("script", ["-qec", cmd, "/dev/null"])).stdout;
}

describe("simulate progress", () => {
  it("on a terminal, names each strategy as it runs and clears the line before the report", async () => {
    const out = await onTerminal("simulate", "--trace", TRACE);
    const shown = [...out.matchAll(/simulating 4 backups: ([\w-]+) \((\d) of (\d)\)\.\.\./g)].map((m) => [m[1], m[2], m[3]]);
    expect(shown.length).toBeGreaterThanOrEqual(4);
    expect(shown.map(([, i]) => Number(i))).toEqual(shown.map((_, k) => k + 1));
    expect(shown.every(([, , n]) => Number(n) === shown.length)).toBe(true);
    expect(out).toContain(`${CLEAR}trace shop: 4 backups`);
  });

  it("through a pipe, stderr stays empty and stdout is the report alone", async () => {
    const { code, stdout, stderr } = await runCli("simulate", "--trace", TRACE);
    expect(code).toBe(0);
    expect(stderr).toBe("");
    expect(stdout).toMatch(/^trace shop: 4 backups/);
    expect(stdout).not.toContain("simulating");
  });
});
