import { selectorMatches } from "./labelSelector.js";
import { namespaceList, resourceList } from "./resources.js";
import type { BackupSpec } from "./backupSpec.js";
import type { PodInfo } from "../model.js";
import type { NamespaceGraph } from "../namespaceGraph.js";

// Which backup hooks Velero runs on a pod (internal/hook): a pod annotation hook for a phase
// replaces the spec hooks for that phase; spec hooks apply to pods their selector admits.
const ANNOTATION_COMMAND = {
  pre: ["pre.hook.backup.velero.io/command", "hook.backup.velero.io/command"],
  post: ["post.hook.backup.velero.io/command"],
} as const;

export type HookPhase = keyof typeof ANNOTATION_COMMAND;
const HOOK_PHASES = ["pre", "post"] as const;

/** The phases in which the backup runs a hook on this pod, each with where the hook comes from. */
export function hooksOnPod(pod: PodInfo, spec: BackupSpec): readonly PodHook[] {
  // Asked for every pod of every candidate in a review; most backups have no spec hook.
  if (spec.hooks.resources.length === 0) return annotationHooks(pod);
  const found: PodHook[] = [];
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

/** `hooksOnPod` for pod p of a namespace's graph: without spec hooks, read off the graph (`annotationHooksByPod`). */
export function hooksOnPodIn(graph: NamespaceGraph, p: number, spec: BackupSpec): readonly PodHook[] {
  if (spec.hooks.resources.length === 0) return graph.derived(annotationHooksByPod)[p] as readonly PodHook[];
  return hooksOnPod(graph.pods[p] as PodInfo, spec);
}

/** Each pod's annotation hooks, made once per namespace graph: a review asks for every pod of its namespaces. */
function annotationHooksByPod(graph: NamespaceGraph): readonly (readonly PodHook[])[] {
  return graph.pods.map(annotationHooks);
}

type HookAnnotation = (typeof ANNOTATION_COMMAND)[HookPhase][number];

/** The annotation that sets the pod's hook for `phase`, if any (the first of its keys present). */
function annotationHook(pod: PodInfo, phase: HookPhase): HookAnnotation | undefined {
  const at = firstPresent(pod, ANNOTATION_COMMAND[phase]);
  return at < 0 ? undefined : ANNOTATION_COMMAND[phase][at];
}

// Spelled once: a hooked pod's source is asked for in every review that includes it.
const ANNOTATION_SOURCE = Object.fromEntries(
  HOOK_PHASES.flatMap((phase) => ANNOTATION_COMMAND[phase].map((key) => [key, `annotation ${key}`])),
) as Record<HookAnnotation, string>;

export interface PodHook {
  readonly phase: HookPhase;
  readonly source: string;
}

// Without spec hooks a pod's hooks are its annotations' alone: one of six lists (no pre hook
// or either pre key, times no post hook or its key), made once and shared by every pod.
const ANNOTATION_HOOKS: readonly (readonly PodHook[])[] = [undefined, ...ANNOTATION_COMMAND.pre].flatMap((pre) =>
  [undefined, ...ANNOTATION_COMMAND.post].map((post) =>
    Object.freeze([
      ...(pre ? [{ phase: "pre" as const, source: ANNOTATION_SOURCE[pre] }] : []),
      ...(post ? [{ phase: "post" as const, source: ANNOTATION_SOURCE[post] }] : []),
    ]),
  ),
);

function annotationHooks(pod: PodInfo): readonly PodHook[] {
  const pre = firstPresent(pod, ANNOTATION_COMMAND.pre) + 1;
  const post = firstPresent(pod, ANNOTATION_COMMAND.post) + 1;
  return ANNOTATION_HOOKS[pre * (ANNOTATION_COMMAND.post.length + 1) + post] as readonly PodHook[];
}

/** The index of the first of `keys` the pod is annotated with, or -1. */
function firstPresent(pod: PodInfo, keys: readonly string[]): number {
  for (let i = 0; i < keys.length; i++) if (pod.annotations[keys[i] as string] !== undefined) return i;
  return -1;
}

function hookApplies(hook: BackupSpec["hooks"]["resources"][number], pod: PodInfo): boolean {
  return (
    namespaceList(hook.includedNamespaces, hook.excludedNamespaces)(pod.namespace) &&
    resourceList(hook.includedResources, hook.excludedResources)("pods") &&
    (!hook.labelSelector || selectorMatches(hook.labelSelector, pod.labels))
  );
}
