import type { KubeAccess } from "../kube/http.js";
import { trim } from "../core/velero/objects.js";
import type { Policy } from "../core/policy.js";
import type { BackoffOptions } from "../kube/backoff.js";
import type { EventRecorder } from "../kube/events.js";
import { Reflector, type Decoded, type RawObject } from "../kube/reflector.js";
import { sameValue } from "../kube/sameValue.js";
import type { Logger } from "../logging/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import { describeRefusal, FALLBACK_POLICY, readPolicyData } from "./document.js";

// The policy in effect: one ConfigMap, watched, hot-reloaded. A bad edit (YAML error, schema
// error, missing key) keeps the last good policy and says so three ways: a Warning Event
// `InvalidPolicy` on the ConfigMap naming the field, `backup_gate_policy_valid` 0 with
// `backup_gate_policy_reloads_total{result="invalid"}`, and a log line with the field. A later
// good edit sets the gauge back to 1 and notifies listeners.
//
// Deleting the ConfigMap (a GitOps prune, say) is not an edit to the defaults: the last good
// policy stays, with a Warning Event `PolicyDeleted`, the gauge at 0 and a log line, until the
// ConfigMap is back. With no ConfigMap at start there is no last good policy: the gate runs the
// FALLBACK_POLICY (no looser than any policy: Namespace level, one backup at a time) and says so
// the same three ways (Event `PolicyMissing`), rather than the defaults, which may be looser than
// the policy a prune removed while the gate was down.

