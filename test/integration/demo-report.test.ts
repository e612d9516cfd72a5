/**
 * The demo's report page, rendered by a real browser: Debian's Chromium, headless. A small
 * fixed input goes through scripts/demo/report.ts (src/report/timeline.ts); Chromium must
 * load it, and the DOM it dumps must hold exactly one bar per backup. A missing Chromium is a
 * failure with a message saying how to install it, never a silent skip.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { demoReportHtml, demoReportText, type DemoReportInput } from "../../scripts/demo/report.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const INSTALL = "apt-get install -y --no-install-recommends chromium (.ci/run does this before the tests)";

const T0 = Date.parse("2026-01-01T02:00:00.000Z");
const at = (s: number) => T0 + s * 1000;
const INPUT: DemoReportInput = {
  level: "ItemBlock",
  slots: 2,
  backups: [
    { name: "cart-1", description: "per-app", arrival: at(0), start: at(0), end: at(8), phase: "Completed", waitingFor: [], waitedForSlot: false },
    { name: "orders-1", description: "per-app", arrival: at(0.2), start: at(0.2), end: at(7), phase: "Completed", waitingFor: [], waitedForSlot: false },
    {
      name: "all-namespaces",
      description: "all namespaces",
      arrival: at(0.5),
      start: at(8),
      end: at(20),
      phase: "Completed",
      waitingFor: ["cart-1", "orders-1"],
      waitedForSlot: false,
      reason: "waits behind cart-1 (InProgress): both snapshot PVC shop/data-cart-0",
    },
    {
      name: "shop-manifests",
      description: "manifest-only",
      arrival: at(1),
      start: at(7),
      end: at(7.5),
      phase: "Completed",
      waitingFor: [],
      waitedForSlot: true,
      reason: "waits for a free slot: 2 of 2 backups in flight",
    },
    {
      name: "cart-2",
      description: "per-app",
      arrival: at(1.5),
      start: at(20),
      end: at(26),
      phase: "PartiallyFailed",
      waitingFor: ["cart-1", "all-namespaces"],
      waitedForSlot: false,
    },
    { name: "never-started", description: "per-app", arrival: at(2), phase: "Queued", waitingFor: ["all-namespaces"], waitedForSlot: false },
  ],
  rejections: [
    {
      name: "nightly-db-20260101020000",
      at: at(1.2),
      status: 403,
      message: "schedule nightly-db already has run nightly-db-20260101010000 Queued; serialWorkloads is Forbid",
    },
  ],
  overlaps: [{ at: at(21), label: "Pod shop/cart-0: cart-2 overlaps x" }],
};

function assertChromium(): void {
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(`Chromium is required for this test and is missing at ${CHROMIUM}: ${INSTALL}, or set CHROMIUM to its path`);
  }
}

function chromium(dir: string, ...args: string[]): { stdout: string; stderr: string } {
  const r = spawnSync(
    CHROMIUM,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-dev-shm-usage",
      `--user-data-dir=${mkdtempSync(join(dir, "profile-"))}`,
      ...args,
    ],
    { encoding: "utf8", timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
  );
  if (r.error) throw new Error(`chromium ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`chromium ${args.join(" ")} exited ${r.status} (signal ${r.signal})\n${r.stderr.slice(-3000)}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** data-backup of every <g> element whose class list holds "bar", from serialized DOM. */
function barsIn(dom: string): string[] {
  const out: string[] = [];
  for (const m of dom.matchAll(/<g\b([^>]*)>/g)) {
    const attrs = m[1]!;
    const cls = /\bclass="([^"]*)"/.exec(attrs)?.[1]?.split(/\s+/) ?? [];
    if (!cls.includes("bar")) continue;
    out.push((/\bdata-backup="([^"]*)"/.exec(attrs)?.[1] ?? "").replace(/&amp;/g, "&"));
  }
  return out;
}

describe("demo report in headless Chromium", () => {
  const dir = mkdtempSync(join(tmpdir(), "backup-gate-demo-report-"));
  const page = join(dir, "report.html");
  writeFileSync(page, demoReportHtml(INPUT));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("renders the page with exactly one bar per backup", () => {
    assertChromium();
    const { stdout } = chromium(dir, "--dump-dom", `file://${page}`);
    expect(stdout).toMatch(/<h1>backup-gate demo: the burst<\/h1>/);
    expect(stdout).toMatch(/<svg\b/);
    const bars = barsIn(stdout);
    expect(bars.sort()).toEqual(INPUT.backups.map((b) => b.name).sort());
    // Waiting behind a conflict is marked as such; a slot-only wait is not; the one that never started is dashed.
    expect(stdout.match(/class="wait conflict"/g)?.length).toBe(3);
    expect(stdout.match(/class="wait slot"/g)?.length).toBe(1);
    expect(stdout.match(/class="never"/g)?.length).toBe(1);
    expect(stdout).toMatch(/class="mark"/);
    expect(stdout).toContain("nightly-db-20260101020000 rejected");
  }, 120_000);

  it("takes a screenshot of the rendered page", () => {
    assertChromium();
    const png = join(dir, "report.png");
    chromium(dir, "--hide-scrollbars", "--window-size=1000,600", `--screenshot=${png}`, `file://${page}`);
    const b = readFileSync(png);
    expect(b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
    expect([b.readUInt32BE(16), b.readUInt32BE(20)]).toEqual([1000, 600]);
    expect(b.length).toBeGreaterThan(10_000); // a blank page compresses to a few hundred bytes
  }, 120_000);

  it("the text report carries the same figures", () => {
    const text = demoReportText(INPUT);
    expect(text).toMatch(/^6 backups, ItemBlock level, 2 slots$/m);
    expect(text).toMatch(/makespan 26s {3}wait: mean /);
    expect(text).toMatch(/^cart-2 +per-app +PartiallyFailed +18\.5s +6s +cart-1, all-namespaces$/m);
    expect(text).toMatch(/^rejected nightly-db-20260101020000 \(HTTP 403\): schedule nightly-db/m);
    expect(text).toMatch(/probe check: 1 overlap:/);
  });

  it("the text report shows the real work: hooks, freezes and file-system copies", () => {
    const work = {
      hooks: [
        { backup: "cart-1", attempted: 2, failed: 0 },
        { backup: "cart-2", attempted: 2, failed: 1 },
      ],
      freezes: [
        { pod: "shop/cart", at: at(0.5), releasedAt: at(6), busy: false },
        { pod: "shop/cart", at: at(3), busy: true },
      ],
      volumeCopies: [{ backup: "cart-1", pod: "shop/cart", volume: "data", phase: "Completed", bytes: 16 * 2 ** 20, start: at(1), end: at(5) }],
    };
    const text = demoReportText({ ...INPUT, work });
    expect(text).toMatch(
      /^Real work: 4 hooks run by Velero \(1 failed\), 1 freeze held, 1 found the pod already frozen \(an overlap\), 1 PodVolumeBackup \(kopia\) copying 16 MiB\.$/m,
    );
    expect(text).toMatch(/^ {2}shop\/cart +held 0\.5s \.\. 6s \(5\.5s\)$/m);
    expect(text).toMatch(/^ {2}shop\/cart +at 3s: BUSY, already frozen by another backup$/m);
    expect(text).toMatch(/^ {2}cart-1 +shop\/cart +data +Completed +16 MiB +1s \.\. 5s$/m);
    expect(demoReportText(INPUT)).not.toMatch(/Real work/);
  });
});
