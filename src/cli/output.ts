import { stringify } from "yaml";
import { UsageError } from "./readInput.js";

// kubectl's `-o`: the same object as JSON or YAML, so either parses back to the same value.

export type Format = "text" | "wide" | "json" | "yaml";

export const OUTPUT_FORMATS = ["json", "yaml", "wide"] as const;

/** A document for `-o json` or `-o yaml`; undefined for the text forms. */
export function asDocument(value: unknown, format: Format): string | undefined {
  if (format === "json") return JSON.stringify(value, null, 2);
  if (format === "yaml") return stringify(value, { lineWidth: 0 }).trimEnd();
  return undefined;
}

/** `-o` with `--json` kept as the older spelling of `-o json`. */
export function formatOf(o: { output?: string; json?: boolean }): Format {
  if (o.output !== undefined && o.json && o.output !== "json") throw new UsageError(`--json and -o ${o.output} ask for two formats; give one`);
  if (o.output !== undefined) return o.output as Format;
  return o.json ? "json" : "text";
}
