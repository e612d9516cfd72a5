/**
 * Runs a real Velero server (built by tools/build.sh) outside a pod against a
 * harness control plane, with an in-memory S3 server (tools/s3, gofakes3), the
 * AWS object-store plugin and the probe BackupItemAction (tools/probe).
 *
 * Only one Velero per machine at a time: controller-runtime's metrics server
 * inside Velero binds :8080 on all interfaces and Velero has no flag to move it.
 */
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { ControlPlane } from "./controlPlane.js";
import {
  clients,
  createBackup,
  createNamespace,
  getBackup,
  getVelero,
  isApiError,
  TERMINAL_BACKUP_PHASES,
  updateVelero,
  type BackupOptions,
  type Clients,
  type VeleroObject,
} from "./objects.js";
import { spawnManaged, type ManagedProcess } from "./proc.js";
import { repoScript, toolPath } from "./tools.js";
import { waitFor } from "./wait.js";

export interface VeleroOptions {
  /** --concurrent-backups (default 1). */
  concurrentBackups?: number;
  /** Start Velero with --disable-controllers=backup-queue (its own queue off). */
  disableQueue?: boolean;
  /** More controllers to disable. */
  disableControllers?: string[];
  /** BACKUP_GATE_PROBE_SLEEP: how long the probe holds each pod/PVC/PV (Go duration, e.g. "2s"). */
  probeSleep?: string;
  /** Velero's namespace (default "velero"). */
  namespace?: string;
  /** Extra `velero server` flags. */
  extraArgs?: string[];
  /** How long to wait for the BSL to become Available (default 120 s). */
  bslTimeoutMs?: number;
  /**
   * Put `spec.credential` (secret cloud-credentials, key cloud) on the BSL instead of
   * giving Velero AWS_SHARED_CREDENTIALS_FILE as a standard install does. Off by
   * default: Velero 1.18 then rewrites $TMPDIR/credentials/... with O_TRUNC for each
   * plugin Init, and two backups starting together can read it empty and fail with
   * "no EC2 IMDS role found" (internal/credentials/file_store.go, Path).
   */
  bslCredentialFromSecret?: boolean;
  /** Keys to set in (value string) or remove from (value undefined) the BSL's spec.config. */
  bslConfig?: Record<string, string | undefined>;
}

export interface Velero {
  namespace: string;
  dir: string;
  probeDir: string;
  s3Url: string;
  process: ManagedProcess;
  s3: ManagedProcess;
  /** Last lines of Velero's log (and the S3 server's). */
  logs(n?: number): string;
  stop(): Promise<void>;
}

let running = false;

/** Any key works: gofakes3 does not check signatures. */
const AWS_CREDENTIALS = "[default]\naws_access_key_id=backup-gate\naws_secret_access_key=backup-gate\n";

async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const srv = createServer();
    srv.once("error", (e: NodeJS.ErrnoException) => {
      reject(
        new Error(
          `port ${port} is in use (${e.code}); Velero's metrics server needs :${port} ` +
            "on all interfaces, so only one Velero can run at a time on this machine",
        ),
      );
    });
    srv.listen(port, () => srv.close(() => resolve()));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      const port = typeof a === "object" && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function startS3(logDir: string, name: string): Promise<{ proc: ManagedProcess; url: string }> {
  let onUrl: (u: string) => void = () => {};
  const got = new Promise<string>((r) => {
    onUrl = r;
  });
  const proc = spawnManaged(toolPath("s3"), ["-listen", "127.0.0.1:0", "-buckets", "velero", "-stop-on-stdin-eof"], {
    name,
    logDir,
    onStdoutLine: (line) => {
      if (line.startsWith("{")) onUrl((JSON.parse(line) as { url: string }).url);
    },
  });
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    got,
    proc.exited.then(() => undefined),
    new Promise<undefined>((res) => {
      timer = setTimeout(() => res(undefined), 30_000);
    }),
  ]);
  clearTimeout(timer);
  if (!r) {
    await proc.stop(5_000);
    throw new Error(`S3 server did not start\n${proc.tail(20)}`);
  }
  return { proc, url: r };
}

