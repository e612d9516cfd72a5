// Velero v1.18.1 resource policies: internal/resourcepolicies (resource_policies.go,
// volume_resources.go, volume_resources_validator.go, volume_types_conditions.go) and
// internal/volumehelper/volume_policy_helper.go.

import fc from "fast-check";
import { stringify } from "yaml";
import { describe, expect, it } from "vitest";
import type { ConfigMapInfo, PodVolume, PvcInfo, PvInfo } from "../../src/core/model.js";
import { parseQuantityExact } from "../../src/core/velero/quantity.js";
import {
  factsForPodVolume,
  factsForPvc,
  factsFromPodVolume,
  factsFromPv,
  factsFromPvcOnly,
  matchVolumePolicy,
  parseVolumePolicies,
  parseVolumePoliciesYaml,
  resourcePolicyConfigMapName,
  veleroPodVolumeType,
  veleroPvVolumeType,
  type VolumeFacts,
  type VolumePolicies,
} from "../../src/core/velero/volumePolicy/index.js";

const cm = (data: Record<string, string>): ConfigMapInfo => ({ namespace: "velero", name: "policies", data });

function policies(yaml: string): VolumePolicies {
  const r = parseVolumePoliciesYaml(yaml);
  if (!r.ok) throw new Error(r.error);
  return r.policies;
}

/** One volume policy with these conditions (a YAML flow map) and action skip. */
const one = (conditions: string): VolumePolicies => policies(`version: v1\nvolumePolicies:\n- conditions: ${conditions}\n  action: {type: skip}\n`);

const q = (s: string) => {
  const v = parseQuantityExact(s);
  if (v === undefined) throw new Error(s);
  return v;
};

const facts = (f: Partial<Omit<VolumeFacts, "capacity">> & { capacity?: string } = {}): VolumeFacts => {
  const { capacity, ...rest } = f;
  return { capacity: q(capacity ?? "0"), storageClass: "", volumeType: "", pvcPhase: "", ...rest };
};

const pv = (over: Partial<PvInfo> = {}): PvInfo => ({
  name: "pv-1",
  labels: {},
  annotations: {},
  capacity: "10Gi",
  storageClassName: "gp3",
  claimRef: { namespace: "shop", name: "data" },
  type: "csi",
  csi: { driver: "ebs.csi.aws.com", volumeAttributes: { type: "gp3" } },
  deleting: false,
  ...over,
});

const pvc = (over: Partial<PvcInfo> = {}): PvcInfo => ({
  namespace: "shop",
  name: "data",
  labels: { app: "db" },
  annotations: {},
  phase: "Bound",
  volumeName: "pv-1",
  storageClassName: "gp3",
  deleting: false,
  ...over,
});

describe("parseVolumePolicies: reading the ConfigMap (getResourcePoliciesFromConfig)", () => {
  const valid = "version: v1\nvolumePolicies: []\n";

  it.each([
    ["no data key", {}, "data: a resource-policy ConfigMap must hold exactly one key, found 0"],
    ["two data keys", { a: valid, b: valid }, "data: a resource-policy ConfigMap must hold exactly one key, found 2"],
  ])("Velero refuses a ConfigMap with %s (len(cm.Data) != 1)", (_name, data, error) => {
    expect(parseVolumePolicies(cm(data))).toEqual({ ok: false, error });
  });

  it("reads the one key whatever its name", () => {
    expect(parseVolumePolicies(cm({ "anything.yaml": valid }))).toEqual({
      ok: true,
      policies: { version: "v1", volumePolicies: [] },
    });
  });

  it("names the data key in document-level errors", () => {
    expect(parseVolumePolicies(cm({ "policy.yaml": "" }))).toEqual({
      ok: false,
      error: "data.policy.yaml: no YAML document (Velero: EOF)",
    });
  });

  it.each([
    ["configmap", "configmap", "p"],
    ["kind matched ignoring case (strings.EqualFold)", "ConfigMap", "p"],
    ["any other kind means no policy at all", "Secret", undefined],
  ])("spec.resourcePolicy: %s", (_name, kind, expected) => {
    expect(resourcePolicyConfigMapName({ kind, name: "p" })).toBe(expected);
  });

  it("spec.resourcePolicy absent: no policy", () => {
    expect(resourcePolicyConfigMapName(undefined)).toBeUndefined();
  });
});

