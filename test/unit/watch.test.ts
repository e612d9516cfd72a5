import fc from "fast-check";
import type { IncomingMessage, ServerResponse } from "node:http";
import { startLocalApi, type LocalApi } from "../support/localApi.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRequester, statusOf, type KubeAccess } from "../../src/kube/http.js";
import { LineSplitter, MAX_EVENT_CHARS, readEvent, watch, WatchStreamError, type WatchEvent } from "../../src/kube/watch.js";

describe("splitting a watch stream into lines", () => {
  it("property: any split of the text into chunks gives the same lines", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "grapheme" }).filter((s) => !s.includes("\n"))), fc.array(fc.nat()), (lines, cuts) => {
        const text = lines.map((l) => l + "\n").join("");
        const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const chunks = [0, ...at, text.length].slice(1).map((end, i, ends) => text.slice(i === 0 ? 0 : ends[i - 1], end));
        const seen: string[] = [];
        const s = new LineSplitter();
        for (const c of chunks) s.push(c, (l) => seen.push(l));
        expect(seen).toEqual(lines);
        expect(s.rest()).toBe("");
      }),
    );
  });

  it("keeps an unfinished last line for the end", () => {
    const s = new LineSplitter();
    const seen: string[] = [];
    s.push('{"a":', (l) => seen.push(l));
    s.push('1}\n{"b"', (l) => seen.push(l));
    expect(seen).toEqual(['{"a":1}']);
    expect(s.rest()).toBe('{"b"');
  });
});

describe("reading a watch event line", () => {
  const cases: { name: string; line: string; event: WatchEvent | RegExp }[] = [
    { name: "an event", line: '{"type":"ADDED","object":{"metadata":{"name":"a"}}}', event: { type: "ADDED", object: { metadata: { name: "a" } } } },
    {
      name: "an ERROR Status",
      line: '{"type":"ERROR","object":{"kind":"Status","code":410}}',
      event: { type: "ERROR", object: { kind: "Status", code: 410 } },
    },
    { name: "cut short", line: '{"type":"ADDED","object":{"metad', event: /unreadable event/ },
    { name: "not JSON", line: "<html>", event: /unreadable event/ },
    { name: "no type", line: '{"object":{}}', event: /not a watch event/ },
    { name: "no object", line: '{"type":"ADDED"}', event: /not a watch event/ },
    { name: "a list, not an event", line: '{"kind":"List","items":[]}', event: /not a watch event/ },
    { name: "null", line: "null", event: /not a watch event/ },
  ];
  it.each(cases)("$name", ({ line, event }) => {
    const got = readEvent(line);
    if (event instanceof RegExp) expect(got).toMatch(event);
    else expect(got).toEqual(event);
  });
});

/**
 * The watch client over real HTTP against a local server that answers as the API server does
 * on the wire (chunked lines, Status bodies). The API server's own answers are covered in
 * test/integration/clusterCache.test.ts.
 */
