import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import forge from "node-forge";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeClusterCache } from "../support/fakes/clusterCache.js";
import { StaticPolicySource } from "../support/fakes/policySource.js";
import { createWebhookServer, type WebhookServer } from "../../src/admission/server.js";
import { createMetrics } from "../../src/metrics/metrics.js";
import type { TlsMaterial, TlsSource } from "../../src/tls/source.js";
import { createLogger } from "../../src/logging/logger.js";
import { CA_HEARTBEATS, mergeCaBundle, readHeartbeats } from "../../src/tls/caBundle.js";
import { checkMaterial, createCa, issueServing, splitPemBundle } from "../../src/tls/certs.js";
import { writeDevCerts } from "../../src/tls/devCerts.js";
import { FileTls, loadTlsFiles } from "../../src/tls/files.js";
import { SelfManagedTls } from "../../src/tls/selfManaged.js";

const log = createLogger("silent");
const DAY = 86_400_000;

async function serve(tls: TlsSource): Promise<{ server: WebhookServer; port: number }> {
  const server = await createWebhookServer({ tls, cache: new FakeClusterCache(), policy: new StaticPolicySource(), metrics: createMetrics(), log });
  const { port } = await server.listen();
  return { server, port };
}

/** One GET over a new TLS connection; resolves with the status and the serving certificate's fingerprint. */
function get(port: number, ca: string, path = "/healthz"): Promise<{ status: number; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: "127.0.0.1", port, path, ca, agent: false, timeout: 5_000 }, (res) => {
      const fingerprint = (res.socket as import("node:tls").TLSSocket).getPeerCertificate().fingerprint256;
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, fingerprint }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}

