// The schema. Strict objects mirror yaml.v3's KnownFields(true), which Velero uses for the whole
// document and again for each policy's conditions. Nulls decode to Go zero values.
import { z } from "zod";
import { compareQuantities, formatQuantity, isZeroQuantity, parseQuantityExact, ZERO_QUANTITY, type Quantity } from "../quantity.js";
import { VOLUME_ACTION_TYPES, type CapacityRange, type VolumeActionType } from "./model.js";

const GO_STRING = "expected a string (a YAML scalar)";

/** A Go `string` field: any scalar's text; null is "". */
const goString = z
  .string({ error: GO_STRING })
  .nullable()
  .transform((v) => v ?? "");
/** A Go `[]string` field: null/absent is nil. */
const goStringList = z
  .array(goString, { error: "expected a list of strings" })
  .nullish()
  .transform((v) => v ?? undefined);
/** A Go `map[string]string` field: null/absent is nil; {} is an empty, non-nil map. */
const goStringMap = z
  .record(z.string(), goString, { error: "expected a map of string to string" })
  .nullish()
  .transform((v) => v ?? undefined);
/** A Go non-pointer struct field or slice element: null is the zero struct. */
const nullAsEmpty = (v: unknown): unknown => (v === null || v === undefined ? {} : v);

const nfsSchema = z.strictObject(
  { server: goString.optional(), path: goString.optional() },
  { error: "expected a map with server and/or path" },
);

const csiSchema = z
  .strictObject(
    { driver: goString.optional(), volumeAttributes: goStringMap },
    { error: "expected a map with driver and/or volumeAttributes" },
  )
  .superRefine((csi, ctx) => {
    // Velero: "csi driver should not be empty when filtering by volume attributes".
    if ((csi.driver ?? "") === "" && csi.volumeAttributes !== undefined) {
      ctx.addIssue({ code: "custom", path: ["driver"], message: "must not be empty when volumeAttributes is set" });
    }
  });

function parseCapacityText(text: string): { ok: true; range: CapacityRange } | { ok: false; error: string } {
  // Velero's parseCapacity: "" means ","; exactly one comma; each side trimmed; an empty side is 0.
  const cap = text === "" ? "," : text;
  const sides = cap.split(",");
  if (sides.length !== 2) return { ok: false, error: `wrong format "${text}": expected "min,max"` };
  const bounds: Quantity[] = [];
  for (const side of sides) {
    const trimmed = goTrimSpace(side);
    if (trimmed === "") {
      bounds.push(ZERO_QUANTITY);
      continue;
    }
    const q = parseQuantityExact(trimmed);
    if (q === undefined) return { ok: false, error: `"${trimmed}" is not a Kubernetes quantity` };
    bounds.push(q);
  }
  const [lower, upper] = bounds as [Quantity, Quantity];
  // Velero's capacityCondition.validate: upper >= lower, or lower set and upper open.
  if (!(compareQuantities(upper, lower) >= 0 || (!isZeroQuantity(lower) && isZeroQuantity(upper)))) {
    return {
      ok: false,
      error: `illegal range "${text}": max ${formatQuantity(upper)} is below min ${formatQuantity(lower)}`,
    };
  }
  return { ok: true, range: { lower, upper } };
}

