import { describe, expect, it } from "vitest";
import { isExpiredStatus, objectKey, relistDeletions } from "../../src/kube/reflector.js";
import { canonicalJson, Interner, keepAnnotation, slimPod, specHash } from "../../src/cluster/slim.js";
import { sameValue } from "../../src/kube/sameValue.js";
import { trim } from "../../src/core/velero/objects.js";
import { pod } from "../support/builders.js";

describe("relist diffing", () => {
  it("deletes exactly the known objects the relist no longer returns", () => {
    const known = ["a/x", "a/y", "b/z", "pv-1"];
    expect(relistDeletions(known, new Set(["a/x", "b/z", "a/new"]))).toEqual(["a/y", "pv-1"]);
    expect(relistDeletions(known, new Set(known))).toEqual([]);
    expect(relistDeletions(known, new Set())).toEqual(known);
    expect(relistDeletions(new Map([["k", "1"]]).keys(), new Set(["k"]))).toEqual([]);
  });

  it("keys namespaced objects by namespace/name and cluster objects by name", () => {
    expect(objectKey({ metadata: { namespace: "shop", name: "db-0" } })).toBe("shop/db-0");
    expect(objectKey({ metadata: { name: "pv-1" } })).toBe("pv-1");
    expect(objectKey({ metadata: { name: "pv-1", namespace: "" } })).toBe("pv-1");
    expect(objectKey({ metadata: {} })).toBeUndefined();
    expect(objectKey({})).toBeUndefined();
  });

  it("recognizes every form of 'resourceVersion too old'", () => {
    expect(isExpiredStatus({ kind: "Status", code: 410, reason: "Expired", message: "too old resource version: 1 (845)" })).toBe(true);
    expect(isExpiredStatus({ code: 410, reason: "Gone" })).toBe(true);
    expect(isExpiredStatus({ reason: "Expired" })).toBe(true);
    expect(isExpiredStatus({ message: "Too old resource version: 5 (10)" })).toBe(true);
    expect(isExpiredStatus({ code: 500, reason: "InternalError", message: "etcd unavailable" })).toBe(false);
    expect(isExpiredStatus(null)).toBe(false);
    expect(isExpiredStatus("410")).toBe(false);
  });
});

describe("slimming trimmed objects", () => {
  it("keeps only the annotations the core reads on pods", () => {
    expect(keepAnnotation("pre.hook.backup.velero.io/command")).toBe(true);
    expect(keepAnnotation("hook.backup.velero.io/command")).toBe(true);
    expect(keepAnnotation("backup.velero.io/backup-volumes")).toBe(true);
    expect(keepAnnotation("backup-gate.io/conflict-level")).toBe(true);
    expect(keepAnnotation("kubectl.kubernetes.io/last-applied-configuration")).toBe(false);
    expect(keepAnnotation("notvelero.io/x")).toBe(false);
    expect(keepAnnotation("velero.io")).toBe(false);
  });

  it("shares repeated strings and empty maps between pods, and changes nothing else", () => {
    const i = new Interner();
    const raw = (name: string) =>
      pod("shop", name, {
        labels: { app: "db", tier: "data" },
        claims: [`data-${name}`],
        annotations: { "backup.velero.io/backup-volumes": "data", "kubectl.kubernetes.io/last-applied-configuration": "{}" },
      });
    const trimmed = (name: string) => {
      const r = trim("Pod", JSON.parse(JSON.stringify(raw(name))));
      if (!r.ok) throw r.error;
      return r.value;
    };
    const a = slimPod(trimmed("db-0"), i),
      b = slimPod(trimmed("db-1"), i);
    const full = trimmed("db-0");
    expect(a).toEqual({ ...full, annotations: { "backup.velero.io/backup-volumes": "data" } });
    expect(Object.keys(a.labels)[0]).toBe(Object.keys(b.labels)[0]);
    const noLabels = (name: string) => {
      const r = trim("Pod", pod("x", name));
      if (!r.ok) throw r.error;
      return slimPod(r.value, i);
    };
    expect(noLabels("p").labels).toBe(noLabels("q").labels);
  });

  it("stops growing the string table at its bound", () => {
    const i = new Interner(3);
    for (const s of ["a", "b", "c", "d", "e"]) i.intern(s);
    expect(i.size).toBe(3);
    expect(i.intern("z")).toBe("z");
  });

  it("digests a spec independently of key order", () => {
    expect(canonicalJson({ b: 1, a: [{ y: 2, x: null }], c: undefined })).toBe('{"a":[{"x":null,"y":2}],"b":1}');
    expect(specHash({ includedNamespaces: ["a"], ttl: "1h" })).toBe(specHash({ ttl: "1h", includedNamespaces: ["a"] }));
    expect(specHash({ includedNamespaces: ["a"] })).not.toBe(specHash({ includedNamespaces: ["b"] }));
    expect(specHash({})).toMatch(/^[0-9a-f]{40}$/);
  });

  it("compares trimmed objects structurally", () => {
    expect(sameValue({ a: [1, { b: "x" }] }, { a: [1, { b: "x" }] })).toBe(true);
    expect(sameValue({ a: 1 }, { a: 1, b: undefined })).toBe(false);
    expect(sameValue({ a: [1] }, { a: { 0: 1 } })).toBe(false);
    expect(sameValue({ phase: "Running" }, { phase: "Pending" })).toBe(false);
  });
});
