// Summarises a V8 heap snapshot (as written by `node --heapsnapshot-signal`) without DevTools:
// self size by node type and constructor, and the strings held most often (duplicates are
// what interning can save).
//
//   node --max-old-space-size=4096 --import tsx bench/heapSummary.ts FILE.heapsnapshot [TOP]

import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export interface HeapSummary {
  totalBytes: number;
  groups: { type: string; name: string; count: number; bytes: number }[];
  strings: { value: string; count: number; bytes: number }[];
  /** Strings by shape (digits and hex runs blanked): what kind of value holds the memory. */
  shapes: { shape: string; count: number; bytes: number }[];
}

const STRING_TYPES = new Set(["string", "concatenated string", "sliced string"]);

export function summarise(s: Snapshot, top = 25): HeapSummary {
  const fields = s.snapshot.meta.node_fields;
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f)) as [number, number, number];
  const types = s.snapshot.meta.node_types[0];
  const groups = new Map<string, { type: string; name: string; count: number; bytes: number }>();
  const strings = new Map<string, { count: number; bytes: number }>();
  const shapes = new Map<string, { count: number; bytes: number }>();
  let totalBytes = 0;
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + typeAt] as number] as string;
    const name = s.strings[s.nodes[i + nameAt] as number] as string;
    const bytes = s.nodes[i + sizeAt] as number;
    totalBytes += bytes;
    const isString = STRING_TYPES.has(type);
    // Strings and closures are grouped by kind; their names would make one group each.
    const groupName = isString ? "" : type === "closure" || type === "code" || type === "hidden" ? name.slice(0, 60) : name;
    const key = `${type}\u0000${groupName}`;
    const g = groups.get(key) ?? { type, name: groupName, count: 0, bytes: 0 };
    g.count++;
    g.bytes += bytes;
    groups.set(key, g);
    if (type === "string") {
      // a cons or sliced string's name is its kind, not its value
      const v = strings.get(name) ?? { count: 0, bytes: 0 };
      v.count++;
      v.bytes += bytes;
      strings.set(name, v);
      const shape = name.length > 80 ? "(longer than 80)" : name.replace(/[0-9a-f]{8,}/g, "<hex>").replace(/[0-9]+/g, "#");
      const sh = shapes.get(shape) ?? { count: 0, bytes: 0 };
      sh.count++;
      sh.bytes += bytes;
      shapes.set(shape, sh);
    }
  }
  return {
    totalBytes,
    groups: [...groups.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top),
    shapes: [...shapes.entries()]
      .map(([shape, v]) => ({ shape, ...v }))
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, top),
    strings: [...strings.entries()]
      .map(([value, v]) => ({ value, ...v }))
      .filter((v) => v.count > 1)
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, top),
  };
}

function main(): void {
  const [file, topArg] = process.argv.slice(2);
  if (!file) throw new Error("usage: heapSummary.ts FILE.heapsnapshot [TOP]");
  const sum = summarise(JSON.parse(readFileSync(file, "utf8")) as Snapshot, Number(topArg ?? 25));
  const mib = (b: number) => (b / 1024 / 1024).toFixed(1).padStart(8);
  console.log(`total self size ${mib(sum.totalBytes)} MiB`);
  console.log("\n     MiB      count  type / constructor");
  for (const g of sum.groups) console.log(`${mib(g.bytes)} ${String(g.count).padStart(10)}  ${g.type} ${g.name}`);
  console.log("\nstrings by shape (digits #, hex runs <hex>)\n     MiB      count  shape");
  for (const v of sum.shapes) console.log(`${mib(v.bytes)} ${String(v.count).padStart(10)}  ${JSON.stringify(v.shape)}`);
  console.log("\nstrings held more than once (value: copies)\n     MiB     copies  value");
  for (const v of sum.strings) console.log(`${mib(v.bytes)} ${String(v.count).padStart(10)}  ${JSON.stringify(v.value.slice(0, 80))}`);
}

main();
