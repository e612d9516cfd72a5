import tab from "@bomb.sh/tab/commander";
import type { RootCommand } from "@bomb.sh/tab";
import type { Command } from "commander";
import { createRequester } from "../kube/http.js";
import { loadKubeConfig } from "./kubeconfig.js";
import { readPolicy } from "./live.js";
import { OUTPUT_FORMATS } from "./output.js";

// Shell completion through @bomb.sh/tab: `completion bash|zsh|fish` prints a script that calls
// back `backup-gate complete -- ARGS`, and kubectl's plugin completion runs
// `kubectl_complete-backup_gate ARGS` (kubectl >= 1.26); both answer in cobra's protocol
// (one candidate per line, then `:directive`).

/** Adds `completion SHELL` (and the hidden `complete`) to `program`; call once every command is added. */
export function addCompletion(program: Command): RootCommand {
  const completion = tab(program, { completionCommandName: "completion" });
  program.commands
    .find((c) => c.name() === "completion")
    ?.description("print a completion script: bash, zsh, fish or powershell (see README)")
    .usage("bash|zsh|fish|powershell");
  const choices = (values: readonly string[]) => (complete: (value: string, description: string) => void) => {
    for (const v of values) complete(v, "");
  };
  for (const name of ["plan", "simulate"]) {
    const level = completion.commands.get(name)?.options.get("level");
    if (level) level.handler = choices(["ItemBlock", "Namespace"]);
  }
  for (const name of ["queue", "explain"]) {
    const output = completion.commands.get(name)?.options.get("output");
    if (output) output.handler = choices(OUTPUT_FORMATS);
  }
  return completion;
}

/**
 * Answers one completion request. For `explain`'s backup name it first reads the Backups' names
 * from the cluster (at most `timeoutMs`; none on any failure: completion never prints an error).
 */
export async function complete(completion: RootCommand, args: readonly string[], timeoutMs = 3_000): Promise<void> {
  const explain = completion.commands.get("explain");
  const words = args.slice(0, -1);
  if (explain && words[0] === "explain" && !args.at(-1)?.startsWith("-") && !words.at(-1)?.startsWith("-")) {
    const names = await backupNames(
      flagValue(words, "--kubeconfig"),
      flagValue(words, "--context"),
      flagValue(words, "--gate-namespace") ?? "backup-gate",
      timeoutMs,
    );
    explain.argument("backup", (add) => {
      for (const n of names) add(n, "");
    });
  }
  completion.parse([...args]);
}

function flagValue(words: readonly string[], flag: string): string | undefined {
  for (let i = 0; i < words.length; i++) {
    const w = words[i] ?? "";
    if (w === flag) return words[i + 1];
    if (w.startsWith(`${flag}=`)) return w.slice(flag.length + 1);
  }
  return undefined;
}

async function backupNames(kubeconfig: string | undefined, context: string | undefined, gateNamespace: string, timeoutMs: number): Promise<string[]> {
  try {
    const kc = await loadKubeConfig({ ...(kubeconfig ? { kubeconfig } : {}), ...(context ? { context } : {}) });
    const api = createRequester(kc, timeoutMs);
    const { policy } = await readPolicy(api, gateNamespace);
    const list = (await api.getJson(`/apis/velero.io/v1/namespaces/${encodeURIComponent(policy.veleroNamespace)}/backups`, { limit: 500 })) as {
      items?: { metadata?: { name?: string } }[];
    };
    return (list.items ?? []).flatMap((b) => (b.metadata?.name ? [b.metadata.name] : []));
  } catch {
    return [];
  }
}
