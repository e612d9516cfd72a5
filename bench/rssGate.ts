// Runs `backup-gate serve` as production does (plain JS, `node dist/src/cli/main.js` with the
// image's node flags, NODE_OPTIONS from the Deployment) against a harness control plane and
// reads its memory from outside: VmRSS and VmHWM (the kernel's peak) from /proc/<pid>/status, heap from its own /metrics.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { ControlPlane } from "../test/support/controlPlane.js";
import { freePort } from "../test/support/gate.js";
import { imageNodeFlags } from "../test/support/imageRuntime.js";
import { spawnManaged } from "../test/support/proc.js";
import { waitFor } from "../test/support/wait.js";
import { bundle } from "./bundle.js";

export interface GateMemory {
  /** NODE_OPTIONS of the run ("" for Node's defaults). */
  nodeOptions: string;
  /** Start to /readyz 200 (every collection listed, admission index built). */
  readyMs: number;
  /** Peak RSS over the whole run (VmHWM). */
  peakRssMiB: number;
  /** RSS after settling: the mean of the samples in the last third of the settle time. */
  steadyRssMiB: number;
  /** From /metrics at the end (V8's own figures, no forced GC). */
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  heapSnapshot?: string;
}

export interface GateRunOptions {
  root: string;
  nodeOptions: string;
  settleMs: number;
  /** Write a heap snapshot (SIGUSR2) after settling, into the control plane's directory. */
  heapSnapshot: boolean;
}

/** The CLI as one plain-JS file. */
export function compileGate(root: string): string {
  return bundle(join(root, "src", "cli", "main.ts"), "backup-gate.mjs");
}

const mib = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

/** VmRSS and VmHWM of a live process, in bytes. */
export function procMemory(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // Only the bench reads these; the certificate is the gate's own in-memory CA.
    const req = request(url, { rejectUnauthorized: false, timeout: 5_000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.end();
  });
}

function gauge(metrics: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)`, "m").exec(metrics);
  if (!m) throw new Error(`/metrics has no ${name}`);
  return Number(m[1]);
}

export async function measureGate(cp: Pick<ControlPlane, "kubeconfigPath" | "dir">, script: string, o: GateRunOptions): Promise<GateMemory> {
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const flags = [...imageNodeFlags(), ...(o.heapSnapshot ? ["--heapsnapshot-signal=SIGUSR2"] : [])];
  const name = `gate-${o.nodeOptions ? "flag" : "default"}`;
  const proc = spawnManaged(
    process.execPath,
    [
      ...flags,
      script,
      "serve",
      "--kubeconfig",
      cp.kubeconfigPath,
      "--namespace",
      "backup-gate",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--extra-san",
      "127.0.0.1",
      "--identity",
      name,
      "--register-url",
      url,
    ],
    { name, logDir: cp.dir, cwd: cp.dir, env: { ...process.env, NODE_OPTIONS: o.nodeOptions, NODE_ENV: "production", LOG_LEVEL: "info" } },
  );
  const pid = proc.pid as number;
  try {
    const t0 = performance.now();
    await waitFor(`backup-gate (${name}) /readyz`, async () => (await get(`${url}/readyz`).catch(() => ({ status: 0 }))).status === 200, {
      timeoutMs: 30 * 60_000,
      intervalMs: 250,
    });
    const readyMs = Math.round(performance.now() - t0);
    const samples: number[] = [];
    const settleStart = performance.now();
    while (performance.now() - settleStart < o.settleMs) {
      await new Promise((r) => setTimeout(r, 500));
      if (performance.now() - settleStart >= (o.settleMs * 2) / 3) samples.push(procMemory(pid).rss);
    }
    const metrics = (await get(`${url}/metrics`)).body;
    const { hwm } = procMemory(pid);
    const result: GateMemory = {
      nodeOptions: o.nodeOptions,
      readyMs,
      peakRssMiB: mib(hwm),
      steadyRssMiB: mib(samples.reduce((a, b) => a + b, 0) / samples.length),
      heapUsedMiB: mib(gauge(metrics, "backup_gate_nodejs_heap_size_used_bytes")),
      heapTotalMiB: mib(gauge(metrics, "backup_gate_nodejs_heap_size_total_bytes")),
      externalMiB: mib(gauge(metrics, "backup_gate_nodejs_external_memory_bytes")),
    };
    if (o.heapSnapshot) result.heapSnapshot = await snapshot(cp.dir, pid);
    return result;
  } finally {
    await proc.stop(20_000);
  }
}

/** Signals the gate to write a heap snapshot and waits for the file to be complete. */
async function snapshot(dir: string, pid: number): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, "SIGUSR2");
  const file = await waitFor("the heap snapshot", () => readdirSync(dir).find((f) => f.endsWith(".heapsnapshot") && !before.has(f)), {
    timeoutMs: 120_000,
    intervalMs: 500,
  });
  let size = -1;
  await waitFor(
    "the heap snapshot to be written",
    () => {
      const now = statSync(join(dir, file)).size;
      const stable = now > 0 && now === size;
      size = now;
      return stable;
    },
    { timeoutMs: 300_000, intervalMs: 2_000 },
  );
  return join(dir, file);
}
