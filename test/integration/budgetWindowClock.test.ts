/**
 * Budgets and start windows on the real API server, on a clock the test moves (issue 19, "How
 * it is checked"). The gate's controller half runs in this process as `serve` wires it (the
 * informer cache, the policy ConfigMap source, leader election, the promotion key, the Event
 * recorder, the queue controller), with `now` injected: the test shifts the controller's clock
 * ahead of the wall clock instead of waiting for a window to open. The controller's resync
 * tick (`resyncMs`, a production option) is short, so a plan whose validity passed on the
 * moved clock is redone within a fraction of a second. No webhooks: backups are created as
 * Velero's API leaves them (phase empty), which the controller queues; the test plays Velero
 * (ReadyToStart -> InProgress -> Completed).
 *
 * Checked: a budget holds a backup that conflicts with nothing until the one using it completes
 * (control: a location no budget names); two tenants' bursts share a budgeted location in fair
 * order; a window that opens at a clock time the test picked holds its backup until the clock
 * passes it, and onMaxWait Fail fails a backup once the clock passes its max wait.
 *
 * Rerun: npx vitest run --project integration test/integration/budgetWindowClock.test.ts
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { explain } from "../../src/cli/queue.js";
import { readLive } from "../../src/cli/live.js";
import { createClusterCache, type ClusterCacheImpl } from "../../src/cluster/cache.js";
import { LeaderElector } from "../../src/controller/leader.js";
import { PromotionKey } from "../../src/controller/promotionKey.js";
import { QueueController } from "../../src/controller/queueController.js";
import { createEventRecorder } from "../../src/kube/events.js";
import { createLogger } from "../../src/logging/logger.js";
import { createMetrics } from "../../src/metrics/metrics.js";
import { createPolicySource, type PolicySourceImpl } from "../../src/policy/source.js";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { clients, createBackup, createNamespace, getBackup, updateVelero, type Clients } from "../support/objects.js";
import { expectStays, waitFor } from "../support/wait.js";

const VELERO = "velero";
const GATE_NS = "backup-gate";
const log = createLogger(process.env.LOG_LEVEL ?? "silent");
const two = (n: number) => String(n).padStart(2, "0");
/** HH:MM in UTC of the instant t (ms). */
const hhmm = (t: number) => `${two(new Date(t).getUTCHours())}:${two(new Date(t).getUTCMinutes())}`;
const HOUR = 3600_000;

