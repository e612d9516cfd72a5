import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import forge from "node-forge";
import { beforeAll, describe, expect, it } from "vitest";
import { bundleVerifies, createCa, issueServing, type IssuedCertificate } from "../../src/tls/certs.js";
import { loadTlsFiles } from "../../src/tls/files.js";

// Injected caBundles (service-ca, cert-manager's cainjector): the gate serves a Secret that may
// lack ca.crt, and checks whether a webhook's caBundle verifies what it serves.

const DAY = 86_400_000;
let root: IssuedCertificate, intermediate: IssuedCertificate, other: IssuedCertificate, leaf: IssuedCertificate, viaIntermediate: IssuedCertificate;

beforeAll(async () => {
  const now = Date.now();
  [root, other] = await Promise.all([
    createCa({ validityMs: 30 * DAY, now, commonName: "root" }),
    createCa({ validityMs: 30 * DAY, now, commonName: "other" }),
  ]);
  leaf = await issueServing({ ca: root, dnsNames: ["backup-gate.backup-gate.svc"], validityMs: DAY, now });
  // An intermediate CA: createCa self-signs, so its certificate is re-signed here by root.
  const own = await createCa({ validityMs: 30 * DAY, now, commonName: "intermediate" });
  const cert = forge.pki.certificateFromPem(own.certPem);
  cert.setIssuer(forge.pki.certificateFromPem(root.certPem).subject.attributes);
  cert.sign(forge.pki.privateKeyFromPem(root.privateKeyPem), forge.md.sha256.create());
  intermediate = { ...own, certPem: forge.pki.certificateToPem(cert) };
  viaIntermediate = await issueServing({ ca: intermediate, dnsNames: ["backup-gate.backup-gate.svc"], validityMs: DAY, now });
}, 60_000);

describe("bundleVerifies", () => {
  it.each([
    { name: "the signing CA", chain: () => leaf.certPem, bundle: () => root.certPem, verifies: true },
    { name: "the signing CA among others", chain: () => leaf.certPem, bundle: () => other.certPem + root.certPem, verifies: true },
    { name: "another CA only (a stale injection)", chain: () => leaf.certPem, bundle: () => other.certPem, verifies: false },
    { name: "an empty bundle (not injected yet)", chain: () => leaf.certPem, bundle: () => "", verifies: false },
    { name: "garbage", chain: () => leaf.certPem, bundle: () => "not a certificate", verifies: false },
    { name: "the intermediate that signed the leaf", chain: () => viaIntermediate.certPem, bundle: () => intermediate.certPem, verifies: true },
    {
      name: "the root, through the intermediate tls.crt carries",
      chain: () => viaIntermediate.certPem + intermediate.certPem,
      bundle: () => root.certPem,
      verifies: true,
    },
    { name: "the root, when tls.crt lacks the intermediate", chain: () => viaIntermediate.certPem, bundle: () => root.certPem, verifies: false },
  ])("$name: verifies $verifies", ({ chain, bundle, verifies }) => {
    const problem = bundleVerifies(chain(), bundle());
    expect(problem === undefined).toBe(verifies);
    if (!verifies) expect(problem).toMatch(/caBundle/);
  });
});

describe("loadTlsFiles with an injected CA", () => {
  const dirWith = (files: Record<string, string>) => {
    const dir = mkdtempSync(join(tmpdir(), "bg-tls-injected-"));
    for (const [f, t] of Object.entries(files)) writeFileSync(join(dir, f), t);
    return dir;
  };

  it("serves tls.crt/tls.key without ca.crt (service-ca's layout), with an empty CA", async () => {
    const m = await loadTlsFiles(dirWith({ "tls.crt": leaf.certPem, "tls.key": leaf.privateKeyPem }), Date.now(), true);
    expect(m.cert).toBe(leaf.certPem);
    expect(m.ca).toBe("");
  });

  it("without --ca-injected the same directory is refused for the missing ca.crt (positive control)", async () => {
    await expect(loadTlsFiles(dirWith({ "tls.crt": leaf.certPem, "tls.key": leaf.privateKeyPem }), Date.now(), false)).rejects.toThrow(
      /cannot read .*ca\.crt: ENOENT/,
    );
  });

  it("still refuses a key that does not match, and checks a ca.crt when cert-manager writes one", async () => {
    await expect(loadTlsFiles(dirWith({ "tls.crt": leaf.certPem, "tls.key": other.privateKeyPem }), Date.now(), true)).rejects.toThrow(
      /tls\.key does not match tls\.crt/,
    );
    await expect(loadTlsFiles(dirWith({ "tls.crt": leaf.certPem, "tls.key": leaf.privateKeyPem, "ca.crt": other.certPem }), Date.now(), true)).rejects.toThrow(
      /not signed by any certificate in ca\.crt/,
    );
  });
});
