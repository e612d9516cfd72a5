import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AdmissionEngine } from "../../src/admission/engine.js";
import type { BackupInfo } from "../../src/core/model.js";
import { DEFAULT_POLICY } from "../../src/core/policy.js";
import { ScopeCache } from "../../src/core/scope/cache.js";
import { parseSpecInfo, scopeHead } from "../../src/core/scope/head.js";
import { Timestamps } from "../../src/core/times.js";
import { parseBackupSpec } from "../../src/core/velero/backupSpec.js";
import { hooksOnPod, hooksOnPodIn } from "../../src/core/velero/hooks.js";
import { volumeRules } from "../../src/core/velero/volumes.js";
import { backup, boundClaim, configMap, ns, pod } from "../support/builders.js";
import { describeConflict, describedOnce, type Conflict } from "../../src/core/conflict/conflicts.js";
import { asCandidate } from "../../src/core/decision/admission.js";
import { MAX_WARNINGS, shortWarning, shortWarnings, WARNING_MAX, WARNING_TARGET } from "../../src/admission/review.js";
import { FakeClusterCache } from "../support/fakes/clusterCache.js";
import { StaticPolicySource } from "../support/fakes/policySource.js";
import { cluster } from "./support/cluster.js";

// An admission review computes the candidate's scope over every pod and claim of its namespaces
// (docs/performance.md, issue 20): the common answers (no hook, no file-system volume, the unit
// of a pod) are given without allocating a list or a key string per pod.

const shop = [
  ns("shop"),
  pod("shop", "web-1", { claims: ["data"], volumes: [{ name: "tmp", emptyDir: {} }] }),
  pod("shop", "web-2", { volumes: [{ name: "tmp", emptyDir: {} }] }),
  pod("shop", "hooked", { annotations: { "pre.hook.backup.velero.io/command": '["/bin/sync"]' } }),
  ...boundClaim("shop", "data"),
  backup("b", { includedNamespaces: ["shop"] }),
];
const s = cluster(...shop);
const pods = s.view.contents("shop").pods;
const graph = s.view.contents("shop").graph();
/** Pod `name`'s index in the namespace's graph, as a part asks the volume rules. */
const at = (name: string) => graph.pods.findIndex((p) => p.name === name);
const spec = (raw: object) => {
  const parsed = parseBackupSpec(raw);
  if (!parsed.ok) throw new Error("spec");
  return parsed.spec;
};

