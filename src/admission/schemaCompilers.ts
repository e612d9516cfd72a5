import type { FastifyServerOptions } from "fastify";

// No route of the webhook server declares a JSON schema: zod reads every body. Handing fastify
// these compilers keeps it from loading its own (ajv with its formats and fast-json-stringify:
// about 250 modules and 2.3 MiB of heap `serve` would hold for nothing; docs/performance.md,
// "Tables in name order"). A route that declares a schema fails at startup, saying so.

type SchemaCompilers = NonNullable<NonNullable<FastifyServerOptions["schemaController"]>["compilersFactory"]>;

function refuseRouteSchema({ method, url }: { method: string; url: string }): never {
  throw new Error(`${method} ${url} declares a JSON schema; this server reads bodies with zod and loads no JSON-schema compiler`);
}

// Cast: fastify types its validator factory as ajv's compile (a schema in), but calls the
// compiler it returns with the route, as it does the serializer's.
export const NO_SCHEMA_COMPILERS = {
  buildValidator: () => refuseRouteSchema,
  buildSerializer: () => refuseRouteSchema,
} as unknown as SchemaCompilers;
