#!/usr/bin/env node
import { Command, CommanderError, Help, Option } from "commander";
import { oneLine, kubeOptions, quiet } from "./commander.js";
import { addCompletion, complete } from "./completion.js";
import { formatOf, OUTPUT_FORMATS } from "./output.js";
import { planCommand, runPlan, type PlanOptions } from "./plan.js";
import { asInvoked, isPluginCompletion, programName } from "./program.js";
import { runExplain, runQueue, type LiveCommandOptions } from "./queue.js";
import { UsageError } from "./readInput.js";
import { runServe, serveCommand, serveOptions, type ServeFlags } from "./serve.js";
import { simulate, simulateCommand, type SimulateOptions } from "./simulate.js";
import { version } from "./version.js";
import { watchQueue } from "./watch.js";

const PROGRAM = programName(process.argv[1]);

/** Flags of `queue` and `explain` as commander gives them. */
interface LiveFlags extends LiveCommandOptions {
  readonly output?: string;
  readonly json?: boolean;
  readonly watch?: boolean;
  readonly filename?: string;
  readonly file?: string;
}

const outputOption = (formats: readonly string[]) =>
  new Option("-o, --output <format>", `output format: ${formats.join(", ")} (default: a table in plain words)`).choices(formats);
const print = (text: string) => {
  process.stdout.write(`${text}\n`);
};

/** Every command, its flags and its action; exit codes are set by `main`. */
function buildProgram(state: { exitCode: number }): Command {
  const program = new Command("backup-gate")
    .usage("<command> [flags]")
    .description("admission webhooks and a queue controller that let Velero run backups concurrently, and this CLI to see the queue")
    .version(version(), "--version", "print backup-gate's version")
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command");

  program.addCommand(
    planCommand().action((o: PlanOptions) => {
      print(runPlan(o, Date.now()));
    }),
  );

  program.addCommand(
    kubeOptions(new Command("queue"), true)
      .description("the live queue: position, priority, wait so far, waiting for, reason")
      .usage("[-o json|yaml|wide] [--watch] [--kubeconfig FILE] [--context NAME] [--gate-namespace NS]")
      .addOption(outputOption(OUTPUT_FORMATS))
      .option("--json", "same as -o json")
      .option("-w, --watch", "after the first table, redraw on every change the cluster's watches report")
      .action(async (o: LiveFlags) => {
        const format = formatOf(o);
        if (o.watch) await watchQueue(o, format);
        else print(await runQueue(o, format, Date.now()));
      }),
  );

  program.addCommand(
    kubeOptions(new Command("explain"), true)
      .description("why a backup waits (or would, for a file not yet created)")
      .usage("BACKUP | -f FILE [-o json|yaml|wide] [--kubeconfig FILE] [--context NAME] [--gate-namespace NS]")
      .argument("[backup]", "a Backup in Velero's namespace")
      .option("-f, --filename <file>", "a Backup not created yet (YAML or JSON): what it would meet")
      .addOption(new Option("--file <file>").hideHelp())
      .addOption(outputOption(OUTPUT_FORMATS))
      .option("--json", "same as -o json")
      .action(async (name: string | undefined, o: LiveFlags) => {
        const file = o.filename ?? o.file;
        print(await runExplain({ ...o, ...(name ? { name } : {}), ...(file ? { file } : {}) }, formatOf(o), Date.now()));
      }),
  );

  program.addCommand(
    serveCommand().action(async (o: ServeFlags) => {
      const options = serveOptions(o, process.env);
      // Returns once serving; the process then runs until SIGTERM.
      await runServe(options).catch((e: unknown) => {
        throw e instanceof UsageError ? e : new StartupError(`serve: ${(e as Error).message}`);
      });
    }),
  );

  program.addCommand(
    simulateCommand().action((o: SimulateOptions) => {
      const { output, failed } = simulate(o);
      print(output);
      if (failed) state.exitCode = 1;
    }),
  );

  program.addCommand(
    new Command("version")
      .description("print the version of this CLI (and of Node.js)")
      .usage("[-o json|yaml]")
      .addOption(new Option("-o, --output <format>", "json or yaml").choices(["json", "yaml"]))
      .action((o: { output?: "json" | "yaml" }) => {
        const info = { backupGate: version(), node: process.version };
        print(
          o.output === "json"
            ? JSON.stringify(info, null, 2)
            : o.output === "yaml"
              ? `backupGate: ${info.backupGate}\nnode: ${info.node}`
              : `backup-gate ${info.backupGate} (Node.js ${info.node})`,
        );
      }),
  );

  return program;
}

/** The top-level help: one usage line per command, as kubectl plugins print it. */
function rootHelp(program: Command): string {
  const commands = program.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden && c.name() !== "help");
  const width = Math.max(...commands.map((c) => c.name().length));
  return (
    asInvoked(
      [
        `usage: ${PROGRAM} <command> [flags]`,
        "",
        program.description(),
        "",
        "commands:",
        ...commands.flatMap((c) => [`  ${c.name().padEnd(width)}  ${c.description()}`, `  ${" ".repeat(width)}  backup-gate ${c.name()} ${c.usage()}`]),
        "",
        "flags:",
        "  -h, --help   show help (also COMMAND --help, and help COMMAND)",
        "  --version    print the version",
      ].join("\n"),
      PROGRAM,
    ) + "\n"
  );
}

class StartupError extends Error {}

// One entry for `backup-gate` and `kubectl backup-gate`: user mistakes print one line and exit
// 2; a serve that cannot start prints one line and exits 1; anything else is a bug and keeps
// its stack.
async function main(argv: string[]): Promise<number> {
  const state = { exitCode: 0 };
  const program = buildProgram(state);
  const completion = addCompletion(program);
  quiet(program.name(PROGRAM));
  const help = new Help();
  program.configureHelp({ formatHelp: (cmd, helper) => (cmd === program ? rootHelp(program) : help.formatHelp(cmd, helper)) });
  if (isPluginCompletion(process.argv[1])) {
    await complete(completion, argv);
    return 0;
  }
  if (argv[0] === "complete" && argv[1] === "--") {
    await complete(completion, argv.slice(2));
    return 0;
  }
  if (argv.length === 0) {
    process.stderr.write(rootHelp(program));
    return 2;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    if (e.exitCode === 0) return 0; // --help, --version
    throw new UsageError(oneLine(e));
  }
  return state.exitCode;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // A completion request may leave a keep-alive connection open; it has answered.
    if (isPluginCompletion(process.argv[1]) || process.argv[2] === "complete") process.exit(code);
  },
  (e: unknown) => {
    if (!(e instanceof UsageError) && !(e instanceof StartupError)) throw e;
    process.stderr.write(asInvoked(`${PROGRAM}: ${e.message}\n`, PROGRAM));
    // A serve (or a watch) that failed half-way has watches running that would keep the process alive.
    process.exit(e instanceof StartupError ? 1 : 2);
  },
);
