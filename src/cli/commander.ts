import { Command, CommanderError, Option } from "commander";
import { UsageError } from "./readInput.js";

// Commander parses; this module keeps its errors to backup-gate's contract: one line naming the
// mistake, exit code 2 (main prints it), never a stack trace.

/** Commander's message as one line: "error: unknown option '--x'" -> "Unknown option '--x'". */
export function oneLine(e: CommanderError): string {
  const text = e.message
    .replace(/^error: /, "")
    .replace(/\s*\n\s*/g, " ")
    .trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Makes `cmd` and its subcommands throw instead of exiting, and print no error of their own. */
export function quiet(cmd: Command): Command {
  cmd.exitOverride().configureOutput({ outputError: () => {} });
  for (const sub of cmd.commands) quiet(sub);
  return cmd;
}

/** Parses `args` with `cmd`'s options alone (for callers in-process); mistakes are UsageErrors. */
export function parseOptions<T>(cmd: Command, args: readonly string[]): T {
  quiet(cmd);
  try {
    cmd.parse([...args], { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) throw new UsageError(oneLine(e));
    throw e;
  }
  return cmd.opts<T & Record<string, unknown>>();
}

/** A repeatable flag's values, in order. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** kubectl's flags for reaching a cluster and the gate, shared by `queue`, `explain` and `serve`. */
export function kubeOptions(cmd: Command, gateNamespace: boolean): Command {
  cmd
    .option("--kubeconfig <file>", "kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
    .option("--context <name>", "kubeconfig context to use (default: its current-context)");
  if (gateNamespace) cmd.addOption(new Option("--gate-namespace <ns>", "namespace of backup-gate's policy ConfigMap").default("backup-gate"));
  return cmd;
}