describe("per-pod answers of a candidate's scope", () => {
  it("pods without hooks share one empty list; a hook still shows (positive control)", () => {
    const none = spec({});
    expect(hooksOnPod(pods.get("web-1")!, none)).toBe(hooksOnPod(pods.get("web-2")!, none));
    expect(hooksOnPod(pods.get("web-1")!, none)).toEqual([]);
    expect(hooksOnPod(pods.get("hooked")!, none)).toEqual([{ phase: "pre", source: "annotation pre.hook.backup.velero.io/command" }]);
  });

  it("without spec hooks, pods with the same hook annotations share one list; spec hooks make their own (control)", () => {
    const hooked = (name: string, annotations: Record<string, string>) => ({ ...pods.get("hooked")!, name, annotations });
    const none = spec({});
    const pre = { "pre.hook.backup.velero.io/command": "[]" };
    const both = { "hook.backup.velero.io/command": "[]", "post.hook.backup.velero.io/command": "[]" };
    expect(hooksOnPod(hooked("a", pre), none)).toBe(hooksOnPod(hooked("b", pre), none));
    expect(hooksOnPod(hooked("a", both), none)).toBe(hooksOnPod(hooked("b", both), none));
    expect(hooksOnPod(hooked("a", both), none)).toEqual([
      { phase: "pre", source: "annotation hook.backup.velero.io/command" },
      { phase: "post", source: "annotation post.hook.backup.velero.io/command" },
    ]);
    const withSpecHook = spec({ hooks: { resources: [{ name: "h", post: [{ exec: { command: ["true"] } }] }] } });
    expect(hooksOnPod(hooked("a", pre), withSpecHook)).toEqual([
      { phase: "pre", source: "annotation pre.hook.backup.velero.io/command" },
      { phase: "post", source: "spec.hooks.resources h" },
    ]);
    expect(hooksOnPod(hooked("a", pre), withSpecHook)).not.toBe(hooksOnPod(hooked("b", pre), withSpecHook));
  });

  it("pods with no file-system volume share one empty list; an opted-in volume still shows (positive control)", () => {
    const rules = (raw: object) => volumeRules(s.backups[0]!, spec(raw), s.view, DEFAULT_POLICY, true);
    const optIn = rules({});
    expect(optIn.fsBackupVolumes(graph, at("web-1"))).toBe(optIn.fsBackupVolumes(graph, at("web-2")));
    expect(optIn.fsBackupVolumes(graph, at("web-1"))).toEqual([]);
    expect(rules({ defaultVolumesToFsBackup: true }).fsBackupVolumes(graph, at("web-1"))).toEqual(["vol-data", "tmp"]);
  });

  it("a namespace's opt-in answers and annotation hooks are read off its graph, and a changed pod is answered afresh", () => {
    const c = cluster(ns("app"), pod("app", "web", { volumes: [{ name: "tmp", emptyDir: {} }] }), backup("b", { includedNamespaces: ["app"] }));
    const rules = volumeRules(c.backups[0]!, spec({}), c.view, DEFAULT_POLICY, true);
    const before = c.view.contents("app").graph();
    expect(rules.fsBackupVolumes(before, 0)).toEqual([]);
    expect(hooksOnPodIn(before, 0, spec({}))).toEqual([]);
    // The control: the pod opts its volume in and gains a hook; a graph kept past the change would miss both.
    c.view.setPod({ ...before.pods[0]!, annotations: { "backup.velero.io/backup-volumes": "tmp", "post.hook.backup.velero.io/command": "[]" } });
    const after = c.view.contents("app").graph();
    expect(rules.fsBackupVolumes(after, 0)).toEqual(["tmp"]);
    expect(hooksOnPodIn(after, 0, spec({}))).toEqual([{ phase: "post", source: "annotation post.hook.backup.velero.io/command" }]);
    expect(rules.fsBackupVolumes(before, 0)).toEqual([]);
  });

  // With volume policies a pod's volumes are judged on each review, into one list reused pod to
  // pod (without them the graph keeps its answers): a policy that matches nothing leaves the opt-in rule.
  it("each pod's file-system volumes are a list of its own, though gathered in one list reused pod to pod", () => {
    const policy = "version: v1\nvolumePolicies:\n- conditions: {storageClass: [none-such]}\n  action: {type: skip}\n";
    const withPolicy = { defaultVolumesToFsBackup: true, resourcePolicy: { kind: "configmap", name: "rp" } };
    const p = cluster(...shop, configMap("velero", "rp", { "policy.yaml": policy }));
    const pGraph = p.view.contents("shop").graph();
    const rules = volumeRules(p.backups[0]!, spec(withPolicy), p.view, DEFAULT_POLICY, true);
    const first = rules.fsBackupVolumes(pGraph, at("web-1"));
    expect(rules.fsBackupVolumes(pGraph, at("web-2"))).toEqual(["tmp"]);
    expect(first).toEqual(["vol-data", "tmp"]);
    // The reused list itself, handed out, would have changed under the first pod (the control).
    const reused = ["vol-data", "tmp"];
    const handedOut = reused;
    reused.length = 0;
    reused.push("tmp");
    expect(handedOut).not.toEqual(["vol-data", "tmp"]);
  });

  it("a unit by kind and name is the unit by member key", () => {
    const contents = s.view.contents("shop");
    const key = DEFAULT_POLICY.volumeGroupSnapshotLabelKey;
    expect(contents.podUnit("web-1", key)).toBe(contents.unitOf("pod:web-1", key)?.id);
    expect(contents.pvcUnit("data", key)).toBe(contents.unitOf("pvc:data", key)?.id);
    expect(contents.podUnit("web-1", key)).toBe(contents.pvcUnit("data", key));
    expect(contents.podUnit("web-2", key)).not.toBe(contents.podUnit("web-1", key));
    expect([contents.podUnit("data", key), contents.pvcUnit("web-1", key), contents.unitOf("web-1", key)]).toEqual([undefined, undefined, undefined]);
  });
});

