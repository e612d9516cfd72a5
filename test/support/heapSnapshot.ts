import { getHeapSnapshot } from "node:v8";

/** One node of a V8 heap snapshot: its type ("string", "object", "array", ...), its name and its own size. */
export interface HeapNode {
  readonly type: string;
  readonly name: string;
  readonly selfSize: number;
}

/** Takes a heap snapshot of this process (what a test cannot see from inside its heap) and visits each node. */
export async function eachHeapNode(visit: (node: HeapNode) => void): Promise<void> {
  const chunks: string[] = [];
  await new Promise<void>((resolve, reject) =>
    getHeapSnapshot()
      .on("data", (c: Buffer) => chunks.push(c.toString("utf8")))
      .on("end", () => resolve())
      .on("error", reject),
  );
  const snap = JSON.parse(chunks.join("")) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
  const fields = snap.snapshot.meta.node_fields;
  const [typeAt, nameAt, sizeAt] = [fields.indexOf("type"), fields.indexOf("name"), fields.indexOf("self_size")];
  const types = snap.snapshot.meta.node_types[0];
  for (let at = 0; at < snap.nodes.length; at += fields.length)
    visit({ type: types[snap.nodes[at + typeAt]!]!, name: snap.strings[snap.nodes[at + nameAt]!]!, selfSize: snap.nodes[at + sizeAt]! });
}
