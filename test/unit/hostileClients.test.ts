import { Agent, request as httpsRequest } from "node:https";
import { connect as netConnect } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { FakeClusterCache } from "../support/fakes/clusterCache.js";
import { StaticPolicySource } from "../support/fakes/policySource.js";
import { MAX_SPEC_LIST_ENTRIES, oversizedSpec } from "../../src/admission/review.js";
import { createWebhookServer, PATHS, type WebhookServer } from "../../src/admission/server.js";
import { DEFAULT_POLICY } from "../../src/core/policy.js";
import { createMetrics, type Metrics } from "../../src/metrics/metrics.js";
import { createLogger } from "../../src/logging/logger.js";
import { SelfManagedTls } from "../../src/tls/selfManaged.js";
import { boundClaim, ns, pod } from "../support/builders.js";
import { cluster } from "./support/cluster.js";
import { admissionReview } from "../support/review.js";

// Clients that would hold the webhook server: one that trickles its headers, and one whose
// Backup lists 200,000 namespaces. Over real HTTPS to the real fastify server.

const log = createLogger("silent");
const HEADERS_TIMEOUT_MS = 1_000;

let tls: SelfManagedTls;
let server: WebhookServer;
let metrics: Metrics;
let port: number;
const agent = new Agent({ keepAlive: true, maxSockets: 4 });

beforeAll(async () => {
  tls = new SelfManagedTls({ extraSans: ["127.0.0.1"] });
  await tls.start();
  const snap = cluster(ns("velero"), ns("shop"), pod("shop", "db-0", { claims: ["data"] }), ...boundClaim("shop", "data"));
  metrics = createMetrics();
  server = await createWebhookServer({
    tls,
    cache: new FakeClusterCache(snap.view, snap.backups),
    policy: new StaticPolicySource(DEFAULT_POLICY),
    metrics,
    log,
    headersTimeoutMs: HEADERS_TIMEOUT_MS,
    connectionsCheckIntervalMs: 200,
  });
  port = (await server.listen()).port;
  await server.engine.ensureBase();
});

afterAll(async () => {
  agent.destroy();
  await server?.close();
  await tls?.stop();
});

const review = (uid: string, spec: unknown, name = `b-${uid}`) =>
  JSON.stringify(admissionReview({ uid, object: { apiVersion: "velero.io/v1", kind: "Backup", metadata: { name, namespace: "velero" }, spec } }));

interface Answer {
  status: number;
  response: { uid: string; allowed: boolean; warnings?: string[]; status?: { code: number; message: string } };
}

function post(path: string, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        agent,
        ca: tls.current().ca,
        timeout: 20_000,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, response: (JSON.parse(text) as { response: Answer["response"] }).response }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${path}: no answer in 20 s`)));
    req.on("error", reject);
    req.end(body);
  });
}

const verdicts = async (verdict: string) =>
  (await metrics.admissionRequests.get()).values.filter((v) => v.labels.verdict === verdict).reduce((s, v) => s + v.value, 0);

describe("a client that trickles its headers", () => {
  it("is answered 408 and closed after the header timeout while it still trickles, and a review on another connection is answered meanwhile", async () => {
    let socket: TLSSocket | undefined;
    let bytesSent = 0;
    let trickle: NodeJS.Timeout | undefined;
    const closed = new Promise<{ text: string; stillTrickling: boolean }>((resolve, reject) => {
      const s = tlsConnect({ host: "127.0.0.1", port, ca: tls.current().ca }, () => {
        s.write(`POST ${PATHS.validate} HTTP/1.1\r\nHost: x\r\n`);
        // One header byte every 100 ms: never silent long enough for the idle timeout.
        trickle = setInterval(() => {
          s.write("X");
          bytesSent++;
        }, 100);
      });
      socket = s;
      let text = "";
      s.on("data", (d: Buffer) => {
        text += d.toString();
      });
      s.on("close", () => {
        const stillTrickling = trickle !== undefined;
        clearInterval(trickle);
        resolve({ text, stillTrickling });
      });
      s.on("error", () => {
        /* a reset after the 408 is a close too */
      });
      // The bound this test allows: well past the 1 s timeout, far below Node's default (60 s + 30 s).
      setTimeout(() => reject(new Error(`still open after 8 s (${bytesSent} header bytes trickled)`)), 8_000).unref();
    });
    // Meanwhile another client is answered at once.
    const normal = await post(PATHS.validate, review("meanwhile", { includedNamespaces: ["shop"] }));
    expect(normal.status).toBe(200);
    expect(normal.response).toMatchObject({ uid: "meanwhile", allowed: true });
    expect(socket?.destroyed).toBe(false);
    const { text, stillTrickling } = await closed;
    expect(stillTrickling).toBe(true);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(bytesSent).toBeGreaterThan(0);
  }, 15_000);
});

describe("a client that trickles its body, or never finishes its TLS handshake", () => {
  it("a body trickled byte by byte is answered 408 once the request timeout passes", async () => {
    const slow = await createWebhookServer({
      tls,
      cache: new FakeClusterCache(),
      policy: new StaticPolicySource(DEFAULT_POLICY),
      metrics: createMetrics(),
      log,
      headersTimeoutMs: 1_000,
      requestTimeoutMs: 2_000,
      connectionsCheckIntervalMs: 200,
    });
    const { port: slowPort } = await slow.listen();
    try {
      let trickle: NodeJS.Timeout | undefined;
      const { text, stillTrickling } = await new Promise<{ text: string; stillTrickling: boolean }>((resolve, reject) => {
        const s = tlsConnect({ host: "127.0.0.1", port: slowPort, ca: tls.current().ca }, () => {
          s.write(`POST ${PATHS.validate} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
          trickle = setInterval(() => s.write(" "), 100);
        });
        let got = "";
        s.on("data", (d: Buffer) => {
          got += d.toString();
        });
        s.on("close", () => {
          const still = trickle !== undefined;
          clearInterval(trickle);
          resolve({ text: got, stillTrickling: still });
        });
        s.on("error", () => {
          /* closed after the 408 */
        });
        setTimeout(() => {
          clearInterval(trickle);
          s.destroy();
          reject(new Error("still open after 10 s"));
        }, 10_000).unref();
      });
      expect(stillTrickling).toBe(true);
      expect(text).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      await slow.close();
    }
  }, 15_000);

  it("a TCP connection that never starts its TLS handshake is closed after the handshake timeout", async () => {
    const closedAfterSilence = await new Promise<boolean>((resolve) => {
      const s = netConnect({ host: "127.0.0.1", port });
      s.on("close", () => resolve(true));
      s.on("error", () => {
        /* reset counts as closed */
      });
      setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 8_000).unref();
    });
    expect(closedAfterSilence).toBe(true);
  }, 15_000);
});

