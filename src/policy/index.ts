export { createPolicySource, type PolicySourceImpl, type PolicySourceOptions, type ReloadResult } from "./source.js";
export { readPolicyData, readPolicyText, describeRefusal, type PolicyDocumentResult, type PolicyRefusal } from "./document.js";
