import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { webhookConfigurations } from "../../src/admission/manifests.js";
import { parsePolicy, policySchema, type Policy } from "../../src/core/policy.js";
import { readPolicyText } from "../../src/policy/document.js";
import { helmLint, helmTemplate, objectKey, parseObjects, renderChart, type K8sObject } from "../support/helm.js";
import { repoRoot } from "../support/tools.js";

// charts/backup-gate and manifests/ describe one installation. With default values and the
// namespace backup-gate, the chart renders exactly the objects of manifests/ (but the
// Namespace, which Helm leaves to --create-namespace), differing only in the labels Helm adds.
// Every value then changes what it says and nothing else, and values the gate would refuse
// fail `helm template` already. This runs the real helm built by tools/build.sh; without it
// the suite fails.

/** Labels only Helm adds; the chart README names the same three. */
const HELM_LABELS = ["helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance"];
const POLICY = "ConfigMap/backup-gate/backup-gate-policy";
const DEPLOYMENT = "Deployment/backup-gate/backup-gate";

function withoutHelmLabels(o: K8sObject): K8sObject {
  const labels = Object.fromEntries(Object.entries(o.metadata.labels ?? {}).filter(([k]) => !HELM_LABELS.includes(k)));
  const { labels: _dropped, ...metadata } = o.metadata;
  return { ...o, metadata: Object.keys(labels).length ? { ...metadata, labels } : metadata };
}

/** policy.yaml is compared as the document it holds: its comments are not the policy. */
function comparable(o: K8sObject): K8sObject {
  const plain = withoutHelmLabels(o);
  if (plain.kind !== "ConfigMap") return plain;
  const data = plain.data as Record<string, string>;
  return { ...plain, data: { ...data, "policy.yaml": parseObjects(data["policy.yaml"] ?? "")[0] } };
}

const byKey = (objects: K8sObject[]) => new Map(objects.map((o) => [objectKey(o), o]));

function manifestObjects(): K8sObject[] {
  const dir = join(repoRoot, "manifests");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .flatMap((f) => parseObjects(readFileSync(join(dir, f), "utf8")));
}

/** Paths (lists of keys) where two JSON values differ; a key only on one side is one path. */
function changedPaths(a: unknown, b: unknown, path: string[] = []): string[][] {
  if (Object.is(a, b)) return [];
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return [path];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].flatMap((k) => changedPaths((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], [...path, k]));
}

function at(o: unknown, path: string[]): unknown {
  return path.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], o);
}

/** What the gate reads from a rendered policy ConfigMap (its own reader, not a YAML parse of ours). */
function gatePolicy(objects: K8sObject[]): Policy {
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === "backup-gate-policy") as { data: Record<string, string> } | undefined;
  if (!cm) throw new Error("no policy ConfigMap rendered");
  const r = readPolicyText(cm.data["policy.yaml"]!);
  if (!r.ok) throw new Error(`the gate refuses the rendered policy: ${r.field}: ${r.error}`);
  return r.policy;
}

let defaults: K8sObject[];
let manifestPolicyDoc: Record<string, unknown>;
beforeAll(async () => {
  defaults = await renderChart();
  manifestPolicyDoc = parseObjects(
    (manifestObjects().find((o) => objectKey(o) === POLICY) as unknown as { data: Record<string, string> }).data["policy.yaml"]!,
  )[0] as unknown as Record<string, unknown>;
});

/** The policy the gate would run with: manifests/' policy document with these keys changed. */
function expectedPolicy(change: Record<string, unknown>): Policy {
  const doc: Record<string, unknown> = { ...manifestPolicyDoc };
  for (const [k, v] of Object.entries(change)) {
    doc[k] = k === "priorities" ? { ...(manifestPolicyDoc.priorities as object), ...(v as object) } : v;
  }
  const r = parsePolicy(doc);
  if (!r.ok) throw new Error(`test case policy is invalid: ${r.error}`);
  return r.policy;
}

