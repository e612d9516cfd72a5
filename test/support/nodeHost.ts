/**
 * The host side of the test node (test/support/node.ts): its network (a dummy link with the
 * node's address, the CNI bridge, a blackhole route for the rest of its range), its
 * certificates, and the cleanup of everything a node leaves outside its own directory.
 *
 * Addresses: 10.213.0.0/16 is the node's. The node IP sits on the node's own veth link, pods get
 * 10.213.1.0/24 on the bridge, services 10.213.128.0/24; everything else in the /16 is a
 * blackhole, so a pod that dials a service IP (there is no kube-proxy) gets an error instead of
 * sending traffic out of this machine. The chart suite's namespaces use 198.18.0.0/15.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const NODE_NET = {
  nodeName: "bg-node",
  link: "bgnode0",
  linkPeer: "bgnode1",
  nodeIp: "10.213.0.1",
  bridge: "bgnodebr0",
  podCidr: "10.213.1.0/24",
  podGateway: "10.213.1.1",
  serviceCidr: "10.213.128.0/24",
  serviceIp: "10.213.128.1",
  reserved: "10.213.0.0/16",
  cniNetwork: "bgnode",
} as const;

/** Every run directory of a test node has this in its name: cleanup finds leftovers by it. */
export const RUN_MARKER = "bgnode-run-";

function run(cmd: string, args: string[], allowFail = false): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.error || (r.status !== 0 && !allowFail)) {
    const why = r.error ? r.error.message : r.stderr.trim();
    throw new Error(`${cmd} ${args.join(" ")}: ${why}`);
  }
  return r.stdout ?? "";
}

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

/** The host's IPv4 forwarding switch ("0" or "1"); the CNI bridge plugin turns it on. */
export function readIpForward(): string {
  return readFileSync(IP_FORWARD, "utf8").trim();
}

export function restoreIpForward(value: string): void {
  if (readIpForward() !== value) writeFileSync(IP_FORWARD, value);
}

/**
 * The node's own link with the node IP, and the blackhole route for the rest of the range.
 * A veth pair with both ends here (this kernel has no dummy links); deleting one deletes both.
 */
export function setUpHostNetwork(): void {
  run("ip", ["link", "add", NODE_NET.link, "type", "veth", "peer", "name", NODE_NET.linkPeer]);
  run("ip", ["addr", "add", `${NODE_NET.nodeIp}/32`, "dev", NODE_NET.link]);
  run("ip", ["link", "set", NODE_NET.linkPeer, "up"]);
  run("ip", ["link", "set", NODE_NET.link, "up"]);
  run("ip", ["route", "add", "blackhole", NODE_NET.reserved]);
}

/** The bridge + host-local conflist containerd's CRI reads (own bridge, own range, no masquerade). */
export function writeCniConfig(confDir: string, ipamDir: string): void {
  const conf = {
    cniVersion: "0.4.0",
    name: NODE_NET.cniNetwork,
    plugins: [
      {
        type: "bridge",
        bridge: NODE_NET.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir: ipamDir,
          ranges: [[{ subnet: NODE_NET.podCidr, gateway: NODE_NET.podGateway }]],
          // No default route: pods reach the node's range (the node IP) and nothing else.
          routes: [{ dst: NODE_NET.reserved }],
        },
      },
    ],
  };
  writeFileSync(join(confDir, "10-bgnode.conflist"), JSON.stringify(conf, null, 2));
}

// ---- certificates (openssl) ----