const NOW = Date.parse("2026-01-01T12:00:00Z");

// What a review keeps (docs/performance.md, "What a review keeps"): a scavenge costs what
// survives it, so nothing made for one review may be kept past it.
describe("what a review keeps", () => {
  it("a candidate's creation time is parsed aside; a kept backup's is kept (positive control)", async () => {
    // Queued and claiming the same unit as the candidate: the verdict orders it against the candidate by creation time.
    const queued = cluster(ns("shop"), backup("q", { includedNamespaces: ["shop"] }, { phase: "Queued", created: "2026-01-01T00:00:00Z" }));
    const snap = { view: s.view, backups: queued.backups };
    const engine = new AdmissionEngine({
      cache: new FakeClusterCache(snap.view, snap.backups),
      policy: new StaticPolicySource(DEFAULT_POLICY),
      now: () => NOW,
    });
    await engine.start();
    const candidate = (i: number) => ({ ...(cluster(backup(`c-${i}`, { includedNamespaces: ["shop"] })).backups[0] as BackupInfo), creationTimestamp: "" });
    engine.decide(candidate(0), NOW);
    const kept = engine.scopes.times.size;
    for (let i = 1; i <= 20; i++) expect(engine.decide(candidate(i), NOW + i * 1000).waitingFor).toEqual(["q"]);
    expect(engine.scopes.times.size).toBe(kept);
    engine.scopes.times.parse(new Date(NOW).toISOString());
    expect(engine.scopes.times.size).toBe(kept + 1);
    engine.stop();
  });

  it("forgetAll forgets every scope, as retaining none does: the next lookup computes it again", () => {
    const b = s.backups[0] as BackupInfo;
    const forgot = new ScopeCache();
    const retained = new ScopeCache();
    for (const c of [forgot, retained]) c.scopeOf(b, s.view, DEFAULT_POLICY);
    forgot.forgetAll();
    retained.retain(new Set());
    const again = [forgot, retained].map((c) => {
      const misses = c.misses;
      const scope = c.scopeOf(b, s.view, DEFAULT_POLICY);
      return { computed: c.misses - misses, units: scope.units };
    });
    expect(again[0]).toEqual(again[1]);
    expect(again[0]?.computed).toBeGreaterThan(0);
    // Control: a cache that forgot nothing answers from what it kept.
    const kept = new ScopeCache();
    kept.scopeOf(b, s.view, DEFAULT_POLICY);
    const misses = kept.misses;
    kept.scopeOf(b, s.view, DEFAULT_POLICY);
    expect(kept.misses - misses).toBe(0);
  });

  it("the candidate's time still orders it: parsed aside, it equals the kept parse", () => {
    const times = new Timestamps();
    const t = "2026-01-01T12:00:00.123Z";
    expect(times.besides(t).parse(t)).toBe(Date.parse(t));
    expect(times.besides(t).parse("2026-01-01T00:00:00Z")).toBe(times.parse("2026-01-01T00:00:00Z"));
  });

  it("every scope head is one literal with every field, however it ends", () => {
    const headOf = (spec: object, o: Parameters<typeof backup>[2] = {}) => {
      const b = cluster(backup("h", spec, o)).backups[0] as BackupInfo;
      return scopeHead(b, s.view, DEFAULT_POLICY, parseSpecInfo(b.spec));
    };
    const heads = [
      headOf({ includedNamespaces: ["shop"] }),
      headOf({ includedNamespaces: "shop" }), // invalid: refused
      headOf({}, { annotations: { "backup-gate.io/conflict-level": "Namespace" } }), // with a level reason
      headOf({}, { labels: { "velero.io/schedule-name": "nightly" } }), // with a serial key
    ];
    expect(heads[1]!.errors.length).toBeGreaterThan(0);
    expect(heads[2]!.levelReason).toBeDefined();
    expect(heads[3]!.serialKey).toBe("schedule nightly");
    const keys = heads.map((h) => Reflect.ownKeys(h).join(","));
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]).toBe("queueNamespaces,level,levelReason,serialKey,errors,listsPvs,namespaces,strictNamespaces,notes,context");
  });

  it("the annotations keep their order: level, its source, reason, waiting-for", async () => {
    const engine = new AdmissionEngine({ cache: new FakeClusterCache(s.view, s.backups), policy: new StaticPolicySource(DEFAULT_POLICY), now: () => NOW });
    await engine.start();
    const d = engine.decide({ ...(cluster(backup("c", { includedNamespaces: ["shop"] })).backups[0] as BackupInfo), creationTimestamp: "" }, NOW);
    expect(Object.keys(d.annotations)).toEqual([
      "backup-gate.io/conflict-level",
      "backup-gate.io/conflict-level-source",
      "backup-gate.io/reason",
      "backup-gate.io/waiting-for",
    ]);
    engine.stop();
  });

  it("a part sorts its items by name: inside one namespace, the order of their namespace/name keys", () => {
    const name = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,12}$/);
    fc.assert(
      fc.property(name, fc.uniqueArray(name, { maxLength: 30 }), (namespace, names) => {
        const byName = [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((n) => `${namespace}/${n}`);
        const byKey = names.map((n) => `${namespace}/${n}`).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        expect(byName).toEqual(byKey);
      }),
    );
  });

  it("a claim is made without its reason, and spells it from its pieces when read", () => {
    const part = new ScopeCache().scopeOf(s.backups[0]!, s.view, DEFAULT_POLICY).claims.partIn("shop")!;
    const claims = [...part.claims.values()];
    const hooked = claims.find((c) => c.key === "shop/hooked")!;
    // No reason among the fields a claim is made with (a literal claim has one: the control).
    expect(Object.keys(hooked)).not.toContain("reason");
    expect(Object.keys({ reason: "r", rank: 0, key: "k" })).toContain("reason");
    expect(hooked.reason).toBe("run pre hooks on pod shop/hooked (annotation pre.hook.backup.velero.io/command)");
    expect(claims.find((c) => c.rank === 1)?.reason).toBe("snapshot PVC shop/data");
  });

  it("a part's lists, spelled when read, are the scope's items", () => {
    const part = new ScopeCache().scopeOf(s.backups[0]!, s.view, DEFAULT_POLICY).claims.partIn("shop")!;
    expect([part.pods, part.pvcs, part.pvs]).toEqual([["shop/hooked", "shop/web-1", "shop/web-2"], ["shop/data"], ["pv-shop-data"]]);
    expect(part.pods).toBe(part.pods);
  });
});

