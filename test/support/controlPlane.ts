/**
 * A throw-away control plane (etcd + kube-apiserver with Velero's CRDs) started
 * through tools/controlplane. No controller-manager, scheduler or kubelet: pods
 * stay Pending, PVCs never bind by themselves, namespaces never finish
 * terminating, nothing is garbage-collected. Use unique namespace names.
 */
import { KubeConfig } from "@kubernetes/client-node";
import { mkdirSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { makeSuiteDir, spawnManaged, type ManagedProcess } from "./proc.js";
import { toolPath } from "./tools.js";
import { waitFor } from "./wait.js";
import { startWatch } from "./watch.js";

export interface ControlPlaneOptions {
  /** Used in the suite directory name. */
  name?: string;
  /** Directory for logs and the kubeconfig; default: a fresh per-suite temp dir. */
  dir?: string;
  /** Extra kube-apiserver flags, e.g. { "watch-cache": "false" } (replace envtest's value for the key). */
  apiserverArgs?: Record<string, string>;
  /** Extra etcd flags. */
  etcdArgs?: Record<string, string>;
  /** Wait at most this long for the launcher's ready line. Default 150 s. */
  startTimeoutMs?: number;
}

export interface ControlPlane {
  dir: string;
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  host: string;
  process: ManagedProcess;
  /** etcd's client URL (its HTTP gateway takes /v3/kv/... requests, e.g. a compaction). */
  etcdUrl: string;
  /** Last log lines of the launcher, etcd and kube-apiserver. */
  logs(n?: number): string;
  /**
   * Kills kube-apiserver (SIGKILL, as a crash), runs `whileDown` (etcd stays up), starts it
   * again with the identical command line (same certificates, port, etcd) and resolves once it
   * answers /readyz. Clients keep their kubeconfig.
   */
  restartApiServer(o?: { whileDown?: () => Promise<void> }): Promise<{ downMs: number }>;
  stop(): Promise<void>;
}

interface ReadyLine {
  kubeconfig: string;
  host: string;
  pid: number;
  children: number[];
  startMs: number;
  etcd: string;
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const dir = opts.dir ?? makeSuiteDir(opts.name ?? "cp");
  const logDir = join(dir, "logs");
  const kubeconfigPath = join(dir, "kubeconfig");
  const args = [
    "-etcd",
    toolPath("etcd"),
    "-kube-apiserver",
    toolPath("kube-apiserver"),
    "-kubeconfig",
    kubeconfigPath,
    "-log-dir",
    logDir,
    "-start-timeout",
    "90s",
    "-stop-on-stdin-eof",
  ];
  for (const [k, v] of Object.entries(opts.apiserverArgs ?? {})) args.push("-apiserver-arg", `${k}=${v}`);
  for (const [k, v] of Object.entries(opts.etcdArgs ?? {})) args.push("-etcd-arg", `${k}=${v}`);

  let onReady: (r: ReadyLine) => void = () => {};
  const apiserverStates: ((state: string) => void)[] = [];
  const ready = new Promise<ReadyLine>((resolve) => {
    onReady = resolve;
  });
  // The envtest temp dirs (etcd data, certs) go under the suite dir too.
  const tmp = join(dir, "tmp");
  mkdirSync(tmp, { recursive: true });
  const proc = spawnManaged(toolPath("controlplane"), args, {
    name: "controlplane",
    logDir,
    env: { ...process.env, TMPDIR: tmp },
    extraLogs: [join(logDir, "kube-apiserver.log"), join(logDir, "etcd.log")],
    onStdoutLine: (line) => {
      if (!line.startsWith("{")) return;
      const parsed = JSON.parse(line) as ReadyLine | { apiserver: string };
      if ("apiserver" in parsed) apiserverStates.shift()?.(parsed.apiserver);
      else onReady(parsed);
    },
  });
  const timeoutMs = opts.startTimeoutMs ?? 150_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then((r) => ({ kind: "ready" as const, r })),
    proc.exited.then((e) => ({ kind: "exited" as const, e })),
    new Promise<{ kind: "timeout" }>((r) => {
      timer = setTimeout(() => r({ kind: "timeout" }), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (outcome.kind !== "ready") {
    const why = outcome.kind === "exited" ? `exited (code ${outcome.e.code}, signal ${outcome.e.signal})` : `did not report ready within ${timeoutMs} ms`;
    await proc.stop(5_000);
    throw new Error(`control plane launcher ${why}\n${proc.tail(30)}`);
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(outcome.r.kubeconfig);
  // Ready means clients can also watch Velero's resources: kube-apiserver
  // answers 429 to watches while a new CRD's watch cache initializes.
  try {
    const w = await startWatch(kubeConfig, "/apis/velero.io/v1/backups", { timeoutSeconds: 1 }, () => {}, { timeoutMs: 60_000 });
    w.abort();
  } catch (e) {
    await proc.stop(10_000);
    throw new Error(`control plane started but ${(e as Error).message}\n${proc.tail(30)}`);
  }
  /** Signals the launcher and waits for its {"apiserver": state} line. */
  const launcherSays = async (signal: NodeJS.Signals, state: string) => {
    const said = new Promise<string>((resolve) => apiserverStates.push(resolve));
    process.kill(proc.pid!, signal);
    const got = await Promise.race([said, new Promise<string>((r) => setTimeout(() => r("timeout"), 40_000))]);
    if (got !== state) throw new Error(`control plane launcher: kube-apiserver not ${state} (${got})\n${proc.tail(20)}`);
  };
  const readyz = async () => {
    const opts: import("node:https").RequestOptions = { timeout: 2_000 };
    await kubeConfig.applyToHTTPSOptions(opts);
    return new Promise<boolean>((resolve) => {
      const req = httpsRequest(new URL("/readyz", outcome.r.host), opts, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on("error", () => resolve(false));
      req.on("timeout", () => req.destroy());
      req.end();
    });
  };
  return {
    dir,
    kubeconfigPath: outcome.r.kubeconfig,
    kubeConfig,
    host: outcome.r.host,
    etcdUrl: outcome.r.etcd,
    process: proc,
    logs: (n = 40) => proc.tail(n),
    restartApiServer: async (o = {}) => {
      const down = Date.now();
      await launcherSays("SIGUSR1", "stopped");
      await o.whileDown?.();
      await launcherSays("SIGUSR2", "started");
      await waitFor("kube-apiserver to answer /readyz after its restart", readyz, { timeoutMs: 120_000, intervalMs: 200 });
      return { downMs: Date.now() - down };
    },
    stop: () => proc.stop(60_000),
  };
}
