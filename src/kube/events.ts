import type { CoreV1Event } from "@kubernetes/client-node";
import { hostname } from "node:os";
import type { Logger } from "../logging/logger.js";
import { createRequester, MERGE_PATCH, type KubeAccess } from "./http.js";

// Kubernetes Events (core/v1) for what backup-gate does and refuses: Queued, Started,
// Superseded, OverlapDetected, InvalidPolicy... The same event repeated for the same object
// bumps `count` and `lastTimestamp` of the one already written instead of piling up new ones
// (as client-go's recorder does). Recording never throws: a failure is logged.

export interface EventTarget {
  apiVersion: string;
  kind: string;
  /** Omitted for cluster-scoped objects (their events go to `default`). */
  namespace?: string;
  name: string;
  uid?: string;
}

export type EventType = "Normal" | "Warning";

export interface EventRecorder {
  /** Records an event; the promise settles when it is written (or failed), never rejects. */
  event(obj: EventTarget, type: EventType, reason: string, message: string): Promise<void>;
}

export interface EventRecorderOptions {
  log: Logger;
  /** source.component. Default "backup-gate". */
  component?: string;
  /** source.host. Default: this host's name. */
  host?: string;
  /** Repeats within this window bump the count of the existing event. Default 10 minutes. */
  aggregateWindowMs?: number;
  /** Distinct recent events kept for aggregation. Default 1024. */
  maxAggregated?: number;
  now?: () => Date;
}

const MAX_MESSAGE = 1024;

/** An Event already written: a repeat within the window bumps its count. */
interface WrittenEvent {
  namespace: string;
  name: string;
  count: number;
  last: number;
}

/** An Event as written: client-node's type, with the times as the API server reads them. */
type EventBody = Omit<CoreV1Event, "firstTimestamp" | "lastTimestamp"> & { firstTimestamp: string; lastTimestamp: string };

export function createEventRecorder(kc: KubeAccess, o: EventRecorderOptions): EventRecorder {
  const api = createRequester(kc);
  const component = o.component ?? "backup-gate";
  const host = o.host ?? hostname();
  const windowMs = o.aggregateWindowMs ?? 10 * 60_000;
  const maxAggregated = o.maxAggregated ?? 1024;
  const now = o.now ?? (() => new Date());
  // Insertion order doubles as LRU order (entries are re-inserted on use).
  const recent = new Map<string, WrittenEvent>();
  let seq = 0;

  const create = async (obj: EventTarget, type: EventType, reason: string, message: string, at: Date): Promise<WrittenEvent> => {
    const namespace = obj.namespace || "default";
    const name = `${obj.name.slice(0, 200)}.${at.getTime().toString(16)}${(seq++ % 4096).toString(16).padStart(3, "0")}`;
    const body: EventBody = {
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.name,
        ...(obj.namespace ? { namespace: obj.namespace } : {}),
        ...(obj.uid ? { uid: obj.uid } : {}),
      },
      reason,
      message,
      type,
      source: { component, host },
      count: 1,
      firstTimestamp: at.toISOString(),
      lastTimestamp: at.toISOString(),
    };
    await api.send("POST", `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, { body });
    return { namespace, name, count: 1, last: at.getTime() };
  };

  // Repeats of one event are written one after the other, so that they aggregate.
  const inflight = new Map<string, Promise<void>>();

  const record = async (key: string, obj: EventTarget, type: EventType, reason: string, message: string): Promise<void> => {
    const at = now();
    try {
      const seen = recent.get(key);
      recent.delete(key);
      if (seen && at.getTime() - seen.last < windowMs) {
        try {
          await api.send("PATCH", `/api/v1/namespaces/${encodeURIComponent(seen.namespace)}/events/${encodeURIComponent(seen.name)}`, {
            body: { count: seen.count + 1, lastTimestamp: at.toISOString() },
            contentType: MERGE_PATCH,
          });
          seen.count++;
          seen.last = at.getTime();
          recent.set(key, seen);
          return;
        } catch (e) {
          // Gone (expired by the API server's event TTL) or unpatchable: write a new one.
          o.log.debug({ err: e, reason }, "could not bump an event's count; creating a new one");
        }
      }
      recent.set(key, await create(obj, type, reason, message, at));
      while (recent.size > maxAggregated) recent.delete(recent.keys().next().value as string);
    } catch (e) {
      o.log.warn({ err: e, object: `${obj.kind} ${obj.namespace ? `${obj.namespace}/` : ""}${obj.name}`, type, reason, message }, "could not record an event");
    }
  };

  return {
    event(obj, type, reason, rawMessage) {
      const message = rawMessage.length > MAX_MESSAGE ? `${rawMessage.slice(0, MAX_MESSAGE - 3)}...` : rawMessage;
      const key = [obj.namespace ?? "", obj.kind, obj.name, obj.uid ?? "", type, reason, message].join("\u0000");
      const next = (inflight.get(key) ?? Promise.resolve()).then(() => record(key, obj, type, reason, message));
      inflight.set(key, next);
      void next.finally(() => {
        if (inflight.get(key) === next) inflight.delete(key);
      });
      return next;
    },
  };
}