describe("a keep-alive connection idle between reviews (as the API server keeps them)", () => {
  it("is not cut by the header timeout: a review after an idle spell longer than it is answered on the same connection", async () => {
    const s = tlsConnect({ host: "127.0.0.1", port, ca: tls.current().ca });
    let text = "";
    let closed = false;
    s.on("data", (d: Buffer) => {
      text += d.toString();
    });
    s.on("close", () => {
      closed = true;
    });
    await new Promise((r) => s.once("secureConnect", r));
    const answers = () => text.split("HTTP/1.1 ").length - 1;
    s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await vi.waitFor(() => expect(answers()).toBe(1));
    await new Promise((r) => setTimeout(r, HEADERS_TIMEOUT_MS * 2.5));
    expect(closed).toBe(false);
    s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await vi.waitFor(() => expect(answers()).toBe(2));
    expect(text).not.toContain("408");
    s.destroy();
  }, 15_000);
});

describe("a Backup whose spec lists more entries than the gate judges", () => {
  const names = (n: number, prefix = "ns-") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

  it.each([
    { case: "200,000 included namespaces", spec: { includedNamespaces: names(200_000) }, field: "spec.includedNamespaces", total: 200_000 },
    {
      case: "lists summed over the spec",
      spec: { includedNamespaces: names(6_000), excludedNamespaces: names(5_000, "x-") },
      field: "spec.includedNamespaces",
      total: 11_000,
    },
    {
      case: "a hook's namespace list",
      spec: { hooks: { resources: [{ name: "h", includedNamespaces: names(20_000) }] } },
      field: "spec.hooks.resources[0].includedNamespaces",
      total: 20_001,
    },
    { case: "at the limit", spec: { includedNamespaces: names(MAX_SPEC_LIST_ENTRIES) }, field: undefined, total: undefined },
    { case: "no spec", spec: undefined, field: undefined, total: undefined },
  ])("counts $case", ({ spec, field, total }) => {
    const o = oversizedSpec({ spec });
    expect(o?.field).toBe(field);
    expect(o?.total).toBe(total);
  });

  it("is refused by the validating webhook (422, naming the field and the limit) and admitted unjudged with a warning by the mutating one", async () => {
    const body = review("big", { includedNamespaces: names(200_000) }, "everything");
    const [validate, mutate] = await Promise.all([post(PATHS.validate, body), post(PATHS.mutate, body)]);
    expect(validate.status).toBe(200);
    expect(validate.response.allowed).toBe(false);
    expect(validate.response.status?.code).toBe(422);
    expect(validate.response.status?.message).toBe(
      `backup everything is refused: spec.includedNamespaces holds 200000 entries (200000 in all the spec's lists); backup-gate judges Backups whose spec lists hold at most ${MAX_SPEC_LIST_ENTRIES} entries; name fewer namespaces, use a wildcard or a label selector, or split it into several backups`,
    );
    expect(mutate.response.allowed).toBe(true);
    expect(mutate.response.warnings?.[0]).toMatch(/^backup-gate did not judge this Backup: spec\.includedNamespaces holds 200000 entries/);
    expect(await verdicts("too-large")).toBe(2);
  }, 30_000);

  it("a spec at the limit is judged as usual (positive control: the check lets it through)", async () => {
    const a = await post(PATHS.validate, review("at-limit", { includedNamespaces: names(MAX_SPEC_LIST_ENTRIES) }));
    expect(a.response).toMatchObject({ uid: "at-limit", allowed: true });
    expect(await verdicts("too-large")).toBe(2);
  }, 30_000);

  it("a review sent alongside a 200,000-namespace one is answered, and the big one is refused", async () => {
    const big = post(PATHS.validate, review("big-2", { includedNamespaces: names(200_000) }));
    const small = post(PATHS.validate, review("small", { includedNamespaces: ["shop"] }));
    const [b, s] = await Promise.all([big, small]);
    expect(s.response).toMatchObject({ uid: "small", allowed: true });
    expect(b.response.status?.code).toBe(422);
  }, 30_000);
});
