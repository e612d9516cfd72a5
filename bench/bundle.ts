import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Bundles a TypeScript entry into one plain-JS file (dependencies left external, as
 * node_modules ships them), so that a bench's server runs as production runs it: without tsx's
 * loader thread, and without the name helper esbuild's keepNames (which tsx turns on) calls for
 * every function made at run time.
 */
export function bundle(entry: string, name: string): string {
  const dir = join(root, "node_modules", ".cache", "backup-gate-bench");
  mkdirSync(dir, { recursive: true });
  const out = join(dir, name);
  const r = spawnSync(
    join(root, "node_modules", ".bin", "esbuild"),
    [entry, "--bundle", "--platform=node", "--format=esm", "--packages=external", "--sourcemap", "--log-level=warning", `--outfile=${out}`],
    { stdio: "inherit" },
  );
  if (r.status !== 0) throw new Error(`esbuild failed on ${entry}`);
  return out;
}
