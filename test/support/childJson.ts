import { execFile, spawnSync } from "node:child_process";

/**
 * Runs a TypeScript script in a node process of its own (for what a test cannot see from inside
 * its own heap) and returns the JSON its last line of output holds.
 */
export function lastJsonOf<T>(script: string, args: readonly string[], nodeFlags: readonly string[] = []): T {
  const run = spawnSync(process.execPath, childArgs(script, args, nodeFlags), { encoding: "utf8", timeout: 60_000 });
  if (run.status !== 0) throw new Error(`${script} failed: ${run.stderr}`);
  return lastJson(run.stdout);
}

/** `lastJsonOf` without blocking, for children that run side by side (e.g. each sits idle for seconds). */
export function lastJsonOfAsync<T>(script: string, args: readonly string[], nodeFlags: readonly string[] = [], timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, childArgs(script, args, nodeFlags), { encoding: "utf8", timeout: timeoutMs }, (error, stdout, stderr) =>
      error ? reject(new Error(`${script} failed: ${stderr || error.message}`)) : resolve(lastJson(stdout)),
    ),
  );
}

function childArgs(script: string, args: readonly string[], nodeFlags: readonly string[]): string[] {
  return ["--import", "tsx", ...nodeFlags, script, ...args];
}

function lastJson<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as T;
}
