/**
 * The parts of the local stack the test harness does not start the demo's way: backup-gate
 * with files-mode TLS (dev certs in certs/) under tools/run-guarded.sh (so it dies with the
 * demo even if the demo is SIGKILLed), and the wait for Velero's port 8080.
 */
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { join } from "node:path";
import type { ControlPlane } from "../../test/support/controlPlane.js";
import { freePort } from "../../test/support/gate.js";
import { spawnManaged, type ManagedProcess } from "../../test/support/proc.js";
import { repoRoot, repoScript } from "../../test/support/tools.js";
import { sleep, waitFor } from "../../test/support/wait.js";

export interface DemoGate {
  readonly url: string;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startDemoGate(cp: Pick<ControlPlane, "kubeconfigPath">, o: { certsDir: string; logDir: string; namespace: string }): Promise<DemoGate> {
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const args = [
    process.execPath,
    "--import",
    "tsx",
    join(repoRoot, "src/cli/main.ts"),
    "serve",
    "--kubeconfig",
    cp.kubeconfigPath,
    "--namespace",
    o.namespace,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--tls-dir",
    o.certsDir,
    "--identity",
    "demo-gate",
    "--register-url",
    url,
  ];
  const proc = spawnManaged(repoScript("run-guarded.sh"), args, { name: "backup-gate", logDir: o.logDir, cwd: repoRoot, env: { ...process.env } });
  // Checked with the dev CA: the same files the API server trusts through the caBundle.
  const ca = readFileSync(join(o.certsDir, "ca.crt"));
  const ready = () =>
    new Promise<boolean>((resolve) => {
      const req = request(`${url}/readyz`, { ca, timeout: 2000 }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode === 200));
      });
      req.on("error", () => resolve(false));
      req.on("timeout", () => req.destroy());
      req.end();
    });
  await waitFor(`backup-gate to be ready at ${url}/readyz`, ready, { timeoutMs: 90_000, intervalMs: 300 }).catch(async (e: Error) => {
    await proc.stop(5_000);
    throw new Error(`${e.message}\n${proc.tail(30)}`);
  });
  return { url, process: proc, stop: () => proc.stop(20_000) };
}

/** Whether nothing listens on `port` on any interface (Velero's metrics server binds *:8080). */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, () => srv.close(() => resolve(true)));
  });
}

/** Polls until `port` is free, saying once (and then every minute) why it waits. */
export async function waitForPort(port: number, say: (s: string) => void, intervalMs = 2_000): Promise<void> {
  const since = Date.now();
  let lastSaid = 0;
  while (!(await portFree(port))) {
    if (Date.now() - lastSaid >= 60_000) {
      lastSaid = Date.now();
      say(
        `port ${port} is in use (only one Velero can run on this machine: another Velero, e.g. a test suite, holds it); ` +
          `waiting for it to be free (${Math.round((Date.now() - since) / 1000)}s so far; Ctrl-C to give up)`,
      );
    }
    await sleep(intervalMs);
  }
  if (lastSaid) say(`port ${port} is free after ${Math.round((Date.now() - since) / 1000)}s`);
}
