// Matching: Velero's Policies.match and the conditions' match methods.
import type { Labels } from "../../model.js";
import { compareQuantities, isZeroQuantity, type Quantity } from "../quantity.js";
import type { VolumeFacts } from "./facts.js";
import type { CapacityRange, VolumeAction, VolumeConditions, VolumePolicies } from "./model.js";

function capacityMatches(c: CapacityRange, y: Quantity): boolean {
  // capacity.isInRange: [0, a], [b, 0] and [a, b], bounds inclusive; a zero bound is open.
  if (isZeroQuantity(c.lower) && compareQuantities(c.upper, y) >= 0) return true;
  if (isZeroQuantity(c.upper) && compareQuantities(c.lower, y) <= 0) return true;
  if (!isZeroQuantity(c.lower) && !isZeroQuantity(c.upper)) {
    return compareQuantities(c.lower, y) <= 0 && compareQuantities(c.upper, y) >= 0;
  }
  return false;
}

function storageClassMatches(classes: readonly string[], sc: string): boolean {
  if (classes.length === 0) return true;
  if (sc === "") return false;
  return classes.includes(sc);
}

function nfsMatches(c: VolumeConditions["nfs"], v: VolumeFacts["nfs"]): boolean {
  if (c === undefined) return true;
  if (v === undefined) return false;
  if (c.server !== "" && c.server !== v.server) return false;
  if (c.path !== "" && c.path !== v.path) return false;
  return true;
}

function csiMatches(c: VolumeConditions["csi"], v: VolumeFacts["csi"]): boolean {
  if (c === undefined) return true;
  if (c.driver === "") return v !== undefined;
  if (v === undefined || c.driver !== v.driver) return false;
  const wanted = Object.entries(c.volumeAttributes ?? {});
  if (wanted.length === 0) return true;
  if (Object.keys(v.volumeAttributes).length === 0) return false;
  // Go reads a missing key as "": a wanted "" matches an absent attribute.
  return wanted.every(([k, value]) => (Object.hasOwn(v.volumeAttributes, k) ? v.volumeAttributes[k] : "") === value);
}

function volumeTypeMatches(types: readonly string[], t: string): boolean {
  return types.length === 0 || types.includes(t);
}

function pvcLabelsMatch(wanted: Labels, labels: Labels | undefined): boolean {
  const entries = Object.entries(wanted);
  if (entries.length === 0) return true;
  if (labels === undefined) return false;
  // labels.SelectorFromSet: every key present with exactly this value.
  return entries.every(([k, value]) => Object.hasOwn(labels, k) && labels[k] === value);
}

function pvcPhaseMatches(phases: readonly string[], phase: string): boolean {
  if (phases.length === 0) return true;
  if (phase === "") return false;
  return phases.includes(phase);
}

/** Whether all of a policy's conditions hold for the volume (Velero ANDs them). */
export function volumeConditionsMatch(c: VolumeConditions, v: VolumeFacts): boolean {
  return (
    capacityMatches(c.capacity, v.capacity) &&
    storageClassMatches(c.storageClass, v.storageClass) &&
    nfsMatches(c.nfs, v.nfs) &&
    csiMatches(c.csi, v.csi) &&
    volumeTypeMatches(c.volumeTypes, v.volumeType) &&
    pvcLabelsMatch(c.pvcLabels, v.pvcLabels) &&
    pvcPhaseMatches(c.pvcPhase, v.pvcPhase)
  );
}

/** The action of the first policy whose conditions all hold, or undefined (Policies.match). */
export function matchVolumePolicy(policies: VolumePolicies, facts: VolumeFacts): VolumeAction | undefined {
  for (const policy of policies.volumePolicies) {
    if (volumeConditionsMatch(policy.conditions, facts)) return policy.action;
  }
  return undefined;
}
