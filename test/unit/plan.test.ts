import { describe, expect, it } from "vitest";
import { plan } from "../../src/core/decision/plan.js";
import { decideAdmission } from "../../src/core/decision/admission.js";
import { DEFAULT_POLICY, type Policy } from "../../src/core/policy.js";
import { backup, boundClaim, ns, pod } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// The queue rules of docs/rules.md, one table row per rule.

const NOW = Date.parse("2026-01-01T12:00:00Z");
const at = (minute: number) => new Date(Date.parse("2026-01-01T11:00:00Z") + minute * 60_000).toISOString();
const noAging: Policy = { ...DEFAULT_POLICY, priorities: { ...DEFAULT_POLICY.priorities, agingSeconds: 0 } };

// Two apps share namespace shop; each has its own volume. Namespace web is stateless.
const estate = () => [
  ns("shop"),
  ns("web"),
  ns("data"),
  pod("shop", "cart-0", { claims: ["cart-data"], labels: { app: "cart" } }),
  ...boundClaim("shop", "cart-data"),
  pod("shop", "orders-0", { claims: ["orders-data"], labels: { app: "orders" } }),
  ...boundClaim("shop", "orders-data"),
  pod("web", "nginx", { labels: { app: "web" } }),
  pod("data", "pg-0", { claims: ["pg"], labels: { app: "pg" } }),
  ...boundClaim("data", "pg"),
];
const app = (name: string, appLabel: string, o: Parameters<typeof backup>[2] = {}) =>
  backup(name, { includedNamespaces: ["shop"], labelSelector: { matchLabels: { app: appLabel } } }, o);

function run(policy: Policy, ...backups: object[]) {
  return plan(cluster(...estate(), ...backups), policy, NOW);
}
const started = (p: ReturnType<typeof plan>) => p.promotions.map((x) => x.backup);
const waiting = (p: ReturnType<typeof plan>) => p.queue.map((q) => q.backup);

