/**
 * A throw-away control plane (etcd + kube-apiserver with Velero's CRDs) started
 * through tools/controlplane. No controller-manager, scheduler or kubelet: pods
 * stay Pending, PVCs never bind by themselves, namespaces never finish
 * terminating, nothing is garbage-collected. Use unique namespace names.
 */
import { KubeConfig } from "@kubernetes/client-node";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { makeSuiteDir, spawnManaged, type ManagedProcess } from "./proc.js";
import { toolPath } from "./tools.js";
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
  /** Last log lines of the launcher, etcd and kube-apiserver. */
  logs(n?: number): string;
  stop(): Promise<void>;
}

interface ReadyLine {
  kubeconfig: string;
  host: string;
  pid: number;
  children: number[];
  startMs: number;
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const dir = opts.dir ?? makeSuiteDir(opts.name ?? "cp");
  const logDir = join(dir, "logs");
  const kubeconfigPath = join(dir, "kubeconfig");
  const args = [
    "-etcd", toolPath("etcd"),
    "-kube-apiserver", toolPath("kube-apiserver"),
    "-kubeconfig", kubeconfigPath,
    "-log-dir", logDir,
    "-start-timeout", "90s",
    "-stop-on-stdin-eof",
  ];
  for (const [k, v] of Object.entries(opts.apiserverArgs ?? {})) args.push("-apiserver-arg", `${k}=${v}`);
  for (const [k, v] of Object.entries(opts.etcdArgs ?? {})) args.push("-etcd-arg", `${k}=${v}`);

  let onReady: (r: ReadyLine) => void = () => {};
  const ready = new Promise<ReadyLine>((resolve) => { onReady = resolve; });
  // The envtest temp dirs (etcd data, certs) go under the suite dir too.
  const tmp = join(dir, "tmp");
  mkdirSync(tmp, { recursive: true });
  const proc = spawnManaged(toolPath("controlplane"), args, {
    name: "controlplane",
    logDir,
    env: { ...process.env, TMPDIR: tmp },
    extraLogs: [join(logDir, "kube-apiserver.log"), join(logDir, "etcd.log")],
    onStdoutLine: (line) => {
      if (line.startsWith("{")) onReady(JSON.parse(line) as ReadyLine);
    },
  });
  const timeoutMs = opts.startTimeoutMs ?? 150_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then((r) => ({ kind: "ready" as const, r })),
    proc.exited.then((e) => ({ kind: "exited" as const, e })),
    new Promise<{ kind: "timeout" }>((r) => { timer = setTimeout(() => r({ kind: "timeout" }), timeoutMs); }),
  ]);
  clearTimeout(timer);
  if (outcome.kind !== "ready") {
    const why = outcome.kind === "exited"
      ? `exited (code ${outcome.e.code}, signal ${outcome.e.signal})`
      : `did not report ready within ${timeoutMs} ms`;
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
  return {
    dir,
    kubeconfigPath: outcome.r.kubeconfig,
    kubeConfig,
    host: outcome.r.host,
    process: proc,
    logs: (n = 40) => proc.tail(n),
    stop: () => proc.stop(60_000),
  };
}
