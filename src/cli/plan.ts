import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { loadSnapshot } from "../core/objects.js";
import { plan } from "../core/plan.js";
import { parsePolicy, type Policy } from "../core/policy.js";
import { planHuman, planJson } from "./planOutput.js";
import { readDocument, UsageError } from "./readInput.js";

export const PLAN_USAGE = `backup-gate plan --snapshot FILE [--level Namespace|ItemBlock] [--policy FILE] [--now RFC3339] [--human]

  FILE   what \`kubectl get namespaces,pods,pvc,pv,configmaps,backups.velero.io -A -o yaml\` prints
  --policy  a policy document (the policy.yaml key of the ConfigMap), or the ConfigMap itself
  --now     the instant to plan at (default: now); priorities age with waiting time`;

export function runPlan(args: string[], now: number): string {
  const { values } = parseArgs({
    args,
    options: {
      snapshot: { type: "string" }, level: { type: "string" }, policy: { type: "string" },
      now: { type: "string" }, human: { type: "boolean", default: false },
    },
    strict: true,
  });
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
  let doc: unknown = {};
  if (file) {
    doc = readDocument(file, "policy");
    const cm = doc as { kind?: unknown; data?: Record<string, unknown> } | null;
    if (cm?.kind === "ConfigMap") {
      const text = cm.data?.["policy.yaml"];
      if (typeof text !== "string") throw new UsageError(`policy ${file}: the ConfigMap has no data key policy.yaml`);
      doc = readInline(text, file);
    }
  }
  if (level !== undefined) {
    if (level !== "Namespace" && level !== "ItemBlock") throw new UsageError(`--level must be Namespace or ItemBlock, not ${level}`);
    doc = { ...(doc as object), conflictLevel: level };
  }
  const parsed = parsePolicy(doc);
  if (!parsed.ok) throw new UsageError(`policy${file ? ` ${file}` : ""}: ${parsed.error}`);
  return parsed.policy;
}

function readInline(text: string, file: string): unknown {
  try {
    return (parseYaml(text, { maxAliasCount: 100 }) as unknown) ?? {};
  } catch (e) {
    throw new UsageError(`policy ${file}: policy.yaml is not valid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
}

