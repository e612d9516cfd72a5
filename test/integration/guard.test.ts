/**
 * The promotion guard against every writer (issue 16), on the real API server (watch cache
 * off, so "at the same time" is etcd's write order), with two `backup-gate serve` replicas
 * behind a round-robin TCP balancer standing in for the webhook Service. Writers are a
 * ServiceAccount of their own ("writer"), as a script or a second queue would be; the gates
 * run as the admin. Each test is written from the writer's side: the request it sends, the
 * answer it gets, and what ends up in flight.
 *
 * Knobs: GUARD_SEED, GUARD_ROUNDS (the race, default 12), GUARD_WRITERS (default 8).
 * Rerun: npx vitest run --project integration test/integration/guard.test.ts
 */
import { join } from "node:path";
import { AdmissionregistrationV1Api, AuthenticationV1Api, CoordinationV1Api } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BackupObserver } from "../support/backupObserver.js";
import {
  answer,
  Balancer,
  chaosBackupBody,
  envInt,
  overlapCheck,
  prng,
  randomBackups,
  retrying,
  TERMINAL,
  WRITER_USER,
  writerClients,
  type Answer,
  type ChaosBackup,
} from "../support/chaos.js";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { startGate, type GateProcess } from "../support/gate.js";
import {
  clients,
  createNamespace,
  createWorkload,
  getBackup,
  isApiError,
  updateVelero,
  VELERO_GROUP,
  VELERO_VERSION,
  type Clients,
  type VeleroObject,
} from "../support/objects.js";
import { admissionReview, postReview, type ReviewResponse } from "../support/review.js";
import { sleep, waitFor } from "../support/wait.js";
import { writeDevCerts } from "../../src/tls/devCerts.js";

const SEED = envInt("GUARD_SEED", 20261205);
const ROUNDS = envInt("GUARD_ROUNDS", 12);
const WRITERS = Math.max(8, envInt("GUARD_WRITERS", 8));
const VELERO = "velero";
const GATE_NS = "backup-gate";
const WL = "gw";
const APPS = ["a", "b", "c", "d", "e", "f"];
const LIMIT = 4;
const POLICY = `maxConcurrentBackups: ${LIMIT}\npriorities: {agingSeconds: 0}\nnudgeAfterSeconds: 3600\n`;

