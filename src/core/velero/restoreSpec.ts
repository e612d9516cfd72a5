import { z } from "zod";

// The fields of a velero.io/v1 Restore's spec that say where it writes (Velero 1.18
// pkg/apis/velero/v1/restore_types.go). Read by the snapshot reader, the informers and the
// webhook alike, so a spec is judged the same way wherever it comes from.

export interface RestoreSpec {
  readonly backupName: string;
  readonly scheduleName: string;
  readonly includedNamespaces: readonly string[];
  readonly excludedNamespaces: readonly string[];
  readonly namespaceMapping: Readonly<Record<string, string>>;
}

const names = z
  .array(z.string())
  .nullish()
  .transform((v) => v ?? []);
const restoreSpecSchema = z.looseObject({
  backupName: z.string().nullish(),
  scheduleName: z.string().nullish(),
  includedNamespaces: names,
  excludedNamespaces: names,
  namespaceMapping: z
    .record(z.string(), z.string())
    .nullish()
    .transform((v) => v ?? {}),
});

export type RestoreSpecResult = { ok: true; spec: RestoreSpec } | { ok: false; error: string };

/** The spec, or the first field at fault ("spec.namespaceMapping.shop: expected string ..."). */
export function readRestoreSpec(raw: unknown): RestoreSpecResult {
  const result = restoreSpecSchema.safeParse(raw ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = (issue?.path ?? []).map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
    return { ok: false, error: `spec${path}: ${issue?.message ?? "invalid"}` };
  }
  const s = result.data;
  return {
    ok: true,
    spec: {
      backupName: s.backupName ?? "",
      scheduleName: s.scheduleName ?? "",
      includedNamespaces: s.includedNamespaces,
      excludedNamespaces: s.excludedNamespaces,
      namespaceMapping: s.namespaceMapping,
    },
  };
}
