/**
 * The gate's typed API clients reuse their TLS connections to the real kube-apiserver, where
 * client-node's own `makeApiClient` opens one per request (the control case, which shows the
 * count below is a real measurement). The clients reach the API server through a TCP relay in
 * this file that counts the connections it accepts.
 */
import { CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { connect, createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeKeepAliveClient } from "../../src/kube/apiClient.js";
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

  it("reuse one connection for sequential requests, where client-node's own client opens one each", async () => {
    const list = async (api: CoreV1Api) => {
      for (let i = 0; i < REQUESTS; i++) await api.listNamespace({ limit: 1 });
    };
    const shared = await socketsOpenedBy(() => list(makeKeepAliveClient(kc, CoreV1Api)));
    const own = await socketsOpenedBy(() => list(kc.makeApiClient(CoreV1Api)));
    expect(own).toBe(REQUESTS);
    expect(shared).toBe(1);
  });

  it("write with the kubeconfig's credentials over the shared connection (merge patches of a Backup)", async () => {
    const c = clients(cp.kubeConfig);
    const ns = uniqueName("velero");
    await createNamespace(c, ns);
    const name = uniqueName("b");
    await createBackup(c, ns, name, {});
    const api = makeKeepAliveClient(kc, CustomObjectsApi);
    const opened = await socketsOpenedBy(async () => {
      for (let i = 0; i < 5; i++) {
        await api.patchNamespacedCustomObject(
          {
            group: "velero.io",
            version: "v1",
            namespace: ns,
            plural: "backups",
            name,
            body: { metadata: { annotations: { "backup-gate.io/test": String(i) } } },
          },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
      }
    });
    const got = (await api.getNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: ns, plural: "backups", name })) as {
      metadata: { annotations: Record<string, string> };
    };
    expect(got.metadata.annotations["backup-gate.io/test"]).toBe("4");
    expect(opened).toBeLessThanOrEqual(1);
  });
});
