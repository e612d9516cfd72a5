import type { V1Pod } from "@kubernetes/client-node";
import type { TestNode } from "./node.js";
import type { Clients } from "./objects.js";
import { tailFile } from "./proc.js";
import { waitFor } from "./wait.js";

/**
 * How long a test waits for a pod on the real node to run. The kubelet retries a failed volume
 * setup with a backoff that doubles from 500 ms to 2m2s (kubelet 1.33,
 * goroutinemap/exponentialbackoff), and under load a configMap or projected volume fails until
 * the kubelet's per-namespace watch syncs within its 1 s wait ("failed to sync configmap
 * cache"): a few such failures put the next try two minutes out. CI once waited 120 s for one.
 */
export const POD_START_TIMEOUT_MS = 240_000;

/** A namespaced object by name: a pod, or a claim. */
export interface PodRef {
  readonly namespace: string;
  readonly name: string;
}

/** Running, with every container ready: what a test on the real node waits for. */
export function runningAndReady(pod: V1Pod | undefined): boolean {
  return pod?.status?.phase === "Running" && (pod.status.containerStatuses?.every((s) => s.ready) ?? false);
}

/** Waits until every pod is Running with every container ready; a timeout says what held them. */
export async function waitForPodsReady(c: Clients, node: TestNode, pods: readonly PodRef[], what = `${pods.length} pods`): Promise<void> {
  let pending: PodRef[] = [];
  await waitFor(
    `${what} to be Running and ready`,
    async () => {
      pending = [];
      for (const ref of pods) {
        if (!runningAndReady(await c.core.readNamespacedPod(ref))) pending.push(ref);
      }
      return pending.length === 0;
    },
    { timeoutMs: POD_START_TIMEOUT_MS, intervalMs: 500 },
  ).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${await explainPods(c, node, pending)}`);
  });
}

/**
 * Waits for claims to be Bound, before their pods are made. A pod the scheduler tries while its
 * claim is still being provisioned is parked as unschedulable; it is retried when the claim
 * binds, but one that missed that event waits for the scheduler's five-minute flush of such pods
 * (a CI run on 2026-12-07 waited out the node estate's 240 s so, its claim provisioned).
 */
export async function waitForClaimsBound(c: Clients, claims: readonly PodRef[], what = `${claims.length} claims`): Promise<void> {
  let unbound: string[] = [];
  await waitFor(
    `${what} to be Bound`,
    async () => {
      unbound = [];
      for (const ref of claims) {
        const phase = (await c.core.readNamespacedPersistentVolumeClaim(ref)).status?.phase;
        if (phase !== "Bound") unbound.push(`${ref.namespace}/${ref.name} (${phase ?? "no phase"})`);
      }
      return unbound.length === 0;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  ).catch((e: Error) => {
    throw new Error(`${e.message}; not Bound: ${unbound.join(", ")}`);
  });
}

/**
 * What holds pods that never got ready on the real node: each pod's status (phase, conditions,
 * containers' waiting reasons), its namespace's events (scheduling, provisioning, attach, mount,
 * sandbox) and the kubelet's log lines that name it. For a wait's timeout message: a flake on a
 * loaded CI machine must say which part of the node it waited for.
 */
export async function explainPods(c: Clients, node: TestNode, pods: readonly PodRef[]): Promise<string> {
  const out: string[] = [];
  for (const { namespace, name } of pods) {
    const pod = await c.core.readNamespacedPod({ namespace, name }).catch((e: Error) => e);
    if (pod instanceof Error) {
      out.push(`pod ${namespace}/${name}: not read (${pod.message})`);
      continue;
    }
    const conditions = (pod.status?.conditions ?? []).map((x) => `${x.type}=${x.status}${x.reason ? ` ${x.reason}` : ""}${x.message ? ` (${x.message})` : ""}`);
    const containers = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].map((s) => {
      const state = s.state?.waiting
        ? `waiting ${s.state.waiting.reason ?? ""} ${s.state.waiting.message ?? ""}`
        : s.state?.terminated
          ? `terminated ${s.state.terminated.reason ?? ""}`
          : "running";
      return `${s.name} ${state.trim()} ready=${s.ready}`;
    });
    out.push(
      `pod ${namespace}/${name} uid ${pod.metadata?.uid}: ${pod.status?.phase}; ${conditions.join(", ") || "no conditions"}; ${containers.join(", ") || "no container statuses"}`,
    );
  }
  for (const namespace of new Set(pods.map((p) => p.namespace))) {
    const events = await c.core.listNamespacedEvent({ namespace }).catch(() => ({ items: [] }));
    out.push(`events in ${namespace}:`);
    for (const ev of events.items.slice(-20))
      out.push(`  ${ev.involvedObject.kind}/${ev.involvedObject.name} ${ev.type} ${ev.reason} x${ev.count ?? 1}: ${ev.message}`);
  }
  const kubelet = node.processes.find((p) => p.name === "kubelet");
  if (kubelet) {
    const named = tailFile(kubelet.logFile, 4000)
      .split("\n")
      .filter((line) => pods.some((p) => line.includes(`${p.namespace}/${p.name}`) || line.includes(`"${p.namespace}"`)));
    out.push(`kubelet log lines naming them (last 25 of ${named.length}):`, ...named.slice(-25));
  }
  return out.join("\n");
}