/** The policy in effect: the last good one, hot-reloaded. */
export interface PolicySource {
  current(): Policy;
  /** False while the ConfigMap's latest content is refused, or it is missing or deleted (the last good, or the fallback, policy stays). */
  valid(): boolean;
  onChange(listener: (policy: Policy) => void): () => void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface PolicySourceOptions {
  namespace: string;
  /** Default "backup-gate-policy". */
  name?: string;
  /** Default "policy.yaml". */
  key?: string;
  metrics?: Pick<Metrics, "policyValid" | "policyReloads" | "watchRestarts">;
  log: Logger;
  recorder?: EventRecorder;
  backoff?: BackoffOptions;
  watchTimeoutSeconds?: () => number;
}

export interface PolicySourceImpl extends PolicySource {
  /** Why the ConfigMap's latest content is refused (`policy.yaml: field: message`), if it is. */
  refusal(): string | undefined;
}

interface PolicyConfigMap {
  uid: string;
  resourceVersion: string;
  data: Readonly<Record<string, string>>;
}

/** `result` label values of `backup_gate_policy_reloads_total`. */
export type ReloadResult = "valid" | "invalid" | "missing";

export function createPolicySource(kc: KubeAccess, o: PolicySourceOptions): PolicySourceImpl {
  const name = o.name ?? "backup-gate-policy";
  const key = o.key ?? "policy.yaml";
  const where = `ConfigMap ${o.namespace}/${name}`;
  const listeners = new Set<(policy: Policy) => void>();
  let current: Policy = FALLBACK_POLICY;
  let valid = true;
  let refusal: string | undefined;
  let present = false;
  /** The ConfigMap last seen, for Events about it once it is gone. */
  let lastUid: string | undefined;
  let loaded: () => void = () => {};
  const firstLoad = new Promise<void>((resolve) => {
    loaded = resolve;
  });
  o.metrics?.policyValid.set(1);

  const setPolicy = (policy: Policy) => {
    if (sameValue(current, policy)) return;
    current = policy;
    for (const l of [...listeners]) {
      try {
        l(policy);
      } catch (e) {
        o.log.error({ err: e }, "policy listener failed");
      }
    }
  };

  const reloaded = (result: ReloadResult) => o.metrics?.policyReloads.inc({ result });

  const apply = (cm: PolicyConfigMap) => {
    present = true;
    lastUid = cm.uid || undefined;
    const r = readPolicyData(cm.data, key);
    if (r.ok) {
      const wasValid = valid;
      valid = true;
      refusal = undefined;
      o.metrics?.policyValid.set(1);
      reloaded("valid");
      o.log.info({ configMap: `${o.namespace}/${name}`, resourceVersion: cm.resourceVersion, policy: r.policy }, `policy loaded from ${where}`);
      if (!wasValid) {
        void o.recorder?.event(
          { apiVersion: "v1", kind: "ConfigMap", namespace: o.namespace, name, uid: cm.uid },
          "Normal",
          "PolicyApplied",
          `${key} is valid again and in effect`,
        );
      }
      setPolicy(r.policy);
      return;
    }
    const why = describeRefusal(r);
    valid = false;
    refusal = why;
    o.metrics?.policyValid.set(0);
    reloaded("invalid");
    o.log.warn(
      { configMap: `${o.namespace}/${name}`, resourceVersion: cm.resourceVersion, key, field: r.field, error: r.error },
      `policy in ${where} refused, keeping the last good policy: ${why}`,
    );
    void o.recorder?.event(
      { apiVersion: "v1", kind: "ConfigMap", namespace: o.namespace, name, uid: cm.uid },
      "Warning",
      "InvalidPolicy",
      `${why}; the last good policy stays in effect`,
    );
  };

  const configMapRef = () => ({ apiVersion: "v1", kind: "ConfigMap", namespace: o.namespace, name, ...(lastUid ? { uid: lastUid } : {}) });

  /** Deleted while watched: the last good policy stays. */
  const deleted = () => {
    present = false;
    valid = false;
    refusal = `${where} was deleted; the last good policy stays in effect until it is back`;
    o.metrics?.policyValid.set(0);
    reloaded("missing");
    o.log.warn({ configMap: `${o.namespace}/${name}`, policy: current }, `policy ${refusal}`);
    void o.recorder?.event(configMapRef(), "Warning", "PolicyDeleted", `the ConfigMap was deleted; the last good policy stays in effect until it is back`);
  };

  /** Not there at start: no last good policy, so the fallback. */
  const missingAtStart = () => {
    const fallback = `the fallback policy (conflictLevel ${FALLBACK_POLICY.conflictLevel}, maxConcurrentBackups ${FALLBACK_POLICY.maxConcurrentBackups})`;
    present = false;
    valid = false;
    refusal = `${where} not found; running with ${fallback} until it exists`;
    o.metrics?.policyValid.set(0);
    reloaded("missing");
    o.log.warn({ configMap: `${o.namespace}/${name}`, policy: FALLBACK_POLICY }, `policy ${refusal}`);
    void o.recorder?.event(configMapRef(), "Warning", "PolicyMissing", `${where} not found: running with ${fallback} until it exists`);
    setPolicy(FALLBACK_POLICY);
  };

  const decode = (raw: RawObject): Decoded<PolicyConfigMap> => {
    raw.kind ??= "ConfigMap";
    const r = trim("ConfigMap", raw);
    if (!r.ok) return { ok: false, error: r.error };
    return { ok: true, value: { uid: raw.metadata?.uid ?? "", resourceVersion: raw.metadata?.resourceVersion ?? "", data: r.value.data } };
  };

  const reflector = new Reflector<PolicyConfigMap>({
    kc,
    log: o.log,
    resource: "policy-configmap",
    path: `/api/v1/namespaces/${encodeURIComponent(o.namespace)}/configmaps`,
    fieldSelector: `metadata.name=${name}`,
    decode,
    sink: {
      upsert: (_key, cm) => apply(cm),
      remove: () => {
        if (present) deleted();
      },
      keys: () => (present ? [`${o.namespace}/${name}`] : []),
      listed: (first) => {
        if (first && !present) missingAtStart();
        if (first) loaded();
      },
    },
    ...(o.metrics ? { metrics: o.metrics } : {}),
    ...(o.backoff ? { backoff: o.backoff } : {}),
    ...(o.watchTimeoutSeconds ? { watchTimeoutSeconds: o.watchTimeoutSeconds } : {}),
  });

  return {
    current: () => current,
    valid: () => valid,
    refusal: () => refusal,
    onChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    /** Starts the watch and resolves once the ConfigMap has been read (or found missing). */
    async start() {
      reflector.start();
      await firstLoad;
    },
    async stop() {
      await reflector.stop();
      loaded();
    },
  };
}
