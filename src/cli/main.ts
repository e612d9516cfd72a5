#!/usr/bin/env node
import { PLAN_USAGE, runPlan } from "./plan.js";
import { UsageError } from "./readInput.js";
import { runSimulate, SIMULATE_USAGE } from "./simulate.js";
import { runServe, SERVE_USAGE } from "./serve.js";

const USAGE = `usage: backup-gate <command> [flags]

commands:
  plan      what the queue would do with a dump of a cluster
            ${PLAN_USAGE.split("\n").join("\n            ")}
  serve     run the webhooks and the queue controller
            ${SERVE_USAGE.split("\n").join("\n            ")}
  simulate  replay a trace of backups under Velero's rule and backup-gate's, side by side
            ${SIMULATE_USAGE.split("\n").join("\n            ")}`;

// One entry for `backup-gate` and `kubectl backup-gate`: user mistakes print one line and exit
// 2; anything else is a bug and keeps its stack.
function main(argv: string[]): number {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "plan":
        process.stdout.write(runPlan(rest, Date.now()) + "\n");
        return 0;
      case "serve":
        // Runs until SIGTERM; a start-up failure (no API server, bad flags) is one line.
        runServe(rest).catch((e: unknown) => {
          process.stderr.write(`backup-gate: serve: ${(e as Error).message}\n`);
          process.exit(e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") ? 2 : 1);
        });
        return 0;
      case "simulate": {
        const { output, failed } = runSimulate(rest);
        process.stdout.write(output + "\n");
        return failed ? 1 : 0;
      }
      case undefined: case "help": case "--help": case "-h":
        process.stdout.write(USAGE + "\n");
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${command}\n${USAGE}`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`backup-gate: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

process.exitCode = main(process.argv.slice(2));
