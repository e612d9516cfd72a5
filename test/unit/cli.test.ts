import { runCli, scratch } from "./support/cli.js";
import { describe, expect, it } from "vitest";

// `backup-gate plan` as a user runs it: a real process, its stdout, stderr and exit code.

const run = (...args: string[]) => runCli(...args);
const file = scratch("bg-cli-");
const FIXTURE = "test/fixtures/shop.yaml";
const NOW = "2026-01-01T03:00:00Z";

describe("backup-gate plan", () => {
  it("prints the plan as JSON with the documented field names", async () => {
    const { code, stdout } = await run("plan", "--snapshot", FIXTURE, "--now", NOW);
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(Object.keys(out)).toEqual(["now", "level", "limit", "inFlight", "promotions", "queue", "supersessions", "overlaps", "backups"]);
    expect(out.promotions.map((p: { backup: string }) => p.backup)).toEqual(["shop-api"]);
    expect(out.queue[0]).toMatchObject({
      backup: "shop-db",
      position: 1,
      waitingFor: ["nightly"],
      reason: "waits behind nightly (InProgress): both snapshot PVC shop/data-db-0",
    });
    expect(out.backups["shop-db"]).toMatchObject({
      level: "ItemBlock",
      items: { pods: ["shop/db-0"], pvcs: ["shop/data-db-0"], pvs: ["pv-data-db-0"] },
      exclusive: { "shop/pod:db-0": "snapshot PVC shop/data-db-0" },
    });
  });

  it("--level Namespace serializes what shares a namespace; --human prints a summary", async () => {
    const { code, stdout } = await run("plan", "--snapshot", FIXTURE, "--now", NOW, "--level", "Namespace", "--human");
    expect(code).toBe(0);
    expect(stdout).toMatch(/^level Namespace, limit 4, in flight 1: nightly$/m);
    expect(stdout).toMatch(/^wait {3}#2 shop-api .*waits behind nightly \(InProgress\): both include namespace shop/m);
  });

  it("--policy reads a policy document or the ConfigMap that holds it", async () => {
    const cm = file(
      "cm.yaml",
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: backup-gate-policy}\ndata:\n  policy.yaml: |\n    conflictLevel: Namespace\n    maxConcurrentBackups: 1\n",
    );
    const { stdout } = await run("plan", "--snapshot", FIXTURE, "--now", NOW, "--policy", cm);
    expect(JSON.parse(stdout)).toMatchObject({ level: "Namespace", limit: 1, promotions: [] });
  });

  it.each([
    ["a missing file", ["--snapshot", "/no/such/file"], /^backup-gate: cannot read snapshot \/no\/such\/file: ENOENT\n$/],
    ["a file that is not YAML", ["--snapshot", file("bad.yaml", "items: [\n")], /is not valid YAML or JSON/],
    ["a document that is not a List", ["--snapshot", file("notlist.yaml", "kind: Pod\n")], /is not a Kubernetes List/],
    [
      "an object missing a field, named with its index and field",
      ["--snapshot", file("nons.yaml", "kind: List\nitems:\n- {kind: Pod, metadata: {name: x}}\n")],
      /items\[0\] Pod x: metadata\.namespace: /,
    ],
    [
      "a backup with a malformed status, named",
      ["--snapshot", file("badbackup.yaml", "kind: List\nitems:\n- {kind: Backup, metadata: {name: b, namespace: velero}, status: {queuePosition: first}}\n")],
      /items\[0\] Backup velero\/b: status\.queuePosition: /,
    ],
    [
      "a backup whose creation time is not RFC 3339 (its aging and queue order would be lost), named",
      ["--snapshot", file("badtime.yaml", "kind: List\nitems:\n- {kind: Backup, metadata: {name: b, namespace: velero, creationTimestamp: yesterday}}\n")],
      /^backup-gate: snapshot .*badtime\.yaml: items\[0\] Backup velero\/b: metadata\.creationTimestamp: is not an RFC 3339 time/,
    ],
    [
      "a backup spec field of the wrong type (the API server would never store it), named",
      ["--snapshot", file("badspec.yaml", "kind: List\nitems:\n- {kind: Backup, metadata: {name: b, namespace: velero}, spec: {includedNamespaces: shop}}\n")],
      /^backup-gate: snapshot .*badspec\.yaml: items\[0\] Backup velero\/b: spec\.includedNamespaces: /,
    ],
    [
      "a garbage policy, with the field at fault",
      ["--snapshot", FIXTURE, "--policy", file("p.yaml", "maxConcurrentBackups: lots\n")],
      /policy .*p\.yaml: maxConcurrentBackups: /,
    ],
    ["an unknown level", ["--snapshot", FIXTURE, "--level", "Pod"], /--level must be Namespace or ItemBlock, not Pod/],
    ["an unknown flag", ["--snapshot", FIXTURE, "--frobnicate"], /Unknown option '--frobnicate'/],
    ["no snapshot", [], /--snapshot is required/],
  ])("bad input: %s gets one clear line and exit code 2, never a stack trace", async (_, args, message) => {
    const { code, stdout, stderr } = await run("plan", ...args);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toMatch(message);
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
