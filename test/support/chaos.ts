/**
 * The chaos suite's tools: a seeded PRNG, the suite's own conflict oracle (backups name the
 * apps they cover; every app is a pod + snapshotted PVC + PV, so two backups conflict exactly
 * when they share an app), counting (created / completed / lost / stuck / overlaps / crashes),
 * the result table, gate process bookkeeping, other writers (a ServiceAccount of their own),
 * and a TCP balancer standing in for the webhook Service in front of several replicas.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { KubeConfig, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { createServer, connect, type Server, type Socket } from "node:net";
import type { ControlPlane } from "./controlPlane.js";
import { inFlightSpan, QUEUED_PHASES, type PhaseStep } from "./backupObserver.js";
import { startGate, type GateOptions, type GateProcess } from "./gate.js";
import { backupBody } from "./builders.js";
import { clients, isApiError, VELERO_GROUP, VELERO_VERSION, type Clients, type VeleroObject } from "./objects.js";
import { serviceAccountKubeconfig } from "./rbac.js";
import { admissionReview, postReview } from "./review.js";

/** mulberry32: small, seedable, good enough to pick delays and scopes reproducibly. */
export function prng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A positive integer from the environment, or the default; anything else is a clear error. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, not ${JSON.stringify(raw)}`);
  return n;
}

// ---- the oracle ----

export interface ChaosBackup {
  name: string;
  /** Apps (pod label app=...) in the workload namespace this backup covers. */
  apps: readonly string[];
}

export function conflicts(a: ChaosBackup, b: ChaosBackup): boolean {
  return a.apps.some((x) => b.apps.includes(x));
}

/** The Backup body: the workload namespace, the apps by label (Velero's defaults snapshot their PVCs). */
export function chaosBackupBody(b: ChaosBackup, veleroNamespace: string, workloadNamespace: string, status?: Record<string, unknown>): VeleroObject {
  return backupBody(b.name, veleroNamespace, {
    includedNamespaces: [workloadNamespace],
    spec: { labelSelector: { matchExpressions: [{ key: "app", operator: "In", values: [...b.apps] }] } },
    ...(status ? { status } : {}),
  });
}

export async function createChaosBackup(
  c: Clients,
  b: ChaosBackup,
  veleroNamespace: string,
  workloadNamespace: string,
  status?: Record<string, unknown>,
): Promise<VeleroObject> {
  return (await c.custom.createNamespacedCustomObject({
    group: VELERO_GROUP,
    version: VELERO_VERSION,
    namespace: veleroNamespace,
    plural: "backups",
    body: chaosBackupBody(b, veleroNamespace, workloadNamespace, status),
  })) as VeleroObject;
}

/** `count` random backups over `apps`, one to two apps each, and sometimes all of them. */
export function randomBackups(rand: () => number, prefix: string, count: number, apps: readonly string[]): ChaosBackup[] {
  return Array.from({ length: count }, (_, i) => {
    const r = rand();
    const pick = () => apps[Math.floor(rand() * apps.length)]!;
    const chosen = r < 0.1 ? [...apps] : r < 0.55 ? [pick()] : [...new Set([pick(), pick()])];
    return { name: `${prefix}-${String(i).padStart(3, "0")}`, apps: chosen.sort() };
  });
}

// ---- counting ----

export const TERMINAL = new Set(["Completed", "PartiallyFailed", "Failed", "FailedValidation"]);

export interface Counts {
  created: number;
  completed: number;
  lost: number;
  stuck: number;
  /** One line per backup not counted as completed. */
  details: string[];
}

/**
 * Counts over backups as the API server holds them now. completed: a terminal phase the
 * scenario expects; stuck: still waiting (New, Queued, no phase, ReadyToStart) at the deadline
 * though the player or Velero had a free slot; lost: gone, or any other phase.
 */
export function tally(current: ReadonlyMap<string, VeleroObject>, names: readonly string[], expected: (b: VeleroObject) => boolean): Counts {
  const out: Counts = { created: names.length, completed: 0, lost: 0, stuck: 0, details: [] };
  for (const name of names) {
    const b = current.get(name);
    const phase = (b?.status?.phase as string | undefined) ?? "";
    if (b && TERMINAL.has(phase) && expected(b)) out.completed++;
    else if (b && (QUEUED_PHASES.has(phase) || phase === "ReadyToStart")) {
      out.stuck++;
      out.details.push(`${name}: stuck ${phase || "(no phase)"}`);
    } else {
      out.lost++;
      out.details.push(`${name}: lost (${b ? phase : "gone"}${b?.status?.validationErrors ? `: ${JSON.stringify(b.status.validationErrors)}` : ""})`);
    }
  }
  return out;
}

export async function listBackups(c: Clients, namespace: string): Promise<Map<string, VeleroObject>> {
  const l = (await c.custom.listNamespacedCustomObject({ group: VELERO_GROUP, version: VELERO_VERSION, namespace, plural: "backups" })) as {
    items: VeleroObject[];
  };
  return new Map(l.items.map((b) => [b.metadata.name, b]));
}

/**
 * Pairs of conflicting backups whose in-flight spans (ReadyToStart or InProgress, in etcd's
 * write order) intersect, and the most backups in flight at once.
 */
export function overlapCheck(
  history: ReadonlyMap<string, readonly PhaseStep[]>,
  backups: readonly ChaosBackup[],
): { overlaps: string[]; maxInFlight: number; inexact: number } {
  const spans = backups.map((b) => ({ b, s: inFlightSpan(history.get(b.name)) })).filter((x) => x.s);
  const overlaps: string[] = [];
  const INF = 1n << 62n;
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length; j++) {
      const a = spans[i]!,
        b = spans[j]!;
      if (!conflicts(a.b, b.b)) continue;
      if (a.s!.start < (b.s!.end ?? INF) && b.s!.start < (a.s!.end ?? INF)) {
        overlaps.push(
          `${a.b.name} [${a.s!.start}, ${a.s!.end ?? "-"}) and ${b.b.name} [${b.s!.start}, ${b.s!.end ?? "-"}) share ${a.b.apps.filter((x) => b.b.apps.includes(x)).join(",")}`,
        );
      }
    }
  }
  const edges = spans
    .flatMap(
      ({ s }) =>
        [
          [s!.start, 1],
          [s!.end ?? INF, -1],
        ] as [bigint, number][],
    )
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1]));
  let cur = 0,
    maxInFlight = 0;
  for (const [, d] of edges) {
    cur += d;
    maxInFlight = Math.max(maxInFlight, cur);
  }
  return { overlaps, maxInFlight, inexact: spans.filter((x) => !x.s!.exact).length };
}

// ---- gate processes ----

/** Every gate the suite starts, so a crash (an exit the suite did not cause) is counted. */
export class GateFleet {
  readonly all: GateProcess[] = [];
  private readonly killed = new Set<GateProcess>();

  constructor(private readonly cp: ControlPlane) {}

  async start(o: GateOptions): Promise<GateProcess> {
    const g = await startGate(this.cp, o);
    this.all.push(g);
    return g;
  }

  /** SIGKILL, as a crash would. */
  async kill(g: GateProcess): Promise<void> {
    this.killed.add(g);
    await g.kill();
  }

  async stop(g: GateProcess): Promise<void> {
    this.killed.add(g);
    await g.stop();
  }

  async stopAll(): Promise<void> {
    for (const g of this.all) await this.stop(g);
  }

  /** Exits the suite did not cause, plus uncaught errors or fatal lines in the gates' logs. */
  crashes(among: readonly GateProcess[] = this.all): { count: number; details: string[] } {
    const details: string[] = [];
    for (const g of among) if (!g.process.alive && !this.killed.has(g)) details.push(`${g.identity} exited by itself`);
    for (const file of new Set(among.map((g) => g.process.logFile))) {
      let text = "";
      try {
        text = readFileSync(file, "utf8");
      } catch {
        continue;
      }
      for (const line of text.split("\n")) {
        if (/"level":60|uncaught|unhandled|FATAL/i.test(line)) details.push(`${file}: ${line.slice(0, 300)}`);
      }
    }
    return { count: details.length, details };
  }
}

/** Webhook calls the API server could not make because it did not trust a replica's certificate, as its log counts them. */
export function untrustedCalls(cp: ControlPlane): number {
  let text = "";
  try {
    text = readFileSync(join(cp.dir, "logs", "kube-apiserver.log"), "utf8");
  } catch {
    return 0;
  }
  return text.split("\n").filter((l) => l.includes("Failed calling webhook") && l.includes("x509:")).length;
}

/** Sum of a metric's samples whose labels include `where` (0 when absent). */
export function metricSum(text: string, name: string, where: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== "{" && line[name.length] !== " ")) continue;
    const close = line.lastIndexOf("}");
    const labels = close > 0 ? line.slice(name.length + 1, close) : "";
    if (Object.entries(where).every(([k, v]) => labels.includes(`${k}="${v}"`))) sum += Number(line.slice(close > 0 ? close + 1 : name.length).trim());
  }
  return sum;
}

/**
 * Sends one AdmissionReview (a Backup CREATE, as a dry run) straight to a replica's webhook
 * path and returns whether it answered with a verdict.
 */
export async function reviewDirect(gateUrl: string, path: string, backup: VeleroObject): Promise<boolean> {
  const posted = await postReview(gateUrl, path, admissionReview({ operation: "CREATE", object: backup, username: "chaos", dryRun: true }));
  return posted.status === 200 && typeof posted.response?.allowed === "boolean";
}

// ---- other writers ----

/**
 * `n` clients of one ServiceAccount `writers/writer` that may create and update Backups in
 * Velero's namespace and nothing more: another writer next to the gate (a script, a second
 * queue), under a user of its own. Each client has its own connections. Safe to call twice.
 */
export async function writerClients(cp: ControlPlane, veleroNamespace: string, n: number): Promise<Clients[]> {
  const admin = clients(cp.kubeConfig);
  const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  const exists = (e: unknown) => {
    if (!isApiError(e, 409)) throw e;
  };
  await admin.core.createNamespace({ body: { metadata: { name: "writers" } } }).catch(exists);
  await admin.core.createNamespacedServiceAccount({ namespace: "writers", body: { metadata: { name: "writer" } } }).catch(exists);
  await rbac
    .createNamespacedRole({
      namespace: veleroNamespace,
      body: {
        metadata: { name: "writer" },
        rules: [{ apiGroups: [VELERO_GROUP], resources: ["backups"], verbs: ["get", "list", "watch", "create", "update", "patch"] }],
      },
    })
    .catch(exists);
  await rbac
    .createNamespacedRoleBinding({
      namespace: veleroNamespace,
      body: {
        metadata: { name: "writer" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "writer" },
        subjects: [{ kind: "ServiceAccount", name: "writer", namespace: "writers" }],
      },
    })
    .catch(exists);
  const path = join(cp.dir, "writer.kubeconfig");
  await serviceAccountKubeconfig(cp.kubeConfig, "writers", "writer", path);
  return Array.from({ length: n }, () => {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return clients(kc);
  });
}

export const WRITER_USER = "system:serviceaccount:writers:writer";

/** The API server's answer to one write, as the writer gets it: 200, or the status code and message. */
export interface Answer {
  readonly code: number;
  readonly message: string;
  readonly object?: VeleroObject;
}

export async function answer(p: Promise<unknown>): Promise<Answer> {
  try {
    return { code: 200, message: "", object: (await p) as VeleroObject };
  } catch (e) {
    if (!isApiError(e)) throw e;
    const body = typeof e.body === "string" ? e.body : JSON.stringify(e.body);
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      /* not JSON */
    }
    return { code: e.code, message };
  }
}

/** A write retried while the answer asks for a retry: 429 (a replica that does not lead), 409 (a lost race), 500 (no answer). */
export async function retrying(attempt: () => Promise<unknown>, tries = 30, pauseMs = 50): Promise<Answer> {
  let a = await answer(attempt());
  for (let i = 1; i < tries && [429, 409, 500].includes(a.code); i++) {
    await new Promise((r) => setTimeout(r, pauseMs));
    a = await answer(attempt());
  }
  return a;
}

// ---- the table ----

export interface Row {
  scenario: string;
  runs: number;
  created: number;
  completed: number;
  lost: number;
  stuck: number;
  overlaps: number;
  crashes: number;
  /** What proves the fault happened, and scenario-specific checks. */
  evidence: string;
}

export function renderTable(rows: readonly Row[], footnotes: readonly string[]): string {
  const head = ["scenario", "runs", "created", "completed", "lost", "stuck", "overlaps", "crashes", "evidence"];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of rows) lines.push(`| ${[r.scenario, r.runs, r.created, r.completed, r.lost, r.stuck, r.overlaps, r.crashes, r.evidence].join(" | ")} |`);
  return [...lines, "", ...footnotes.map((f, i) => `${i + 1}. ${f}`)].join("\n");
}

// ---- a Service in front of replicas ----

/**
 * A TCP round-robin balancer on loopback, as a Service's proxy is: each connection goes to
 * the next live backend (a refused connection tries the next one). TLS passes through, so the
 * API server still verifies each replica's certificate. remove() takes a backend out of
 * rotation and cuts its connections, as an endpoint leaving the Service does.
 */
export class Balancer {
  private server?: Server;
  private readonly backends = new Map<string, { port: number; sockets: Set<Socket> }>();
  private next = 0;
  port = 0;
  /** Connections per backend id. */
  readonly served = new Map<string, number>();

  async start(): Promise<string> {
    this.server = createServer((client) => this.route(client, 0));
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as { port: number }).port;
    return `https://127.0.0.1:${this.port}`;
  }

  add(id: string, url: string): void {
    this.backends.set(id, { port: Number(new URL(url).port), sockets: new Set() });
  }

  remove(id: string): void {
    const b = this.backends.get(id);
    this.backends.delete(id);
    for (const s of b?.sockets ?? []) s.destroy();
  }

  async stop(): Promise<void> {
    for (const id of [...this.backends.keys()]) this.remove(id);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private route(client: Socket, tried: number): void {
    const ids = [...this.backends.keys()];
    if (ids.length === 0 || tried >= ids.length) {
      client.destroy();
      return;
    }
    const id = ids[this.next++ % ids.length]!;
    const b = this.backends.get(id)!;
    const upstream = connect(b.port, "127.0.0.1");
    let connected = false;
    client.pause();
    upstream.once("connect", () => {
      connected = true;
      this.served.set(id, (this.served.get(id) ?? 0) + 1);
      b.sockets.add(upstream);
      b.sockets.add(client);
      client.pipe(upstream).pipe(client);
      client.resume();
      const drop = () => {
        b.sockets.delete(upstream);
        b.sockets.delete(client);
        upstream.destroy();
        client.destroy();
      };
      upstream.on("close", drop);
      client.on("close", drop);
    });
    upstream.on("error", () => {
      if (!connected) this.route(client, tried + 1);
    });
    client.on("error", () => upstream.destroy());
  }
}
