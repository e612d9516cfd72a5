export {
  createCa,
  issueServing,
  serviceDnsNames,
  splitSans,
  splitPemBundle,
  checkMaterial,
  checkKeyPair,
  bundleVerifies,
  generateRsaKey,
  type IssuedCertificate,
  type KeyPair,
} from "./certs.js";
export { SelfManagedTls, type SelfManagedTlsOptions } from "./selfManaged.js";
export { FileTls, loadTlsFiles, TlsFilesError, TLS_FILES, type FileTlsOptions } from "./files.js";
export { CaBundlePatcher, mergeCaBundle, webhookConfigurationPath, type CaBundlePatcherOptions } from "./caBundle.js";
export { writeDevCerts, type DevCertOptions } from "./devCerts.js";
export { InjectedBundleCheck, type BundleProblem, type InjectedBundleCheckOptions } from "./injectedBundle.js";
export type { TlsMaterial, TlsSource } from "./source.js";
