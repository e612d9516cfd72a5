import { z } from "zod";

// admission.k8s.io/v1 AdmissionReview: the request the API server sends, read with zod
// (unknown fields tolerated), and the response the webhooks return.

const groupVersionResource = z.looseObject({ group: z.string(), version: z.string(), resource: z.string() });
const groupVersionKind = z.looseObject({ group: z.string(), version: z.string(), kind: z.string() });

export const admissionRequestSchema = z.looseObject({
  uid: z.string({ error: "request.uid is required" }).min(1, "request.uid is required"),
  kind: groupVersionKind,
  resource: groupVersionResource,
  subResource: z.string().nullish(),
  name: z.string().nullish(),
  namespace: z.string().nullish(),
  operation: z.enum(["CREATE", "UPDATE", "DELETE", "CONNECT"]),
  userInfo: z.looseObject({ username: z.string().nullish() }).nullish(),
  object: z.unknown().nullish(),
  oldObject: z.unknown().nullish(),
  dryRun: z.boolean().nullish(),
});

export const admissionReviewSchema = z.looseObject({
  apiVersion: z.literal("admission.k8s.io/v1", { error: (i) => `apiVersion must be admission.k8s.io/v1, got ${JSON.stringify(i.input)}` }),
  kind: z.literal("AdmissionReview", { error: (i) => `kind must be AdmissionReview, got ${JSON.stringify(i.input)}` }),
  request: admissionRequestSchema,
});

export type AdmissionRequest = z.output<typeof admissionRequestSchema>;

export type ParsedReview = { ok: true; request: AdmissionRequest } | { ok: false; message: string };

/**
 * Parses a request body. Keys that name prototypes (`__proto__` anywhere, `constructor`
 * holding `prototype`) are refused, as fastify's own parser does, but with the path named.
 * The walk is iterative: a body may nest thousands of levels deep.
 */
export function parseJsonBody(text: string): { ok: true; value: unknown } | { ok: false; message: string } {
  if (!/\S/.test(text)) return { ok: false, message: "the body is empty; expected an AdmissionReview as JSON" };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, message: `the body is not valid JSON: ${(e as Error).message}` };
  }
  // A key is spelled in the text as itself or with \u escapes (JSON has no other escape for a
  // letter or "_"): a body with neither spelling holds no forbidden key and skips the walk.
  if (!text.includes("\\u") && !text.includes("__proto__") && !text.includes("constructor")) return { ok: true, value };
  // Only objects and arrays are pushed, and array elements are checked by index (JSON arrays
  // hold no other keys): a list of 200,000 names costs one pass, not an allocation per name.
  const isNode = (x: unknown): x is object => x !== null && typeof x === "object";
  const cap = (at: string) => (at.length > 210 ? at.slice(0, 210) : at);
  const stack: { v: unknown; path: string }[] = [{ v: value, path: "" }];
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (!isNode(v)) continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) if (isNode(v[i])) stack.push({ v: v[i], path: cap(path ? `${path}.${i}` : String(i)) });
      continue;
    }
    for (const [k, x] of Object.entries(v)) {
      const at = path ? `${path}.${k}` : k;
      if (k === "__proto__" || (k === "constructor" && isNode(x) && Object.hasOwn(x, "prototype"))) {
        return { ok: false, message: `the body holds a forbidden prototype key at ${at.length > 200 ? `${at.slice(0, 200)}...` : at}` };
      }
      if (isNode(x)) stack.push({ v: x, path: cap(at) });
    }
  }
  return { ok: true, value };
}

/** Reads an AdmissionReview; the message names the first field at fault. */
export function parseReview(body: unknown): ParsedReview {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return { ok: false, message: "the body is not an AdmissionReview: expected a JSON object" };
  }
  const result = admissionReviewSchema.safeParse(body);
  if (result.success) return { ok: true, request: result.data.request };
  const issue = result.error.issues[0];
  const path = issue?.path.map(String).join(".") || "(body)";
  const message = issue?.code === "invalid_type" && issue.input === undefined ? `${path} is required` : (issue?.message ?? "invalid");
  return { ok: false, message: `invalid AdmissionReview: ${message.startsWith(path) ? message : `${path}: ${message}`}` };
}

/**
 * The most list entries a Backup's spec may hold in all (every list, nested ones included)
 * for backup-gate to judge it: Kubernetes is tested up to 10,000 namespaces per cluster, and
 * judging a spec holds the event loop in proportion to its lists (docs/performance.md). A
 * CREATE over it is refused before its scope is computed.
 */
export const MAX_SPEC_LIST_ENTRIES = 10_000;

export interface OversizedSpec {
  /** Entries over every list of the spec. */
  readonly total: number;
  /** The longest list, e.g. `spec.includedNamespaces`, and its length. */
  readonly field: string;
  readonly length: number;
}

