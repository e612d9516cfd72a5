import { describe, expect, it } from "vitest";
import { z } from "zod";
import { backupSpecSchema, parseBackupSpec } from "../../src/core/velero/backupSpec.js";

// A Backup's spec as the core reads it: JSON's nulls and absent fields read as Velero reads
// them, and the schema kept on zod's compiled path (no transform: docs/performance.md, "A
// spec's defaults").

const parsed = (raw: unknown) => {
  const result = parseBackupSpec(raw);
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.spec;
};

describe("a spec's defaults", () => {
  it.each<{ case: string; raw: unknown; expected: Record<string, unknown> }>([
    {
      case: "an absent spec: every list empty, every flag and selector absent, no hooks",
      raw: undefined,
      expected: {
        includedNamespaces: [],
        excludedNamespaces: [],
        includedResources: [],
        excludedNamespaceScopedResources: [],
        includeClusterResources: undefined,
        labelSelector: undefined,
        orLabelSelectors: undefined,
        snapshotVolumes: undefined,
        volumeGroupSnapshotLabelKey: undefined,
        hooks: { resources: [] },
        resourcePolicy: undefined,
      },
    },
    {
      case: "nulls read as absent",
      raw: { includedNamespaces: null, snapshotVolumes: null, labelSelector: null, hooks: null, resourcePolicy: null },
      expected: { includedNamespaces: [], snapshotVolumes: undefined, labelSelector: undefined, hooks: { resources: [] }, resourcePolicy: undefined },
    },
    {
      case: "an empty group label key reads as none",
      raw: { volumeGroupSnapshotLabelKey: "" },
      expected: { volumeGroupSnapshotLabelKey: undefined },
    },
    {
      case: "values given are kept (positive control)",
      raw: { includedNamespaces: ["shop"], snapshotVolumes: false, volumeGroupSnapshotLabelKey: "group", labelSelector: { matchLabels: { app: "db" } } },
      expected: { includedNamespaces: ["shop"], snapshotVolumes: false, volumeGroupSnapshotLabelKey: "group", labelSelector: { matchLabels: { app: "db" } } },
    },
    {
      case: "a hook's null lists read as empty, its null selector as absent",
      raw: { hooks: { resources: [{ name: "h", includedNamespaces: null, labelSelector: null, pre: null }] } },
      expected: {
        hooks: {
          resources: [
            {
              name: "h",
              includedNamespaces: [],
              excludedNamespaces: [],
              includedResources: [],
              excludedResources: [],
              labelSelector: undefined,
              pre: [],
              post: [],
            },
          ],
        },
      },
    },
    {
      case: "fields the core does not read are dropped",
      raw: { ttl: "720h0m0s", snapshotVolumes: true },
      expected: { ttl: undefined, snapshotVolumes: true },
    },
  ])("$case", ({ raw, expected }) => {
    const spec = parsed(raw) as Record<string, unknown>;
    for (const [field, value] of Object.entries(expected)) expect(spec[field], field).toEqual(value);
  });

  it("a field of the wrong type is still refused, naming it", () => {
    expect(parseBackupSpec({ includedNamespaces: "shop" })).toMatchObject({ ok: false, errors: [{ field: "spec.includedNamespaces" }] });
  });
});

/** The schema types under `schema` that run outside zod's compiled object parser. */
function pipesIn(schema: z.core.$ZodType): string[] {
  const found: string[] = [];
  const seen = new Set<unknown>();
  const walk = (s: unknown, path: string) => {
    if (!s || typeof s !== "object" || seen.has(s)) return;
    seen.add(s);
    const def = (s as z.core.$ZodType)._zod?.def as unknown as Record<string, unknown> | undefined;
    if (!def) return;
    if (def.type === "pipe" || def.type === "transform") found.push(path || "(root)");
    const shape = def.shape as Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(shape ?? {})) walk(v, `${path}.${k}`);
    for (const k of ["innerType", "element", "catchall", "keyType", "valueType", "in", "out"]) walk(def[k], path);
    for (const o of (def.options as unknown[] | undefined) ?? []) walk(o, path);
  };
  walk(schema, "");
  return [...new Set(found)];
}

describe("the spec schema stays on zod's compiled path", () => {
  it("holds no transform or pipe", () => {
    expect(pipesIn(backupSpecSchema)).toEqual([]);
  });

  it("a transform is found where there is one (positive control)", () => {
    const withTransform = z.looseObject({
      a: z.object({
        b: z
          .array(z.string())
          .nullish()
          .transform((v) => v ?? []),
      }),
    });
    expect(pipesIn(withTransform)).toEqual([".a.b"]);
  });
});