describe("parseVolumePolicies: what Velero accepts", () => {
  it("a full policy: conditions, actions, parameters and includeExcludePolicy", () => {
    const p = policies(`
version: v1
volumePolicies:
  - conditions:
      capacity: "10Gi,100Gi"
      storageClass: [gp2, gp3]
      csi: {driver: ebs.csi.aws.com, volumeAttributes: {type: gp3}}
      pvcLabels: {app: db}
      pvcPhase: [Bound]
    action: {type: snapshot}
  - conditions: {nfs: {server: 10.0.0.1, path: /export}, volumeTypes: [nfs, emptyDir]}
    action: {type: fs-backup}
  - conditions: {}
    action: {type: custom, parameters: {driver: x, retries: 3, tags: [a]}}
includeExcludePolicy:
  includedClusterScopedResources: [storageclasses]
  excludedNamespaceScopedResources: [secrets]
`);
    expect(p.volumePolicies).toHaveLength(3);
    expect(p.volumePolicies[0]).toEqual({
      conditions: {
        capacity: { lower: q("10Gi"), upper: q("100Gi") },
        storageClass: ["gp2", "gp3"],
        csi: { driver: "ebs.csi.aws.com", volumeAttributes: { type: "gp3" } },
        volumeTypes: [],
        pvcLabels: { app: "db" },
        pvcPhase: ["Bound"],
      },
      action: { type: "snapshot" },
    });
    expect(p.volumePolicies[1]?.conditions.nfs).toEqual({ server: "10.0.0.1", path: "/export" });
    expect(p.volumePolicies[1]?.conditions.volumeTypes).toEqual(["nfs", "emptyDir"]);
    // Parameters keep their YAML types: plugins compare them with Go's ==.
    expect(p.volumePolicies[2]?.action).toEqual({ type: "custom", parameters: { driver: "x", retries: 3, tags: ["a"] } });
    expect(p.includeExcludePolicy).toEqual({
      includedClusterScopedResources: ["storageclasses"],
      excludedClusterScopedResources: [],
      includedNamespaceScopedResources: [],
      excludedNamespaceScopedResources: ["secrets"],
    });
  });

  it.each([
    ["version only: no volume policies", "version: v1"],
    ["volumePolicies: null is nil", "version: v1\nvolumePolicies:"],
    ["includeExcludePolicy: null is nil", "version: v1\nincludeExcludePolicy:"],
    ["JSON is YAML", '{"version": "v1", "volumePolicies": []}'],
    ["only the first YAML document is read (yaml.v3 Decoder.Decode)", "version: v1\n---\nnot: [valid, for, velero]"],
  ])("%s", (_name, yaml) => {
    expect(parseVolumePoliciesYaml(yaml)).toMatchObject({ ok: true, policies: { version: "v1" } });
  });

  it.each(["skip", "snapshot", "fs-backup", "custom"])("action type %s is valid in 1.18.1 (custom is new in 1.18.1)", (type) => {
    expect(policies(`version: v1\nvolumePolicies: [{action: {type: ${type}}}]`).volumePolicies[0]?.action.type).toBe(type);
  });

  it.each([
    ["missing conditions: every condition is empty", "{action: {type: skip}}"],
    ["conditions: null", "{conditions: null, action: {type: skip}}"],
    ['capacity empty means ","', "{conditions: {capacity: ''}, action: {type: skip}}"],
    ['capacity null means ","', "{conditions: {capacity: null}, action: {type: skip}}"],
  ])("%s", (_name, item) => {
    const p = policies(`version: v1\nvolumePolicies: [${item}]`);
    expect(p.volumePolicies[0]?.conditions).toEqual({
      capacity: { lower: q("0"), upper: q("0") },
      storageClass: [],
      volumeTypes: [],
      pvcLabels: {},
      pvcPhase: [],
    });
  });

  it.each([
    ["both bounds", "10Gi,100Gi", "10Gi", "100Gi"],
    ["no upper bound", "10Gi,", "10Gi", "0"],
    ["no lower bound", ",100Gi", "0", "100Gi"],
    ["an explicit 0 is open too", "10Gi,0", "10Gi", "0"],
    ["sides are trimmed (strings.TrimSpace)", " 1Gi , 2Gi ", "1Gi", "2Gi"],
    ["equal bounds", "5Gi,5Gi", "5Gi", "5Gi"],
    ["mixed binary and decimal", "1G,1Gi", "1G", "1Gi"],
    ["exponents", "1e9,2e9", "1G", "2G"],
    ["negative lower bound (a valid quantity)", "-1,1", "-1", "1"],
  ])("capacity %s: %j", (_name, capacity, lower, upper) => {
    expect(one(`{capacity: "${capacity}"}`).volumePolicies[0]?.conditions.capacity).toEqual({ lower: q(lower), upper: q(upper) });
  });

  it.each([
    ["nfs: {} matches any NFS volume", "{nfs: {}}", { server: "", path: "" }],
    ["nfs: null is no condition", "{nfs: null}", undefined],
  ])("%s", (_name, conditions, expected) => {
    expect(one(conditions).volumePolicies[0]?.conditions.nfs).toEqual(expected);
  });

  it.each([
    ["csi: {} matches any CSI volume", "{csi: {}}", { driver: "" }],
    ["csi: {driver: d}", "{csi: {driver: d}}", { driver: "d" }],
    ["csi with volumeAttributes: null is fine without a driver", "{csi: {volumeAttributes: null}}", { driver: "" }],
    ["csi: null is no condition", "{csi: null}", undefined],
  ])("%s", (_name, conditions, expected) => {
    expect(one(conditions).volumePolicies[0]?.conditions.csi).toEqual(expected);
  });

  it.each([
    ["numbers are read as their text (yaml.v3 fills string fields from any scalar)", "{storageClass: [1, true]}", "storageClass", ["1", "true"]],
    ["null list items are empty strings", "{pvcPhase: [null, Bound]}", "pvcPhase", ["", "Bound"]],
    ["volumeTypes are not checked against Velero's list", "{volumeTypes: [notAType]}", "volumeTypes", ["notAType"]],
    ["a pvcLabels null value is an empty string", "{pvcLabels: {app: null, tier: 1}}", "pvcLabels", { app: "", tier: "1" }],
  ] as const)("%s", (_name, conditions, field, expected) => {
    expect(one(conditions).volumePolicies[0]?.conditions[field]).toEqual(expected);
  });
});

