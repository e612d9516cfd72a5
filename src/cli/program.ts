import { basename } from "node:path";

// kubectl runs a plugin found on PATH as `kubectl-backup_gate` (kubectl turns the dash of
// `kubectl backup-gate` into an underscore to find it), so the name the binary was started
// under tells which command line the user typed, and help should echo that one back.

/** The command line the user typed to reach this process: `kubectl backup-gate` or `backup-gate`. */
export function programName(scriptPath: string | undefined): string {
  return basename(scriptPath ?? "").startsWith("kubectl-backup_gate") ? "kubectl backup-gate" : "backup-gate";
}

/** Usage and error text with every usage line starting with `program` instead of `backup-gate`. */
export function asInvoked(text: string, program: string): string {
  return program === "backup-gate" ? text : text.replace(/^(\s*)backup-gate(?= [a-z])/gm, `$1${program}`);
}

/**
 * True when started as `kubectl_complete-backup_gate`: kubectl (1.26+) runs that executable to
 * complete `kubectl backup-gate ...`, with the words typed so far and the one being completed.
 */
export function isPluginCompletion(scriptPath: string | undefined): boolean {
  return basename(scriptPath ?? "").startsWith("kubectl_complete-backup_gate");
}
