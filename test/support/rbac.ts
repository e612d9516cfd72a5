/**
 * Least-privilege harness: the API server's audit log, a ServiceAccount's own kubeconfig (from
 * the TokenRequest API), manifests applied as the admin, raw HTTP requests under any identity,
 * and an RBAC rule matcher that compares what an identity did with what the manifests grant.
 *
 * The matcher is a second reading of the manifests, not the authority: the real API server's
 * authorizer decides, and the suites check that both agree.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { request, type RequestOptions } from "node:https";
import { join } from "node:path";
import { CoreV1Api, KubeConfig, KubernetesObjectApi, type KubernetesObject } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";

// ---- the audit log ----

/**
 * kube-apiserver flags for an audit log of every request at Metadata level (who, verb,
 * object, response code; no bodies). RequestReceived is left out: each request then has one
 * event, or two for a watch (ResponseStarted, then ResponseComplete when it ends).
 */
export function auditApiserverArgs(dir: string): { args: Record<string, string>; logPath: string } {
  const policyPath = join(dir, "audit-policy.yaml");
  const logPath = join(dir, "audit.log");
  writeFileSync(policyPath, "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n");
  // Blocking mode: an event is on disk before the API server answers, so a test reads what it caused.
  return { args: { "audit-policy-file": policyPath, "audit-log-path": logPath, "audit-log-mode": "blocking", "audit-log-format": "json" }, logPath };
}

export interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  userAgent?: string;
  user: { username: string };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
  responseStatus?: { code?: number };
}

/** One event per request: the last stage the log holds for it. */
export function readAuditLog(path: string): AuditEvent[] {
  const byId = new Map<string, AuditEvent>();
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line) continue;
    const e = JSON.parse(line) as AuditEvent;
    byId.set(e.auditID, e);
  }
  return [...byId.values()];
}

/** A resource request as the RBAC authorizer sees it. */
export interface ApiCall {
  verb: string;
  apiGroup: string;
  /** `resource` or `resource/subresource`. */
  resource: string;
  /** Absent for cluster-scoped objects. */
  namespace?: string;
  /** The object named by the path (or by a `metadata.name` field selector on a list/watch). */
  name?: string;
  code: number;
  uri: string;
}

/** The resource request an audit event records; undefined for non-resource URLs (/version, /api). */
export function callOf(e: AuditEvent): ApiCall | undefined {
  const ref = e.objectRef;
  if (!ref?.resource) return undefined;
  return {
    verb: e.verb,
    apiGroup: ref.apiGroup ?? "",
    resource: ref.subresource ? `${ref.resource}/${ref.subresource}` : ref.resource,
    ...(ref.namespace ? { namespace: ref.namespace } : {}),
    // A create is authorized before the object (and its name) is read: RBAC sees no name.
    ...(ref.name && e.verb !== "create" ? { name: ref.name } : {}),
    code: e.responseStatus?.code ?? 0,
    uri: e.requestURI,
  };
}

// ---- identities ----

export function serviceAccountUser(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}

/**
 * A kubeconfig for a ServiceAccount: a token from the TokenRequest API (as the kubelet mounts
 * one into a pod) and the API server's CA from the admin kubeconfig. Written to `path`.
 */
export async function serviceAccountKubeconfig(admin: KubeConfig, namespace: string, name: string, path: string): Promise<KubeConfig> {
  const core = admin.makeApiClient(CoreV1Api);
  const answer = await core.createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  const token = answer.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  const cluster = admin.getCurrentCluster();
  if (!cluster?.caData) throw new Error("the admin kubeconfig has no inline CA for its cluster");
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "control-plane", server: cluster.server, caData: cluster.caData, skipTLSVerify: false }],
    users: [{ name, token }],
    contexts: [{ name, cluster: "control-plane", user: name, namespace }],
    currentContext: name,
  });
  writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
  return kc;
}

// ---- manifests ----

/** Every document of YAML manifest files, in order; an unreadable document names its file. */
export function readManifests(paths: readonly string[]): KubernetesObject[] {
  return paths.flatMap((path) =>
    parseAllDocuments(readFileSync(path, "utf8")).map((doc, i) => {
      if (doc.errors[0]) throw new Error(`${path}: document ${i + 1}: ${doc.errors[0].message}`);
      return doc.toJS() as KubernetesObject;
    }),
  );
}

/** Creates each object in order, as `kubectl create -f` would. */
export async function createAll(kc: KubeConfig, objects: readonly KubernetesObject[]): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  for (const o of objects) await api.create(o);
}

// ---- raw requests ----

/** The User-Agent of requests made by `rawRequest`, so that the audit log tells them apart from the gate's. */
export const PROBE_USER_AGENT = "backup-gate-rbac-probe";

/**
 * One HTTP request to the API server with `kc`'s credentials; the status is returned, never
 * thrown, with the Audit-Id the API server gave the request (the audit log's `auditID`).
 */
