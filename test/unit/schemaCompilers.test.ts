import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { NO_SCHEMA_COMPILERS } from "../../src/admission/schemaCompilers.js";
import { lastJsonOf } from "../support/childJson.js";

// The webhook server hands fastify compilers of its own that refuse route schemas, so fastify
// loads none of its JSON-schema compilers (src/admission/schemaCompilers.ts).

describe("the webhook server's schema compilers", () => {
  it.each([
    // A process of its own: what an HTTPS webhook server as `serve` makes it has loaded.
    { mode: "gate", loads: false },
    // Control: fastify with its defaults loads ajv and fast-json-stringify, and the count sees it.
    { mode: "fastify", loads: true },
  ] as const)("$mode: JSON-schema compiler modules loaded: $loads", ({ mode, loads }) => {
    const { compilerModules } = lastJsonOf<{ compilerModules: number }>("test/support/schemaModules/child.ts", [mode]);
    if (loads) expect(compilerModules).toBeGreaterThan(10);
    else expect(compilerModules).toBe(0);
  });

  it.each([
    { part: "a body", schema: { body: { type: "object" } } },
    { part: "a response", schema: { response: { 200: { type: "object" } } } },
  ])("a route declaring $part schema fails at startup, saying why", async ({ schema }) => {
    const app = Fastify({ schemaController: { compilersFactory: NO_SCHEMA_COMPILERS } });
    app.post("/review", { schema }, async () => ({}));
    await expect(app.ready()).rejects.toThrow("POST /review declares a JSON schema; this server reads bodies with zod and loads no JSON-schema compiler");
    await app.close().catch(() => undefined);
  });
});
