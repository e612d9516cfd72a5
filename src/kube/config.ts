import { existsSync, readFileSync } from "node:fs";
import type https from "node:https";
import { isIPv6 } from "node:net";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { parse } from "yaml";
import type { KubeAccess } from "./http.js";

// Where the API server is and which credentials reach it, loaded as kubectl loads them, without
// client-node: its KubeConfig alone costs 73 MiB of RSS (http.ts). The common kubeconfigs (an
// in-cluster service account; a file with a token, a token file or client certificates) are
// read here; any other (exec or auth-provider plugins, basic auth, impersonation, proxies,
// merged KUBECONFIG lists) is handed to client-node, loaded only then, so nothing is lost.

/** kubectl's `--kubeconfig` and `--context`. */
export interface KubeTarget {
  readonly kubeconfig?: string;
  readonly context?: string;
}

/** The kubeconfig cannot be used: a missing file, bad YAML, an unknown context; the message says which. */
export class KubeConfigError extends Error {
  override name = "KubeConfigError";
}

const SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * The kubeconfig as kubectl would load it (`--kubeconfig`, else $KUBECONFIG, else
 * ~/.kube/config, else in-cluster), switched to `--context` when one is given.
 */
export async function loadKubeAccess(t: KubeTarget, env: NodeJS.ProcessEnv = process.env, serviceAccountDir = SERVICE_ACCOUNT): Promise<KubeAccess> {
  const file = t.kubeconfig ?? kubeconfigFile(env);
  if (file === undefined) {
    if (t.context === undefined && env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT) {
      return inCluster(env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT, serviceAccountDir);
    }
    return withClientNode(t.context);
  }
  if (file.includes(delimiter)) return withClientNode(t.context, file); // a merged list
  const entry = selectedEntry(readKubeconfig(file), t.context);
  return fromEntry(entry, dirname(file)) ?? withClientNode(t.context, file);
}

/** $KUBECONFIG, else ~/.kube/config when it exists. */
function kubeconfigFile(env: NodeJS.ProcessEnv): string | undefined {
  if (env.KUBECONFIG) return env.KUBECONFIG;
  const home = join(env.HOME ?? homedir(), ".kube", "config");
  return existsSync(home) ? home : undefined;
}

type Fields = Record<string, unknown>;
interface Entry {
  readonly cluster: Fields;
  readonly user: Fields;
}

function readKubeconfig(file: string): Fields {
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new KubeConfigError(`cannot load the kubeconfig: ${file}: ${(e as Error).message.split("\n")[0]}`);
  }
  if (!doc || typeof doc !== "object") throw new KubeConfigError(`cannot load the kubeconfig: ${file}: not a kubeconfig`);
  return doc as Fields;
}

/** The cluster and user of the chosen context. */
function selectedEntry(doc: Fields, context: string | undefined): Entry {
  const contexts = named(doc.contexts, "context");
  const name = context ?? (typeof doc["current-context"] === "string" ? doc["current-context"] : undefined);
  if (name === undefined || name === "") throw new KubeConfigError("the kubeconfig has no current context");
  const chosen = contexts.get(name);
  if (!chosen) {
    if (context === undefined) throw new KubeConfigError(`current context "${name}" is not in the kubeconfig`);
    throw new KubeConfigError(`context "${name}" is not in the kubeconfig (it has: ${[...contexts.keys()].join(", ") || "none"})`);
  }
  const cluster = named(doc.clusters, "cluster").get(String(chosen.cluster));
  if (!cluster) throw new KubeConfigError(`context "${name}" names cluster "${String(chosen.cluster)}", which is not in the kubeconfig`);
  return { cluster, user: named(doc.users, "user").get(String(chosen.user)) ?? {} };
}

/** A kubeconfig list (`clusters`, `contexts`, `users`) by entry name. */
function named(list: unknown, field: string): Map<string, Fields> {
  const out = new Map<string, Fields>();
  if (!Array.isArray(list)) return out;
  for (const item of list as Fields[]) {
    if (item && typeof item.name === "string" && item[field] && typeof item[field] === "object") out.set(item.name, item[field] as Fields);
  }
  return out;
}

