import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { KEYS } from "../../src/core/model.js";
import { DEFAULT_POLICY, policySchema } from "../../src/core/policy.js";
import { NUDGED_AT, PROMOTED_AT, PROMOTION_SEAL, TAKEN_BACK } from "../../src/core/decision/writes.js";
import { exportedMetrics, familyOf, type Exported } from "./support/exportedMetrics.js";

// The README's reference tables against the code they describe: the policy table lists exactly
// the schema's keys with their real defaults, the metrics table every metric the registry
// exports, the annotations table every annotation the gate reads or writes; and links resolve.

const README = readFileSync("README.md", "utf8");

/** The rows `| \`first\` | ... |` of the table under the `## heading` section. */
function tableRows(heading: string): string[][] {
  const start = README.indexOf(`\n## ${heading}\n`);
  expect(start, `README section ## ${heading}`).toBeGreaterThanOrEqual(0);
  const end = README.indexOf("\n## ", start + 1);
  return README.slice(start, end < 0 ? undefined : end)
    .split("\n")
    .filter((l) => /^\| `/.test(l))
    .map((l) =>
      l
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((c) => c.trim()),
    );
}

/** Leaf keys of the default policy, dotted: nested objects are walked, empty ones are values. */
function leaves(o: object, prefix = ""): [string, unknown][] {
  return Object.entries(o).flatMap(([k, v]) =>
    v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length > 0 ? leaves(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]],
  );
}

const code = (v: unknown) => `\`${typeof v === "string" ? v : JSON.stringify(v)}\``;

describe("README policy reference", () => {
  it("lists exactly the schema's keys, each with its real default", () => {
    const rows = tableRows("Policy reference");
    const documented = new Map(rows.map(([key, def]) => [key?.replaceAll("`", ""), def]));
    // Optional sections and keys (absent from the default policy) say what their absence means.
    const optional: Record<string, string> = { tenants: "absent", "tenants.label": "unset", "tenants.maxInFlightPerTenant": "unset", restores: "absent" };
    const budgetLimits = ["backupsPerStorageLocation", "snapshotsPerDriver", "snapshotsPerStorageClass", "fsBackupsPerNode"];
    Object.assign(optional, { budgets: "absent" }, Object.fromEntries(budgetLimits.map((k) => [`budgets.${k}`, "unset"])));
    const withSections = policySchema.parse({ tenants: {}, budgets: {}, restores: {} });
    const inSection = ([k]: [string, unknown]) => k.startsWith("tenants.") || k.startsWith("budgets.") || k.startsWith("restores.");
    const schema = new Map([...leaves(DEFAULT_POLICY), ...leaves(withSections).filter(inSection)].map(([k, v]) => [k, code(v)]));
    // Each start window's keys, as `windows[].key`, with the defaults a window gets.
    const window = policySchema.parse({ windows: [{ allow: [{ start: "22:00", end: "05:00" }] }] }).windows?.[0] ?? {};
    for (const [k, v] of leaves(window)) schema.set(`windows[].${k}`, code(v));
    Object.assign(optional, {
      windows: "absent",
      "windows[].name": "unset",
      "windows[].allow": "unset",
      "windows[].blackout": "unset",
      "windows[].maxWaitSeconds": "unset",
    });
    for (const [key, absent] of Object.entries(optional)) schema.set(key, absent);
    expect([...documented.keys()].sort()).toEqual([...schema.keys()].sort());
    for (const [key, def] of schema) expect(documented.get(key), key).toBe(def);
    expect(rows.every((r) => (r[2] ?? "").length > 10)).toBe(true);
  });
});

describe("README metrics", () => {
  let exported: Exported;
  beforeAll(async () => {
    exported = await exportedMetrics();
  });

  it("lists every metric family the gate exports (the runtime's as backup_gate_process_* and backup_gate_nodejs_*)", () => {
    const listed = new Set(tableRows("What people see").flatMap((r) => [...(r[0] ?? "").matchAll(/`(backup_gate_[a-z_]+)/g)].map((m) => m[1])));
    const runtime = (f: string) => ["backup_gate_process_", "backup_gate_nodejs_"].some((prefix) => f.startsWith(prefix) && listed.has(prefix));
    const missing = [...exported.families.keys()].filter((f) => !listed.has(f) && !runtime(f));
    expect(missing).toEqual([]);
  });

  it("names no metric the gate does not export", () => {
    const named = new Set([...README.matchAll(/\bbackup_gate_[a-z_]*[a-z]\b/g)].map((m) => m[0]));
    const unknown = [...named].filter((n) => !familyOf(n, exported.families) && !/^backup_gate_(process|nodejs)$/.test(n));
    expect(unknown).toEqual([]);
  });
});

describe("README annotations", () => {
  it("lists every backup-gate annotation and label the gate reads or writes", () => {
    const listed = tableRows("What people see")
      .map((r) => r[0] ?? "")
      .join(" ");
    const ours = [...Object.values(KEYS), PROMOTED_AT, NUDGED_AT, PROMOTION_SEAL, TAKEN_BACK].filter((k) => k.startsWith("backup-gate.io/"));
    expect(ours.filter((k) => !listed.includes(`\`${k}\``))).toEqual([]);
  });
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replaceAll(" ", "-");
const anchors = (file: string) => new Set([...readFileSync(file, "utf8").matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1] as string)));

describe("README links", () => {
  it.each([
    { file: "README.md" },
    { file: "docs/reference.md" },
    { file: "docs/monitoring.md" },
    { file: "docs/gitops.md" },
    { file: "charts/backup-gate/README.md" },
  ])("every relative link and anchor in $file resolves", ({ file }) => {
    const text = readFileSync(file, "utf8");
    const broken: string[] = [];
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!target || /^[a-z]+:/.test(target)) continue;
      const [path, anchor] = target.split("#");
      const resolved = path ? join(dirname(file), path) : file;
      if (!existsSync(resolved)) broken.push(target);
      else if (anchor && resolved.endsWith(".md") && !anchors(resolved).has(anchor)) broken.push(target);
    }
    expect(broken).toEqual([]);
  });
});
