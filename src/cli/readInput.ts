import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

/** A failure the user can act on: printed as one line, exit code 2, never a stack trace. */
export class UsageError extends Error {}

/** Reads a YAML or JSON file holding one document. */
export function readDocument(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // Warnings (an unknown tag, say) would go to stderr as process warnings; errors are enough.
  const docs = parseAllDocuments(text, { logLevel: "error" });
  if (!Array.isArray(docs)) throw new UsageError(`${what} ${path} is empty`);
  const [doc, ...rest] = docs;
  if (!doc || rest.length > 0) throw new UsageError(`${what} ${path} must hold exactly one YAML or JSON document, found ${docs.length}`);
  const error = doc.errors[0];
  if (error) {
    const pos = error.linePos?.[0];
    throw new UsageError(`${what} ${path}${pos ? `:${pos.line}:${pos.col}` : ""} is not valid YAML or JSON: ${error.message.split("\n")[0]}`);
  }
  // toJS throws on an alias without its anchor, and on alias expansion past maxAliasCount
  // ("billion laughs").
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new UsageError(`${what} ${path} cannot be read as YAML: ${(e as Error).message.split("\n")[0]}`);
  }
}
