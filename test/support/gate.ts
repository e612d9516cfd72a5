/**
 * backup-gate itself as a separate process (`backup-gate serve`), against a harness control
 * plane: the way it runs in production, so a test can SIGKILL it like a crash.
 */
import { createServer } from "node:net";
import { request, type RequestOptions } from "node:https";
import { join } from "node:path";
import type { ControlPlane } from "./controlPlane.js";
import { backupBody } from "./builders.js";
import { getBackup, updateVelero, type BackupOptions, type Clients } from "./objects.js";
import { spawnManaged, type ManagedProcess } from "./proc.js";
import { waitFor } from "./wait.js";

export interface GateOptions {
  identity: string;
  /** Create both webhook configurations pointing at this instance. */
  register?: boolean;
  namespace?: string;
  extraArgs?: string[];
  /** The gate's log level (default debug). */
  logLevel?: string;
}

export interface GateProcess {
  readonly url: string;
  readonly identity: string;
  readonly process: ManagedProcess;
  get(path: string): Promise<{ status: number; body: string }>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A GET over HTTPS with the TLS options given (trust, server name, timeout), answering status and body. */
export function httpsGet(url: string, options: RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.end();
  });
}

/** `cp`: any API server with an admin kubeconfig and a directory for the log (a control plane or the real node). */
export async function startGate(cp: Pick<ControlPlane, "kubeconfigPath" | "dir">, o: GateOptions): Promise<GateProcess> {
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const args = [
    "--import",
    "tsx",
    "--import",
    join(process.cwd(), "test/support/exitWithHarness.ts"),
    join(process.cwd(), "src/cli/main.ts"),
    "serve",
    "--kubeconfig",
    cp.kubeconfigPath,
    "--namespace",
    o.namespace ?? "backup-gate",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--extra-san",
    "127.0.0.1",
    "--identity",
    o.identity,
    ...(o.register ? ["--register-url", url] : []),
    ...(o.extraArgs ?? []),
  ];
  const proc = spawnManaged(process.execPath, args, { name: `gate-${o.identity}`, logDir: cp.dir, env: { ...process.env, LOG_LEVEL: o.logLevel ?? "debug" } });
  // The harness checks readiness only; the API server verifies the certificate on every webhook call.
  const get = (path: string) => httpsGet(`${url}${path}`, { rejectUnauthorized: false, timeout: 2000 });
  await waitFor(`backup-gate ${o.identity} to be ready at ${url}/readyz`, async () => (await get("/readyz")).status === 200, {
    timeoutMs: 60_000,
    intervalMs: 300,
  });
  return { url, identity: o.identity, process: proc, get, kill: () => proc.kill(), stop: () => proc.stop() };
}

/**
 * POSTs an object through the API server and returns its answer with the admission warnings
 * (the `Warning` headers kubectl prints), which client-node's typed clients do not expose.
 */
export async function createWithWarnings(
  cp: Pick<ControlPlane, "kubeConfig" | "host">,
  path: string,
  body: unknown,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the API server's JSON, read by each suite as it needs
): Promise<{ status: number; body: any; warnings: string[] }> {
  const opts: import("node:https").RequestOptions = { method: "POST", headers: { "content-type": "application/json" } };
  await cp.kubeConfig.applyToHTTPSOptions(opts);
  const target = new URL(path, cp.host);
  return new Promise((resolve, reject) => {
    const req = request(target, opts, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => {
        const raw = res.headers.warning;
        const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
        // RFC 7234 warn-value: 299 - "text"; several may share one header, comma-separated.
        const warnings = list.flatMap((h) => [...h.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, "$1")));
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined, warnings });
      });
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/**
 * What a suite does to Backups in one namespace, as a user or Velero would: create through the
 * API server (so the webhooks answer), read the phase, wait for one, and write one (Velero's part,
 * or another writer's). The getters are read at call time: suites assign `cp` and `c` in beforeAll.
 */
export function backupsIn(cp: () => ControlPlane, c: () => Clients, namespace: string) {
  const phaseOf = async (name: string) => (await getBackup(c(), namespace, name)).status?.phase as string | undefined;
  return {
    create: (name: string, o: BackupOptions = {}) =>
      createWithWarnings(cp(), `/apis/velero.io/v1/namespaces/${namespace}/backups`, backupBody(name, namespace, o)),
    phaseOf,
    waitPhase: (name: string, phase: string, timeoutMs = 30_000) =>
      waitFor(`backup ${name} to be ${phase}`, async () => (await phaseOf(name)) === phase, { timeoutMs }),
    setPhase: (name: string, phase: string) =>
      updateVelero(c(), "backups", namespace, name, (o) => {
        o.status = { ...o.status, phase };
      }),
  };
}