describe("parseVolumePolicies: every validation error names the field at fault", () => {
  const v1 = (body: string) => `version: v1\n${body}`;
  const vp = (item: string) => v1(`volumePolicies:\n- ${item}\n`);

  it.each([
    // document
    ["empty data is EOF for yaml.v3", "", "policy: no YAML document (Velero: EOF)"],
    ["a comment only is EOF too", "# nothing", "policy: no YAML document (Velero: EOF)"],
    ["broken YAML", "version: [v1", "policy: invalid YAML"],
    ["duplicate keys (yaml.v3 refuses them)", "version: v1\nversion: v1", 'version: mapping key "version" already defined'],
    ["duplicate keys differing only in quoting", 'version: v1\n"version": v1', 'version: mapping key "version" already defined'],
    ["a document that is not a map", "- version: v1", "(document): expected a map"],
    ["a scalar document", "v1", "(document): expected a map"],
    ["unknown top-level field (KnownFields)", v1("volumePolicy: []"), "volumePolicy: unknown field"],
    ["merge keys are not supported (safe side: Velero accepts them)", v1("a: &a {x: 1}\n<<: *a"), "a: unknown field"],
    // version (Policies.Validate)
    ["missing version", "volumePolicies: []", 'version: incompatible version "": Velero supports only "v1"'],
    ["version v2", "version: v2", 'version: incompatible version "v2"'],
    ["version V1 (case matters)", "version: V1", 'version: incompatible version "V1"'],
    ["version 1", "version: 1", 'version: incompatible version "1"'],
    ["version as a list", "version: [v1]", "version: expected a string"],
    // volumePolicies shape
    ["volumePolicies as a map", v1("volumePolicies: {a: 1}"), "volumePolicies: expected a list of volume policies"],
    ["a policy that is a string", v1("volumePolicies: [skip]"), "volumePolicies[0]: expected a map with conditions and action"],
    ["unknown field in a policy", vp("{condition: {}, action: {type: skip}}"), "volumePolicies[0].condition: unknown field"],
    ["conditions as a list", vp("{conditions: [a], action: {type: skip}}"), "volumePolicies[0].conditions: expected a map of conditions"],
    // action (Action.validate)
    ["a null policy has no action type", v1("volumePolicies: [null]"), 'volumePolicies[0].action.type: invalid action type ""'],
    ["missing action", vp("{conditions: {}}"), 'volumePolicies[0].action.type: invalid action type ""'],
    ["unknown action type", vp("{action: {type: delete}}"), 'volumePolicies[0].action.type: invalid action type "delete"'],
    ["action types are case-sensitive", vp("{action: {type: Skip}}"), 'volumePolicies[0].action.type: invalid action type "Skip"'],
    ["action as a string", vp("{action: skip}"), "volumePolicies[0].action: expected a map with type and parameters"],
    ["unknown field in an action", vp("{action: {type: skip, param: 1}}"), "volumePolicies[0].action.param: unknown field"],
    ["parameters as a list", vp("{action: {type: custom, parameters: [a]}}"), "volumePolicies[0].action.parameters: expected a map"],
    // conditions (KnownFields on volumeConditions)
    ["unknown condition", vp("{conditions: {storageClasses: [a]}, action: {type: skip}}"), "volumePolicies[0].conditions.storageClasses: unknown field"],
    [
      "condition keys are case-sensitive",
      vp("{conditions: {StorageClass: [a]}, action: {type: skip}}"),
      "volumePolicies[0].conditions.StorageClass: unknown field",
    ],
    // capacity (parseCapacity, capacityCondition.validate)
    ["capacity without a comma", vp('{conditions: {capacity: "10Gi"}, action: {type: skip}}'), 'volumePolicies[0].conditions.capacity: wrong format "10Gi"'],
    ["capacity with two commas", vp('{conditions: {capacity: "1,2,3"}, action: {type: skip}}'), 'volumePolicies[0].conditions.capacity: wrong format "1,2,3"'],
    ["capacity that is a number", vp("{conditions: {capacity: 10}, action: {type: skip}}"), 'volumePolicies[0].conditions.capacity: wrong format "10"'],
    [
      "capacity with a bad quantity",
      vp('{conditions: {capacity: "10GB,"}, action: {type: skip}}'),
      'volumePolicies[0].conditions.capacity: "10GB" is not a Kubernetes quantity',
    ],
    [
      "capacity with max below min",
      vp('{conditions: {capacity: "10Gi,5Gi"}, action: {type: skip}}'),
      'volumePolicies[0].conditions.capacity: illegal range "10Gi,5Gi"',
    ],
    [
      "capacity with a negative max and open min",
      vp('{conditions: {capacity: ",-1"}, action: {type: skip}}'),
      'volumePolicies[0].conditions.capacity: illegal range ",-1"',
    ],
    ["capacity as a list", vp("{conditions: {capacity: [1, 2]}, action: {type: skip}}"), "volumePolicies[0].conditions.capacity: expected a string"],
    // lists and maps (yaml.v3 types)
    [
      "storageClass as a string",
      vp("{conditions: {storageClass: gp2}, action: {type: skip}}"),
      "volumePolicies[0].conditions.storageClass: expected a list of strings",
    ],
    [
      "storageClass with a map item",
      vp("{conditions: {storageClass: [{a: b}]}, action: {type: skip}}"),
      "volumePolicies[0].conditions.storageClass[0]: expected a string",
    ],
    [
      "volumeTypes as a string",
      vp("{conditions: {volumeTypes: nfs}, action: {type: skip}}"),
      "volumePolicies[0].conditions.volumeTypes: expected a list of strings",
    ],
    ["pvcPhase as a string", vp("{conditions: {pvcPhase: Bound}, action: {type: skip}}"), "volumePolicies[0].conditions.pvcPhase: expected a list of strings"],
    // nfs, csi
    ["nfs as a string", vp("{conditions: {nfs: server}, action: {type: skip}}"), "volumePolicies[0].conditions.nfs: expected a map with server and/or path"],
    ["nfs with an unknown field", vp("{conditions: {nfs: {host: a}}, action: {type: skip}}"), "volumePolicies[0].conditions.nfs.host: unknown field"],
    ["csi with an unknown field", vp("{conditions: {csi: {name: a}}, action: {type: skip}}"), "volumePolicies[0].conditions.csi.name: unknown field"],
    [
      "csi volumeAttributes without a driver",
      vp("{conditions: {csi: {volumeAttributes: {a: b}}}, action: {type: skip}}"),
      "volumePolicies[0].conditions.csi.driver: must not be empty when volumeAttributes is set",
    ],
    [
      "csi empty volumeAttributes without a driver (non-nil map)",
      vp("{conditions: {csi: {volumeAttributes: {}}}, action: {type: skip}}"),
      "volumePolicies[0].conditions.csi.driver: must not be empty",
    ],
    [
      "csi volumeAttributes as a list",
      vp("{conditions: {csi: {driver: d, volumeAttributes: [a]}}, action: {type: skip}}"),
      "volumePolicies[0].conditions.csi.volumeAttributes: expected a map of string to string",
    ],
    // pvcLabels (unmarshalResourcePolicies' own check, then map[string]string)
    [
      "pvcLabels as a list",
      vp("{conditions: {pvcLabels: [a]}, action: {type: skip}}"),
      "volumePolicies[0].conditions.pvcLabels: must be a map of string to string, got a list",
    ],
    [
      "pvcLabels as a string",
      vp("{conditions: {pvcLabels: app}, action: {type: skip}}"),
      "volumePolicies[0].conditions.pvcLabels: must be a map of string to string, got a string",
    ],
    [
      "pvcLabels null (Velero: got <nil>)",
      vp("{conditions: {pvcLabels: null}, action: {type: skip}}"),
      "volumePolicies[0].conditions.pvcLabels: must be a map of string to string, got <nil>",
    ],
    [
      "pvcLabels with a non-string key",
      vp("{conditions: {pvcLabels: {1: a}}, action: {type: skip}}"),
      "volumePolicies[0].conditions.pvcLabels: must be a map of string to string, got a map with non-string keys",
    ],
    [
      "pvcLabels with a nested value",
      vp("{conditions: {pvcLabels: {app: {a: b}}}, action: {type: skip}}"),
      "volumePolicies[0].conditions.pvcLabels.app: expected a string",
    ],
    // includeExcludePolicy (IncludeExcludePolicy.Validate)
    [
      "includeExcludePolicy with an unknown field",
      v1("includeExcludePolicy: {includedResources: [a]}"),
      "includeExcludePolicy.includedResources: unknown field",
    ],
    ["includeExcludePolicy as a list", v1("includeExcludePolicy: [a]"), "includeExcludePolicy: expected a map of resource lists"],
    [
      "'*' in an includes list",
      v1("includeExcludePolicy: {includedClusterScopedResources: ['*']}"),
      'includeExcludePolicy.includedClusterScopedResources: "*" is not allowed',
    ],
    [
      "'*' in an excludes list",
      v1("includeExcludePolicy: {excludedNamespaceScopedResources: ['*']}"),
      'includeExcludePolicy.excludedNamespaceScopedResources: "*" is not allowed',
    ],
    [
      "an item both included and excluded",
      v1("includeExcludePolicy: {includedNamespaceScopedResources: [pods], excludedNamespaceScopedResources: [pods]}"),
      'includeExcludePolicy.excludedNamespaceScopedResources: "pods" is also in includedNamespaceScopedResources',
    ],
  ])("%s", (_name, yaml, error) => {
    const r = parseVolumePoliciesYaml(yaml);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(error);
  });

  it("reports the policy's index", () => {
    const r = parseVolumePoliciesYaml(
      v1(`volumePolicies:
- {action: {type: skip}}
- {action: {type: skip}}
- {conditions: {capacity: "1"}, action: {type: skip}}`),
    );
    expect(r).toEqual({ ok: false, error: 'volumePolicies[2].conditions.capacity: wrong format "1": expected "min,max"' });
  });

  it("reports every fault, not only the first", () => {
    const r = parseVolumePoliciesYaml("version: v2\nvolumePolicies: [{action: {type: x}}]");
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toContain("version: incompatible version");
      expect(r.error).toContain("volumePolicies[0].action.type: invalid action type");
    }
  });

  it("mixing scope rules: cluster and namespace lists are checked separately", () => {
    expect(parseVolumePoliciesYaml(v1("includeExcludePolicy: {includedClusterScopedResources: [pods], excludedNamespaceScopedResources: [pods]}")).ok).toBe(
      true,
    );
  });
});

