import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { NamespaceGraph } from "../../src/core/namespaceGraph.js";
import { boundClaim, ns, pod, pv, pvc } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// A scope walks a namespace's graph (src/core/namespaceGraph.ts): items by index in name order,
// relations as index runs, each claim's PV resolved once. These pin what the walk reads from it.

const names = <T extends { name: string }>(items: readonly T[]) => items.map((x) => x.name);
const run = (from: Int32Array, flat: Int32Array, i: number) => [...flat.subarray(from[i], from[i + 1])];
const claimsOf = (g: NamespaceGraph, podName: string) => run(g.claimsFrom, g.claims, names(g.pods).indexOf(podName)).map((c) => g.pvcs[c]!.name);
const mountersOf = (g: NamespaceGraph, claim: string) => run(g.mountersFrom, g.mounters, names(g.pvcs).indexOf(claim)).map((p) => g.pods[p]!.name);
const pvOf = (g: NamespaceGraph, claim: string) => g.pvOf(names(g.pvcs).indexOf(claim))?.name;

describe("a namespace's graph", () => {
  const s = cluster(
    ns("shop"),
    ns("other"),
    pod("shop", "web-2", { claims: ["data", "data", "logs"] }),
    pod("shop", "web-1", { claims: ["data", "gone"] }),
    pod("shop", "batch", { claims: ["logs"] }),
    ...boundClaim("shop", "logs"),
    ...boundClaim("shop", "data"),
    pvc("shop", "pending", { pv: null }),
    pvc("shop", "shared", { pv: "pv-shared" }),
    pv("pv-shared", { claim: ["shop", "shared"] }),
  );
  const g = s.view.contents("shop").graph();

  it("lists pods, claims and their PVs in name order", () => {
    expect(names(g.pods)).toEqual(["batch", "web-1", "web-2"]);
    expect(names(g.pvcs)).toEqual(["data", "logs", "pending", "shared"]);
    expect(names(g.pvs)).toEqual(["pv-shared", "pv-shop-data", "pv-shop-logs"]);
  });

  it.each([
    // A claim the namespace does not hold is no edge; a claim mounted twice is one.
    { pod: "web-1", claims: ["data"] },
    { pod: "web-2", claims: ["data", "logs"] },
    { pod: "batch", claims: ["logs"] },
  ])("pod $pod mounts $claims", ({ pod, claims }) => {
    expect(claimsOf(g, pod)).toEqual(claims);
  });

  it.each([
    { claim: "data", pods: ["web-1", "web-2"], pv: "pv-shop-data" },
    { claim: "logs", pods: ["batch", "web-2"], pv: "pv-shop-logs" },
    { claim: "pending", pods: [], pv: undefined },
    { claim: "shared", pods: [], pv: "pv-shared" },
  ])("claim $claim: mounted by $pods (name order), names PV $pv", ({ claim, pods, pv }) => {
    expect(mountersOf(g, claim)).toEqual(pods);
    expect(pvOf(g, claim)).toBe(pv);
  });

  it.each([
    { case: "every claim's PV is bound back to it", items: [...boundClaim("shop", "data")], foreign: false },
    { case: "a claim without a volume name reads no PV", items: [pvc("shop", "pending", { pv: null })], foreign: false },
    { case: "a claim names a PV the view does not hold", items: [pvc("shop", "data", { pv: "pv-missing" })], foreign: true },
    {
      case: "the claim's PV is bound to a claim elsewhere",
      items: [pvc("shop", "data", { pv: "pv-x" }), pv("pv-x", { claim: ["other", "data"] })],
      foreign: true,
    },
  ])("reads foreign PVs: $foreign when $case", ({ items, foreign }) => {
    const c = cluster(ns("shop"), ns("other"), ...items);
    expect(c.view.contents("shop").graph().readsForeignPvs).toBe(foreign);
  });

  it("is made again when the namespace or any PV changes, and kept otherwise", () => {
    const c = cluster(ns("shop"), pod("shop", "web", { claims: ["data"] }), ...boundClaim("shop", "data"));
    const contents = c.view.contents("shop");
    const first = contents.graph();
    c.view.setNamespace({ ...c.view.namespace("shop")!, labels: { team: "a" } });
    expect(contents.graph()).toBe(first);
    c.view.setPv({ ...c.view.pv("pv-shop-data")!, name: "pv-elsewhere", claimRef: undefined });
    const second = contents.graph();
    expect(second).not.toBe(first);
    c.view.deletePod("shop", "web");
    expect(names(contents.graph().pods)).toEqual([]);
    expect(names(second.pods)).toEqual(["web"]);
  });

  it("each claim's mounters are the pods whose volumes name it, in name order, each once", () => {
    const podName = fc.constantFrom("a", "b", "c", "d", "e");
    const claim = fc.constantFrom("x", "y", "z", "missing");
    fc.assert(
      fc.property(fc.uniqueArray(podName), fc.array(fc.tuple(podName, claim)), (podNames, mounts) => {
        const c = cluster(
          ns("shop"),
          ...podNames.map((p) => pod("shop", p, { claims: mounts.filter(([q]) => q === p).map(([, cl]) => cl) })),
          ...["x", "y", "z"].flatMap((cl) => boundClaim("shop", cl)),
        );
        const contents = c.view.contents("shop");
        for (const cl of ["x", "y", "z", "missing"]) {
          const expected = [...podNames].sort().filter((p) => mounts.some(([q, m]) => q === p && m === cl));
          const graph = contents.graph();
          expect(graph.claimAt(cl) < 0).toBe(cl === "missing");
          if (cl !== "missing") expect(mountersOf(graph, cl)).toEqual(expected);
        }
      }),
    );
  });

  it.each([
    { claim: "data", at: 0 },
    { claim: "shared", at: 3 },
    { claim: "absent", at: -1 },
    { claim: "", at: -1 },
  ])("finds claim '$claim' at $at", ({ claim, at }) => {
    expect(g.claimAt(claim)).toBe(at);
  });

  it("keeps what is derived from it, once per maker, and a new graph derives afresh (positive control)", () => {
    const c = cluster(ns("shop"), pod("shop", "web", { claims: ["data"] }), ...boundClaim("shop", "data"));
    const contents = c.view.contents("shop");
    const made: string[] = [];
    const podNames = (graph: NamespaceGraph) => (made.push("pods"), names(graph.pods));
    const claimNames = (graph: NamespaceGraph) => (made.push("claims"), names(graph.pvcs));
    const first = contents.graph();
    expect(first.derived(podNames)).toBe(first.derived(podNames));
    expect(first.derived(claimNames)).toEqual(["data"]);
    expect(made).toEqual(["pods", "claims"]);
    c.view.setPod({ ...first.pods[0]!, name: "api" });
    expect(contents.graph().derived(podNames)).toEqual(["api", "web"]);
    expect(first.derived(podNames)).toEqual(["web"]);
    expect(made).toEqual(["pods", "claims", "pods"]);
  });
});