describe("the queue (docs/rules.md: The queue)", () => {
  it.each<{ name: string; policy: Policy; backups: object[]; expectStarted: string[]; expectWaiting: string[] }>([
    {
      name: "ItemBlock level: apps sharing a namespace but no unit run together",
      policy: noAging,
      backups: [app("cart", "cart", { created: at(1) }), app("orders", "orders", { created: at(2) })],
      expectStarted: ["cart", "orders"],
      expectWaiting: [],
    },
    {
      name: "Namespace level: backups sharing a namespace are serialized (Velero's rule)",
      policy: { ...noAging, conflictLevel: "Namespace" },
      backups: [app("cart", "cart", { created: at(1) }), app("orders", "orders", { created: at(2) })],
      expectStarted: ["cart"],
      expectWaiting: ["orders"],
    },
    {
      name: "a backup that shares a snapshotted PVC with an in-flight backup waits",
      policy: noAging,
      backups: [
        backup("all", {}, { phase: "InProgress", created: at(0) }),
        app("cart", "cart", { created: at(1) }),
        backup("web", { includedNamespaces: ["web"] }, { created: at(2) }),
      ],
      expectStarted: ["web"],
      expectWaiting: ["cart"],
    },
    {
      name: "manifest-only backups never conflict, even with an all-namespace backup in flight",
      policy: noAging,
      backups: [backup("all", {}, { phase: "InProgress", created: at(0) }), backup("manifests", { snapshotVolumes: false }, { created: at(1) })],
      expectStarted: ["manifests"],
      expectWaiting: [],
    },
    {
      name: "the concurrency limit holds back even conflict-free backups",
      policy: { ...noAging, maxConcurrentBackups: 2 },
      backups: [
        backup("a", { includedNamespaces: ["web"] }, { phase: "InProgress", created: at(0) }),
        backup("b", { includedNamespaces: ["web"], snapshotVolumes: false }, { created: at(1) }),
        backup("c", { includedNamespaces: ["data"] }, { created: at(2) }),
      ],
      expectStarted: ["b"],
      expectWaiting: ["c"],
    },
    {
      name: "rule (2): no overtaking a conflicting backup queued ahead, even when it cannot start yet",
      policy: noAging,
      backups: [
        backup("pg-run", { includedNamespaces: ["data"] }, { phase: "InProgress", created: at(0) }),
        backup("everything", {}, { created: at(1) }),
        app("cart", "cart", { created: at(2) }),
      ],
      expectStarted: [],
      expectWaiting: ["everything", "cart"],
    },
    {
      name: "a later backup that conflicts with nothing ahead overtakes one that waits",
      policy: noAging,
      backups: [
        backup("pg-run", { includedNamespaces: ["data"] }, { phase: "InProgress", created: at(0) }),
        backup("pg-again", { includedNamespaces: ["data"] }, { created: at(1) }),
        app("cart", "cart", { created: at(2) }),
      ],
      expectStarted: ["cart"],
      expectWaiting: ["pg-again"],
    },
    {
      name: "priority comes first: a manual backup goes ahead of an earlier scheduled run",
      policy: noAging,
      backups: [
        backup("sched", { includedNamespaces: ["data"] }, { created: at(1), labels: { "velero.io/schedule-name": "nightly" } }),
        backup("manual", { includedNamespaces: ["data"] }, { created: at(2) }),
      ],
      expectStarted: ["manual"],
      expectWaiting: ["sched"],
    },
    {
      name: "the backup-gate.io/priority label overrides the base priority",
      policy: noAging,
      backups: [
        backup("low", { includedNamespaces: ["data"] }, { created: at(1), labels: { "backup-gate.io/priority": "-5" } }),
        backup("high", { includedNamespaces: ["data"] }, { created: at(2), labels: { "backup-gate.io/priority": "50" } }),
      ],
      expectStarted: ["high"],
      expectWaiting: ["low"],
    },
    {
      name: "equal priority: creation time, then name",
      policy: noAging,
      backups: [
        backup("b", { includedNamespaces: ["data"] }, { created: at(1) }),
        backup("a", { includedNamespaces: ["data"] }, { created: at(1) }),
        backup("c", { includedNamespaces: ["data"] }, { created: at(0) }),
      ],
      expectStarted: ["c"],
      expectWaiting: ["a", "b"],
    },
    {
      name: "WaitingForPluginOperations and Finalizing hold no claim (as in Velero's queue)",
      policy: noAging,
      backups: [
        backup("finishing", { includedNamespaces: ["data"] }, { phase: "WaitingForPluginOperations", created: at(0) }),
        backup("pg", { includedNamespaces: ["data"] }, { created: at(1) }),
      ],
      expectStarted: ["pg"],
      expectWaiting: [],
    },
    {
      name: "backups in another namespace than Velero's are not ours",
      policy: noAging,
      backups: [{ ...backup("elsewhere", {}, { created: at(1) }), metadata: { ...backup("x").metadata, namespace: "other", name: "elsewhere" } }],
      expectStarted: [],
      expectWaiting: [],
    },
  ])("$name", ({ policy, backups, expectStarted, expectWaiting }) => {
    const p = run(policy, ...backups);
    expect(started(p)).toEqual(expectStarted);
    expect(waiting(p)).toEqual(expectWaiting);
  });

  it("aging raises a long-waiting scheduled run above a fresh manual backup (nothing starves)", () => {
    const policy: Policy = { ...DEFAULT_POLICY, priorities: { ...DEFAULT_POLICY.priorities, agingSeconds: 60 } };
    const p = plan(
      cluster(
        ...estate(),
        backup("old-run", { includedNamespaces: ["data"] }, { created: at(0), labels: { "velero.io/schedule-name": "s" } }),
        backup("fresh", { includedNamespaces: ["data"] }, { created: at(59) }),
      ),
      policy,
      NOW,
    );
    expect(started(p)).toEqual(["old-run"]);
    expect(p.queue[0]).toMatchObject({ backup: "fresh", priority: 10, effectivePriority: 11 });
  });

  it("positions count from 1 in queue order, and reasons name whom a backup waits for and why", () => {
    const p = run(
      noAging,
      backup("all", {}, { phase: "InProgress", created: at(0) }),
      app("cart", "cart", { created: at(1) }),
      app("cart2", "cart", { created: at(2) }),
    );
    expect(p.queue.map((q) => [q.backup, q.position, q.waitingFor])).toEqual([
      ["cart", 1, ["all"]],
      ["cart2", 2, ["all", "cart"]],
    ]);
    expect(p.queue[0]!.reason).toBe("waits behind all (InProgress): both snapshot PVC shop/cart-data");
  });

  it("runs of one Schedule never run together, whatever they touch", () => {
    const sched = { labels: { "velero.io/schedule-name": "hourly" } };
    const p = run(
      noAging,
      backup("run-1", { includedNamespaces: ["web"] }, { ...sched, phase: "InProgress", created: at(0) }),
      backup("run-2", { includedNamespaces: ["web"] }, { ...sched, created: at(1) }),
    );
    expect(waiting(p)).toEqual(["run-2"]);
    expect(p.queue[0]!.reason).toMatch(/both are runs of schedule hourly/);
  });

  it("Replace: the newest queued run supersedes older queued runs; the run in flight is kept", () => {
    const sched = { labels: { "velero.io/schedule-name": "hourly" } };
    const p = run(
      { ...noAging, serialWorkloads: "Replace" },
      backup("run-1", { includedNamespaces: ["web"] }, { ...sched, phase: "InProgress", created: at(0) }),
      backup("run-2", { includedNamespaces: ["web"] }, { ...sched, phase: "Queued", created: at(1) }),
      backup("run-3", { includedNamespaces: ["web"] }, { ...sched, created: at(2) }),
    );
    expect(p.supersessions).toEqual([
      { backup: "run-2", by: "run-3", reason: "superseded by run-3, a newer run of schedule hourly (serialWorkloads: Replace)" },
    ]);
    expect(waiting(p)).toEqual(["run-3"]);
  });

  it("two in-flight backups sharing an exclusive unit are reported as an overlap (drift or another writer)", () => {
    const p = run(noAging, app("cart-a", "cart", { phase: "InProgress", created: at(0) }), app("cart-b", "cart", { phase: "ReadyToStart", created: at(1) }));
    expect(p.overlaps).toHaveLength(1);
    expect(p.overlaps[0]!.reason).toBe("cart-a and cart-b are in flight together: both snapshot PVC shop/cart-data");
  });

  it.each([
    { level: "ItemBlock" as const, started: ["bad", "cart"], waiting: [] as string[] },
    { level: "Namespace" as const, started: ["bad"], waiting: ["cart"] },
  ])(
    "an invalid backup touches nothing; at $level level it blocks $waiting.length backup(s) of its namespaces, as Velero's own queue counts it",
    ({ level, started: s, waiting: w }) => {
      const p = run(
        { ...noAging, conflictLevel: level },
        backup("bad", { includedNamespaces: ["shop", "web"], excludedNamespaces: ["web"] }, { created: at(0) }),
        app("cart", "cart", { created: at(1) }),
      );
      expect(p.scopes.get("bad")?.errors.length).toBeGreaterThan(0);
      expect(started(p)).toEqual(s);
      expect(waiting(p)).toEqual(w);
    },
  );
});