describe("self-managed certificates", { timeout: 30_000 }, () => {
  let tls: SelfManagedTls;
  beforeAll(async () => {
    tls = new SelfManagedTls({ service: { name: "backup-gate", namespace: "gate-system" }, extraSans: ["127.0.0.1", "gate.local"] });
    await tls.start();
  });
  afterAll(async () => {
    await tls.stop();
  });

  it("serves the Service's DNS names and the extra SANs", () => {
    const cert = new X509Certificate(tls.current().cert);
    expect(cert.subjectAltName?.split(", ")).toEqual([
      "DNS:backup-gate",
      "DNS:backup-gate.gate-system",
      "DNS:backup-gate.gate-system.svc",
      "DNS:backup-gate.gate-system.svc.cluster.local",
      "DNS:gate.local",
      "IP Address:127.0.0.1",
    ]);
    expect(cert.checkHost("backup-gate.gate-system.svc")).toBe("backup-gate.gate-system.svc");
    expect(cert.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toContain("1.3.6.1.5.5.7.3.1"); // serverAuth
  });

  it("names are UTF8String (Go's x509, hence the API server, refuses `@` in a PrintableString)", () => {
    for (const pem of [tls.current().cert, tls.current().ca]) {
      const cert = forge.pki.certificateFromPem(pem);
      for (const a of [...cert.subject.attributes, ...cert.issuer.attributes]) expect(a.valueTagClass, a.name).toBe(forge.asn1.Type.UTF8);
    }
  });

  it("chains to the CA; the key matches; RSA 2048; 90 days serving, 1 year CA", () => {
    const m = tls.current();
    const cert = new X509Certificate(m.cert);
    const ca = new X509Certificate(m.ca);
    expect(ca.ca).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(checkMaterial(m.key, m.cert, m.ca, Date.now())).toBeUndefined();
    expect(cert.publicKey.asymmetricKeyType).toBe("rsa");
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const days = (Date.parse(cert.validTo) - Date.now()) / DAY;
    expect(days).toBeGreaterThan(89.9);
    expect(days).toBeLessThanOrEqual(90);
    expect((Date.parse(ca.validTo) - Date.now()) / DAY).toBeGreaterThan(364.9);
    expect(m.notAfter.getTime()).toBe(Date.parse(cert.validTo));
  });

  it("a client trusting the CA connects to the server by IP; one trusting another CA does not", async () => {
    const { server, port } = await serve(tls);
    try {
      expect((await get(port, tls.current().ca)).status).toBe(200);
      const other = await createCa({ validityMs: DAY, now: Date.now() });
      await expect(get(port, other.certPem)).rejects.toThrow(/self.signed|unable to verify|certificate/i);
    } finally {
      await server.close();
    }
  });
});

describe("TLS settings: 1.2+ only, forward secrecy and AEAD only", { timeout: 30_000 }, () => {
  let tls: SelfManagedTls;
  let server: WebhookServer;
  let port: number;
  beforeAll(async () => {
    tls = new SelfManagedTls({ extraSans: ["127.0.0.1"] });
    await tls.start();
    ({ server, port } = await serve(tls));
  });
  afterAll(async () => {
    await server.close();
    await tls.stop();
  });

  /** One handshake offering exactly this version and cipher; resolves with what was negotiated. */
  const handshake = (version: "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3", cipher?: string) =>
    new Promise<{ protocol: string; cipher: string }>((resolve, reject) => {
      // SECLEVEL=0 lets this client offer old protocols and weak ciphers at all, so a refusal is the server's.
      // TLS 1.3 suite names (TLS_*) in `ciphers` set the 1.3 suites offered.
      const ciphers = version === "TLSv1.3" ? (cipher ?? "DEFAULT") : `${cipher ?? "ALL"}@SECLEVEL=0`;
      const s = connect({ host: "127.0.0.1", port, ca: tls.current().ca, minVersion: version, maxVersion: version, ciphers }, () => {
        const r = { protocol: s.getProtocol() ?? "", cipher: s.getCipher().standardName };
        s.end();
        resolve(r);
      });
      s.setTimeout(5_000, () => s.destroy(new Error("timed out")));
      s.on("error", reject);
    });

  it.each<{ version: "TLSv1" | "TLSv1.1" }>([{ version: "TLSv1" }, { version: "TLSv1.1" }])("$version is refused", async ({ version }) => {
    await expect(handshake(version)).rejects.toThrow(/protocol version|unsupported protocol|no protocols available|alert/i);
  });

  it.each([
    { cipher: "AES128-SHA", weakness: "RSA key exchange, CBC" },
    { cipher: "AES256-GCM-SHA384", weakness: "RSA key exchange (no forward secrecy)" },
    { cipher: "ECDHE-RSA-AES128-SHA", weakness: "CBC with SHA-1" },
    { cipher: "ECDHE-RSA-AES256-SHA384", weakness: "CBC" },
    { cipher: "DHE-RSA-AES128-GCM-SHA256", weakness: "finite-field DHE" },
    { cipher: "DES-CBC3-SHA", weakness: "3DES" },
  ])("TLS 1.2 with $cipher ($weakness) is refused", async ({ cipher }) => {
    await expect(handshake("TLSv1.2", cipher)).rejects.toThrow(/handshake failure|no shared cipher|no cipher|alert|cipher/i);
  });

  it.each([
    { version: "TLSv1.2", cipher: "ECDHE-RSA-AES128-GCM-SHA256", standardName: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" },
    { version: "TLSv1.2", cipher: "ECDHE-RSA-AES256-GCM-SHA384", standardName: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" },
    { version: "TLSv1.2", cipher: "ECDHE-RSA-CHACHA20-POLY1305", standardName: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" },
    { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", standardName: "TLS_AES_128_GCM_SHA256" },
    { version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", standardName: "TLS_AES_256_GCM_SHA384" },
    { version: "TLSv1.3", cipher: "TLS_CHACHA20_POLY1305_SHA256", standardName: "TLS_CHACHA20_POLY1305_SHA256" },
  ] as const)("$version with $cipher works", async ({ version, cipher, standardName }) => {
    await expect(handshake(version, cipher)).resolves.toEqual({ protocol: version, cipher: standardName });
  });

  it("a rotated certificate is served with the same settings", async () => {
    await tls.rotate();
    await expect(handshake("TLSv1.1")).rejects.toThrow();
    await expect(handshake("TLSv1.2", "AES128-SHA")).rejects.toThrow();
    await expect(handshake("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")).resolves.toMatchObject({ protocol: "TLSv1.2" });
  });
});

describe("rotation without a dropped request", () => {
  it("the serving certificate is renewed at 2/3 of its life while a client keeps calling: zero failures", async () => {
    // 6 s certificates, renewed after 4 s: the 2 s left cover key generation on a loaded
    // machine (the old certificate must stay valid until the new one is in place).
    const tls = new SelfManagedTls({ extraSans: ["127.0.0.1"], servingValidityMs: 6_000 });
    await tls.start();
    const rotations: TlsMaterial[] = [];
    tls.onRotate((m) => rotations.push(m));
    const { server, port } = await serve(tls);
    const seen = new Set<string>();
    let ok = 0;
    const failures: string[] = [];
    try {
      const until = Date.now() + 20_000;
      while (Date.now() < until && (rotations.length < 2 || ok < 20)) {
        try {
          const r = await get(port, tls.current().ca);
          if (r.status === 200) {
            ok++;
            seen.add(r.fingerprint);
          } else failures.push(`HTTP ${r.status}`);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    } finally {
      await server.close();
      await tls.stop();
    }
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
    expect(rotations.length).toBeGreaterThanOrEqual(2);
    expect(seen.size).toBeGreaterThanOrEqual(2);
    // The CA stayed the same: only the serving certificate rotates this often.
    expect(new Set(rotations.map((m) => m.ca)).size).toBe(1);
  }, 40_000);

  it("every CA is in the published bundle before it signs the served certificate, and the bundle never drops the CA in use", async () => {
    // 9 s CAs (renewed after 6 s, successor published after 4.5 s) and 3 s serving certificates.
    const tls = new SelfManagedTls({ extraSans: ["127.0.0.1"], caValidityMs: 9_000, servingValidityMs: 3_000, checkIntervalMs: 100 });
    await tls.start();
    const published: TlsMaterial[] = [tls.current()];
    tls.onRotate((m) => published.push(m));
    const deadline = Date.now() + 25_000;
    const signers = () => new Set(published.map((m) => splitPemBundle(m.ca)[0])).size;
    while (signers() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await tls.stop();
    expect(signers()).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < published.length; i++) {
      const [prev, cur] = [published[i - 1]!, published[i]!];
      const signer = splitPemBundle(cur.ca).find((ca) => new X509Certificate(cur.cert).checkIssued(new X509Certificate(ca)));
      expect(signer, `rotation ${i}: its certificate's CA is in its own bundle`).toBeDefined();
      expect(splitPemBundle(prev.ca), `rotation ${i}: the signing CA was published before`).toContain(signer);
      const prevSigner = splitPemBundle(prev.ca)[0]!;
      if (Date.parse(new X509Certificate(prevSigner).validTo) > Date.now())
        expect(splitPemBundle(cur.ca), `rotation ${i}: the previous CA stays while valid`).toContain(prevSigner);
    }
  }, 40_000);

  it("a CA rotation keeps the previous CA in the bundle", { timeout: 30_000 }, async () => {
    const tls = new SelfManagedTls({ extraSans: ["127.0.0.1"] });
    await tls.start();
    const before = tls.current();
    const after = await tls.rotate(true);
    await tls.stop();
    expect(after.ca.startsWith(before.ca)).toBe(false);
    expect(after.ca.endsWith(before.ca)).toBe(true);
    expect(checkMaterial(after.key, after.cert, after.ca, Date.now())).toBeUndefined();
  });
});

describe("files mode (cert-manager layout)", { timeout: 30_000 }, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "bg-tls-"));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("loads tls.crt/tls.key/ca.crt, serves them, and reloads when they change (watch); a new CA is trusted before its certificate is served", async () => {
    const first = await writeDevCerts(dir, { extraSans: ["127.0.0.1"] });
    const tls = new FileTls({ dir, log, pollIntervalMs: 60_000, caGraceMs: 1_500 });
    await tls.start();
    expect(tls.current().cert).toBe(first.cert);
    const rotated: TlsMaterial[] = [];
    tls.onRotate((m) => rotated.push(m));
    const { server, port } = await serve(tls);
    try {
      const a = await get(port, first.ca);
      const second = await writeDevCerts(dir, { extraSans: ["127.0.0.1"] });
      const until = async (n: number) => {
        const deadline = Date.now() + 10_000;
        while (rotated.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      };
      // Step one: the old certificate still served, the bundle holds the new CA and the old one.
      await until(1);
      expect(rotated).toHaveLength(1);
      expect(rotated[0]).toMatchObject({ cert: first.cert, ca: second.ca + first.ca });
      expect((await get(port, first.ca)).fingerprint).toBe(a.fingerprint);
      // Step two, after the grace period: the new certificate.
      await until(2);
      expect(rotated).toHaveLength(2);
      expect(tls.current()).toMatchObject({ cert: second.cert, ca: second.ca });
      const b = await get(port, second.ca);
      expect(b.status).toBe(200);
      expect(b.fingerprint).not.toBe(a.fingerprint);
      expect(tls.lastError()).toBeUndefined();
    } finally {
      await server.close();
      await tls.stop();
    }
  });

  it("a renewed certificate from the same CA is served at once; one replacing an expired certificate too", async () => {
    const d = mkdtempSync(join(dir, "same-ca-"));
    const now = Date.now();
    const ca = await createCa({ validityMs: 10 * DAY, now });
    const write = (c: { certPem: string; privateKeyPem: string }, caPem = ca.certPem) => {
      writeFileSync(join(d, "tls.crt"), c.certPem);
      writeFileSync(join(d, "tls.key"), c.privateKeyPem);
      writeFileSync(join(d, "ca.crt"), caPem);
    };
    write(await issueServing({ ca, dnsNames: ["x"], validityMs: DAY, now }));
    const clock = { now };
    const tls = new FileTls({ dir: d, log, pollIntervalMs: 60_000, caGraceMs: 60_000, now: () => clock.now });
    await tls.start();
    const renewed = await issueServing({ ca, dnsNames: ["x"], validityMs: DAY, now });
    write(renewed);
    await tls.reload();
    expect(tls.current().cert).toBe(renewed.certPem);
    // The served certificate has expired (cert-manager was down): a set from a new CA is served at once.
    clock.now = now + 2 * DAY;
    const otherCa = await createCa({ validityMs: 10 * DAY, now: clock.now });
    const fresh = await issueServing({ ca: otherCa, dnsNames: ["x"], validityMs: DAY, now: clock.now });
    write(fresh, otherCa.certPem);
    await tls.reload();
    expect(tls.current().cert).toBe(fresh.certPem);
    await tls.stop();
  });

  it.each<{ name: string; spoil: (d: string) => Promise<void>; message: RegExp }>([
    {
      name: "a key that does not match the certificate",
      spoil: async (d) => {
        const other = await writeDevCerts(join(d, "other"));
        writeFileSync(join(d, "tls.key"), other.key);
      },
      message: /tls\.key does not match tls\.crt: the key's public key is not the certificate's/,
    },
    {
      name: "a certificate not signed by ca.crt",
      spoil: async (d) => {
        const other = await createCa({ validityMs: DAY, now: Date.now(), commonName: "someone-else" });
        writeFileSync(join(d, "ca.crt"), other.certPem);
      },
      message: /tls\.crt \(issuer CN=backup-gate-dev-ca, O=backup-gate\) is not signed by any certificate in ca\.crt \(CN=someone-else, O=backup-gate\)/,
    },
    {
      name: "an expired certificate",
      spoil: async (d) => {
        const now = Date.now();
        const ca = await createCa({ validityMs: 10 * DAY, now: now - 5 * DAY });
        const s = await issueServing({ ca, dnsNames: ["x"], validityMs: DAY, now: now - 3 * DAY });
        writeFileSync(join(d, "tls.crt"), s.certPem);
        writeFileSync(join(d, "tls.key"), s.privateKeyPem);
        writeFileSync(join(d, "ca.crt"), ca.certPem);
      },
      message: /tls\.crt expired at/,
    },
    {
      name: "a file that is not PEM",
      spoil: async (d) => {
        writeFileSync(join(d, "tls.crt"), "hello");
      },
      message: /tls\.crt is not a PEM certificate/,
    },
    {
      name: "a missing ca.crt",
      spoil: async (d) => {
        rmSync(join(d, "ca.crt"));
      },
      message: /cannot read .*ca\.crt: ENOENT/,
    },
  ])("refuses $name, says why, and keeps serving the previous certificate", async ({ spoil, message }) => {
    const d = mkdtempSync(join(dir, "case-"));
    const good = await writeDevCerts(d, { extraSans: ["127.0.0.1"] });
    const tls = new FileTls({ dir: d, log, pollIntervalMs: 60_000 });
    await tls.start();
    await spoil(d);
    await tls.reload();
    expect(tls.lastError()?.message).toMatch(message);
    expect(tls.current().cert).toBe(good.cert);
    await expect(loadTlsFiles(d)).rejects.toThrow(message);
    // Starting on bad files fails with the same message.
    await expect(new FileTls({ dir: d }).start()).rejects.toThrow(message);
    await tls.stop();
  });

  it("writeDevCerts writes the key private (0600)", async () => {
    const d = mkdtempSync(join(dir, "dev-"));
    const m = await writeDevCerts(d);
    const { statSync } = await import("node:fs");
    expect(statSync(join(d, "tls.key")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(d, "ca.crt"), "utf8")).toBe(m.ca);
    expect(new X509Certificate(m.cert).subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1");
  });
});

describe("caBundle merge", { timeout: 30_000 }, () => {
  it("ours first, other valid CAs kept (newest first), expired and duplicates dropped, capped", async () => {
    const now = Date.now();
    const mk = (from: number, validity: number, cn: string) => createCa({ now: now + from, validityMs: validity, commonName: cn });
    const [ours, older, newer, expired, extra] = await Promise.all([
      mk(0, DAY, "ours"),
      mk(-2 * DAY, 10 * DAY, "older"),
      mk(-DAY, 10 * DAY, "newer"),
      mk(-3 * DAY, DAY, "expired"),
      mk(-4 * DAY, 10 * DAY, "extra"),
    ]);
    const existing = older.certPem + expired.certPem + ours.certPem + newer.certPem + extra.certPem;
    const cns = (pem: string) =>
      (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((b) => new X509Certificate(b).subject.split("\n")[0]);
    expect(cns(mergeCaBundle(ours.certPem, existing, now))).toEqual(["CN=ours", "CN=newer", "CN=older", "CN=extra"]);
    expect(cns(mergeCaBundle(ours.certPem, existing, now, 1))).toEqual(["CN=ours", "CN=newer"]);
    expect(cns(mergeCaBundle(ours.certPem, undefined, now))).toEqual(["CN=ours"]);
    expect(cns(mergeCaBundle(ours.certPem, "garbage", now))).toEqual(["CN=ours"]);
  });

  it("a CA with a fresh heartbeat is never dropped by the cap; without one the oldest goes first", async () => {
    const now = Date.now();
    const mk = (from: number, cn: string) => createCa({ now: now + from, validityMs: 10 * DAY, commonName: cn });
    // A long-lived replica (its CA the oldest) beside five CAs of a replica that restarted five times.
    const [ours, longLived, ...restarts] = await Promise.all([
      mk(0, "ours"),
      mk(-5 * DAY, "long-lived"),
      ...[1, 2, 3, 4, 5].map((k) => mk(-k * 3_600_000, `restart-${k}`)),
    ]);
    const existing = [longLived, ...restarts].map((c) => c.certPem).join("");
    const cns = (pem: string) =>
      (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((b) => new X509Certificate(b).subject.split("\n")[0]);
    const fp = (pem: string) => new X509Certificate(pem).fingerprint256;
    const rows: { name: string; live: string[]; kept: string[] }[] = [
      {
        name: "no heartbeats: capped by age, the long-lived replica's CA is pushed out",
        live: [],
        kept: ["CN=ours", "CN=restart-1", "CN=restart-2", "CN=restart-3", "CN=restart-4"],
      },
      {
        name: "the long-lived replica beats: kept, and the cap applies to the rest",
        live: [fp(longLived.certPem)],
        kept: ["CN=ours", "CN=long-lived", "CN=restart-1", "CN=restart-2", "CN=restart-3", "CN=restart-4"],
      },
    ];
    for (const r of rows) expect(cns(mergeCaBundle(ours.certPem, existing, now, 4, new Set(r.live))), r.name).toEqual(r.kept);
  });

  it("heartbeats read from the annotation; garbage reads as none", () => {
    const rows: { name: string; value: string | undefined; beats: [string, number][] }[] = [
      { name: "absent", value: undefined, beats: [] },
      {
        name: "a map of numbers",
        value: JSON.stringify({ a: 1, b: 2 }),
        beats: [
          ["a", 1],
          ["b", 2],
        ],
      },
      { name: "wrong-typed entries are skipped", value: JSON.stringify({ a: "x", b: 2, c: null }), beats: [["b", 2]] },
      { name: "not JSON", value: "{", beats: [] },
      { name: "an array", value: "[1]", beats: [] },
    ];
    for (const r of rows) expect([...readHeartbeats(r.value === undefined ? undefined : { [CA_HEARTBEATS]: r.value })], r.name).toEqual(r.beats);
  });
});
