/**
 * Nudges and take-backs on the real API server, from the user's side. Velero's backup
 * controller starts a ReadyToStart backup on any update it sees (a watch MODIFIED event whose
 * object is ReadyToStart), so "never nudged" is checked the way Velero would notice it: no such
 * event for the backup. The gate runs as documented (two replicas, `backup-gate serve`); the test
 * plays Velero's part and another writer's (a script that writes Backups, bypassing the
 * validating webhook or writing before it is registered).
 */
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { backupsIn, startGate, type GateProcess } from "../support/gate.js";
import { clients, createBackup, createNamespace, getBackup, type Clients, type VeleroObject } from "../support/objects.js";
import { expectStays, waitFor } from "../support/wait.js";
import { startWatch, type StartedWatch } from "../support/watch.js";

const VELERO = "velero";
const GATE_NS = "backup-gate";
// Namespace level, so two backups of one namespace overlap; a nudge is due 1 s after a promotion
// (the controller re-plans at least every 10 s, so 15 s windows see any nudge that is coming).
const POLICY = "conflictLevel: Namespace\nmaxConcurrentBackups: 4\nnudgeAfterSeconds: 1\npriorities: {agingSeconds: 0}\n";
const WINDOW_MS = 15_000;
/** What another writer copies to make a backup look promoted by the gate. */
const FORGED = { "backup-gate.io/promoted-by": "gate-a", "backup-gate.io/promoted-at": "2026-01-01T00:00:00.000Z" };

