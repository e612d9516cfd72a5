import http from "node:http";
import https from "node:https";
import { withoutMember } from "./dropMember.js";
import { statusError, statusOf, type Query, type Requester } from "./http.js";

// One watch request read as a stream: the API server answers `watch=true` with one JSON event per
// line ({"type": "ADDED", "object": {...}}), for as long as the watch lasts. Ours rather than
// client-node's Watch, whose module graph costs 73 MiB of RSS (http.ts says why).

export interface WatchEvent {
  readonly type: string;
  readonly object: unknown;
}

export interface WatchHandlers {
  /** The server accepted the watch (2xx headers in). */
  onOpen?: () => void;
  onEvent: (event: WatchEvent) => void;
}

/** Longer than any object the API server stores (etcd's request limit is 1.5 MiB by default). */
export const MAX_EVENT_CHARS = 16 * 1024 * 1024;

/** A line of the watch that is not an event, or an event handler that threw: the watch ends. */
export class WatchStreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WatchStreamError";
  }
}

/**
 * Watches `path` (with `watch=true`) and calls `onEvent` for each event line. Resolves when the
 * server ends the answer; rejects with `statusError` for a non-2xx answer (410: expired), with
 * a WatchStreamError for an unreadable line, with the network error for a dropped connection,
 * and with an AbortError when `signal` aborts.
 */
export async function watch(requester: Requester, path: string, query: Query, handlers: WatchHandlers, signal: AbortSignal): Promise<void> {
  const { url, options } = await requester.endpoint(path, { ...query, watch: true });
  const what = `WATCH ${url.pathname}`;
  const lib = url.protocol === "http:" ? http : https;
  try {
    await new Promise<void>((resolve, reject) => {
      let ended = false;
      const end = (err?: Error) => {
        if (ended) return;
        ended = true;
        if (err) {
          req.destroy();
          reject(err);
        } else resolve();
      };
      const req = lib.request(url, { ...options, method: "GET", headers: { ...options.headers, Accept: "application/json" }, signal }, (res) => {
        // Decoded to V8 strings chunk by chunk (the comment in http.ts's request says why).
        res.setEncoding("utf8");
        res.on("error", end);
        const code = res.statusCode ?? 0;
        if (code < 200 || code >= 300) {
          let text = "";
          res.on("data", (d: string) => {
            if (text.length < 65_536) text += d;
          });
          res.on("end", () => end(statusError(what, code, text)));
          return;
        }
        handlers.onOpen?.();
        const lines = new LineSplitter();
        const deliver = (line: string) => {
          if (ended || line.trim() === "") return;
          const event = readEvent(line);
          if (typeof event === "string") return end(new WatchStreamError(`${what}: ${event}`));
          try {
            handlers.onEvent(event);
          } catch (e) {
            end(new WatchStreamError(`${what}: handling a ${event.type} event failed: ${(e as Error).message}`));
          }
        };
        res.on("data", (chunk: string) => {
          lines.push(chunk, deliver);
          if (lines.pendingLength > MAX_EVENT_CHARS) end(new WatchStreamError(`${what}: an event line longer than ${MAX_EVENT_CHARS} characters`));
        });
        res.on("end", () => {
          deliver(lines.rest());
          end();
        });
        res.on("close", () => {
          if (!res.complete) end(new Error(`${what}: connection closed mid-answer`));
        });
      });
      req.on("error", end);
      req.end();
    });
  } catch (e) {
    // Expired credentials (exec or token-file providers): fetch them again next time.
    if (statusOf(e) === 401) requester.refresh();
    throw e;
  }
}

/** Splits a stream of text chunks into lines; a line may span chunks. */
export class LineSplitter {
  private pending = "";

  /** Calls `onLine` with every line that `chunk` completes. */
  push(chunk: string, onLine: (line: string) => void): void {
    let start = 0;
    for (let nl = chunk.indexOf("\n"); nl >= 0; nl = chunk.indexOf("\n", start)) {
      const piece = chunk.slice(start, nl);
      const line = this.pending === "" ? piece : this.pending + piece;
      this.pending = "";
      start = nl + 1;
      onLine(line);
    }
    if (start < chunk.length) this.pending += chunk.slice(start);
  }

  /** Characters of the line not finished yet. */
  get pendingLength(): number {
    return this.pending.length;
  }

  /** The unfinished last line (the answer ended without a newline). */
  rest(): string {
    const r = this.pending;
    this.pending = "";
    return r;
  }
}

/** A watch event from one line (its object without `metadata.managedFields`, dropMember.ts), or what is wrong with the line. */
export function readEvent(line: string): WatchEvent | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(withoutMember(line, ["object", "metadata", "managedFields"]));
  } catch (e) {
    return `unreadable event (${(e as Error).message}): ${line.slice(0, 200)}`;
  }
  const ev = parsed as { type?: unknown; object?: unknown } | null;
  if (!ev || typeof ev !== "object" || typeof ev.type !== "string" || !ev.object || typeof ev.object !== "object") {
    return `not a watch event: ${line.slice(0, 200)}`;
  }
  return { type: ev.type, object: ev.object };
}
