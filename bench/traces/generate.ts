// Generates the simulator's traces (deterministic: a seeded PRNG, no clock):
//
//   cluster.yaml         200 tenant namespaces, 2-5 label-selected apps each (shared by the traces)
//   multi-tenant.yaml    every app backed up every 4 hours by its own Schedule, two rounds
//   nightly.yaml         a nightly all-namespace backup among hourly backups of the critical apps
//   midnight-burst.yaml  500 Schedule runs created at midnight within half a minute
//
// npx tsx bench/traces/generate.ts           rewrites the files next to this script
// npx tsx bench/traces/generate.ts --check   exits 1 when a committed file differs
//
// The shape of the estate (a realistic guess, not fitted to any result):
// - apps are label-selected (app=<name>) and share their tenant's namespace; stateful apps (db,
//   cache, queue, search) run 1-3 replicas with one PVC each, stateless ones (web, api, worker,
//   auth) 1-3 pods without volumes; in about one tenant in five, api and worker mount one
//   shared RWX PVC (uploads), so their backups need the same unit;
// - one stateful pod in three has a pre hook (fsfreeze) annotation;
// - 4 namespaces are annotated backup-gate.io/conflict-level: Namespace;
// - a tenant's apps are backed up by one Schedule each with the same cron (the tenant's minute
//   and hour offset): the usual outcome of one Helm values file per tenant;
// - durations: 20 s base plus 5-20 s per pod/PVC/PV (CSI snapshot and manifest upload), per app.

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { mulberry32 } from "./random.js";

const DIR = dirname(fileURLToPath(import.meta.url));

const rand = mulberry32(20260101);
const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const shuffle = <T>(xs: readonly T[]): T[] => {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
};

const TENANTS = 200;
const STATEFUL = ["db", "cache", "queue", "search"];
const STATELESS = ["web", "api", "worker", "auth"];

interface App {
  tenant: string;
  name: string;
  stateful: boolean;
  perItem: number;
  critical: boolean;
}
interface Tenant {
  name: string;
  minute: number;
  hourOffset: number;
  apps: App[];
}

const items: object[] = [];
const tenants: Tenant[] = [];
const strictNamespaces = new Set(shuffle([...Array(TENANTS).keys()]).slice(0, 4));

for (let t = 0; t < TENANTS; t++) {
  const tenant = `tenant-${String(t).padStart(3, "0")}`;
  const annotations = strictNamespaces.has(t) ? { "backup-gate.io/conflict-level": "Namespace" } : undefined;
  items.push({ kind: "Namespace", metadata: { name: tenant, ...(annotations ? { annotations } : {}) } });
  const names = shuffle([...STATEFUL, ...STATELESS]).slice(0, int(2, 5));
  const shared = rand() < 0.2;
  if (shared) for (const n of ["api", "worker"]) if (!names.includes(n)) names.push(n);
  if (shared) {
    items.push({
      kind: "PersistentVolumeClaim",
      metadata: { namespace: tenant, name: "uploads" },
      spec: { volumeName: `pv-${tenant}-uploads`, accessModes: ["ReadWriteMany"] },
      status: { phase: "Bound" },
    });
    items.push({
      kind: "PersistentVolume",
      metadata: { name: `pv-${tenant}-uploads` },
      spec: { capacity: { storage: "50Gi" }, claimRef: { namespace: tenant, name: "uploads" }, csi: { driver: "efs.csi.aws.com" } },
    });
  }
  const apps: App[] = [];
  for (const name of names.sort()) {
    const stateful = STATEFUL.includes(name);
    for (let r = 0, replicas = int(1, 3); r < replicas; r++) {
      const pod = `${name}-${r}`;
      const volumes: object[] = [];
      if (stateful) {
        const claim = `data-${pod}`;
        volumes.push({ name: "data", persistentVolumeClaim: { claimName: claim } });
        items.push({
          kind: "PersistentVolumeClaim",
          metadata: { namespace: tenant, name: claim, labels: { app: name } },
          spec: { volumeName: `pv-${tenant}-${claim}` },
          status: { phase: "Bound" },
        });
        items.push({
          kind: "PersistentVolume",
          metadata: { name: `pv-${tenant}-${claim}` },
          spec: { capacity: { storage: `${pick([10, 20, 50, 100])}Gi` }, claimRef: { namespace: tenant, name: claim }, csi: { driver: "ebs.csi.aws.com" } },
        });
      }
      if (shared && (name === "api" || name === "worker")) volumes.push({ name: "uploads", persistentVolumeClaim: { claimName: "uploads" } });
      const hook = stateful && rand() < 1 / 3 ? { "pre.hook.backup.velero.io/command": '["/sbin/fsfreeze","--freeze","/data"]' } : undefined;
      items.push({
        kind: "Pod",
        metadata: { namespace: tenant, name: pod, labels: { app: name }, ...(hook ? { annotations: hook } : {}) },
        spec: { nodeName: `node-${int(1, 40)}`, ...(volumes.length ? { volumes } : {}) },
        status: { phase: "Running" },
      });
    }
    apps.push({ tenant, name, stateful, perItem: int(5, 20), critical: stateful && rand() < 0.15 });
  }
  tenants.push({ name: tenant, minute: int(0, 59), hourOffset: int(0, 3), apps });
}

