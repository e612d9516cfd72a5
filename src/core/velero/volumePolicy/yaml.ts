// YAML to a plain tree, with yaml.v3's decoding rules for what the schema below needs:
// every non-null scalar is kept as its source text (yaml.v3 fills a Go string field with the
// scalar's text whatever its YAML type), null stays null, and maps whose keys are not all
// strings are remembered (yaml.v3 decodes them into map[interface{}]interface{}).
import { isAlias, isMap, isScalar, isSeq, type Document } from "yaml";

export type Plain = null | string | Plain[] | { [key: string]: Plain };

export class YamlShapeError extends Error {
  constructor(readonly path: string, message: string) {
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
  if (isScalar(node)) {
    const v: unknown = node.value;
    if (v === null || v === undefined) return null;
    if (typeof v === "string") return v;
    // A scalar that is not a string: a number, boolean or bigint (String gives its YAML text).
    // eslint-disable-next-line @typescript-eslint/no-base-to-string
    return node.source ?? String(v);
  }
  if (isSeq(node)) {
    return node.items.map((item, i) => toPlain(item, walk, `${path}[${i}]`, depth + 1));
  }
  if (isMap(node)) {
    const out: { [key: string]: Plain } = Object.create(null) as { [key: string]: Plain };
    let nonStringKey = false;
    for (const pair of node.items) {
      let key: unknown = pair.key;
      if (isAlias(key)) key = key.resolve(walk.doc);
      let keyText: string;
      if (key === null || key === undefined) {
        keyText = "";
        nonStringKey = true;
      } else if (isScalar(key)) {
        const kv: unknown = key.value;
        if (typeof kv === "string") keyText = kv;
        else {
          nonStringKey = true;
          // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a non-string scalar key
          keyText = kv === null || kv === undefined ? "" : (key.source ?? String(kv));
        }
      } else {
        throw new YamlShapeError(path, "a mapping key must be a scalar");
      }
      const at = path === "" ? keyText : `${path}.${keyText}`;
      if (Object.hasOwn(out, keyText)) throw new YamlShapeError(at, `mapping key "${keyText}" already defined`);
      out[keyText] = toPlain(pair.value, walk, at, depth + 1);
    }
    if (nonStringKey) walk.nonStringKeyMaps.add(out);
    return out;
  }
  throw new YamlShapeError(path, "unsupported YAML node");
}
