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

  it.each<{ name: string; data: Record<string, string>; error: string }>([
    { name: "no data key", data: {}, error: "data: a resource-policy ConfigMap must hold exactly one key, found 0" },
    { name: "two data keys", data: { a: valid, b: valid }, error: "data: a resource-policy ConfigMap must hold exactly one key, found 2" },
  ])("Velero refuses a ConfigMap with $name (len(cm.Data) != 1)", ({ data, error }) => {
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
    { name: "configmap", kind: "configmap", expected: "p" },
    { name: "kind matched ignoring case (strings.EqualFold)", kind: "ConfigMap", expected: "p" },
    { name: "any other kind means no policy at all", kind: "Secret", expected: undefined },
  ])("spec.resourcePolicy: $name", ({ kind, expected }) => {
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
    { name: "version only: no volume policies", yaml: "version: v1" },
    { name: "volumePolicies: null is nil", yaml: "version: v1\nvolumePolicies:" },
    { name: "includeExcludePolicy: null is nil", yaml: "version: v1\nincludeExcludePolicy:" },
    { name: "JSON is YAML", yaml: '{"version": "v1", "volumePolicies": []}' },
    { name: "only the first YAML document is read (yaml.v3 Decoder.Decode)", yaml: "version: v1\n---\nnot: [valid, for, velero]" },
  ])("$name", ({ yaml }) => {
    expect(parseVolumePoliciesYaml(yaml)).toMatchObject({ ok: true, policies: { version: "v1" } });
  });

  it.each(["skip", "snapshot", "fs-backup", "custom"])("action type %s is valid in 1.18.1 (custom is new in 1.18.1)", (type) => {
    expect(policies(`version: v1\nvolumePolicies: [{action: {type: ${type}}}]`).volumePolicies[0]?.action.type).toBe(type);
  });

  it.each([
    { name: "missing conditions: every condition is empty", item: "{action: {type: skip}}" },
    { name: "conditions: null", item: "{conditions: null, action: {type: skip}}" },
    { name: 'capacity empty means ","', item: "{conditions: {capacity: ''}, action: {type: skip}}" },
    { name: 'capacity null means ","', item: "{conditions: {capacity: null}, action: {type: skip}}" },
  ])("$name", ({ item }) => {
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
    { name: "both bounds", capacity: "10Gi,100Gi", lower: "10Gi", upper: "100Gi" },
    { name: "no upper bound", capacity: "10Gi,", lower: "10Gi", upper: "0" },
    { name: "no lower bound", capacity: ",100Gi", lower: "0", upper: "100Gi" },
    { name: "an explicit 0 is open too", capacity: "10Gi,0", lower: "10Gi", upper: "0" },
    { name: "sides are trimmed (strings.TrimSpace)", capacity: " 1Gi , 2Gi ", lower: "1Gi", upper: "2Gi" },
    { name: "equal bounds", capacity: "5Gi,5Gi", lower: "5Gi", upper: "5Gi" },
    { name: "mixed binary and decimal", capacity: "1G,1Gi", lower: "1G", upper: "1Gi" },
    { name: "exponents", capacity: "1e9,2e9", lower: "1G", upper: "2G" },
    { name: "negative lower bound (a valid quantity)", capacity: "-1,1", lower: "-1", upper: "1" },
  ])("capacity $name: $capacity", ({ capacity, lower, upper }) => {
    expect(one(`{capacity: "${capacity}"}`).volumePolicies[0]?.conditions.capacity).toEqual({ lower: q(lower), upper: q(upper) });
  });

  it.each([
    { name: "nfs: {} matches any NFS volume", conditions: "{nfs: {}}", expected: { server: "", path: "" } },
    { name: "nfs: null is no condition", conditions: "{nfs: null}", expected: undefined },
  ])("$name", ({ conditions, expected }) => {
    expect(one(conditions).volumePolicies[0]?.conditions.nfs).toEqual(expected);
  });

  it.each([
    { name: "csi: {} matches any CSI volume", conditions: "{csi: {}}", expected: { driver: "" } },
    { name: "csi: {driver: d}", conditions: "{csi: {driver: d}}", expected: { driver: "d" } },
    { name: "csi with volumeAttributes: null is fine without a driver", conditions: "{csi: {volumeAttributes: null}}", expected: { driver: "" } },
    { name: "csi: null is no condition", conditions: "{csi: null}", expected: undefined },
  ])("$name", ({ conditions, expected }) => {
    expect(one(conditions).volumePolicies[0]?.conditions.csi).toEqual(expected);
  });

  it.each([
    {
      name: "numbers are read as their text (yaml.v3 fills string fields from any scalar)",
      conditions: "{storageClass: [1, true]}",
      field: "storageClass",
      expected: ["1", "true"],
    },
    { name: "null list items are empty strings", conditions: "{pvcPhase: [null, Bound]}", field: "pvcPhase", expected: ["", "Bound"] },
    { name: "volumeTypes are not checked against Velero's list", conditions: "{volumeTypes: [notAType]}", field: "volumeTypes", expected: ["notAType"] },
    {
      name: "a pvcLabels null value is an empty string",
      conditions: "{pvcLabels: {app: null, tier: 1}}",
      field: "pvcLabels",
      expected: { app: "", tier: "1" },
    },
  ] as const)("$name", ({ conditions, field, expected }) => {
    expect(one(conditions).volumePolicies[0]?.conditions[field]).toEqual(expected);
  });
});

