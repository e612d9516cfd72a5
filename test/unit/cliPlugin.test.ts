import { execFile } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { asInvoked, isPluginCompletion, programName } from "../../src/cli/program.js";
import { toolPath } from "../support/tools.js";

// The CLI as installed: the entry compiled by tsc (as `npm run build` makes it), found on PATH as
// `kubectl-backup_gate` and started by the real kubectl's plugin lookup (kubectl built from
// Kubernetes' own module by tools/build.sh, first on PATH), or as `backup-gate`.

const REPO = resolve(import.meta.dirname, "../..");
const FIXTURE = join(REPO, "test/fixtures/shop.yaml");
const run = promisify(execFile);

let bin: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "bg-plugin-"));
  const out = join(dir, "out");
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      extends: join(REPO, "tsconfig.json"),
      compilerOptions: { outDir: out, rootDir: REPO, sourceMap: false, typeRoots: [join(REPO, "node_modules/@types")] },
      include: [join(REPO, "src/cli/main.ts")],
    }),
  );
  await run(process.execPath, [join(REPO, "node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.json")]);
  // What an npm install provides around dist/: an ESM package and its dependencies.
  writeFileSync(join(out, "package.json"), JSON.stringify({ type: "module" }));
  symlinkSync(join(REPO, "node_modules"), join(out, "node_modules"));
  const entry = join(out, "src/cli/main.js");
  chmodSync(entry, 0o755);
  bin = join(dir, "bin");
  mkdirSync(bin);
  for (const name of ["kubectl-backup_gate", "kubectl_complete-backup_gate", "backup-gate"]) symlinkSync(entry, join(bin, name));
  symlinkSync(toolPath("kubectl"), join(bin, "kubectl"));
}, 60_000);

/** Runs a command with only the built binaries, node and the system's tools on PATH. */
async function sh(cmd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, PATH: [bin, dirname(process.execPath), "/usr/local/bin", "/usr/bin", "/bin"].join(":") };
  try {
    const { stdout, stderr } = await run(cmd, args, { env, cwd: tmpdir() });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const usageLines = (text: string) => text.split("\n").filter((l) => /^\s*(usage: )?(kubectl )?backup-gate [a-z<]/.test(l));

describe("the CLI under the name it was installed as", () => {
  it("`kubectl backup-gate help`, found by kubectl's plugin lookup, names `kubectl backup-gate` on every usage line", async () => {
    const { code, stdout } = await sh("kubectl", "backup-gate", "help");
    expect(code).toBe(0);
    expect(stdout).toMatch(/^usage: kubectl backup-gate <command> \[flags\]\n/);
    const lines = usageLines(stdout);
    expect(lines.length).toBeGreaterThanOrEqual(6); // usage, plan, queue, explain, serve, simulate
    for (const line of lines) expect(line).toMatch(/kubectl backup-gate /);
  });

  it("the same binary as `backup-gate` names `backup-gate` (the name is what changes the text)", async () => {
    const { code, stdout } = await sh("backup-gate", "help");
    expect(code).toBe(0);
    expect(stdout).toMatch(/^usage: backup-gate <command>/);
    expect(stdout).not.toMatch(/kubectl backup-gate/);
  });

  it("a mistake through kubectl gets one line and the usage, both naming `kubectl backup-gate`, and exit code 2", async () => {
    const { code, stdout, stderr } = await sh("kubectl", "backup-gate", "plan");
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/^kubectl backup-gate: --snapshot is required\nkubectl backup-gate plan --snapshot FILE/);
    expect(stderr).not.toMatch(/^backup-gate /m);
  });

  it("a real command runs through the plugin: plan on a dump of a cluster", async () => {
    const { code, stdout } = await sh("kubectl", "backup-gate", "plan", "--snapshot", FIXTURE, "--now", "2026-01-01T03:00:00Z");
    expect(code).toBe(0);
    expect(JSON.parse(stdout).promotions.map((p: { backup: string }) => p.backup)).toEqual(["shop-api"]);
  });
});

describe("kubectl's plugin completion (kubectl runs kubectl_complete-backup_gate)", () => {
  it.each([
    { name: "the commands", words: ["backup-gate", ""], expected: ["plan", "queue", "explain", "serve", "simulate"] },
    { name: "a command by prefix", words: ["backup-gate", "que"], expected: ["queue"] },
    { name: "-o's formats", words: ["backup-gate", "queue", "-o", ""], expected: ["json", "yaml", "wide"] },
  ])("`kubectl __complete $name` returns backup-gate's candidates", async ({ words, expected }) => {
    // `kubectl __complete` is what kubectl's own shell completion calls for every TAB.
    const { code, stdout } = await sh("kubectl", "__complete", ...words);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines.at(-1)).toBe(":4");
    for (const c of expected) expect(lines.map((l) => l.split("\t")[0])).toContain(c);
  });

  it("positive control: without kubectl_complete-backup_gate on PATH, kubectl has no candidates for the plugin", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bg-nocomp-"));
    symlinkSync(join(bin, "kubectl-backup_gate"), join(dir, "kubectl-backup_gate"));
    const env = { ...process.env, PATH: [dir, dirname(toolPath("kubectl")), dirname(process.execPath), "/usr/bin", "/bin"].join(":") };
    const { stdout } = await run(toolPath("kubectl"), ["__complete", "backup-gate", "que"], { env, cwd: tmpdir() });
    expect(stdout).not.toMatch(/^queue/m);
  });
});

describe("programName and asInvoked", () => {
  it.each([
    { path: "/usr/local/bin/kubectl-backup_gate", expected: "kubectl backup-gate" },
    { path: "C:\\bin\\kubectl-backup_gate.cmd".replaceAll("\\", "/"), expected: "kubectl backup-gate" },
    { path: "/usr/local/bin/backup-gate", expected: "backup-gate" },
    { path: "/work/main/src/cli/main.ts", expected: "backup-gate" },
    { path: "/opt/kubectl-backup-gate", expected: "backup-gate" }, // kubectl never looks for a dashed name
    { path: "/usr/local/bin/kubectl_complete-backup_gate", expected: "backup-gate" },
    { path: undefined, expected: "backup-gate" },
  ])("$path -> $expected", ({ path, expected }) => {
    expect(programName(path)).toBe(expected);
  });

  it.each([
    { path: "/usr/local/bin/kubectl_complete-backup_gate", expected: true },
    { path: "/usr/local/bin/kubectl-backup_gate", expected: false },
    { path: "/usr/local/bin/backup-gate", expected: false },
  ])("isPluginCompletion($path) is $expected", ({ path, expected }) => {
    expect(isPluginCompletion(path)).toBe(expected);
  });

  it("rewrites usage lines only, never names inside a line", () => {
    const text = "backup-gate plan --snapshot FILE\n  backup-gate queue\n  --namespace NS   default backup-gate\nbackup-gate-policy is the ConfigMap";
    expect(asInvoked(text, "kubectl backup-gate")).toBe(
      "kubectl backup-gate plan --snapshot FILE\n  kubectl backup-gate queue\n  --namespace NS   default backup-gate\nbackup-gate-policy is the ConfigMap",
    );
    expect(asInvoked(text, "backup-gate")).toBe(text);
  });
});