describe("parseVolumePolicies never throws", () => {
  const jsonish = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: "small" },
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.double(),
      fc.string(),
      fc.constantFrom("v1", "skip", "snapshot", "fs-backup", "custom", "10Gi,", ",", "0,1Gi", "*"),
      fc.array(tie("value"), { maxLength: 4 }),
      fc.dictionary(
        fc.constantFrom(
          "version",
          "volumePolicies",
          "conditions",
          "action",
          "type",
          "capacity",
          "storageClass",
          "nfs",
          "csi",
          "driver",
          "volumeAttributes",
          "volumeTypes",
          "pvcLabels",
          "pvcPhase",
          "server",
          "path",
          "includeExcludePolicy",
          "includedClusterScopedResources",
          "parameters",
          "x",
        ),
        tie("value"),
        { maxKeys: 5 },
      ),
    ),
  })).value;

  it("on arbitrary strings", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        const r = parseVolumePolicies(cm({ p: s }));
        expect(typeof r.ok).toBe("boolean");
      }),
      { numRuns: 1000 },
    );
  });

  it("on arbitrary YAML-shaped objects", () => {
    fc.assert(
      fc.property(jsonish, (v) => {
        const r = parseVolumePolicies(cm({ p: stringify(v) }));
        expect(typeof r.ok).toBe("boolean");
        if (!r.ok) expect(r.error.length).toBeGreaterThan(0);
      }),
      { numRuns: 1000 },
    );
  });

  it("on policies that are nearly right", () => {
    const item = fc.record({ conditions: jsonish, action: fc.record({ type: jsonish }) }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.array(item, { maxLength: 3 }), (vps) => {
        const r = parseVolumePolicies(cm({ p: stringify({ version: "v1", volumePolicies: vps }) }));
        expect(typeof r.ok).toBe("boolean");
      }),
      { numRuns: 1000 },
    );
  });

  it("on arbitrary ConfigMap-like objects", () => {
    fc.assert(
      fc.property(fc.anything(), (v) => {
        const r = parseVolumePolicies(v as ConfigMapInfo);
        expect(r.ok).toBe(false);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.anything(), { minKeys: 1, maxKeys: 1 }), (data) => {
        const r = parseVolumePolicies({ namespace: "n", name: "p", data } as unknown as ConfigMapInfo);
        expect(typeof r.ok).toBe("boolean");
      }),
      { numRuns: 500 },
    );
  });

  it("on alias bombs (refused, as yaml.v3 refuses excessive aliasing)", () => {
    const levels = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i <= 9; i++)
      levels.push(
        `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(",")}]`,
      );
    const bomb = `version: v1\nvolumePolicies:\n- action:\n    type: custom\n    parameters:\n      ${levels.join("\n      ")}`;
    const started = performance.now();
    expect(parseVolumePoliciesYaml(bomb)).toMatchObject({ ok: false, error: expect.stringContaining("too large after alias expansion") });
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe("volume facts (structuredVolume): what Velero reads from a PV, a PVC and a pod volume", () => {
  it("from a PV and its PVC (parsePV + parsePVC)", () => {
    expect(factsFromPv(pv(), pvc())).toEqual({
      ok: true,
      facts: {
        capacity: q("10Gi"),
        storageClass: "gp3",
        csi: { driver: "ebs.csi.aws.com", volumeAttributes: { type: "gp3" } },
        volumeType: "csi",
        pvcLabels: { app: "db" },
        pvcPhase: "Bound",
      },
    });
  });

  it.each([
    ["a PV without capacity has capacity 0 (Capacity.Storage())", pv({ capacity: undefined }), "capacity", q("0")],
    ['a PV without storage class has class ""', pv({ storageClassName: undefined }), "storageClass", ""],
    ["an NFS PV", pv({ type: "nfs", csi: undefined, nfs: { server: "s", path: "/p" } }), "nfs", { server: "s", path: "/p" }],
    ["a PV's storageos source is Velero's storageOS", pv({ type: "storageos", csi: undefined }), "volumeType", "storageOS"],
    ["a local PV", pv({ type: "local", csi: undefined }), "volumeType", "local"],
    ["an unknown PV source has no type", pv({ type: "somethingNew", csi: undefined }), "volumeType", ""],
  ] as const)("%s", (_name, volume, field, expected) => {
    const r = factsFromPv(volume);
    expect(r.ok && r.facts[field]).toEqual(expected);
  });

  it('without a PVC (Velero\'s ShouldPerformSnapshot for a PV passes an empty PVC): no labels, phase ""', () => {
    const r = factsFromPv(pv());
    expect(r.ok && r.facts.pvcLabels).toBeUndefined();
    expect(r.ok && r.facts.pvcPhase).toBe("");
  });

  it("a PVC without labels gives no pvcLabels (parsePVC sets them only when there are some)", () => {
    const r = factsFromPv(pv(), pvc({ labels: {} }));
    expect(r.ok && "pvcLabels" in r.facts).toBe(false);
  });

  it("a PV whose capacity is not a quantity cannot be evaluated", () => {
    expect(factsFromPv(pv({ capacity: "lots" }))).toEqual({ ok: false, error: 'PV pv-1: capacity "lots" is not a quantity' });
  });

  it("PVC only: labels and phase; no capacity, no class (not even the PVC's storageClassName), no type", () => {
    expect(factsFromPvcOnly(pvc({ phase: "Pending", volumeName: undefined }))).toEqual({
      capacity: q("0"),
      storageClass: "",
      volumeType: "",
      pvcLabels: { app: "db" },
      pvcPhase: "Pending",
    });
  });

  it.each([
    ["emptyDir", { name: "v", type: "emptyDir" }, { volumeType: "emptyDir" }],
    ["inline NFS", { name: "v", type: "nfs", nfs: { server: "s", path: "/p" } }, { volumeType: "nfs", nfs: { server: "s", path: "/p" } }],
    [
      "inline CSI",
      { name: "v", type: "csi", csi: { driver: "d", volumeAttributes: { a: "b" } } },
      { volumeType: "csi", csi: { driver: "d", volumeAttributes: { a: "b" } } },
    ],
    ["generic ephemeral", { name: "v", type: "ephemeral" }, { volumeType: "ephemeral" }],
    ["storageos is spelt storageOS", { name: "v", type: "storageos" }, { volumeType: "storageOS" }],
    ["a PVC volume has no type of its own", { name: "v", type: "persistentVolumeClaim", claimName: "c" }, { volumeType: "" }],
    ["an image volume has no Velero type", { name: "v", type: "image" }, { volumeType: "" }],
  ] as const)("pod volume (parsePodVolume): %s", (_name, vol, expected) => {
    expect(factsFromPodVolume(vol as PodVolume)).toEqual({ capacity: q("0"), storageClass: "", pvcPhase: "", ...expected });
  });

  it.each([
    ["awsElasticBlockStore", "awsElasticBlockStore", "awsElasticBlockStore"],
    ["gitRepo exists only for pod volumes", "", "gitRepo"],
    ["local exists only for PVs", "local", ""],
    ["secret", "", "secret"],
    ["hostPath", "hostPath", "hostPath"],
    ["persistentVolumeClaim has none", "", ""],
  ])("volume type names: %s", (_name, pvType, podType) => {
    const key = _name.split(" ")[0] as string;
    expect(veleroPvVolumeType(key)).toBe(pvType);
    expect(veleroPodVolumeType(key)).toBe(podType);
  });
});

describe("volume facts: where Velero looks up the PVC and PV (GetPVCForPodVolume, GetPVForPVC)", () => {
  const pvs = new Map([["pv-1", pv()]]);
  const lookupPv = (name: string) => pvs.get(name);
  const claims =
    (...list: PvcInfo[]) =>
    (ns: string, name: string) =>
      list.find((c) => c.namespace === ns && c.name === name);
  const claimVol: PodVolume = { name: "data", type: "persistentVolumeClaim", claimName: "data" };

  it("a pod volume on a bound PVC: the PV's facts with the PVC's labels and phase", () => {
    expect(factsForPodVolume(claimVol, "shop", claims(pvc()), lookupPv)).toEqual(factsFromPv(pv(), pvc()));
  });

  it("a non-PVC pod volume: its own facts, no lookups", () => {
    const vol: PodVolume = { name: "cache", type: "emptyDir" };
    expect(
      factsForPodVolume(
        vol,
        "shop",
        () => {
          throw new Error("no");
        },
        () => {
          throw new Error("no");
        },
      ),
    ).toEqual({ ok: true, facts: factsFromPodVolume(vol) });
  });

  it("a pod volume whose PVC is missing: Velero errors out for the volume", () => {
    expect(factsForPodVolume(claimVol, "shop", claims(), lookupPv)).toEqual({
      ok: false,
      error: "failed to get PVC data for volume shop/data",
    });
  });

  it.each([
    ["an unbound PVC (no volumeName)", pvc({ phase: "Pending", volumeName: undefined }), "PVC shop/data has no volume backing this claim"],
    ["a PVC with volumeName that is not Bound", pvc({ phase: "Lost" }), "PVC shop/data is in phase Lost and is not bound to a volume"],
    ["a Bound PVC whose PV is missing", pvc({ volumeName: "pv-gone" }), "failed to get PV pv-gone for PVC shop/data"],
  ])("%s: PVC-only facts, and the PV error Velero reports when no policy matches", (_name, claim, pvError) => {
    const podResult = factsForPodVolume(claimVol, "shop", claims(claim), lookupPv);
    expect(podResult).toEqual({ ok: true, facts: factsFromPvcOnly(claim), pvError });
    expect(factsForPvc(claim, lookupPv)).toEqual({ ok: true, facts: factsFromPvcOnly(claim), pvError });
  });

  it("a PVC-only volume still matches pvcPhase and pvcLabels policies (how Velero skips Pending PVCs)", () => {
    const p = policies("version: v1\nvolumePolicies:\n- {conditions: {pvcPhase: [Pending, Lost]}, action: {type: skip}}");
    const r = factsForPvc(pvc({ phase: "Pending", volumeName: undefined }), lookupPv);
    expect(r.ok && matchVolumePolicy(p, r.facts)).toEqual({ type: "skip" });
  });
});

describe("matchVolumePolicy: each condition as Velero matches it", () => {
  it.each([
    // capacity: capacity.isInRange, bounds inclusive, a zero bound open
    ["capacity [a,b] includes a", "10Gi,100Gi", "10Gi", true],
    ["capacity [a,b] includes b", "10Gi,100Gi", "100Gi", true],
    ["capacity [a,b] excludes below a", "10Gi,100Gi", "9Gi", false],
    ["capacity [a,b] excludes above b", "10Gi,100Gi", "101Gi", false],
    ["capacity [a,b] compares exactly across units (1Gi > 1G)", "1,1G", "1Gi", false],
    ["capacity [a,] is at least a", "10Gi,", "1Ti", true],
    ["capacity [a,] excludes below a", "10Gi,", "1Gi", false],
    ["capacity [,b] is at most b", ",10Gi", "10Gi", true],
    ["capacity [,b] excludes above b", ",10Gi", "11Gi", false],
    ["capacity [,b] matches a zero-size volume", ",10Gi", "0", true],
    ['capacity "," matches anything', ",", "1Ei", true],
    ["capacity [a,] never matches a pod volume (capacity 0)", "1,", "0", false],
    ["capacity [a,a] matches exactly a", "5Gi,5Gi", "5Gi", true],
  ])("%s", (_name, capacity, size, expected) => {
    expect(matchVolumePolicy(one(`{capacity: "${capacity}"}`), facts({ capacity: size })) !== undefined).toBe(expected);
  });

  it.each([
    ["storageClass: one of the list", "{storageClass: [gp2, gp3]}", facts({ storageClass: "gp3" }), true],
    ["storageClass: not in the list", "{storageClass: [gp2]}", facts({ storageClass: "gp3" }), false],
    ["storageClass: a volume without class never matches", '{storageClass: [""]}', facts(), false],
    ["storageClass: empty list matches any", "{storageClass: []}", facts(), true],
    // nfs: nfsCondition.match, an empty server or path means any
    ["nfs: {} matches any NFS volume", "{nfs: {}}", facts({ nfs: { server: "s", path: "/p" } }), true],
    ["nfs: {} does not match a non-NFS volume", "{nfs: {}}", facts(), false],
    ["nfs: null matches every volume", "{nfs: null}", facts(), true],
    ["nfs: server only", "{nfs: {server: s}}", facts({ nfs: { server: "s", path: "/any" } }), true],
    ["nfs: server differs", "{nfs: {server: s}}", facts({ nfs: { server: "t", path: "/p" } }), false],
    ["nfs: path only", "{nfs: {path: /p}}", facts({ nfs: { server: "any", path: "/p" } }), true],
    ["nfs: path differs", "{nfs: {path: /p}}", facts({ nfs: { server: "s", path: "/q" } }), false],
    ["nfs: both must match", "{nfs: {server: s, path: /p}}", facts({ nfs: { server: "s", path: "/p" } }), true],
    ["nfs: both, server differs", "{nfs: {server: s, path: /p}}", facts({ nfs: { server: "t", path: "/p" } }), false],
    ["nfs: paths compare exactly (no prefix, no trailing-slash folding)", "{nfs: {path: /p}}", facts({ nfs: { server: "s", path: "/p/" } }), false],
    // csi: csiCondition.match
    ["csi: {} matches any CSI volume", "{csi: {}}", facts({ csi: { driver: "d", volumeAttributes: {} } }), true],
    ["csi: {} does not match a non-CSI volume", "{csi: {}}", facts(), false],
    ["csi: driver matches", "{csi: {driver: d}}", facts({ csi: { driver: "d", volumeAttributes: {} } }), true],
    ["csi: driver differs", "{csi: {driver: d}}", facts({ csi: { driver: "e", volumeAttributes: {} } }), false],
    ["csi: driver on a non-CSI volume", "{csi: {driver: d}}", facts(), false],
    [
      "csi: attributes are a subset",
      "{csi: {driver: d, volumeAttributes: {a: '1'}}}",
      facts({ csi: { driver: "d", volumeAttributes: { a: "1", b: "2" } } }),
      true,
    ],
    ["csi: attribute value differs", "{csi: {driver: d, volumeAttributes: {a: '1'}}}", facts({ csi: { driver: "d", volumeAttributes: { a: "2" } } }), false],
    ["csi: attribute missing", "{csi: {driver: d, volumeAttributes: {a: '1'}}}", facts({ csi: { driver: "d", volumeAttributes: { b: "1" } } }), false],
    [
      "csi: wanted attributes but the volume has none",
      "{csi: {driver: d, volumeAttributes: {a: ''}}}",
      facts({ csi: { driver: "d", volumeAttributes: {} } }),
      false,
    ],
    [
      'csi: a wanted "" matches a missing attribute (Go map read)',
      "{csi: {driver: d, volumeAttributes: {a: ''}}}",
      facts({ csi: { driver: "d", volumeAttributes: { b: "1" } } }),
      true,
    ],
    [
      "csi: empty volumeAttributes with a driver match on driver",
      "{csi: {driver: d, volumeAttributes: {}}}",
      facts({ csi: { driver: "d", volumeAttributes: {} } }),
      true,
    ],
    // volumeTypes: volumeTypeCondition.match
    ["volumeTypes: in the list", "{volumeTypes: [nfs, csi]}", facts({ volumeType: "csi" }), true],
    ["volumeTypes: not in the list", "{volumeTypes: [nfs]}", facts({ volumeType: "csi" }), false],
    ["volumeTypes: Velero's spelling, not the Kubernetes key", "{volumeTypes: [storageos]}", facts({ volumeType: "storageOS" }), false],
    ['volumeTypes: [""] matches a volume Velero has no type for', '{volumeTypes: [""]}', facts(), true],
    // pvcLabels: labels.SelectorFromSet
    ["pvcLabels: a subset matches", "{pvcLabels: {app: db}}", facts({ pvcLabels: { app: "db", tier: "x" } }), true],
    ["pvcLabels: value differs", "{pvcLabels: {app: db}}", facts({ pvcLabels: { app: "web" } }), false],
    ["pvcLabels: key missing", "{pvcLabels: {app: db}}", facts({ pvcLabels: { tier: "x" } }), false],
    ["pvcLabels: no PVC labels", "{pvcLabels: {app: db}}", facts(), false],
    ["pvcLabels: an empty value needs the key present", "{pvcLabels: {app: ''}}", facts({ pvcLabels: { tier: "x" } }), false],
    ["pvcLabels: an empty value matches an empty label", "{pvcLabels: {app: ''}}", facts({ pvcLabels: { app: "" } }), true],
    ["pvcLabels: {} matches any", "{pvcLabels: {}}", facts(), true],
    // pvcPhase: pvcPhaseCondition.match
    ["pvcPhase: in the list", "{pvcPhase: [Pending, Lost]}", facts({ pvcPhase: "Pending" }), true],
    ["pvcPhase: not in the list", "{pvcPhase: [Pending]}", facts({ pvcPhase: "Bound" }), false],
    ["pvcPhase: no PVC never matches", '{pvcPhase: [""]}', facts(), false],
    // AND
    ["all conditions must hold", "{storageClass: [gp3], volumeTypes: [csi]}", facts({ storageClass: "gp3", volumeType: "nfs" }), false],
    [
      "all conditions hold",
      "{storageClass: [gp3], volumeTypes: [csi], capacity: ',1Ti'}",
      facts({ storageClass: "gp3", volumeType: "csi", capacity: "1Gi" }),
      true,
    ],
    ["no conditions match every volume", "{}", facts(), true],
  ])("%s", (_name, conditions, volume, expected) => {
    expect(matchVolumePolicy(one(conditions), volume) !== undefined).toBe(expected);
  });

  it("the first matching policy wins, in order", () => {
    const p = policies(`version: v1
volumePolicies:
- {conditions: {storageClass: [gold]}, action: {type: fs-backup}}
- {conditions: {capacity: "0,10Gi"}, action: {type: skip}}
- {conditions: {}, action: {type: snapshot}}
`);
    expect(matchVolumePolicy(p, facts({ storageClass: "gold", capacity: "1Gi" }))).toEqual({ type: "fs-backup" });
    expect(matchVolumePolicy(p, facts({ storageClass: "gp3", capacity: "1Gi" }))).toEqual({ type: "skip" });
    expect(matchVolumePolicy(p, facts({ storageClass: "gp3", capacity: "1Ti" }))).toEqual({ type: "snapshot" });
  });

  it("no volume policies: no action", () => {
    expect(matchVolumePolicy(policies("version: v1"), facts())).toBeUndefined();
  });

  it("pvcLabels/pvcPhase policies cannot match PV facts built without the PVC (Velero's PV snapshot check)", () => {
    const p = one("{pvcLabels: {app: db}}");
    const withPvc = factsFromPv(pv(), pvc());
    const withoutPvc = factsFromPv(pv());
    expect(withPvc.ok && matchVolumePolicy(p, withPvc.facts)).toEqual({ type: "skip" });
    expect(withoutPvc.ok && matchVolumePolicy(p, withoutPvc.facts)).toBeUndefined();
  });
});
