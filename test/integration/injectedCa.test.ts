/**
 * Certificates injected by another operator, against the real API server and a real `serve`:
 * OpenShift's service-ca operator (a Secret with tls.crt and tls.key, no ca.crt; the CA put
 * into every webhook's caBundle by `service.beta.openshift.io/inject-cabundle`) and
 * cert-manager's cainjector (`cert-manager.io/inject-ca-from`) behave alike here. The test plays
 * the injector: it writes the Secret's files and the caBundle as those operators do. The gate
 * serves what it is given, reloads it on change, never writes the caBundle, and reports (log,
 * backup_gate_ca_bundle_verified) when the injected bundle does not verify its certificate.
 */
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCa, issueServing, type IssuedCertificate } from "../../src/tls/certs.js";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { httpsGet, startGate, type GateProcess } from "../support/gate.js";
import { backupBody } from "../support/builders.js";
import { clients, createNamespace, isApiError, uniqueName, VELERO_GROUP, VELERO_VERSION, type Clients, type VeleroObject } from "../support/objects.js";
import { sleep, waitFor } from "../support/wait.js";

const VELERO = "velero";
const DAY = 86_400_000;

describe("injected caBundle (service-ca, cert-manager cainjector) on the real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let admission: AdmissionregistrationV1Api;
  let gate: GateProcess;
  const dir = mkdtempSync(join(tmpdir(), "bg-injected-"));
  let ca1: IssuedCertificate;
  let ca2: IssuedCertificate;

  /** What the kubelet does with the Secret the operator wrote: tls.crt and tls.key, no ca.crt. */
  async function writeSecretFiles(ca: IssuedCertificate): Promise<void> {
    const serving = await issueServing({ ca, dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], validityMs: DAY, now: Date.now() });
    for (const [file, text] of [
      ["tls.key", serving.privateKeyPem],
      ["tls.crt", `${serving.certPem}`],
    ] as const) {
      writeFileSync(join(dir, `.${file}.new`), text, { mode: 0o600 });
      renameSync(join(dir, `.${file}.new`), join(dir, file));
    }
  }

  /** What the injector does: the CA into every webhook's caBundle. Returns the resourceVersions written. */
  async function inject(ca: IssuedCertificate): Promise<string[]> {
    const bundle = Buffer.from(ca.certPem).toString("base64");
    const m = await admission.readMutatingWebhookConfiguration({ name: "backup-gate" });
    for (const w of m.webhooks ?? []) w.clientConfig.caBundle = bundle;
    const v = await admission.readValidatingWebhookConfiguration({ name: "backup-gate" });
    for (const w of v.webhooks ?? []) w.clientConfig.caBundle = bundle;
    const [m2, v2] = await Promise.all([
      admission.replaceMutatingWebhookConfiguration({ name: "backup-gate", body: m }),
      admission.replaceValidatingWebhookConfiguration({ name: "backup-gate", body: v }),
    ]);
    return [m2.metadata!.resourceVersion!, v2.metadata!.resourceVersion!];
  }

  const versions = async () => [
    (await admission.readMutatingWebhookConfiguration({ name: "backup-gate" })).metadata!.resourceVersion!,
    (await admission.readValidatingWebhookConfiguration({ name: "backup-gate" })).metadata!.resourceVersion!,
  ];

  /** One create through the API server; annotated when the mutating webhook answered (CREATE fails open). */
  async function annotated(): Promise<boolean> {
    try {
      const o = (await c.custom.createNamespacedCustomObject({
        group: VELERO_GROUP,
        version: VELERO_VERSION,
        namespace: VELERO,
        plural: "backups",
        body: backupBody(uniqueName("probe"), VELERO, { includedNamespaces: ["web"] }),
      })) as VeleroObject;
      return o.metadata.annotations?.["backup-gate.io/conflict-level-source"] === "gate";
    } catch (e) {
      if (isApiError(e)) return false;
      throw e;
    }
  }

  /** GET /healthz over a fresh connection that trusts only `ca`. */
  const trusting = (ca: IssuedCertificate) => httpsGet(`${gate.url}/healthz`, { ca: ca.certPem, agent: false, timeout: 5_000 });
  const verifiedMetric = async () => /^backup_gate_ca_bundle_verified (\d)/m.exec((await gate.get("/metrics")).body)?.[1];
  const gateLog = () => readFileSync(gate.process.logFile, "utf8");

  beforeAll(async () => {
    cp = await startControlPlane({ name: "injected-ca" });
    c = clients(cp.kubeConfig);
    admission = cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    for (const ns of [VELERO, "backup-gate", "web"]) await createNamespace(c, ns);
    [ca1, ca2] = await Promise.all([
      createCa({ validityMs: 30 * DAY, now: Date.now(), commonName: "openshift-service-serving-signer" }),
      createCa({ validityMs: 30 * DAY, now: Date.now(), commonName: "rotated-signer" }),
    ]);
    await writeSecretFiles(ca1);
    gate = await startGate(cp, { identity: "gate-injected", register: true, extraArgs: ["--tls-dir", dir, "--ca-injected", "--ca-bundle-check-seconds", "1"] });
  }, 120_000);
  afterAll(async () => {
    await gate?.stop();
    await cp?.stop();
  });

  it("before the injector runs: starts without ca.crt, writes no caBundle, and reports the empty bundle", async () => {
    const m = await admission.readMutatingWebhookConfiguration({ name: "backup-gate" });
    expect((m.webhooks ?? []).map((w) => w.clientConfig.caBundle ?? "")).toEqual((m.webhooks ?? []).map(() => ""));
    await waitFor("the gate to report the empty bundle", async () => (await verifiedMetric()) === "0", { timeoutMs: 10_000 });
    expect(gateLog()).toMatch(/the caBundle is empty/);
    expect(await annotated()).toBe(false); // the API server cannot verify the gate yet (positive control)
  }, 60_000);

  it("once the injector writes the CA, the API server calls the gate, and the gate reports it verified", async () => {
    await inject(ca1);
    await waitFor("an annotated create", annotated, { timeoutMs: 30_000, intervalMs: 300 });
    await waitFor("backup_gate_ca_bundle_verified 1", async () => (await verifiedMetric()) === "1", { timeoutMs: 10_000 });
  }, 60_000);

  it("a new certificate from another CA is served at once; the gate reports the stale bundle and never rewrites it", async () => {
    const before = await versions();
    await writeSecretFiles(ca2);
    await waitFor("the gate to report the stale bundle", async () => (await verifiedMetric()) === "0", { timeoutMs: 30_000, intervalMs: 300 });
    expect(gateLog()).toMatch(/the injected caBundle does not verify the served certificate/);
    // A new TLS connection (the API server's next one) gets the new certificate: CA2 verifies it, CA1 no longer.
    expect((await trusting(ca2)).status).toBe(200);
    await expect(trusting(ca1)).rejects.toThrow(/self[- ]signed|unable to verify|signature/i);
    await sleep(3_000); // three checks: a gate that wrote bundles would have by now
    expect(await versions()).toEqual(before);
    expect(gateLog()).not.toMatch(/caBundle written/);
  }, 90_000);

  it("the injector catches up: calls verify again, and the bundle stays exactly as the injector wrote it", async () => {
    const written = await inject(ca2);
    await waitFor("an annotated create", annotated, { timeoutMs: 30_000, intervalMs: 300 });
    await waitFor("backup_gate_ca_bundle_verified 1", async () => (await verifiedMetric()) === "1", { timeoutMs: 10_000 });
    await sleep(2_000);
    expect(await versions()).toEqual(written);
  }, 60_000);
});