describe("charts/backup-gate with default values", () => {
  it("renders exactly the objects of manifests/ but the Namespace, up to Helm's own labels", () => {
    const manifests = manifestObjects().filter((o) => o.kind !== "Namespace");
    expect([...byKey(defaults).keys()].sort()).toEqual([...byKey(manifests).keys()].sort());
    const rendered = byKey(defaults);
    for (const m of manifests) {
      expect.soft(comparable(rendered.get(objectKey(m))!), objectKey(m)).toEqual(comparable(m));
    }
  });

  it("labels every object with the Helm labels and nothing else that manifests/ lacks", () => {
    for (const o of defaults) {
      expect(Object.keys(o.metadata.labels ?? {}), objectKey(o)).toEqual(expect.arrayContaining(HELM_LABELS));
    }
    expect(
      manifestObjects()
        .flatMap((o) => Object.keys(o.metadata.labels ?? {}))
        .filter((l) => HELM_LABELS.includes(l)),
    ).toEqual([]);
  });

  it("namespace.create renders exactly manifests/' Namespace, PodSecurity labels included", async () => {
    const ns = (await renderChart({ values: { namespace: { create: true } } })).find((o) => o.kind === "Namespace");
    expect(comparable(ns!)).toEqual(comparable(manifestObjects().find((o) => o.kind === "Namespace")!));
  });

  it("certManager mode: the Certificate names the Service and the issuer given, into the Secret the pods mount", async () => {
    const objects = await renderChart({
      namespace: "ops",
      values: { certificates: { mode: "certManager", certManager: { issuerRef: { name: "ca-issuer" }, duration: "720h" } } },
    });
    const cert = objects.find((o) => o.kind === "Certificate");
    expect(cert?.spec).toEqual({
      secretName: "backup-gate-tls",
      dnsNames: ["backup-gate.ops.svc", "backup-gate.ops.svc.cluster.local"],
      duration: "720h",
      privateKey: { rotationPolicy: "Always" },
      issuerRef: { name: "ca-issuer", kind: "Issuer", group: "cert-manager.io" },
    });
    const webhooks = objects.filter((o) => o.kind.endsWith("WebhookConfiguration"));
    for (const w of webhooks) expect((w.metadata.annotations as Record<string, string>)["cert-manager.io/inject-ca-from"]).toBe("ops/backup-gate");
    // The gate must never write what the injector owns: no caBundle in the chart, --ca-injected on the gate.
    expect(JSON.stringify(webhooks)).not.toMatch(/caBundle/);
  });

  it("rbac.nonAdminEvents grants Events in every namespace (for tenants.nonAdminEvents), and nothing else; off by default", async () => {
    const on = await renderChart({ values: { rbac: { nonAdminEvents: true } } });
    const added = on.filter((o) => !defaults.some((d) => objectKey(d) === objectKey(o)));
    expect(added.map(objectKey).sort()).toEqual(["ClusterRole//backup-gate-nonadmin-events", "ClusterRoleBinding//backup-gate-nonadmin-events"]);
    expect(added.find((o) => o.kind === "ClusterRole")?.rules).toEqual([{ apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] }]);
    expect(defaults.filter((o) => o.metadata.name === "backup-gate-nonadmin-events")).toEqual([]);
  });

  it("fixes no UID or GID anywhere (OpenShift's restricted-v2 SCC refuses a fixed one)", () => {
    const text = JSON.stringify(defaults);
    expect(text).not.toMatch(/runAsUser|runAsGroup|fsGroup/);
    // Positive control: a UID given as a value is rendered, so the check above can fail.
    expect(JSON.stringify(defaults.map((o) => (objectKey(o) === DEPLOYMENT ? { ...o, runAsUser: 1 } : o)))).toMatch(/runAsUser/);
  });

  it("holds a policy the gate reads as manifests/' policy", () => {
    expect(gatePolicy(defaults)).toEqual(expectedPolicy({}));
  });

  it("passes helm lint --strict, self-managed and with a Secret", async () => {
    await helmLint();
    await helmLint({ certificates: { mode: "secret", secretName: "backup-gate-tls" } });
    await helmLint({ certificates: { mode: "serviceCA" } });
    await helmLint({ certificates: { mode: "certManager", certManager: { issuerRef: { name: "ca-issuer" } } } });
    await helmLint({
      namespace: { create: true },
      priorityClassName: "high",
      podLabels: { team: "x" },
      podAnnotations: { a: "b" },
      networkPolicy: { enabled: false },
    });
  });
});

interface ValueCase {
  name: string;
  values: Record<string, unknown>;
  /** object key -> changed path -> its new value (undefined: removed); exactly these paths change. */
  changes: Record<string, Record<string, unknown>>;
  /** Policy keys the gate then reads differently (the ConfigMap's policy.yaml changes). */
  policy?: Record<string, unknown>;
}

const ARGS = "spec.template.spec.containers.0.args";
const CONTAINER = "spec.template.spec.containers.0";

