/**
 * A helm `--post-renderer` (run as `node --import tsx podApiEnv.ts HOST PORT`): points every
 * Deployment's containers at the API server on HOST:PORT (KUBERNETES_SERVICE_HOST/PORT). The
 * test node has no kube-proxy, so pods cannot reach the `kubernetes` Service's ClusterIP; the
 * Velero harness sets the same variables (node.ts). Everything else passes through unchanged.
 */
import { readFileSync } from "node:fs";
import { parseAllDocuments, stringify } from "yaml";

interface Container {
  env?: { name: string; value?: string }[];
}

const [host, port] = process.argv.slice(2);
if (!host || !port) {
  process.stderr.write("usage: podApiEnv.ts HOST PORT (a helm post-renderer)\n");
  process.exit(2);
}
const docs = parseAllDocuments(readFileSync(0, "utf8"))
  .map((d) => d.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: Container[] } } } } | null)
  .filter((d) => d !== null);
for (const d of docs) {
  if (d.kind !== "Deployment") continue;
  for (const c of d.spec?.template?.spec?.containers ?? []) {
    c.env = [...(c.env ?? []), { name: "KUBERNETES_SERVICE_HOST", value: host }, { name: "KUBERNETES_SERVICE_PORT", value: port }];
  }
}
process.stdout.write(docs.map((d) => stringify(d)).join("---\n"));
