/**
 * Certificates against the real kube-apiserver, which calls the webhooks over TLS itself:
 * short-lived self-managed certificates rotate (serving and CA) under a steady stream of
 * Backup creates, a wall-clock jump past expiry is caught up, a caBundle someone else
 * overwrote is reported by the API server and written back by the gate, and a --tls-dir whose
 * CA did not sign the certificate is refused at start in one line.
 *
 * A failed admission call: the CREATE webhooks fail open (failurePolicy Ignore), so it shows
 * as a Backup created without the mutating webhook's annotations, and in the API server's own
 * apiserver_admission_webhook_fail_open_count.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { request as httpsRequest, type RequestOptions } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StaticPolicySource } from "../support/fakes/policySource.js";
import { webhookConfigurations, WEBHOOK_NAMES } from "../../src/admission/manifests.js";
import { createWebhookServer } from "../../src/admission/server.js";
import type { ClusterCacheImpl } from "../../src/cluster/cache.js";
import { policySchema } from "../../src/core/policy.js";
import { createMetrics, type Metrics } from "../../src/metrics/metrics.js";
import { CA_HEARTBEATS, CaBundlePatcher, type CaBundlePatcherOptions } from "../../src/tls/caBundle.js";
import { createCa, issueServing, splitPemBundle } from "../../src/tls/certs.js";
import { writeDevCerts } from "../../src/tls/devCerts.js";
import { FileTls } from "../../src/tls/files.js";
import { SelfManagedTls } from "../../src/tls/selfManaged.js";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { backupBody } from "../support/builders.js";
import { clients, createNamespace, isApiError, uniqueName, VELERO_GROUP, VELERO_VERSION, type Clients, type VeleroObject } from "../support/objects.js";
import { sleep, waitFor } from "../support/wait.js";
import { startWebhookGate, type WebhookGate } from "../support/webhookGate.js";

const SERVING_MS = 6_000;
const CA_MS = 15_000;
const RESYNC_MS = 4_000;

/** The gate's log lines, kept for assertions. */
const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
const log = pino(
  { level: "info" },
  new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  }),
);

async function apiserverMetrics(cp: ControlPlane): Promise<string> {
  const url = new URL("/metrics", cp.host);
  const opts: RequestOptions = { method: "GET", hostname: url.hostname, port: url.port, path: url.pathname };
  await cp.kubeConfig.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    httpsRequest(opts, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        text += d;
      });
      res.on("end", () => resolve(text));
    })
      .on("error", reject)
      .end();
  });
}

/** The API server's fail-open count for our webhooks (calls it could not make and ignored). */
async function failedOpen(cp: ControlPlane): Promise<number> {
  const names = Object.values(WEBHOOK_NAMES);
  return (await apiserverMetrics(cp))
    .split("\n")
    .filter((l) => l.startsWith("apiserver_admission_webhook_fail_open_count{") && names.some((n) => l.includes(`name="${n}"`)))
    .reduce((s, l) => s + Number(l.split(" ").pop()), 0);
}

async function mutateCalls(metrics: Metrics): Promise<number> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === "backup_gate_admission_requests_total");
  return ((m?.values ?? []) as { value: number; labels: Record<string, string | number> }[])
    .filter((v) => v.labels.webhook === "mutate" && v.labels.operation === "CREATE")
    .reduce((s, v) => s + v.value, 0);
}