/**
 * The spec's list entries counted without parsing it (one pass, nothing allocated per entry),
 * or undefined when they are within `max`.
 */
export function oversizedSpec(object: unknown, max = MAX_SPEC_LIST_ENTRIES): OversizedSpec | undefined {
  const spec = (object as { spec?: unknown } | null | undefined)?.spec;
  const isNode = (x: unknown): x is object => x !== null && typeof x === "object";
  if (!isNode(spec)) return undefined;
  let total = 0;
  let longest = { field: "spec", length: 0 };
  // Paths are capped: a spec may nest thousands of levels deep.
  const at = (path: string, step: string) => (path.length > 200 ? path : `${path}${step}`);
  const stack: { v: object; path: string }[] = [{ v: spec, path: "spec" }];
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (Array.isArray(v)) {
      total += v.length;
      if (v.length > longest.length) longest = { field: path, length: v.length };
      for (let i = 0; i < v.length; i++) if (isNode(v[i])) stack.push({ v: v[i] as object, path: at(path, `[${i}]`) });
      continue;
    }
    for (const [k, x] of Object.entries(v)) if (isNode(x)) stack.push({ v: x, path: at(path, `.${k}`) });
  }
  return total > max ? { total, ...longest } : undefined;
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly status?: { readonly code: number; readonly reason?: string; readonly message: string };
  readonly patch?: string;
  readonly patchType?: "JSONPatch";
  readonly warnings?: readonly string[];
  readonly auditAnnotations?: Readonly<Record<string, string>>;
}

export function review(response: AdmissionResponse) {
  return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response };
}

/** RFC 6901: `~` is `~0`, `/` is `~1`. */
export function escapePointer(token: string): string {
  return token.replace(/~/g, "~0").replace(/\//g, "~1");
}

export type JsonPatchOp = { op: "add"; path: string; value: unknown };

/** Adds (or overwrites) annotations, creating metadata.annotations when absent. */
export function annotationPatch(object: unknown, annotations: Readonly<Record<string, string>>): JsonPatchOp[] {
  const meta = (object as { metadata?: { annotations?: unknown } } | null)?.metadata;
  const existing = meta?.annotations;
  if (existing === null || existing === undefined || typeof existing !== "object") {
    return [{ op: "add", path: "/metadata/annotations", value: { ...annotations } }];
  }
  return Object.entries(annotations).map(([k, value]) => ({ op: "add", path: `/metadata/annotations/${escapePointer(k)}`, value }));
}

// The API server passes warnings on in `Warning` headers; the admission API asks to keep them
// to 120 characters where possible and truncates those over 256 and long lists.
export const WARNING_TARGET = 120;
export const WARNING_MAX = 256;
export const MAX_WARNINGS = 8;

/** Warnings as people read them: short, printable ASCII, at most MAX_WARNINGS. */
export function shortWarnings(warnings: readonly string[]): string[] {
  if (warnings.length <= MAX_WARNINGS) return warnings.map(shortWarning);
  // Only the warnings kept are cleaned: a wait behind a dozen backups has a dozen.
  const kept = warnings.slice(0, MAX_WARNINGS - 1).map(shortWarning);
  return [...kept, `and ${warnings.length - (MAX_WARNINGS - 1)} more (see the backup-gate.io/reason annotation)`];
}

// Cut, then cleaned: cleaning swaps each UTF-16 unit for one, so it moves no cut, and it reads at
// most WARNING_MAX characters instead of the whole warning (pinned in test/unit/reviewAllocations.test.ts).
export function shortWarning(w: string): string {
  return shortened(w).replace(/[^\x20-\x7e]/g, "?");
}

function shortened(s: string): string {
  if (s.length <= WARNING_TARGET) return s;
  // Cut at a clause boundary when one keeps the first clause whole.
  const cut = s.lastIndexOf("; ", WARNING_TARGET - 4);
  if (cut > 40) return `${s.slice(0, cut)}; ...`;
  return s.length <= WARNING_MAX ? s : `${s.slice(0, WARNING_MAX - 3)}...`;
}

/** Annotation values are kept readable: the reason and the waiting-for list are capped. */
export function capAnnotation(key: string, value: string, max = 2048): string {
  if (value.length <= max) return value;
  if (key.endsWith("/waiting-for")) {
    const names = value.split(",");
    const kept: string[] = [];
    let len = 0;
    for (const n of names) {
      if (len + n.length + 1 > max - 24) break;
      kept.push(n);
      len += n.length + 1;
    }
    return `${kept.join(",")},+${names.length - kept.length} more`;
  }
  return `${value.slice(0, max - 3)}...`;
}
