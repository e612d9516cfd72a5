import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { AdmissionregistrationV1Api, AuthenticationV1Api, KubeConfig } from "@kubernetes/client-node";
import { makeKeepAliveClient } from "../cluster/apiClient.js";
import { createWebhookServer, webhookConfigurations } from "../admission/index.js";
import { createClusterCache, type ClusterCacheImpl } from "../cluster/index.js";
import { LeaderElector } from "../controller/leader.js";
import { PromotionKey } from "../controller/promotionKey.js";
import { QueueController } from "../controller/queueController.js";
import { createMetrics } from "../metrics/metrics.js";
import { createPolicySource, pinVeleroNamespace } from "../policy/index.js";
import { createEventRecorder } from "../service/events.js";
import { tuneHeap } from "../service/heap.js";
import { createLogger, type Logger } from "../service/log.js";
import type { TlsSource } from "../service/contracts.js";
import { CaBundlePatcher, FileTls, SelfManagedTls } from "../tls/index.js";
import { UsageError } from "./readInput.js";

export const SERVE_USAGE = `backup-gate serve [flags]

  --kubeconfig FILE           default: $KUBECONFIG, ~/.kube/config, then in-cluster
  --namespace NS              the gate's namespace (Lease, policy ConfigMap); default $POD_NAMESPACE or backup-gate
  --service NAME              the webhook Service, for the certificate's DNS names; default backup-gate
  --webhook-configuration N   name of both webhook configurations (caBundle patched); default backup-gate
  --policy-configmap NAME     default backup-gate-policy
  --host H --port P           where the HTTPS server listens; default 0.0.0.0:8443
  --tls-dir DIR               serve tls.crt/tls.key/ca.crt from DIR (e.g. cert-manager) instead of a self-managed CA
  --extra-san NAME|IP         more certificate names (repeatable), e.g. 127.0.0.1 for local runs
  --register-url URL          create/replace both webhook configurations pointing at URL (local runs)
  --identity ID               leader-election identity; default $POD_NAME or host-pid`;

export interface ServeOptions {
  readonly kubeconfig?: string;
  readonly namespace: string;
  readonly service: string;
  readonly webhookConfiguration: string;
  readonly policyConfigMap: string;
  readonly host: string;
  readonly port: number;
  readonly tlsDir?: string;
  readonly extraSans: readonly string[];
  readonly registerUrl?: string;
  readonly identity: string;
}