export interface NodeCerts {
  dir: string;
  ca: string;
  caKey: string;
  apiserver: { cert: string; key: string };
  admin: { cert: string; key: string };
  kubelet: { cert: string; key: string };
  kubeletServing: { cert: string; key: string };
  apiserverKubeletClient: { cert: string; key: string };
  saKey: string;
  saPub: string;
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** One CA and the leaf certificates the node's components need (EC P-256, valid 2 days). */
export function makeCerts(dir: string): NodeCerts {
  const p = (n: string) => join(dir, n);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "2", "-subj", "/CN=backup-gate-test-node-ca"]);
  const leaf = (name: string, subj: string, ext: string) => {
    writeFileSync(p(`${name}.ext`), `${ext}\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n`);
    openssl(["req", ...ec, "-keyout", p(`${name}.key`), "-out", p(`${name}.csr`), "-subj", subj]);
    openssl([
      "x509",
      "-req",
      "-in",
      p(`${name}.csr`),
      "-CA",
      p("ca.crt"),
      "-CAkey",
      p("ca.key"),
      "-CAcreateserial",
      "-out",
      p(`${name}.crt`),
      "-days",
      "2",
      "-extfile",
      p(`${name}.ext`),
    ]);
    return { cert: p(`${name}.crt`), key: p(`${name}.key`) };
  };
  const client = "extendedKeyUsage=clientAuth";
  const apiserverSans = [
    `IP:${NODE_NET.nodeIp}`,
    "IP:127.0.0.1",
    `IP:${NODE_NET.serviceIp}`,
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
  ];
  const certs: NodeCerts = {
    dir,
    ca: p("ca.crt"),
    caKey: p("ca.key"),
    apiserver: leaf("apiserver", "/CN=kube-apiserver", `extendedKeyUsage=serverAuth\nsubjectAltName=${apiserverSans.join(",")}`),
    admin: leaf("admin", "/O=system:masters/CN=backup-gate-admin", client),
    kubelet: leaf("kubelet", `/O=system:nodes/CN=system:node:${NODE_NET.nodeName}`, client),
    kubeletServing: leaf(
      "kubelet-serving",
      `/CN=${NODE_NET.nodeName}`,
      `extendedKeyUsage=serverAuth\nsubjectAltName=IP:${NODE_NET.nodeIp},IP:127.0.0.1,DNS:${NODE_NET.nodeName}`,
    ),
    apiserverKubeletClient: leaf("apiserver-kubelet-client", "/CN=kube-apiserver-kubelet-client", client),
    saKey: p("sa.key"),
    saPub: p("sa.pub"),
  };
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", certs.saKey]);
  openssl(["pkey", "-in", certs.saKey, "-pubout", "-out", certs.saPub]);
  return certs;
}

export function writeKubeconfig(path: string, server: string, ca: string, user: { cert: string; key: string }): void {
  writeFileSync(
    path,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: bg-node",
      "  cluster:",
      `    server: ${server}`,
      `    certificate-authority: ${ca}`,
      "users:",
      "- name: user",
      "  user:",
      `    client-certificate: ${user.cert}`,
      `    client-key: ${user.key}`,
      "contexts:",
      "- name: bg-node",
      "  context: {cluster: bg-node, user: user}",
      "current-context: bg-node",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
}

// ---- cleanup ----

/** Processes whose command line mentions a node run directory (containerd's shims included). */
function nodeProcesses(): number[] {
  const pids: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "utf8").includes(RUN_MARKER)) pids.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

const CGROUP_ROOT = "/sys/fs/cgroup";

/** Every kubepods cgroup directory, deepest first, in every v1 hierarchy. */
function kubepodsCgroups(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d, { withFileTypes: true })
        .filter((x) => x.isDirectory())
        .map((x) => x.name);
    } catch {
      return;
    }
    for (const e of entries) walk(join(d, e));
    out.push(d);
  };
  let ctrls: string[] = [];
  try {
    ctrls = readdirSync(CGROUP_ROOT);
  } catch {
    return out;
  }
  for (const c of ctrls) {
    const k = join(CGROUP_ROOT, c, "kubepods");
    if (existsSync(k)) walk(k);
  }
  return out;
}

function killAll(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

function cgroupPids(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const d of dirs) {
    try {
      for (const l of readFileSync(join(d, "cgroup.procs"), "utf8").split("\n")) if (l.trim()) pids.add(Number(l));
    } catch {
      // not there
    }
  }
  return [...pids];
}

/** Mount points under a node run directory, deepest first. */
function nodeMounts(): string[] {
  const mounts = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .map((m) => m.replace(/\\040/g, " "))
    .filter((m) => m.includes(RUN_MARKER));
  return [...new Set(mounts)].sort((a, b) => b.length - a.length);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const KUBELET_CHAINS = /^KUBE-/;

function cleanIptables(bin: string): void {
  for (const table of ["filter", "nat", "mangle"]) {
    const rules = run(bin, ["-w", "-t", table, "-S"], true).split("\n");
    // Jumps into KUBE-* chains from the built-in chains first, then the chains themselves.
    for (const r of rules) {
      const m = /^-A (\S+) (.*-j KUBE-\S+.*)$/.exec(r);
      if (m && !KUBELET_CHAINS.test(m[1]!)) run(bin, ["-w", "-t", table, "-D", m[1]!, ...splitRule(m[2]!)], true);
    }
    const chains = rules.map((r) => /^-N (\S+)$/.exec(r)?.[1]).filter((c): c is string => !!c && KUBELET_CHAINS.test(c));
    for (const c of chains) run(bin, ["-w", "-t", table, "-F", c], true);
    for (const c of chains) run(bin, ["-w", "-t", table, "-X", c], true);
  }
}

/** Splits an iptables -S rule tail into arguments (quoted comments kept whole). */
function splitRule(s: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) out.push(m[1] ?? m[2]!);
  return out;
}

