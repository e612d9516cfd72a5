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
    { name: "a missing file", args: ["--snapshot", "/no/such/file"], message: /^backup-gate: cannot read snapshot \/no\/such\/file: ENOENT\n$/ },
    { name: "a file that is not YAML", args: ["--snapshot", file("bad.yaml", "items: [\n")], message: /is not valid YAML or JSON/ },
    { name: "a document that is not a List", args: ["--snapshot", file("notlist.yaml", "kind: Pod\n")], message: /is not a Kubernetes List/ },
    {
      name: "an object missing a field, named with its index and field",
      args: ["--snapshot", file("nons.yaml", "kind: List\nitems:\n- {kind: Pod, metadata: {name: x}}\n")],
      message: /items\[0\] Pod x: metadata\.namespace: /,
    },
    {
      name: "a backup with a malformed status, named",
      args: [
        "--snapshot",
        file("badbackup.yaml", "kind: List\nitems:\n- {kind: Backup, metadata: {name: b, namespace: velero}, status: {queuePosition: first}}\n"),
      ],
      message: /items\[0\] Backup velero\/b: status\.queuePosition: /,
    },
    {
      name: "a backup whose creation time is not RFC 3339 (its aging and queue order would be lost), named",
      args: [
        "--snapshot",
        file("badtime.yaml", "kind: List\nitems:\n- {kind: Backup, metadata: {name: b, namespace: velero, creationTimestamp: yesterday}}\n"),
      ],
      message: /^backup-gate: snapshot .*badtime\.yaml: items\[0\] Backup velero\/b: metadata\.creationTimestamp: is not an RFC 3339 time/,
    },
    {
      name: "a backup spec field of the wrong type (the API server would never store it), named",
      args: [
        "--snapshot",
        file("badspec.yaml", "kind: List\nitems:\n- {kind: Backup, metadata: {name: b, namespace: velero}, spec: {includedNamespaces: shop}}\n"),
      ],
      message: /^backup-gate: snapshot .*badspec\.yaml: items\[0\] Backup velero\/b: spec\.includedNamespaces: /,
    },
    {
      name: "a garbage policy, with the field at fault",
      args: ["--snapshot", FIXTURE, "--policy", file("p.yaml", "maxConcurrentBackups: lots\n")],
      message: /policy .*p\.yaml: maxConcurrentBackups: /,
    },
    { name: "an unknown level", args: ["--snapshot", FIXTURE, "--level", "Pod"], message: /--level must be Namespace or ItemBlock, not Pod/ },
    { name: "an unknown flag", args: ["--snapshot", FIXTURE, "--frobnicate"], message: /Unknown option '--frobnicate'/ },
    { name: "no snapshot", args: [], message: /--snapshot is required/ },
  ])("bad input: $name gets one clear line and exit code 2, never a stack trace", async ({ args, message }) => {
    const { code, stdout, stderr } = await run("plan", ...args);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toMatch(message);
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
