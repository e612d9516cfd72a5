#!/usr/bin/env node
import { PLAN_USAGE, runPlan } from "./plan.js";
import { UsageError } from "./readInput.js";
import { runSimulate, SIMULATE_USAGE } from "./simulate.js";
import { runServe, SERVE_USAGE } from "./serve.js";
import { QUEUE_USAGE, runExplain, runQueue } from "./queue.js";
import { asInvoked, programName } from "./program.js";

const PROGRAM = programName(process.argv[1]);

const USAGE = `usage: ${PROGRAM} <command> [flags]

commands:
  plan      what the queue would do with a dump of a cluster
            ${PLAN_USAGE.split("\n").join("\n            ")}
  queue     the live queue: position, priority, wait so far, waiting for, reason
  explain   why a backup waits (or would, for a file not yet created)
            ${QUEUE_USAGE.split("\n").join("\n            ")}
  serve     run the webhooks and the queue controller
            ${SERVE_USAGE.split("\n").join("\n            ")}
  simulate  replay a trace of backups under Velero's rule and backup-gate's, side by side
            ${SIMULATE_USAGE.split("\n").join("\n            ")}`;

// One entry for `backup-gate` and `kubectl backup-gate`: user mistakes print one line and exit
// 2; a serve that cannot start prints one line and exits 1; anything else is a bug and keeps
// its stack.
async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "plan":
      process.stdout.write(runPlan(rest, Date.now()) + "\n");
      return 0;
    case "queue":
      process.stdout.write(await runQueue(rest, Date.now()) + "\n");
      return 0;
    case "explain":
      process.stdout.write(await runExplain(rest, Date.now()) + "\n");
      return 0;
    case "serve":
      // Returns once serving; the process then runs until SIGTERM.
      await runServe(rest).catch((e: unknown) => {
        throw isUserError(e) ? e : new StartupError(`serve: ${(e as Error).message}`);
      });
      return 0;
    case "simulate": {
      const { output, failed } = runSimulate(rest);
      process.stdout.write(output + "\n");
      return failed ? 1 : 0;
    }
    case undefined: case "help": case "--help": case "-h":
      process.stdout.write(asInvoked(USAGE, PROGRAM) + "\n");
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${command}\n${USAGE}`);
  }
}

class StartupError extends Error {}

function isUserError(e: unknown): boolean {
  return e instanceof UsageError || ((e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") ?? false);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    if (!isUserError(e) && !(e instanceof StartupError)) throw e;
    process.stderr.write(asInvoked(`${PROGRAM}: ${(e as Error).message}\n`, PROGRAM));
    // A serve that failed half-way has watches running that would keep the process alive.
    if (e instanceof StartupError) process.exit(1);
    process.exitCode = 2;
  },
);
