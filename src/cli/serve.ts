import { hostname } from "node:os";
import { performance } from "node:perf_hooks";
import { Command } from "commander";
import { createWebhookServer, webhookConfigurations } from "../admission/index.js";
import { createClusterCache, type ClusterCacheImpl } from "../cluster/index.js";
import { LeaderElector } from "../controller/leader.js";
import { PromotionKey } from "../controller/promotionKey.js";
import { QueueController } from "../controller/queueController.js";
import { createRequester, statusOf, type KubeAccess } from "../kube/http.js";
import { createEventRecorder } from "../kube/events.js";
import { createLogger, type Logger } from "../logging/logger.js";
import { createMetrics } from "../metrics/metrics.js";
import { createPolicySource, pinVeleroNamespace } from "../policy/index.js";
import { CaBundlePatcher, FileTls, InjectedBundleCheck, SelfManagedTls, webhookConfigurationPath, type TlsSource } from "../tls/index.js";
import { collect, kubeOptions } from "./commander.js";
import { loadKubeConfig } from "./kubeconfig.js";
import { UsageError } from "./readInput.js";
import { disablePretenuring, keepOptimizedCode, settleHeap } from "./v8Flags.js";

export interface ServeOptions {
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly namespace: string;
  readonly service: string;
  readonly webhookConfiguration: string;
  readonly policyConfigMap: string;
  readonly host: string;
  readonly port: number;
  readonly tlsDir?: string;
  /** Another operator (service-ca, cert-manager's cainjector) writes the caBundle: the gate never does. */
  readonly caInjected?: boolean;
  /** With caInjected: how often the injected caBundle is checked; default 60 s. */
  readonly caBundleCheckMs?: number;
  readonly extraSans: readonly string[];
  readonly registerUrl?: string;
  readonly identity: string;
}

/** The flags of `serve` as commander gives them. */
export interface ServeFlags {
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly namespace?: string;
  readonly service: string;
  readonly webhookConfiguration: string;
  readonly policyConfigmap: string;
  readonly host: string;
  readonly port: string;
  readonly tlsDir?: string;
  readonly caInjected?: boolean;
  readonly caBundleCheckSeconds: string;
  readonly extraSan: string[];
  readonly registerUrl?: string;
  readonly identity?: string;
}

/** `serve`'s flags; main gives it its action. */
export function serveCommand(): Command {
  return kubeOptions(new Command("serve"), false)
    .description("run the webhooks and the queue controller (what the Deployment runs)")
    .usage("[flags]")
    .option("--namespace <ns>", "the gate's namespace (Lease, policy ConfigMap) (default: $POD_NAMESPACE, else backup-gate)")
    .option("--service <name>", "the webhook Service, for the certificate's DNS names", "backup-gate")
    .option("--webhook-configuration <name>", "name of both webhook configurations (caBundle patched)", "backup-gate")
    .option("--policy-configmap <name>", "the policy ConfigMap in --namespace", "backup-gate-policy")
    .option("--host <host>", "where the HTTPS server listens", "0.0.0.0")
    .option("--port <port>", "where the HTTPS server listens", "8443")
    .option("--tls-dir <dir>", "serve tls.crt/tls.key/ca.crt from DIR (e.g. cert-manager) instead of a self-managed CA")
    .option(
      "--ca-injected",
      "with --tls-dir: the caBundle is injected by another operator (OpenShift service-ca, cert-manager cainjector); ca.crt is optional and the gate never writes the caBundle, it only reports one that does not verify its certificate",
    )
    .option("--ca-bundle-check-seconds <n>", "with --ca-injected: how often the injected caBundle is checked", "60")
    .option("--extra-san <name>", "one more certificate name or IP (repeatable), e.g. 127.0.0.1 for local runs", collect, [])
    .option("--register-url <url>", "create/replace both webhook configurations pointing at URL (local runs)")
    .option("--identity <id>", "leader-election identity (default: $POD_NAME, else host-pid)");
}

