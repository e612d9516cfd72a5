/**
 * Start windows on the real API server (docs/rules.md, "Windows"): the gate runs as documented
 * (`backup-gate serve`, its webhooks registered) on the wall clock; the test plays Velero's part
 * (nothing runs a ReadyToStart backup). One window opens a minute or two after the gate starts,
 * so a backup created before waits for it and is promoted once it opens; another window is
 * closed with a max wait of 5 s and onMaxWait Fail, so its backup is failed with the reason.
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
  /** When the `soon` window opens (a whole minute), and its span as the reason shows it. */
  let opens = 0;
  let span = "";
  const { create, phaseOf, waitPhase } = backupsIn(
    () => cp,
    () => c,
    VELERO,
  );
  const eventsOn = async (name: string, reason: string) =>
    (await c.core.listNamespacedEvent({ namespace: VELERO, fieldSelector: `involvedObject.name=${name},reason=${reason}` })).items;

  beforeAll(async () => {
    cp = await startControlPlane({ name: "windows" });
    c = clients(cp.kubeConfig);
    for (const ns of [VELERO, GATE_NS, "shop", "web", "docs"]) await createNamespace(c, ns);
    // The window opens at the second whole minute from now: time to create the backup before it.
    opens = (Math.floor(Date.now() / 60_000) + 2) * 60_000;
    span = `${hhmm(opens)}-${hhmm(opens + 30 * 60_000)}`;
    const closed = `{start: "${hhmm(Date.now() - 3 * 3600_000)}", end: "${hhmm(Date.now() - 2 * 3600_000)}"}`;
    const policy = [
      "maxConcurrentBackups: 4",
      "priorities: {agingSeconds: 0}",
      "windows:",
      "  - name: soon",
      "    selector: {namespaces: [shop]}",
      `    allow: [{start: "${hhmm(opens)}", end: "${hhmm(opens + 30 * 60_000)}"}]`,
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

  it("before its window opens a backup waits with the window's reason; once it opens the gate promotes it", async () => {
    expect(Date.now(), "the window must still be closed when the backup is created").toBeLessThan(opens - 5_000);
    await create("held", { includedNamespaces: ["shop"] });
    await create("free", { includedNamespaces: ["web"] });
    // Positive control: the controller runs and promotes a backup no window governs.
    await waitPhase("free", "ReadyToStart");
    await waitFor("held queued with its window's reason", async () => {
      const b = await getBackup(c, VELERO, "held");
      return (
        b.status?.phase === "Queued" && (b.metadata.annotations["backup-gate.io/reason"] ?? "").startsWith(`waits for its window ${span} (UTC): soon opens`)
      );
    });
    expect(await phaseOf("held")).toBe("Queued");
    // The controller re-plans at least every 10 s; the plan made before the opening is not reused after it.
    await waitFor("held promoted once its window opens", async () => (await phaseOf("held")) === "ReadyToStart", {
      timeoutMs: Math.max(0, opens - Date.now()) + 40_000,
    });
    expect(Date.now()).toBeGreaterThanOrEqual(opens);
    const started = await eventsOn("held", "Started");
    expect(started[0]?.message).toMatch(/^ReadyToStart after waiting \d+s: conflicts with nothing/);
  }, 240_000);

  it("past its max wait outside its window, a backup is failed with the reason (onMaxWait: Fail)", async () => {
    await create("payroll-run", { includedNamespaces: ["docs"] });
    await waitPhase("payroll-run", "Failed", 40_000);
    const b = await getBackup(c, VELERO, "payroll-run");
    expect(b.status?.failureReason).toMatch(
      /^waited past 5s \(maxWaitSeconds\) outside its window \d\d:\d\d-\d\d:\d\d \(UTC\): not started \(payroll: onMaxWait Fail\)$/,
    );
    const missed = await waitFor("a WindowMissed Event", async () => (await eventsOn("payroll-run", "WindowMissed"))[0]);
    expect(missed.type).toBe("Warning");
  }, 120_000);
});
