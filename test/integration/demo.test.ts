/**
 * `npm run demo` end to end with DEMO_EXIT=1, on the real node (test/support/node.ts): the
 * node, Velero on it with its queue off, backup-gate with dev certs from certs/, the estate's
 * pods, the burst with real hooks and file-system copies, the report, and a clean stop (the
 * node lock released). Then Ctrl-C in the middle stops everything too. Needs root and the
 * node's tools, like test/integration/node.test.ts; BACKUP_GATE_NODE_TESTS=0 skips it.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { spawnManaged, type ManagedProcess } from "../support/proc.js";
import { repoRoot } from "../support/tools.js";

const LIMIT_MS = 420_000;
const NODE_LOCK = join(tmpdir(), "backup-gate-test-node.lock");
const enabled = process.env.BACKUP_GATE_NODE_TESTS !== "0";

const LOCK_WAIT_MS = 1_200_000;

const lockHolder = (): number | undefined => (existsSync(NODE_LOCK) ? (JSON.parse(readFileSync(NODE_LOCK, "utf8")) as { pid: number }).pid : undefined);

/** Whether the demo process `pid` still holds the node lock (it must not after it exits). */
const holdsNodeLock = (pid: number | undefined) => pid !== undefined && lockHolder() === pid;

/** Waits while another run on this machine holds the node (the demo would wait too, inside its time limit). */
async function nodeFree(): Promise<void> {
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    const pid = lockHolder();
    let alive = false;
    try {
      if (pid !== undefined) {
        process.kill(pid, 0);
        alive = true;
      }
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === "EPERM";
    }
    if (!alive) return;
    if (Date.now() > until) throw new Error(`the test node stayed held by pid ${pid} for ${LOCK_WAIT_MS} ms (${NODE_LOCK})`);
    await new Promise((r) => setTimeout(r, 2_000));
  }
}

describe.skipIf(!enabled)("npm run demo (DEMO_EXIT=1) on the real node", () => {
  let demo: ManagedProcess | undefined;
  afterAll(async () => {
    await demo?.stop(60_000);
  });

  it(
    "runs the burst through Velero and backup-gate, writes the report, and stops everything",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "backup-gate-demo-test-"));
      const reportDir = join(dir, "report");
      await nodeFree();
      let out = "";
      const t = Date.now();
      demo = spawnManaged(process.execPath, ["--import", "tsx", join(repoRoot, "scripts/demo.ts")], {
        name: "demo",
        logDir: dir,
        cwd: repoRoot,
        env: { ...process.env, DEMO_EXIT: "1", DEMO_REPORT_DIR: reportDir, DEMO_DATA_MIB: "4", DEMO_HOLD_S: "1" },
        onStdoutLine: (l) => {
          out += `${l}\n`;
        },
      });
      let timer: NodeJS.Timeout | undefined;
      const result = await Promise.race([
        demo.exited,
        new Promise<"timeout">((r) => {
          timer = setTimeout(() => r("timeout"), LIMIT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (result === "timeout") throw new Error(`the demo did not finish within ${LIMIT_MS} ms\n${demo.tail(60)}`);
      expect(result.code, demo.tail(80)).toBe(0);
      // Each line the demo promises.
      expect(out).toMatch(/dev certificates written to certs\//);
      expect(out).toMatch(/^rejected nightly-db-\d{14} \(HTTP 403\): .*serialWorkloads is Forbid/m);
      expect(out).toMatch(/^warning: backup cart-2 will wait behind cart-1: .*pod shop\/cart/m);
      expect(out).toMatch(/^12 backups, ItemBlock level, 4 slots$/m);
      expect(out).toMatch(/^makespan [\d.]+s {3}wait: mean [\d.]+s, max [\d.]+s/m);
      expect(out).toMatch(/probe check: no pod, PVC or PV was processed by two backups at the same time/);
      // Real work: Velero ran every hook, no freeze found its pod frozen, volumes were copied.
      expect(out).toMatch(
        /^Real work: \d+ hooks run by Velero \(0 failed\), \d+ freezes held, never two on one pod at once, \d+ PodVolumeBackups \(kopia\) copying [\d.]+ MiB\.$/m,
      );
      expect(out).toMatch(/^ {2}cart-1 +shop\/cart +data +Completed +4 MiB/m);
      expect(out).toMatch(/kubectl --kubeconfig \S+kubeconfig get backups,podvolumebackups -n velero/);
      expect(out).not.toMatch(/PROBLEM:/);
      const html = readFileSync(join(reportDir, "report.html"), "utf8");
      expect(html.match(/<g class="bar[^"]*" data-backup=/g)?.length).toBe(12);
      const json = JSON.parse(readFileSync(join(reportDir, "report.json"), "utf8")) as { backups: { name: string; phase: string }[] };
      expect(json.backups.map((b) => b.phase)).toEqual(Array(12).fill("Completed"));
      // The wait behind a conflict is recorded.
      expect(json.backups.find((b) => b.name === "cart-2")).toMatchObject({ waitingFor: expect.arrayContaining(["cart-1"]) });
      expect(holdsNodeLock(demo.pid), "the demo exited holding the node lock (node not stopped)").toBe(false);
      console.log(`demo finished in ${Math.round((Date.now() - t) / 1000)} s`);
    },
    LOCK_WAIT_MS + LIMIT_MS + 60_000,
  );

  it(
    "Ctrl-C while the estate starts stops the gate, Velero and the node",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "backup-gate-demo-test-"));
      await nodeFree();
      let sawEstate!: () => void;
      const estate = new Promise<void>((r) => {
        sawEstate = r;
      });
      demo = spawnManaged(process.execPath, ["--import", "tsx", join(repoRoot, "scripts/demo.ts")], {
        name: "demo-sigint",
        logDir: dir,
        cwd: repoRoot,
        env: { ...process.env, DEMO_REPORT_DIR: join(dir, "report"), DEMO_DATA_MIB: "1" },
        onStdoutLine: (l) => {
          if (/Velero ready/.test(l)) sawEstate();
        },
      });
      await Promise.race([
        estate,
        demo.exited.then(() => {
          throw new Error(`the demo exited early\n${demo!.tail(40)}`);
        }),
      ]);
      expect(holdsNodeLock(demo.pid)).toBe(true);
      process.kill(demo.pid!, "SIGINT");
      const r = await demo.exited;
      expect(r.code, demo.tail(40)).toBe(130);
      expect(demo.tail(5)).toMatch(/stopped\./);
      expect(holdsNodeLock(demo.pid), "Ctrl-C left the node lock held (node not stopped)").toBe(false);
    },
    LOCK_WAIT_MS + 300_000,
  );
});
