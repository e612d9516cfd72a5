import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TlsMaterial } from "./source.js";
import { createCa, issueServing, serviceDnsNames, splitSans } from "./certs.js";
import { TLS_FILES } from "./files.js";

// Dev certificates for the local stack: a fresh CA and a serving certificate written in
// cert-manager's layout (tls.crt, tls.key, ca.crt), so `FileTls` reads them as it would a
// mounted Secret. Default SANs: localhost and 127.0.0.1, plus the Service names when given.

export interface DevCertOptions {
  readonly service?: { readonly name: string; readonly namespace: string };
  readonly extraSans?: readonly string[];
  readonly validityMs?: number;
  readonly now?: number;
}

export async function writeDevCerts(dir = "certs", o: DevCertOptions = {}): Promise<TlsMaterial & { dir: string }> {
  const now = o.now ?? Date.now();
  const validityMs = o.validityMs ?? 365 * 86_400_000;
  const extra = splitSans(o.extraSans ?? ["localhost", "127.0.0.1"]);
  const dnsNames = [...(o.service ? serviceDnsNames(o.service.name, o.service.namespace) : []), ...extra.dnsNames];
  const ca = await createCa({ validityMs, now, commonName: "backup-gate-dev-ca" });
  const serving = await issueServing({ ca, dnsNames, ipAddresses: extra.ipAddresses, validityMs, now });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, TLS_FILES.key), serving.privateKeyPem, { mode: 0o600 });
  await writeFile(join(dir, TLS_FILES.cert), serving.certPem);
  await writeFile(join(dir, TLS_FILES.ca), ca.certPem);
  return { dir, key: serving.privateKeyPem, cert: serving.certPem, ca: ca.certPem, notAfter: serving.notAfter };
}