describe("a watch over HTTP", () => {
  let api: LocalApi;
  let handler: (req: IncomingMessage, res: ServerResponse) => void = () => {};
  let kc: KubeAccess;
  beforeAll(async () => {
    api = await startLocalApi((req, res) => handler(req, res));
    kc = api.kc;
  });
  afterAll(() => api.close());

  const run = async (signal = new AbortController().signal) => {
    const events: WatchEvent[] = [];
    let opened = false;
    const r = createRequester(kc);
    const end = await watch(r, "/api/v1/pods", { resourceVersion: "5" }, { onOpen: () => (opened = true), onEvent: (e) => events.push(e) }, signal).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    return { events, opened, end };
  };
  const line = (type: string, name: string) => JSON.stringify({ type, object: { metadata: { name, resourceVersion: "6" }, note: 'a "quoted" }\\n' } }) + "\n";

  it("asks for a watch and hands on events whose lines are split across chunks", async () => {
    let asked = "";
    handler = (req, res) => {
      asked = req.url ?? "";
      res.writeHead(200, { "Content-Type": "application/json" });
      const text = line("ADDED", "a") + line("MODIFIED", "a") + line("DELETED", "a") + line("BOOKMARK", "");
      // Three bytes at a time, flushed apart, so every line spans chunks.
      let i = 0;
      const next = () => {
        if (i >= text.length) return void res.end();
        res.write(text.slice(i, (i += 3)));
        setImmediate(next);
      };
      next();
    };
    const { events, opened, end } = await run();
    expect(end).toBeUndefined();
    expect(opened).toBe(true);
    expect(new URL(asked, "http://x").searchParams.get("watch")).toBe("true");
    expect(new URL(asked, "http://x").searchParams.get("resourceVersion")).toBe("5");
    expect(events.map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]);
    expect(events[0]!.object).toEqual({ metadata: { name: "a", resourceVersion: "6" }, note: 'a "quoted" }\\n' });
  });

  it("reads a last event the server ended without a newline", async () => {
    handler = (_req, res) => res.end(line("ADDED", "a").trimEnd());
    const { events, end } = await run();
    expect(end).toBeUndefined();
    expect(events.map((e) => e.type)).toEqual(["ADDED"]);
  });

  it("turns a 410 answer into the API status error, so the reflector relists", async () => {
    handler = (_req, res) => {
      res.writeHead(410, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ kind: "Status", code: 410, reason: "Expired", message: "too old resource version: 5 (99)" }));
    };
    const { events, opened, end } = await run();
    expect(opened).toBe(false);
    expect(events).toEqual([]);
    expect(statusOf(end)).toBe(410);
    expect(end?.message).toMatch(/410 Expired: too old resource version/);
  });

  it("ends with a WatchStreamError at an unreadable line, after the events before it", async () => {
    handler = (_req, res) => {
      res.write(line("ADDED", "a"));
      res.write("not json\n");
      res.write(line("ADDED", "b"));
      // Held open: the client must end it.
    };
    const { events, end } = await run();
    expect(events.map((e) => (e.object as { metadata: { name: string } }).metadata.name)).toEqual(["a"]);
    expect(end).toBeInstanceOf(WatchStreamError);
    expect(end?.message).toMatch(/unreadable event/);
  });

  it("ends with a WatchStreamError at a line longer than any object, without holding it all", async () => {
    handler = (_req, res) => {
      const piece = "x".repeat(1024 * 1024);
      let sent = 0;
      const next = () => {
        if (res.destroyed || sent > 2 * MAX_EVENT_CHARS) return void res.end();
        sent += piece.length;
        if (res.write(piece)) setImmediate(next);
        else res.once("drain", next);
      };
      next();
    };
    const { events, end } = await run();
    expect(events).toEqual([]);
    expect(end).toBeInstanceOf(WatchStreamError);
    expect(end?.message).toMatch(/an event line longer than/);
  });

  it("ends with an error when the connection drops mid-answer", async () => {
    handler = (_req, res) => {
      res.write(line("ADDED", "a"));
      setTimeout(() => res.socket?.destroy(), 50);
    };
    const { events, end } = await run();
    expect(events).toHaveLength(1);
    expect(end).toBeInstanceOf(Error);
    expect(end).not.toBeInstanceOf(WatchStreamError);
  });

  it("ends at once when aborted, whether or not the server answered", async () => {
    handler = () => {}; // never answers
    const a = new AbortController();
    setTimeout(() => a.abort(), 50);
    const { end } = await run(a.signal);
    expect(end?.name).toBe("AbortError");

    handler = (_req, res) => res.write(line("ADDED", "a"));
    const b = new AbortController();
    const started = run(b.signal);
    setTimeout(() => b.abort(), 100);
    const { events, end: endB } = await started;
    expect(events).toHaveLength(1);
    expect(endB?.name).toBe("AbortError");
  });
});