const CLUSTER_FIELDS: readonly string[] = [
  "server",
  "certificate-authority",
  "certificate-authority-data",
  "insecure-skip-tls-verify",
  "tls-server-name",
  "extensions",
];
const USER_FIELDS: readonly string[] = ["token", "tokenFile", "client-certificate", "client-certificate-data", "client-key", "client-key-data", "extensions"];

/** The access for a cluster and user of the common kinds; undefined for anything else. */
function fromEntry(entry: Entry, root: string): KubeAccess | undefined {
  const { cluster, user } = entry;
  if (typeof cluster.server !== "string" || !Object.keys(cluster).every((k) => CLUSTER_FIELDS.includes(k))) return undefined;
  if (!Object.keys(user).every((k) => USER_FIELDS.includes(k))) return undefined;
  const path = (v: unknown) => (typeof v === "string" && v !== "" ? (isAbsolute(v) ? v : join(root, v)) : undefined);
  return lightAccess(cluster.server, {
    ca: material(path(cluster["certificate-authority"]), cluster["certificate-authority-data"]),
    cert: material(path(user["client-certificate"]), user["client-certificate-data"]),
    key: material(path(user["client-key"]), user["client-key-data"]),
    token: typeof user.token === "string" && user.token !== "" ? () => user.token as string : undefined,
    tokenFile: path(user.tokenFile),
    insecure: cluster["insecure-skip-tls-verify"] === true,
    ...(typeof cluster["tls-server-name"] === "string" ? { serverName: cluster["tls-server-name"] } : {}),
  });
}

/** A file (read on every use: certificates are rotated in place) or base64 data. */
function material(file: string | undefined, data: unknown): (() => Buffer) | undefined {
  if (file) return () => readFileSync(file);
  if (typeof data === "string" && data !== "") return () => Buffer.from(data, "base64");
  return undefined;
}

interface Credentials {
  readonly ca: (() => Buffer) | undefined;
  readonly cert: (() => Buffer) | undefined;
  readonly key: (() => Buffer) | undefined;
  readonly token: (() => string) | undefined;
  readonly tokenFile: string | undefined;
  readonly insecure: boolean;
  readonly serverName?: string;
}

function lightAccess(server: string, c: Credentials): KubeAccess {
  return {
    getCurrentCluster: () => ({ server }),
    applyToHTTPSOptions(o: https.RequestOptions) {
      if (c.insecure) o.rejectUnauthorized = false;
      if (c.serverName) o.servername = c.serverName;
      if (c.ca) o.ca = c.ca();
      if (c.cert) o.cert = c.cert();
      if (c.key) o.key = c.key();
      // A token file is read on every use: projected service-account tokens rotate.
      const token = c.tokenFile ? readFileSync(c.tokenFile, "utf8").trim() : c.token?.();
      if (token) o.headers = { ...o.headers, Authorization: `Bearer ${token}` };
      return Promise.resolve();
    },
  };
}

/** The pod's service account, as client-node's `loadFromCluster` reads it. */
function inCluster(host: string, port: string, dir: string): KubeAccess {
  const scheme = port === "80" || port === "8080" || port === "8001" ? "http" : "https";
  const server = `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  return lightAccess(server, {
    ca: material(join(dir, "ca.crt"), undefined),
    cert: undefined,
    key: undefined,
    token: undefined,
    tokenFile: join(dir, "token"),
    insecure: false,
  });
}

/**
 * client-node's KubeConfig, for kubeconfigs this module does not read itself: `files` (a
 * KUBECONFIG list is merged as kubectl and client-node merge it), else client-node's default.
 */
async function withClientNode(context: string | undefined, files?: string): Promise<KubeAccess> {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  try {
    if (files === undefined) kc.loadFromDefault();
    else {
      const [first, ...rest] = files.split(delimiter).filter(Boolean);
      kc.loadFromFile(first ?? "");
      for (const file of rest) {
        const more = new KubeConfig();
        more.loadFromFile(file);
        kc.mergeConfig(more);
      }
    }
  } catch (e) {
    throw new KubeConfigError(`cannot load the kubeconfig: ${(e as Error).message.split("\n")[0] ?? String(e)}`);
  }
  if (context !== undefined) {
    if (!kc.getContextObject(context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new KubeConfigError(`context "${context}" is not in the kubeconfig (it has: ${known.join(", ") || "none"})`);
    }
    kc.setCurrentContext(context);
  }
  return kc;
}
