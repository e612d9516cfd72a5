/**
 * Bulk writes against the harness's kube-apiserver: many requests in flight over one HTTP/2
 * connection (kube-apiserver speaks h2; one TLS handshake, no per-request socket). client-node's
 * typed clients manage about 100 creates/s on a busy 2-core machine; this reaches the API
 * server's own limit (admission, etcd) instead.
 *
 * Every request is answered or the run fails: 409 AlreadyExists counts as done (a re-run over
 * objects made before), 429 and 5xx and dropped streams are retried with a short backoff, any
 * other status throws with the API server's message.
 */
import { connect, constants, type ClientHttp2Session } from "node:http2";
import type { RequestOptions } from "node:https";
import { performance } from "node:perf_hooks";
import type { ControlPlane } from "./controlPlane.js";

export interface BulkRequest {
  method: "POST" | "PATCH" | "PUT";
  path: string;
  body: unknown;
}

export interface BulkOptions {
  /** Streams in flight. Default 128. */
  concurrency?: number;
  /** Names the batch in progress lines. */
  label: string;
  /** A progress line every this many ms (count and rate). Default 10 s. */
  progressEveryMs?: number;
  /** Where progress lines go. Default stderr. */
  progress?: (line: string) => void;
}

export interface BulkResult {
  label: string;
  requests: number;
  ms: number;
  perSecond: number;
  retries: number;
}

const MAX_ATTEMPTS = 8;

class RetryableError extends Error {}

/** Sends `count` requests made by `make(i)`, at most `concurrency` at a time. */
export async function bulkWrite(
  cp: Pick<ControlPlane, "kubeConfig" | "host">,
  count: number,
  make: (i: number) => BulkRequest,
  o: BulkOptions,
): Promise<BulkResult> {
  const tls: RequestOptions = { headers: {} };
  await cp.kubeConfig.applyToHTTPSOptions(tls);
  const auth = (tls.headers as Record<string, string> | undefined)?.Authorization;
  let session: ClientHttp2Session | undefined;
  const open = (): ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = connect(cp.host, { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized ?? true });
    s.on("error", () => {
      /* each stream sees its own error and retries on a new session */
    });
    s.on("close", () => {
      if (session === s) session = undefined;
    });
    session = s;
    return s;
  };

  const send = (r: BulkRequest) =>
    new Promise<void>((resolve, reject) => {
      const body = JSON.stringify(r.body);
      const stream = open().request({
        [constants.HTTP2_HEADER_METHOD]: r.method,
        [constants.HTTP2_HEADER_PATH]: r.path,
        "content-type": r.method === "PATCH" ? "application/merge-patch+json" : "application/json",
        accept: "application/json",
        ...(auth ? { authorization: auth } : {}),
      });
      let status = 0;
      let text = "";
      stream.setEncoding("utf8");
      stream.on("response", (h) => {
        status = Number(h[constants.HTTP2_HEADER_STATUS]);
      });
      stream.on("data", (d: string) => {
        if (status >= 300) text += d;
      }); // success bodies are dropped unread
      stream.on("error", (e) => reject(new RetryableError(e.message)));
      stream.on("close", () => {
        if ((status >= 200 && status < 300) || status === 409) resolve();
        else if (status === 0 || status === 429 || status >= 500) reject(new RetryableError(`${status} ${text.slice(0, 200)}`));
        else reject(new Error(`${r.method} ${r.path}: ${status} ${statusMessage(text)}`));
      });
      stream.end(body);
    });

  const t0 = performance.now();
  const say = o.progress ?? ((line: string) => process.stderr.write(`${line}\n`));
  let done = 0,
    retries = 0,
    lastDone = 0,
    lastAt = t0;
  const ticker = setInterval(() => {
    const now = performance.now();
    say(`${o.label}: ${done}/${count} (${Math.round((done - lastDone) / ((now - lastAt) / 1000))}/s now, ${Math.round(done / ((now - t0) / 1000))}/s overall)`);
    lastDone = done;
    lastAt = now;
  }, o.progressEveryMs ?? 10_000);
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: Math.min(o.concurrency ?? 128, count) }, async () => {
        for (let i = next++; i < count; i = next++) {
          for (let attempt = 1; ; attempt++) {
            try {
              await send(make(i));
              break;
            } catch (e) {
              if (!(e instanceof RetryableError) || attempt >= MAX_ATTEMPTS) throw e;
              retries++;
              await new Promise((r) => setTimeout(r, 100 * 2 ** Math.min(attempt, 5)));
            }
          }
          done++;
        }
      }),
    );
  } finally {
    clearInterval(ticker);
    session?.close();
  }
  const ms = performance.now() - t0;
  const result = { label: o.label, requests: count, ms: Math.round(ms), perSecond: Math.round(count / (ms / 1000)), retries };
  say(`${o.label}: ${count} in ${(ms / 1000).toFixed(1)} s (${result.perSecond}/s, ${retries} retries)`);
  return result;
}

function statusMessage(text: string): string {
  try {
    const s = JSON.parse(text) as { message?: unknown };
    if (typeof s.message === "string") return s.message;
  } catch {
    /* not a Status */
  }
  return text.slice(0, 300);
}
