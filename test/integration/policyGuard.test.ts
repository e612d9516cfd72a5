/**
 * The guard against the policy's own edits and against hostile clients, from the user's side,
 * with `backup-gate serve` as a process and its webhooks registered on a real API server:
 * - the policy ConfigMap deleted (a GitOps prune): the last good policy (Namespace level) still
 *   refuses a conflicting promotion and keeps the controller from promoting it, and the gate
 *   says so (Warning Event PolicyDeleted, backup_gate_policy_valid 0, a log line);
 * - `veleroNamespace` edited to a wrong value: the watched namespace stays guarded and planned
 *   until a restart (Warning Event RestartRequired, backup_gate_policy_restart_required 1, a log line);
 * - a TLS client trickling its headers is closed while a Backup created meanwhile is answered;
 * - a Backup naming 200,000 namespaces is refused with the documented message, and a Backup
 *   created alongside it is admitted;
 * - a fresh install without the policy ConfigMap: Ready, running the fallback policy (Namespace
 *   level, one backup at a time), and saying so (PolicyMissing, policy_valid 0, a log line).
 * The test plays Velero's part by moving phases.
 */
import { readFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { backupsIn, startGate, type GateProcess } from "../support/gate.js";
import { clients, createNamespace, createPod, createWorkload, isApiError, type Clients } from "../support/objects.js";
import { expectStays, waitFor } from "../support/wait.js";

const VELERO = "velero";
const GATE_NS = "backup-gate";
const CM = "backup-gate-policy";
const POLICY = "conflictLevel: Namespace\nmaxConcurrentBackups: 2\npriorities: {agingSeconds: 0}\nserialWorkloads: Forbid\n";

describe("the guard holds through policy edits and hostile clients (serve on a real API server)", () => {
  let cp: ControlPlane;
  let c: Clients;
  let gate: GateProcess;

  const { create, phaseOf, waitPhase, setPhase } = backupsIn(
    () => cp,
    () => c,
    VELERO,
  );
  const app = (label: string) => ({ includedNamespaces: ["shop"], spec: { labelSelector: { matchLabels: { app: label } } } });
  /** Another writer (a script, Velero's own queue) moving a backup to ReadyToStart: the error it gets, if any. */
  const promoteAsAnotherWriter = (name: string) =>
    setPhase(name, "ReadyToStart").then(
      () => undefined,
      (e: unknown) => e,
    );
  const setPolicy = (text: string) =>
    c.core.replaceNamespacedConfigMap({ name: CM, namespace: GATE_NS, body: { metadata: { name: CM, namespace: GATE_NS }, data: { "policy.yaml": text } } });
  const metrics = async () => (await gate.get("/metrics")).body;
  const counter = async (re: RegExp) => Number(re.exec(await metrics())?.[1] ?? 0);
  const events = async (reason: string) =>
    (await c.core.listNamespacedEvent({ namespace: GATE_NS, fieldSelector: `involvedObject.name=${CM},reason=${reason}` })).items;
  const gateLog = () => readFileSync(gate.process.logFile, "utf8");

  beforeAll(async () => {
    cp = await startControlPlane({ name: "policy-guard" });
    c = clients(cp.kubeConfig);
    for (const ns of [VELERO, GATE_NS, "shop", "web"]) await createNamespace(c, ns);
    await c.core.createNamespacedConfigMap({ namespace: GATE_NS, body: { metadata: { name: CM }, data: { "policy.yaml": POLICY } } });
    await createWorkload(c, "shop", "cart");
    await createWorkload(c, "shop", "orders");
    await createPod(c, "web", "nginx", { labels: { app: "web" } });
    gate = await startGate(cp, { identity: "guard", register: true });
  }, 300_000);
  afterAll(async () => {
    await gate?.stop();
    await cp?.stop();
  });

  it("a deleted policy ConfigMap keeps the last good policy: a conflicting promotion is still refused, and the gate says so three ways", async () => {
    expect((await create("cart-1", app("cart"))).status).toBe(201);
    await waitPhase("cart-1", "ReadyToStart");
    await setPhase("cart-1", "InProgress");

    await c.core.deleteNamespacedConfigMap({ name: CM, namespace: GATE_NS });
    await waitFor("the gate to see the deletion", async () => (await counter(/^backup_gate_policy_reloads_total\{result="missing"\} (\d+)/m)) >= 1);

    // At Namespace level (the deleted policy) orders-1 conflicts with cart-1 through namespace
    // shop; the defaults (ItemBlock) would let both run.
    const orders = await create("orders-1", app("orders"));
    expect(orders.status).toBe(201);
    expect(orders.warnings[0]).toMatch(/^backup orders-1 will wait behind cart-1: both include namespace shop/);
    const refused = await promoteAsAnotherWriter("orders-1");
    expect(isApiError(refused)).toBe(true);
    expect(String((refused as { body?: unknown }).body)).toMatch(/may not become ReadyToStart: it conflicts with cart-1/);
    await expectStays("orders-1 to stay queued behind cart-1", async () => (await phaseOf("orders-1")) !== "ReadyToStart", 3_000);

    expect(await metrics()).toMatch(/^backup_gate_policy_valid 0$/m);
    const ev = await waitFor("a PolicyDeleted Event", async () => (await events("PolicyDeleted"))[0]);
    expect(ev.type).toBe("Warning");
    expect(ev.message).toContain("last good policy");
    expect(gateLog()).toContain(`policy ConfigMap ${GATE_NS}/${CM} was deleted; the last good policy stays in effect until it is back`);

    // Back: valid again, and the queue moves on as before.
    await c.core.createNamespacedConfigMap({ namespace: GATE_NS, body: { metadata: { name: CM }, data: { "policy.yaml": POLICY } } });
    await waitFor("policy_valid 1 again", async () => /^backup_gate_policy_valid 1$/m.test(await metrics()));
    await setPhase("cart-1", "Completed");
    await waitPhase("orders-1", "ReadyToStart");
    await setPhase("orders-1", "Completed");
  }, 120_000);

  it("veleroNamespace edited to a wrong value: the watched namespace stays guarded and planned until a restart, and the gate says so three ways", async () => {
    expect((await create("cart-2", app("cart"))).status).toBe(201);
    await waitPhase("cart-2", "ReadyToStart");
    await setPhase("cart-2", "InProgress");

    const before = await counter(/^backup_gate_policy_reloads_total\{result="valid"\} (\d+)/m);
    await setPolicy(`${POLICY}veleroNamespace: veleroo\n`);
    await waitFor("the edit loaded", async () => (await counter(/^backup_gate_policy_reloads_total\{result="valid"\} (\d+)/m)) > before);

    expect((await create("orders-2", app("orders"))).status).toBe(201);
    const refused = await promoteAsAnotherWriter("orders-2");
    expect(isApiError(refused)).toBe(true);
    expect(String((refused as { body?: unknown }).body)).toMatch(/may not become ReadyToStart: it conflicts with cart-2/);
    await waitPhase("orders-2", "Queued");
    // Planning goes on in the watched namespace: a backup that conflicts with nothing starts.
    expect((await create("web-2", { includedNamespaces: ["web"] })).status).toBe(201);
    await waitPhase("web-2", "ReadyToStart");

    expect(await metrics()).toMatch(/^backup_gate_policy_restart_required 1$/m);
    const ev = await waitFor("a RestartRequired Event", async () => (await events("RestartRequired"))[0]);
    expect(ev.type).toBe("Warning");
    expect(ev.message).toMatch(/^veleroNamespace changed to "veleroo", but backup-gate watches "velero" until it restarts/);
    expect(gateLog()).toMatch(/"requested":"veleroo".*keeps guarding and planning velero/);

    await setPolicy(POLICY);
    await waitFor("restart_required 0 again", async () => /^backup_gate_policy_restart_required 0$/m.test(await metrics()));
    for (const name of ["cart-2", "web-2"]) await setPhase(name, "Completed");
    await waitPhase("orders-2", "ReadyToStart");
    await setPhase("orders-2", "Completed");
  }, 120_000);

  it("a TLS client trickling its headers is closed with 408 while it still trickles, and a Backup created meanwhile is answered", async () => {
    const port = Number(new URL(gate.url).port);
    let trickle: NodeJS.Timeout | undefined;
    let sent = 0;
    const closed = new Promise<{ text: string; stillTrickling: boolean }>((resolve, reject) => {
      const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
        s.write("POST /validate-backups HTTP/1.1\r\nHost: backup-gate\r\n");
        trickle = setInterval(() => {
          s.write("X");
          sent++;
        }, 500);
      });
      let text = "";
      s.on("data", (d: Buffer) => {
        text += d.toString();
      });
      s.on("close", () => {
        const stillTrickling = trickle !== undefined;
        clearInterval(trickle);
        resolve({ text, stillTrickling });
      });
      s.on("error", () => {
        /* a reset after the 408 closes it too */
      });
      // Far above the documented 10 s, far below what Node's defaults allowed (60 s + 30 s).
      setTimeout(() => {
        clearInterval(trickle);
        s.destroy();
        reject(new Error(`the gate still held the trickling connection after 40 s (${sent} bytes)`));
      }, 40_000).unref();
    });
    const meanwhile = await create("web-3", { includedNamespaces: ["web"] });
    expect(meanwhile.status).toBe(201);
    const { text, stillTrickling } = await closed;
    expect(stillTrickling).toBe(true);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    await waitPhase("web-3", "ReadyToStart");
    await setPhase("web-3", "Completed");
  }, 60_000);

  it("a Backup naming 200,000 namespaces is refused with the documented message, and one created alongside it is admitted", async () => {
    const names = Array.from({ length: 200_000 }, (_, i) => `n${i.toString(36)}`);
    const [big, small] = await Promise.all([create("everything", { includedNamespaces: names }), create("web-4", { includedNamespaces: ["web"] })]);
    expect(small.status).toBe(201);
    expect(big.status).toBe(422);
    expect(big.body.message).toContain(
      "spec.includedNamespaces holds 200000 entries (200000 in all the spec's lists); backup-gate judges Backups whose spec lists hold at most 10000 entries",
    );
    await waitPhase("web-4", "ReadyToStart");
    await setPhase("web-4", "Completed");
  }, 120_000);
});

