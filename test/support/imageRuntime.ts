/**
 * How the gate's container runs node, read from the files that set it, so that benches and
 * tests run the server as the image and the Deployment do.
 */
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const root = new URL("../../", import.meta.url);

/** The node flags of the Dockerfile's ENTRYPOINT (those between `node` and the script). */
export function imageNodeFlags(): string[] {
  const line = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(new URL("Dockerfile", root), "utf8"))?.[1];
  if (line === undefined) throw new Error("Dockerfile: no ENTRYPOINT in exec form");
  const [program, ...rest] = JSON.parse(line) as string[];
  if (program !== "node") throw new Error(`Dockerfile: the ENTRYPOINT runs ${program}, not node`);
  return rest.filter((arg) => arg.startsWith("--"));
}

/** NODE_OPTIONS of the gate's container in manifests/30-deployment.yaml. */
export function deploymentNodeOptions(): string {
  type Doc = { kind?: string; spec?: { template?: { spec?: { containers?: { env?: { name: string; value?: string }[] }[] } } } };
  const docs = parseAllDocuments(readFileSync(new URL("manifests/30-deployment.yaml", root), "utf8")).map((d) => d.toJS() as Doc);
  const env = docs.find((d) => d.kind === "Deployment")?.spec?.template?.spec?.containers?.[0]?.env ?? [];
  const value = env.find((e) => e.name === "NODE_OPTIONS")?.value;
  if (value === undefined) throw new Error("manifests/30-deployment.yaml: the gate's container sets no NODE_OPTIONS");
  return value;
}
