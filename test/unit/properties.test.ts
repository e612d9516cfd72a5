import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ClaimIndex } from "../../src/core/conflict/claimIndex.js";
import { conflictBetween, conflictsWith, MAX_SHARED_UNITS, type ScopedBackup } from "../../src/core/conflict/conflicts.js";
import { IN_FLIGHT_PHASES, QUEUED_PHASES, type BackupInfo, type NamespaceInfo, type PodInfo, type PvcInfo, type PvInfo } from "../../src/core/model.js";
import { trim, type ObjectKind } from "../../src/core/velero/objects.js";
import { howMade, plan, type Plan, type PlanMaking } from "../../src/core/decision/plan.js";
import { policySchema, type Policy } from "../../src/core/policy.js";
import { compareClaims, scopeOf, type BackupScope } from "../../src/core/scope/scope.js";
import { ScopeCache } from "../../src/core/scope/cache.js";
import type { ClusterView } from "../../src/core/view.js";
import { cluster } from "./support/cluster.js";
import {
  backupModels,
  backupObject,
  clusterModel,
  clusterObjects,
  contentsChange,
  IN_FLIGHT,
  load,
  policyArb,
  QUEUED,
  T0,
  type BackupModel,
  type ClusterModel,
} from "./support/arbitraries.js";

// Properties of the decision core over generated clusters and queues (docs/rules.md, "Units,
// claims and conflicts" and "The queue"). Each property names the rule it checks.

const NOW = T0 + 121 * 60_000; // every generated backup was created before now
const STEP = 600_000; // ten minutes, the default aging period

const scoped = (b: BackupInfo, view: ClusterView, policy: Policy): ScopedBackup => ({ name: b.name, phase: b.phase, scope: scopeOf(b, view, policy) });

/** Every unit both scopes claim, with a's claim and b's: namespace by namespace, claim by claim. */
const sharedClaims = (a: BackupScope, b: BackupScope) =>
  a.claims.namespaces.flatMap((ns) => {
    const [mine, theirs] = [a.claims.partIn(ns), b.claims.partIn(ns)];
    if (!mine || !theirs) return [];
    return [...mine.claims].flatMap(([unit, m]) => {
      const t = theirs.claims.get(unit);
      return t ? [{ unit, mine: m, theirs: t }] : [];
    });
  });