export function parseServeArgs(args: string[], env: NodeJS.ProcessEnv): ServeOptions {
  const { values } = parseArgs({
    args,
    options: {
      kubeconfig: { type: "string" }, namespace: { type: "string" }, service: { type: "string" },
      "webhook-configuration": { type: "string" }, "policy-configmap": { type: "string" },
      host: { type: "string" }, port: { type: "string" }, "tls-dir": { type: "string" },
      "extra-san": { type: "string", multiple: true }, "register-url": { type: "string" }, identity: { type: "string" },
    },
    strict: true,
  });
  const port = Number(values.port ?? "8443");
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number, not ${values.port}`);
  return {
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    namespace: values.namespace ?? env.POD_NAMESPACE ?? "backup-gate",
    service: values.service ?? "backup-gate",
    webhookConfiguration: values["webhook-configuration"] ?? "backup-gate",
    policyConfigMap: values["policy-configmap"] ?? "backup-gate-policy",
    host: values.host ?? "0.0.0.0",
    port,
    ...(values["tls-dir"] ? { tlsDir: values["tls-dir"] } : {}),
    extraSans: values["extra-san"] ?? [],
    ...(values["register-url"] ? { registerUrl: values["register-url"] } : {}),
    identity: values.identity ?? env.POD_NAME ?? `${hostname()}-${process.pid}`,
  };
}

export interface RunningGate {
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * Starts every part of the gate in dependency order: policy, cluster cache, TLS and caBundle,
 * the webhook server (answering at once; /readyz turns true when the cache has synced), then
 * leader election and the queue controller. `stop` undoes it in reverse, releasing the lease
 * so a standby takes over at once.
 */
export async function startGate(o: ServeOptions, log: Logger = createLogger()): Promise<RunningGate> {
  const kc = new KubeConfig();
  if (o.kubeconfig) kc.loadFromFile(o.kubeconfig); else kc.loadFromDefault();
  const metrics = createMetrics();
  const recorder = createEventRecorder(kc, { log });

  const source = createPolicySource(kc, { namespace: o.namespace, name: o.policyConfigMap, metrics, log, recorder });
  await source.start();
  const veleroNamespace = source.current().veleroNamespace;
  const cache = createClusterCache(kc, { veleroNamespace, metrics, log });
  await cache.start();
  // veleroNamespace is read once: until a restart every part judges by the namespace watched.
  const configMap = { apiVersion: "v1", kind: "ConfigMap", namespace: o.namespace, name: o.policyConfigMap };
  const policy = pinVeleroNamespace(source, { veleroNamespace, metrics, log, recorder, configMap });
  const stopChecks = new AbortController();
  void warnIfMissing(cache, veleroNamespace, stopChecks.signal, (message) => {
    log.warn({ veleroNamespace }, message);
    void recorder.event(configMap, "Warning", "VeleroNamespaceMissing", message);
  });

  const tls: TlsSource = o.tlsDir
    ? new FileTls({ dir: o.tlsDir, log, metrics })
    : new SelfManagedTls({ service: { name: o.service, namespace: o.namespace }, extraSans: o.extraSans, log, metrics });
  await tls.start();
  if (o.registerUrl) await registerWebhooks(kc, o.webhookConfiguration, veleroNamespace, o.registerUrl, tls.current().ca);
  const patcher = new CaBundlePatcher({ kubeConfig: kc, mutatingName: o.webhookConfiguration, validatingName: o.webhookConfiguration, log, metrics });
  await patcher.attach(tls);

  // Moves into flight by other writers are judged by the leader only (admission/flightGuard.ts);
  // the gate's own promotions, made as `self`, pass any replica.
  const leader = new LeaderElector(kc, { namespace: o.namespace, name: "backup-gate", identity: o.identity, log, metrics });
  const self = await ownUser(kc, log);
  const server = await createWebhookServer({ tls, cache, policy, metrics, log, leadership: leader, identity: o.identity, ...(self ? { self } : {}) });
  const address = await server.listen({ host: o.host, port: o.port });

  const promotionKey = new PromotionKey(kc, { namespace: o.namespace, log });
  await promotionKey.start();
  const controller = new QueueController({ kc, cache, policy, leader, events: recorder, metrics, log, identity: o.identity, sealer: () => promotionKey.current(), guard: server.engine });
  leader.start();
  controller.start();
  log.info({ url: address.url, identity: o.identity, veleroNamespace }, "backup-gate serving");

  return {
    url: address.url,
    async stop() {
      stopChecks.abort();
      controller.stop();
      await controller.idle();
      await leader.stop();
      promotionKey.stop();
      await server.close();
      patcher.stop();
      await tls.stop();
      await cache.stop();
      await policy.stop();
    },
  };
}

/**
 * Once the cache has listed: a veleroNamespace that does not exist (a typo that a restart made
 * take effect) guards nothing, which must not be silent.
 */
async function warnIfMissing(cache: ClusterCacheImpl, veleroNamespace: string, signal: AbortSignal, warn: (message: string) => void): Promise<void> {
  try { await cache.waitForSync(signal); } catch { return; }
  if (cache.view.namespace(veleroNamespace)) return;
  warn(`veleroNamespace ${JSON.stringify(veleroNamespace)} does not exist: backup-gate guards and plans no Backups until it does; check the policy's veleroNamespace and the webhooks' namespaceSelector`);
}

/**
 * The API user the gate writes as, from a SelfSubjectReview. Without it a replica that does not
 * lead refuses the gate's own promotions too (retried until one reaches the leader): slower, not unsafe.
 */
async function ownUser(kc: KubeConfig, log: Logger): Promise<string | undefined> {
  try {
    const review = await makeKeepAliveClient(kc, AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } });
    const user = review.status?.userInfo?.username;
    if (user) { log.info({ user }, "the gate writes as this user"); return user; }
  } catch (e) {
    log.warn({ err: String(e) }, "could not learn the gate's own user (SelfSubjectReview); a replica that does not lead will refuse its promotions too");
  }
  return undefined;
}

/** For runs outside a cluster: both configurations pointing at a URL, replaced if present. */
async function registerWebhooks(kc: KubeConfig, name: string, veleroNamespace: string, url: string, ca: string): Promise<void> {
  const api = makeKeepAliveClient(kc, AdmissionregistrationV1Api);
  const { mutating, validating } = webhookConfigurations({ name, veleroNamespace, url, caBundle: ca });
  try { await api.deleteMutatingWebhookConfiguration({ name }); } catch { /* absent */ }
  try { await api.deleteValidatingWebhookConfiguration({ name }); } catch { /* absent */ }
  await api.createMutatingWebhookConfiguration({ body: mutating });
  await api.createValidatingWebhookConfiguration({ body: validating });
}

export async function runServe(args: string[]): Promise<void> {
  const options = parseServeArgs(args, process.env);
  tuneHeap();
  const log = createLogger();
  const gate = await startGate(options, log);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    void gate.stop().then(() => process.exit(0), (e: unknown) => { log.error({ err: String(e) }, "stop failed"); process.exit(1); });
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}