const valueCases: ValueCase[] = [
  { name: "level", values: { level: "Namespace" }, changes: {}, policy: { conflictLevel: "Namespace" } },
  { name: "limit", values: { limit: 8 }, changes: {}, policy: { maxConcurrentBackups: 8 } },
  { name: "serialWorkloads", values: { serialWorkloads: "Replace" }, changes: {}, policy: { serialWorkloads: "Replace" } },
  {
    name: "priorities",
    values: { priorities: { manual: 20, scheduled: -5, agingSeconds: 0, schedules: { "nightly-db": 7, hourly: 1 } } },
    changes: {},
    policy: { priorities: { manual: 20, scheduled: -5, agingSeconds: 0, schedules: { "nightly-db": 7, hourly: 1 } } },
  },
  {
    name: "further policy keys",
    values: {
      policy: {
        defaultVolumesToFsBackup: true,
        snapshotMoveData: true,
        volumeGroupSnapshotLabelKey: "example.com/group",
        serialIdenticalScope: true,
        exclusiveResources: ["widgets.example.com"],
        positionUpdates: { writesPerDequeue: 100 },
        nudgeAfterSeconds: 30,
      },
    },
    changes: {},
    policy: {
      defaultVolumesToFsBackup: true,
      snapshotMoveData: true,
      volumeGroupSnapshotLabelKey: "example.com/group",
      serialIdenticalScope: true,
      exclusiveResources: ["widgets.example.com"],
      positionUpdates: { writesPerDequeue: 100 },
      nudgeAfterSeconds: 30,
    },
  },
  {
    name: "velero.namespace",
    values: { velero: { namespace: "oadp" } },
    changes: {
      "Role/velero/backup-gate": { "(object)": undefined },
      "RoleBinding/velero/backup-gate": { "(object)": undefined },
      "Role/oadp/backup-gate": { "(object)": "added" },
      "RoleBinding/oadp/backup-gate": { "(object)": "added" },
      "MutatingWebhookConfiguration//backup-gate": { "webhooks.0.namespaceSelector.matchLabels.kubernetes.io/metadata.name": "oadp" },
      "ValidatingWebhookConfiguration//backup-gate": {
        "webhooks.0.namespaceSelector.matchLabels.kubernetes.io/metadata.name": "oadp",
        "webhooks.1.namespaceSelector.matchLabels.kubernetes.io/metadata.name": "oadp",
        "webhooks.2.namespaceSelector.matchLabels.kubernetes.io/metadata.name": "oadp",
        "webhooks.3.namespaceSelector.matchLabels.kubernetes.io/metadata.name": "oadp",
      },
    },
    policy: { veleroNamespace: "oadp" },
  },
  { name: "velero.installedBy (NOTES.txt only)", values: { velero: { namespace: "velero", installedBy: "oadp" } }, changes: {} },
  { name: "replicas", values: { replicas: 3 }, changes: { [DEPLOYMENT]: { "spec.replicas": 3 } } },
  {
    name: "image",
    values: { image: { repository: "registry.example.com/backup-gate", tag: "1.2.3", pullPolicy: "Always" } },
    changes: { [DEPLOYMENT]: { [`${CONTAINER}.image`]: "registry.example.com/backup-gate:1.2.3", [`${CONTAINER}.imagePullPolicy`]: "Always" } },
  },
  {
    name: "imagePullSecrets",
    values: { imagePullSecrets: [{ name: "regcred" }] },
    changes: { [DEPLOYMENT]: { "spec.template.spec.imagePullSecrets": [{ name: "regcred" }] } },
  },
  {
    name: "resources",
    values: { resources: { requests: { cpu: "250m", memory: "256Mi" }, limits: { memory: "1Gi" } } },
    changes: {
      [DEPLOYMENT]: {
        [`${CONTAINER}.resources.requests.cpu`]: "250m",
        [`${CONTAINER}.resources.requests.memory`]: "256Mi",
        [`${CONTAINER}.resources.limits.memory`]: "1Gi",
      },
    },
  },
  {
    name: "nodeOptions",
    values: { nodeOptions: "--max-old-space-size=512" },
    changes: { [DEPLOYMENT]: { [`${CONTAINER}.env.0.value`]: "--max-old-space-size=512" } },
  },
  {
    name: "nodeSelector and tolerations",
    values: { nodeSelector: { "kubernetes.io/os": "linux" }, tolerations: [{ key: "infra", operator: "Exists", effect: "NoSchedule" }] },
    changes: {
      [DEPLOYMENT]: {
        "spec.template.spec.nodeSelector": { "kubernetes.io/os": "linux" },
        "spec.template.spec.tolerations": [{ key: "infra", operator: "Exists", effect: "NoSchedule" }],
      },
    },
  },
  {
    name: "podSecurityContext (OpenShift's restricted-v2 assigns a UID; a platform may want one set)",
    values: { podSecurityContext: { runAsNonRoot: true, runAsUser: 1000680000, fsGroup: 1000680000, seccompProfile: { type: "RuntimeDefault" } } },
    changes: { [DEPLOYMENT]: { "spec.template.spec.securityContext.runAsUser": 1000680000, "spec.template.spec.securityContext.fsGroup": 1000680000 } },
  },
  {
    name: "containerSecurityContext",
    values: {
      containerSecurityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] }, runAsNonRoot: true },
    },
    changes: { [DEPLOYMENT]: { [`${CONTAINER}.securityContext.runAsNonRoot`]: true } },
  },
  {
    name: "affinity replaces the default anti-affinity as a whole",
    values: {
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: "node-role.kubernetes.io/infra", operator: "Exists" }] }],
          },
        },
      },
    },
    changes: {
      [DEPLOYMENT]: {
        "spec.template.spec.affinity.podAntiAffinity": undefined,
        "spec.template.spec.affinity.nodeAffinity": {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: "node-role.kubernetes.io/infra", operator: "Exists" }] }],
          },
        },
      },
    },
  },
  {
    name: "topologySpreadConstraints",
    values: {
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: "topology.kubernetes.io/zone",
          whenUnsatisfiable: "ScheduleAnyway",
          labelSelector: { matchLabels: { "app.kubernetes.io/name": "backup-gate" } },
        },
      ],
    },
    changes: {
      [DEPLOYMENT]: {
        "spec.template.spec.topologySpreadConstraints": [
          {
            maxSkew: 1,
            topologyKey: "topology.kubernetes.io/zone",
            whenUnsatisfiable: "ScheduleAnyway",
            labelSelector: { matchLabels: { "app.kubernetes.io/name": "backup-gate" } },
          },
        ],
      },
    },
  },
  {
    name: "priorityClassName",
    values: { priorityClassName: "system-cluster-critical" },
    changes: { [DEPLOYMENT]: { "spec.template.spec.priorityClassName": "system-cluster-critical" } },
  },
  {
    name: "podLabels and podAnnotations",
    values: { podLabels: { team: "storage" }, podAnnotations: { "example.com/owner": "storage" } },
    changes: { [DEPLOYMENT]: { "spec.template.metadata.labels.team": "storage", "spec.template.metadata.annotations": { "example.com/owner": "storage" } } },
  },
  {
    name: "networkPolicy.enabled",
    values: { networkPolicy: { enabled: false } },
    changes: { "NetworkPolicy/backup-gate/backup-gate": { "(object)": undefined } },
  },
  {
    name: "networkPolicy.from",
    values: { networkPolicy: { from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }] } },
    changes: {
      "NetworkPolicy/backup-gate/backup-gate": {
        "spec.ingress.0.from": [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }],
      },
    },
  },
  {
    name: "namespace.create renders manifests/' Namespace (labelled for PodSecurity restricted)",
    values: { namespace: { create: true } },
    changes: { "Namespace//backup-gate": { "(object)": "added" } },
  },
  {
    name: "podDisruptionBudget.minAvailable",
    values: { podDisruptionBudget: { minAvailable: "50%" } },
    changes: { "PodDisruptionBudget/backup-gate/backup-gate": { "spec.minAvailable": "50%" } },
  },
  {
    name: "podDisruptionBudget.enabled",
    values: { podDisruptionBudget: { enabled: false } },
    changes: { "PodDisruptionBudget/backup-gate/backup-gate": { "(object)": undefined } },
  },
  {
    name: "certificates.mode=secret",
    values: { certificates: { mode: "secret", secretName: "backup-gate-tls" } },
    changes: {
      [DEPLOYMENT]: {
        [`${ARGS}.5`]: "--tls-dir=/etc/backup-gate/tls",
        [`${CONTAINER}.volumeMounts`]: [{ name: "tls", mountPath: "/etc/backup-gate/tls", readOnly: true }],
        "spec.template.spec.volumes": [{ name: "tls", secret: { secretName: "backup-gate-tls" } }],
      },
    },
  },
  {
    name: "certificates.mode=serviceCA (OpenShift: the Service names the Secret, the webhooks ask for the CA)",
    values: { certificates: { mode: "serviceCA" } },
    changes: {
      [DEPLOYMENT]: {
        [`${ARGS}.5`]: "--tls-dir=/etc/backup-gate/tls",
        [`${ARGS}.6`]: "--ca-injected",
        [`${CONTAINER}.volumeMounts`]: [{ name: "tls", mountPath: "/etc/backup-gate/tls", readOnly: true }],
        "spec.template.spec.volumes": [{ name: "tls", secret: { secretName: "backup-gate-tls" } }],
      },
      "Service/backup-gate/backup-gate": { "metadata.annotations": { "service.beta.openshift.io/serving-cert-secret-name": "backup-gate-tls" } },
      "MutatingWebhookConfiguration//backup-gate": { "metadata.annotations": { "service.beta.openshift.io/inject-cabundle": "true" } },
      "ValidatingWebhookConfiguration//backup-gate": { "metadata.annotations": { "service.beta.openshift.io/inject-cabundle": "true" } },
    },
  },
  {
    name: "certificates.mode=certManager (a Certificate; the cainjector fills the caBundle)",
    values: { certificates: { mode: "certManager", secretName: "gate-serving", certManager: { issuerRef: { name: "cluster-ca", kind: "ClusterIssuer" } } } },
    changes: {
      [DEPLOYMENT]: {
        [`${ARGS}.5`]: "--tls-dir=/etc/backup-gate/tls",
        [`${ARGS}.6`]: "--ca-injected",
        [`${CONTAINER}.volumeMounts`]: [{ name: "tls", mountPath: "/etc/backup-gate/tls", readOnly: true }],
        "spec.template.spec.volumes": [{ name: "tls", secret: { secretName: "gate-serving" } }],
      },
      "Certificate/backup-gate/backup-gate": { "(object)": "added" },
      "MutatingWebhookConfiguration//backup-gate": { "metadata.annotations": { "cert-manager.io/inject-ca-from": "backup-gate/backup-gate" } },
      "ValidatingWebhookConfiguration//backup-gate": { "metadata.annotations": { "cert-manager.io/inject-ca-from": "backup-gate/backup-gate" } },
    },
  },
  {
    name: "certificates.mountPath",
    values: { certificates: { mode: "secret", secretName: "gate-cert", mountPath: "/tls" } },
    changes: {
      [DEPLOYMENT]: {
        [`${ARGS}.5`]: "--tls-dir=/tls",
        [`${CONTAINER}.volumeMounts`]: [{ name: "tls", mountPath: "/tls", readOnly: true }],
        "spec.template.spec.volumes": [{ name: "tls", secret: { secretName: "gate-cert" } }],
      },
    },
  },
];