describe("what a verdict spells", () => {
  const conflict: Conflict = {
    with: "q",
    withPhase: "Queued",
    level: "ItemBlock",
    namespaces: [],
    units: [{ unit: "shop/pod:web-1", reasons: ["snapshot PVC shop/data", "snapshot PVC shop/data"] }],
    unitCount: 1,
  };

  it("describedOnce spells a conflict as describeConflict does, once however often it is asked", () => {
    const describe = describedOnce();
    const first = describe(conflict);
    expect(first).toBe(describeConflict(conflict));
    // The same conflict, changed behind its back: the spelling already made is given again...
    const changed = { ...conflict, unitCount: 5 };
    Object.assign(conflict, { unitCount: 5 });
    expect(describe(conflict)).toBe(first);
    // ...and a fresh describer spells it anew (positive control).
    expect(describedOnce()(conflict)).toBe(describeConflict(changed));
    expect(describedOnce()(conflict)).not.toBe(first);
  });

  it("the candidate's reason and its warnings spell each conflict alike", async () => {
    const queued = cluster(ns("shop"), backup("q", { includedNamespaces: ["shop"] }, { phase: "Queued", created: "2026-01-01T00:00:00Z" }));
    const engine = new AdmissionEngine({ cache: new FakeClusterCache(s.view, queued.backups), policy: new StaticPolicySource(DEFAULT_POLICY), now: () => NOW });
    await engine.start();
    const d = engine.decide({ ...(cluster(backup("c", { includedNamespaces: ["shop"] })).backups[0] as BackupInfo), creationTimestamp: "" }, NOW);
    const spelled = d.warnings[0]?.replace(/^backup c will wait behind q: /, "");
    expect(spelled).toMatch(/^both /);
    expect(d.reasons[0]).toContain(`waits behind q (Queued): ${spelled}`);
    engine.stop();
  });

  it("a candidate is the backup with no phase, a uid and a creation time, and nothing else changed", () => {
    const b = { ...(cluster(backup("c", { includedNamespaces: ["shop"] }, { phase: "Queued" })).backups[0] as BackupInfo), uid: "", creationTimestamp: "" };
    const created = asCandidate(b, NOW);
    expect(created).toEqual({ ...b, uid: "admission:velero/c", creationTimestamp: new Date(NOW).toISOString(), phase: "" });
    expect(asCandidate({ ...b, uid: "u", creationTimestamp: "2026-01-01T00:00:00Z" }, NOW)).toMatchObject({
      uid: "u",
      creationTimestamp: "2026-01-01T00:00:00Z",
    });
  });
});

