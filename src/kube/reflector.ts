import type { ObjectError } from "../core/velero/objects.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Logger } from "../logging/logger.js";
import { Backoff, type BackoffOptions } from "./backoff.js";
import { ApiStatusError, createRequester, statusOf, type KubeAccess, type Requester } from "./http.js";
import { watch, WatchStreamError, type WatchEvent } from "./watch.js";

// One list+watch loop for one collection, the part of client-go's reflector we need:
//
// - list in pages (`limit` + `continue`), apply each object as soon as it is parsed (nothing raw
//   is kept; listPage.ts), then delete what the list no longer holds, so a relist never leaves
//   ghosts;
// - watch from the list's resourceVersion with bookmarks, tracking the version of every event
//   and bookmark;
// - a watch that the server ends at its timeout is resumed at once from the last version;
// - 410 Gone (an ERROR event "too old resource version", or a 410 answer) means the version
//   is compacted away: list again;
// - any other end (network error, early close, ERROR event, unreadable event line, no data past
//   the timeout) waits a jittered, capped exponential backoff and resumes from the last version.
//
// Objects are decoded (trimmed) as they arrive; one that cannot be decoded is logged with its
// name and field and skipped. The reflector keeps nothing per object: its sink's store says what
// is held (`keys`) and drops an update that changes nothing the store keeps.

export interface RawObject {
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string };
  [field: string]: unknown;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: ObjectError | Error };

export interface ReflectorSink<T> {
  /** An object listed (`type` undefined), added or modified. */
  upsert(key: string, value: T, type: "ADDED" | "MODIFIED" | undefined): void;
  /**
   * An object deleted (`type` DELETED) or missing from a relist (`type` undefined). A DELETED may
   * name an object the sink does not hold (one that could not be decoded).
   */
  remove(key: string, type: "DELETED" | undefined): void;
  /** After each complete list; `first` is true once. */
  listed(first: boolean): void;
  /**
   * The key of every object held, as `objectKey` writes it: a relist removes those it did not
   * return. The sink's store is the only table of what is held; a second one in the reflector
   * (a resourceVersion per object) cost 7 MiB of heap and about 8 MiB of peak RSS at 100k pods
   * + 100k PVCs (docs/performance.md, "One table of what is held").
   */
  keys(): Iterable<string>;
}

/** Why a watch was restarted: the `reason` label of `backup_gate_watch_restarts_total`. */
export type RestartReason =
  | "timeout" // the server ended the watch at its timeout (normal)
  | "expired" // 410: resourceVersion too old, relisted
  | "closed" // the stream ended early without an error
  | "disconnect" // network or HTTP error
  | "error" // an ERROR event other than 410, or an event line that cannot be read
  | "stalled" // no end and no data well past the timeout
  | "list_failed"; // the list itself failed

export interface ReflectorOptions<T> {
  /** A client-node KubeConfig has this shape. */
  kc: KubeAccess;
  /** Names the collection in metrics and logs, e.g. "pods". */
  resource: string;
  /** Collection path, e.g. "/api/v1/pods" or "/apis/velero.io/v1/namespaces/velero/backups". */
  path: string;
  fieldSelector?: string;
  /** Page size of lists. Default 500. */
  pageSize?: number;
  decode: (raw: RawObject) => Decoded<T>;
  sink: ReflectorSink<T>;
  log: Logger;
  metrics?: Pick<Metrics, "watchRestarts">;
  backoff?: BackoffOptions;
  /** Server-side timeout of each watch request, in seconds. Default: random in [300, 600). */
  watchTimeoutSeconds?: () => number;
  /** A watch still open this long past its timeout without ending is aborted. Default 30 s. */
  stallGraceMs?: number;
  requester?: Requester;
}

type WatchEnd = { reason: "timeout" | "closed" | "stalled" | "stopped" } | { reason: "expired" | "disconnect" | "error"; detail: string };

/** Keys known before a relist that the relist did not return: the objects deleted meanwhile. */
export function relistDeletions(known: Iterable<string>, listed: ReadonlySet<string>): string[] {
  const gone: string[] = [];
  for (const key of known) if (!listed.has(key)) gone.push(key);
  return gone;
}

/** `namespace/name` for namespaced objects, `name` otherwise; undefined without a name. */
export function objectKey(raw: RawObject): string | undefined {
  const name = raw.metadata?.name;
  if (typeof name !== "string" || name === "") return undefined;
  const ns = raw.metadata?.namespace;
  return typeof ns === "string" && ns !== "" ? `${ns}/${name}` : name;
}