export async function rawRequest(
  kc: KubeConfig,
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
): Promise<{ status: number; body: string; auditId: string }> {
  const opts: RequestOptions = { method, headers: { "user-agent": PROBE_USER_AGENT, ...(body === undefined ? {} : { "content-type": contentType }) } };
  await kc.applyToHTTPSOptions(opts);
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error("kubeconfig has no current cluster");
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, server), opts, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text, auditId: String(res.headers["audit-id"] ?? "") }));
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

// ---- RBAC rules ----

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** A rule granted to a subject: everywhere (a ClusterRole through a ClusterRoleBinding) or in one namespace. */
export interface Grant {
  /** Undefined: every namespace and cluster-scoped objects. */
  namespace?: string;
  /** `Role ns/name` or `ClusterRole name`, for messages. */
  from: string;
  rule: PolicyRule;
}

interface Binding extends KubernetesObject {
  roleRef: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

/** The rules `objects` bind to a ServiceAccount (only the bindings among `objects` are read). */
export function grantsFor(objects: readonly KubernetesObject[], namespace: string, name: string): Grant[] {
  const roles = rolesIn(objects);
  const grants: Grant[] = [];
  for (const o of objects) {
    if (o.kind !== "RoleBinding" && o.kind !== "ClusterRoleBinding") continue;
    const b = o as Binding;
    if (!bindsServiceAccount(b, namespace, name)) continue;
    // A RoleBinding grants in its namespace, whether it refers to a Role or a ClusterRole.
    const scope = o.kind === "RoleBinding" ? o.metadata?.namespace : undefined;
    const roleNs = b.roleRef.kind === "Role" ? o.metadata?.namespace : undefined;
    const rules = roles.get(roleKey(b.roleRef.kind, roleNs, b.roleRef.name));
    if (!rules) throw new Error(`${o.kind} ${o.metadata?.name} refers to ${b.roleRef.kind} ${b.roleRef.name}, which the manifests do not define`);
    const from = roleNs ? `Role ${roleNs}/${b.roleRef.name}` : `ClusterRole ${b.roleRef.name}`;
    for (const rule of rules) grants.push({ ...(scope ? { namespace: scope } : {}), from, rule });
  }
  return grants;
}

/** Role and ClusterRole rules by roleKey. */
function rolesIn(objects: readonly KubernetesObject[]): Map<string, PolicyRule[]> {
  const roles = new Map<string, PolicyRule[]>();
  for (const o of objects) {
    if (o.kind === "Role" || o.kind === "ClusterRole") {
      roles.set(roleKey(o.kind, o.kind === "Role" ? o.metadata?.namespace : undefined, o.metadata?.name), (o as { rules?: PolicyRule[] }).rules ?? []);
    }
  }
  return roles;
}

const bindsServiceAccount = (b: Binding, namespace: string, name: string): boolean =>
  !!b.subjects?.some((s) => s.kind === "ServiceAccount" && s.name === name && s.namespace === namespace);

const roleKey = (kind: string, namespace: string | undefined, name: string | undefined) => `${kind}/${namespace ?? ""}/${name ?? ""}`;

const has = (list: readonly string[] | undefined, v: string) => !!list && (list.includes("*") || list.includes(v));

/** Whether one grant allows a call, by the RBAC authorizer's rule semantics. */
export function grantAllows(g: Grant, c: Pick<ApiCall, "verb" | "apiGroup" | "resource" | "namespace" | "name">): boolean {
  if (g.namespace !== undefined && g.namespace !== c.namespace) return false;
  const r = g.rule;
  if (!has(r.verbs, c.verb) || !has(r.apiGroups, c.apiGroup) || !has(r.resources, c.resource)) return false;
  return !r.resourceNames?.length || (c.name !== undefined && r.resourceNames.includes(c.name));
}

/** A grant split into one permission per (verb, group, resource): each should be used. */
export interface Permission {
  grant: Grant;
  verb: string;
  apiGroup: string;
  resource: string;
}

export function permissions(grants: readonly Grant[]): Permission[] {
  return grants.flatMap((grant) =>
    grant.rule.verbs.flatMap((verb) =>
      (grant.rule.apiGroups ?? []).flatMap((apiGroup) => (grant.rule.resources ?? []).map((resource) => ({ grant, verb, apiGroup, resource }))),
    ),
  );
}

/** Whether a call used this permission (it matches the permission's single verb, group and resource). */
export function usesPermission(p: Permission, c: ApiCall): boolean {
  return grantAllows({ ...p.grant, rule: { ...p.grant.rule, verbs: [p.verb], apiGroups: [p.apiGroup], resources: [p.resource] } }, c);
}

export function describePermission(p: Permission): string {
  const names = p.grant.rule.resourceNames?.length ? ` [${p.grant.rule.resourceNames.join(",")}]` : "";
  return `${p.verb} ${p.resource}${p.apiGroup ? `.${p.apiGroup}` : ""}${names} in ${p.grant.namespace ?? "the cluster"} (${p.grant.from})`;
}
