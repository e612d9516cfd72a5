/**
 * OADP's non-admin flow (issue 19, tenants), on the real API server: the test plays OADP's
 * non-admin controller. Each tenant creates NonAdminBackups in its own namespace (a CRD the
 * test installs, oadp.openshift.io/v1alpha1, status kept as given); "OADP" turns each into a
 * Velero Backup in Velero's namespace with OADP's labels and annotations (includedNamespaces
 * forced to the tenant's namespace), and copies each Backup's status back into the
 * NonAdminBackup's status.veleroBackup.status, as OADP does: never annotations or Events. The
 * test also plays Velero (ReadyToStart -> InProgress -> Completed).
 *
 * Checked: the fair promotion order across two tenants' bursts, the per-tenant limit, and that
 * nothing tenant A can read (its NonAdminBackups' status, Events in its namespace) names tenant
 * B's backups or namespace, or an administrator's backup; a positive control shows the check
 * catches the administrators' annotation text.
 *
 * Rerun: npx vitest run --project integration test/integration/nonAdmin.test.ts
 */
import { randomUUID } from "node:crypto";
import { ApiextensionsV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { backupsIn, startGate, type GateProcess } from "../support/gate.js";
import { clients, createNamespace, createPod, getBackup, type Clients } from "../support/objects.js";
import { expectStays, waitFor } from "../support/wait.js";

const VELERO = "velero";
const GATE_NS = "backup-gate";
const TEAM_A = "team-a";
const TEAM_B = "team-b";
const NAB = { group: "oadp.openshift.io", version: "v1alpha1", plural: "nonadminbackups" } as const;
// Four slots, at most three per tenant; aging off so that only the rules order the queue.
const POLICY = `maxConcurrentBackups: 4
priorities: {agingSeconds: 0}
nudgeAfterSeconds: 3600
tenants: {maxInFlightPerTenant: 3, nonAdminEvents: true}
`;

interface NonAdminBackup {
  metadata: { name: string; namespace: string; uid?: string };
  spec?: Record<string, unknown>;
  status?: { veleroBackup?: { nameuuid?: string; namespace?: string; status?: Record<string, unknown> } };
}

describe("OADP's non-admin backups through backup-gate (two tenants, real API server)", () => {
  let cp: ControlPlane;
  let c: Clients;
  let gate: GateProcess;
  /** NonAdminBackup (namespace/name) -> the Velero Backup "OADP" made for it. */
  const veleroOf = new Map<string, string>();
  const { phaseOf, setPhase } = backupsIn(
    () => cp,
    () => c,
    VELERO,
  );

  beforeAll(async () => {
    cp = await startControlPlane({ name: "nonadmin" });
    c = clients(cp.kubeConfig);
    await installNonAdminBackupCrd(cp);
    for (const ns of [VELERO, GATE_NS, TEAM_A, TEAM_B]) await createNamespace(c, ns);
    // Stateless namespaces: at ItemBlock level a tenant's backups conflict with nothing, so only the slots decide.
    for (const ns of [TEAM_A, TEAM_B]) await createPod(c, ns, "web", { labels: { app: "web" } });
    await c.core.createNamespacedConfigMap({ namespace: GATE_NS, body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": POLICY } } });
    gate = await startGate(cp, { identity: "gate-0", register: true });
  }, 300_000);
  afterAll(async () => {
    await gate?.stop();
    await cp?.stop();
  });

  /** A tenant creates a NonAdminBackup; OADP's controller makes its Velero Backup (labels, annotations, the tenant's namespace only). */
  async function tenantBacksUp(namespace: string, name: string): Promise<string> {
    const nab = (await c.custom.createNamespacedCustomObject({
      ...NAB,
      namespace,
      body: { apiVersion: `${NAB.group}/${NAB.version}`, kind: "NonAdminBackup", metadata: { name, namespace }, spec: { backupSpec: {} } },
    })) as NonAdminBackup;
    const uuid = `${namespace}-${name}-${randomUUID()}`;
    await c.custom.createNamespacedCustomObject({
      group: "velero.io",
      version: "v1",
      namespace: VELERO,
      plural: "backups",
      body: {
        apiVersion: "velero.io/v1",
        kind: "Backup",
        metadata: {
          name: uuid,
          namespace: VELERO,
          labels: { "openshift.io/oadp": "True", "app.kubernetes.io/managed-by": "oadp-nac-controller", "openshift.io/oadp-nab-origin-nacuuid": uuid },
          annotations: {
            "openshift.io/oadp-nab-origin-name": name,
            "openshift.io/oadp-nab-origin-namespace": namespace,
            "openshift.io/oadp-nab-origin-uuid": nab.metadata.uid ?? "",
          },
        },
        spec: { includedNamespaces: [namespace], storageLocation: "default" },
      },
    });
    veleroOf.set(`${namespace}/${name}`, uuid);
    return uuid;
  }

  /** OADP's sync: each NonAdminBackup's status.veleroBackup.status is a copy of its Velero Backup's status. */
  async function syncStatuses(): Promise<void> {
    for (const [key, uuid] of veleroOf) {
      const [namespace, name] = key.split("/") as [string, string];
      const b = await getBackup(c, VELERO, uuid);
      const body = { status: { veleroBackup: { nameuuid: uuid, namespace: VELERO, status: b.status ?? {} } } };
      await c.custom.patchNamespacedCustomObjectStatus({ ...NAB, namespace, name, body }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    }
  }

  const nabsOf = async (namespace: string) => ((await c.custom.listNamespacedCustomObject({ ...NAB, namespace })) as { items: NonAdminBackup[] }).items;
  const nabEvents = async (namespace: string) =>
    (await c.core.listNamespacedEvent({ namespace, fieldSelector: "involvedObject.kind=NonAdminBackup" })).items.map((e) => ({
      name: e.involvedObject.name ?? "",
      apiVersion: e.involvedObject.apiVersion ?? "",
      reason: e.reason ?? "",
      message: e.message ?? "",
    }));

  /** Everything tenant `namespace` can read: its NonAdminBackups' status and the Events in its namespace on them. */
  async function tenantReadable(namespace: string): Promise<string[]> {
    await syncStatuses();
    const statuses = (await nabsOf(namespace)).map((n) => JSON.stringify(n.status ?? {}));
    const events = (await nabEvents(namespace)).map((e) => `${e.reason}: ${e.message}`);
    return [...statuses, ...events];
  }

  /**
   * Names tenant `mine` must never read: the other tenant's namespace and the names of everyone
   * else's backups (NonAdminBackup names are words no uuid holds: alpha-N, bravo-N).
   */
  function foreignNames(mine: string, others: readonly string[] = []): string[] {
    const theirs = [...veleroOf].filter(([key]) => !key.startsWith(`${mine}/`)).flatMap(([key, uuid]) => [key.split("/")[1]!, uuid]);
    return [...[TEAM_A, TEAM_B].filter((ns) => ns !== mine), ...theirs, ...others];
  }

  const leaks = (texts: readonly string[], names: readonly string[]) =>
    texts.flatMap((t) => names.filter((n) => t.includes(n)).map((n) => `"${t}" names ${n}`));

  const inFlight = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const [key, uuid] of veleroOf) if (["ReadyToStart", "InProgress"].includes((await phaseOf(uuid)) ?? "")) out.push(key.split("/")[1]!);
    return out.sort();
  };
  /** Velero picks up what the gate promoted. */
  const veleroStarts = async () => {
    for (const uuid of veleroOf.values()) if ((await phaseOf(uuid)) === "ReadyToStart") await setPhase(uuid, "InProgress");
  };
  const waitInFlight = (expected: string[]) =>
    waitFor(`in flight: ${expected.join(", ")}`, async () => JSON.stringify(await inFlight()) === JSON.stringify([...expected].sort()), { timeoutMs: 30_000 });
  const complete = async (nab: string) => setPhase(veleroOf.get(nab)!, "Completed");

  it("A's burst: three start (its limit), the fourth slot stays free; A's queued NonAdminBackups read the limit, counts only", async () => {
    for (let i = 0; i < 6; i++) await tenantBacksUp(TEAM_A, `alpha-${i}`);
    await waitInFlight(["alpha-0", "alpha-1", "alpha-2"]);
    await veleroStarts();
    await expectStays("the fourth slot to stay free (tenants.maxInFlightPerTenant: 3)", async () => (await inFlight()).length === 3, 2000);
    await syncStatuses();
    const alpha3 = (await c.custom.getNamespacedCustomObject({ ...NAB, namespace: TEAM_A, name: "alpha-3" })) as NonAdminBackup;
    expect(alpha3.status?.veleroBackup?.status).toMatchObject({ phase: "Queued", queuePosition: 1 });
    await waitFor("the Queued Event on alpha-3's NonAdminBackup", async () =>
      (await nabEvents(TEAM_A)).find((e) => e.name === "alpha-3" && e.reason === "Queued"),
    ).then((e) =>
      expect(e).toEqual({
        name: "alpha-3",
        apiVersion: "oadp.openshift.io/v1alpha1",
        reason: "Queued",
        message: "queued at position 1: waits for its tenant's limit: 3 of 3 backups in flight",
      }),
    );
  });

  it("B's burst takes the free slot; then each freed slot goes to the tenant running fewer (fair order), not to A's older backups", async () => {
    for (let i = 0; i < 3; i++) await tenantBacksUp(TEAM_B, `bravo-${i}`);
    await waitInFlight(["alpha-0", "alpha-1", "alpha-2", "bravo-0"]);
    await veleroStarts();
    // A runs 2 after alpha-0 completes, B runs 1: B's next ranks first (one queue would start alpha-3, the older).
    await complete(`${TEAM_A}/alpha-0`);
    await waitInFlight(["alpha-1", "alpha-2", "bravo-0", "bravo-1"]);
    await veleroStarts();
    await complete(`${TEAM_B}/bravo-0`);
    await waitInFlight(["alpha-1", "alpha-2", "bravo-1", "bravo-2"]);
    await veleroStarts();
    // B has nothing left queued: A's next starts.
    await complete(`${TEAM_A}/alpha-1`);
    await waitInFlight(["alpha-2", "alpha-3", "bravo-1", "bravo-2"]);
    await veleroStarts();
  });

  it("an administrator's backup of every namespace: tenants read 'a cluster-wide backup', never its name", async () => {
    // Judged at Namespace level (on request), it conflicts with every tenant backup of a namespace it includes.
    const { status } = await backupsIn(
      () => cp,
      () => c,
      VELERO,
    ).create("ops-full", { annotations: { "backup-gate.io/conflict-level": "Namespace" } });
    expect(status).toBe(201);
    // Velero finishes what runs; a tenant whose last backup finished ties with ops-full at rank 0
    // and its older backups go first, so A's queue drains before ops-full's turn.
    await waitFor(
      "ops-full to start",
      async () => {
        if (["ReadyToStart", "InProgress"].includes((await phaseOf("ops-full")) ?? "")) return true;
        await veleroStarts();
        for (const key of veleroOf.keys()) if ((await phaseOf(veleroOf.get(key)!)) === "InProgress") await complete(key);
        return false;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    await setPhase("ops-full", "InProgress");
    await tenantBacksUp(TEAM_B, "bravo-3");
    await waitFor("bravo-3's NonAdminBackup to read the cluster-wide backup", async () =>
      (await nabEvents(TEAM_B)).find((e) => e.name === "bravo-3" && e.message.includes("waits behind a cluster-wide backup")),
    );
  });

  it("nothing a tenant reads names the other tenant's backups or namespace, or the administrator's backup", async () => {
    for (const [mine, other] of [
      [TEAM_A, TEAM_B],
      [TEAM_B, TEAM_A],
    ] as const) {
      const texts = await tenantReadable(mine);
      // Not vacuous: the copied status (phase, queue position) and the Events are there.
      expect(texts.some((t) => t.includes('"queuePosition"'))).toBe(true);
      expect(texts.some((t) => t.startsWith("Started: "))).toBe(true);
      expect(leaks(texts, foreignNames(mine, ["ops-full"])), `${mine} reads ${other}'s or the administrator's names`).toEqual([]);
    }
    // Each tenant did read its own news: starts, queueing and the cluster-wide wait, in words.
    expect((await nabEvents(TEAM_A)).map((e) => e.reason)).toEqual(expect.arrayContaining(["Queued", "Started"]));
  });

  it("positive control: the same check finds the names in what administrators read (annotations and Events on the Velero Backup)", async () => {
    const bravo3 = await getBackup(c, VELERO, veleroOf.get(`${TEAM_B}/bravo-3`)!);
    const adminTexts = [bravo3.metadata.annotations?.["backup-gate.io/reason"] ?? "", bravo3.metadata.annotations?.["backup-gate.io/waiting-for"] ?? ""];
    expect(leaks(adminTexts, foreignNames(TEAM_B, ["ops-full"]))).not.toEqual([]);
    // And a planted leak in a tenant's status is caught.
    const planted = `{"failureReason":"waits behind ${veleroOf.get(`${TEAM_B}/bravo-1`)}"}`;
    const found = leaks([...(await tenantReadable(TEAM_A)), planted], foreignNames(TEAM_A));
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((f) => f.startsWith(`"${planted}"`))).toBe(true);
  });
});

/** OADP's NonAdminBackup, as far as the flow needs it: namespaced, any spec, a status subresource kept as written. */
async function installNonAdminBackupCrd(cp: ControlPlane): Promise<void> {
  const api = cp.kubeConfig.makeApiClient(ApiextensionsV1Api);
  // client-node's typed model spells x-kubernetes-preserve-unknown-fields so (it serializes known keys only).
  const open = { type: "object", x_kubernetes_preserve_unknown_fields: true };
  await api.createCustomResourceDefinition({
    body: {
      metadata: { name: `${NAB.plural}.${NAB.group}` },
      spec: {
        group: NAB.group,
        scope: "Namespaced",
        names: { plural: NAB.plural, singular: "nonadminbackup", kind: "NonAdminBackup", shortNames: ["nab"] },
        versions: [
          {
            name: NAB.version,
            served: true,
            storage: true,
            subresources: { status: {} },
            schema: { openAPIV3Schema: { type: "object", properties: { spec: open, status: open } } },
          },
        ],
      },
    },
  });
  await waitFor("the NonAdminBackup CRD to be established", async () => {
    const crd = await api.readCustomResourceDefinition({ name: `${NAB.plural}.${NAB.group}` });
    return crd.status?.conditions?.some((x) => x.type === "Established" && x.status === "True");
  });
}
