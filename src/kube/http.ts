import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { withoutMember } from "./dropMember.js";
import { ListPageError, ListPageParser, type ListFields } from "./listPage.js";

// Every call the gate makes to the API server goes through here, as plain JSON over one
// keep-alive agent per requester. Not client-node's generated APIs: importing
// @kubernetes/client-node costs 73 MiB of RSS (all of its generated APIs load with its
// KubeConfig), half of `serve`'s memory goal, and its lists turn every object into model
// classes before we could trim them (docs/performance.md, "serve without client-node").

/**
 * Where the API server is and how to reach it. client-node's KubeConfig has this shape (the CLI
 * and the tests hand one in); `loadKubeAccess` (config.ts) builds one without loading client-node.
 */
export interface KubeAccess {
  getCurrentCluster(): { readonly server: string; readonly proxyUrl?: string | undefined } | null;
  /** Sets the TLS material and the credentials' headers on `options`. */
  applyToHTTPSOptions(options: https.RequestOptions): Promise<void>;
}

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

/** The HTTP status of an API server answer, undefined for other errors. */
export function statusOf(e: unknown): number | undefined {
  return e instanceof ApiStatusError ? e.statusCode : undefined;
}

export type Query = Record<string, string | number | boolean | undefined>;

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** Content-Type of a JSON merge patch (RFC 7386). */
export const MERGE_PATCH = "application/merge-patch+json";

export interface SendOptions {
  readonly query?: Query;
  readonly body?: unknown;
  /** Default application/json; PATCH bodies name their kind, e.g. application/merge-patch+json. */
  readonly contentType?: string;
  readonly signal?: AbortSignal;
}

/** Where one request goes and with what: for callers that read the answer as a stream (watches). */
export interface Endpoint {
  readonly url: URL;
  readonly options: https.RequestOptions;
}

export interface Requester {
  getJson(path: string, query: Query, signal?: AbortSignal): Promise<unknown>;
  send(method: Method, path: string, o?: SendOptions): Promise<unknown>;
  endpoint(path: string, query: Query): Promise<Endpoint>;
  /**
   * GET of a list page, each element of its `items` handed to `onItem` as soon as it is parsed
   * (listPage.ts), without `metadata.managedFields` (dropMember.ts); resolves with the page's
   * other fields (`metadata`).
   */
  list(path: string, query: Query, onItem: (item: unknown) => void, signal?: AbortSignal): Promise<ListFields>;
  /** Forget the credentials, e.g. after a 401: the next request fetches them again. */
  refresh(): void;
}

const MAX_SOCKETS = 8;
/** Credentials are read again this often: projected service-account tokens rotate. */
const CREDENTIALS_TTL_MS = 60_000;

/** Credentials are applied once a minute per requester, and its agent is reused (keep-alive). */
export function createRequester(kc: KubeAccess, timeoutMs = 60_000): Requester {
  let prepared: { at: number; value: Promise<{ base: URL; options: https.RequestOptions }> } | undefined;
  let agent: { key: string; agent: http.Agent } | undefined;

  const prepare = async () => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error("the kubeconfig has no current cluster");
    const options: https.RequestOptions = { headers: {} };
    await kc.applyToHTTPSOptions(options);
    const base = new URL(cluster.server);
    // A proxy needs the kubeconfig's own agent (it knows the proxy kinds); keep it then.
    return { base, options: cluster.proxyUrl ? options : { ...options, agent: sharedAgent(base, options) } };
  };
  // Rotated client certificates or CA files get a new agent; the old one's sockets close.
  const sharedAgent = (base: URL, o: https.RequestOptions): http.Agent => {
    const key = fingerprint(o);
    if (agent?.key !== key) {
      agent?.agent.destroy();
      const keepAlive = { keepAlive: true, maxSockets: MAX_SOCKETS };
      agent = { key, agent: base.protocol === "http:" ? new http.Agent(keepAlive) : new https.Agent({ ...tlsOf(o), ...keepAlive }) };
    }
    return agent.agent;
  };
  const current = () => {
    const now = Date.now();
    if (!prepared || now - prepared.at > CREDENTIALS_TTL_MS) {
      const value = prepare();
      const entry = { at: now, value };
      value.catch(() => {
        if (prepared === entry) prepared = undefined;
      });
      prepared = entry;
    }
    return prepared.value;
  };
  const endpoint = async (path: string, query: Query): Promise<Endpoint> => {
    const { base, options } = await current();
    const url = new URL(base.pathname.replace(/\/$/, "") + path, base);
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") url.searchParams.set(k, String(v));
    return { url, options };
  };
  const send = async (method: Method, path: string, o: SendOptions = {}, read: () => BodyReader = jsonReader): Promise<unknown> => {
    const { url, options } = await endpoint(path, o.query ?? {});
    try {
      return await request(method, url, options, timeoutMs, o, read);
    } catch (e) {
      // Expired credentials (exec or token-file providers): fetch them again next time.
      if (statusOf(e) === 401) prepared = undefined;
      throw e;
    }
  };
  return {
    getJson: (path, query, signal) => send("GET", path, { query, ...(signal ? { signal } : {}) }),
    send,
    endpoint,
    list: async (path, query, onItem, signal) =>
      (await send("GET", path, { query, ...(signal ? { signal } : {}) }, () => new ListPageParser(onItem, withoutManagedFields))) as ListFields,
    refresh() {
      prepared = undefined;
    },
  };
}