/** The controller's clock: the wall clock plus a shift the test sets (never backwards). */
class ShiftedClock {
  #shift = 0;
  readonly now = () => Date.now() + this.#shift;
  /** Moves the clock so that it reads `t` now. */
  setTo(t: number): void {
    const shift = t - Date.now();
    if (shift < this.#shift) throw new Error("the test clock only moves forward");
    this.#shift = shift;
  }
}

describe("budgets and start windows on a real API server, on an injected clock", () => {
  let cp: ControlPlane;
  let c: Clients;
  let cache: ClusterCacheImpl;
  let policy: PolicySourceImpl;
  let leader: LeaderElector;
  let key: PromotionKey;
  let controller: QueueController;
  const clock = new ShiftedClock();
  /** The policy ConfigMap's text as the suite starts. */
  let text = "";
  /** When the `soon` window opens (a whole minute, two hours ahead of the wall clock), and its span as reasons show it. */
  const opens = (Math.floor(Date.now() / 60_000) + 120) * 60_000;
  const span = `${hhmm(opens)}-${hhmm(opens + 30 * 60_000)}`;

  const phaseOf = async (name: string) => (await getBackup(c, VELERO, name)).status?.phase as string | undefined;
  const waitPhase = (name: string, phase: string, timeoutMs = 15_000) =>
    waitFor(`backup ${name} to be ${phase}`, async () => (await phaseOf(name)) === phase, { timeoutMs, intervalMs: 100 });
  const setPhase = (name: string, phase: string) =>
    updateVelero(c, "backups", VELERO, name, (o) => {
      o.status = { ...o.status, phase };
    });
  const reasonOf = async (name: string) => (await getBackup(c, VELERO, name)).metadata.annotations?.["backup-gate.io/reason"] ?? "";
  /** Waits until `name` is Queued with a reason starting so. */
  const waitQueued = (name: string, reason: string) =>
    waitFor(
      `${name} Queued with the reason "${reason}…"`,
      async () => {
        const b = await getBackup(c, VELERO, name);
        return b.status?.phase === "Queued" && (b.metadata.annotations?.["backup-gate.io/reason"] ?? "").startsWith(reason);
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
  const eventsOn = async (name: string, reason: string) =>
    (await c.core.listNamespacedEvent({ namespace: VELERO, fieldSelector: `involvedObject.name=${name},reason=${reason}` })).items;
  /** A backup of one namespace (with no pods: it conflicts with nothing) to a storage location. */
  const backUp = (name: string, namespace: string, storageLocation = "default", labels: Record<string, string> = {}) =>
    createBackup(c, VELERO, name, { includedNamespaces: [namespace], spec: { storageLocation }, labels });
  /** The controller has seen the write: the cache shows `name` in `phase`. */
  const cacheSees = (name: string, phase: string) =>
    waitFor(`the gate's cache to see ${name} ${phase}`, () => cache.backup(name)?.phase === phase, { timeoutMs: 10_000, intervalMs: 50 });

  beforeAll(async () => {
    cp = await startControlPlane({ name: "clockflow" });
    c = clients(cp.kubeConfig);
    for (const ns of [VELERO, GATE_NS, "orders", "stock", "logs", "audit", "team-a", "team-b", "shop", "web", "docs"]) await createNamespace(c, ns);
    // Location `slow` takes one backup at a time, `shared` two; no key names `fast` or `default`, so they have no budget.
    // Backups labelled team=… belong to that tenant.
    // `soon` opens two hours ahead; `payroll` opens eight hours ahead, and fails a backup that waited an hour.
    text = [
      "maxConcurrentBackups: 10",
      "priorities: {agingSeconds: 0}",
      "nudgeAfterSeconds: 86400",
      "tenants: {label: team}",
      "windows:",
      "  - name: soon",
      "    selector: {namespaces: [shop]}",
      `    allow: [{start: "${hhmm(opens)}", end: "${hhmm(opens + 30 * 60_000)}"}]`,
      "  - name: payroll",
      "    selector: {namespaces: [docs]}",
      `    allow: [{start: "${hhmm(opens + 6 * HOUR)}", end: "${hhmm(opens + 7 * HOUR)}"}]`,
      "    maxWaitSeconds: 3600",
      "    onMaxWait: Fail",
      "budgets:",
      "  backupsPerStorageLocation: {slow: 1, shared: 2}",
      "",
    ].join("\n");
    await c.core.createNamespacedConfigMap({ namespace: GATE_NS, body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": text } } });

    // Wired as src/cli/serve.ts wires it, minus the webhooks, plus the clock and a short tick.
    const kc = cp.kubeConfig;
    const metrics = createMetrics();
    const recorder = createEventRecorder(kc, { log });
    policy = createPolicySource(kc, { namespace: GATE_NS, metrics, log, recorder });
    await policy.start();
    expect(policy.current().budgets?.backupsPerStorageLocation, "the policy ConfigMap is read").toEqual({ slow: 1, shared: 2 });
    cache = createClusterCache(kc, { veleroNamespace: VELERO, metrics, log });
    await cache.start();
    await cache.waitForSync(AbortSignal.timeout(30_000));
    leader = new LeaderElector(kc, { namespace: GATE_NS, name: "backup-gate", identity: "gate-clock", log, metrics });
    key = new PromotionKey(kc, { namespace: GATE_NS, log });
    await key.start();
    controller = new QueueController({
      kc,
      cache,
      policy,
      leader,
      events: recorder,
      metrics,
      log,
      identity: "gate-clock",
      sealer: () => key.current(),
      now: clock.now,
      resyncMs: 200,
    });
    leader.start();
    controller.start();
    await waitFor("the gate to lead", () => leader.isLeader(), { timeoutMs: 20_000, intervalMs: 100 });
  }, 120_000);

  afterAll(async () => {
    controller?.stop();
    await controller?.idle();
    await leader?.stop();
    key?.stop();
    await cache?.stop();
    await policy?.stop();
    await cp?.stop();
  });

  it("of two backups to a location with a budget of one, one starts and the other waits with the budget's reason", async () => {
    await backUp("orders-1", "orders", "slow");
    await waitPhase("orders-1", "ReadyToStart");
    await cacheSees("orders-1", "ReadyToStart");
    await backUp("stock-1", "stock", "slow");
    await waitQueued("stock-1", "waits for budget backups to storage location slow: 1 of 1 backups in flight (budgets.backupsPerStorageLocation)");
    await expectStays("stock-1 to stay Queued while orders-1 holds the budget", async () => (await phaseOf("stock-1")) === "Queued", 1000, 200);
    // What `backup-gate explain stock-1` prints, from the same live read and plan.
    const live = await readLive({ kubeconfig: cp.kubeconfigPath, gateNamespace: GATE_NS });
    const e = explain(live, clock.now(), { name: "stock-1" });
    expect(e.summary).toBe(
      "stock-1 is #1 in the queue, judged at ItemBlock level: waits for budget backups to storage location slow: 1 of 1 backups in flight (budgets.backupsPerStorageLocation)",
    );
  });

  it("positive control: two backups to a location no budget names both start", async () => {
    await backUp("logs-1", "logs", "fast");
    await backUp("audit-1", "audit", "fast");
    await waitPhase("logs-1", "ReadyToStart");
    await waitPhase("audit-1", "ReadyToStart");
    expect(await phaseOf("stock-1"), "the budget still holds stock-1").toBe("Queued");
  });

  it("once the backup holding the budget completes (Velero's part), the waiting one starts", async () => {
    await setPhase("orders-1", "InProgress");
    await expectStays("stock-1 to stay Queued while orders-1 runs", async () => (await phaseOf("stock-1")) === "Queued", 1000, 200);
    await setPhase("orders-1", "Completed");
    await waitPhase("stock-1", "ReadyToStart");
    const started = await waitFor("the Started Event on stock-1", async () => (await eventsOn("stock-1", "Started"))[0]);
    expect(started.message).toMatch(/^ReadyToStart after waiting \d+s: conflicts with nothing/);
  });

  it("two tenants' bursts to a location with a budget of two: a freed unit goes to the tenant running fewer, not to the older backup", async () => {
    for (const i of [0, 1, 2]) await backUp(`a-${i}`, "team-a", "shared", { team: "a" });
    await waitPhase("a-0", "ReadyToStart");
    await waitPhase("a-1", "ReadyToStart");
    await waitQueued("a-2", "waits for budget backups to storage location shared: 2 of 2 backups in flight (budgets.backupsPerStorageLocation)");
    for (const i of [0, 1]) await backUp(`b-${i}`, "team-b", "shared", { team: "b" });
    await waitQueued("b-0", "waits for budget backups to storage location shared: 2 of 2 backups in flight");
    for (const name of ["a-0", "a-1"]) await setPhase(name, "InProgress");
    await cacheSees("a-1", "InProgress");
    // A runs one after a-0 completes, B none: B's first ranks ahead of a-2 (one queue would start a-2, the older).
    await setPhase("a-0", "Completed");
    await waitPhase("b-0", "ReadyToStart");
    await expectStays(
      "the budget to stay full: a-2 and b-1 Queued",
      async () => (await phaseOf("a-2")) === "Queued" && (await phaseOf("b-1")) === "Queued",
      1000,
      200,
    );
    // Each tenant runs one now: the older, a-2, takes the next unit.
    await setPhase("b-0", "InProgress");
    await setPhase("a-1", "Completed");
    await waitPhase("a-2", "ReadyToStart");
    expect(await phaseOf("b-1")).toBe("Queued");
    for (const name of ["a-2", "b-0"]) await setPhase(name, "Completed");
    await waitPhase("b-1", "ReadyToStart");
  });

  it("before its window opens a backup waits with the window's reason; past its max wait another is failed (onMaxWait: Fail)", async () => {
    await backUp("shop-1", "shop");
    await backUp("web-1", "web");
    await backUp("docs-1", "docs");
    // Positive control: a backup no window governs starts.
    await waitPhase("web-1", "ReadyToStart");
    await waitQueued("shop-1", `waits for its window ${span} (UTC): soon opens `);
    await waitQueued("docs-1", `waits for its window ${hhmm(opens + 6 * HOUR)}-${hhmm(opens + 7 * HOUR)} (UTC): payroll opens `);
    expect(await reasonOf("docs-1")).toMatch(/; after 3600s of waiting it is failed$/);
    // The clock reads 30 s before the opening: an hour and more past docs-1's creation, still outside shop's window.
    clock.setTo(opens - 30_000);
    await waitPhase("docs-1", "Failed");
    const failed = await getBackup(c, VELERO, "docs-1");
    expect(failed.status?.failureReason).toBe(
      `waited past 3600s (maxWaitSeconds) outside its window ${hhmm(opens + 6 * HOUR)}-${hhmm(opens + 7 * HOUR)} (UTC): not started (payroll: onMaxWait Fail)`,
    );
    const missed = await waitFor("the WindowMissed Event on docs-1", async () => (await eventsOn("docs-1", "WindowMissed"))[0]);
    expect(missed.type).toBe("Warning");
    await expectStays("shop-1 to stay Queued 30 s before its window opens", async () => (await phaseOf("shop-1")) === "Queued", 1000, 200);
    expect(await reasonOf("shop-1")).toMatch(new RegExp(`^waits for its window ${span} \\(UTC\\): soon opens `));
  });

  it("once the clock passes the opening, the controller promotes the backup on its next plan", async () => {
    clock.setTo(opens + 1000);
    await waitPhase("shop-1", "ReadyToStart", 5_000);
    const started = await waitFor("the Started Event on shop-1", async () => (await eventsOn("shop-1", "Started"))[0]);
    // Waited on the controller's clock: two hours, give or take the minute `opens` was rounded to.
    const waited = Number(/^ReadyToStart after waiting (\d+)s: conflicts with nothing/.exec(started.message ?? "")?.[1]);
    expect(waited).toBeGreaterThan(HOUR / 1000);
  });

  it("with no resync tick to fall back on, the controller re-plans when its plan expires: a window opens on time", async () => {
    // Controller B ticks once an hour: only the plan's own expiry can wake it without a change.
    controller.stop();
    await controller.idle();
    const later = opens + HOUR;
    const withLater = text
      .replace("maxConcurrentBackups: 10", "maxConcurrentBackups: 50")
      .replace(
        "windows:\n",
        `windows:\n  - name: later\n    selector: {namespaces: [logs]}\n    allow: [{start: "${hhmm(later)}", end: "${hhmm(later + 30 * 60_000)}"}]\n`,
      );
    await c.core.replaceNamespacedConfigMap({
      name: "backup-gate-policy",
      namespace: GATE_NS,
      body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": withLater } },
    });
    await waitFor("the policy with window later", () => policy.current().windows?.some((w) => w.name === "later") === true, {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    controller = new QueueController({
      kc: cp.kubeConfig,
      cache,
      policy,
      leader,
      events: createEventRecorder(cp.kubeConfig, { log }),
      metrics: createMetrics(),
      log,
      identity: "gate-clock",
      sealer: () => key.current(),
      now: clock.now,
      resyncMs: HOUR,
    });
    controller.start();
    clock.setTo(later - 3_000);
    await backUp("logs-2", "logs");
    await waitQueued("logs-2", `waits for its window ${hhmm(later)}-${hhmm(later + 30 * 60_000)} (UTC): later opens `);
    // Three seconds on, the window opens; nothing in the cluster changes.
    await waitPhase("logs-2", "ReadyToStart", 15_000);
    expect(clock.now()).toBeGreaterThanOrEqual(later);
  });
});
