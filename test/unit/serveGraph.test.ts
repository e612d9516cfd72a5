/**
 * `serve` never loads @kubernetes/client-node for the kubeconfigs it reads itself: importing it
 * costs 73 MiB of RSS, half of serve's memory goal (docs/performance.md). A child process runs
 * the CLI's entry point with a resolve hook that logs every module it loads. The control shows
 * the hook sees client-node when a kubeconfig needs it, even loaded lazily.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "serve-graph-"));

/** Every module a `node` run of `args` resolved, as "URL <- importer". */
function modulesLoaded(name: string, args: string[]): string[] {
  const log = join(dir, `${name}.log`);
  writeFileSync(log, "");
  const run = spawnSync(process.execPath, ["--import", "tsx", "--import", "./test/support/importLog/register.mjs", ...args], {
    cwd: root,
    env: { ...process.env, IMPORT_LOG: log },
    encoding: "utf8",
    timeout: 60_000,
  });
  expect(run.status, run.stderr).toBe(0);
  return readFileSync(log, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => line.replace("\t", " <- "));
}

/** client-node's modules, each with the module that imported it. */
const clientNode = (urls: string[]) =>
  urls.filter((u) => u.includes("/@kubernetes/client-node/") && !u.includes(` <- file://${root}/node_modules/@kubernetes/`));

function kubeconfigWith(user: Record<string, unknown>): string {
  const file = join(dir, `kubeconfig-${Object.keys(user).join("-")}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      "current-context": "main",
      clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:1" } }],
      users: [{ name: "u", user }],
      contexts: [{ name: "main", context: { cluster: "c", user: "u" } }],
    }),
  );
  return file;
}

const load = (file: string) => `import { loadKubeAccess } from "./src/kube/config.ts"; await loadKubeAccess({ kubeconfig: ${JSON.stringify(file)} });`;

describe("serve's modules", () => {
  it("the CLI, serve included, loads its modules without client-node", () => {
    const urls = modulesLoaded("cli", ["src/cli/main.ts", "--version"]);
    expect(urls.some((u) => u.includes("/src/cli/serve.ts <- "))).toBe(true);
    expect(urls.some((u) => u.includes("/src/cluster/cache.ts <- "))).toBe(true);
    expect(clientNode(urls)).toEqual([]);
  });

  it("a kubeconfig with a token loads without client-node", () => {
    expect(clientNode(modulesLoaded("token", ["--input-type=module", "-e", load(kubeconfigWith({ token: "t" }))]))).toEqual([]);
  });

  it("control: a kubeconfig with an exec plugin loads client-node, and the log shows it", () => {
    const file = kubeconfigWith({ exec: { apiVersion: "client.authentication.k8s.io/v1", command: "true" } });
    expect(clientNode(modulesLoaded("exec", ["--input-type=module", "-e", load(file)])).length).toBeGreaterThan(0);
  });
});