export function serveOptions(values: ServeFlags, env: NodeJS.ProcessEnv): ServeOptions {
  const port = /^\d+$/.test(values.port) ? Number(values.port) : NaN;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number, not ${values.port}`);
  const checkSeconds = /^\d+$/.test(values.caBundleCheckSeconds) ? Number(values.caBundleCheckSeconds) : NaN;
  if (!(checkSeconds >= 1)) throw new UsageError(`--ca-bundle-check-seconds must be a whole number of seconds, at least 1, not ${values.caBundleCheckSeconds}`);
  if (values.caInjected && !values.tlsDir) throw new UsageError("--ca-injected needs --tls-dir: the certificate the injector's CA signed");
  return {
    ...(values.caInjected ? { caInjected: true, caBundleCheckMs: checkSeconds * 1000 } : {}),
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    ...(values.context ? { context: values.context } : {}),
    namespace: values.namespace ?? env.POD_NAMESPACE ?? "backup-gate",
    service: values.service,
    webhookConfiguration: values.webhookConfiguration,
    policyConfigMap: values.policyConfigmap,
    host: values.host,
    port,
    ...(values.tlsDir ? { tlsDir: values.tlsDir } : {}),
    extraSans: values.extraSan,
    ...(values.registerUrl ? { registerUrl: values.registerUrl } : {}),
    identity: values.identity ?? env.POD_NAME ?? `${hostname()}-${process.pid}`,
  };
}

export interface RunningGate {
  readonly url: string;
  /** Settles once the cache has synced and the admission index is built from it (rejects if stopped first). */
  readonly indexed: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts every part of the gate in dependency order: policy, cluster cache, TLS and caBundle,
 * the webhook server (answering at once; /readyz turns true when the cache has synced), then
 * leader election and the queue controller. `stop` undoes it in reverse, releasing the lease
 * so a standby takes over at once.
 */
export async function startGate(o: ServeOptions, log: Logger = createLogger()): Promise<RunningGate> {
  const kc = await loadKubeConfig(o);
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
    ? new FileTls({ dir: o.tlsDir, log, metrics, ...(o.caInjected ? { caInjected: true } : {}) })
    : new SelfManagedTls({ service: { name: o.service, namespace: o.namespace }, extraSans: o.extraSans, log, metrics });
  await tls.start();
  if (o.registerUrl) await registerWebhooks(kc, o.webhookConfiguration, veleroNamespace, o.registerUrl, tls.current().ca);
  // Either the gate writes its CA into the caBundle, or it leaves that to the injector and
  // only checks what was injected.
  const names = { kubeConfig: kc, mutatingName: o.webhookConfiguration, validatingName: o.webhookConfiguration, log, metrics };
  const patcher = o.caInjected
    ? new InjectedBundleCheck({ ...names, ...(o.caBundleCheckMs ? { intervalMs: o.caBundleCheckMs } : {}) })
    : new CaBundlePatcher(names);
  await patcher.attach(tls);

  // Moves into flight by other writers are judged by the leader only (admission/flightGuard.ts);
  // the gate's own promotions, made as `self`, pass any replica.
  const leader = new LeaderElector(kc, { namespace: o.namespace, name: "backup-gate", identity: o.identity, log, metrics });
  const self = await ownUser(kc, log);
  const server = await createWebhookServer({ tls, cache, policy, metrics, log, leadership: leader, identity: o.identity, ...(self ? { self } : {}) });
  const address = await server.listen({ host: o.host, port: o.port });

  const promotionKey = new PromotionKey(kc, { namespace: o.namespace, log });
  await promotionKey.start();
  const controller = new QueueController({
    kc,
    cache,
    policy,
    leader,
    events: recorder,
    metrics,
    log,
    identity: o.identity,
    sealer: () => promotionKey.current(),
    guard: server.engine,
  });
  leader.start();
  controller.start();
  log.info({ url: address.url, identity: o.identity, veleroNamespace }, "backup-gate serving");
  const indexed = cache.waitForSync(stopChecks.signal).then(() => server.engine.ensureBase());
  indexed.catch(() => undefined);

  return {
    url: address.url,
    indexed,
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
  try {
    await cache.waitForSync(signal);
  } catch {
    return;
  }
  if (cache.view.namespace(veleroNamespace)) return;
  warn(
    `veleroNamespace ${JSON.stringify(veleroNamespace)} does not exist: backup-gate guards and plans no Backups until it does; check the policy's veleroNamespace and the webhooks' namespaceSelector`,
  );
}

/**
 * The API user the gate writes as, from a SelfSubjectReview. Without it a replica that does not
 * lead refuses the gate's own promotions too (retried until one reaches the leader): slower, not unsafe.
 */
async function ownUser(kc: KubeAccess, log: Logger): Promise<string | undefined> {
  try {
    const review = (await createRequester(kc).send("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
      body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
    })) as { status?: { userInfo?: { username?: string } } } | undefined;
    const user = review?.status?.userInfo?.username;
    if (user) {
      log.info({ user }, "the gate writes as this user");
      return user;
    }
  } catch (e) {
    log.warn({ err: String(e) }, "could not learn the gate's own user (SelfSubjectReview); a replica that does not lead will refuse its promotions too");
  }
  return undefined;
}

/** For runs outside a cluster: both configurations pointing at a URL, replaced if present. */
async function registerWebhooks(kc: KubeAccess, name: string, veleroNamespace: string, url: string, ca: string): Promise<void> {
  const api = createRequester(kc);
  const { mutating, validating } = webhookConfigurations({ name, veleroNamespace, url, caBundle: ca });
  for (const [kind, body] of [
    ["MutatingWebhookConfiguration", mutating],
    ["ValidatingWebhookConfiguration", validating],
  ] as const) {
    try {
      await api.send("DELETE", webhookConfigurationPath(kind, name));
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
    await api.send("POST", webhookConfigurationPath(kind), { body });
  }
}

export async function runServe(options: ServeOptions): Promise<void> {
  disablePretenuring();
  keepOptimizedCode();
  const log = createLogger();
  const gate = await startGate(options, log);
  void gate.indexed.then(
    () => {
      const started = performance.now();
      settleHeap();
      log.info(
        { ms: Math.round(performance.now() - started), heapUsedMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20) },
        "heap settled after the first index",
      );
    },
    () => undefined,
  );
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    void gate.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error({ err: String(e) }, "stop failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}