/** True for a Status saying the resourceVersion asked for is gone (compacted). */
export function isExpiredStatus(status: unknown): boolean {
  const s = status as { code?: unknown; reason?: unknown; message?: unknown } | null;
  if (!s || typeof s !== "object") return false;
  if (s.code === 410 || s.reason === "Expired" || s.reason === "Gone") return true;
  return typeof s.message === "string" && /too old resource version/i.test(s.message);
}

export class Reflector<T> {
  private readonly o: ReflectorOptions<T>;
  private readonly requester: Requester;
  private readonly backoff: Backoff;
  private rv = "";
  private listCount = 0;
  private stopped = false;
  private readonly abort = new AbortController();
  private currentWatch: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(o: ReflectorOptions<T>) {
    this.o = o;
    this.requester = o.requester ?? createRequester(o.kc);
    this.backoff = new Backoff(o.backoff);
  }

  get resource(): string {
    return this.o.resource;
  }
  /** The last resourceVersion seen (list, event or bookmark). */
  get resourceVersion(): string {
    return this.rv;
  }
  /** Complete lists so far (1 after the initial list; more after relists). */
  get lists(): number {
    return this.listCount;
  }

  /** Objects the sink holds, counted (for stats and tests). */
  get size(): number {
    let n = 0;
    for (const _ of this.o.sink.keys()) n++;
    return n;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.currentWatch?.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    let mustList = true;
    while (!this.stopped) {
      if (mustList) {
        try {
          await this.list();
          mustList = false;
          this.backoff.healthy(Date.now());
        } catch (e) {
          if (this.stopped) return;
          const delay = this.backoff.failure(Date.now());
          this.restarted("list_failed", { error: message(e), delayMs: delay });
          await this.sleep(delay);
          continue;
        }
      }
      const end = await this.watchOnce();
      if (this.stopped || end.reason === "stopped") return;
      switch (end.reason) {
        case "timeout":
          this.restarted("timeout", {}, "debug");
          break;
        case "expired":
          // Compacted away: only a new list can tell what changed meanwhile.
          this.restarted("expired", { detail: end.detail });
          mustList = true;
          break;
        default: {
          const delay = this.backoff.failure(Date.now());
          this.restarted(end.reason, { ...("detail" in end ? { detail: end.detail } : {}), delayMs: delay });
          await this.sleep(delay);
        }
      }
    }
  }

  private restarted(reason: RestartReason, fields: Record<string, unknown>, level: "debug" | "warn" = "warn"): void {
    this.o.metrics?.watchRestarts.inc({ resource: this.o.resource, reason });
    this.o.log[level]({ resource: this.o.resource, reason, resourceVersion: this.rv, ...fields }, `watch of ${this.o.resource} restarted: ${reason}`);
  }

  private async list(): Promise<void> {
    // Keys listed, to find what a relist no longer holds. A list with nothing held has nothing
    // to delete and tracks none: 100k "ns/name" strings held for a whole list were promoted and
    // were part of the listing peak (docs/performance.md).
    let listed = isEmpty(this.o.sink.keys()) ? undefined : new Set<string>();
    let count = 0;
    let cont: string | undefined;
    let rv = "";
    let expiredPages = 0;
    for (;;) {
      let page: { metadata?: { resourceVersion?: string; continue?: string } };
      const onItem = (item: unknown) => {
        if (!item || typeof item !== "object") return;
        const raw = item as RawObject;
        const key = objectKey(raw);
        if (key === undefined) return;
        listed?.add(key);
        count++;
        this.apply(key, raw, undefined);
      };
      try {
        page = await this.requester.list(
          this.o.path,
          {
            limit: this.o.pageSize ?? 500,
            continue: cont,
            fieldSelector: this.o.fieldSelector,
          },
          onItem,
          this.abort.signal,
        );
      } catch (e) {
        // The continue token's snapshot was compacted while paging: start the list over.
        if (cont !== undefined && e instanceof ApiStatusError && e.statusCode === 410 && expiredPages < 3) {
          expiredPages++;
          cont = undefined;
          listed = new Set(); // the pages before may hold objects deleted since
          count = 0;
          this.o.log.warn({ resource: this.o.resource }, `list of ${this.o.resource} expired while paging; listing again`);
          continue;
        }
        throw e;
      }
      rv = page.metadata?.resourceVersion ?? rv;
      cont = page.metadata?.continue || undefined;
      if (cont === undefined) break;
    }
    for (const key of listed ? relistDeletions(this.o.sink.keys(), listed) : []) this.o.sink.remove(key, undefined);
    this.rv = rv;
    this.listCount++;
    this.o.log.info({ resource: this.o.resource, objects: count, resourceVersion: rv, relist: this.listCount > 1 }, `listed ${this.o.resource}`);
    this.o.sink.listed(this.listCount === 1);
  }

