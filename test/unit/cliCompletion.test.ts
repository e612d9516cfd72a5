import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";

// Shell completion as a user's shell runs it: the script from `completion SHELL` is checked by
// the shell's own parser and sourced, and a completion call goes back to the CLI (here a shell
// function running it from the checkout, as @bomb.sh/tab's README suggests for development).

const PROCESS_TIMEOUT = 90_000;
const REPO = resolve(import.meta.dirname, "../..");
const BASH_COMPLETION = "/usr/share/bash-completion/bash_completion";
const run = promisify(execFile);
const scripts = new Map<string, Promise<string>>();
const script = (shell: string) => {
  if (!scripts.has(shell)) scripts.set(shell, writeScript(shell));
  return scripts.get(shell)!;
};
const writeScript = async (shell: string) => {
  const { code, stdout, stderr } = await runCli("completion", shell);
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
  const file = join(mkdtempSync(join(tmpdir(), "bg-completion-")), `backup-gate.${shell}`);
  writeFileSync(file, stdout);
  return file;
};
const has = (shell: string) => existsSync(`/usr/bin/${shell}`) || existsSync(`/bin/${shell}`);
const CLI = `node --import tsx ${REPO}/src/cli/main.ts`;

/** COMPREPLY after the user typed `line` and pressed TAB, in bash with bash-completion loaded. */
async function bashComplete(file: string, words: string[]): Promise<string[]> {
  const program = [
    `source ${BASH_COMPLETION}`,
    `backup-gate() { ${CLI} "$@"; }`,
    `source ${file}`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}`,
    `COMP_LINE='${words.join(" ")}'; COMP_POINT=\${#COMP_LINE}`,
    "__backup_gate_complete 2>/dev/null",
    `printf '%s\\n' "\${COMPREPLY[@]}"`,
  ].join("\n");
  const { stdout } = await run("bash", ["-c", program], { cwd: REPO });
  return stdout.split("\n").filter(Boolean);
}

describe("shell completion", () => {
  it.each([
    { name: "a command", words: ["backup-gate", "qu"], expected: ["queue"] },
    { name: "the commands", words: ["backup-gate", ""], expected: ["plan", "queue", "explain", "serve", "simulate", "version", "completion"] },
    { name: "-o's formats", words: ["backup-gate", "queue", "-o", ""], expected: ["json", "yaml", "wide"] },
    { name: "a flag", words: ["backup-gate", "queue", "--wa"], expected: ["--watch"] },
    { name: "--level's values", words: ["backup-gate", "plan", "--level", ""], expected: ["ItemBlock", "Namespace"] },
  ])(
    "bash: the script passes bash -n, sources, and completes $name",
    async ({ words, expected }) => {
      expect(existsSync(BASH_COMPLETION), "bash-completion (Debian package bash-completion) is needed, as for kubectl's").toBe(true);
      const file = await script("bash");
      await run("bash", ["-n", file]);
      const candidates = await bashComplete(file, words);
      for (const c of expected) expect(candidates).toContain(c);
    },
    PROCESS_TIMEOUT,
  );

  it(
    "bash, positive control: a prefix nothing has completes to nothing",
    async () => {
      expect(await bashComplete(await script("bash"), ["backup-gate", "zz"])).toEqual([]);
    },
    PROCESS_TIMEOUT,
  );

  it.runIf(has("zsh"))(
    "zsh: the script passes zsh -n and defines its completion function",
    async () => {
      const file = await script("zsh");
      await run("zsh", ["-n", file]);
      const { stdout } = await run("zsh", ["-c", `autoload -U compinit && compinit -u; source ${file}; whence -w _backup-gate || whence -w _backup_gate`]);
      expect(stdout).toMatch(/function/);
    },
    PROCESS_TIMEOUT,
  );

  it.runIf(has("fish"))(
    "fish: the script passes fish -n and `complete -C` returns the commands",
    async () => {
      const file = await script("fish");
      await run("fish", ["-n", file]);
      const { stdout } = await run("fish", ["-c", `function backup-gate; ${CLI} $argv; end; source ${file}; complete -C 'backup-gate que'`], { cwd: REPO });
      expect(stdout).toMatch(/^queue\b/m);
    },
    PROCESS_TIMEOUT,
  );

  it(
    "the completion protocol (what every script and kubectl call): candidates, then the directive",
    async () => {
      const { code, stdout } = await runCli("complete", "--", "explain", "-o", "");
      expect(code).toBe(0);
      expect(stdout.trimEnd().split("\n")).toEqual(["json\t", "yaml\t", "wide\t", ":4"]);
    },
    PROCESS_TIMEOUT,
  );
});