describe("nudges and take-backs on a real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let leader: GateProcess;
  let standby: GateProcess;
  let watch: StartedWatch;
  /** Every update the watch saw: what Velero's backup controller would see. */
  const updates: { name: string; phase?: string; annotations: Record<string, string> }[] = [];

  const readyUpdates = (name: string) => updates.filter((u) => u.name === name && u.phase === "ReadyToStart");
  const eventsOn = async (name: string, reason: string) =>
    (await c.core.listNamespacedEvent({ namespace: VELERO, fieldSelector: `involvedObject.name=${name},reason=${reason}` })).items;
  const { phaseOf, setPhase } = backupsIn(
    () => cp,
    () => c,
    VELERO,
  );
  /** Another writer: a Backup created straight into ReadyToStart, with backup-gate's annotations copied onto it. */
  const writeReady = (name: string, namespace: string, annotations: Record<string, string>) =>
    createBackup(c, VELERO, name, { includedNamespaces: [namespace], annotations, status: { phase: "ReadyToStart" } });

  beforeAll(async () => {
    cp = await startControlPlane({ name: "nudge" });
    c = clients(cp.kubeConfig);
    for (const ns of [VELERO, GATE_NS, "shop", "web", "docs"]) await createNamespace(c, ns);
    await c.core.createNamespacedConfigMap({ namespace: GATE_NS, body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": POLICY } } });
    watch = await startWatch(cp.kubeConfig, `/apis/velero.io/v1/namespaces/${VELERO}/backups`, {}, (type, o: VeleroObject) => {
      if (type === "MODIFIED") updates.push({ name: o.metadata.name, phase: o.status?.phase, annotations: o.metadata.annotations ?? {} });
    });
    // Before the gate (and its webhooks) is there: another writer leaves two overlapping backups
    // in ReadyToStart, and one more on its own, each with backup-gate's promoted-by annotation.
    await writeReady("pair-1", "shop", FORGED);
    await new Promise((r) => setTimeout(r, 1100)); // creation timestamps have 1 s resolution: pair-1 is first in queue order
    await writeReady("pair-2", "shop", FORGED);
    await writeReady("forged", "web", FORGED);
    leader = await startGate(cp, { identity: "gate-a", register: true });
    standby = await startGate(cp, { identity: "gate-b" });
  }, 300_000);
  afterAll(async () => {
    watch?.abort();
    await standby?.stop();
    await leader?.stop();
    await cp?.stop();
  });

  it("two overlapping ReadyToStart backups: the later goes back to Queued with a reason and an Event, and neither is nudged", async () => {
    await waitFor("pair-2 to be taken back to Queued", async () => (await phaseOf("pair-2")) === "Queued", { timeoutMs: 30_000 });
    const back = await getBackup(c, VELERO, "pair-2");
    expect(back.metadata.annotations["backup-gate.io/taken-back"]).toMatch(
      /^taken back to Queued before Velero started it: pair-1 and pair-2 are in flight together: .*shop.*; it waits its turn again$/,
    );
    expect(back.metadata.annotations["backup-gate.io/promoted-by"]).toBeUndefined();
    const taken = await waitFor("a TakenBack Event on pair-2", async () => (await eventsOn("pair-2", "TakenBack"))[0]);
    expect(taken.type).toBe("Warning");
    expect(taken.message).toMatch(/^taken back to Queued before Velero started it: pair-1 and pair-2/);
    // It is queued behind the one it overlapped, with a position.
    await waitFor("pair-2 to wait behind pair-1 at position 1", async () => {
      const b = await getBackup(c, VELERO, "pair-2");
      return b.status?.queuePosition === 1 && b.metadata.annotations["backup-gate.io/waiting-for"] === "pair-1";
    });
    // Velero is never shown either of them as ReadyToStart again, and pair-1 stays as it was written.
    await expectStays(
      "no update of pair-1 or pair-2 in ReadyToStart",
      () => readyUpdates("pair-1").length === 0 && readyUpdates("pair-2").length === 0,
      WINDOW_MS,
    );
    expect(await phaseOf("pair-1")).toBe("ReadyToStart");
    expect(await eventsOn("pair-1", "Nudged")).toEqual([]);
    expect(await eventsOn("pair-2", "Nudged")).toEqual([]);
    expect(await eventsOn("pair-1", "PromotedByAnotherWriter")).toHaveLength(1);
  });

  it("a ReadyToStart backup with a forged promoted-by annotation is never nudged", async () => {
    await expectStays("no update of forged", () => updates.every((u) => u.name !== "forged"), WINDOW_MS);
    expect(await eventsOn("forged", "Nudged")).toEqual([]);
    const warned = await waitFor("a PromotedByAnotherWriter Event on forged", async () => (await eventsOn("forged", "PromotedByAnotherWriter"))[0]);
    expect(warned.message).toMatch(/promoted-by annotation that backup-gate's record does not match/);
  });

  it("positive control: the gate's own promotion is nudged, by the next leader too; a copy of its seal on another backup is not", async () => {
    // Velero runs and finishes pair-1; the gate promotes pair-2.
    await setPhase("pair-1", "InProgress");
    await setPhase("pair-1", "Completed");
    await waitFor("pair-2 promoted by the gate", async () => (await phaseOf("pair-2")) === "ReadyToStart", { timeoutMs: 30_000 });
    const promoted = await getBackup(c, VELERO, "pair-2");
    expect(promoted.metadata.annotations).toMatchObject({
      "backup-gate.io/promoted-by": "gate-a",
      "backup-gate.io/promotion-seal": expect.stringMatching(/^v1\./),
    });
    expect(promoted.metadata.annotations["backup-gate.io/taken-back"]).toBeUndefined();
    // The leader goes away before its nudge is due (the next plan is at its 10 s resync); the
    // standby takes over, reads the same key, and recognises the promotion as the gate's.
    await leader.stop();
    const nudged = await waitFor("a Nudged Event on pair-2", async () => (await eventsOn("pair-2", "Nudged"))[0], { timeoutMs: 40_000 });
    expect(nudged.message).toMatch(/^still ReadyToStart after \d+s; updated so that Velero sees it$/);
    expect(readyUpdates("pair-2").some((u) => u.annotations["backup-gate.io/nudged-at"])).toBe(true);
    expect(readFileSync(standby.process.logFile, "utf8")).toMatch(/"backup":"pair-2","decision":"nudge"/);

    // Another writer copies the whole mark, seal included, onto a backup of its own; the
    // validating webhook is out of the way (deleted, as an admin or a misconfigured tool could).
    await cp.kubeConfig
      .makeApiClient(AdmissionregistrationV1Api)
      .deleteValidatingWebhookConfiguration({ name: "backup-gate" })
      .catch(() => undefined);
    const mark = Object.fromEntries(
      Object.entries(promoted.metadata.annotations as Record<string, string>).filter(([k]) => k.startsWith("backup-gate.io/promot")),
    );
    expect(Object.keys(mark).sort()).toEqual(["backup-gate.io/promoted-at", "backup-gate.io/promoted-by", "backup-gate.io/promotion-seal"]);
    await writeReady("copycat", "docs", mark);
    await expectStays("no update of copycat", () => updates.every((u) => u.name !== "copycat"), WINDOW_MS);
    expect(await eventsOn("copycat", "Nudged")).toEqual([]);
    expect(await eventsOn("copycat", "PromotedByAnotherWriter")).toHaveLength(1);
  });
});
