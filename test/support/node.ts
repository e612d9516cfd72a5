/**
 * A one-node Kubernetes cluster for integration suites: etcd, kube-apiserver (Node,RBAC),
 * containerd (CRI, runc, the CNI bridge), kubelet, kube-controller-manager and kube-scheduler,
 * all built by tools/build.sh or from Debian, with the images of tools/images.sh. Pods run for
 * real; `startNodeVelero` then installs real Velero (server and node-agent as pods) from
 * `velero install` output.
 *
 * - One node per machine at a time (a lock file); a node left by a crashed run is cleaned up
 *   first (nodeHost.ts, cleanUpNodeLeftovers), and again by stop().
 * - The node has its own address on a veth link of its own (10.213.0.1) and its own bridge; nothing
 *   touches this machine's interfaces, and containerd keeps pod network namespaces under its
 *   own state directory, away from /run/netns (which `ip netns add` bind-mounts).
 * - Every wait has a timeout naming what it waited for; a component that dies fails the next
 *   wait with its last log lines (proc.ts).
 */
import { AppsV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, RbacAuthorizationV1Api, StorageV1Api, type KubernetesObject } from "@kubernetes/client-node";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseAllDocuments, stringify as toYaml } from "yaml";
import { clients, getVelero, isApiError, type Clients } from "./objects.js";
import {
  cleanUpNodeLeftovers,
  makeCerts,
  NODE_NET,
  readIpForward,
  restoreIpForward,
  RUN_MARKER,
  setUpHostNetwork,
  writeCniConfig,
  writeKubeconfig,
  type NodeCerts,
} from "./nodeHost.js";
import { spawnManaged, type ManagedProcess } from "./proc.js";
import { repoScript, toolPath } from "./tools.js";
import { runningAndReady } from "./podReadiness.js";
import { waitFor } from "./wait.js";

export { NODE_NET } from "./nodeHost.js";

export interface NodeImages {
  pause: string;
  busybox: string;
  velero: string;
}

export interface TestNode {
  /** The run directory: logs, certificates, state of every component. */
  dir: string;
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  host: string;
  nodeName: string;
  nodeIp: string;
  apiserverPort: number;
  images: NodeImages;
  /** Host directory pods may mount (hostPath) to leave records the suite reads. */
  recordsDir: string;
  processes: ManagedProcess[];
  /** Last log lines of every component. */
  logs(n?: number): string;
  /** Runs `ctr` against this node's containerd. */
  ctr(args: string[]): string;
  stop(): Promise<void>;
}

export interface NodeOptions {
  /** Wait at most this long for the Node to become Ready. Default 120 s. */
  readyTimeoutMs?: number;
  /** Further kube-apiserver flags, e.g. `--enable-aggregator-routing=true`. */
  apiserverArgs?: string[];
}

const LOCK = join(tmpdir(), "backup-gate-test-node.lock");
const PATH_DIRS = (process.env.PATH ?? "").split(":").filter(Boolean);

interface ImagesManifest {
  tag: string;
  images: Record<keyof NodeImages, { ref: string; file: string }>;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const a = srv.address();
      const port = typeof a === "object" && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
};

interface Lock {
  pid: number;
  dir: string;
  /** The host's ip_forward before the node started (the CNI bridge plugin turns it on). */
  ipForward: string;
}

/**
 * Checks the machine-wide node lock. Returns the lock of a dead process (a crashed run: its
 * leftovers are cleaned up and its ip_forward value restored); throws if a live one holds it.
 */
function staleLock(): Lock | undefined {
  if (!existsSync(LOCK)) return undefined;
  const held = JSON.parse(readFileSync(LOCK, "utf8")) as Lock;
  if (held.pid !== process.pid && alive(held.pid)) {
    throw new Error(`a test node is already running (pid ${held.pid}, ${held.dir}); only one per machine (${LOCK})`);
  }
  return held;
}

