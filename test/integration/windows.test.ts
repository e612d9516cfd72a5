/**
 * Start windows on the real API server (docs/rules.md, "Windows"): the gate runs as documented
 * (`backup-gate serve`, its webhooks registered) on the wall clock; the test plays Velero's part
 * (nothing runs a ReadyToStart backup). A window that is closed, with a max wait of 5 s and
 * onMaxWait Fail, fails its backup with the reason; a backup no window governs starts (the
 * control). A window opening, and the controller re-planning when it does, is checked on an
 * injected clock in budgetWindowClock.test.ts, without waiting for a whole minute here.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { backupsIn, startGate, type GateProcess } from "../support/gate.js";
import { clients, createNamespace, getBackup, type Clients } from "../support/objects.js";
import { waitFor } from "../support/wait.js";

const VELERO = "velero";
const GATE_NS = "backup-gate";
const two = (n: number) => String(n).padStart(2, "0");
/** HH:MM in UTC of the instant t (ms). */
const hhmm = (t: number) => `${two(new Date(t).getUTCHours())}:${two(new Date(t).getUTCMinutes())}`;

describe("start windows on a real API server, on the wall clock", () => {
  let cp: ControlPlane;
  let c: Clients;
  let gate: GateProcess;
  const { create, waitPhase } = backupsIn(
    () => cp,
    () => c,
    VELERO,
  );
  const eventsOn = async (name: string, reason: string) =>
    (await c.core.listNamespacedEvent({ namespace: VELERO, fieldSelector: `involvedObject.name=${name},reason=${reason}` })).items;

  beforeAll(async () => {
    cp = await startControlPlane({ name: "windows" });
    c = clients(cp.kubeConfig);
    for (const ns of [VELERO, GATE_NS, "web", "docs"]) await createNamespace(c, ns);
    const closed = `{start: "${hhmm(Date.now() - 3 * 3600_000)}", end: "${hhmm(Date.now() - 2 * 3600_000)}"}`;
    const policy = [
      "maxConcurrentBackups: 4",
      "priorities: {agingSeconds: 0}",
      "windows:",
      "  - name: payroll",
      "    selector: {namespaces: [docs]}",
      `    allow: [${closed}]`,
      "    maxWaitSeconds: 5",
      "    onMaxWait: Fail",
      "",
    ].join("\n");
    await c.core.createNamespacedConfigMap({ namespace: GATE_NS, body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": policy } } });
    gate = await startGate(cp, { identity: "gate-a", register: true });
  }, 300_000);
  afterAll(async () => {
    await gate?.stop();
    await cp?.stop();
  });

  it("past its max wait outside its window, a backup is failed with the reason (onMaxWait: Fail); one no window governs starts", async () => {
    await create("payroll-run", { includedNamespaces: ["docs"] });
    await create("free", { includedNamespaces: ["web"] });
    await waitPhase("free", "ReadyToStart");
    await waitPhase("payroll-run", "Failed", 40_000);
    const b = await getBackup(c, VELERO, "payroll-run");
    expect(b.status?.failureReason).toMatch(
      /^waited past 5s \(maxWaitSeconds\) outside its window \d\d:\d\d-\d\d:\d\d \(UTC\): not started \(payroll: onMaxWait Fail\)$/,
    );
    const missed = await waitFor("a WindowMissed Event", async () => (await eventsOn("payroll-run", "WindowMissed"))[0]);
    expect(missed.type).toBe("Warning");
  }, 120_000);
});