  /** Decodes and hands on one listed, added or modified object (the sink drops what did not change). */
  private apply(key: string, raw: RawObject, type: "ADDED" | "MODIFIED" | undefined): void {
    const decoded = this.o.decode(raw);
    if (!decoded.ok) {
      const e = decoded.error as Partial<ObjectError> & Error;
      this.o.log.warn(
        { resource: this.o.resource, object: e.object ?? key, field: e.field, error: e.detail ?? e.message },
        `skipping ${this.o.resource} ${key}: ${e.message}`,
      );
      return;
    }
    this.o.sink.upsert(key, decoded.value, type);
  }

  private watchOnce(): Promise<WatchEnd> {
    const timeoutSeconds = Math.max(1, Math.round(this.o.watchTimeoutSeconds?.() ?? 300 + Math.random() * 300));
    const started = Date.now();
    return new Promise<WatchEnd>((resolve) => {
      let settled = false;
      const controller = new AbortController();
      const finish = (end: WatchEnd) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        this.abort.signal.removeEventListener("abort", onStop);
        controller.abort();
        if (this.currentWatch === controller) this.currentWatch = undefined;
        resolve(end);
      };
      const watchdog = setTimeout(() => finish({ reason: "stalled" }), timeoutSeconds * 1000 + (this.o.stallGraceMs ?? 30_000));
      // stop() must not wait for a watch request the server has not answered yet.
      const onStop = () => finish({ reason: "stopped" });
      if (this.stopped) {
        onStop();
        return;
      }
      this.abort.signal.addEventListener("abort", onStop, { once: true });
      this.currentWatch = controller;
      const onEvent = ({ type, object }: WatchEvent) => {
        if (settled) return;
        const obj = object as RawObject;
        switch (type) {
          case "ADDED":
          case "MODIFIED": {
            const key = objectKey(obj);
            if (key !== undefined) this.apply(key, obj, type);
            this.bump(obj);
            break;
          }
          case "DELETED": {
            const key = objectKey(obj);
            if (key !== undefined) this.o.sink.remove(key, "DELETED");
            this.bump(obj);
            break;
          }
          case "BOOKMARK":
            this.bump(obj);
            break;
          case "ERROR": {
            const status = obj as { code?: number; reason?: string; message?: string };
            const detail = `${status.code ?? "?"} ${status.reason ?? ""}: ${status.message ?? ""}`;
            finish(isExpiredStatus(obj) ? { reason: "expired", detail } : { reason: "error", detail });
            break;
          }
        }
      };
      const onDone = (err: unknown) => {
        if (settled) return;
        if (this.stopped) {
          finish({ reason: "stopped" });
          return;
        }
        if (err === null || err === undefined) {
          // The server ends a watch at its timeout; anything much earlier is a dropped connection.
          finish({ reason: Date.now() - started >= timeoutSeconds * 900 ? "timeout" : "closed" });
          return;
        }
        const code = statusOf(err);
        if (code === 410) finish({ reason: "expired", detail: message(err) });
        else if (err instanceof WatchStreamError) finish({ reason: "error", detail: message(err) });
        else finish({ reason: "disconnect", detail: message(err) });
      };
      const query = {
        resourceVersion: this.rv,
        allowWatchBookmarks: true,
        timeoutSeconds,
        ...(this.o.fieldSelector ? { fieldSelector: this.o.fieldSelector } : {}),
      };
      const opened = () => this.backoff.healthy(Date.now());
      watch(this.requester, this.o.path, query, { onOpen: opened, onEvent }, controller.signal).then(
        () => onDone(null),
        (e: unknown) => onDone(e),
      );
    });
  }

  private bump(obj: RawObject): void {
    const rv = obj.metadata?.resourceVersion;
    if (typeof rv === "string" && rv !== "") this.rv = rv;
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.abort.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

function isEmpty(items: Iterable<unknown>): boolean {
  for (const _ of items) return false;
  return true;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
