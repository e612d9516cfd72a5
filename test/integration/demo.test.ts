/**
 * `npm run demo` end to end with DEMO_EXIT=1: the whole local stack (control plane, S3,
 * Velero with its queue off, backup-gate with dev certs from certs/), the burst, the report,
 * and a clean stop. About 70 s here (probe sleep 1 s); the demo waits for port 8080 first if
 * another Velero holds it.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { spawnManaged, type ManagedProcess } from "../support/proc.js";
import { repoRoot } from "../support/tools.js";

const LIMIT_MS = 180_000;

describe("npm run demo (DEMO_EXIT=1)", () => {
  let demo: ManagedProcess | undefined;
  afterAll(async () => {
    await demo?.stop(60_000);
  });

  it("runs the burst through Velero and backup-gate, writes the report, and stops everything", async () => {
    const dir = mkdtempSync(join(tmpdir(), "backup-gate-demo-test-"));
    const reportDir = join(dir, "report");
    let out = "";
    const t = Date.now();
    demo = spawnManaged(process.execPath, ["--import", "tsx", join(repoRoot, "scripts/demo.ts")], {
      name: "demo",
      logDir: dir,
      cwd: repoRoot,
      env: { ...process.env, DEMO_EXIT: "1", DEMO_REPORT_DIR: reportDir, DEMO_PROBE_SLEEP: "1s", BACKUP_GATE_DEMO_TMP: dir },
      onStdoutLine: (l) => { out += `${l}\n`; },
    });
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      demo.exited,
      new Promise<"timeout">((r) => { timer = setTimeout(() => r("timeout"), LIMIT_MS); }),
    ]);
    clearTimeout(timer);
    if (result === "timeout") throw new Error(`the demo did not finish within ${LIMIT_MS} ms\n${demo.tail(60)}`);
    expect(result.code, demo.tail(80)).toBe(0);
    // Each line the demo promises.
    expect(out).toMatch(/dev certificates written to certs\//);
    expect(out).toMatch(/^rejected nightly-db-\d{14} \(HTTP 403\): .*serialWorkloads is Forbid/m);
    expect(out).toMatch(/^warning: backup cart-2 will wait behind cart-1: both snapshot PVC shop\/data-cart-0$/m);
    expect(out).toMatch(/^12 backups, ItemBlock level, 4 slots$/m);
    expect(out).toMatch(/^makespan [\d.]+s {3}wait: mean [\d.]+s, max [\d.]+s/m);
    expect(out).toMatch(/probe check: no pod, PVC or PV was processed by two backups at the same time/);
    expect(out).toMatch(/kubectl --kubeconfig \S+kubeconfig get backups -n velero/);
    expect(out).not.toMatch(/PROBLEM:/);
    const html = readFileSync(join(reportDir, "report.html"), "utf8");
    expect(html.match(/<g class="bar[^"]*" data-backup=/g)?.length).toBe(12);
    const json = JSON.parse(readFileSync(join(reportDir, "report.json"), "utf8")) as { backups: { name: string; phase: string }[] };
    expect(json.backups.map((b) => b.phase)).toEqual(Array(12).fill("Completed"));
    // The wait behind a conflict is recorded.
    expect(json.backups.find((b) => b.name === "cart-2")).toMatchObject({ waitingFor: expect.arrayContaining(["cart-1"]) });
    console.log(`demo finished in ${Math.round((Date.now() - t) / 1000)} s`);
  }, LIMIT_MS + 60_000);
});
