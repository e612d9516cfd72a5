/**
 * Smoke test of the real control plane (etcd + kube-apiserver + Velero CRDs):
 * create and watch a Backup, and see the API server's schema validation reject
 * an invalid one.
 */
import { ApiextensionsV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { backupBody } from "../support/builders.js";
import {
  clients,
  createBackup,
  createNamespace,
  createSchedule,
  getVelero,
  isApiError,
  updateVelero,
  uniqueName,
  type Clients,
  type VeleroObject,
} from "../support/objects.js";
import { waitFor } from "../support/wait.js";
import { startWatch } from "../support/watch.js";

describe("control plane smoke", () => {
  let cp: ControlPlane;
  let c: Clients;
  const ns = uniqueName("velero");

  beforeAll(async () => {
    cp = await startControlPlane({ name: "apiserver-smoke" });
    c = clients(cp.kubeConfig);
    await createNamespace(c, ns);
  });
  afterAll(async () => {
    await cp?.stop();
  });

  it("serves the Velero CRDs of both groups", async () => {
    const crds = await cp.kubeConfig.makeApiClient(ApiextensionsV1Api).listCustomResourceDefinition();
    const names = crds.items.map((x) => x.metadata?.name);
    expect(names).toContain("backups.velero.io");
    expect(names).toContain("schedules.velero.io");
    expect(names).toContain("backupstoragelocations.velero.io");
    expect(names).toContain("datauploads.velero.io"); // v2alpha1
    const backups = crds.items.find((x) => x.metadata?.name === "backups.velero.io");
    // The design rests on this: status is written through the main resource.
    expect(backups?.spec.versions.find((v) => v.name === "v1")?.subresources?.status).toBeUndefined();
  });

  it("streams watch events for a Backup", async () => {
    const name = uniqueName("b");
    const events: { type: string; phase: string | undefined; rv: string | undefined }[] = [];
    const req = await startWatch(
      cp.kubeConfig,
      `/apis/velero.io/v1/namespaces/${ns}/backups`,
      { fieldSelector: `metadata.name=${name}` },
      (type, obj: VeleroObject) => events.push({ type, phase: obj.status?.phase, rv: obj.metadata.resourceVersion }),
    );
    try {
      await createBackup(c, ns, name, { includedNamespaces: ["app"] });
      await waitFor("ADDED event", () => events.find((e) => e.type === "ADDED"), { timeoutMs: 20_000 });
      await updateVelero(c, "backups", ns, name, (o) => {
        o.status = { phase: "Queued", queuePosition: 1 };
      });
      const mod = await waitFor("MODIFIED event with phase Queued", () => events.find((e) => e.type === "MODIFIED" && e.phase === "Queued"), {
        timeoutMs: 20_000,
      });
      expect(Number(mod.rv)).toBeGreaterThan(Number(events[0]!.rv));
      await c.custom.deleteNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: ns, plural: "backups", name });
      await waitFor("DELETED event", () => events.find((e) => e.type === "DELETED"), { timeoutMs: 20_000 });
      expect(req.error()).toBeUndefined();
    } finally {
      req.abort();
    }
  });

  it("accepts a Schedule built by the harness helper", async () => {
    const name = uniqueName("s");
    await createSchedule(c, ns, name, { schedule: "@every 1h", includedNamespaces: ["app"], paused: true });
    const got = await getVelero(c, "schedules", ns, name);
    expect(got.spec.template.includedNamespaces).toEqual(["app"]);
    expect(got.spec.paused).toBe(true);
  });

  it("rejects a Backup with an invalid field type (422)", async () => {
    const body = backupBody(uniqueName("bad"), ns, { includedNamespaces: ["app"] });
    body.spec.includedNamespaces = "app"; // must be a list
    body.spec.ttl = 5; // must be a string
    let err: unknown;
    try {
      await c.custom.createNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: ns, plural: "backups", body });
    } catch (e) {
      err = e;
    }
    expect(isApiError(err, 422), `expected 422, got ${String(err)}`).toBe(true);
    const msg = isApiError(err) ? String(typeof err.body === "string" ? err.body : JSON.stringify(err.body)) : "";
    expect(msg).toContain("spec.includedNamespaces");
  });
});
