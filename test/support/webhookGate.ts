/**
 * The webhook half of backup-gate wired in the test's own process against a harness control
 * plane, as `serve` wires it: the informer cache, the HTTPS webhook server on loopback, both
 * webhook configurations pointing at it, and the caBundle patcher. Suites that need to reach
 * into the parts (step a certificate's clock, read metrics, close the server) use this instead
 * of a `serve` child process. The caller owns the TLS source.
 */
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { StaticPolicySource } from "./fakes/policySource.js";
import { webhookConfigurations } from "../../src/admission/manifests.js";
import { createWebhookServer, type WebhookServer } from "../../src/admission/server.js";
import { createClusterCache, type ClusterCacheImpl } from "../../src/cluster/cache.js";
import type { Policy } from "../../src/core/policy.js";
import { createMetrics, type Metrics } from "../../src/metrics/metrics.js";
import type { TlsSource } from "../../src/tls/source.js";
import { CaBundlePatcher } from "../../src/tls/caBundle.js";
import type { ControlPlane } from "./controlPlane.js";

export interface WebhookGateOptions {
  readonly policy: Policy;
  readonly tls: TlsSource;
  /** Name of both webhook configurations. */
  readonly configName: string;
  readonly log: Logger;
  readonly rebuildIntervalMs?: number;
  readonly resyncMs?: number;
  /** The policy source to serve (a test changes the policy through it); default: one holding `policy`. */
  readonly policySource?: StaticPolicySource;
  /** Runs once the cache has synced, before the server starts (e.g. wait for a workload). */
  readonly afterSync?: (cache: ClusterCacheImpl) => Promise<unknown>;
}

export interface WebhookGate {
  readonly cache: ClusterCacheImpl;
  readonly server: WebhookServer;
  readonly patcher: CaBundlePatcher;
  readonly metrics: Metrics;
  readonly url: string;
  /** Stops the patcher, the server and the cache (not the TLS source). */
  stop(): Promise<void>;
}

export async function startWebhookGate(cp: ControlPlane, o: WebhookGateOptions): Promise<WebhookGate> {
  const { log } = o;
  const cache = createClusterCache(cp.kubeConfig, { veleroNamespace: o.policy.veleroNamespace, log });
  await cache.start();
  await cache.waitForSync(AbortSignal.timeout(60_000));
  await o.afterSync?.(cache);
  const metrics = createMetrics();
  const server = await createWebhookServer({
    tls: o.tls,
    cache,
    policy: o.policySource ?? new StaticPolicySource(o.policy),
    metrics,
    log,
    ...(o.rebuildIntervalMs !== undefined ? { rebuildIntervalMs: o.rebuildIntervalMs } : {}),
  });
  const { url } = await server.listen({ host: "127.0.0.1", port: 0 });
  await server.engine.ensureBase();
  const admission = cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  const { mutating, validating } = webhookConfigurations({ name: o.configName, veleroNamespace: o.policy.veleroNamespace, url, timeoutSeconds: 5 });
  await admission.createMutatingWebhookConfiguration({ body: mutating });
  await admission.createValidatingWebhookConfiguration({ body: validating });
  const patcher = new CaBundlePatcher({
    kubeConfig: cp.kubeConfig,
    mutatingName: o.configName,
    validatingName: o.configName,
    log,
    metrics,
    ...(o.resyncMs !== undefined ? { resyncMs: o.resyncMs } : {}),
  });
  await patcher.attach(o.tls);
  return {
    cache,
    server,
    patcher,
    metrics,
    url,
    async stop() {
      patcher.stop();
      await server.close();
      await cache.stop();
    },
  };
}
