/**
 * `loadKubeAccess` reads the common kubeconfigs without client-node (whose import costs `serve`
 * 73 MiB of RSS). client-node's KubeConfig is the oracle: for each kubeconfig below both must
 * give the same server, TLS material and headers. Kubeconfigs with features read only by
 * client-node are handed to it.
 */
import { KubeConfig } from "@kubernetes/client-node";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import type https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { KubeConfigError, loadKubeAccess } from "../../src/kube/config.js";
import type { KubeAccess } from "../../src/kube/http.js";

const dir = mkdtempSync(join(tmpdir(), "kubeaccess-"));
const b64 = (s: string) => Buffer.from(s).toString("base64");
writeFileSync(join(dir, "ca.pem"), "CA FROM FILE");
writeFileSync(join(dir, "client.pem"), "CERT FROM FILE");
writeFileSync(join(dir, "client.key"), "KEY FROM FILE");

function kubeconfig(name: string, cluster: Record<string, unknown>, user: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  const file = join(dir, `${name}.yaml`);
  const doc = {
    apiVersion: "v1",
    kind: "Config",
    "current-context": "main",
    clusters: [{ name: "c", cluster: { server: "https://api.example:6443", ...cluster } }],
    users: [{ name: "u", user }],
    contexts: [
      { name: "main", context: { cluster: "c", user: "u" } },
      { name: "other", context: { cluster: "c2", user: "u" } },
    ],
    ...extra,
  };
  doc.clusters.push({ name: "c2", cluster: { server: "https://other.example:443", ...cluster } });
  writeFileSync(file, stringify(doc));
  return file;
}

async function optionsOf(access: KubeAccess): Promise<Record<string, unknown>> {
  const o: https.RequestOptions = { headers: {} };
  await access.applyToHTTPSOptions(o);
  const text = (v: unknown) => (v === undefined ? undefined : Buffer.isBuffer(v) ? v.toString() : JSON.stringify(v));
  return {
    server: access.getCurrentCluster()?.server,
    authorization: (o.headers as Record<string, unknown>).Authorization,
    ca: text(o.ca),
    cert: text(o.cert),
    key: text(o.key),
    rejectUnauthorized: o.rejectUnauthorized,
    servername: o.servername,
  };
}

function clientNode(file: string, context?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  if (context) kc.setCurrentContext(context);
  return kc;
}

