import { z } from "zod";
import type { Labels } from "../model.js";

// metav1.LabelSelector, as Backups, hooks and volume policies carry it.
const requirement = z
  .object({
    key: z.string().min(1),
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
    values: z.array(z.string()).optional(),
  })
  .superRefine((r, ctx) => {
    const needsValues = r.operator === "In" || r.operator === "NotIn";
    const count = r.values?.length ?? 0;
    if (needsValues && count === 0)
      ctx.addIssue({ code: "custom", path: ["values"], message: `operator ${r.operator} needs at least one value` });
    if (!needsValues && count > 0) ctx.addIssue({ code: "custom", path: ["values"], message: `operator ${r.operator} takes no values` });
  });

export const labelSelectorSchema = z.object({
  matchLabels: z.record(z.string(), z.string()).nullish(),
  matchExpressions: z.array(requirement).nullish(),
});
export type LabelSelector = z.infer<typeof labelSelectorSchema>;

const NO_VALUES: readonly string[] = Object.freeze([]);
const NO_EXPRESSIONS: readonly NonNullable<LabelSelector["matchExpressions"]>[number][] = Object.freeze([]);

/** True when the labels satisfy every term of the selector; an empty selector matches everything. */
export function selectorMatches(selector: LabelSelector, labels: Labels): boolean {
  // Asked for every pod of a candidate in a review: for-in reads the keys without making the
  // pairs Object.entries would (the selector is parsed JSON: own keys only).
  const matchLabels = selector.matchLabels;
  if (matchLabels) for (const key in matchLabels) if (labels[key] !== matchLabels[key]) return false;
  for (const { key, operator, values = NO_VALUES } of selector.matchExpressions ?? NO_EXPRESSIONS) {
    const has = Object.prototype.hasOwnProperty.call(labels, key);
    const value = labels[key];
    const ok =
      operator === "In"
        ? has && values.includes(value as string)
        : operator === "NotIn"
          ? !has || !values.includes(value as string)
          : operator === "Exists"
            ? has
            : !has;
    if (!ok) return false;
  }
  return true;
}
