import { describe, expect, it } from "vitest";
import { explain, renderExplanation, renderQueue, type QueueReport } from "../../src/cli/queue.js";
import { ORIGIN_NAME, ORIGIN_NAMESPACE } from "../../src/core/decision/tenants.js";
import { DEFAULT_POLICY, policySchema, type Policy } from "../../src/core/policy.js";
import { backup, ns, pod } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// `queue` and `explain` with tenants: the administrator sees whose each backup is (TENANT) and
// the full reason; the tenant-safe reason is there too, as the tenant reads it.

const NOW = Date.parse("2026-01-01T12:00:00Z");
const at = (minute: number) => new Date(Date.parse("2026-01-01T10:00:00Z") + minute * 60_000).toISOString();
const nab = (name: string, tenant: string, o: { phase?: string; created: string }) =>
  backup(name, { includedNamespaces: [tenant] }, { ...o, annotations: { [ORIGIN_NAMESPACE]: tenant, [ORIGIN_NAME]: `my-${name}` } });

const snapshot = () =>
  cluster(
    ns("team-a"),
    ns("team-b"),
    pod("team-a", "web"),
    pod("team-b", "web"),
    backup("admin-all", {}, { phase: "InProgress", created: at(0) }),
    nab("a-0", "team-a", { created: at(1) }),
    nab("b-0", "team-b", { created: at(2) }),
  );
const withTenants: Policy = policySchema.parse({ maxConcurrentBackups: 1, priorities: { agingSeconds: 0 }, tenants: {} });
const withoutTenants: Policy = { ...withTenants, tenants: undefined };

describe("queue with tenants", () => {
  it.each<{ name: string; policy: Policy; header: RegExp; row: RegExp }>([
    { name: "a TENANT column, '-' for an administrator's", policy: withTenants, header: /^BACKUP +TENANT +PHASE +POS/, row: /^admin-all +- +InProgress/ },
    { name: "no tenants section: no TENANT column (as before)", policy: withoutTenants, header: /^BACKUP +PHASE +POS/, row: /^admin-all +InProgress/ },
  ])("$name", ({ policy, header, row }) => {
    const lines = renderQueue({ snapshot: snapshot(), policy }, NOW, "text").split("\n");
    expect(lines[1]).toMatch(header);
    expect(lines[2]).toMatch(row);
  });

  it("a tenant's row shows its tenant and the full reason; -o json also carries the tenant-safe reason", () => {
    const text = renderQueue({ snapshot: snapshot(), policy: withTenants }, NOW, "wide");
    expect(text).toMatch(/^a-0 +team-a +New +1 .*waits for a free slot: 1 of 1 backups in flight$/m);
    const report = JSON.parse(renderQueue({ snapshot: snapshot(), policy: withTenants }, NOW, "json")) as QueueReport;
    const rows = Object.fromEntries(report.rows.map((r) => [r.backup, r]));
    expect(rows["admin-all"]?.tenant).toBeUndefined();
    expect(rows["a-0"]).toMatchObject({ tenant: "team-a", tenantReason: "waits for a free slot: 0 backups ahead" });
    expect(rows["b-0"]).toMatchObject({ tenant: "team-b", tenantReason: "waits for a free slot: 1 backup ahead" });
  });

  it("without tenants the rows carry no tenant fields", () => {
    const report = JSON.parse(renderQueue({ snapshot: snapshot(), policy: DEFAULT_POLICY }, NOW, "json")) as QueueReport;
    expect(report.rows.filter((r) => "tenant" in r || "tenantReason" in r)).toEqual([]);
  });
});

describe("explain with tenants", () => {
  it("names the tenant and what the tenant reads, below the full reason", () => {
    const e = explain({ snapshot: snapshot(), policy: withTenants }, NOW, { name: "b-0" });
    expect(e).toMatchObject({ state: "Queued", tenant: "team-b", tenantReason: "waits for a free slot: 1 backup ahead" });
    expect(renderExplanation(e, "text")).toBe(
      "b-0 is #2 in the queue, judged at ItemBlock level: waits for a free slot: 1 of 1 backups in flight\nits tenant team-b reads: waits for a free slot: 1 backup ahead",
    );
    expect(renderExplanation(e, "wide")).toContain("\n  tenant: team-b");
  });

  it("a backup about to start: the tenant reads the start in classes only", () => {
    const free = { ...withTenants, maxConcurrentBackups: 2 };
    const e = explain({ snapshot: snapshot(), policy: free }, NOW, { name: "a-0" });
    expect(e).toMatchObject({ state: "StartsNext", tenant: "team-a", tenantReason: "conflicts with nothing in flight or ahead of it, and a slot is free" });
  });

  it("without tenants: no tenant line (as before)", () => {
    const e = explain({ snapshot: snapshot(), policy: withoutTenants }, NOW, { name: "b-0" });
    expect(e.tenant).toBeUndefined();
    expect(e.tenantReason).toBeUndefined();
    expect(renderExplanation(e, "text")).not.toContain("reads:");
  });
});