describe("loadKubeAccess reads what client-node reads, without loading it", () => {
  const rows: { name: string; cluster: Record<string, unknown>; user: Record<string, unknown>; context?: string }[] = [
    { name: "token", cluster: { "certificate-authority-data": b64("CA DATA") }, user: { token: "abc" } },
    {
      name: "client certificates inline",
      cluster: { "certificate-authority-data": b64("CA DATA") },
      user: { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") },
    },
    {
      name: "files, relative to the kubeconfig",
      cluster: { "certificate-authority": "ca.pem" },
      user: { "client-certificate": "client.pem", "client-key": join(dir, "client.key") },
    },
    { name: "insecure, with a TLS server name", cluster: { "insecure-skip-tls-verify": true, "tls-server-name": "api.internal" }, user: { token: "t" } },
    { name: "another context", cluster: {}, user: { token: "t2" }, context: "other" },
    { name: "no credentials", cluster: {}, user: {} },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const file = kubeconfig(row.name.replace(/\W+/g, "-"), row.cluster, row.user);
      const target = { kubeconfig: file, ...(row.context ? { context: row.context } : {}) };
      const access = await loadKubeAccess(target, {});
      expect(access).not.toBeInstanceOf(KubeConfig);
      expect(await optionsOf(access)).toEqual(await optionsOf(clientNode(file, row.context)));
    });
  }

  it("reads kubectl's tokenFile on every use (client-node does not read it at all)", async () => {
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "first\n");
    const access = await loadKubeAccess({ kubeconfig: kubeconfig("tokenfile", {}, { tokenFile }) }, {});
    expect((await optionsOf(access)).authorization).toBe("Bearer first");
    writeFileSync(tokenFile, "rotated");
    expect((await optionsOf(access)).authorization).toBe("Bearer rotated");
  });

  it("in a pod: the service account, as client-node's loadFromCluster reads it, the token read on every use", async () => {
    const root = mkdtempSync(join(tmpdir(), "sa-"));
    const sa = join(root, "var/run/secrets/kubernetes.io/serviceaccount");
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, "ca.crt"), "CLUSTER CA");
    writeFileSync(join(sa, "token"), "sa-token");
    const env = { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443", HOME: root };
    const access = await loadKubeAccess({}, env, sa);
    const kc = new KubeConfig();
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      kc.loadFromCluster(root);
    } finally {
      process.env = saved;
    }
    expect(await optionsOf(access)).toEqual(await optionsOf(kc));
    expect(await optionsOf(access)).toMatchObject({ server: "https://[fd00::1]:443", authorization: "Bearer sa-token" });
    writeFileSync(join(sa, "token"), "sa-token-rotated");
    expect((await optionsOf(access)).authorization).toBe("Bearer sa-token-rotated");
  });

  const handedOn: { name: string; cluster?: Record<string, unknown>; user?: Record<string, unknown> }[] = [
    { name: "an exec plugin", user: { exec: { apiVersion: "client.authentication.k8s.io/v1", command: "true" } } },
    { name: "an auth provider", user: { "auth-provider": { name: "oidc", config: {} } } },
    { name: "basic auth", user: { username: "a", password: "b" } },
    { name: "impersonation", user: { token: "t", as: "someone" } },
    { name: "a proxy", cluster: { "proxy-url": "http://proxy.example:3128" }, user: { token: "t" } },
    { name: "client-node's own token-file spelling", user: { "token-file": join(dir, "client.key") } },
  ];
  for (const row of handedOn) {
    it(`hands a kubeconfig with ${row.name} to client-node`, async () => {
      const file = kubeconfig(`on-${row.name.replace(/\W+/g, "-")}`, row.cluster ?? {}, row.user ?? {});
      expect(await loadKubeAccess({ kubeconfig: file }, {})).toBeInstanceOf(KubeConfig);
    });
  }

  it("hands a merged KUBECONFIG list to client-node, which merges it", async () => {
    const a = kubeconfig("merge-a", {}, { token: "a" });
    const b = join(dir, "merge-b.yaml");
    writeFileSync(
      b,
      stringify({
        clusters: [{ name: "cb", cluster: { server: "https://b.example" } }],
        users: [{ name: "ub", user: { token: "b" } }],
        contexts: [{ name: "from-b", context: { cluster: "cb", user: "ub" } }],
      }),
    );
    const access = await loadKubeAccess({ context: "from-b" }, { KUBECONFIG: `${a}:${b}` });
    expect(access).toBeInstanceOf(KubeConfig);
    expect(await optionsOf(access)).toMatchObject({ server: "https://b.example", authorization: "Bearer b" });
  });

  const errors: { name: string; target: () => { kubeconfig?: string; context?: string }; message: RegExp }[] = [
    {
      name: "an unknown context names the known ones",
      target: () => ({ kubeconfig: kubeconfig("ctx", {}, {}), context: "nope" }),
      message: /context "nope" is not in the kubeconfig \(it has: main, other\)/,
    },
    { name: "a missing file", target: () => ({ kubeconfig: join(dir, "missing.yaml") }), message: /missing\.yaml: ENOENT/ },
    { name: "not YAML", target: () => (writeFileSync(join(dir, "bad.yaml"), "a: [b"), { kubeconfig: join(dir, "bad.yaml") }), message: /bad\.yaml:/ },
    {
      name: "not a kubeconfig",
      target: () => (writeFileSync(join(dir, "scalar.yaml"), "42"), { kubeconfig: join(dir, "scalar.yaml") }),
      message: /not a kubeconfig/,
    },
    {
      name: "a context naming no cluster",
      target: () => ({ kubeconfig: kubeconfig("nocluster", {}, {}, { contexts: [{ name: "main", context: { cluster: "x", user: "u" } }] }) }),
      message: /names cluster "x"/,
    },
  ];
  for (const row of errors) {
    it(`says why it cannot load: ${row.name}`, async () => {
      const err = await loadKubeAccess(row.target(), {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KubeConfigError);
      expect((err as Error).message).toMatch(row.message);
    });
  }
});
