import { selectorMatches } from "./labelSelector.js";
import { namespaceList, resourceList } from "./resources.js";
import type { BackupSpec } from "./backupSpec.js";
import type { PodInfo } from "../model.js";

// Which backup hooks Velero runs on a pod (internal/hook): a pod annotation hook for a phase
// replaces the spec hooks for that phase; spec hooks apply to pods their selector admits.
const ANNOTATION_COMMAND = {
  pre: ["pre.hook.backup.velero.io/command", "hook.backup.velero.io/command"],
  post: ["post.hook.backup.velero.io/command"],
} as const;

export type HookPhase = keyof typeof ANNOTATION_COMMAND;
const HOOK_PHASES = ["pre", "post"] as const;

/** The phases in which the backup runs a hook on this pod, each with where the hook comes from. */
export function hooksOnPod(pod: PodInfo, spec: BackupSpec): readonly { phase: HookPhase; source: string }[] {
  // Asked for every pod of every candidate in a review; most pods and most backups have no hook.
  if (spec.hooks.resources.length === 0 && !hasHookAnnotation(pod)) return NO_HOOKS;
  const found: { phase: HookPhase; source: string }[] = [];
  for (const phase of HOOK_PHASES) {
    const annotation = annotationHook(pod, phase);
    if (annotation) {
      found.push({ phase, source: ANNOTATION_SOURCE[annotation] });
      continue;
    }
    const spechook = spec.hooks.resources.find((h) => h[phase].length > 0 && hookApplies(h, pod));
    if (spechook) found.push({ phase, source: `spec.hooks.resources ${spechook.name}` });
  }
  return found;
}

type HookAnnotation = (typeof ANNOTATION_COMMAND)[HookPhase][number];

/** The annotation that sets the pod's hook for `phase`, if any (the first of its keys present). */
function annotationHook(pod: PodInfo, phase: HookPhase): HookAnnotation | undefined {
  for (const key of ANNOTATION_COMMAND[phase]) if (pod.annotations[key] !== undefined) return key;
  return undefined;
}

// Spelled once: a hooked pod's source is asked for in every review that includes it.
const ANNOTATION_SOURCE = Object.fromEntries(
  HOOK_PHASES.flatMap((phase) => ANNOTATION_COMMAND[phase].map((key) => [key, `annotation ${key}`])),
) as Record<HookAnnotation, string>;

const NO_HOOKS: readonly { phase: HookPhase; source: string }[] = Object.freeze([]);

function hasHookAnnotation(pod: PodInfo): boolean {
  for (const phase of HOOK_PHASES) for (const key of ANNOTATION_COMMAND[phase]) if (pod.annotations[key] !== undefined) return true;
  return false;
}

function hookApplies(hook: BackupSpec["hooks"]["resources"][number], pod: PodInfo): boolean {
  return (
    namespaceList(hook.includedNamespaces, hook.excludedNamespaces)(pod.namespace) &&
    resourceList(hook.includedResources, hook.excludedResources)("pods") &&
    (!hook.labelSelector || selectorMatches(hook.labelSelector, pod.labels))
  );
}