describe("parseVolumePolicies: every validation error names the field at fault", () => {
  const v1 = (body: string) => `version: v1\n${body}`;
  const vp = (item: string) => v1(`volumePolicies:\n- ${item}\n`);

  it.each([
    // document
    { name: "empty data is EOF for yaml.v3", yaml: "", error: "policy: no YAML document (Velero: EOF)" },
    { name: "a comment only is EOF too", yaml: "# nothing", error: "policy: no YAML document (Velero: EOF)" },
    { name: "broken YAML", yaml: "version: [v1", error: "policy: invalid YAML" },
    { name: "duplicate keys (yaml.v3 refuses them)", yaml: "version: v1\nversion: v1", error: 'version: mapping key "version" already defined' },
    { name: "duplicate keys differing only in quoting", yaml: 'version: v1\n"version": v1', error: 'version: mapping key "version" already defined' },
    { name: "a document that is not a map", yaml: "- version: v1", error: "(document): expected a map" },
    { name: "a scalar document", yaml: "v1", error: "(document): expected a map" },
    { name: "unknown top-level field (KnownFields)", yaml: v1("volumePolicy: []"), error: "volumePolicy: unknown field" },
    { name: "merge keys are not supported (safe side: Velero accepts them)", yaml: v1("a: &a {x: 1}\n<<: *a"), error: "a: unknown field" },
    // version (Policies.Validate)
    { name: "missing version", yaml: "volumePolicies: []", error: 'version: incompatible version "": Velero supports only "v1"' },
    { name: "version v2", yaml: "version: v2", error: 'version: incompatible version "v2"' },
    { name: "version V1 (case matters)", yaml: "version: V1", error: 'version: incompatible version "V1"' },
    { name: "version 1", yaml: "version: 1", error: 'version: incompatible version "1"' },
    { name: "version as a list", yaml: "version: [v1]", error: "version: expected a string" },
    // volumePolicies shape
    { name: "volumePolicies as a map", yaml: v1("volumePolicies: {a: 1}"), error: "volumePolicies: expected a list of volume policies" },
    { name: "a policy that is a string", yaml: v1("volumePolicies: [skip]"), error: "volumePolicies[0]: expected a map with conditions and action" },
    { name: "unknown field in a policy", yaml: vp("{condition: {}, action: {type: skip}}"), error: "volumePolicies[0].condition: unknown field" },
    { name: "conditions as a list", yaml: vp("{conditions: [a], action: {type: skip}}"), error: "volumePolicies[0].conditions: expected a map of conditions" },
    // action (Action.validate)
    { name: "a null policy has no action type", yaml: v1("volumePolicies: [null]"), error: 'volumePolicies[0].action.type: invalid action type ""' },
    { name: "missing action", yaml: vp("{conditions: {}}"), error: 'volumePolicies[0].action.type: invalid action type ""' },
    { name: "unknown action type", yaml: vp("{action: {type: delete}}"), error: 'volumePolicies[0].action.type: invalid action type "delete"' },
    { name: "action types are case-sensitive", yaml: vp("{action: {type: Skip}}"), error: 'volumePolicies[0].action.type: invalid action type "Skip"' },
    { name: "action as a string", yaml: vp("{action: skip}"), error: "volumePolicies[0].action: expected a map with type and parameters" },
    { name: "unknown field in an action", yaml: vp("{action: {type: skip, param: 1}}"), error: "volumePolicies[0].action.param: unknown field" },
    { name: "parameters as a list", yaml: vp("{action: {type: custom, parameters: [a]}}"), error: "volumePolicies[0].action.parameters: expected a map" },
    // conditions (KnownFields on volumeConditions)
    {
      name: "unknown condition",
      yaml: vp("{conditions: {storageClasses: [a]}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.storageClasses: unknown field",
    },
    {
      name: "condition keys are case-sensitive",
      yaml: vp("{conditions: {StorageClass: [a]}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.StorageClass: unknown field",
    },
    // capacity (parseCapacity, capacityCondition.validate)
    {
      name: "capacity without a comma",
      yaml: vp('{conditions: {capacity: "10Gi"}, action: {type: skip}}'),
      error: 'volumePolicies[0].conditions.capacity: wrong format "10Gi"',
    },
    {
      name: "capacity with two commas",
      yaml: vp('{conditions: {capacity: "1,2,3"}, action: {type: skip}}'),
      error: 'volumePolicies[0].conditions.capacity: wrong format "1,2,3"',
    },
    {
      name: "capacity that is a number",
      yaml: vp("{conditions: {capacity: 10}, action: {type: skip}}"),
      error: 'volumePolicies[0].conditions.capacity: wrong format "10"',
    },
    {
      name: "capacity with a bad quantity",
      yaml: vp('{conditions: {capacity: "10GB,"}, action: {type: skip}}'),
      error: 'volumePolicies[0].conditions.capacity: "10GB" is not a Kubernetes quantity',
    },
    {
      name: "capacity with max below min",
      yaml: vp('{conditions: {capacity: "10Gi,5Gi"}, action: {type: skip}}'),
      error: 'volumePolicies[0].conditions.capacity: illegal range "10Gi,5Gi"',
    },
    {
      name: "capacity with a negative max and open min",
      yaml: vp('{conditions: {capacity: ",-1"}, action: {type: skip}}'),
      error: 'volumePolicies[0].conditions.capacity: illegal range ",-1"',
    },
    {
      name: "capacity as a list",
      yaml: vp("{conditions: {capacity: [1, 2]}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.capacity: expected a string",
    },
    // lists and maps (yaml.v3 types)
    {
      name: "storageClass as a string",
      yaml: vp("{conditions: {storageClass: gp2}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.storageClass: expected a list of strings",
    },
    {
      name: "storageClass with a map item",
      yaml: vp("{conditions: {storageClass: [{a: b}]}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.storageClass[0]: expected a string",
    },
    {
      name: "volumeTypes as a string",
      yaml: vp("{conditions: {volumeTypes: nfs}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.volumeTypes: expected a list of strings",
    },
    {
      name: "pvcPhase as a string",
      yaml: vp("{conditions: {pvcPhase: Bound}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.pvcPhase: expected a list of strings",
    },
    // nfs, csi
    {
      name: "nfs as a string",
      yaml: vp("{conditions: {nfs: server}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.nfs: expected a map with server and/or path",
    },
    {
      name: "nfs with an unknown field",
      yaml: vp("{conditions: {nfs: {host: a}}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.nfs.host: unknown field",
    },
    {
      name: "csi with an unknown field",
      yaml: vp("{conditions: {csi: {name: a}}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.csi.name: unknown field",
    },
    {
      name: "csi volumeAttributes without a driver",
      yaml: vp("{conditions: {csi: {volumeAttributes: {a: b}}}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.csi.driver: must not be empty when volumeAttributes is set",
    },
    {
      name: "csi empty volumeAttributes without a driver (non-nil map)",
      yaml: vp("{conditions: {csi: {volumeAttributes: {}}}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.csi.driver: must not be empty",
    },
    {
      name: "csi volumeAttributes as a list",
      yaml: vp("{conditions: {csi: {driver: d, volumeAttributes: [a]}}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.csi.volumeAttributes: expected a map of string to string",
    },
    // pvcLabels (unmarshalResourcePolicies' own check, then map[string]string)
    {
      name: "pvcLabels as a list",
      yaml: vp("{conditions: {pvcLabels: [a]}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.pvcLabels: must be a map of string to string, got a list",
    },
    {
      name: "pvcLabels as a string",
      yaml: vp("{conditions: {pvcLabels: app}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.pvcLabels: must be a map of string to string, got a string",
    },
    {
      name: "pvcLabels null (Velero: got <nil>)",
      yaml: vp("{conditions: {pvcLabels: null}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.pvcLabels: must be a map of string to string, got <nil>",
    },
    {
      name: "pvcLabels with a non-string key",
      yaml: vp("{conditions: {pvcLabels: {1: a}}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.pvcLabels: must be a map of string to string, got a map with non-string keys",
    },
    {
      name: "pvcLabels with a nested value",
      yaml: vp("{conditions: {pvcLabels: {app: {a: b}}}, action: {type: skip}}"),
      error: "volumePolicies[0].conditions.pvcLabels.app: expected a string",
    },
    // includeExcludePolicy (IncludeExcludePolicy.Validate)
    {
      name: "includeExcludePolicy with an unknown field",
      yaml: v1("includeExcludePolicy: {includedResources: [a]}"),
      error: "includeExcludePolicy.includedResources: unknown field",
    },
    { name: "includeExcludePolicy as a list", yaml: v1("includeExcludePolicy: [a]"), error: "includeExcludePolicy: expected a map of resource lists" },
    {
      name: "'*' in an includes list",
      yaml: v1("includeExcludePolicy: {includedClusterScopedResources: ['*']}"),
      error: 'includeExcludePolicy.includedClusterScopedResources: "*" is not allowed',
    },
    {
      name: "'*' in an excludes list",
      yaml: v1("includeExcludePolicy: {excludedNamespaceScopedResources: ['*']}"),
      error: 'includeExcludePolicy.excludedNamespaceScopedResources: "*" is not allowed',
    },
    {
      name: "an item both included and excluded",
      yaml: v1("includeExcludePolicy: {includedNamespaceScopedResources: [pods], excludedNamespaceScopedResources: [pods]}"),
      error: 'includeExcludePolicy.excludedNamespaceScopedResources: "pods" is also in includedNamespaceScopedResources',
    },
  ])("$name", ({ yaml, error }) => {
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
    { name: "a PV without capacity has capacity 0 (Capacity.Storage())", volume: pv({ capacity: undefined }), field: "capacity", expected: q("0") },
    { name: 'a PV without storage class has class ""', volume: pv({ storageClassName: undefined }), field: "storageClass", expected: "" },
    { name: "an NFS PV", volume: pv({ type: "nfs", csi: undefined, nfs: { server: "s", path: "/p" } }), field: "nfs", expected: { server: "s", path: "/p" } },
    { name: "a PV's storageos source is Velero's storageOS", volume: pv({ type: "storageos", csi: undefined }), field: "volumeType", expected: "storageOS" },
    { name: "a local PV", volume: pv({ type: "local", csi: undefined }), field: "volumeType", expected: "local" },
    { name: "an unknown PV source has no type", volume: pv({ type: "somethingNew", csi: undefined }), field: "volumeType", expected: "" },
  ] as const)("$name", ({ volume, field, expected }) => {
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
    { name: "emptyDir", vol: { name: "v", type: "emptyDir" }, expected: { volumeType: "emptyDir" } },
    {
      name: "inline NFS",
      vol: { name: "v", type: "nfs", nfs: { server: "s", path: "/p" } },
      expected: { volumeType: "nfs", nfs: { server: "s", path: "/p" } },
    },
    {
      name: "inline CSI",
      vol: { name: "v", type: "csi", csi: { driver: "d", volumeAttributes: { a: "b" } } },
      expected: { volumeType: "csi", csi: { driver: "d", volumeAttributes: { a: "b" } } },
    },
    { name: "generic ephemeral", vol: { name: "v", type: "ephemeral" }, expected: { volumeType: "ephemeral" } },
    { name: "storageos is spelt storageOS", vol: { name: "v", type: "storageos" }, expected: { volumeType: "storageOS" } },
    { name: "a PVC volume has no type of its own", vol: { name: "v", type: "persistentVolumeClaim", claimName: "c" }, expected: { volumeType: "" } },
    { name: "an image volume has no Velero type", vol: { name: "v", type: "image" }, expected: { volumeType: "" } },
  ] as const)("pod volume (parsePodVolume): $name", ({ vol, expected }) => {
    expect(factsFromPodVolume(vol as PodVolume)).toEqual({ capacity: q("0"), storageClass: "", pvcPhase: "", ...expected });
  });

  it.each([
    { name: "awsElasticBlockStore", pvType: "awsElasticBlockStore", podType: "awsElasticBlockStore" },
    { name: "gitRepo exists only for pod volumes", pvType: "", podType: "gitRepo" },
    { name: "local exists only for PVs", pvType: "local", podType: "" },
    { name: "secret", pvType: "", podType: "secret" },
    { name: "hostPath", pvType: "hostPath", podType: "hostPath" },
    { name: "persistentVolumeClaim has none", pvType: "", podType: "" },
  ])("volume type names: $name", ({ name, pvType, podType }) => {
    const key = name.split(" ")[0] as string;
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
    {
      name: "an unbound PVC (no volumeName)",
      claim: pvc({ phase: "Pending", volumeName: undefined }),
      pvError: "PVC shop/data has no volume backing this claim",
    },
    { name: "a PVC with volumeName that is not Bound", claim: pvc({ phase: "Lost" }), pvError: "PVC shop/data is in phase Lost and is not bound to a volume" },
    { name: "a Bound PVC whose PV is missing", claim: pvc({ volumeName: "pv-gone" }), pvError: "failed to get PV pv-gone for PVC shop/data" },
  ])("$name: PVC-only facts, and the PV error Velero reports when no policy matches", ({ claim, pvError }) => {
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
    { name: "capacity [a,b] includes a", capacity: "10Gi,100Gi", size: "10Gi", expected: true },
    { name: "capacity [a,b] includes b", capacity: "10Gi,100Gi", size: "100Gi", expected: true },
    { name: "capacity [a,b] excludes below a", capacity: "10Gi,100Gi", size: "9Gi", expected: false },
    { name: "capacity [a,b] excludes above b", capacity: "10Gi,100Gi", size: "101Gi", expected: false },
    { name: "capacity [a,b] compares exactly across units (1Gi > 1G)", capacity: "1,1G", size: "1Gi", expected: false },
    { name: "capacity [a,] is at least a", capacity: "10Gi,", size: "1Ti", expected: true },
    { name: "capacity [a,] excludes below a", capacity: "10Gi,", size: "1Gi", expected: false },
    { name: "capacity [,b] is at most b", capacity: ",10Gi", size: "10Gi", expected: true },
    { name: "capacity [,b] excludes above b", capacity: ",10Gi", size: "11Gi", expected: false },
    { name: "capacity [,b] matches a zero-size volume", capacity: ",10Gi", size: "0", expected: true },
    { name: 'capacity "," matches anything', capacity: ",", size: "1Ei", expected: true },
    { name: "capacity [a,] never matches a pod volume (capacity 0)", capacity: "1,", size: "0", expected: false },
    { name: "capacity [a,a] matches exactly a", capacity: "5Gi,5Gi", size: "5Gi", expected: true },
  ])("$name", ({ capacity, size, expected }) => {
    expect(matchVolumePolicy(one(`{capacity: "${capacity}"}`), facts({ capacity: size })) !== undefined).toBe(expected);
  });

  it.each([
    { name: "storageClass: one of the list", conditions: "{storageClass: [gp2, gp3]}", volume: facts({ storageClass: "gp3" }), expected: true },
    { name: "storageClass: not in the list", conditions: "{storageClass: [gp2]}", volume: facts({ storageClass: "gp3" }), expected: false },
    { name: "storageClass: a volume without class never matches", conditions: '{storageClass: [""]}', volume: facts(), expected: false },
    { name: "storageClass: empty list matches any", conditions: "{storageClass: []}", volume: facts(), expected: true },
    // nfs: nfsCondition.match, an empty server or path means any
    { name: "nfs: {} matches any NFS volume", conditions: "{nfs: {}}", volume: facts({ nfs: { server: "s", path: "/p" } }), expected: true },
    { name: "nfs: {} does not match a non-NFS volume", conditions: "{nfs: {}}", volume: facts(), expected: false },
    { name: "nfs: null matches every volume", conditions: "{nfs: null}", volume: facts(), expected: true },
    { name: "nfs: server only", conditions: "{nfs: {server: s}}", volume: facts({ nfs: { server: "s", path: "/any" } }), expected: true },
    { name: "nfs: server differs", conditions: "{nfs: {server: s}}", volume: facts({ nfs: { server: "t", path: "/p" } }), expected: false },
    { name: "nfs: path only", conditions: "{nfs: {path: /p}}", volume: facts({ nfs: { server: "any", path: "/p" } }), expected: true },
    { name: "nfs: path differs", conditions: "{nfs: {path: /p}}", volume: facts({ nfs: { server: "s", path: "/q" } }), expected: false },
    { name: "nfs: both must match", conditions: "{nfs: {server: s, path: /p}}", volume: facts({ nfs: { server: "s", path: "/p" } }), expected: true },
    { name: "nfs: both, server differs", conditions: "{nfs: {server: s, path: /p}}", volume: facts({ nfs: { server: "t", path: "/p" } }), expected: false },
    {
      name: "nfs: paths compare exactly (no prefix, no trailing-slash folding)",
      conditions: "{nfs: {path: /p}}",
      volume: facts({ nfs: { server: "s", path: "/p/" } }),
      expected: false,
    },
    // csi: csiCondition.match
    { name: "csi: {} matches any CSI volume", conditions: "{csi: {}}", volume: facts({ csi: { driver: "d", volumeAttributes: {} } }), expected: true },
    { name: "csi: {} does not match a non-CSI volume", conditions: "{csi: {}}", volume: facts(), expected: false },
    { name: "csi: driver matches", conditions: "{csi: {driver: d}}", volume: facts({ csi: { driver: "d", volumeAttributes: {} } }), expected: true },
    { name: "csi: driver differs", conditions: "{csi: {driver: d}}", volume: facts({ csi: { driver: "e", volumeAttributes: {} } }), expected: false },
    { name: "csi: driver on a non-CSI volume", conditions: "{csi: {driver: d}}", volume: facts(), expected: false },
    {
      name: "csi: attributes are a subset",
      conditions: "{csi: {driver: d, volumeAttributes: {a: '1'}}}",
      volume: facts({ csi: { driver: "d", volumeAttributes: { a: "1", b: "2" } } }),
      expected: true,
    },
    {
      name: "csi: attribute value differs",
      conditions: "{csi: {driver: d, volumeAttributes: {a: '1'}}}",
      volume: facts({ csi: { driver: "d", volumeAttributes: { a: "2" } } }),
      expected: false,
    },
    {
      name: "csi: attribute missing",
      conditions: "{csi: {driver: d, volumeAttributes: {a: '1'}}}",
      volume: facts({ csi: { driver: "d", volumeAttributes: { b: "1" } } }),
      expected: false,
    },
    {
      name: "csi: wanted attributes but the volume has none",
      conditions: "{csi: {driver: d, volumeAttributes: {a: ''}}}",
      volume: facts({ csi: { driver: "d", volumeAttributes: {} } }),
      expected: false,
    },
    {
      name: 'csi: a wanted "" matches a missing attribute (Go map read)',
      conditions: "{csi: {driver: d, volumeAttributes: {a: ''}}}",
      volume: facts({ csi: { driver: "d", volumeAttributes: { b: "1" } } }),
      expected: true,
    },
    {
      name: "csi: empty volumeAttributes with a driver match on driver",
      conditions: "{csi: {driver: d, volumeAttributes: {}}}",
      volume: facts({ csi: { driver: "d", volumeAttributes: {} } }),
      expected: true,
    },
    // volumeTypes: volumeTypeCondition.match
    { name: "volumeTypes: in the list", conditions: "{volumeTypes: [nfs, csi]}", volume: facts({ volumeType: "csi" }), expected: true },
    { name: "volumeTypes: not in the list", conditions: "{volumeTypes: [nfs]}", volume: facts({ volumeType: "csi" }), expected: false },
    {
      name: "volumeTypes: Velero's spelling, not the Kubernetes key",
      conditions: "{volumeTypes: [storageos]}",
      volume: facts({ volumeType: "storageOS" }),
      expected: false,
    },
    { name: 'volumeTypes: [""] matches a volume Velero has no type for', conditions: '{volumeTypes: [""]}', volume: facts(), expected: true },
    // pvcLabels: labels.SelectorFromSet
    { name: "pvcLabels: a subset matches", conditions: "{pvcLabels: {app: db}}", volume: facts({ pvcLabels: { app: "db", tier: "x" } }), expected: true },
    { name: "pvcLabels: value differs", conditions: "{pvcLabels: {app: db}}", volume: facts({ pvcLabels: { app: "web" } }), expected: false },
    { name: "pvcLabels: key missing", conditions: "{pvcLabels: {app: db}}", volume: facts({ pvcLabels: { tier: "x" } }), expected: false },
    { name: "pvcLabels: no PVC labels", conditions: "{pvcLabels: {app: db}}", volume: facts(), expected: false },
    {
      name: "pvcLabels: an empty value needs the key present",
      conditions: "{pvcLabels: {app: ''}}",
      volume: facts({ pvcLabels: { tier: "x" } }),
      expected: false,
    },
    {
      name: "pvcLabels: an empty value matches an empty label",
      conditions: "{pvcLabels: {app: ''}}",
      volume: facts({ pvcLabels: { app: "" } }),
      expected: true,
    },
    { name: "pvcLabels: {} matches any", conditions: "{pvcLabels: {}}", volume: facts(), expected: true },
    // pvcPhase: pvcPhaseCondition.match
    { name: "pvcPhase: in the list", conditions: "{pvcPhase: [Pending, Lost]}", volume: facts({ pvcPhase: "Pending" }), expected: true },
    { name: "pvcPhase: not in the list", conditions: "{pvcPhase: [Pending]}", volume: facts({ pvcPhase: "Bound" }), expected: false },
    { name: "pvcPhase: no PVC never matches", conditions: '{pvcPhase: [""]}', volume: facts(), expected: false },
    // AND
    {
      name: "all conditions must hold",
      conditions: "{storageClass: [gp3], volumeTypes: [csi]}",
      volume: facts({ storageClass: "gp3", volumeType: "nfs" }),
      expected: false,
    },
    {
      name: "all conditions hold",
      conditions: "{storageClass: [gp3], volumeTypes: [csi], capacity: ',1Ti'}",
      volume: facts({ storageClass: "gp3", volumeType: "csi", capacity: "1Gi" }),
      expected: true,
    },
    { name: "no conditions match every volume", conditions: "{}", volume: facts(), expected: true },
  ])("$name", ({ conditions, volume, expected }) => {
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
