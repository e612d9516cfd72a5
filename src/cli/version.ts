import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The version is package.json's: found by walking up from this file, which sits two levels
// below it in a checkout (src/cli) and three in a build (dist/src/cli).

export function version(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown; version?: unknown };
      if (pkg.name === "backup-gate" && typeof pkg.version === "string") return pkg.version;
    } catch {
      /* none here, or not JSON: look further up */
    }
    if (dirname(dir) === dir) return "unknown";
  }
}
