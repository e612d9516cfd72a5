import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// deploy/argocd: the Backup health check runs in a real Lua 5.1 interpreter (Argo CD runs
// gopher-lua, a Lua 5.1), with `obj` set to a Backup as Argo CD would pass it; the Application
// ignores exactly the caBundle the gate (or an injector) writes.

const LUA = "/usr/bin/lua5.1";
const SCRIPT = readFileSync("deploy/argocd/backup-health.lua", "utf8");

/** A JSON value as a Lua expression. */
function lua(v: unknown): string {
  if (v === null || v === undefined) return "nil";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `{${v.map(lua).join(", ")}}`;
  return `{${Object.entries(v as Record<string, unknown>)
    .map(([k, x]) => `[${JSON.stringify(k)}] = ${lua(x)}`)
    .join(", ")}}`;
}

async function health(backup: object): Promise<{ status: string; message: string }> {
  const program = `obj = ${lua(backup)}\nlocal hs = (function()\n${SCRIPT}\nend)()\nio.write(hs.status, "\\n", hs.message or "")`;
  const { stdout } = await promisify(execFile)(LUA, ["-e", program]);
  const [status, message] = stdout.split("\n");
  return { status: status ?? "", message: message ?? "" };
}

const REASON = "waits behind nightly (InProgress): both snapshot PVC shop/data-db-0";

describe.skipIf(!existsSync(LUA))("the Argo CD health check of a Backup (lua5.1, Debian package lua5.1)", () => {
  it.each([
    {
      name: "queued, with backup-gate's reason",
      backup: { metadata: { annotations: { "backup-gate.io/reason": REASON } }, status: { phase: "Queued" } },
      status: "Progressing",
      message: `backup-gate: ${REASON}`,
    },
    { name: "new, no status yet", backup: { metadata: { name: "b" } }, status: "Progressing", message: "waiting for backup-gate to plan it (phase New)" },
    {
      name: "promoted, Velero not there yet",
      backup: { metadata: {}, status: { phase: "ReadyToStart" } },
      status: "Progressing",
      message: "started by backup-gate; waiting for Velero to pick it up",
    },
    { name: "running", backup: { metadata: {}, status: { phase: "InProgress" } }, status: "Progressing", message: "Velero: InProgress" },
    { name: "done", backup: { metadata: {}, status: { phase: "Completed" } }, status: "Healthy", message: "Completed" },
    {
      name: "failed, with Velero's reason",
      backup: { metadata: {}, status: { phase: "Failed", failureReason: "found a backup with status InProgress during the server starting" } },
      status: "Degraded",
      message: "Failed: found a backup with status InProgress during the server starting",
    },
    {
      name: "refused by Velero's validation",
      backup: { metadata: {}, status: { phase: "FailedValidation", validationErrors: ["an existing backup storage location was not specified"] } },
      status: "Degraded",
      message: "FailedValidation: an existing backup storage location was not specified",
    },
  ])("$name: $status", async ({ backup, status, message }) => {
    expect(await health(backup)).toEqual({ status, message });
  });
});

describe("the Argo CD Application", () => {
  it("ignores the caBundle of every webhook of both configurations, and respects that on sync", () => {
    const app = parse(readFileSync("deploy/argocd/application.yaml", "utf8")) as {
      spec: {
        ignoreDifferences: { group: string; kind: string; name: string; jqPathExpressions: string[] }[];
        syncPolicy: { syncOptions: string[] };
        source: { path: string };
      };
    };
    expect(app.spec.ignoreDifferences).toEqual(
      ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"].map((kind) => ({
        group: "admissionregistration.k8s.io",
        kind,
        name: "backup-gate",
        jqPathExpressions: [".webhooks[]?.clientConfig.caBundle"],
      })),
    );
    expect(app.spec.syncPolicy.syncOptions).toContain("RespectIgnoreDifferences=true");
    expect(existsSync(`${app.spec.source.path}/Chart.yaml`)).toBe(true);
  });
});