function rmdirIfEmpty(d: string): void {
  try {
    if (readdirSync(d).length === 0) rmdirSync(d);
  } catch {
    // not there or not empty
  }
}

/**
 * Removes everything a test node (this one or a crashed earlier one) left outside its run
 * directory, and its processes and mounts. Idempotent; returns what it found, for the log.
 * `runDirs` are removed too (after their mounts are gone).
 */
export function cleanUpNodeLeftovers(runDirs: string[] = []): string[] {
  const found: string[] = [];
  // 1. Processes: the node's daemons, containerd's shims (their own sessions), then whatever
  //    still runs in the pods' cgroups.
  const procs = nodeProcesses();
  if (procs.length) found.push(`${procs.length} processes`);
  killAll(procs);
  for (let i = 0; i < 20; i++) {
    const left = cgroupPids(kubepodsCgroups());
    if (left.length === 0) break;
    if (i === 0) found.push(`${left.length} pod processes`);
    killAll(left);
    sleepSync(100);
  }
  sleepSync(procs.length ? 300 : 0);
  // 2. Mounts under run directories (pod volumes, netns files, the kubelet's rshared root).
  for (let round = 0; round < 5; round++) {
    const mounts = nodeMounts();
    if (mounts.length === 0) break;
    if (round === 0) found.push(`${mounts.length} mounts`);
    for (const m of mounts) {
      if (spawnSync("umount", [m]).status !== 0) spawnSync("umount", ["-l", m]);
    }
  }
  // 3. cgroups (deepest first; a cgroup with processes cannot go).
  const cgs = kubepodsCgroups();
  if (cgs.length) found.push(`${cgs.length} kubepods cgroups`);
  for (const d of cgs) {
    try {
      rmdirSync(d);
    } catch {
      // busy or gone: reported by the caller's next start
    }
  }
  // 4. iptables chains the kubelet makes (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT).
  for (const bin of ["iptables", "ip6tables"]) cleanIptables(bin);
  // 5. Fixed paths the kubelet and the CNI library write.
  if (existsSync("/var/lib/kubelet/device-plugins")) {
    found.push("/var/lib/kubelet/device-plugins");
    rmSync("/var/lib/kubelet/device-plugins", { recursive: true, force: true });
  }
  rmdirIfEmpty("/var/lib/kubelet");
  const results = "/var/lib/cni/results";
  if (existsSync(results)) {
    for (const f of readdirSync(results)) {
      // Ours, and containerd CRI's own loopback network (no other containerd runs here).
      if (f.startsWith(`${NODE_NET.cniNetwork}-`) || f.startsWith("cni-loopback-")) rmSync(join(results, f), { force: true });
    }
    rmdirIfEmpty(results);
    rmdirIfEmpty("/var/lib/cni");
  }
  // containerd 1.6 puts its shims' sockets under /run/containerd/s whatever its state dir;
  // kubelet links container logs from /var/log/containers. Only ours, and only when no
  // system containerd runs.
  if (!existsSync("/run/containerd/containerd.sock")) {
    rmSync("/run/containerd/s", { recursive: true, force: true });
    rmdirIfEmpty("/run/containerd");
  }
  const logLinks = "/var/log/containers";
  if (existsSync(logLinks)) {
    for (const f of readdirSync(logLinks)) {
      let target = "";
      try {
        target = readlinkSync(join(logLinks, f));
      } catch {
        continue;
      }
      if (target.includes(RUN_MARKER)) rmSync(join(logLinks, f), { force: true });
    }
    rmdirIfEmpty(logLinks);
  }
  // 6. Network: the bridge (pods' veths die with their namespaces), the node's link, the route.
  for (const link of [NODE_NET.bridge, NODE_NET.link]) {
    if (run("ip", ["link", "show", link], true).trim()) {
      found.push(`link ${link}`);
      run("ip", ["link", "del", link], true);
    }
  }
  run("ip", ["route", "del", "blackhole", NODE_NET.reserved], true);
  // 7. The run directories themselves.
  for (const d of runDirs) rmSync(d, { recursive: true, force: true });
  return found;
}
