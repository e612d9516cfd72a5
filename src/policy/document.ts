import { parse as parseYaml, YAMLParseError } from "yaml";
import { parsePolicy, policySchema, type Policy } from "../core/policy.js";

// What a policy ConfigMap's content means, without I/O: the policy it sets, or why it is
// refused, naming the field (or the YAML position) at fault.

/**
 * The policy with no ConfigMap at start: Velero's own conflict rule (any shared namespace) and
 * one backup in flight, so no policy the ConfigMap could have held is stricter; the other keys
 * keep their defaults. Backups still run (one at a time), and nothing overlaps.
 */
export const FALLBACK_POLICY: Policy = policySchema.parse({ conflictLevel: "Namespace", maxConcurrentBackups: 1 });

export interface PolicyRefusal {
  ok: false;
  /** The ConfigMap key read, e.g. `policy.yaml`. */
  key: string;
  /**
   * Where in the document: a field path (`maxConcurrentBackups`, `priorities.manual`), a YAML
   * position (`line 2, column 5`), `(document)` for the whole document, or "" when the key is missing.
   */
  field: string;
  error: string;
}

export type PolicyDocumentResult = { ok: true; policy: Policy } | PolicyRefusal;

/** Reads `data[key]` of the policy ConfigMap: YAML, then the policy schema. */
export function readPolicyData(data: Readonly<Record<string, string>> | undefined, key: string): PolicyDocumentResult {
  const text = data?.[key];
  if (text === undefined) return { ok: false, key, field: "", error: `the ConfigMap has no key ${JSON.stringify(key)}` };
  return readPolicyText(text, key);
}

/** Parses one policy document (YAML or JSON). */
export function readPolicyText(text: string, key = "policy.yaml"): PolicyDocumentResult {
  let doc: unknown;
  try {
    // maxAliasCount (yaml's default, made explicit) refuses alias bombs; warnings are not errors.
    doc = parseYaml(text, { maxAliasCount: 100, logLevel: "error" });
  } catch (e) {
    if (e instanceof YAMLParseError) {
      const pos = e.linePos?.[0];
      const first =
        e.code === "MULTIPLE_DOCS"
          ? "more than one YAML document (---); the policy is one document"
          : (e.message.split("\n")[0] ?? e.message).replace(/ at line \d+, column \d+:?\s*$/, "");
      return { ok: false, key, field: pos ? `line ${pos.line}, column ${pos.col}` : "(document)", error: `not valid YAML: ${first}` };
    }
    return { ok: false, key, field: "(document)", error: `not valid YAML: ${(e as Error).message}` };
  }
  const result = parsePolicy(doc);
  if (result.ok) return result;
  // parsePolicy answers "field.path: message".
  const colon = result.error.indexOf(": ");
  let field = colon > 0 ? result.error.slice(0, colon) : "(document)";
  const error = colon > 0 ? result.error.slice(colon + 2) : result.error;
  // An unknown key is reported on its parent object; name the key itself.
  const unknown = /^Unrecognized keys?: "([^"]+)"/.exec(error)?.[1];
  if (unknown !== undefined) field = field === "(document)" ? unknown : `${field}.${unknown}`;
  return { ok: false, key, field, error };
}

/** One line for logs and events: `policy.yaml: maxConcurrentBackups: Invalid input: ...`. */
export function describeRefusal(r: PolicyRefusal): string {
  return r.field ? `${r.key}: ${r.field}: ${r.error}` : `${r.key}: ${r.error}`;
}