describe("admission verdicts", () => {
  const snapshot = (...backups: object[]) => cluster(...estate(), ...backups);
  const candidate = (raw: object) => cluster(raw).backups[0]!;

  it("admits a backup that can start at once, with its level", () => {
    const d = decideAdmission(snapshot(), noAging, NOW, candidate(app("cart", "cart")));
    expect(d.verdict).toBe("admit");
    expect(d.annotations["backup-gate.io/conflict-level"]).toBe("ItemBlock");
  });

  it("admits with a warning naming whom it waits behind and the shared unit", () => {
    const d = decideAdmission(
      snapshot(backup("all", {}, { phase: "InProgress", created: at(0) })),
      noAging,
      NOW,
      candidate(app("cart", "cart", { created: "" })),
    );
    expect(d.verdict).toBe("admit-with-warning");
    expect(d.warnings).toEqual(["backup cart will wait behind all: both snapshot PVC shop/cart-data"]);
    expect(d.annotations).toMatchObject({
      "backup-gate.io/waiting-for": "all",
      "backup-gate.io/reason": "waits behind all (InProgress): both snapshot PVC shop/cart-data",
    });
  });

  it("Forbid rejects a run whose Schedule already has a run in flight, naming that run", () => {
    const sched = { labels: { "velero.io/schedule-name": "hourly" } };
    const d = decideAdmission(
      snapshot(backup("hourly-1", { includedNamespaces: ["web"] }, { ...sched, phase: "InProgress" })),
      noAging,
      NOW,
      candidate(backup("hourly-2", { includedNamespaces: ["web"] }, sched)),
    );
    expect(d.verdict).toBe("reject");
    expect(d.message).toMatch(/^schedule hourly already has run hourly-1 InProgress; serialWorkloads is Forbid/);
  });

  it("Allow queues the run behind the one in flight", () => {
    const sched = { labels: { "velero.io/schedule-name": "hourly" } };
    const d = decideAdmission(
      snapshot(backup("hourly-1", { includedNamespaces: ["web"] }, { ...sched, phase: "InProgress" })),
      { ...noAging, serialWorkloads: "Allow" },
      NOW,
      candidate(backup("hourly-2", { includedNamespaces: ["web"] }, sched)),
    );
    expect(d.verdict).toBe("admit-with-warning");
    expect(d.waitingFor).toEqual(["hourly-1"]);
  });

  it("rejects an invalid spec with a message naming the field", () => {
    const d = decideAdmission(snapshot(), noAging, NOW, candidate(backup("bad", { labelSelector: { matchLabels: { a: "b" } }, orLabelSelectors: [{}] })));
    expect(d.verdict).toBe("reject");
    expect(d.message).toMatch(/spec\.orLabelSelectors: labelSelector and orLabelSelectors cannot both be set/);
  });
});
