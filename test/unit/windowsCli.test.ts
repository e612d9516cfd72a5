import { describe, expect, it } from "vitest";
import { explain, renderQueue, type QueueInput } from "../../src/cli/queue.js";
import { planHuman, planJson } from "../../src/cli/planOutput.js";
import { plan } from "../../src/core/decision/plan.js";
import { policySchema } from "../../src/core/policy.js";
import { backup, boundClaim, ns, pod } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// What people see of start windows (docs/rules.md, "Windows"): `queue`, `explain` and `plan`
// show the window a backup waits for, and a backup its max wait fails.

const NOW = Date.parse("2026-01-05T12:00:00Z"); // a Monday, 13:00 in Berlin
const policy = policySchema.parse({
  priorities: { agingSeconds: 0 },
  windows: [
    { name: "nightly", selector: { schedules: ["heavy"] }, timeZone: "Europe/Berlin", allow: [{ start: "22:00", end: "05:00" }] },
    { name: "payroll", selector: { schedules: ["payroll"] }, allow: [{ start: "20:00", end: "21:00" }], maxWaitSeconds: 1800, onMaxWait: "Fail" },
  ],
});
const run = (name: string, schedule: string) =>
  backup(name, { includedNamespaces: ["shop"] }, { created: "2026-01-05T11:00:00Z", phase: "Queued", labels: { "velero.io/schedule-name": schedule } });
const live: QueueInput = {
  snapshot: cluster(ns("shop"), pod("shop", "db", { claims: ["data"] }), ...boundClaim("shop", "data"), run("heavy-1", "heavy"), run("payroll-1", "payroll")),
  policy,
};

describe("windows in the CLI's output", () => {
  it.each<{ name: string; output: () => string; shows: string[] }>([
    {
      name: "queue: the held backup's reason names its window",
      output: () => renderQueue(live, NOW, "text"),
      shows: ["heavy-1", "waits for its window 22:00-05:00 (Europe/Berlin): nightly opens Mon 2026-01-05 22:00"],
    },
    {
      name: "queue: a backup past its max wait shows it fails next",
      output: () => renderQueue(live, NOW, "text"),
      shows: ["payroll-1", "fails at the controller's next plan: waited past 1800s (maxWaitSeconds) outside its window 20:00-21:00 (UTC)"],
    },
    {
      name: "explain: the window, for the held backup",
      output: () => explain(live, NOW, { name: "heavy-1" }).summary,
      shows: ["heavy-1 is #1 in the queue", "waits for its window 22:00-05:00 (Europe/Berlin)"],
    },
    {
      name: "explain: FailsNext, for the backup past its max wait",
      output: () => JSON.stringify(explain(live, NOW, { name: "payroll-1" })),
      shows: ['"state":"FailsNext"', "payroll: onMaxWait Fail"],
    },
    { name: "plan (text): a fail line", output: () => planHuman(plan(live.snapshot, policy, NOW)), shows: ["fail   payroll-1: waited past 1800s"] },
    {
      name: "plan (json): missedWindows",
      output: () => JSON.stringify(planJson(plan(live.snapshot, policy, NOW), NOW)),
      shows: ['"missedWindows":[{"backup":"payroll-1"'],
    },
  ])("$name", ({ output, shows }) => {
    const text = output();
    for (const s of shows) expect(text).toContain(s);
  });
});