describe("the guard holds against every writer (two replicas answering)", () => {
  let cp: ControlPlane;
  let admin: Clients;
  let writers: Clients[];
  let observer: BackupObserver;
  let balancer: Balancer;
  const gates: GateProcess[] = [];
  const plans = prng(SEED);

  /** A write by the writer, retried while it is told to retry. */
  const asWriter = (_w: Clients, attempt: () => Promise<unknown>, tries = 30): Promise<Answer> => retrying(attempt, tries);
  const createAs = (w: Clients, b: ChaosBackup, status?: Record<string, unknown>) =>
    asWriter(w, () =>
      w.custom.createNamespacedCustomObject({
        group: VELERO_GROUP,
        version: VELERO_VERSION,
        namespace: VELERO,
        plural: "backups",
        body: chaosBackupBody(b, VELERO, WL, status),
      }),
    );
  /** Read, change, write back (with the version read): one attempt. */
  const editAs = async (w: Clients, name: string, change: (o: VeleroObject) => void): Promise<Answer> => {
    const o = await getBackup(w, VELERO, name);
    change(o);
    return answer(
      w.custom.replaceNamespacedCustomObject({ group: VELERO_GROUP, version: VELERO_VERSION, namespace: VELERO, plural: "backups", name, body: o }),
    );
  };
  const phaseOf = async (name: string) => ((await getBackup(admin, VELERO, name)).status?.phase ?? "") as string;
  /** Velero's part (as the admin, like Velero's own ServiceAccount): status writes the guard never sees. */
  const setPhase = (name: string, phase: string) =>
    updateVelero(admin, "backups", VELERO, name, (o) => {
      o.status = { ...o.status, phase };
    });
  const inFlightNow = () =>
    [...observer.objects.values()]
      .filter((o) => ["ReadyToStart", "InProgress"].includes(o.status?.phase))
      .map((o) => o.metadata.name)
      .sort();
  const finishAll = async () => {
    for (const name of inFlightNow()) await setPhase(name, "Completed");
  };

  beforeAll(async () => {
    cp = await startControlPlane({ name: "guard", apiserverArgs: { "watch-cache": "false" } });
    admin = clients(cp.kubeConfig);
    for (const ns of [VELERO, GATE_NS, WL]) await createNamespace(admin, ns);
    await admin.core.createNamespacedConfigMap({ namespace: GATE_NS, body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": POLICY } } });
    for (const app of APPS) await createWorkload(admin, WL, app);
    writers = await writerClients(cp, VELERO, WRITERS);

    // Two replicas with one certificate (as cert-manager gives a Deployment), behind the balancer;
    // the first registers the webhook configurations at the balancer's address.
    const certDir = (await writeDevCerts(join(cp.dir, "certs"), { extraSans: ["127.0.0.1"] })).dir;
    balancer = new Balancer();
    const url = await balancer.start();
    for (const [i, identity] of ["guard-0", "guard-1"].entries()) {
      const g = await startGate(cp, { identity, extraArgs: ["--tls-dir", certDir, ...(i === 0 ? ["--register-url", url] : [])] });
      gates.push(g);
      balancer.add(identity, g.url);
    }
    const coord = cp.kubeConfig.makeApiClient(CoordinationV1Api);
    await waitFor(
      "a leader",
      async () => {
        try {
          return Boolean((await coord.readNamespacedLease({ name: "backup-gate", namespace: GATE_NS })).spec?.holderIdentity);
        } catch {
          return false;
        }
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    observer = await BackupObserver.start(cp, VELERO);
    // The new leader's handover (5 s) passes before the writers start.
    await sleep(6000);
  }, 300_000);

  // Each test starts with nothing in flight, whatever the one before left.
  afterEach(() => finishAll(), 60_000);

  afterAll(async () => {
    await observer?.stop();
    for (const g of gates) await g.stop().catch(() => undefined);
    await balancer?.stop();
    await cp?.stop();
  }, 120_000);

  it("1. a Backup created straight into ReadyToStart next to a conflicting one InProgress is refused; one that conflicts with nothing is created", async () => {
    const w = writers[0]!;
    expect((await createAs(w, { name: "hold-1", apps: ["a"] }, { phase: "InProgress" })).code).toBe(200);
    await waitFor("the observer to see hold-1", () => observer.phase("hold-1") === "InProgress");
    const refused = await createAs(w, { name: "rts-1", apps: ["a", "b"] }, { phase: "ReadyToStart" });
    expect(refused.code).toBe(403);
    expect(refused.message).toMatch(
      /^admission webhook "validate-create-in-flight\.backups\.backup-gate\.io" denied the request: backup rts-1 may not be created ReadyToStart: it conflicts with hold-1 \(InProgress\): both snapshot PVC gw\/data-a-0/,
    );
    await expect(getBackup(admin, VELERO, "rts-1")).rejects.toSatisfy((e) => isApiError(e, 404));
    const free = await createAs(w, { name: "rts-2", apps: ["c"] }, { phase: "ReadyToStart" });
    expect(free.code).toBe(200);
    await waitFor("rts-2 in flight", () => inFlightNow().includes("rts-2"));
    expect(inFlightNow()).toEqual(["hold-1", "rts-2"]);
    await finishAll();
  });

  it("4. a spec edit that widens a backup in flight is refused naming the field; labels stay editable; Velero's own writes pass", async () => {
    const w = writers[1]!;
    expect((await createAs(w, { name: "edit-1", apps: ["d"] })).code).toBe(200);
    await waitFor("the gate to promote edit-1", async () => (await phaseOf("edit-1")) === "ReadyToStart", { timeoutMs: 30_000 });
    expect((await createAs(w, { name: "edit-other", apps: ["e"] }, { phase: "InProgress" })).code).toBe(200);
    // Widen edit-1 onto app e, in flight in edit-other.
    const widened = await editAs(w, "edit-1", (o) => {
      o.spec.labelSelector.matchExpressions[0].values = ["d", "e"];
    });
    expect(widened.code).toBe(403);
    expect(widened.message).toMatch(
      /^admission webhook "validate-promotion\.backups\.backup-gate\.io" denied the request: backup edit-1 is ReadyToStart: spec\.labelSelector may not change while it is in flight/,
    );
    const namespaces = await editAs(w, "edit-1", (o) => {
      o.spec.includedNamespaces = [WL, "default"];
    });
    expect(namespaces.code).toBe(403);
    expect(namespaces.message).toMatch(/spec\.includedNamespaces may not change while it is in flight/);
    const labelled = await editAs(w, "edit-1", (o) => {
      o.metadata.labels = { ...o.metadata.labels, team: "shop" };
      o.metadata.annotations = { ...o.metadata.annotations, note: "hi" };
    });
    expect(labelled.code).toBe(200);
    // Velero picks it up: InProgress, with the spec defaults it fills in (prepareBackupRequest), then done.
    const picked = await answer(
      updateVelero(admin, "backups", VELERO, "edit-1", (o) => {
        o.status = { ...o.status, phase: "InProgress" };
        o.spec = { ...o.spec, ttl: "720h0m0s", defaultVolumesToFsBackup: false, snapshotMoveData: false, itemOperationTimeout: "4h0m0s" };
      }),
    );
    expect(picked.code).toBe(200);
    expect((await getBackup(admin, VELERO, "edit-1")).spec.labelSelector.matchExpressions[0].values).toEqual(["d"]);
    await finishAll();
  });

  it("3. replicas: a move by another writer reviewed by the replica that does not lead gets a retryable 429; the gate's own user passes there", async () => {
    const coord = cp.kubeConfig.makeApiClient(CoordinationV1Api);
    const holder = (await coord.readNamespacedLease({ name: "backup-gate", namespace: GATE_NS })).spec?.holderIdentity;
    const leader = gates.find((g) => g.identity === holder)!;
    const other = gates.find((g) => g.identity !== holder)!;
    const body = chaosBackupBody({ name: "direct-1", apps: ["f"] }, VELERO, WL);
    const writerUser = WRITER_USER;
    expect(await reviewUpdate(leader.url, body, writerUser)).toMatchObject({ allowed: true });
    const refused = await reviewUpdate(other.url, body, writerUser);
    // The connection is closed with the answer, so that the API server's retry may reach the leader.
    expect(refused).toMatchObject({ allowed: false, status: { code: 429, reason: "TooManyRequests" }, connection: "close" });
    expect(refused.status?.message).toMatch(
      /^backup direct-1 may not become ReadyToStart through this replica: backup-gate guard-\d is not the leader, .*try again/,
    );
    const adminUser = (
      await cp.kubeConfig
        .makeApiClient(AuthenticationV1Api)
        .createSelfSubjectReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } })
    ).status?.userInfo?.username;
    expect(await reviewUpdate(other.url, body, adminUser ?? "")).toMatchObject({ allowed: true });
  });

  it("5. with both replicas unreachable: Velero's own writes and label edits pass, guarded writes wait (failurePolicy Fail)", async () => {
    const w = writers[2]!;
    expect((await createAs(w, { name: "down-1", apps: ["b"] }, { phase: "ReadyToStart" })).code).toBe(200);
    // down-q waits behind down-1 (both back up app b).
    expect((await createAs(admin, { name: "down-q", apps: ["b"] })).code).toBe(200);
    await waitFor("down-1 in flight, down-q Queued", () => observer.phase("down-1") === "ReadyToStart" && observer.phase("down-q") === "Queued");
    for (const g of gates) balancer.remove(g.identity);
    try {
      // Velero: pickup (with its spec defaults), progress, done.
      const picked = await answer(
        updateVelero(admin, "backups", VELERO, "down-1", (o) => {
          o.status = { ...o.status, phase: "InProgress" };
          o.spec = { ...o.spec, ttl: "720h0m0s", defaultVolumesToFsBackup: false };
        }),
      );
      expect(picked.code).toBe(200);
      expect(
        (
          await answer(
            updateVelero(admin, "backups", VELERO, "down-1", (o) => {
              o.status = { ...o.status, progress: { itemsBackedUp: 3 } };
            }),
          )
        ).code,
      ).toBe(200);
      expect(
        (
          await editAs(w, "down-1", (o) => {
            o.metadata.labels = { ...o.metadata.labels, seen: "yes" };
          })
        ).code,
      ).toBe(200);
      // Guarded: a spec edit in flight, a move into flight, a create straight into flight.
      const edit = await editAs(w, "down-1", (o) => {
        o.spec.includedNamespaces = ["default"];
      });
      expect([edit.code, edit.message]).toEqual([500, expect.stringMatching(/failed calling webhook "validate-promotion\.backups\.backup-gate\.io"/)]);
      const move = await editAs(w, "down-q", (o) => {
        o.status = { ...o.status, phase: "ReadyToStart" };
      });
      expect([move.code, move.message]).toEqual([500, expect.stringMatching(/failed calling webhook "validate-promotion/)]);
      const created = await answer(
        w.custom.createNamespacedCustomObject({
          group: VELERO_GROUP,
          version: VELERO_VERSION,
          namespace: VELERO,
          plural: "backups",
          body: chaosBackupBody({ name: "down-2", apps: ["d"] }, VELERO, WL, { phase: "InProgress" }),
        }),
      );
      expect([created.code, created.message]).toEqual([500, expect.stringMatching(/failed calling webhook "validate-create-in-flight/)]);
      // Done: the waiting one first (a status write the guard never sees), so nothing is promoted after the test.
      await setPhase("down-q", "Completed");
      expect(
        (
          await answer(
            updateVelero(admin, "backups", VELERO, "down-1", (o) => {
              o.status = { ...o.status, phase: "Completed" };
            }),
          )
        ).code,
      ).toBe(200);
    } finally {
      for (const g of gates) balancer.add(g.identity, g.url);
    }
  });

  /** N writers race to promote conflicting backups, round after round; returns the overlaps in etcd's order. */
  const race = async (prefix: string, rounds: number) => {
    const all: ChaosBackup[] = [];
    const outcomes = new Map<string, number>();
    const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    for (let round = 0; round < rounds; round++) {
      const batch = randomBackups(plans, `${prefix}${round}`, 6, APPS);
      all.push(...batch);
      // A hold keeps the gate's own controller from promoting them first: the writers race each other.
      const hold: ChaosBackup = { name: `${prefix}${round}-hold`, apps: APPS };
      all.push(hold);
      await waitFor(
        "nothing in flight",
        async () => {
          await finishAll();
          return inFlightNow().length === 0;
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      expect((await createAs(admin, hold, { phase: "InProgress" })).code).toBe(200);
      await Promise.all(batch.map((b) => createAs(admin, b)));
      await waitFor("the batch queued", async () => (await Promise.all(batch.map((b) => phaseOf(b.name)))).every((p) => p === "Queued"), {
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      await setPhase(hold.name, "Completed");
      const picks = writers.map(() => ({ b: batch[Math.floor(plans() * batch.length)]!, phase: plans() < 0.8 ? "ReadyToStart" : "InProgress" }));
      await Promise.all(
        picks.map(async ({ b, phase }, i) => {
          let moved = false;
          const a = await asWriter(
            writers[i]!,
            async () => {
              const now = await getBackup(writers[i]!, VELERO, b.name);
              moved = !["", "New", "Queued"].includes(now.status?.phase ?? "");
              if (moved) return now; // someone else moved it already: nothing left to race for
              now.status = { ...now.status, phase };
              return writers[i]!.custom.replaceNamespacedCustomObject({
                group: VELERO_GROUP,
                version: VELERO_VERSION,
                namespace: VELERO,
                plural: "backups",
                name: b.name,
                body: now,
              });
            },
            10,
          );
          count(moved ? "already moved" : a.code === 200 ? "written" : `${a.code}${a.message.includes("not yet observed") ? " (pending)" : ""}`);
        }),
      );
      await sleep(200);
      for (const b of batch) await setPhase(b.name, "Completed");
      await waitFor("the round to end", () => batch.every((b) => TERMINAL.has(observer.phase(b.name) ?? "")), { timeoutMs: 30_000, intervalMs: 50 });
    }
    return { ...overlapCheck(observer.history, all), outcomes: Object.fromEntries([...outcomes].sort()) };
  };

  it(`2+3. ${WRITERS} writers race to promote conflicting backups through the API server, ${ROUNDS} rounds, two replicas answering: never two conflicting in flight`, async () => {
    const r = await race("race", ROUNDS);
    console.log(`guard race (GUARD_SEED=${SEED}): ${JSON.stringify(r)}`);
    expect(r.overlaps).toEqual([]);
    expect(r.maxInFlight).toBeLessThanOrEqual(LIMIT);
    expect(r.outcomes.written ?? 0).toBeGreaterThan(0); // the writers did promote (the gate's controller races them too)
    expect(r.outcomes["403"] ?? 0).toBeGreaterThan(0); // and were refused where they would have overlapped
  }, 600_000);

  it("positive control: the same race with the guard absent puts conflicting backups in flight together", async () => {
    const admission = cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    await admission.deleteValidatingWebhookConfiguration({ name: "backup-gate" });
    await sleep(2000); // the API server drops the configuration from its webhook list
    const r = await race("ctl", 4);
    console.log(`guard race without the guard (GUARD_SEED=${SEED}): ${JSON.stringify(r)}`);
    expect(r.overlaps.length).toBeGreaterThan(0);
  }, 600_000);
});

/** An UPDATE review (Queued -> ReadyToStart) sent straight to one replica, as the API server would, as a dry run. */
async function reviewUpdate(gateUrl: string, backup: VeleroObject, username: string): Promise<ReviewResponse & { connection?: string }> {
  const review = admissionReview({
    operation: "UPDATE",
    username,
    dryRun: true,
    namespace: VELERO,
    object: { ...backup, status: { phase: "ReadyToStart" } },
    oldObject: { ...backup, status: { phase: "Queued" } },
  });
  const posted = await postReview(gateUrl, "/validate-backups", review);
  if (!posted.response) throw new Error(`no review response from ${gateUrl}: HTTP ${posted.status}`);
  return { ...posted.response, ...(posted.connection ? { connection: posted.connection } : {}) };
}