const flow = (x: object) => stringify(x, { collectionStyle: "flow", lineWidth: 0, flowCollectionPadding: false }).trimEnd();
const list = (xs: readonly object[]) => xs.map((x) => `- ${flow(x)}`).join("\n");

interface TraceBackup {
  name: string;
  spec: object;
  labels?: Record<string, string>;
  arrival: number;
  duration?: number;
  durationPerItem?: number;
  durationBase?: number;
}
function traceFile(header: string, name: string, description: string, policy: object, backups: TraceBackup[]): string {
  backups.sort((a, b) => a.arrival - b.arrival || (a.name < b.name ? -1 : 1));
  return `${header
    .trim()
    .split("\n")
    .map((l) => `# ${l}`.trimEnd())
    .join("\n")}
# Generated by bench/traces/generate.ts; do not edit by hand.
name: ${name}
description: ${flow([description]).slice(1, -1)}
t0: "2026-01-01T00:00:00Z"
policy: ${flow(policy)}
clusterFile: cluster.yaml
backups:
${list(backups)}
`;
}

const appBackup = (a: App, run: string, arrival: number): TraceBackup => ({
  name: `${a.tenant}-${a.name}-${run}`,
  spec: { includedNamespaces: [a.tenant], labelSelector: { matchLabels: { app: a.name } } },
  labels: { "velero.io/schedule-name": `${a.tenant}-${a.name}` },
  arrival,
  durationPerItem: a.perItem,
  durationBase: 20,
});
const allApps = tenants.flatMap((t) => t.apps);

// (a) Every app every 4 hours, two rounds; a few manual whole-namespace backups (before an
// upgrade) at random times.
const multiTenant: TraceBackup[] = [];
for (const t of tenants) {
  for (const round of [0, 1]) {
    const at = (round * 4 + t.hourOffset) * 3600 + t.minute * 60;
    for (const a of t.apps) multiTenant.push(appBackup(a, `r${round}`, at + int(0, 5)));
  }
}
for (let i = 0; i < 20; i++) {
  const t = pick(tenants);
  multiTenant.push({ name: `${t.name}-manual-${i}`, spec: { includedNamespaces: [t.name] }, arrival: int(0, 8 * 3600), durationPerItem: 10, durationBase: 30 });
}

// (b) A nightly all-namespace backup (with volumes) at 01:00 among hourly backups of the critical
// apps and of every stateless app in 40 tenants, from 00:00 to 06:00.
const nightly: TraceBackup[] = [];
const hourlyApps = [
  ...allApps.filter((a) => a.critical),
  ...shuffle(tenants)
    .slice(0, 40)
    .flatMap((t) => t.apps.filter((a) => !a.stateful)),
];
const minuteOf = new Map(tenants.map((t) => [t.name, t.minute]));
for (let h = 0; h < 6; h++) {
  for (const a of new Set(hourlyApps)) nightly.push(appBackup(a, `h${h}`, h * 3600 + minuteOf.get(a.tenant)! * 60 + int(0, 5)));
}
nightly.push({ name: "nightly-full", spec: {}, labels: { "velero.io/schedule-name": "nightly-full" }, arrival: 3600, durationPerItem: 1, durationBase: 120 });

// (c) 500 Schedule runs (500 apps) created at midnight, within 30 s (Velero's schedule
// controller creates them one by one).
const burst = shuffle(allApps)
  .slice(0, 500)
  .map((a) => appBackup(a, "midnight", int(0, 30)));

const POLICY = { maxConcurrentBackups: 8 };
const files: Record<string, string> = {
  "cluster.yaml": `# The estate the traces back up: ${TENANTS} tenant namespaces, ${allApps.length} apps. Generated by bench/traces/generate.ts.
kind: List
items:
${list(items)}
`,
  "multi-tenant.yaml": traceFile(
    `${TENANTS} tenant namespaces; ${allApps.length} label-selected apps sharing them; each app backed up every 4 hours
by its own Schedule (a tenant's apps share the cron), two rounds, plus 20 manual namespace backups.`,
    "multi-tenant",
    "per-app Schedules every 4 hours in 200 shared namespaces",
    POLICY,
    multiTenant,
  ),
  "nightly.yaml": traceFile(
    `A nightly all-namespace backup (volumes included) at 01:00 among hourly per-app backups
(the critical stateful apps, and every stateless app of 40 tenants) from 00:00 to 06:00.`,
    "nightly",
    "nightly all-namespace backup among hourly per-app backups",
    POLICY,
    nightly,
  ),
  "midnight-burst.yaml": traceFile(
    `500 Schedule runs of 500 apps created at midnight within 30 seconds.`,
    "midnight-burst",
    "500 scheduled runs at midnight",
    POLICY,
    burst,
  ),
};

const check = process.argv.includes("--check");
let stale = 0;
for (const [name, text] of Object.entries(files)) {
  const path = join(DIR, name);
  if (check) {
    let old = "";
    try {
      old = readFileSync(path, "utf8");
    } catch {
      /* missing counts as stale */
    }
    if (old !== text) {
      stale++;
      console.log(`${name}: differs from the generator's output`);
    }
  } else {
    writeFileSync(path, text);
    console.log(`${name}: ${(text.length / 1024).toFixed(0)} KiB`);
  }
}
if (check) {
  console.log(stale ? `${stale} trace files are stale: run npx tsx bench/traces/generate.ts` : "trace files are up to date");
  process.exitCode = stale ? 1 : 0;
}
