import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";

// backup-gate reads no Secret but its own promotion key (README, manifests/10-rbac.yaml): its CA
// lives in memory, or comes from files a Secret is mounted as; the key that seals its promotions
// is one Secret in its own namespace, read and made by one module. A static check over every
// source file and the RBAC manifest; the RBAC proof on the real API server is another suite's.

/** Ways code could reach Secrets: client-node's Secret methods, REST paths, a resource or kind named in a request. */
const SECRET_ACCESS: [string, RegExp][] = [
  ["a client-node Secret method", /\b(read|list|create|replace|patch|delete|deleteCollection|watch)\w*Secret\w*\s*\(/],
  ["a REST path to secrets", /(?<!\/run)\/secrets\b/],
  ["the resource name secrets", /["'`]secrets["'`]/],
  ["the kind Secret", /kind\s*:\s*["'`]Secret["'`]|["'`]Secret["'`]\s*[,)]/],
];

/** Each line of `source` that matches one of the patterns, with why. */
function secretAccesses(source: string): { line: number; why: string; text: string }[] {
  const found: { line: number; why: string; text: string }[] = [];
  source.split("\n").forEach((text, i) => {
    if (/^\s*(\/\/|\*)/.test(text)) return; // comments may say "Secret"
    const hit = SECRET_ACCESS.find(([, re]) => re.test(text));
    if (hit) found.push({ line: i + 1, why: hit[0], text: text.trim() });
  });
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : /\.(ts|js|mjs)$/.test(e.name) ? [p] : [];
  });
}

/** The one module that reads (and makes) a Secret: the promotion key. */
const PROMOTION_KEY_MODULE = "src/controller/promotionKey.ts";

describe("no Secret read anywhere but the promotion key", () => {
  it("the check finds each way of reaching a Secret (positive control)", () => {
    const sample = [
      "await core.readNamespacedSecret({ name, namespace });",
      "const list = await api.listSecretForAllNamespaces();",
      "const path = `/api/v1/namespaces/${ns}/secrets`;",
      'reflector({ resource: "secrets" })',
      'const body = { apiVersion: "v1", kind: "Secret", data };',
      "// the CA is never kept in a Secret",
      'const NEVER_FS = new Set(["hostPath", "secret"]); // a pod volume type, not an API read',
      'const SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"; // mounted files, not an API read',
    ].join("\n");
    expect(secretAccesses(sample).map((f) => f.line)).toEqual([1, 2, 3, 4, 5]);
  });

  it("no source file under src/ reaches Secrets, but the promotion key's module", () => {
    const files = sourceFiles("src").filter((f) => relative(".", f) !== PROMOTION_KEY_MODULE);
    expect(files.length).toBeGreaterThan(40);
    const hits = files.flatMap((f) => secretAccesses(readFileSync(f, "utf8")).map((h) => `${relative(".", f)}:${h.line} ${h.why}: ${h.text}`));
    expect(hits).toEqual([]);
  });

  it("the promotion key's module reads and makes only the promotion key Secret", () => {
    const text = readFileSync(PROMOTION_KEY_MODULE, "utf8");
    const calls = [...text.matchAll(/\.send\("(\w+)", ([^,)]*)/g)].map((m) => `${m[1]} ${m[2]}`);
    expect(calls.sort()).toEqual(["GET `${this.secrets}/${PROMOTION_KEY_SECRET}`", "POST this.secrets"]);
    expect(text).toMatch(/this\.secrets = `\/api\/v1\/namespaces\/\$\{encodeURIComponent\(o\.namespace\)\}\/secrets`;/);
    expect(text).toMatch(/export const PROMOTION_KEY_SECRET = "backup-gate-promotion-key";/);
  });

  it("the RBAC manifest grants on secrets only create and a get of the promotion key, in the gate's namespace, and no wildcard", () => {
    type Rule = { apiGroups?: string[]; resources?: string[]; resourceNames?: string[]; verbs?: string[] };
    const docs = parseAllDocuments(readFileSync("manifests/10-rbac.yaml", "utf8")).map(
      (d) => d.toJS() as { kind: string; metadata: { namespace?: string }; rules?: Rule[] },
    );
    const rules = docs.flatMap((d) => d.rules ?? []);
    expect(rules.length).toBeGreaterThan(0);
    const secretRules = docs.flatMap((d) =>
      (d.rules ?? []).filter((r) => r.resources?.includes("secrets")).map((r) => ({ kind: d.kind, namespace: d.metadata.namespace, ...r })),
    );
    expect(secretRules).toEqual([
      { kind: "Role", namespace: "backup-gate", apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      { kind: "Role", namespace: "backup-gate", apiGroups: [""], resources: ["secrets"], resourceNames: ["backup-gate-promotion-key"], verbs: ["get"] },
    ]);
    for (const r of rules) {
      expect(r.resources, JSON.stringify(r)).not.toContain("*");
      if (r.apiGroups?.includes("") || r.apiGroups?.includes("*")) expect(r.apiGroups, JSON.stringify(r)).not.toContain("*");
    }
    // Nor a binding to a role that could (cluster-admin, edit, admin, view-secrets...).
    const refs = docs.flatMap((d) => ((d as { roleRef?: { name: string } }).roleRef ? [(d as unknown as { roleRef: { name: string } }).roleRef.name] : []));
    expect(
      refs.every((n) => n.startsWith("backup-gate")),
      refs.join(", "),
    ).toBe(true);
  });
});
