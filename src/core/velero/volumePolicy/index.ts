// Velero resource policies ("volume policies"), as Velero v1.18.1 reads and applies them
// (internal/resourcepolicies and internal/volumehelper at tag v1.18.1).
//
// A Backup's spec.resourcePolicy {kind: configmap, name} names a ConfigMap in the Backup's
// namespace. Its data must hold exactly one key whose value is YAML:
//
//   version: v1
//   volumePolicies:
//     - conditions: {capacity: "0,100Gi", storageClass: [gp2], csi: {driver: ebs.csi.aws.com}}
//       action: {type: snapshot}
//   includeExcludePolicy: {excludedNamespaceScopedResources: [secrets]}
//
// The first volume policy whose conditions all hold decides the volume's action.
//
// The pieces, one job each: `model` (the policy types), `yaml` (yaml.v3's decoding rules),
// `schema` (Velero's strict fields, as zod), `parse` (ConfigMap to policies), `facts` (what
// Velero knows of a volume) and `match` (the first policy whose conditions hold).

export * from "./model.js";
export { parseVolumePolicies, parseVolumePoliciesYaml } from "./parse.js";
export * from "./facts.js";
export { matchVolumePolicy, volumeConditionsMatch } from "./match.js";
