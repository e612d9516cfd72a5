/**
 * The PolicySource and the EventRecorder against a real kube-apiserver: hot reload of the
 * policy ConfigMap, refusal of bad edits (last good policy kept, Warning Event, metric, log),
 * recovery; a deletion keeping the last good policy, and no ConfigMap at start meaning the
 * fallback policy, each said with a Warning Event, the metric at 0 and a log line.
 */
import { PatchStrategy, setHeaderOptions, type CoreV1Event } from "@kubernetes/client-node";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { destination, pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Policy } from "../../src/core/policy.js";
import { FALLBACK_POLICY } from "../../src/policy/document.js";
import { createMetrics, type Metrics } from "../../src/metrics/metrics.js";
import { createPolicySource, type PolicySourceImpl } from "../../src/policy/source.js";
import { createEventRecorder } from "../../src/kube/events.js";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { clients, createNamespace, uniqueName, type Clients } from "../support/objects.js";
import { waitFor } from "../support/wait.js";

const NAME = "backup-gate-policy";

async function metric(m: Metrics, name: "policyValid" | "policyReloads", result?: string): Promise<number> {
  const { values } = await m[name].get();
  return values.filter((v) => result === undefined || v.labels.result === result).reduce((s, v) => s + v.value, 0);
}

describe("PolicySource on a real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let source: PolicySourceImpl;
  let metrics: Metrics;
  let logFile: string;
  const seen: Policy[] = [];
  const ns = uniqueName("gate");

  const setPolicy = async (text: string | undefined) => {
    const data: Record<string, string> = text === undefined ? { other: "x" } : { "policy.yaml": text };
    await c.core.replaceNamespacedConfigMap({ name: NAME, namespace: ns, body: { metadata: { name: NAME, namespace: ns }, data } });
  };
  const events = async (reason: string): Promise<CoreV1Event[]> =>
    (await c.core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${NAME},reason=${reason}` })).items;

  beforeAll(async () => {
    cp = await startControlPlane({ name: "policy" });
    c = clients(cp.kubeConfig);
    await createNamespace(c, ns);
    metrics = createMetrics();
    logFile = join(cp.dir, "policy.log");
    const log = pino({ level: "debug" }, destination({ dest: logFile, sync: true }));
    source = createPolicySource(cp.kubeConfig, {
      namespace: ns,
      metrics,
      log,
      recorder: createEventRecorder(cp.kubeConfig, { log }),
      backoff: { initialMs: 100, maxMs: 1_000 },
    });
    source.onChange((p) => seen.push(p));
  });
  afterAll(async () => {
    await source?.stop();
    await cp?.stop();
  });

  it("runs the fallback policy (Namespace level, one slot) while the ConfigMap does not exist at start, and says so three ways", async () => {
    await source.start();
    expect(source.current()).toEqual(FALLBACK_POLICY);
    expect(source.current()).toMatchObject({ conflictLevel: "Namespace", maxConcurrentBackups: 1 });
    expect(source.valid()).toBe(false);
    expect(await metric(metrics, "policyValid")).toBe(0);
    expect(await metric(metrics, "policyReloads", "missing")).toBe(1);
    expect(readFileSync(logFile, "utf8")).toContain(
      `policy ConfigMap ${ns}/${NAME} not found; running with the fallback policy (conflictLevel Namespace, maxConcurrentBackups 1) until it exists`,
    );
    const ev = await waitFor("PolicyMissing event", async () => (await events("PolicyMissing"))[0]);
    expect(ev).toMatchObject({ type: "Warning", involvedObject: { kind: "ConfigMap", namespace: ns, name: NAME } });
  });

  it("hot-reloads an edit", async () => {
    await c.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: NAME }, data: { "policy.yaml": "maxConcurrentBackups: 2\n" } } });
    await waitFor("policy with 2 concurrent backups", () => source.current().maxConcurrentBackups === 2);
    expect(seen.at(-1)?.maxConcurrentBackups).toBe(2);
    expect(source.valid()).toBe(true);
    await waitFor("PolicyApplied once it exists", async () => (await events("PolicyApplied"))[0]);
    await setPolicy("maxConcurrentBackups: 3\nconflictLevel: Namespace\n");
    await waitFor("policy edit", () => source.current().conflictLevel === "Namespace");
    expect(source.current()).toMatchObject({ maxConcurrentBackups: 3, conflictLevel: "Namespace" });
    expect(seen.at(-1)).toEqual(source.current());
    expect(await metric(metrics, "policyReloads", "valid")).toBe(2);
    expect(await metric(metrics, "policyValid")).toBe(1);
  });

  it("keeps the last good policy on a schema error, with a Warning Event naming the field, the metric at 0 and a log line", async () => {
    const good = source.current();
    const notified = seen.length;
    await setPolicy("maxConcurrentBackups: lots\n");
    await waitFor("the edit refused", () => !source.valid());
    expect(source.current()).toEqual(good);
    expect(seen.length).toBe(notified);
    expect(source.refusal()).toMatch(/^policy\.yaml: maxConcurrentBackups: /);
    expect(await metric(metrics, "policyValid")).toBe(0);
    expect(await metric(metrics, "policyReloads", "invalid")).toBe(1);
    const ev = await waitFor("InvalidPolicy event", async () => (await events("InvalidPolicy"))[0]);
    expect(ev).toMatchObject({
      type: "Warning",
      reason: "InvalidPolicy",
      count: 1,
      involvedObject: { kind: "ConfigMap", namespace: ns, name: NAME },
      source: { component: "backup-gate" },
    });
    expect(ev.involvedObject.uid).toBeTruthy();
    expect(ev.message).toContain("maxConcurrentBackups");
    expect(ev.message).toContain("last good policy");
    const logLine = readFileSync(logFile, "utf8")
      .split("\n")
      .find((l) => l.includes('"field":"maxConcurrentBackups"'));
    expect(logLine).toBeDefined();
  });

  it("refuses bad YAML and a missing key too, and a later good edit restores the policy", async () => {
    const good = source.current();
    await setPolicy("maxConcurrentBackups: [1\nconflictLevel: Namespace\n");
    await waitFor("YAML refused", () => source.refusal()?.includes("not valid YAML"));
    expect(source.refusal()).toMatch(/^policy\.yaml: line \d+, column \d+: not valid YAML/);
    expect(source.current()).toEqual(good);
    await waitFor("an event for the YAML error", async () => (await events("InvalidPolicy")).some((e) => e.message?.includes("not valid YAML")));

    await setPolicy(undefined);
    await waitFor("missing key refused", () => source.refusal()?.includes("no key"));
    expect(source.current()).toEqual(good);
    expect(await metric(metrics, "policyValid")).toBe(0);
    expect(await metric(metrics, "policyReloads", "invalid")).toBe(3);

    await setPolicy("maxConcurrentBackups: 7\n");
    await waitFor("good edit applied", () => source.current().maxConcurrentBackups === 7);
    expect(source.valid()).toBe(true);
    expect(source.refusal()).toBeUndefined();
    expect(seen.at(-1)?.maxConcurrentBackups).toBe(7);
    expect(await metric(metrics, "policyValid")).toBe(1);
    await waitFor("PolicyApplied event", async () => (await events("PolicyApplied"))[0]);
  });

  it("aggregates a repeated refusal into one Event with a count", async () => {
    await setPolicy("serialWorkloads: Sometimes\n");
    await waitFor("refused", () => !source.valid());
    // The same content again (a no-op edit of another key still changes the resourceVersion).
    await c.core.patchNamespacedConfigMap(
      { name: NAME, namespace: ns, body: { data: { unrelated: "1" } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const ev = await waitFor("count 2", async () => (await events("InvalidPolicy")).find((e) => e.message?.includes("serialWorkloads") && e.count === 2));
    expect(ev.message).toContain("serialWorkloads");
    expect((await events("InvalidPolicy")).filter((e) => e.message?.includes("serialWorkloads"))).toHaveLength(1);
  });

  it("keeps the last good policy when the ConfigMap is deleted, with a Warning Event, the metric at 0 and a log line, until it is back", async () => {
    await setPolicy("conflictLevel: Namespace\nmaxConcurrentBackups: 2\n");
    await waitFor("the policy to be Namespace level, 2 slots", () => source.valid() && source.current().maxConcurrentBackups === 2);
    const good = source.current();
    const notified = seen.length;
    await c.core.deleteNamespacedConfigMap({ name: NAME, namespace: ns });
    await waitFor("the deletion seen", () => !source.valid());
    expect(source.current()).toEqual(good);
    expect(seen.length).toBe(notified);
    expect(await metric(metrics, "policyValid")).toBe(0);
    expect(source.refusal()).toBe(`ConfigMap ${ns}/${NAME} was deleted; the last good policy stays in effect until it is back`);
    const ev = await waitFor("PolicyDeleted event", async () => (await events("PolicyDeleted"))[0]);
    expect(ev).toMatchObject({ type: "Warning", involvedObject: { kind: "ConfigMap", namespace: ns, name: NAME } });
    expect(ev.message).toContain("last good policy");
    expect(readFileSync(logFile, "utf8")).toContain(`policy ConfigMap ${ns}/${NAME} was deleted; the last good policy stays in effect until it is back`);

    await c.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: NAME }, data: { "policy.yaml": "maxConcurrentBackups: 5\n" } } });
    await waitFor("the recreated ConfigMap applied", () => source.valid() && source.current().maxConcurrentBackups === 5);
    expect(await metric(metrics, "policyValid")).toBe(1);
  });
});