async function applyVeleroSetup(
  c: Clients,
  ns: string,
  s3Url: string,
  credentialFromSecret: boolean,
  configOverrides: Record<string, string | undefined>,
): Promise<void> {
  try {
    await createNamespace(c, ns);
  } catch (e) {
    if (!isApiError(e, 409)) throw e;
  }
  try {
    await c.core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: "cloud-credentials" },
        stringData: { cloud: AWS_CREDENTIALS },
      },
    });
  } catch (e) {
    if (!isApiError(e, 409)) throw e;
  }
  const bsl = {
    apiVersion: "velero.io/v1",
    kind: "BackupStorageLocation",
    metadata: { name: "default", namespace: ns },
    spec: {
      provider: "aws",
      default: true,
      objectStorage: { bucket: "velero" },
      ...(credentialFromSecret ? { credential: { name: "cloud-credentials", key: "cloud" } } : {}),
      config: {
        region: "us-east-1",
        s3Url,
        s3ForcePathStyle: "true",
        insecureSkipTLSVerify: "true",
        // gofakes3 decodes only STREAMING-AWS4-HMAC-SHA256-PAYLOAD chunking, not the SDK's default CRC32 trailer.
        checksumAlgorithm: "",
      },
    },
  };
  const config: Record<string, string | undefined> = { ...bsl.spec.config, ...configOverrides };
  for (const k of Object.keys(config)) if (config[k] === undefined) delete config[k];
  bsl.spec.config = config as typeof bsl.spec.config;
  try {
    await c.custom.createNamespacedCustomObject({ group: "velero.io", version: "v1", namespace: ns, plural: "backupstoragelocations", body: bsl });
  } catch (e) {
    if (!isApiError(e, 409)) throw e;
    // A BSL left by an earlier Velero in this control plane: point it at the new S3 server.
    const old = await getVelero(c, "backupstoragelocations", ns, "default");
    old.spec = bsl.spec;
    await c.custom.replaceNamespacedCustomObject({
      group: "velero.io",
      version: "v1",
      namespace: ns,
      plural: "backupstoragelocations",
      name: "default",
      body: old,
    });
  }
}

/** How long startVelero waits for :8080 to be free (another Velero on this machine, e.g. the demo). */
export const PORT_8080_WAIT_MS = 300_000;

/**
 * Waits (polling) until :8080 is free: another Velero on this machine (another suite, the
 * demo) holds it while it runs. Says what it waits for, and fails after `timeoutMs`.
 */
export async function waitForPort8080(timeoutMs = PORT_8080_WAIT_MS): Promise<void> {
  let said = false;
  await waitFor(
    "port 8080 to be free (Velero's metrics server binds *:8080, so only one Velero can run on this machine at a time; another Velero, e.g. the demo, holds it)",
    async () => {
      try {
        await assertPortFree(8080);
        return true;
      } catch (e) {
        if (!said) {
          said = true;
          process.stderr.write(`startVelero: ${(e as Error).message}; waiting up to ${Math.round(timeoutMs / 1000)} s for it to be free\n`);
        }
        throw e;
      }
    },
    { timeoutMs, intervalMs: 2_000 },
  );
}

export async function startVelero(cp: ControlPlane, opts: VeleroOptions = {}): Promise<Velero> {
  if (running) throw new Error("a Velero started by this harness is still running; stop it first (one Velero per machine)");
  await waitForPort8080();
  running = true;
  try {
    return await startVeleroInner(cp, opts);
  } catch (e) {
    running = false;
    throw e;
  }
}

