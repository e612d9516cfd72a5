import { describe, expect, it } from "vitest";
import { explain, queueRows, renderExplanation } from "../../src/cli/queue.js";
import { plan } from "../../src/core/decision/plan.js";
import { policySchema } from "../../src/core/policy.js";
import { backup, boundClaim, ns, pod } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// What `explain` and `queue` show of a budget (docs/rules.md, "Budgets"): the reason names the
// budget, `explain -o wide|json` carries its counts, a Backup file about to be created is told it would wait.

const NOW = Date.parse("2026-01-01T12:00:00Z");
const policy = policySchema.parse({ priorities: { agingSeconds: 0 }, budgets: { snapshotsPerDriver: { "csi.a": 1 } } });
const objects = ["ns-a", "ns-b", "ns-c"].flatMap((w) => [
  ns(w),
  pod(w, "db", { claims: ["data"] }),
  ...boundClaim(w, "data", { pvOpts: { csiDriver: "csi.a" } }),
]);
const live = {
  snapshot: cluster(
    ...objects,
    backup("run-a", { includedNamespaces: ["ns-a"] }, { phase: "InProgress", created: "2026-01-01T11:00:00Z" }),
    backup("q-b", { includedNamespaces: ["ns-b"] }, { created: "2026-01-01T11:01:00Z" }),
  ),
  policy,
};
const REASON = "waits for budget snapshots on driver csi.a: 1 of 1 backups in flight (budgets.snapshotsPerDriver)";

describe("explain and queue with budgets", () => {
  it("explain names the budget; wide adds its counts; json carries it", () => {
    const e = explain(live, NOW, { name: "q-b" });
    expect(e.summary).toBe(`q-b is #1 in the queue, judged at ItemBlock level: ${REASON}`);
    expect(renderExplanation(e, "wide")).toContain("  budget: csi.a (budgets.snapshotsPerDriver): 1 in flight, 0 kept, limit 1");
    expect(JSON.parse(renderExplanation(e, "json"))).toMatchObject({ budget: { kind: "snapshotsPerDriver", name: "csi.a", inFlight: 1, kept: 0, limit: 1 } });
  });

  it("explain -f: a Backup about to be created would wait for the budget", () => {
    const e = explain(live, NOW, { backup: backup("new-c", { includedNamespaces: ["ns-c"] }, { created: "" }), file: "new-c.yaml" });
    expect(e.state).toBe("WouldWait");
    expect(e.summary).toBe(
      "new-c would wait (judged at ItemBlock level): waits for budget snapshots on driver csi.a: 1 of 1 backups in flight, 1 kept for a backup ahead (budgets.snapshotsPerDriver)",
    );
  });

  it("queue shows the reason on the waiting backup's row", () => {
    const rows = queueRows(live, plan(live.snapshot, policy, NOW), NOW);
    expect(rows.find((r) => r.backup === "q-b")).toMatchObject({ position: 1, reason: REASON });
  });

  it("positive control: without the budget it would start", () => {
    const e = explain({ ...live, policy: policySchema.parse({ priorities: { agingSeconds: 0 } }) }, NOW, { name: "q-b" });
    expect(e.state).toBe("StartsNext");
    expect(renderExplanation(e, "wide")).not.toContain("budget");
  });
});