describe("plan properties", () => {
  it("never starts a backup that shares a claim with one in flight or promoted with it", () => {
    fc.assert(
      fc.property(clusterModel, backupModels(), policyArb, (model, backups, policy) => {
        const snapshot = load(model, backups);
        const result = plan(snapshot, policy, NOW);
        const byName = new Map(snapshot.backups.map((b) => [b.name, b]));
        const wasInFlight = new Set(result.inFlight);
        const running = [...result.inFlight, ...result.promotions.map((p) => p.backup)].map((name) =>
          scoped(byName.get(name) as BackupInfo, snapshot.view, policy),
        );
        for (const [i, a] of running.entries()) {
          for (const b of running.slice(i + 1)) {
            if (wasInFlight.has(a.name) && wasInFlight.has(b.name)) continue;
            expect(conflictBetween(a, b), `${a.name} and ${b.name} run together`).toBeUndefined();
            expect(conflictBetween(b, a), `${b.name} and ${a.name} run together`).toBeUndefined();
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  // The plan finds whom a backup waits behind through the claim index, which applies the rule
  // by what it files members under; this checks it against the rule itself, pair by pair.
  it("finds through the claim index exactly the backups ahead that the rule names, in order", () => {
    fc.assert(
      fc.property(clusterModel, backupModels({ minLength: 2, maxLength: 12 }), policyArb, fc.integer({ min: 0, max: 3 }), (model, backups, policy, limit) => {
        const { view, backups: infos } = load(model, backups);
        const members = infos.map((b) => scoped(b, view, policy));
        const index = new ClaimIndex();
        for (const m of members) index.add(m);
        for (const [i, b] of members.entries()) {
          const expected = members
            .slice(0, i)
            .filter((other) => conflictsWith(b, other))
            .map((other) => other.name);
          const all = index.blockersOf(b, Infinity, i);
          expect(
            all.blockers.map((x) => x.name),
            `whom ${b.name} waits behind`,
          ).toEqual(expected);
          expect(all.more).toBe(false);
          const first = index.blockersOf(b, limit, i);
          expect(first.blockers.map((x) => x.name)).toEqual(expected.slice(0, limit));
          expect(first.more).toBe(expected.length > limit);
        }
      }),
      { numRuns: 400 },
    );
  });

  it("judges every ItemBlock-level conflict a namespace-level conflict too", () => {
    fc.assert(
      fc.property(clusterModel, backupModels({ minLength: 2 }), policyArb, (model, backups, base) => {
        const { view, backups: infos } = load(model, backups);
        const fine = policySchema.parse({ ...base, conflictLevel: "ItemBlock" });
        const strict = policySchema.parse({ ...base, conflictLevel: "Namespace" });
        const atItemBlock = infos.map((b) => scoped(b, view, fine));
        const atNamespace = infos.map((b) => scoped(b, view, strict));
        for (const [i, a] of atItemBlock.entries()) {
          for (const [j, b] of atItemBlock.entries()) {
            if (i === j || !conflictBetween(a, b)) continue;
            expect(
              conflictBetween(atNamespace[i] as ScopedBackup, atNamespace[j] as ScopedBackup),
              `${a.name} and ${b.name} conflict at ItemBlock level but not at Namespace level`,
            ).toBeDefined();
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  // conflictBetween keeps the first few shared units by insertion as it walks the smaller side's
  // claims; this checks it against every unit both backups claim, sorted.
  it("names the first units both backups claim, in the first's claim order, and counts them all", () => {
    let cut = 0; // pairs sharing more units than a conflict names: the cut is exercised
    fc.assert(
      fc.property(clusterModel, backupModels({ minLength: 2 }), policyArb, (model, backups, base) => {
        const { view, backups: infos } = load(model, backups);
        const policy = policySchema.parse({ ...base, conflictLevel: "ItemBlock" });
        const all = infos.map((b) => scoped(b, view, policy));
        for (const a of all)
          for (const b of all) {
            if (a === b || a.scope.level !== "ItemBlock" || b.scope.level !== "ItemBlock") continue;
            const shared = sharedClaims(a.scope, b.scope).sort((x, y) => compareClaims(x.mine, y.mine));
            if (shared.length > MAX_SHARED_UNITS) cut++;
            const c = conflictBetween(a, b);
            expect(c?.unitCount ?? 0, `${a.name} and ${b.name}`).toBe(shared.length);
            expect(c?.units ?? []).toEqual(
              shared.slice(0, MAX_SHARED_UNITS).map(({ unit, mine, theirs }) => ({ unit, reasons: [mine.reason, theirs.reason] })),
            );
          }
      }),
      { numRuns: 300 },
    );
    expect(cut).toBeGreaterThan(0);
  });

  it("never promotes past the limit", () => {
    fc.assert(
      fc.property(clusterModel, backupModels({ maxLength: 10 }), policyArb, (model, backups, policy) => {
        const result = plan(load(model, backups), policy, NOW);
        if (result.inFlight.length <= policy.maxConcurrentBackups) {
          expect(result.inFlight.length + result.promotions.length).toBeLessThanOrEqual(policy.maxConcurrentBackups);
        } else {
          expect(result.promotions).toEqual([]);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("gives the same plan for the same cluster and queue, whatever order they were read in", () => {
    const input = fc.tuple(clusterModel, backupModels(), policyArb).chain(([model, backups, policy]) => {
      const objects = [...clusterObjects(model), ...backups.map(backupObject)];
      return fc.tuple(fc.constant({ model, backups, policy }), fc.shuffledSubarray(objects, { minLength: objects.length, maxLength: objects.length }));
    });
    fc.assert(
      fc.property(input, ([{ model, backups, policy }, shuffled]) => {
        const canonical = load(model, backups);
        const reordered = cluster(...shuffled);
        const expected = serialize(plan(canonical, policy, NOW));
        expect(serialize(plan(reordered, policy, NOW))).toEqual(expected);
        expect(serialize(plan({ view: canonical.view, backups: [...canonical.backups].reverse() }, policy, NOW))).toEqual(expected);
        // A warm cache gives the plan a fresh one gives.
        const cache = new ScopeCache();
        plan(canonical, policy, NOW, { cache });
        expect(serialize(plan(canonical, policy, NOW, { cache }))).toEqual(expected);
      }),
      { numRuns: 150 },
    );
  });

  it("re-planning from the last plan after the cluster moved gives the plan made from nothing", () => {
    // Each step remakes one namespace's contents (sometimes its labels), sometimes moves one
    // backup's phase, and lets time pass (across aging steps): the incremental plan and the
    // scope cache must not be able to tell.
    const steps = (model: ClusterModel, n: number): fc.Arbitrary<Step[]> =>
      n === 0
        ? fc.constant([])
        : fc
            .record({
              model: contentsChange(model),
              phase: fc.oneof(
                { weight: 5, arbitrary: fc.constant(undefined) },
                { weight: 1, arbitrary: fc.tuple(fc.nat(), fc.constantFrom(...QUEUED, ...IN_FLIGHT, "Completed")) },
              ),
              minutes: fc.constantFrom(0, 0, 0, 1, 7),
            })
            .chain((step) => steps(step.model, n - 1).map((rest) => [step, ...rest]));
    const input = fc
      .tuple(clusterModel, backupModels({ maxLength: 10 }), policyArb, fc.integer({ min: 1, max: 6 }))
      .chain(([model, backups, policy, n]) => fc.tuple(fc.constant({ model, backups, policy }), steps(model, n)));
    const made: Record<PlanMaking, number> = { afresh: 0, incremental: 0 };
    fc.assert(
      fc.property(input, ([{ model, backups, policy }, path]) => {
        const { view, backups: infos } = load(model, backups);
        let current = infos;
        let objects = clusterObjects(model);
        let now = NOW;
        const cache = new ScopeCache();
        let last = plan({ view, backups: current }, policy, now, { cache });
        for (const step of path) {
          const next = clusterObjects(step.model);
          applyObjects(view, objects, next);
          objects = next;
          if (step.phase) {
            const [i, phase] = step.phase;
            current = current.map((b, j) => (j === i % current.length ? { ...b, phase } : b));
          }
          now += step.minutes * 60_000;
          last = plan({ view, backups: current }, policy, now, { cache, previous: last });
          made[howMade(last) as PlanMaking]++;
          expect(serialize(last)).toEqual(serialize(plan({ view, backups: current }, policy, now)));
        }
      }),
      { numRuns: 300 },
    );
    // The shortcut must have been taken often enough for this to test it.
    expect(made.incremental).toBeGreaterThan(made.afresh);
  });

  it("at Namespace level without priorities, promotes exactly what Velero's own queue would", () => {
    const input = fc.record({
      model: clusterModel,
      backups: backupModels({ schedules: false, priorities: false, phases: [...QUEUED, ...IN_FLIGHT, "Completed"], maxLength: 10 }),
      limit: fc.integer({ min: 1, max: 5 }),
    });
    fc.assert(
      fc.property(input, ({ model, backups, limit }) => {
        const policy = policySchema.parse({
          conflictLevel: "Namespace",
          maxConcurrentBackups: limit,
          priorities: { manual: 0, scheduled: 0, agingSeconds: 0 },
        });
        const snapshot = load(model, backups);
        const result = plan(snapshot, policy, NOW);
        const namespacesOf = (b: BackupInfo) => (result.scopes.get(b.name) as BackupScope).queueNamespaces;
        expect(result.promotions.map((p) => p.backup)).toEqual(veleroQueue(snapshot.backups, limit, namespacesOf));
      }),
      { numRuns: 300 },
    );
  });

  it("starts every queued backup within a bounded number of rounds, whatever keeps arriving", () => {
    fc.assert(
      fc.property(simulation, (sim) => {
        const started = simulate(sim);
        for (const [name, bound] of sim.bounds) {
          expect(started.get(name), `${name} has not started after ${bound} rounds`).toBeLessThanOrEqual(bound);
        }
      }),
      { numRuns: 60 },
    );
  });
});

/**
 * Velero 1.18's backup queue (pkg/controller/backup_queue_controller.go), for a whole queue at
 * once: in queue order, a backup becomes ReadyToStart when fewer than `limit` backups run and
 * its namespaces meet none of those of the running backups and the backups queued ahead of it.
 */
function veleroQueue(backups: readonly BackupInfo[], limit: number, namespacesOf: (b: BackupInfo) => readonly string[]): string[] {
  const running = backups.filter((b) => b.phase === "ReadyToStart" || b.phase === "InProgress");
  const queued = backups
    .filter((b) => b.phase === "" || b.phase === "New" || b.phase === "Queued")
    .sort((a, b) => Date.parse(a.creationTimestamp) - Date.parse(b.creationTimestamp) || a.name.localeCompare(b.name));
  const earlier = running.map((b) => new Set(namespacesOf(b)));
  let runningCount = running.length;
  const started: string[] = [];
  for (const b of queued) {
    const mine = namespacesOf(b);
    const overlaps = earlier.some((theirs) => mine.some((ns) => theirs.has(ns)));
    if (runningCount < limit && !overlaps) {
      started.push(b.name);
      runningCount++;
    }
    earlier.push(new Set(mine));
  }
  return started;
}

/** A plan as plain data (its `scopes` map holds maps), for deep comparison. */
interface Step {
  readonly model: ClusterModel;
  readonly phase?: [number, string];
  readonly minutes: number;
}

/** Brings the view from one set of raw objects to another, as the informers would: sets and deletes. */
function applyObjects(view: ClusterView, before: readonly object[], after: readonly object[]): void {
  const key = (o: object) => {
    const m = o as { kind: string; metadata: { namespace?: string; name: string } };
    return `${m.kind}/${m.metadata.namespace ?? ""}/${m.metadata.name}`;
  };
  const old = new Map(before.map((o) => [key(o), o]));
  const fresh = new Map(after.map((o) => [key(o), o]));
  for (const [k, o] of old) {
    if (fresh.has(k)) continue;
    const {
      kind,
      metadata: { namespace, name },
    } = o as { kind: string; metadata: { namespace: string; name: string } };
    if (kind === "Pod") view.deletePod(namespace, name);
    else if (kind === "PersistentVolumeClaim") view.deletePvc(namespace, name);
    else if (kind === "PersistentVolume") view.deletePv(name);
    else if (kind === "Namespace") view.deleteNamespace(name);
  }
  for (const [k, o] of fresh) {
    if (JSON.stringify(old.get(k)) === JSON.stringify(o)) continue;
    const { kind } = o as { kind: ObjectKind };
    const trimmed = trim(kind, o);
    if (!trimmed.ok) throw trimmed.error;
    if (kind === "Pod") view.setPod(trimmed.value as PodInfo);
    else if (kind === "PersistentVolumeClaim") view.setPvc(trimmed.value as PvcInfo);
    else if (kind === "PersistentVolume") view.setPv(trimmed.value as PvInfo);
    else if (kind === "Namespace") view.setNamespace(trimmed.value as NamespaceInfo);
  }
}

function serialize(p: Plan): unknown {
  const scopes = [...p.scopes.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, s]) => [name, { ...s, exclusive: [...s.exclusive.entries()] }]);
  // Queue entries compared as they serialize: their conflicts and reasons are getters.
  return { ...p, queue: JSON.parse(JSON.stringify(p.queue)) as unknown, scopes };
}

// --- No starvation ---------------------------------------------------------------------
//
// Rounds of ten minutes (the aging period): backups that finish leave, new ones arrive, the
// plan runs, and its promotions start and run for 1..3 rounds. Two queued backups age at the
// same rate, so their order never changes; a backup arriving `Δ` rounds after X, where Δ is
// the spread of base priorities, is always behind X. Only the finitely many backups ahead of
// X then stand between X and a start, and the first of them (the head of the queue) starts
// within 2·maxDuration+1 rounds: nothing that conflicts with it may start meanwhile, and the
// first free slot is its. So X starts within Δ + (ahead + 1)·(2·maxDuration + 1) rounds.

interface Simulation {
  readonly model: ClusterModel;
  readonly initial: readonly BackupModel[];
  readonly arrivals: readonly BackupModel[];
  readonly every: number;
  readonly durations: readonly number[];
  readonly policy: Policy;
  /** Initially queued backup -> the round by which it must have started. */
  readonly bounds: ReadonlyMap<string, number>;
}

const simulation: fc.Arbitrary<Simulation> = fc
  .record({
    model: clusterModel,
    initial: backupModels({ phases: [...QUEUED, ...IN_FLIGHT], maxLength: 6 }),
    arrivals: backupModels({ maxLength: 3 }),
    every: fc.integer({ min: 1, max: 3 }),
    durations: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 4 }),
    policy: policyArb.map((p) =>
      policySchema.parse({
        ...p,
        serialWorkloads: p.serialWorkloads === "Replace" ? "Allow" : p.serialWorkloads,
        priorities: { ...p.priorities, agingSeconds: STEP / 1000 },
      }),
    ),
  })
  .map((s) => {
    // Base priorities as the design gives them: the label when it is an integer, else manual
    // backups 10 and runs of a Schedule 0 (the default policy's priorities).
    const base = (b: BackupModel) => (b.priority !== undefined && /^-?\d+$/.test(b.priority) ? Number(b.priority) : b.schedule ? 0 : 10);
    const all = [...s.initial, ...s.arrivals];
    const spread = Math.max(...all.map(base)) - Math.min(...all.map(base));
    const queued = s.initial.filter((b) => QUEUED_PHASES.has(b.phase));
    const arrivingAhead = Array.from({ length: spread }, (_, r) => r).filter((r) => r > 0 && r % s.every === 0).length * s.arrivals.length;
    const maxDuration = Math.max(...s.durations);
    const bound = spread + (queued.length + arrivingAhead + 1) * (2 * maxDuration + 1);
    return { ...s, bounds: new Map(queued.map((b) => [b.name, bound])) };
  });

/** Runs the rounds; returns the round in which each initially queued backup started. */
function simulate(sim: Simulation): Map<string, number> {
  const { view, backups: initial } = load(sim.model, sim.initial);
  let backups: BackupInfo[] = initial;
  const endsAt = new Map<string, number>();
  initial.filter((b) => IN_FLIGHT_PHASES.has(b.phase)).forEach((b, i) => endsAt.set(b.name, sim.durations[i % sim.durations.length] as number));
  const started = new Map<string, number>();
  const last = Math.max(0, ...sim.bounds.values()) + 1;
  const cache = new ScopeCache();
  let arrived = 0;
  for (let round = 0; round <= last && started.size < sim.bounds.size; round++) {
    const now = NOW + round * STEP;
    backups = backups.map((b) => (endsAt.get(b.name) === round ? { ...b, phase: "Completed" } : b));
    if (round > 0 && round % sim.every === 0) {
      const fresh = sim.arrivals.map((a) => ({ ...a, name: `r${round}-${a.name}`, phase: "" }));
      const loaded = cluster(...fresh.map(backupObject)).backups.map((b, i) => ({
        ...b,
        // Created within the last aging period, never in the future.
        creationTimestamp: new Date(now - ((fresh[i] as BackupModel).createdMinute % 10) * 60_000).toISOString(),
      }));
      backups = [...backups, ...loaded];
    }
    const result = plan({ view, backups }, sim.policy, now, { cache });
    const promoted = new Set(result.promotions.map((p) => p.backup));
    backups = backups.map((b) => {
      if (!promoted.has(b.name)) return b;
      endsAt.set(b.name, round + (sim.durations[arrived++ % sim.durations.length] as number));
      if (sim.bounds.has(b.name)) started.set(b.name, round);
      return { ...b, phase: "InProgress" };
    });
  }
  return started;
}
