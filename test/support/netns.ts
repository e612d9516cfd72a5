/**
 * A network namespace of the test's own, joined to this one by a veth pair, so a process in it
 * has an address that is not loopback. Needed where the API server must reach a process
 * through an Endpoints object: Endpoints refuse loopback addresses, and no other address on
 * this machine is the tests' to use. Both ends get addresses from 198.18.0.0/15 (RFC 2544,
 * set aside for tests), so no traffic leaves the machine. Needs root and iproute2.
 */
import { spawnSync } from "node:child_process";
import { createServer, connect, type Server, type Socket } from "node:net";

export interface NetNs {
  readonly name: string;
  /** This namespace's end of the veth pair. */
  readonly hostIp: string;
  /** The address inside the namespace. */
  readonly nsIp: string;
  /** The command line that runs `cmd args` inside the namespace. */
  wrap(cmd: string, args: string[]): { cmd: string; args: string[] };
  remove(): void;
}

const PREFIX = "bg-it-";

function ip(args: string[], allowFail = false): string {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.error || (r.status !== 0 && !allowFail)) {
    const why = r.error ? r.error.message : r.stderr.trim();
    throw new Error(`ip ${args.join(" ")}: ${why} (a network namespace needs root and iproute2)`);
  }
  return r.stdout;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
};

/** Namespaces left by test processes that were killed outright. */
function sweepStale(): void {
  for (const line of ip(["netns", "list"]).split("\n")) {
    const m = new RegExp(`^(${PREFIX}(\\d+)-\\d+)`).exec(line);
    if (m && !alive(Number(m[2]))) ip(["netns", "del", m[1]!], true);
  }
}

let counter = 0;
const owned = new Set<NetNs>();
process.on("exit", () => {
  for (const n of owned) n.remove();
});

export function createNetNs(): NetNs {
  sweepStale();
  counter += 1;
  const name = `${PREFIX}${process.pid}-${counter}`;
  // Interface names have at most 15 characters; a /30 per namespace, chosen by pid and counter.
  const id = (process.pid * 8 + counter) % 32768;
  const hostIf = `bgh${id}`,
    nsIf = `bgn${id}`;
  const base = `198.${18 + (id >> 14)}.${(id >> 6) & 255}.${(id & 63) * 4}`.split(".").map(Number);
  const addr = (last: number) => `${base[0]}.${base[1]}.${base[2]}.${base[3]! + last}`;
  const hostIp = addr(1),
    nsIp = addr(2);
  let removed = false;
  const ns: NetNs = {
    name,
    hostIp,
    nsIp,
    wrap: (cmd, args) => ({ cmd: "ip", args: ["netns", "exec", name, cmd, ...args] }),
    remove() {
      if (removed) return;
      removed = true;
      owned.delete(ns);
      ip(["link", "del", hostIf], true);
      ip(["netns", "del", name], true);
    },
  };
  owned.add(ns);
  try {
    ip(["netns", "add", name]);
    ip(["link", "add", hostIf, "type", "veth", "peer", "name", nsIf]);
    ip(["link", "set", nsIf, "netns", name]);
    ip(["addr", "add", `${hostIp}/30`, "dev", hostIf]);
    ip(["link", "set", hostIf, "up"]);
    ip(["-n", name, "addr", "add", `${nsIp}/30`, "dev", nsIf]);
    ip(["-n", name, "link", "set", nsIf, "up"]);
    ip(["-n", name, "link", "set", "lo", "up"]);
  } catch (e) {
    ns.remove();
    throw e;
  }
  return ns;
}

/** A TCP relay listening on `host` (port chosen by the system) to `target`; close() ends it. */
export async function tcpRelay(host: string, target: { host: string; port: number }): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    const outbound = connect(target.port, target.host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