describe("each value changes what it should and nothing else", () => {
  it.each(valueCases)("$name", async (c) => {
    const objects = await renderChart({ values: c.values });
    const before = byKey(defaults.map(comparable));
    const after = byKey(objects.map(comparable));
    const changes: Record<string, Record<string, unknown>> = {};
    for (const key of new Set([...before.keys(), ...after.keys()])) {
      const a = before.get(key),
        b = after.get(key);
      if (!a || !b) {
        changes[key] = { "(object)": b ? "added" : undefined };
        continue;
      }
      const paths = changedPaths(a, b);
      if (key === POLICY) {
        expect(
          paths.every((p) => p[0] === "data" && p[1] === "policy.yaml"),
          `${key}: ${paths.map((p) => p.join(".")).join(", ")}`,
        ).toBe(true);
        continue;
      }
      if (paths.length) changes[key] = Object.fromEntries(paths.map((p) => [p.join("."), at(b, p)]));
    }
    expect(changes).toEqual(c.changes);
    expect(gatePolicy(objects)).toEqual(expectedPolicy(c.policy ?? {}));
  });

  it("the release namespace moves every namespaced object but Velero's, and the webhooks equal the gate's own", async () => {
    const objects = await renderChart({ namespace: "ops", values: { velero: { namespace: "oadp" } } });
    for (const o of objects) {
      const expected =
        o.kind === "ClusterRole" || o.kind === "ClusterRoleBinding" || o.kind.endsWith("WebhookConfiguration")
          ? undefined
          : (o.kind === "Role" || o.kind === "RoleBinding") && o.metadata.namespace !== "ops"
            ? "oadp"
            : "ops";
      expect(o.metadata.namespace, objectKey(o)).toBe(expected);
    }
    for (const o of objects.filter((x) => x.kind.endsWith("Binding"))) {
      expect(o.subjects, objectKey(o)).toEqual([{ kind: "ServiceAccount", name: "backup-gate", namespace: "ops" }]);
    }
    const deployment = objects.find((o) => o.kind === "Deployment");
    expect(at(deployment, [...ARGS.split("."), "1"])).toBe("--namespace=ops");
    const { mutating, validating } = webhookConfigurations({
      name: "backup-gate",
      veleroNamespace: "oadp",
      service: { name: "backup-gate", namespace: "ops" },
    });
    const plain = (o: unknown) => JSON.parse(JSON.stringify(o)) as K8sObject;
    expect(objects.filter((o) => o.kind.endsWith("WebhookConfiguration")).map(withoutHelmLabels)).toEqual([plain(mutating), plain(validating)]);
    expect(gatePolicy(objects).veleroNamespace).toBe("oadp");
  });
});