describe("a fresh install without the policy ConfigMap (serve on a real API server)", () => {
  let cp: ControlPlane;
  let c: Clients;
  let gate: GateProcess;
  const { create, phaseOf } = backupsIn(
    () => cp,
    () => c,
    VELERO,
  );

  beforeAll(async () => {
    cp = await startControlPlane({ name: "policy-fresh" });
    c = clients(cp.kubeConfig);
    for (const ns of [VELERO, GATE_NS, "shop", "web"]) await createNamespace(c, ns);
    await createWorkload(c, "shop", "cart");
    await createPod(c, "web", "nginx", { labels: { app: "web" } });
    // startGate waits for /readyz 200: the gate is Ready without its policy.
    gate = await startGate(cp, { identity: "fresh", register: true });
  }, 300_000);
  afterAll(async () => {
    await gate?.stop();
    await cp?.stop();
  });

  it("is Ready, runs the fallback policy (Namespace level, one backup at a time) and says so, until the ConfigMap is created", async () => {
    const metrics = async () => (await gate.get("/metrics")).body;
    expect(await metrics()).toMatch(/^backup_gate_policy_valid 0$/m);
    const ev = await waitFor(
      "a PolicyMissing Event",
      async () => (await c.core.listNamespacedEvent({ namespace: GATE_NS, fieldSelector: `involvedObject.name=${CM},reason=PolicyMissing` })).items[0],
    );
    expect(ev.type).toBe("Warning");
    expect(ev.message).toBe(
      `ConfigMap ${GATE_NS}/${CM} not found: running with the fallback policy (conflictLevel Namespace, maxConcurrentBackups 1) until it exists`,
    );
    expect(readFileSync(gate.process.logFile, "utf8")).toContain(`policy ConfigMap ${GATE_NS}/${CM} not found; running with the fallback policy`);

    const first = await create("web-1", { includedNamespaces: ["web"] });
    expect(first.body.metadata.annotations["backup-gate.io/conflict-level"]).toBe("Namespace");
    await waitFor("web-1 to be ReadyToStart", async () => (await phaseOf("web-1")) === "ReadyToStart");
    // Shares nothing with web-1, but the fallback allows one backup in flight.
    await create("shop-1", { includedNamespaces: ["shop"] });
    await waitFor("shop-1 to be Queued", async () => (await phaseOf("shop-1")) === "Queued");
    await expectStays("shop-1 to wait for the one slot", async () => (await phaseOf("shop-1")) === "Queued", 3_000);

    await c.core.createNamespacedConfigMap({
      namespace: GATE_NS,
      body: { metadata: { name: CM }, data: { "policy.yaml": "conflictLevel: ItemBlock\nmaxConcurrentBackups: 4\n" } },
    });
    await waitFor("shop-1 to start once the policy allows 4", async () => (await phaseOf("shop-1")) === "ReadyToStart");
    expect(await metrics()).toMatch(/^backup_gate_policy_valid 1$/m);
  }, 120_000);

  it("restarted with a veleroNamespace that does not exist, it says it guards nothing (Warning Event VeleroNamespaceMissing, log line)", async () => {
    await c.core.replaceNamespacedConfigMap({
      name: CM,
      namespace: GATE_NS,
      body: { metadata: { name: CM, namespace: GATE_NS }, data: { "policy.yaml": "veleroNamespace: veleroo\n" } },
    });
    await gate.stop();
    gate = await startGate(cp, { identity: "fresh-restarted", register: true });
    const ev = await waitFor(
      "a VeleroNamespaceMissing Event",
      async () => (await c.core.listNamespacedEvent({ namespace: GATE_NS, fieldSelector: `involvedObject.name=${CM},reason=VeleroNamespaceMissing` })).items[0],
    );
    expect(ev.type).toBe("Warning");
    expect(ev.message).toMatch(/^veleroNamespace "veleroo" does not exist: backup-gate guards and plans no Backups until it does/);
    expect(readFileSync(gate.process.logFile, "utf8")).toContain('veleroNamespace \\"veleroo\\" does not exist');
  }, 120_000);
});
