/**
 * `backup-gate queue` and `explain` against a real API server with backup-gate serving: every
 * row (in flight, waiting behind a conflict, waiting for a slot) shows position, priority, wait
 * so far, waiting for and reason, read through a kubeconfig as a user's kubectl would.
 */
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { backupsIn, createWithWarnings, startGate, type GateProcess } from "../support/gate.js";
import { backupBody } from "../support/builders.js";
import { clients, createNamespace, createWorkload, getBackup, updateVelero, type BackupOptions, type Clients } from "../support/objects.js";
import { sleep, waitFor } from "../support/wait.js";
import { runCli, scratch } from "../unit/support/cli.js";
import type { QueueRow } from "../../src/cli/queue.js";

const VELERO = "velero";
const GATE_NS = "backup-gate";
// Aging off, so priorities are exactly the policy's; two slots, so a third backup waits for one.
const POLICY = "conflictLevel: ItemBlock\nmaxConcurrentBackups: 2\npriorities: {agingSeconds: 0, manual: 10}\n";

describe("backup-gate queue and explain on a real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let gate: GateProcess;

  const app = (label: string, extra: BackupOptions = {}): BackupOptions => ({
    includedNamespaces: ["shop"],
    spec: { labelSelector: { matchLabels: { app: label } } },
    ...extra,
  });
  const create = async (name: string, o: BackupOptions) => {
    const res = await createWithWarnings(cp, `/apis/velero.io/v1/namespaces/${VELERO}/backups`, backupBody(name, VELERO, o));
    expect(res.status).toBe(201);
  };
  const { waitPhase, setPhase } = backupsIn(
    () => cp,
    () => c,
    VELERO,
  );
  const cli = async (...args: string[]) => {
    const r = await runCli(...args, "--kubeconfig", cp.kubeconfigPath);
    expect(r.stderr).toBe(""); // progress goes to stderr only on a terminal
    expect(r.code).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    cp = await startControlPlane({ name: "cli-queue" });
    c = clients(cp.kubeConfig);
    for (const ns of [VELERO, GATE_NS, "shop"]) await createNamespace(c, ns);
    await c.core.createNamespacedConfigMap({ namespace: GATE_NS, body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": POLICY } } });
    for (const w of ["cart", "orders", "search"]) await createWorkload(c, "shop", w);
    gate = await startGate(cp, { identity: "gate-q", register: true });

    await create("cart-1", app("cart"));
    await waitPhase("cart-1", "ReadyToStart");
    await setPhase("cart-1", "InProgress");
    // In flight without backup-gate's mark: created InProgress, as by a writer before the gate ran.
    await create("legacy-1", app("search", { status: { phase: "InProgress" } }));
    await create("cart-2", app("cart"));
    await create("orders-1", app("orders", { labels: { "backup-gate.io/priority": "50" } }));
    await waitPhase("cart-2", "Queued");
    await waitPhase("orders-1", "Queued");
  }, 300_000);
  afterAll(async () => {
    await gate?.stop();
    await cp?.stop();
  });

  it("--json: one row per backup with position, priority, wait so far, waiting for and reason", async () => {
    const out = JSON.parse(await cli("queue", "--json")) as { level: string; limit: number; rows: QueueRow[] };
    expect(out).toMatchObject({ level: "ItemBlock", limit: 2 });
    const rows = new Map(out.rows.map((r) => [r.backup, r]));
    expect(out.rows.map((r) => r.backup)).toEqual(["cart-1", "legacy-1", "orders-1", "cart-2"]);

    // In flight, promoted by the gate: its wait is creation to the promotion the gate recorded.
    const cart1 = await getBackup(c, VELERO, "cart-1");
    const waited = Math.round((Date.parse(cart1.metadata.annotations["backup-gate.io/promoted-at"]) - Date.parse(cart1.metadata.creationTimestamp)) / 1000);
    expect(rows.get("cart-1")).toEqual({
      backup: "cart-1",
      phase: "InProgress",
      position: null,
      priority: 10,
      effectivePriority: 10,
      waitedSeconds: Math.max(0, waited),
      waitingFor: [],
      reason: "in flight",
    });
    expect(rows.get("legacy-1")).toMatchObject({
      phase: "InProgress",
      position: null,
      waitedSeconds: null,
      reason: expect.stringMatching(/started without backup-gate/),
    });

    // Both slots are taken: the priority-50 backup is first in line, waiting for a slot, not for a backup.
    expect(rows.get("orders-1")).toMatchObject({
      phase: "Queued",
      position: 1,
      priority: 50,
      effectivePriority: 50,
      waitingFor: [],
      reason: "waits for a free slot: 2 of 2 backups in flight",
    });
    expect(rows.get("cart-2")).toMatchObject({ phase: "Queued", position: 2, priority: 10, waitingFor: ["cart-1"] });
    expect(rows.get("cart-2")?.reason).toMatch(/^waits behind cart-1 \(InProgress\): both snapshot PVC shop\/data-cart-0/);
    for (const name of ["orders-1", "cart-2"]) {
      const b = await getBackup(c, VELERO, name);
      const sinceCreation = (Date.now() - Date.parse(b.metadata.creationTimestamp)) / 1000;
      expect(rows.get(name)?.waitedSeconds).toBeGreaterThanOrEqual(0);
      expect(rows.get(name)?.waitedSeconds).toBeLessThanOrEqual(Math.ceil(sinceCreation) + 1);
    }
  });

  it("the table: a header naming the five things, one line per backup, and the gate's own positions", async () => {
    const text = await cli("queue");
    const lines = text.trimEnd().split("\n");
    expect(lines[0]).toBe("level ItemBlock, 2 of 2 in flight, 2 waiting");
    expect(lines[1]).toMatch(/^BACKUP +PHASE +POS +PRIO +WAITED +WAITING FOR +REASON$/);
    expect(text).toMatch(/^cart-1 +InProgress +- +10 +\d+s +- +in flight$/m);
    expect(text).toMatch(/^legacy-1 +InProgress +- +10 +- +- +in flight; started without backup-gate/m);
    expect(text).toMatch(/^orders-1 +Queued +1 +50 +\d+s +- +waits for a free slot: 2 of 2 backups in flight$/m);
    expect(text).toMatch(/^cart-2 +Queued +2 +10 +\d+s +cart-1 +waits behind cart-1 \(InProgress\)/m);
    // The first position agrees with what the controller wrote (what `velero backup get` shows);
    // others may lag by design (positionUpdates pacing), the CLI always shows the live plan.
    expect((await getBackup(c, VELERO, "orders-1")).status.queuePosition).toBe(1);
  });

  it("on a terminal, progress (what is being read, objects so far) is shown and cleared before the answer (off a terminal stderr stays empty, above)", async () => {
    // `script` gives the CLI a pseudo-terminal, as a user's shell does; the pty merges stdout and stderr.
    const cmd = [process.execPath, "--import", "tsx", "src/cli/main.ts", "queue", "--kubeconfig", cp.kubeconfigPath].map((a) => `'${a}'`).join(" ");
    const { stdout } = await promisify(execFile)("script", ["-qec", cmd, "/dev/null"]);
    expect(stdout).toMatch(/reading Pods\.\.\. \d+/);
    expect(stdout).toMatch(/reading Backups\.\.\. 4/);
    expect(stdout).toContain("\r\u001b[2Klevel ItemBlock, 2 of 2 in flight");
  });

  it("explain names the level for a live backup and for a file not yet created", async () => {
    expect(await cli("explain", "cart-2")).toMatch(/^cart-2 is #2 in the queue, judged at ItemBlock level: waits behind cart-1 \(InProgress\)/);
    expect(await cli("explain", "orders-1")).toBe("orders-1 is #1 in the queue, judged at ItemBlock level: waits for a free slot: 2 of 2 backups in flight\n");
    expect(await cli("explain", "cart-1")).toBe("cart-1 is InProgress: it is not waiting.\n");
    const file = scratch("bg-cli-queue-");
    const ifCreated = (name: string, o: BackupOptions) => cli("explain", "-f", file(`${name}.json`, JSON.stringify(backupBody(name, VELERO, o))));
    expect(await ifCreated("manifests-9", app("none"))).toMatch(/^manifests-9 would wait \(judged at ItemBlock level\): waits for a free slot/);
    expect(await ifCreated("manifests-10", app("none", { annotations: { "backup-gate.io/conflict-level": "Namespace" } }))).toMatch(
      /^manifests-10 would wait \(judged at Namespace level\): waits behind cart-1 \(InProgress\)/,
    );
  });

  it("-o yaml round-trips: it parses to exactly what -o json gives (and --json is -o json)", async () => {
    const [yaml, json, legacy] = await Promise.all([cli("queue", "-o", "yaml"), cli("queue", "-o", "json"), cli("queue", "--json")]);
    const fromYaml = parseYaml(yaml) as { rows: QueueRow[] };
    // Waits tick between two reads a second apart; everything else must be equal.
    const still = (d: { rows: QueueRow[] }) => ({ ...d, rows: d.rows.map((r) => ({ ...r, waitedSeconds: r.waitedSeconds === null ? null : 0 })) });
    expect(still(fromYaml)).toEqual(still(JSON.parse(json)));
    expect(still(JSON.parse(legacy))).toEqual(still(JSON.parse(json)));
    expect(parseYaml(toYaml(fromYaml))).toEqual(fromYaml);
    expect(fromYaml.rows.map((r) => r.backup)).toEqual(["cart-1", "legacy-1", "orders-1", "cart-2"]);
  });

  it("-o wide adds base priority, level and age columns", async () => {
    const text = await cli("queue", "-o", "wide");
    expect(text.split("\n")[1]).toMatch(/^BACKUP +PHASE +POS +PRIO +BASE +LEVEL +AGE +WAITED +WAITING FOR +REASON$/);
    expect(text).toMatch(/^cart-2 +Queued +2 +10 +10 +ItemBlock +\d+[smh]\S* +\d+\S* +cart-1 +waits behind cart-1/m);
  });

  it("explain -o json|yaml (and --json) give the explanation as data; the text is its summary", async () => {
    const json = JSON.parse(await cli("explain", "cart-2", "-o", "json"));
    expect(json).toMatchObject({ backup: "cart-2", state: "Queued", phase: "Queued", level: "ItemBlock", position: 2, waitingFor: ["cart-1"], warnings: [] });
    expect(json.reasons[0]).toMatch(/^waits behind cart-1 \(InProgress\)/);
    expect(parseYaml(await cli("explain", "cart-2", "-o", "yaml"))).toEqual(json);
    expect(JSON.parse(await cli("explain", "cart-2", "--json"))).toEqual(json);
    expect(await cli("explain", "cart-2")).toBe(`${json.summary}\n`);
    const wide = await cli("explain", "cart-2", "-o", "wide");
    expect(wide).toMatch(/^ {2}waiting for: cart-1$/m);
    expect(wide).toMatch(/^ {2}state: Queued$/m);
  });

  it("--context picks the kubeconfig's context; one it does not have is refused in one line", async () => {
    const file = scratch("bg-cli-ctx-");
    const kc = parseYaml(readFileSync(cp.kubeconfigPath, "utf8")) as {
      contexts: { name: string; context: { cluster: string; user: string } }[];
      clusters: { name: string; cluster: object }[];
      "current-context": string;
    };
    const real = kc.contexts.find((x) => x.name === kc["current-context"])!;
    // The current context points nowhere: only --context reaches the API server.
    kc.clusters.push({ name: "nowhere", cluster: { server: "https://127.0.0.1:1" } });
    kc.contexts = [
      { name: "nowhere", context: { ...real.context, cluster: "nowhere" } },
      { ...real, name: "test-ctx" },
    ];
    kc["current-context"] = "nowhere";
    const path = file("kubeconfig.yaml", toYaml(kc));
    const ok = await runCli("queue", "-o", "json", "--kubeconfig", path, "--context", "test-ctx");
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { rows: QueueRow[] }).rows.length).toBe(4);
    const refused = await runCli("queue", "--kubeconfig", path);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^backup-gate: cannot (read|list) .*ECONNREFUSED.*\n$/);
  });

  it("completing explain's argument offers the Backups' names read from the cluster", async () => {
    const candidates = async (word: string) => {
      const r = await runCli("complete", "--", "explain", "--kubeconfig", cp.kubeconfigPath, word);
      expect(r.code).toBe(0);
      const lines = r.stdout.trimEnd().split("\n");
      expect(lines.at(-1)).toBe(":4");
      return lines.slice(0, -1).map((l) => l.split("\t")[0]);
    };
    expect((await candidates("")).sort()).toEqual(["cart-1", "cart-2", "legacy-1", "orders-1"]);
    expect((await candidates("car")).sort()).toEqual(["cart-1", "cart-2"]);
  });

  it("queue --watch redraws through a watch within a second of a change, and only on a change", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "queue", "--watch", "-o", "json", "--kubeconfig", cp.kubeconfigPath]);
    const frames: { at: number; doc: { rows: QueueRow[] } }[] = [];
    let buffered = "";
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        frames.push({ at: Date.now(), doc: JSON.parse(buffered.slice(0, nl)) as { rows: QueueRow[] } });
        buffered = buffered.slice(nl + 1);
      }
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    try {
      await waitFor("the first frame", async () => frames.length > 0, { timeoutMs: 60_000 });
      expect(frames[0]!.doc.rows.find((r) => r.backup === "cart-2")).toMatchObject({ phase: "Queued", position: 2, priority: 10 });
      // Nothing changes: no frame is drawn (a poll would redraw the ticking waits).
      await sleep(2_000);
      expect(frames.length).toBe(1);
      await updateVelero(c, "backups", VELERO, "cart-2", (o) => {
        o.metadata.labels = { ...o.metadata.labels, "backup-gate.io/priority": "90" };
      });
      const changedAt = Date.now();
      await waitFor("a frame with cart-2's new priority", async () => frames.some((f) => f.doc.rows.find((r) => r.backup === "cart-2")?.priority === 90), {
        timeoutMs: 5_000,
        intervalMs: 20,
      });
      const shown = frames.find((f) => f.doc.rows.find((r) => r.backup === "cart-2")?.priority === 90)!;
      expect(shown.at - changedAt).toBeLessThan(1_000);
    } finally {
      child.kill("SIGTERM");
    }
    expect(stderr).toBe("");
  });

  it("when a slot frees, the row moves from waiting to in flight", async () => {
    await setPhase("legacy-1", "Completed");
    await waitPhase("orders-1", "ReadyToStart");
    const out = JSON.parse(await cli("queue", "--json")) as { rows: QueueRow[] };
    expect(out.rows.find((r) => r.backup === "orders-1")).toMatchObject({ phase: "ReadyToStart", position: null, priority: 50, reason: "in flight" });
    expect(out.rows.find((r) => r.backup === "cart-2")).toMatchObject({ position: 1, waitingFor: ["cart-1"] });
    expect(out.rows.map((r) => r.backup)).not.toContain("legacy-1");
  });
});
