import { describe, expect, it } from "vitest";
import { StaticPolicySource } from "../support/fakes/policySource.js";
import { DEFAULT_POLICY, policySchema } from "../../src/core/policy.js";
import { createMetrics } from "../../src/metrics/metrics.js";
import { pinVeleroNamespace } from "../../src/policy/pinned.js";
import type { EventRecorder } from "../../src/kube/events.js";
import { createLogger } from "../../src/logging/logger.js";

const log = createLogger("silent");
const configMap = { apiVersion: "v1", kind: "ConfigMap", namespace: "backup-gate", name: "backup-gate-policy" };

function setup() {
  const source = new StaticPolicySource(DEFAULT_POLICY);
  const metrics = createMetrics();
  const events: { type: string; reason: string; message: string }[] = [];
  const recorder: EventRecorder = {
    event: async (_o, type, reason, message) => {
      events.push({ type, reason, message });
    },
  };
  const pinned = pinVeleroNamespace(source, { veleroNamespace: "velero", configMap, metrics, recorder, log });
  const gauge = async () => (await metrics.policyRestartRequired.get()).values[0]?.value;
  return { source, pinned, events, gauge };
}

describe("veleroNamespace held to the watched namespace until a restart", () => {
  it("an edit naming another namespace keeps the watched one in effect, applies the other keys, and says so once", async () => {
    const { source, pinned, events, gauge } = setup();
    const seen: string[] = [];
    pinned.onChange((p) => seen.push(`${p.veleroNamespace}/${p.maxConcurrentBackups}`));
    expect(await gauge()).toBe(0);
    source.set(policySchema.parse({ veleroNamespace: "veleroo", maxConcurrentBackups: 2 }));
    expect(pinned.current()).toMatchObject({ veleroNamespace: "velero", maxConcurrentBackups: 2 });
    expect(pinned.restartRequired()).toBe(true);
    expect(await gauge()).toBe(1);
    expect(events).toEqual([
      {
        type: "Warning",
        reason: "RestartRequired",
        message: expect.stringMatching(
          /^veleroNamespace changed to "veleroo", but backup-gate watches "velero" until it restarts: it keeps guarding and planning velero/,
        ),
      },
    ]);
    source.set(policySchema.parse({ veleroNamespace: "veleroo", maxConcurrentBackups: 3 }));
    expect(events).toHaveLength(1);
    expect(seen).toEqual(["velero/2", "velero/3"]);
  });

  it("the same policy object while the source's does not change (the admission index keys on it)", () => {
    const { source, pinned } = setup();
    source.set(policySchema.parse({ veleroNamespace: "elsewhere" }));
    expect(pinned.current()).toBe(pinned.current());
    source.set(DEFAULT_POLICY);
    expect(pinned.current()).toBe(DEFAULT_POLICY);
  });

  it("an edit back to the watched namespace clears the gauge (positive control: it was 1)", async () => {
    const { source, pinned, gauge } = setup();
    source.set(policySchema.parse({ veleroNamespace: "elsewhere" }));
    expect(await gauge()).toBe(1);
    source.set(DEFAULT_POLICY);
    expect(await gauge()).toBe(0);
    expect(pinned.restartRequired()).toBe(false);
  });
});