function tlsOf(o: https.RequestOptions): https.AgentOptions {
  const tls: https.AgentOptions = {};
  for (const k of ["ca", "cert", "key", "pfx", "passphrase", "rejectUnauthorized", "servername"] as const) {
    if (o[k] !== undefined) (tls as Record<string, unknown>)[k] = o[k];
  }
  return tls;
}

function fingerprint(o: https.RequestOptions): string {
  const h = createHash("sha256");
  for (const v of [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.rejectUnauthorized, o.servername]) {
    h.update(v === undefined ? "-" : Buffer.isBuffer(v) ? v : JSON.stringify(v)).update("\u0000");
  }
  return h.digest("hex");
}

const withoutManagedFields = (item: string) => withoutMember(item, ["metadata", "managedFields"]);

/** Reads a 2xx answer chunk by chunk into the result; throws on bad JSON. */
interface BodyReader {
  push(chunk: string): void;
  end(): unknown;
}

/** The whole answer as one V8 string, then JSON.parse. */
function jsonReader(): BodyReader {
  let text = "";
  return {
    push(chunk) {
      text += chunk;
    },
    end: () => (text === "" ? undefined : JSON.parse(text)),
  };
}

function request(method: Method, url: URL, options: https.RequestOptions, timeoutMs: number, o: SendOptions, read: () => BodyReader): Promise<unknown> {
  const lib = url.protocol === "http:" ? http : https;
  const body = o.body === undefined ? undefined : JSON.stringify(o.body);
  const what = `${method} ${url.pathname}`;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      url,
      {
        ...options,
        method,
        headers: {
          ...options.headers,
          Accept: "application/json",
          ...(body !== undefined ? { "Content-Type": o.contentType ?? "application/json", "Content-Length": Buffer.byteLength(body) } : {}),
        },
        timeout: timeoutMs,
        ...(o.signal ? { signal: o.signal } : {}),
      },
      (res) => {
        // Decoded chunk by chunk into V8 strings: a page joined in a Buffer outside the V8 heap
        // leaves glibc's heap grown for good (docs/performance.md).
        res.setEncoding("utf8");
        const code = res.statusCode ?? 0;
        const reader = code >= 200 && code < 300 ? read() : undefined;
        let text = "";
        let failed = false;
        // A list's item callback may throw too: its error is passed on as it is.
        const fail = (e: unknown) => {
          failed = true;
          req.destroy();
          reject(e instanceof SyntaxError || e instanceof ListPageError ? new Error(`${what}: unreadable JSON: ${e.message}`) : e);
        };
        res.on("data", (d: string) => {
          if (failed) return;
          if (!reader) text += d;
          else {
            try {
              reader.push(d);
            } catch (e) {
              fail(e);
            }
          }
        });
        res.on("error", reject);
        res.on("end", () => {
          if (failed) return;
          if (!reader) return reject(statusError(what, code, text));
          try {
            resolve(reader.end());
          } catch (e) {
            fail(e);
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${what}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** The error for a non-2xx answer, with the Status's reason and message when the body is one. */
export function statusError(what: string, code: number, text: string): ApiStatusError {
  let reason = "",
    message = text.slice(0, 300);
  try {
    const status = JSON.parse(text) as { reason?: unknown; message?: unknown };
    if (typeof status.reason === "string") reason = status.reason;
    if (typeof status.message === "string") message = status.message;
  } catch {
    /* not a Status */
  }
  return new ApiStatusError(code, reason, `${what}: ${code} ${reason}: ${message}`);
}