/** Go's strings.TrimSpace (unicode.IsSpace; unlike JS trim, U+0085 is space and U+FEFF is not). */
function goTrimSpace(s: string): string {
  return s
    .replace(/^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u, "")
    .replace(/[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/u, "");
}

function describeGoType(v: unknown): string {
  if (v === null) return "<nil>";
  if (Array.isArray(v)) return "a list";
  return typeof v === "string" ? "a string" : typeof v;
}

function conditionsSchema(nonStringKeyMaps: WeakSet<object>) {
  return z.strictObject(
    {
      capacity: goString.optional().transform((text, ctx): CapacityRange => {
        const parsed = parseCapacityText(text ?? "");
        if (!parsed.ok) {
          ctx.addIssue({ code: "custom", message: parsed.error });
          return z.NEVER;
        }
        return parsed.range;
      }),
      storageClass: goStringList,
      nfs: nfsSchema.nullish().transform((v) => v ?? undefined),
      csi: csiSchema.nullish().transform((v) => v ?? undefined),
      volumeTypes: goStringList,
      // Velero checks pvcLabels before anything else: it must be a map with string keys (null is refused too).
      pvcLabels: z
        .unknown()
        .superRefine((v, ctx) => {
          if (v === undefined) return;
          const isMapValue = typeof v === "object" && v !== null && !Array.isArray(v);
          if (!isMapValue || nonStringKeyMaps.has(v)) {
            ctx.addIssue({
              code: "custom",
              message: `must be a map of string to string, got ${isMapValue ? "a map with non-string keys" : describeGoType(v)}`,
            });
          }
        })
        .pipe(goStringMap)
        .optional(),
      pvcPhase: goStringList,
    },
    { error: "expected a map of conditions" },
  );
}

const actionSchema = z.preprocess(
  nullAsEmpty,
  z.strictObject(
    {
      type: goString.optional().transform((t, ctx): VolumeActionType => {
        const type = t ?? "";
        if (!(VOLUME_ACTION_TYPES as readonly string[]).includes(type)) {
          ctx.addIssue({
            code: "custom",
            message: `invalid action type "${type}" (Velero 1.18 accepts ${VOLUME_ACTION_TYPES.join(", ")})`,
          });
          return z.NEVER;
        }
        return type as VolumeActionType;
      }),
      parameters: z.record(z.string(), z.unknown(), { error: "expected a map" }).nullish(),
    },
    { error: "expected a map with type and parameters" },
  ),
);

const includeExcludeSchema = z
  .strictObject(
    {
      includedClusterScopedResources: goStringList,
      excludedClusterScopedResources: goStringList,
      includedNamespaceScopedResources: goStringList,
      excludedNamespaceScopedResources: goStringList,
    },
    { error: "expected a map of resource lists" },
  )
  .superRefine((p, ctx) => {
    // Velero's IncludeExcludePolicy.Validate, per scope: no "*", nothing both included and excluded.
    for (const scope of ["ClusterScoped", "NamespaceScoped"] as const) {
      const incKey = `included${scope}Resources` as const;
      const excKey = `excluded${scope}Resources` as const;
      const inc = p[incKey] ?? [];
      const exc = p[excKey] ?? [];
      for (const [key, list] of [
        [incKey, inc],
        [excKey, exc],
      ] as const) {
        if (list.includes("*")) {
          ctx.addIssue({ code: "custom", path: [key], message: `"*" is not allowed in the policy's filters` });
        }
      }
      for (const item of [...new Set(exc)].sort()) {
        if (item !== "*" && inc.includes(item)) {
          ctx.addIssue({ code: "custom", path: [excKey], message: `"${item}" is also in ${incKey}` });
        }
      }
    }
  });

export function documentSchema(nonStringKeyMaps: WeakSet<object>) {
  const policySchema = z.preprocess(
    nullAsEmpty,
    z.strictObject(
      {
        conditions: conditionsSchema(nonStringKeyMaps).nullish(),
        action: actionSchema,
      },
      { error: "expected a map with conditions and action" },
    ),
  );
  return z.preprocess(
    nullAsEmpty,
    z.strictObject(
      {
        version: goString.optional().transform((v, ctx): "v1" => {
          if (v !== "v1") {
            ctx.addIssue({ code: "custom", message: `incompatible version "${v ?? ""}": Velero supports only "v1"` });
            return z.NEVER;
          }
          return v;
        }),
        volumePolicies: z.array(policySchema, { error: "expected a list of volume policies" }).nullish(),
        includeExcludePolicy: includeExcludeSchema.nullish(),
      },
      { error: "expected a map with version, volumePolicies and includeExcludePolicy" },
    ),
  );
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out;
}

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  const lines: string[] = [];
  for (const issue of issues) {
    const at = formatPath(issue.path);
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        lines.push(`${at === "" ? key : `${at}.${key}`}: unknown field`);
      }
    } else {
      lines.push(`${at === "" ? "(document)" : at}: ${issue.message}`);
    }
  }
  return lines.join("; ");
}