describe("certificate rotation, expiry and a wrong CA on the real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let admission: AdmissionregistrationV1Api;
  let cache: ClusterCacheImpl;
  let tls: SelfManagedTls;
  let gate: WebhookGate;
  let patcher: CaBundlePatcher;
  let metrics: Metrics;
  let skewMs = 0;
  const velero = uniqueName("velero");
  const web = uniqueName("web");
  const configName = uniqueName("backup-gate");
  const rotations: { at: number; ca: string; cert: string }[] = [];

  beforeAll(async () => {
    cp = await startControlPlane({ name: "certs" });
    c = clients(cp.kubeConfig);
    admission = cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    await createNamespace(c, velero);
    await createNamespace(c, web);
    // Lifetimes of seconds; the gate's clock can be stepped (skewMs) as a resume from suspend would.
    tls = new SelfManagedTls({
      extraSans: ["127.0.0.1"],
      servingValidityMs: SERVING_MS,
      caValidityMs: CA_MS,
      checkIntervalMs: 250,
      now: () => Date.now() + skewMs,
      log,
    });
    await tls.start();
    tls.onRotate((m) => rotations.push({ at: Date.now(), ca: m.ca, cert: m.cert }));
    gate = await startWebhookGate(cp, {
      policy: policySchema.parse({ veleroNamespace: velero, priorities: { agingSeconds: 0 }, maxConcurrentBackups: 1000 }),
      tls,
      configName,
      log,
      rebuildIntervalMs: 200,
      resyncMs: RESYNC_MS,
    });
    ({ cache, patcher, metrics } = gate);
    await waitFor("the mutating webhook to be called", async () => (await create("probe")).annotated, { timeoutMs: 60_000, intervalMs: 300 });
  });

  afterAll(async () => {
    patcher?.stop(); // a test replaces the gate's patcher with its own
    await gate?.stop();
    await tls?.stop();
    await cp?.stop();
  });

  /** One create through the API server; annotated when the mutating webhook answered. */
  async function create(prefix: string, ns = velero): Promise<{ annotated: boolean; error?: string }> {
    try {
      const o = (await c.custom.createNamespacedCustomObject({
        group: VELERO_GROUP,
        version: VELERO_VERSION,
        namespace: ns,
        plural: "backups",
        body: backupBody(uniqueName(prefix), ns, { includedNamespaces: [web] }),
      })) as VeleroObject;
      return { annotated: o.metadata.annotations?.["backup-gate.io/conflict-level-source"] === "gate" };
    } catch (e) {
      return { annotated: false, error: isApiError(e) ? `HTTP ${e.code}: ${String(e.body).slice(0, 300)}` : String(e) };
    }
  }

  /**
   * `workers` creators, each creating one backup after another until `done()`; every create
   * that was not mutated is a failure. Concurrent creates make the API server open new
   * connections to the webhook, which is where a certificate it cannot verify yet would show.
   */
  async function stream(prefix: string, done: () => boolean, maxMs: number, workers = 4, ns = velero): Promise<{ calls: number; failures: string[] }> {
    const failures: string[] = [];
    let calls = 0;
    const until = Date.now() + maxMs;
    await Promise.all(
      Array.from({ length: workers }, async () => {
        while (!done() && Date.now() < until) {
          const r = await create(prefix, ns);
          calls++;
          if (!r.annotated) failures.push(`${new Date().toISOString()} ${r.error ?? "created without the mutating webhook's annotations"}`);
        }
      }),
    );
    return { calls, failures };
  }

  async function bundles(): Promise<string[]> {
    const m = await admission.readMutatingWebhookConfiguration({ name: configName });
    const v = await admission.readValidatingWebhookConfiguration({ name: configName });
    return [...(m.webhooks ?? []), ...(v.webhooks ?? [])].map((w) => Buffer.from(w.clientConfig.caBundle ?? "", "base64").toString("utf8"));
  }

  it("serving certificates close to expiry and the CA rotate under a stream of creates: no failed admission call", async () => {
    const from = rotations.length;
    const cas = () => new Set(rotations.slice(from).map((r) => splitPemBundle(r.ca)[0])).size;
    const failOpenBefore = await failedOpen(cp);
    const callsBefore = await mutateCalls(metrics);
    // At least 4 serving rotations and 2 CA rotations (each CA signs only after it was published).
    const { calls, failures } = await stream("steady", () => rotations.length - from >= 6 && cas() >= 3, 90_000);
    console.log(`certs: ${calls} creates through ${rotations.length - from} rotations (${cas() - 1} CA changes), ${failures.length} failed`);
    expect(failures).toEqual([]);
    expect(rotations.length - from).toBeGreaterThanOrEqual(6);
    expect(cas()).toBeGreaterThanOrEqual(3);
    expect(calls).toBeGreaterThan(20);
    expect((await mutateCalls(metrics)) - callsBefore).toBe(calls);
    expect((await failedOpen(cp)) - failOpenBefore).toBe(0);
    // Both configurations, every webhook, hold the CA that signs what is served now.
    await waitFor(
      "both configurations to hold the current CA",
      async () => (await bundles()).every((b) => b.startsWith(splitPemBundle(tls.current().ca)[0]!)),
      { timeoutMs: 10_000 },
    );
  }, 150_000);

  it("a certificate found expired by the wall clock (a resume from suspend, a clock step) is renewed at the next check, and calls keep working", async () => {
    const served = tls.current();
    const from = rotations.length;
    // The gate's clock jumps past the serving certificate's expiry (less than the 5 min backdating,
    // so what it issues next is valid for the API server too).
    skewMs = served.notAfter.getTime() - Date.now() + 1_000;
    const { calls, failures } = await stream("after-jump", () => rotations.length > from && tls.current().cert !== served.cert, 10_000);
    expect(tls.current().cert).not.toBe(served.cert);
    expect(tls.current().notAfter.getTime()).toBeGreaterThan(Date.now() + skewMs);
    expect(rotations[from]!.at - (served.notAfter.getTime() - skewMs)).toBeLessThan(5_000);
    const after = await stream("after-jump", () => false, 3_000);
    expect([...failures, ...after.failures]).toEqual([]);
    expect(calls + after.calls).toBeGreaterThan(3);
  }, 60_000);

  it("a caBundle someone overwrote: the API server reports the unknown authority, the gate writes its CA back and says so", async () => {
    const stranger = await createCa({ validityMs: 86_400_000, now: Date.now(), commonName: "someone-else" });
    const wrong = Buffer.from(stranger.certPem).toString("base64");
    const overwrite = async () => {
      const m = await admission.readMutatingWebhookConfiguration({ name: configName });
      for (const w of m.webhooks ?? []) w.clientConfig.caBundle = wrong;
      await admission.replaceMutatingWebhookConfiguration({ name: configName, body: m });
      const v = await admission.readValidatingWebhookConfiguration({ name: configName });
      for (const w of v.webhooks ?? []) w.clientConfig.caBundle = wrong;
      await admission.replaceValidatingWebhookConfiguration({ name: configName, body: v });
    };
    // From here a patcher that writes only on drift: a rotation's own write would repair the
    // bundle too, and this is about noticing a change nobody announced.
    patcher.stop();
    patcher = new CaBundlePatcher({ kubeConfig: cp.kubeConfig, mutatingName: configName, validatingName: configName, log, metrics, resyncMs: RESYNC_MS });
    await patcher.attach({ current: () => tls.current(), onRotate: () => () => {}, start: async () => {}, stop: async () => {} });
    const warnedBefore = lines.filter((l) => /caBundle no longer held the gate's CA/.test(l.msg)).length;
    // Overwritten again and again (a controller fighting the gate) until the API server is seen
    // refusing, so the gate's periodic repair cannot win before then.
    let fighting = true;
    const fight = (async () => {
      while (fighting) {
        await overwrite().catch(() => {});
        await sleep(200);
      }
    })();

    // The promotion webhook fails closed, so the API server's own error is visible: a dry-run
    // move into ReadyToStart, until the API server has loaded the wrong bundle.
    const name = uniqueName("promote-me");
    await c.custom.createNamespacedCustomObject({
      group: VELERO_GROUP,
      version: VELERO_VERSION,
      namespace: velero,
      plural: "backups",
      body: backupBody(name, velero, { includedNamespaces: [web] }),
    });
    let refusal = "";
    await waitFor(
      "the API server to refuse a promotion it cannot verify",
      async () => {
        const o = (await c.custom.getNamespacedCustomObject({
          group: VELERO_GROUP,
          version: VELERO_VERSION,
          namespace: velero,
          plural: "backups",
          name,
        })) as VeleroObject;
        o.metadata.annotations = { ...o.metadata.annotations, "backup-gate.io/promoted-by": "test" };
        o.status = { phase: "ReadyToStart" };
        try {
          await c.custom.replaceNamespacedCustomObject({
            group: VELERO_GROUP,
            version: VELERO_VERSION,
            namespace: velero,
            plural: "backups",
            name,
            body: o,
            dryRun: "All",
          });
          return false;
        } catch (e) {
          refusal = isApiError(e) ? String(e.body) : String(e);
          return /x509|certificate/.test(refusal);
        }
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    ).finally(async () => {
      fighting = false;
      await fight;
    });
    expect(refusal).toMatch(
      new RegExp(`failed calling webhook \\\\?"${WEBHOOK_NAMES.validatePromotion.replace(/\./g, "\\.")}\\\\?".*x509: certificate signed by unknown authority`),
    );

    // The gate notices at its next check and writes its CA back; calls work again.
    await waitFor("the gate to write its CA back", async () => (await bundles()).every((b) => b.includes(splitPemBundle(tls.current().ca)[0]!)), {
      timeoutMs: RESYNC_MS * 3,
    });
    expect(lines.filter((l) => /caBundle no longer held the gate's CA/.test(l.msg)).length).toBeGreaterThan(warnedBefore);
    await waitFor("an annotated create after the repair", async () => (await create("repaired")).annotated, { timeoutMs: 20_000, intervalMs: 200 });
  }, 60_000);

  it("a --tls-dir whose ca.crt did not sign tls.crt: serve refuses to start, in one line naming the files", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bg-wrong-ca-"));
    const now = Date.now();
    const [signer, other] = await Promise.all([
      createCa({ validityMs: 86_400_000, now, commonName: "signer" }),
      createCa({ validityMs: 86_400_000, now, commonName: "not-the-signer" }),
    ]);
    const serving = await issueServing({ ca: signer, dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], validityMs: 86_400_000, now });
    writeFileSync(join(dir, "tls.crt"), serving.certPem);
    writeFileSync(join(dir, "tls.key"), serving.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(dir, "ca.crt"), other.certPem);
    const run = await promisify(execFile)(
      process.execPath,
      [
        "--import",
        "tsx",
        "src/cli/main.ts",
        "serve",
        "--kubeconfig",
        cp.kubeconfigPath,
        "--namespace",
        velero,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--tls-dir",
        dir,
        "--webhook-configuration",
        uniqueName("unused"),
      ],
      { timeout: 60_000, env: { ...process.env, LOG_LEVEL: "silent" } },
    ).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(
        `^backup-gate: serve: ${dir}: tls\\.crt \\(issuer CN=signer, O=backup-gate\\) is not signed by any certificate in ca\\.crt \\(CN=not-the-signer, O=backup-gate\\)\\n$`,
      ),
    );
  }, 90_000);

  it("files mode (cert-manager layout): sets from a new CA, written under a stream of creates, are trusted before they are served: no failed call", async () => {
    // A second gate in this control plane, for its own Velero namespace, serving from files.
    const ns = uniqueName("velero-files");
    await createNamespace(c, ns);
    const dir = mkdtempSync(join(tmpdir(), "bg-files-"));
    await writeDevCerts(dir, { extraSans: ["127.0.0.1"] });
    const files = new FileTls({ dir, log, pollIntervalMs: 500, caGraceMs: 3_000 });
    await files.start();
    const filesGate = await startWebhookGate(cp, {
      policy: policySchema.parse({ veleroNamespace: ns }),
      tls: files,
      configName: uniqueName("backup-gate-files"),
      log,
    });
    try {
      await waitFor("the files-mode webhook to be called", async () => (await create("probe", ns)).annotated, { timeoutMs: 60_000, intervalMs: 300 });
      // cert-manager with a new CA each time, three times: each set staged, then moved into
      // place (kubelet swaps a mounted Secret's files at once); the next once this one is served.
      let writerDone = false;
      const served: string[] = [];
      const writer = (async () => {
        try {
          for (let i = 0; i < 3; i++) {
            await sleep(2_000);
            const stage = mkdtempSync(join(tmpdir(), "bg-files-stage-"));
            const set = await writeDevCerts(stage, { extraSans: ["127.0.0.1"] });
            for (const f of ["tls.key", "tls.crt", "ca.crt"]) renameSync(join(stage, f), join(dir, f));
            const movedAt = Date.now();
            await waitFor("the new set to be served", () => files.current().cert === set.cert, { timeoutMs: 30_000, intervalMs: 100 });
            served.push(set.ca);
            console.log(`certs (files): set ${i + 1} served ${Date.now() - movedAt} ms after it was moved into place`);
          }
        } finally {
          writerDone = true;
        }
      })();
      const { calls, failures } = await stream("files", () => writerDone, 120_000, 4, ns);
      await writer;
      console.log(`certs (files): ${calls} creates through ${served.length} new-CA sets, ${failures.length} failed`);
      expect(failures).toEqual([]);
      expect(new Set(served).size).toBe(3);
    } finally {
      await filesGate.stop();
      await files.stop();
    }
  }, 240_000);

  // The caBundle tests use configurations of their own, pointing nowhere: only their bundles matter.
  const freshConfigurations = async (prefix: string) => {
    const name = uniqueName(prefix);
    const { mutating, validating } = webhookConfigurations({ name, veleroNamespace: uniqueName("nobody"), url: "https://127.0.0.1:1", timeoutSeconds: 5 });
    await admission.createMutatingWebhookConfiguration({ body: mutating });
    await admission.createValidatingWebhookConfiguration({ body: validating });
    return name;
  };
  /** Every webhook's caBundle in both configurations, decoded. */
  const bundlesOf = async (name: string) =>
    (await Promise.all([admission.readMutatingWebhookConfiguration({ name }), admission.readValidatingWebhookConfiguration({ name })]))
      .flatMap((c) => c.webhooks ?? [])
      .map((w) => Buffer.from(w.clientConfig.caBundle ?? "", "base64").toString("utf8"));
  /** A replica as `serve` makes one without --tls-dir: its own in-memory CA, merged into `name`'s bundles. */
  const replicaOf = async (name: string, o: Partial<CaBundlePatcherOptions>) => {
    const own = new SelfManagedTls({ extraSans: ["127.0.0.1"] });
    await own.start();
    const p = new CaBundlePatcher({ kubeConfig: cp.kubeConfig, mutatingName: name, validatingName: name, log, ...o });
    await p.attach(own);
    return {
      own,
      p,
      stop: async () => {
        p.stop();
        await own.stop();
      },
    };
  };

  it("two replicas, each with its own CA, share the bundle without rewriting it in turns", async () => {
    const name = await freshConfigurations("backup-gate-pair");
    const replicas = await Promise.all([0, 1].map(() => replicaOf(name, { resyncMs: 500 })));
    try {
      const settled = replicas.map((r) => r.p.writes);
      await sleep(4_000);
      // Each wrote its CA in; eight drift checks each since, and no write: both CAs are there, only in another order.
      expect(replicas.map((r) => r.p.writes)).toEqual(settled);
      for (const bundle of await bundlesOf(name)) for (const r of replicas) expect(bundle).toContain(r.own.current().ca);
    } finally {
      for (const r of replicas) await r.stop();
    }
  }, 60_000);

  it("heartbeats are written at resyncs without a drift warning; both replicas' CAs stay", async () => {
    const name = await freshConfigurations("backup-gate-beats");
    const from = lines.length;
    const replicas = await Promise.all([0, 1].map(() => replicaOf(name, { resyncMs: 300, heartbeatMs: 600 })));
    try {
      const first = replicas.map((r) => r.p.writes);
      await sleep(4_000);
      // Each replica refreshed its heartbeat several times (each write puts its own CA first)...
      replicas.forEach((r, i) => expect(r.p.writes).toBeGreaterThan(first[i]! + 2));
      // ...and no refresh read as someone else's change (the suite's own gate may warn about its own configurations meanwhile).
      expect(lines.slice(from).filter((l) => l.name === name && /no longer held/.test(l.msg))).toEqual([]);
      const config = await admission.readValidatingWebhookConfiguration({ name });
      const beats = JSON.parse(config.metadata?.annotations?.[CA_HEARTBEATS] ?? "{}") as Record<string, number>;
      expect(Object.keys(beats)).toHaveLength(2);
      for (const bundle of await bundlesOf(name)) for (const r of replicas) expect(bundle).toContain(r.own.current().ca);
    } finally {
      for (const r of replicas) await r.stop();
    }
  }, 60_000);

  it("a long-lived replica's CA stays in the bundle while another replica restarts six times (heartbeats); ignoring them drops it", async () => {
    const run = async (restartsSeeLiveness: boolean) => {
      const name = await freshConfigurations("backup-gate-restarts");
      const longLived = await replicaOf(name, { resyncMs: 0 });
      try {
        for (let k = 0; k < 6; k++) {
          // The positive control: a patcher that sees no CA as alive caps by age alone, as before heartbeats.
          const restart = await replicaOf(name, { resyncMs: 0, ...(restartsSeeLiveness ? {} : { liveForMs: 0 }) });
          await restart.stop();
        }
        const held = (await bundlesOf(name)).map((b) => b.includes(longLived.own.current().ca));
        return { webhooks: held.length, holding: held.filter(Boolean).length };
      } finally {
        await longLived.stop();
      }
    };
    // Every webhook of both configurations (one mutating, the rest validating) carries a bundle.
    const webhooks = Object.keys(WEBHOOK_NAMES).length;
    expect(await run(true)).toEqual({ webhooks, holding: webhooks });
    expect(await run(false)).toEqual({ webhooks, holding: 0 });
  }, 60_000);

  it("the gate's /readyz says so while the certificate it serves has expired", async () => {
    const expiredServer = await createWebhookServer({
      tls: {
        current: () => ({ ...tls.current(), notAfter: new Date(Date.now() - 1_000) }),
        onRotate: () => () => {},
        start: async () => {},
        stop: async () => {},
      },
      cache,
      policy: new StaticPolicySource(policySchema.parse({ veleroNamespace: velero })),
      metrics: createMetrics(),
      log,
    });
    try {
      const res = await expiredServer.app.inject({ method: "GET", url: "/readyz" });
      expect(res.statusCode).toBe(503);
      expect(res.json().reasons).toContainEqual(expect.stringMatching(/^the serving certificate expired at /));
    } finally {
      await expiredServer.close();
    }
  });
});
