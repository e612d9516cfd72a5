import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// A stand-in for a gate: it runs until SIGTERM, which it answers as serve does (log, exit 0).
const SERVER = "setInterval(() => {}, 1000); process.on('SIGTERM', () => { console.log('SIGTERM'); process.exit(0); });";
const PRELOAD = join(process.cwd(), "test/support/exitWithHarness.ts");

/** Starts the stand-in with a stdin pipe, closes the pipe as a dying test process would, and reports what happened within `waitMs`. */
async function closeStdin(preload: boolean, waitMs: number): Promise<{ exited: boolean; stdout: string }> {
  const args = ["--import", "tsx", ...(preload ? ["--import", PRELOAD] : []), "-e", SERVER];
  const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] });
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<boolean>((r) => child.on("exit", () => r(true)));
  await new Promise((r) => setTimeout(r, 1500)); // started and listening
  child.stdin.end();
  const result = await Promise.race([exited, new Promise<boolean>((r) => setTimeout(() => r(false), waitMs))]);
  child.kill("SIGKILL");
  return { exited: result, stdout };
}

describe("gates started by the harness stop with it", () => {
  it("stdin closing (the test process gone) stops the gate through its own SIGTERM handling", async () => {
    const r = await closeStdin(true, 5000);
    expect(r).toEqual({ exited: true, stdout: "SIGTERM\n" });
  });

  it("positive control: without the preload, the stand-in outlives its closed stdin", async () => {
    const r = await closeStdin(false, 2000);
    expect(r.exited).toBe(false);
  });
});
