export { createPolicySource, type PolicySource, type PolicySourceImpl, type PolicySourceOptions, type ReloadResult } from "./source.js";
export { FALLBACK_POLICY, readPolicyData, readPolicyText, describeRefusal, type PolicyDocumentResult, type PolicyRefusal } from "./document.js";
export { pinVeleroNamespace, type PinnedPolicyOptions } from "./pinned.js";
