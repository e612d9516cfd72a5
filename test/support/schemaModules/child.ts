// Run by test/unit/schemaCompilers.test.ts in a process of its own: starts an HTTPS webhook
// server as `serve` makes it ("gate"), or fastify with its defaults ("fastify", the control),
// answers a request, and says which JSON-schema compiler modules the process has loaded.
import Fastify from "fastify";
import { createRequire } from "node:module";
import { get } from "node:https";
import { createWebhookServer } from "../../../src/admission/server.js";
import { DEFAULT_POLICY } from "../../../src/core/policy.js";
import { createLogger } from "../../../src/logging/logger.js";
import { createMetrics } from "../../../src/metrics/metrics.js";
import { SelfManagedTls } from "../../../src/tls/selfManaged.js";
import { FakeClusterCache } from "../fakes/clusterCache.js";
import { StaticPolicySource } from "../fakes/policySource.js";

const COMPILERS =
  /node_modules\/(ajv|ajv-formats|@fastify\/ajv-compiler|@fastify\/fast-json-stringify-compiler)\/|node_modules\/fast-json-stringify\/index\.js$/;

async function gate(): Promise<void> {
  const tls = new SelfManagedTls({ service: { name: "backup-gate", namespace: "backup-gate" }, extraSans: ["127.0.0.1"] });
  await tls.start();
  const server = await createWebhookServer({
    tls,
    cache: new FakeClusterCache(),
    policy: new StaticPolicySource(DEFAULT_POLICY),
    metrics: createMetrics(),
    log: createLogger("silent"),
  });
  const { url } = await server.listen({ host: "127.0.0.1", port: 0 });
  const status = await new Promise<number>((resolve, reject) =>
    get(`${url}/healthz`, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on("error", reject),
  );
  if (status !== 200) throw new Error(`/healthz answered ${status}`);
  await server.close();
  await tls.stop();
}

async function bareFastify(): Promise<void> {
  const app = Fastify();
  app.get("/", async () => ({ ok: true }));
  await app.ready();
  await app.close();
}

await (process.argv[2] === "gate" ? gate() : bareFastify());
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((f) => COMPILERS.test(f));
process.stdout.write(`${JSON.stringify({ compilerModules: loaded.length })}\n`);