/** Creates the lock file exclusively (O_EXCL); a stale one (dead process) is replaced. */
function takeLock(stale: Lock | undefined): void {
  if (stale) rmSync(LOCK, { force: true });
  // Until the run directory exists the lock names the stale run's directory and ip_forward, so
  // that a crash in between still cleans up and restores what the stale run left.
  const held: Lock = { pid: process.pid, dir: stale?.dir ?? "", ipForward: stale?.ipForward ?? readIpForward() };
  try {
    writeFileSync(LOCK, JSON.stringify(held), { flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    const other = JSON.parse(readFileSync(LOCK, "utf8")) as Lock;
    throw new Error(`a test node is already running (pid ${other.pid}, ${other.dir}); only one per machine (${LOCK})`);
  }
}

async function httpsOk(kc: KubeConfig, url: string): Promise<boolean> {
  const opts: import("node:https").RequestOptions = { timeout: 2_000 };
  await kc.applyToHTTPSOptions(opts);
  return new Promise<boolean>((resolve) => {
    const req = httpsRequest(new URL(url), opts, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

export async function startNode(opts: NodeOptions = {}): Promise<TestNode> {
  if (process.getuid?.() !== 0) {
    throw new Error("the test node needs root (it adds links, routes, mounts and cgroups); run as root or set BACKUP_GATE_NODE_TESTS=0");
  }
  for (const bin of ["containerd", "ctr", "runc", "ip", "iptables", "openssl"]) {
    if (!PATH_DIRS.some((d) => existsSync(join(d, bin)))) {
      throw new Error(`the test node needs ${bin} on PATH; run \`bash tools/build.sh\` as root (it installs the Debian packages)`);
    }
  }
  const stale = staleLock();
  // Taken atomically before anything is cleaned up: two runs that both found the lock free
  // would otherwise each clean up (remove) the other's fresh links and start on top of it.
  takeLock(stale);
  const leftovers = cleanUpNodeLeftovers(stale?.dir ? [stale.dir] : []);
  if (stale) restoreIpForward(stale.ipForward);
  if (leftovers.length) process.stderr.write(`startNode: cleaned up after an earlier node: ${leftovers.join(", ")}\n`);
  const ipForward = readIpForward();
  const base = process.env.BACKUP_GATE_TEST_TMP ?? tmpdir();
  mkdirSync(base, { recursive: true });
  // Short: containerd's sockets live here (a unix socket path has at most 107 bytes).
  const dir = mkdtempSync(join(base, RUN_MARKER));
  writeFileSync(LOCK, JSON.stringify({ pid: process.pid, dir, ipForward } satisfies Lock));
  const processes: ManagedProcess[] = [];
  const logDir = join(dir, "logs");
  const stop = async () => {
    for (const p of [...processes].reverse()) await p.stop(p.name === "kubelet" ? 5_000 : 15_000);
    // The run directory goes too (its logs are quoted in any failure); BACKUP_GATE_KEEP_NODE=1 keeps it.
    cleanUpNodeLeftovers(process.env.BACKUP_GATE_KEEP_NODE === "1" ? [] : [dir]);
    restoreIpForward(ipForward);
    try {
      if ((JSON.parse(readFileSync(LOCK, "utf8")) as { pid: number }).pid === process.pid) rmSync(LOCK, { force: true });
    } catch {
      // no lock
    }
  };
  try {
    return await startNodeIn(dir, logDir, processes, stop, opts);
  } catch (e) {
    const tails = processes.map((p) => p.tail(25)).join("\n");
    await stop();
    throw new Error(`${(e as Error).message}\n${tails}`);
  }
}

/**
 * startNode, waiting while another run on this machine holds the node (one per machine):
 * retries every second for at most `waitMs`, calling `onWait` with the holder's line at first
 * and then once a minute.
 */
export async function startNodeWhenFree(o: NodeOptions & { waitMs: number; onWait?: (line: string, waitedMs: number) => void }): Promise<TestNode> {
  const since = Date.now();
  let lastSaid = 0;
  for (;;) {
    try {
      return await startNode(o);
    } catch (e) {
      const m = (e as Error).message;
      if (!/a test node is already running/.test(m) || Date.now() - since > o.waitMs) throw e;
      if (Date.now() - lastSaid >= 60_000) {
        lastSaid = Date.now();
        o.onWait?.(m.split("\n")[0]!, Date.now() - since);
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

async function startNodeIn(dir: string, logDir: string, processes: ManagedProcess[], stop: () => Promise<void>, opts: NodeOptions): Promise<TestNode> {
  const d = (...p: string[]) => {
    const x = join(dir, ...p);
    mkdirSync(x, { recursive: true });
    return x;
  };
  const images = readImages();
  setUpHostNetwork();
  const certs = makeCerts(d("pki"));
  const guarded = (name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) => {
    const p = spawnManaged(repoScript("run-guarded.sh"), [cmd, ...args], { name, logDir, env });
    processes.push(p);
    return p;
  };

  // etcd on loopback.
  const etcdPort = await freePort("127.0.0.1");
  const etcdPeer = await freePort("127.0.0.1");
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  guarded("etcd", toolPath("etcd"), [
    "--name",
    "bg-node",
    "--data-dir",
    d("etcd"),
    "--unsafe-no-fsync",
    "--listen-client-urls",
    etcdUrl,
    "--advertise-client-urls",
    etcdUrl,
    "--listen-peer-urls",
    `http://127.0.0.1:${etcdPeer}`,
    "--initial-advertise-peer-urls",
    `http://127.0.0.1:${etcdPeer}`,
    "--initial-cluster",
    `bg-node=http://127.0.0.1:${etcdPeer}`,
    "--listen-metrics-urls",
    "",
  ]);

  // kube-apiserver on the node IP (pods reach it there: there is no kube-proxy).
  const apiserverPort = await freePort(NODE_NET.nodeIp);
  const host = `https://${NODE_NET.nodeIp}:${apiserverPort}`;
  guarded("kube-apiserver", toolPath("kube-apiserver"), [
    `--etcd-servers=${etcdUrl}`,
    `--bind-address=${NODE_NET.nodeIp}`,
    `--advertise-address=${NODE_NET.nodeIp}`,
    `--secure-port=${apiserverPort}`,
    `--tls-cert-file=${certs.apiserver.cert}`,
    `--tls-private-key-file=${certs.apiserver.key}`,
    `--client-ca-file=${certs.ca}`,
    `--service-cluster-ip-range=${NODE_NET.serviceCidr}`,
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    `--service-account-key-file=${certs.saPub}`,
    `--service-account-signing-key-file=${certs.saKey}`,
    "--authorization-mode=Node,RBAC",
    "--enable-admission-plugins=NodeRestriction",
    "--allow-privileged=true",
    `--kubelet-client-certificate=${certs.apiserverKubeletClient.cert}`,
    `--kubelet-client-key=${certs.apiserverKubeletClient.key}`,
    `--kubelet-certificate-authority=${certs.ca}`,
    "--kubelet-preferred-address-types=InternalIP,Hostname",
    `--cert-dir=${d("apiserver-certs")}`,
    "--profiling=false",
    ...(opts.apiserverArgs ?? []),
  ]);
  const kubeconfigPath = join(dir, "kubeconfig");
  writeKubeconfig(kubeconfigPath, host, certs.ca, certs.admin);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);
  await waitFor("kube-apiserver to answer /readyz", () => httpsOk(kubeConfig, `${host}/readyz`), { timeoutMs: 90_000, intervalMs: 300 });
  // The API server's kubelet client may exec, attach and read logs (as kubeadm binds it).
  const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: "backup-gate-apiserver-kubelet-client" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:kubelet-api-admin" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "kube-apiserver-kubelet-client" }],
    },
  });

  // containerd with everything under the run directory, and the node's images.
  const ctrd = d("containerd");
  const sock = join(ctrd, "containerd.sock");
  const cniConf = d("cni", "net.d");
  writeCniConfig(cniConf, d("cni", "ipam"));
  writeFileSync(join(ctrd, "config.toml"), containerdConfig(ctrd, cniConf, images.pause));
  const containerd = guarded("containerd", "containerd", ["--config", join(ctrd, "config.toml")]);
  const ctr = (args: string[]) => execFileSync("ctr", ["-a", sock, "-n", "k8s.io", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  await waitFor(
    "containerd to answer on its socket",
    () => {
      ctr(["version"]);
      return true;
    },
    { timeoutMs: 30_000, intervalMs: 300 },
  );
  const manifest = JSON.parse(readFileSync(toolPath("images"), "utf8")) as ImagesManifest;
  for (const img of Object.values(manifest.images)) {
    try {
      ctr(["images", "import", join(dirname(toolPath("images")), img.file)]);
    } catch (e) {
      throw new Error(`ctr images import ${img.file} failed: ${(e as { stderr?: string }).stderr ?? (e as Error).message}\n${containerd.tail(20)}`);
    }
  }

  // kubelet.
  const kubeletDir = d("kubelet");
  const kubeletKubeconfig = join(dir, "kubelet.kubeconfig");
  writeKubeconfig(kubeletKubeconfig, host, certs.ca, certs.kubelet);
  const kubeletPort = await freePort(NODE_NET.nodeIp);
  writeFileSync(join(dir, "resolv.conf"), "nameserver 127.0.0.1\n");
  writeFileSync(join(dir, "kubelet-config.yaml"), toYaml(kubeletConfig(dir, certs, sock, kubeletPort)));
  guarded("kubelet", toolPath("kubelet"), [
    `--config=${join(dir, "kubelet-config.yaml")}`,
    `--kubeconfig=${kubeletKubeconfig}`,
    `--root-dir=${kubeletDir}`,
    `--cert-dir=${d("kubelet-pki")}`,
    `--node-ip=${NODE_NET.nodeIp}`,
    `--hostname-override=${NODE_NET.nodeName}`,
    "--v=2",
  ]);

  // controller-manager and scheduler (admin credentials; no serving port of their own).
  guarded("kube-controller-manager", toolPath("kube-controller-manager"), [
    `--kubeconfig=${kubeconfigPath}`,
    `--authentication-kubeconfig=${kubeconfigPath}`,
    `--authorization-kubeconfig=${kubeconfigPath}`,
    "--leader-elect=false",
    "--use-service-account-credentials=true",
    `--service-account-private-key-file=${certs.saKey}`,
    `--root-ca-file=${certs.ca}`,
    `--cluster-signing-cert-file=${certs.ca}`,
    `--cluster-signing-key-file=${certs.caKey}`,
    `--service-cluster-ip-range=${NODE_NET.serviceCidr}`,
    "--secure-port=0",
  ]);
  guarded("kube-scheduler", toolPath("kube-scheduler"), [
    `--kubeconfig=${kubeconfigPath}`,
    `--authentication-kubeconfig=${kubeconfigPath}`,
    `--authorization-kubeconfig=${kubeconfigPath}`,
    "--leader-elect=false",
    "--secure-port=0",
  ]);

  const core = kubeConfig.makeApiClient(CoreV1Api);
  await waitFor(
    `Node ${NODE_NET.nodeName} to register and become Ready`,
    async () => {
      const n = await core.readNode({ name: NODE_NET.nodeName });
      return n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
    },
    { timeoutMs: opts.readyTimeoutMs ?? 120_000, intervalMs: 500 },
  );
  await waitFor(
    "the default ServiceAccount in namespace default",
    async () => {
      await core.readNamespacedServiceAccount({ name: "default", namespace: "default" });
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );

  const recordsDir = d("records");
  return {
    dir,
    kubeconfigPath,
    kubeConfig,
    host,
    nodeName: NODE_NET.nodeName,
    nodeIp: NODE_NET.nodeIp,
    apiserverPort,
    images: { pause: images.pause, busybox: images.busybox, velero: images.velero },
    recordsDir,
    processes,
    logs: (n = 30) => processes.map((p) => p.tail(n)).join("\n"),
    ctr,
    stop,
  };
}

function readImages(): NodeImages {
  const m = JSON.parse(readFileSync(toolPath("images"), "utf8")) as ImagesManifest;
  return { pause: m.images.pause.ref, busybox: m.images.busybox.ref, velero: m.images.velero.ref };
}

function containerdConfig(root: string, cniConf: string, pauseImage: string): string {
  return `version = 2
root = "${root}/root"
state = "${root}/state"
[grpc]
  address = "${root}/containerd.sock"
[ttrpc]
  address = "${root}/containerd.sock.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "${root}/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "${pauseImage}"
    # This sandbox lacks CAP_SYS_RESOURCE: without it runc cannot start a pod sandbox.
    restrict_oom_score_adj = true
    # Keep pod network namespaces away from /run/netns, which 'ip netns add' bind-mounts.
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "${root}/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "${cniConf}"
`;
}

function kubeletConfig(dir: string, certs: NodeCerts, sock: string, port: number): Record<string, unknown> {
  return {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    address: NODE_NET.nodeIp,
    port,
    readOnlyPort: 0,
    healthzPort: 0,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: certs.ca } },
    authorization: { mode: "Webhook" },
    tlsCertFile: certs.kubeletServing.cert,
    tlsPrivateKeyFile: certs.kubeletServing.key,
    cgroupDriver: "cgroupfs",
    failSwapOn: false,
    failCgroupV1: false,
    containerRuntimeEndpoint: `unix://${sock}`,
    podLogsDir: join(dir, "pod-logs"),
    volumePluginDir: join(dir, "volume-plugins"),
    resolvConf: join(dir, "resolv.conf"),
    makeIPTablesUtilChains: false,
    // A test machine's disk is shared and often nearly full: never evict or collect images.
    evictionHard: { "memory.available": "1Mi", "nodefs.available": "0%", "imagefs.available": "0%", "nodefs.inodesFree": "0%" },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    maxPods: 60,
    syncFrequency: "10s",
    fileCheckFrequency: "10s",
    nodeStatusUpdateFrequency: "5s",
    shutdownGracePeriod: "0s",
  };
}

// ---- Velero on the node ----

export interface NodeVeleroOptions {
  /** --concurrent-backups (default 1). */
  concurrentBackups?: number;
  /** --disable-controllers=backup-queue: Velero's own queue off (a gate, or a test, starts backups). */
  disableQueue?: boolean;
  /** BACKUP_GATE_PROBE_SLEEP for the probe plugin (how long it holds each pod/PVC/PV). */
  probeSleep?: string;
  /** Velero feature flags (e.g. EnableCSI). */
  features?: string[];
  /** Extra `velero server` arguments. */
  serverArgs?: string[];
  /** How long to wait for Velero to be up (pods Running, BSL Available). Default 180 s. */
  timeoutMs?: number;
  /**
   * The node-agent's data-path concurrency (loadConcurrency.globalConfig in its ConfigMap).
   * Velero's default is 1: pod volume backups of one node then never run at once, whoever starts them.
   */
  nodeAgentConcurrency?: number;
}

/** The node-agent ConfigMap the harness writes when `nodeAgentConcurrency` is set. */
export const NODE_AGENT_CONFIGMAP = "node-agent-config";

export interface NodeVelero {
  namespace: string;
  /** Host directory the probe plugin writes its records to (mounted into the server pod). */
  probeDir: string;
  s3Url: string;
  s3: ManagedProcess;
  /** Last lines of the Velero server's and node-agent's container logs. */
  logs(n?: number): string;
  stop(): Promise<void>;
}

const AWS_CREDENTIALS = "[default]\naws_access_key_id=backup-gate\naws_secret_access_key=backup-gate\n";

async function startS3OnNode(logDir: string): Promise<{ proc: ManagedProcess; url: string }> {
  let onUrl: (u: string) => void = () => {};
  const got = new Promise<string>((r) => {
    onUrl = r;
  });
  const proc = spawnManaged(toolPath("s3"), ["-listen", `${NODE_NET.nodeIp}:0`, "-buckets", "velero", "-stop-on-stdin-eof"], {
    name: "s3-node",
    logDir,
    onStdoutLine: (line) => {
      if (line.startsWith("{")) onUrl((JSON.parse(line) as { url: string }).url);
    },
  });
  let url: string | undefined;
  void got.then((u) => {
    url = u;
  });
  await waitFor("the S3 server to print its URL", () => url, { timeoutMs: 30_000, intervalMs: 100 });
  if (!url) throw new Error("unreachable: waitFor returned without a URL");
  return { proc, url };
}

type Obj = KubernetesObject & { spec?: any; data?: any; stringData?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** `velero install --dry-run -o json` with the node's image, the S3 server and the harness's settings. */
function veleroInstallObjects(node: TestNode, s3Url: string, credFile: string, o: NodeVeleroOptions): Obj[] {
  const args = [
    "install",
    "--dry-run",
    "-o",
    "json",
    "--kubeconfig",
    node.kubeconfigPath,
    "--namespace",
    "velero",
    "--image",
    node.images.velero,
    // Required with a provider; the plugins are baked into the image, so its init container is dropped.
    "--plugins",
    node.images.velero,
    "--provider",
    "aws",
    "--bucket",
    "velero",
    "--secret-file",
    credFile,
    "--backup-location-config",
    `region=us-east-1,s3ForcePathStyle=true,s3Url=${s3Url},insecureSkipTLSVerify=true`,
    "--use-volume-snapshots=false",
    "--use-node-agent",
    "--uploader-type",
    "kopia",
    "--kubelet-root-dir",
    join(node.dir, "kubelet"),
    "--default-volumes-to-fs-backup=false",
    "--velero-pod-cpu-request",
    "0",
    "--velero-pod-mem-request",
    "0",
    "--velero-pod-cpu-limit",
    "0",
    "--velero-pod-mem-limit",
    "0",
    "--node-agent-pod-cpu-request",
    "0",
    "--node-agent-pod-mem-request",
    "0",
    "--node-agent-pod-cpu-limit",
    "0",
    "--node-agent-pod-mem-limit",
    "0",
    ...(o.features?.length ? ["--features", o.features.join(",")] : []),
  ];
  const out = execFileSync(toolPath("velero"), args, {
    encoding: "utf8",
    env: { PATH: process.env.PATH, HOME: join(node.dir, "velero-cli-home") },
    maxBuffer: 64 << 20,
  });
  const list = JSON.parse(out) as { items: Obj[] };
  return list.items;
}

/** The harness's changes to `velero install` output (each says why). */
function patchVeleroObjects(items: Obj[], node: TestNode, probeDir: string, o: NodeVeleroOptions): void {
  // Pods cannot reach the service IP (no kube-proxy): Velero and its data-path pods (which copy
  // the node-agent's environment) talk to the API server at the node's address.
  const apiEnv = [
    { name: "KUBERNETES_SERVICE_HOST", value: NODE_NET.nodeIp },
    { name: "KUBERNETES_SERVICE_PORT", value: String(node.apiserverPort) },
  ];
  for (const it of items) {
    if (it.kind === "BackupStorageLocation") {
      // gofakes3 decodes only STREAMING-AWS4-HMAC-SHA256-PAYLOAD chunking, not the SDK's default CRC32 trailer.
      it.spec.config.checksumAlgorithm = "";
    }
    if (it.kind !== "Deployment" && it.kind !== "DaemonSet") continue;
    const pod = it.spec.template.spec;
    if (it.kind === "DaemonSet" && o.nodeAgentConcurrency !== undefined) {
      pod.containers[0].args = [...(pod.containers[0].args ?? []), `--node-agent-configmap=${NODE_AGENT_CONFIGMAP}`];
    }
    for (const c of pod.containers ?? []) {
      c.imagePullPolicy = "Never"; // no registry: the images are imported into containerd
      c.env = [...(c.env ?? []), ...apiEnv];
    }
    if (it.kind === "Deployment") {
      delete pod.initContainers;
      const c = pod.containers[0];
      c.args = [
        ...c.args,
        // The AWS and probe plugins are baked into the image (velero install mounts an emptyDir on /plugins).
        "--plugin-dir=/plugins-baked",
        `--concurrent-backups=${o.concurrentBackups ?? 1}`,
        "--store-validation-frequency=10s",
        "--log-level=debug",
        ...(o.disableQueue ? ["--disable-controllers=backup-queue"] : []),
        ...(o.serverArgs ?? []),
      ];
      c.env.push({ name: "BACKUP_GATE_PROBE_DIR", value: "/probe" }, { name: "BACKUP_GATE_PROBE_SLEEP", value: o.probeSleep ?? "0s" });
      c.volumeMounts = [...(c.volumeMounts ?? []), { name: "probe", mountPath: "/probe" }];
      pod.volumes = [...(pod.volumes ?? []), { name: "probe", hostPath: { path: probeDir, type: "Directory" } }];
    }
  }
}

export async function startNodeVelero(node: TestNode, o: NodeVeleroOptions = {}): Promise<NodeVelero> {
  const dir = join(node.dir, "velero");
  const probeDir = join(dir, "probe");
  mkdirSync(probeDir, { recursive: true });
  const credFile = join(dir, "cloud-credentials");
  writeFileSync(credFile, AWS_CREDENTIALS, { mode: 0o600 });
  const s3 = await startS3OnNode(join(node.dir, "logs"));
  node.processes.push(s3.proc);
  const items = veleroInstallObjects(node, s3.url, credFile, o);
  patchVeleroObjects(items, node, probeDir, o);
  if (o.nodeAgentConcurrency !== undefined) {
    // Before the DaemonSet: the node-agent reads it once, at its start.
    items.splice(
      items.findIndex((i) => i.kind === "DaemonSet"),
      0,
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: NODE_AGENT_CONFIGMAP, namespace: "velero" },
        data: { "node-agent-config.json": JSON.stringify({ loadConcurrency: { globalConfig: o.nodeAgentConcurrency } }) },
      },
    );
  }
  writeFileSync(join(dir, "install.yaml"), items.map((i) => toYaml(i)).join("---\n"));

  const objs = KubernetesObjectApi.makeApiClient(node.kubeConfig);
  // CRDs first: the rest (the BSL) needs them established.
  await createCrds(
    objs,
    items.filter((i) => i.kind === "CustomResourceDefinition"),
    "Velero's CRDs",
  );
  for (const it of items.filter((i) => i.kind !== "CustomResourceDefinition")) await createOrKeep(objs, it);

  const c = clients(node.kubeConfig);
  const timeoutMs = o.timeoutMs ?? 180_000;
  const logs = (n = 40) => veleroLogs(node, c, n);
  try {
    await waitFor(
      "the Velero server and node-agent pods to be Running and ready",
      async () => {
        const pods = await c.core.listNamespacedPod({ namespace: "velero" });
        const ready = (prefix: string) => pods.items.some((p) => p.metadata?.name?.startsWith(prefix) && runningAndReady(p));
        return ready("velero-") && ready("node-agent-");
      },
      { timeoutMs, intervalMs: 1_000 },
    );
    await waitFor(
      "BackupStorageLocation default to become Available",
      async () => {
        const bsl = await getVelero(c, "backupstoragelocations", "velero", "default");
        return bsl.status?.phase === "Available";
      },
      { timeoutMs, intervalMs: 1_000 },
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await logs(40)}\n${s3.proc.tail(10)}`);
  }
  return {
    namespace: "velero",
    probeDir,
    s3Url: s3.url,
    s3: s3.proc,
    logs: (n = 40) => `${readLogsSync(node, n)}\n${s3.proc.tail(Math.min(n, 10))}`,
    stop: async () => {
      const apps = node.kubeConfig.makeApiClient(AppsV1Api);
      await apps.deleteNamespacedDeployment({ name: "velero", namespace: "velero" }).catch(() => undefined);
      await apps.deleteNamespacedDaemonSet({ name: "node-agent", namespace: "velero" }).catch(() => undefined);
      await s3.proc.stop(5_000);
    },
  };
}

/**
 * Turns Velero's own backup queue on or off (`--disable-controllers=backup-queue`) by editing
 * the server's Deployment, and waits until exactly one server pod, the new one, is ready.
 */
export async function setNodeVeleroQueue(node: TestNode, o: { disabled: boolean; timeoutMs?: number }): Promise<void> {
  const apps = node.kubeConfig.makeApiClient(AppsV1Api);
  const flag = "--disable-controllers=backup-queue";
  const dep = await apps.readNamespacedDeployment({ name: "velero", namespace: "velero" });
  const c = dep.spec!.template.spec!.containers[0]!;
  const args = (c.args ?? []).filter((a) => a !== flag);
  if (o.disabled) args.push(flag);
  if (JSON.stringify(args) === JSON.stringify(c.args ?? [])) return;
  c.args = args;
  await apps.replaceNamespacedDeployment({ name: "velero", namespace: "velero", body: dep });
  const core = node.kubeConfig.makeApiClient(CoreV1Api);
  await waitFor(
    `the Velero server to restart with its queue ${o.disabled ? "disabled" : "enabled"}`,
    async () => {
      const pods = (await core.listNamespacedPod({ namespace: "velero", labelSelector: "deploy=velero" })).items;
      return pods.length === 1 && pods[0]!.spec?.containers[0]?.args?.includes(flag) === o.disabled && runningAndReady(pods[0]);
    },
    { timeoutMs: o.timeoutMs ?? 180_000, intervalMs: 1_000 },
  );
}

/** Creates CRDs (kept if present) and waits until the API server serves each one. */
export async function createCrds(objs: KubernetesObjectApi, crds: readonly Obj[], what: string): Promise<void> {
  for (const crd of crds) await createOrKeep(objs, crd);
  await waitFor(
    `${what} to be established`,
    async () => {
      for (const it of crds) {
        const crd = await objs.read<Obj & { status?: { conditions?: { type: string; status: string }[] } }>({
          apiVersion: it.apiVersion,
          kind: it.kind,
          metadata: { name: it.metadata!.name! },
        });
        if (!crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) return false;
      }
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

async function createOrKeep(objs: KubernetesObjectApi, it: Obj): Promise<void> {
  try {
    await objs.create(it);
  } catch (e) {
    if (!isApiError(e, 409)) throw new Error(`creating ${it.kind} ${it.metadata?.namespace ?? ""}/${it.metadata?.name}: ${(e as Error).message}`);
  }
}

/** Container logs of the Velero pods, read from the kubelet's pod log directory. */
function readLogsSync(node: TestNode, n: number): string {
  try {
    const out = execFileSync("sh", ["-c", `for f in ${join(node.dir, "pod-logs")}/velero_*/*/*.log; do echo "--- $f"; tail -n ${n} "$f"; done`], {
      encoding: "utf8",
    });
    return out;
  } catch (e) {
    return `(no Velero pod logs: ${(e as Error).message})`;
  }
}

async function veleroLogs(node: TestNode, c: Clients, n: number): Promise<string> {
  let pods = "";
  try {
    const list = await c.core.listNamespacedPod({ namespace: "velero" });
    pods = list.items.map((p) => `${p.metadata?.name}: ${p.status?.phase} ${JSON.stringify(p.status?.containerStatuses?.map((s) => s.state))}`).join("\n");
  } catch (e) {
    pods = `(listing Velero pods failed: ${(e as Error).message})`;
  }
  return `${pods}\n${readLogsSync(node, n)}`;
}

// ---- CSI on the node ----

export const CSI_DRIVER = "hostpath.csi.backup-gate.io";
export const CSI_STORAGE_CLASS = "bg-hostpath";
export const CSI_SNAPSHOT_CLASS = "bg-hostpath";
export const CSI_GROUP_SNAPSHOT_CLASS = "bg-hostpath";

export interface NodeCsi {
  driver: string;
  storageClass: string;
  snapshotClass: string;
  groupSnapshotClass: string;
}

/**
 * The CSI pieces, as host processes of the node (one node: no pods needed for them): our
 * driver (tools/csi-hostpath, which registers itself with the kubelet), external-provisioner,
 * external-snapshotter's csi-snapshotter and snapshot-controller (group snapshots on), the
 * VolumeSnapshot and VolumeGroupSnapshot CRDs of external-snapshotter's client module, a
 * StorageClass, and a VolumeSnapshotClass and VolumeGroupSnapshotClass labelled for Velero.
 * Start it before Velero: Velero's CSI support needs the CRDs at its start.
 */
export async function startNodeCsi(node: TestNode): Promise<NodeCsi> {
  const dir = join(node.dir, "csi");
  mkdirSync(join(dir, "data"), { recursive: true });
  const sock = join(dir, "csi.sock");
  const logDir = join(node.dir, "logs");
  const guarded = (name: string, cmd: string, args: string[]) => {
    const p = spawnManaged(repoScript("run-guarded.sh"), [cmd, ...args], { name, logDir });
    node.processes.push(p);
    return p;
  };
  const objs = KubernetesObjectApi.makeApiClient(node.kubeConfig);
  const crds = parseAllDocuments(readFileSync(toolPath("snapshot-crds"), "utf8"))
    .map((d) => d.toJSON() as Obj | null)
    .filter((o): o is Obj => o !== null);
  if (!crds.some((c) => c.metadata?.name === "volumegroupsnapshots.groupsnapshot.storage.k8s.io")) {
    throw new Error(
      `${toolPath("snapshot-crds")} has no VolumeGroupSnapshot CRDs (built by an older tools/build.sh): remove its directory and run \`bash tools/build.sh\``,
    );
  }
  await createCrds(objs, crds, "the VolumeSnapshot and VolumeGroupSnapshot CRDs");

  guarded("csi-hostpath", toolPath("csi-hostpath"), [
    "-endpoint",
    sock,
    "-registration-dir",
    join(node.dir, "kubelet", "plugins_registry"),
    "-data-dir",
    join(dir, "data"),
    "-node-id",
    node.nodeName,
  ]);
  await waitFor("the CSI driver's socket", () => existsSync(sock), { timeoutMs: 30_000 });
  const common = [`--csi-address=${sock}`, `--kubeconfig=${node.kubeconfigPath}`, "--leader-election=false", "--v=3"];
  guarded("csi-provisioner", toolPath("csi-provisioner"), [...common, "--timeout=60s"]);
  // Group snapshots are beta and off by default in external-snapshotter 8.4 (tools/csi-snapshotter).
  const groups = "--feature-gates=CSIVolumeGroupSnapshot=true";
  guarded("csi-snapshotter", toolPath("csi-snapshotter"), [...common, "--timeout=60s", groups]);
  guarded("snapshot-controller", toolPath("snapshot-controller"), [`--kubeconfig=${node.kubeconfigPath}`, "--leader-election=false", "--v=3", groups]);

  for (const o of [
    {
      apiVersion: "storage.k8s.io/v1",
      kind: "CSIDriver",
      metadata: { name: CSI_DRIVER },
      spec: { attachRequired: false, podInfoOnMount: false, volumeLifecycleModes: ["Persistent"] },
    },
    {
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: { name: CSI_STORAGE_CLASS },
      provisioner: CSI_DRIVER,
      reclaimPolicy: "Delete",
      volumeBindingMode: "Immediate",
    },
    {
      apiVersion: "snapshot.storage.k8s.io/v1",
      kind: "VolumeSnapshotClass",
      metadata: { name: CSI_SNAPSHOT_CLASS, labels: { "velero.io/csi-volumesnapshot-class": "true" } },
      driver: CSI_DRIVER,
      deletionPolicy: "Delete",
    },
    {
      // What Velero picks for a Backup's volumeGroupSnapshotLabelKey (its default-class label).
      apiVersion: "groupsnapshot.storage.k8s.io/v1beta2",
      kind: "VolumeGroupSnapshotClass",
      metadata: { name: CSI_GROUP_SNAPSHOT_CLASS, labels: { "velero.io/csi-volumegroupsnapshot-class": "true" } },
      driver: CSI_DRIVER,
      deletionPolicy: "Delete",
    },
  ] as Obj[])
    await createOrKeep(objs, o);
  const storage = node.kubeConfig.makeApiClient(StorageV1Api);
  await waitFor(
    `the kubelet to register CSI driver ${CSI_DRIVER} (CSINode)`,
    async () => {
      const n = await storage.readCSINode({ name: node.nodeName });
      return n.spec.drivers.some((d) => d.name === CSI_DRIVER);
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  return { driver: CSI_DRIVER, storageClass: CSI_STORAGE_CLASS, snapshotClass: CSI_SNAPSHOT_CLASS, groupSnapshotClass: CSI_GROUP_SNAPSHOT_CLASS };
}