interface BadCase {
  name: string;
  values: Record<string, unknown>;
  message: RegExp;
}

const badCases: BadCase[] = [
  { name: "unknown level", values: { level: "Bogus" }, message: /at '\/level'.*(Namespace.*ItemBlock|one of)/s },
  { name: "negative limit", values: { limit: -1 }, message: /at '\/limit'.*minimum/s },
  { name: "zero limit", values: { limit: 0 }, message: /at '\/limit'.*minimum/s },
  { name: "limit above the gate's maximum", values: { limit: 1001 }, message: /at '\/limit'.*maximum/s },
  { name: "fractional limit", values: { limit: 2.5 }, message: /at '\/limit'.*integer/s },
  { name: "limit as text", values: { limit: "4" }, message: /at '\/limit'.*integer/s },
  { name: "unknown serialWorkloads", values: { serialWorkloads: "Sometimes" }, message: /at '\/serialWorkloads'/ },
  { name: "priority as text", values: { priorities: { manual: "high" } }, message: /at '\/priorities\/manual'.*integer/s },
  { name: "negative aging", values: { priorities: { agingSeconds: -1 } }, message: /at '\/priorities\/agingSeconds'.*minimum/s },
  { name: "misspelt top-level key", values: { levle: "Namespace" }, message: /additional properties 'levle' not allowed/ },
  { name: "unknown policy key", values: { policy: { maxConcurrentBackup: 3 } }, message: /at '\/policy'.*'maxConcurrentBackup' not allowed/s },
  { name: "policy key of the wrong kind", values: { policy: { snapshotMoveData: "yes" } }, message: /at '\/policy\/snapshotMoveData'.*boolean/s },
  {
    name: "writesPerDequeue above 100",
    values: { policy: { positionUpdates: { writesPerDequeue: 101 } } },
    message: /at '\/policy\/positionUpdates\/writesPerDequeue'.*maximum/s,
  },
  { name: "velero.namespace not a namespace name", values: { velero: { namespace: "Velero_NS" } }, message: /at '\/velero\/namespace'/ },
  { name: "an unknown velero.installedBy", values: { velero: { namespace: "velero", installedBy: "operator" } }, message: /at '\/velero\/installedBy'/ },
  { name: "zero replicas", values: { replicas: 0 }, message: /at '\/replicas'.*minimum/s },
  { name: "unknown certificates.mode", values: { certificates: { mode: "vault" } }, message: /at '\/certificates\/mode'/ },
  {
    name: "certManager mode without an issuer",
    values: { certificates: { mode: "certManager" } },
    message: /at '\/certificates\/certManager\/issuerRef\/name'|missing propert(y|ies) 'certManager'/,
  },
  {
    name: "certManager issuer of an unknown kind",
    values: { certificates: { mode: "certManager", certManager: { issuerRef: { name: "x", kind: "Vault" } } } },
    message: /at '\/certificates\/certManager\/issuerRef\/kind'/,
  },
  { name: "secret mode without a Secret name", values: { certificates: { mode: "secret" } }, message: /at '\/certificates\/secretName'/ },
  { name: "relative mountPath", values: { certificates: { mode: "secret", secretName: "x", mountPath: "tls" } }, message: /at '\/certificates\/mountPath'/ },
  {
    name: "podLabels overriding the selector's label",
    values: { podLabels: { "app.kubernetes.io/name": "other" } },
    message: /invalid propertyName 'app\.kubernetes\.io\/name'/,
  },
  { name: "an unknown PodSecurity level", values: { namespace: { create: true, podSecurity: "strict" } }, message: /at '\/namespace\/podSecurity'/ },
  {
    name: "a topology spread constraint without its required fields",
    values: { topologySpreadConstraints: [{ maxSkew: 1 }] },
    message: /at '\/topologySpreadConstraints\/0'.*(topologyKey|whenUnsatisfiable)/s,
  },
  { name: "minAvailable as a bad text", values: { podDisruptionBudget: { minAvailable: "half" } }, message: /at '\/podDisruptionBudget\/minAvailable'/ },
];

