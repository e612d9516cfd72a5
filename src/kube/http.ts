import type { KubeConfig } from "@kubernetes/client-node";
import http from "node:http";
import https from "node:https";

// A plain GET against the API server with the kubeconfig's credentials, answering parsed JSON.
// The generated list APIs of client-node turn every object into model classes (timestamps
// become Date objects) before we could trim them; for lists of 100k pods we want the plain
// JSON, page by page, and nothing else.

/** An API server answer other than 2xx, with the Status reason when it sent one. */
export class ApiStatusError extends Error {
  constructor(
    readonly statusCode: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiStatusError";
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface Requester {
  getJson(path: string, query: Query, signal?: AbortSignal): Promise<unknown>;
}

/** Credentials are applied once per requester and its agent is reused (keep-alive) for pages. */
export function createRequester(kc: KubeConfig, timeoutMs = 60_000): Requester {
  let prepared: Promise<{ base: URL; options: https.RequestOptions }> | undefined;
  const prepare = async () => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error("the kubeconfig has no current cluster");
    const options: https.RequestOptions = { headers: {} };
    await kc.applyToHTTPSOptions(options);
    return { base: new URL(cluster.server), options };
  };
  return {
    async getJson(path, query, signal) {
      prepared ??= prepare().catch((e: unknown) => {
        prepared = undefined;
        throw e;
      });
      const { base, options } = await prepared;
      const url = new URL(base.pathname.replace(/\/$/, "") + path, base);
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") url.searchParams.set(k, String(v));
      try {
        return await request(url, options, timeoutMs, signal);
      } catch (e) {
        // Expired credentials (exec or token-file providers): fetch them again next time.
        if (e instanceof ApiStatusError && e.statusCode === 401) prepared = undefined;
        throw e;
      }
    },
  };
}

function request(url: URL, options: https.RequestOptions, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
  const lib = url.protocol === "http:" ? http : https;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      url,
      {
        ...options,
        method: "GET",
        headers: { ...options.headers, Accept: "application/json" },
        timeout: timeoutMs,
        ...(signal ? { signal } : {}),
      },
      (res) => {
        // Decoded chunk by chunk into a V8 string: a page joined in a Buffer outside the V8 heap
        // leaves glibc's heap grown for good (docs/performance.md).
        res.setEncoding("utf8");
        let text = "";
        res.on("data", (d: string) => {
          text += d;
        });
        res.on("error", reject);
        res.on("end", () => {
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) {
            try {
              resolve(JSON.parse(text));
            } catch (e) {
              reject(new Error(`GET ${url.pathname}: unreadable JSON: ${(e as Error).message}`));
            }
            return;
          }
          let reason = "",
            message = text.slice(0, 300);
          try {
            const status = JSON.parse(text) as { reason?: unknown; message?: unknown };
            if (typeof status.reason === "string") reason = status.reason;
            if (typeof status.message === "string") message = status.message;
          } catch {
            /* not a Status */
          }
          reject(new ApiStatusError(code, reason, `GET ${url.pathname}: ${code} ${reason}: ${message}`));
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${url.pathname}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}
