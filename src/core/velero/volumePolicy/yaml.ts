// YAML to a plain tree, with yaml.v3's decoding rules for what the schema below needs:
// every non-null scalar is kept as its source text (yaml.v3 fills a Go string field with the
// scalar's text whatever its YAML type), null stays null, and maps whose keys are not all
// strings are remembered (yaml.v3 decodes them into map[interface{}]interface{}).
import { isAlias, isMap, isScalar, isSeq, type Document, type Scalar, type YAMLMap } from "yaml";

export type Plain = null | string | Plain[] | { [key: string]: Plain };

export class YamlShapeError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** Nodes visited after alias expansion; yaml.v3 likewise refuses "excessive aliasing". */
const MAX_NODES = 100_000;

interface Walk {
  readonly doc: Document;
  readonly nonStringKeyMaps: WeakSet<object>;
  nodes: number;
}

export function toPlain(node: unknown, walk: Walk, path: string, depth: number): Plain {
  if (depth > 200) throw new YamlShapeError(path, "YAML nested too deeply");
  if (++walk.nodes > MAX_NODES) throw new YamlShapeError(path, "YAML too large after alias expansion");
  if (isAlias(node)) return toPlain(node.resolve(walk.doc), walk, path, depth + 1);
  if (node === null || node === undefined) return null;
  if (isScalar(node)) return scalarText(node);
  if (isSeq(node)) return node.items.map((item, i) => toPlain(item, walk, `${path}[${i}]`, depth + 1));
  if (isMap(node)) return mapToPlain(node, walk, path, depth);
  throw new YamlShapeError(path, "unsupported YAML node");
}

/** A scalar as text: a string as is, anything else (number, boolean, bigint) as written in the YAML. */
function scalarText(node: Scalar): string | null {
  const v: unknown = node.value;
  if (v === null || v === undefined) return null;
  if (typeof v === "string") return v;
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a number, boolean or bigint
  return node.source ?? String(v);
}

function mapToPlain(node: YAMLMap, walk: Walk, path: string, depth: number): Plain {
  const out: { [key: string]: Plain } = Object.create(null) as { [key: string]: Plain };
  let nonStringKey = false;
  for (const pair of node.items) {
    const key = keyOf(pair.key, walk, path);
    nonStringKey ||= key.nonString;
    const at = path === "" ? key.text : `${path}.${key.text}`;
    if (Object.hasOwn(out, key.text)) throw new YamlShapeError(at, `mapping key "${key.text}" already defined`);
    out[key.text] = toPlain(pair.value, walk, at, depth + 1);
  }
  if (nonStringKey) walk.nonStringKeyMaps.add(out);
  return out;
}

/** A mapping key's text, and whether it was something else than a string (Velero's decoder tells them apart). */
function keyOf(node: unknown, walk: Walk, path: string): { text: string; nonString: boolean } {
  const key = isAlias(node) ? node.resolve(walk.doc) : node;
  if (key === null || key === undefined) return { text: "", nonString: true };
  if (!isScalar(key)) throw new YamlShapeError(path, "a mapping key must be a scalar");
  const kv: unknown = key.value;
  if (typeof kv === "string") return { text: kv, nonString: false };
  return { text: scalarText(key) ?? "", nonString: true };
}