describe("values the gate would refuse fail helm template, naming the value", () => {
  it.each(badCases)("$name", async (c) => {
    const r = await helmTemplate({ values: c.values });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatch(/values don't meet the specifications of the schema/);
    expect(r.error).toMatch(c.message);
  });
});

// The chart's schema and the gate's policy schema are two texts; these hold them to one
// meaning. Around every boundary of every policy value, helm accepts exactly what the gate
// accepts, and what it renders is what the gate then reads.
interface Boundary {
  value: string[];
  policy: string[];
  candidates: unknown[];
}

const boundaries: Boundary[] = [
  { value: ["level"], policy: ["conflictLevel"], candidates: ["Namespace", "ItemBlock", "Bogus", "namespace", "", 1] },
  { value: ["limit"], policy: ["maxConcurrentBackups"], candidates: [-1, 0, 1, 1000, 1001, 2.5, "4"] },
  { value: ["serialWorkloads"], policy: ["serialWorkloads"], candidates: ["Allow", "Forbid", "Replace", "Never"] },
  { value: ["priorities", "manual"], policy: ["priorities", "manual"], candidates: [-100, 0, 1_000_000, 1.5, "high"] },
  { value: ["priorities", "scheduled"], policy: ["priorities", "scheduled"], candidates: [-100, 0, 1_000_000, 1.5, "high"] },
  { value: ["priorities", "agingSeconds"], policy: ["priorities", "agingSeconds"], candidates: [-1, 0, 86_400, 0.5] },
  {
    value: ["priorities", "schedules"],
    policy: ["priorities", "schedules"],
    candidates: [{ "nightly-db": 5 }, { "nightly-db": -2, hourly: 0 }, { "nightly-db": 1.5 }, { "nightly-db": "x" }],
  },
  { value: ["velero", "namespace"], policy: ["veleroNamespace"], candidates: ["oadp", "openshift-adp", ""] },
  { value: ["policy", "defaultVolumesToFsBackup"], policy: ["defaultVolumesToFsBackup"], candidates: [true, false, "true"] },
  { value: ["policy", "snapshotMoveData"], policy: ["snapshotMoveData"], candidates: [true, false, 1] },
  { value: ["policy", "volumeGroupSnapshotLabelKey"], policy: ["volumeGroupSnapshotLabelKey"], candidates: ["example.com/group", "", 5] },
  { value: ["policy", "serialIdenticalScope"], policy: ["serialIdenticalScope"], candidates: [true, "yes"] },
  {
    value: ["policy", "exclusiveResources"],
    policy: ["exclusiveResources"],
    candidates: [[], ["widgets.example.com", "gadgets.example.com"], [""], "widgets"],
  },
  { value: ["policy", "positionUpdates", "writesPerDequeue"], policy: ["positionUpdates", "writesPerDequeue"], candidates: [0, 100, 101, -1, 1.5] },
  { value: ["policy", "nudgeAfterSeconds"], policy: ["nudgeAfterSeconds"], candidates: [0, 1, 60, 1.5] },
  {
    value: ["policy", "tenants"],
    policy: ["tenants"],
    candidates: [
      {},
      { label: "example.com/tenant", maxInFlightPerTenant: 2, weights: { "team-a": 3 }, defaultWeight: 1, untenantedWeight: 2 },
      { nonAdminEvents: true },
      { nonAdminEvents: "yes" },
      { maxInFlightPerTenant: 0 },
      { weights: { "team-a": 1.5 } },
      { label: "" },
      { bogus: 1 },
      "yes",
    ],
  },
  {
    value: ["policy", "windows"],
    policy: ["windows"],
    candidates: [
      [],
      [
        {
          name: "nightly",
          selector: { namespaces: ["shop-*"], matchLabels: { tier: "heavy" }, schedules: ["daily"] },
          timeZone: "Europe/Berlin",
          allow: [{ start: "22:00", end: "05:00", days: ["Mon", "Fri"] }],
          maxWaitSeconds: 3600,
          onMaxWait: "Fail",
        },
      ],
      [{ blackout: [{ start: "08:00", end: "18:00" }] }],
      [{ allow: [{ start: "22:00", end: "05:00" }], blackout: [{ start: "08:00", end: "18:00" }] }],
      [{ timeZone: "UTC" }],
      [{ allow: [{ start: "24:00", end: "05:00" }] }],
      [{ allow: [] }],
      [{ allow: [{ start: "22:00", end: "05:00", days: ["Monday"] }] }],
      [{ allow: [{ start: "22:00", end: "05:00" }], maxWaitSeconds: 0 }],
      [{ allow: [{ start: "22:00", end: "05:00" }], onMaxWait: "Skip" }],
      [{ allow: [{ start: "22:00", end: "05:00" }], selector: { namespaces: ["Shop_1"] } }],
      [{ allow: [{ start: "22:00", end: "05:00" }], bogus: 1 }],
      "yes",
    ],
  },
  {
    value: ["policy", "budgets"],
    policy: ["budgets"],
    candidates: [
      {},
      {
        defaultStorageLocation: "primary",
        backupsPerStorageLocation: { default: 2, "*": 4 },
        snapshotsPerDriver: 3,
        snapshotsPerStorageClass: { gold: 1 },
        fsBackupsPerNode: { "worker-*": 2 },
      },
      { fsBackupsPerNode: 0 },
      { snapshotsPerDriver: { "csi.a": 1.5 } },
      { snapshotsPerDriver: { "csi.a": 1001 } },
      { snapshotsPerStorageClass: "many" },
      { defaultStorageLocation: "" },
      { snapshotsPerDrivers: 2 },
      "yes",
    ],
  },
  {
    value: ["policy", "restores"],
    policy: ["restores"],
    candidates: [{}, { onConflict: "Deny", holdBackups: false }, { onConflict: "Block" }, { holdBackups: "no" }, { bogus: 1 }, "yes"],
  },
];

/** A copy of `o` with `value` at `path`. */
function setAt(o: Record<string, unknown>, path: string[], value: unknown): Record<string, unknown> {
  const [k, ...rest] = path as [string, ...string[]];
  return { ...o, [k]: rest.length ? setAt((o[k] ?? {}) as Record<string, unknown>, rest, value) : value };
}

async function expectSameVerdict(values: Record<string, unknown>, gateDoc: Record<string, unknown>): Promise<void> {
  const gate = parsePolicy(gateDoc);
  const r = await helmTemplate({ values });
  expect(
    r.ok,
    `${JSON.stringify(values)}: helm ${r.ok ? "accepted" : `refused (${r.error})`}, the gate ${gate.ok ? "accepts" : `refuses (${gate.error})`}`,
  ).toBe(gate.ok);
  if (r.ok && gate.ok) expect(gatePolicy(r.objects)).toEqual(gate.policy);
}

describe("the chart accepts a policy exactly when the gate does", () => {
  it("every key of the gate's policy is a chart value", () => {
    expect([...new Set(boundaries.map((b) => b.policy[0]))].sort()).toEqual(Object.keys(policySchema.shape).sort());
  });

  it.each(boundaries.map((b) => ({ ...b, name: b.value.join(".") })))("$name", async (b) => {
    for (const candidate of b.candidates) await expectSameVerdict(setAt({}, b.value, candidate), setAt(manifestPolicyDoc, b.policy, candidate));
  });

  it("for any combination of valid values", async () => {
    const name = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$/);
    const priority = fc.integer({ min: -1_000_000, max: 1_000_000 });
    const values = fc.record({
      level: fc.constantFrom("Namespace", "ItemBlock"),
      limit: fc.integer({ min: 1, max: 1000 }),
      serialWorkloads: fc.constantFrom("Allow", "Forbid", "Replace"),
      priorities: fc.record({ manual: priority, scheduled: priority, agingSeconds: fc.nat(), schedules: fc.dictionary(name, priority, { maxKeys: 3 }) }),
      velero: fc.record({ namespace: name }),
      policy: fc.record(
        {
          defaultVolumesToFsBackup: fc.boolean(),
          snapshotMoveData: fc.boolean(),
          serialIdenticalScope: fc.boolean(),
          exclusiveResources: fc.array(
            name.map((n) => `${n}.example.com`),
            { maxLength: 3 },
          ),
          positionUpdates: fc.record({ writesPerDequeue: fc.integer({ min: 0, max: 100 }) }),
          nudgeAfterSeconds: fc.integer({ min: 1, max: 86_400 }),
        },
        { requiredKeys: [] },
      ),
    });
    await fc.assert(
      fc.asyncProperty(values, async (v) => {
        const { level, limit, serialWorkloads, priorities, velero, policy } = v;
        await expectSameVerdict(v, {
          ...manifestPolicyDoc,
          conflictLevel: level,
          maxConcurrentBackups: limit,
          serialWorkloads,
          priorities,
          veleroNamespace: velero.namespace,
          ...policy,
        });
      }),
      { numRuns: 20 },
    );
  }, 60_000);
});
