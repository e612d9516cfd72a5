import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY } from "../../src/core/policy.js";
import { describeRefusal, readPolicyData, readPolicyText } from "../../src/policy/document.js";

const refusal = (text: string) => {
  const r = readPolicyText(text);
  if (r.ok) throw new Error(`accepted: ${text}`);
  return describeRefusal(r);
};

describe("policy ConfigMap documents", () => {
  it("reads a good document, an empty one and JSON", () => {
    const r = readPolicyData({ "policy.yaml": "conflictLevel: Namespace\nmaxConcurrentBackups: 2\npriorities:\n  manual: 20\n" }, "policy.yaml");
    expect(r.ok && r.policy).toMatchObject({ conflictLevel: "Namespace", maxConcurrentBackups: 2, priorities: { manual: 20, scheduled: 0 } });
    const empty = readPolicyText("");
    expect(empty.ok && empty.policy).toEqual(DEFAULT_POLICY);
    const comments = readPolicyText("# nothing to change\n");
    expect(comments.ok && comments.policy).toEqual(DEFAULT_POLICY);
    const json = readPolicyText('{"serialWorkloads": "Replace"}');
    expect(json.ok && json.policy.serialWorkloads).toBe("Replace");
  });

  it("names the field at fault in schema errors", () => {
    expect(refusal("maxConcurrentBackups: lots")).toMatch(/^policy\.yaml: maxConcurrentBackups: .*expected number/);
    expect(refusal("maxConcurrentBackups: 0")).toMatch(/^policy\.yaml: maxConcurrentBackups: /);
    expect(refusal("priorities:\n  manual: high")).toMatch(/^policy\.yaml: priorities\.manual: /);
    expect(refusal("serialWorkloads: Sometimes")).toMatch(/^policy\.yaml: serialWorkloads: .*Allow/);
    expect(refusal("exclusiveResources: [1]")).toMatch(/^policy\.yaml: exclusiveResources\.0: /);
  });

  it("names an unknown key itself", () => {
    expect(refusal("maxConcurrentBackup: 2")).toMatch(/^policy\.yaml: maxConcurrentBackup: Unrecognized key/);
    expect(refusal("priorities:\n  urgent: 5")).toMatch(/^policy\.yaml: priorities\.urgent: Unrecognized key/);
  });

  it("gives the line and column of YAML errors", () => {
    expect(refusal("maxConcurrentBackups: [1\nconflictLevel: Namespace")).toMatch(/^policy\.yaml: line 2, column 1: not valid YAML: /);
    expect(refusal("a: 1\n---\nb: 2")).toMatch(/^policy\.yaml: line \d+, column \d+: not valid YAML: more than one YAML document/);
    expect(refusal("a: 1\na: 2")).toMatch(/^policy\.yaml: line 2, column 1: not valid YAML: .*unique/i);
  });

  it("refuses a document that is not a mapping", () => {
    expect(refusal("lots")).toMatch(/^policy\.yaml: \(document\): .*expected object/);
    expect(refusal("- a\n- b")).toMatch(/^policy\.yaml: \(document\): /);
  });

  it("refuses a ConfigMap without the key, naming the key", () => {
    const r = readPolicyData({ "policy.yml": "maxConcurrentBackups: 2" }, "policy.yaml");
    expect(r.ok).toBe(false);
    expect(!r.ok && describeRefusal(r)).toBe('policy.yaml: the ConfigMap has no key "policy.yaml"');
    expect(readPolicyData(undefined, "custom.yaml").ok).toBe(false);
  });
});