let seq = 0;
async function startVeleroInner(cp: ControlPlane, opts: VeleroOptions): Promise<Velero> {
  const ns = opts.namespace ?? "velero";
  seq += 1;
  const dir = join(cp.dir, `velero-${seq}`);
  const probeDir = join(dir, "probe");
  const pluginDir = join(dir, "plugins");
  const home = join(dir, "home");
  const tmp = join(dir, "tmp");
  for (const d of [probeDir, pluginDir, home, tmp]) mkdirSync(d, { recursive: true });
  // Velero runs every executable under --plugin-dir as a plugin: only plugins here.
  symlinkSync(toolPath("velero-plugin-for-aws"), join(pluginDir, "velero-plugin-for-aws"));
  symlinkSync(toolPath("probe"), join(pluginDir, "backup-gate-probe"));
  const veleroBin = toolPath("velero"); // absolute: Velero re-executes os.Args[0] for its built-in plugins

  const s3 = await startS3(join(cp.dir, "logs"), `s3-${seq}`);
  const c = clients(cp.kubeConfig);
  let proc: ManagedProcess | undefined;
  try {
    await applyVeleroSetup(c, ns, s3.url, opts.bslCredentialFromSecret ?? false, opts.bslConfig ?? {});
    // As a standard install mounts the secret and points the AWS SDK at it.
    const credentialsFile = join(dir, "cloud-credentials");
    writeFileSync(credentialsFile, AWS_CREDENTIALS, { mode: 0o600 });
    const disabled = [...(opts.disableQueue ? ["backup-queue"] : []), ...(opts.disableControllers ?? [])];
    const args = [
      veleroBin,
      "server",
      "--kubeconfig",
      cp.kubeconfigPath,
      "--namespace",
      ns,
      "--plugin-dir",
      pluginDir,
      "--log-level",
      "debug",
      "--metrics-address",
      `127.0.0.1:${await freePort()}`,
      "--profiler-address",
      "",
      "--concurrent-backups",
      String(opts.concurrentBackups ?? 1),
      "--store-validation-frequency",
      "10s",
      "--default-volumes-to-fs-backup=false",
      ...(disabled.length ? ["--disable-controllers", disabled.join(",")] : []),
      ...(opts.extraArgs ?? []),
    ];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: home,
      TMPDIR: tmp,
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_SHARED_CREDENTIALS_FILE: credentialsFile,
      BACKUP_GATE_PROBE_DIR: probeDir,
      BACKUP_GATE_PROBE_SLEEP: opts.probeSleep ?? "0s",
    };
    // A BSL left by an earlier Velero in this control plane is still Available: only a
    // validation by this Velero counts (lastValidationTime has second resolution).
    const startedSecond = Math.floor(Date.now() / 1000) * 1000;
    proc = spawnManaged(repoScript("run-guarded.sh"), args, { name: `velero-${seq}`, logDir: join(cp.dir, "logs"), env });
    const p = proc;
    await waitFor(
      "BackupStorageLocation default to become Available (validated by this Velero)",
      async () => {
        const bsl = await getVelero(c, "backupstoragelocations", ns, "default");
        const validated = Date.parse(String(bsl.status?.lastValidationTime ?? ""));
        return bsl.status?.phase === "Available" && validated >= startedSecond;
      },
      { timeoutMs: opts.bslTimeoutMs ?? 120_000, intervalMs: 500 },
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${p.tail(40)}\n${s3.proc.tail(10)}`);
    });
  } catch (e) {
    await proc?.stop(10_000);
    await s3.proc.stop(5_000);
    running = false;
    throw e;
  }
  const velero = proc;
  return {
    namespace: ns,
    dir,
    probeDir,
    s3Url: s3.url,
    process: velero,
    s3: s3.proc,
    logs: (n = 40) => `${velero.tail(n)}\n${s3.proc.tail(Math.min(n, 10))}`,
    stop: async () => {
      await velero.stop(30_000);
      await s3.proc.stop(5_000);
      running = false;
    },
  };
}

/**
 * Waits until a Backup reaches a terminal phase (Completed, PartiallyFailed,
 * Failed, FailedValidation) and returns it. On timeout the error carries the
 * Backup's last phase and Velero's last log lines.
 */
export async function waitForBackupDone(v: Velero, cp: ControlPlane, name: string, timeoutMs = 180_000): Promise<VeleroObject> {
  const c = clients(cp.kubeConfig);
  let last: VeleroObject | undefined;
  try {
    return await waitFor(
      `Backup ${v.namespace}/${name} to reach a terminal phase`,
      async () => {
        last = await getBackup(c, v.namespace, name);
        return TERMINAL_BACKUP_PHASES.has(last.status?.phase ?? "") ? last : undefined;
      },
      { timeoutMs, intervalMs: 500 },
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; last status: ${JSON.stringify(last?.status)}\n${v.logs(60)}`);
  }
}

/**
 * Creates Backups already in phase ReadyToStart (the Backup CRD has no status
 * subresource, so create can set status). Velero's backup controller ignores
 * create events: they do not start until kickBackups() updates them.
 */
export async function createReadyToStart(cp: ControlPlane, v: Velero, names: string[], o: BackupOptions): Promise<void> {
  const c = clients(cp.kubeConfig);
  for (const name of names) await createBackup(c, v.namespace, name, { ...o, status: { phase: "ReadyToStart" } });
}

/** Updates each Backup (a label), which is what makes Velero's backup controller look at it. */
export async function kickBackups(cp: ControlPlane, v: Velero, names: string[]): Promise<void> {
  const c = clients(cp.kubeConfig);
  await Promise.all(
    names.map((name) =>
      updateVelero(c, "backups", v.namespace, name, (b) => {
        b.metadata.labels = { ...b.metadata.labels, "backup-gate.io/test-kick": String(Date.now()) };
      }),
    ),
  );
}

/**
 * Creates Backups in phase ReadyToStart and then updates them, bypassing any
 * queue: a positive control for overlap detection.
 */
export async function forceReadyToStart(cp: ControlPlane, v: Velero, names: string[], o: BackupOptions): Promise<void> {
  await createReadyToStart(cp, v, names, o);
  await kickBackups(cp, v, names);
}
