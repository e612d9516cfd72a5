import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";

// Help as kubectl gives it: every command answers --help (and `help COMMAND`) on stdout with
// exit code 0, naming each of its flags; the version is package.json's.

const PROCESS_TIMEOUT = 60_000;
const KUBE = ["--kubeconfig", "--context"];

const COMMANDS: readonly { command: string; flags: readonly string[] }[] = [
  { command: "plan", flags: ["--snapshot", "--level", "--policy", "--now", "--human"] },
  { command: "queue", flags: [...KUBE, "--gate-namespace", "-o, --output", "--json", "-w, --watch"] },
  { command: "explain", flags: [...KUBE, "--gate-namespace", "-f, --filename", "-o, --output", "--json"] },
  {
    command: "serve",
    flags: [
      ...KUBE,
      "--namespace",
      "--service",
      "--webhook-configuration",
      "--policy-configmap",
      "--host",
      "--port",
      "--tls-dir",
      "--ca-injected",
      "--ca-bundle-check-seconds",
      "--extra-san",
      "--register-url",
      "--identity",
    ],
  },
  { command: "simulate", flags: ["--trace", "--level", "--concurrency", "--policy", "--html"] },
  { command: "version", flags: ["-o, --output"] },
  { command: "completion", flags: [] },
];

describe("help for every command", () => {
  it.each(COMMANDS)(
    "$command --help exits 0 and lists its flags",
    async ({ command, flags }) => {
      const [viaFlag, viaHelp] = await Promise.all([runCli(command, "--help"), runCli("help", command)]);
      expect(viaFlag.code).toBe(0);
      expect(viaFlag.stderr).toBe("");
      expect(viaFlag.stdout).toMatch(new RegExp(`^Usage: backup-gate ${command} `));
      for (const flag of [...flags, "-h, --help"]) expect(viaFlag.stdout).toMatch(new RegExp(`^  ${flag}\\b`, "m"));
      expect(viaHelp).toEqual(viaFlag);
    },
    PROCESS_TIMEOUT,
  );

  it(
    "the top level lists every command with its usage line",
    async () => {
      const { code, stdout } = await runCli("--help");
      expect(code).toBe(0);
      for (const { command } of COMMANDS) expect(stdout).toMatch(new RegExp(`^ {14}backup-gate ${command} `, "m"));
    },
    PROCESS_TIMEOUT,
  );

  it(
    "--version and `version` print package.json's version",
    async () => {
      const { version } = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
      const [flag, command, json] = await Promise.all([runCli("--version"), runCli("version"), runCli("version", "-o", "json")]);
      expect(flag).toEqual({ code: 0, stdout: `${version}\n`, stderr: "" });
      expect(command.stdout).toBe(`backup-gate ${version} (Node.js ${process.version})\n`);
      expect(JSON.parse(json.stdout)).toEqual({ backupGate: version, node: process.version });
    },
    PROCESS_TIMEOUT,
  );

  it.each([
    { name: "an unknown command", args: ["frobnicate"], message: /^backup-gate: Unknown command 'frobnicate'\n$/ },
    {
      name: "an output format queue does not have",
      args: ["queue", "-o", "xml"],
      message: /^backup-gate: Option '-o, --output <format>' argument 'xml' is invalid\. Allowed choices are json, yaml, wide\.\n$/,
    },
    { name: "--json with another -o", args: ["queue", "--json", "-o", "yaml"], message: /^backup-gate: --json and -o yaml ask for two formats; give one\n$/ },
    {
      name: "a context the kubeconfig does not have",
      args: ["queue", "--kubeconfig", "test/fixtures/kubeconfig-two-contexts.yaml", "--context", "nope"],
      message: /^backup-gate: context "nope" is not in the kubeconfig \(it has: one, two\)\n$/,
    },
    {
      name: "serve --ca-injected without the directory it serves",
      args: ["serve", "--ca-injected"],
      message: /^backup-gate: --ca-injected needs --tls-dir: the certificate the injector's CA signed\n$/,
    },
    { name: "an extra argument", args: ["queue", "extra"], message: /^backup-gate: Too many arguments for 'queue'\. Expected 0 arguments but got 1\.\n$/ },
  ])(
    "$name: one line, exit code 2",
    async ({ args, message }) => {
      const { code, stdout, stderr } = await runCli(...args);
      expect({ code, stdout }).toEqual({ code: 2, stdout: "" });
      expect(stderr).toMatch(message);
    },
    PROCESS_TIMEOUT,
  );
});
