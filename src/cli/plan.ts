import { Command } from "commander";
import { loadSnapshot } from "../core/velero/objects.js";
import { plan } from "../core/decision/plan.js";
import { DEFAULT_POLICY, parsePolicy, type Policy } from "../core/policy.js";
import { describeRefusal, readPolicyData } from "../policy/document.js";
import { planHuman, planJson } from "./planOutput.js";
import { readDocument, UsageError } from "./readInput.js";

export const PLAN_USAGE = `backup-gate plan --snapshot FILE [--level Namespace|ItemBlock] [--policy FILE] [--now RFC3339] [--human]

  FILE   what \`kubectl get namespaces,pods,pvc,pv,configmaps,backups.velero.io,restores.velero.io -A -o yaml\` prints
  --policy  a policy document (the policy.yaml key of the ConfigMap), or the ConfigMap itself
  --now     the instant to plan at (default: now); priorities age with waiting time`;

export interface PlanOptions {
  readonly snapshot?: string;
  readonly level?: string;
  readonly policy?: string;
  readonly now?: string;
  readonly human?: boolean;
}

/** `plan`'s flags; main gives it its action. */
export function planCommand(): Command {
  return new Command("plan")
    .description("what the queue would do with a dump of a cluster (offline)")
    .usage("--snapshot FILE [--level Namespace|ItemBlock] [--policy FILE] [--now RFC3339] [--human]")
    .option("--snapshot <file>", "what `kubectl get namespaces,pods,pvc,pv,configmaps,backups.velero.io,restores.velero.io -A -o yaml` prints (required)")
    .option("--level <level>", "conflict level to plan at: Namespace or ItemBlock (default: the policy's)")
    .option("--policy <file>", "a policy document (the policy.yaml key of the ConfigMap), or the ConfigMap itself")
    .option("--now <time>", "the RFC 3339 instant to plan at (default: now); priorities age with waiting time")
    .option("--human", "a summary in plain words instead of JSON");
}

export function runPlan(values: PlanOptions, now: number): string {
  if (!values.snapshot) throw new UsageError(`--snapshot is required\n${PLAN_USAGE}`);
  const policy = loadPolicy(values.policy, values.level);
  const at = values.now === undefined ? now : Date.parse(values.now);
  if (!Number.isFinite(at)) throw new UsageError(`--now ${values.now} is not an RFC 3339 time`);
  const loaded = loadSnapshot(readDocument(values.snapshot, "snapshot"));
  if (!loaded.ok) throw new UsageError(`snapshot ${values.snapshot}: ${loaded.error}`);
  const result = plan(loaded.snapshot, policy, at);
  return values.human ? planHuman(result) : JSON.stringify(planJson(result, at), null, 2);
}

export function loadPolicy(file: string | undefined, level: string | undefined): Policy {
  let policy = DEFAULT_POLICY;
  if (file) {
    const doc = readDocument(file, "policy");
    const cm = doc as { kind?: unknown; data?: Record<string, string> } | null;
    if (cm?.kind === "ConfigMap") {
      const read = readPolicyData(cm.data, "policy.yaml");
      if (!read.ok) throw new UsageError(`policy ${file}: ${describeRefusal(read)}`);
      policy = read.policy;
    } else {
      const read = parsePolicy(doc);
      if (!read.ok) throw new UsageError(`policy ${file}: ${read.error}`);
      policy = read.policy;
    }
  }
  if (level === undefined) return policy;
  if (level !== "Namespace" && level !== "ItemBlock") throw new UsageError(`--level must be Namespace or ItemBlock, not ${level}`);
  return { ...policy, conflictLevel: level };
}
