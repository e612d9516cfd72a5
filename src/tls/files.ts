import { X509Certificate } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../logging/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import { checkKeyPair, checkMaterial, splitPemBundle } from "./certs.js";
import type { TlsMaterial, TlsSource } from "./source.js";

// A TlsSource reading cert-manager's layout (a Secret of type kubernetes.io/tls mounted as a
// directory): tls.crt, tls.key, ca.crt. The directory is watched (kubelet swaps a `..data`
// symlink, so the directory, not the files, is watched) and polled as a fallback; a new set
// is taken only when the key matches the certificate and the certificate chains to ca.crt.
// A bad set is reported (log line, lastError()) and the last good one stays in use.
//
// A set signed by a CA the served bundle does not hold yet is taken in two steps: first the
// new CA joins the bundle (listeners get the old certificate with both CAs, so the caBundle
// patcher writes it), and only `caGraceMs` later (default 30 s, never past the old
// certificate's expiry) the new certificate is served. Swapping both at once would serve a
// certificate the API server cannot verify until the new bundle reaches it.

export const TLS_FILES = { cert: "tls.crt", key: "tls.key", ca: "ca.crt" } as const;

export class TlsFilesError extends Error {
  override name = "TlsFilesError";
}

/**
 * Reads and checks the three files; throws a TlsFilesError naming the file at fault. With
 * `caInjected` (another operator puts the CA into the caBundle) ca.crt may be absent: the set is
 * then served with an empty `ca`, and checked against ca.crt only when there is one.
 */
export async function loadTlsFiles(dir: string, now = Date.now(), caInjected = false): Promise<TlsMaterial> {
  const read = async (file: string, optional = false) => {
    try {
      return await readFile(join(dir, file), "utf8");
    } catch (e) {
      if (optional && (e as NodeJS.ErrnoException).code === "ENOENT") return "";
      throw new TlsFilesError(`cannot read ${join(dir, file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const [cert, key, ca] = await Promise.all([read(TLS_FILES.cert), read(TLS_FILES.key), read(TLS_FILES.ca, caInjected)]);
  const names = { key: TLS_FILES.key, cert: TLS_FILES.cert, ca: TLS_FILES.ca };
  const problem = caInjected && ca === "" ? checkKeyPair(key, cert, now, names) : checkMaterial(key, cert, ca, now, names);
  if (problem) throw new TlsFilesError(`${dir}: ${problem}`);
  return { key, cert, ca, notAfter: new Date(new X509Certificate(cert).validTo) };
}

export interface FileTlsOptions {
  readonly dir: string;
  /** The CA reaches the API server through an injector (service-ca, cert-manager): ca.crt is optional. */
  readonly caInjected?: boolean;
  /** Poll as a fallback to the directory watch; default 10 s. */
  readonly pollIntervalMs?: number;
  /** How long a new CA is in the bundle before a certificate it signed is served; default 30 s. */
  readonly caGraceMs?: number;
  readonly now?: () => number;
  readonly log?: Logger;
  readonly metrics?: Metrics;
}

export class FileTls implements TlsSource {
  private material?: TlsMaterial;
  private error?: TlsFilesError;
  private readonly listeners = new Set<(m: TlsMaterial) => void>();
  private watcher?: FSWatcher;
  private poll?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  /** A set waiting for its CA to propagate, and when it will be served. */
  private pending?: { material: TlsMaterial; timer: NodeJS.Timeout };
  private reloading: Promise<void> = Promise.resolve();
  /** Successful loads so far (1 after start). */
  loads = 0;

  constructor(private readonly o: FileTlsOptions) {}

  current(): TlsMaterial {
    if (!this.material) throw new Error("FileTls: current() before start()");
    return this.material;
  }

  /** Why the files on disk were last refused, while the previous material stays in use. */
  lastError(): TlsFilesError | undefined {
    return this.error;
  }

  onRotate(listener: (material: TlsMaterial) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async start(): Promise<void> {
    this.material = await loadTlsFiles(this.o.dir, (this.o.now ?? Date.now)(), this.o.caInjected);
    this.loads++;
    this.o.metrics?.certificateExpiry.set(this.material.notAfter.getTime() / 1000);
    this.o.log?.info({ dir: this.o.dir, notAfter: this.material.notAfter.toISOString() }, "serving certificate loaded from files");
    try {
      this.watcher = watch(this.o.dir, () => this.scheduleReload());
      this.watcher.on("error", (e) => this.o.log?.warn({ err: e, dir: this.o.dir }, "certificate directory watch failed; polling only"));
      this.watcher.unref();
    } catch (e) {
      this.o.log?.warn({ err: e, dir: this.o.dir }, "cannot watch the certificate directory; polling only");
    }
    this.poll = setInterval(() => this.scheduleReload(0), this.o.pollIntervalMs ?? 10_000);
    this.poll.unref();
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    clearInterval(this.poll);
    clearTimeout(this.debounce);
    clearTimeout(this.pending?.timer);
    await this.reloading;
  }

  /** Reads the files again now; resolves once done (a refused set leaves lastError() set). */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.doReload());
    return this.reloading;
  }

  private scheduleReload(delayMs = 100): void {
    // Writers replace the three files one by one; wait for the burst of events to settle.
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      void this.reload();
    }, delayMs);
    this.debounce.unref();
  }

  private async doReload(): Promise<void> {
    let next: TlsMaterial;
    try {
      next = await loadTlsFiles(this.o.dir, (this.o.now ?? Date.now)(), this.o.caInjected);
    } catch (e) {
      const err = e instanceof TlsFilesError ? e : new TlsFilesError(String(e));
      if (this.error?.message !== err.message) {
        this.o.log?.error({ dir: this.o.dir, error: err.message }, "certificate files refused; still serving the previous certificate");
      }
      this.error = err;
      return;
    }
    this.error = undefined;
    const cur = this.material;
    const same = (a: TlsMaterial | undefined) => a !== undefined && a.cert === next.cert && a.key === next.key && a.ca === next.ca;
    if (same(cur) || same(this.pending?.material)) return;
    clearTimeout(this.pending?.timer);
    this.pending = undefined;
    const now = (this.o.now ?? Date.now)();
    const untrusted = cur ? splitPemBundle(next.ca).filter((pem) => !splitPemBundle(cur.ca).includes(pem)) : [];
    const graceMs = Math.min(this.o.caGraceMs ?? 30_000, cur ? cur.notAfter.getTime() - now : 0);
    if (cur && untrusted.length > 0 && graceMs > 0) {
      // Step one: the new CA joins the bundle; the certificate it signed waits.
      const bundle =
        next.ca +
        splitPemBundle(cur.ca)
          .filter((pem) => !splitPemBundle(next.ca).includes(pem))
          .join("");
      this.o.log?.info({ dir: this.o.dir, graceMs }, "new CA in the certificate files: trusted first, its certificate served after the grace period");
      this.publish({ ...cur, ca: bundle });
      this.pending = {
        material: next,
        timer: setTimeout(() => {
          this.pending = undefined;
          this.publish(next);
        }, graceMs),
      };
      this.pending.timer.unref();
      return;
    }
    this.publish(next);
  }

  private publish(next: TlsMaterial): void {
    this.material = next;
    this.loads++;
    this.o.metrics?.certificateExpiry.set(next.notAfter.getTime() / 1000);
    this.o.log?.info({ dir: this.o.dir, notAfter: next.notAfter.toISOString() }, "serving certificate reloaded from files");
    for (const l of this.listeners) {
      try {
        l(next);
      } catch (e) {
        this.o.log?.error({ err: e }, "a certificate rotation listener failed");
      }
    }
  }
}
