import { spawnSync } from "node:child_process";

/**
 * Runs a TypeScript script in a node process of its own (for what a test cannot see from inside
 * its own heap) and returns the JSON its last line of output holds.
 */
export function lastJsonOf<T>(script: string, args: readonly string[], nodeFlags: readonly string[] = []): T {
  const run = spawnSync(process.execPath, ["--import", "tsx", ...nodeFlags, script, ...args], { encoding: "utf8", timeout: 60_000 });
  if (run.status !== 0) throw new Error(`${script} failed: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split("\n").at(-1)!) as T;
}
