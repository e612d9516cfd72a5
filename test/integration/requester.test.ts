/**
 * The gate's requester (every call `serve` makes) reuses its TLS connections to the real
 * kube-apiserver, where client-node's own `makeApiClient` opens one per request (the control
 * case, which shows the count below is a real measurement). Requests reach the API server
 * through a TCP relay in this file that counts the connections it accepts.
 */
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { connect, createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadKubeAccess } from "../../src/kube/config.js";
import { ApiStatusError, createRequester, MERGE_PATCH } from "../../src/kube/http.js";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { clients, createBackup, createNamespace, uniqueName } from "../support/objects.js";

const REQUESTS = 20;

describe("API clients against the real API server", () => {
  let cp: ControlPlane;
  let relay: Server;
  let accepted = 0;
  /** The admin kubeconfig, pointed at the relay. */
  let kc: KubeConfig;
  beforeAll(async () => {
    cp = await startControlPlane({ name: "apiclient" });
    const target = new URL(cp.host);
    relay = createServer((client) => {
      accepted++;
      const upstream = connect(Number(target.port), target.hostname);
      client.pipe(upstream).pipe(client);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", close);
      upstream.on("error", close);
    });
    await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
    kc = new KubeConfig();
    kc.loadFromString(cp.kubeConfig.exportConfig());
    const cluster = kc.getCurrentCluster()!;
    kc.clusters = kc.clusters.map((c) => (c.name === cluster.name ? { ...c, server: `https://127.0.0.1:${(relay.address() as { port: number }).port}` } : c));
  });
  afterAll(async () => {
    relay?.close();
    await cp?.stop();
  });

  async function socketsOpenedBy(run: () => Promise<void>): Promise<number> {
    const before = accepted;
    await run();
    return accepted - before;
  }

  it("reuses one connection for sequential requests, where client-node's own client opens one each", async () => {
    const api = createRequester(kc);
    const shared = await socketsOpenedBy(async () => {
      for (let i = 0; i < REQUESTS; i++) await api.getJson("/api/v1/namespaces", { limit: 1 });
    });
    const core = kc.makeApiClient(CoreV1Api);
    const own = await socketsOpenedBy(async () => {
      for (let i = 0; i < REQUESTS; i++) await core.listNamespace({ limit: 1 });
    });
    expect(own).toBe(REQUESTS);
    expect(shared).toBe(1);
  });

  it("writes with the kubeconfig's credentials over the shared connection (merge patches of a Backup)", async () => {
    const c = clients(cp.kubeConfig);
    const ns = uniqueName("velero");
    await createNamespace(c, ns);
    const name = uniqueName("b");
    await createBackup(c, ns, name, {});
    const api = createRequester(kc);
    const path = `/apis/velero.io/v1/namespaces/${ns}/backups/${name}`;
    const opened = await socketsOpenedBy(async () => {
      for (let i = 0; i < 5; i++) {
        await api.send("PATCH", path, { body: { metadata: { annotations: { "backup-gate.io/test": String(i) } } }, contentType: MERGE_PATCH });
      }
    });
    const got = (await api.getJson(path, {})) as { metadata: { annotations: Record<string, string> } };
    expect(got.metadata.annotations["backup-gate.io/test"]).toBe("4");
    expect(opened).toBeLessThanOrEqual(1);
  });

  it("answers a refused write with its status code and the API server's reason", async () => {
    const api = createRequester(kc);
    const err = await api
      .send("POST", "/api/v1/namespaces", { body: { apiVersion: "v1", kind: "Namespace", metadata: { name: "default" } } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiStatusError);
    expect(err).toMatchObject({ statusCode: 409, reason: "AlreadyExists" });
  });

  it("reaches the API server with the harness's kubeconfig file, loaded without client-node", async () => {
    const access = await loadKubeAccess({ kubeconfig: cp.kubeconfigPath }, {});
    expect(access).not.toBeInstanceOf(KubeConfig);
    const ns = (await createRequester(access).getJson("/api/v1/namespaces/default", {})) as { metadata: { name: string } };
    expect(ns.metadata.name).toBe("default");
  });
});