describe("warnings as the webhook sends them", () => {
  // What shortWarning did before it cut first: clean the whole warning, then cut it.
  const cleanThenCut = (w: string): string => {
    const s = w.replace(/[^\x20-\x7e]/g, "?");
    if (s.length <= WARNING_TARGET) return s;
    const cut = s.lastIndexOf("; ", WARNING_TARGET - 4);
    if (cut > 40) return `${s.slice(0, cut)}; ...`;
    return s.length <= WARNING_MAX ? s : `${s.slice(0, WARNING_MAX - 3)}...`;
  };
  const clause = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: "binary", maxLength: 60 }), fc.constant("; "), fc.constant("\u{1F600}"));
  const warning = fc.array(clause, { maxLength: 12 }).map((xs) => xs.join(""));

  it("cut, then cleaned: the same warning as cleaned, then cut", () => {
    fc.assert(
      fc.property(warning, (w) => {
        expect(shortWarning(w)).toBe(cleanThenCut(w));
      }),
      { numRuns: 2000 },
    );
  });

  it("the equivalence can fail: a cleaning that swaps a whole character for one unit moves the cut (positive control)", () => {
    const cleanByCharacterThenCut = (w: string) => cleanThenCut(w.replace(/[^\x20-\x7e]/gu, "?"));
    const found = fc.check(
      fc.property(warning, (w) => cleanByCharacterThenCut(w) === cleanThenCut(w)),
      { numRuns: 2000 },
    );
    expect(found.failed).toBe(true);
  });

  it("the first seven are kept, cleaned and cut as before; the rest are counted", () => {
    const many = Array.from({ length: 12 }, (_, i) => `backup c will wait behind b-${i}: both \u00e9 ${"x".repeat(200)}`);
    const short = shortWarnings(many);
    expect(short).toHaveLength(MAX_WARNINGS);
    expect(short.slice(0, -1)).toEqual(many.slice(0, MAX_WARNINGS - 1).map(cleanThenCut));
    expect(short.at(-1)).toBe(`and ${12 - (MAX_WARNINGS - 1)} more (see the backup-gate.io/reason annotation)`);
    expect(shortWarnings(many.slice(0, MAX_WARNINGS))).toEqual(many.slice(0, MAX_WARNINGS).map(cleanThenCut));
  });
});
