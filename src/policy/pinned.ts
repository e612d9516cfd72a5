import type { Policy } from "../core/policy.js";
import type { EventRecorder, EventTarget } from "../kube/events.js";
import type { Logger } from "../logging/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import type { PolicySource } from "./source.js";

// `veleroNamespace` is read once, at start: the cluster cache watches Backups there, and the
// webhook configurations' namespaceSelector names it. An edit of it cannot take effect until a
// restart, and until then the policy the webhooks and the controller judge by must keep naming
// the namespace being watched: a policy naming another one made every backup there look
// foreign to the gate, which then allowed every promotion (the guard switched off by a typo).
//
// So the policy in effect keeps the watched namespace, and every other key of the edit applies
// at once. While the ConfigMap asks for another namespace the gate says so: a Warning Event
// `RestartRequired` on the ConfigMap, `backup_gate_policy_restart_required` 1 and a log line.
// It does not restart itself: a typo would then switch the guard to an empty namespace and leave
// Velero's unguarded; an operator restarts it (and moves the webhooks' namespaceSelector) when
// the move is meant.

export interface PinnedPolicyOptions {
  /** The namespace the cluster cache watches. */
  readonly veleroNamespace: string;
  /** The policy ConfigMap, for the Event. */
  readonly configMap: EventTarget;
  readonly metrics?: Pick<Metrics, "policyRestartRequired">;
  readonly recorder?: EventRecorder;
  readonly log: Logger;
}

/** The source's policy with `veleroNamespace` held to the watched one; the same object while the source's does not change. */
export function pinVeleroNamespace(source: PolicySource, o: PinnedPolicyOptions): PolicySource & { restartRequired(): boolean } {
  const watched = o.veleroNamespace;
  let seen: Policy | undefined;
  let pinned: Policy | undefined;
  let asked: string | undefined;

  const pin = (p: Policy): Policy => {
    if (p === seen && pinned) return pinned;
    seen = p;
    pinned = p.veleroNamespace === watched ? p : { ...p, veleroNamespace: watched };
    return pinned;
  };

  const check = (p: Policy) => {
    const wanted = p.veleroNamespace === watched ? undefined : p.veleroNamespace;
    if (wanted === asked) return;
    asked = wanted;
    o.metrics?.policyRestartRequired.set(wanted === undefined ? 0 : 1);
    if (wanted === undefined) {
      o.log.info({ veleroNamespace: watched }, "the policy's veleroNamespace is the watched one again; no restart needed");
      return;
    }
    const message =
      `veleroNamespace changed to ${JSON.stringify(wanted)}, but backup-gate watches ${JSON.stringify(watched)} until it restarts: ` +
      `it keeps guarding and planning ${watched}; restart it (and point the webhooks' namespaceSelector at ${wanted}) to move`;
    o.log.warn({ veleroNamespace: watched, requested: wanted }, message);
    void o.recorder?.event(o.configMap, "Warning", "RestartRequired", message);
  };

  o.metrics?.policyRestartRequired.set(0);
  check(source.current());
  const off = source.onChange(check);

  return {
    current: () => pin(source.current()),
    valid: () => source.valid(),
    restartRequired: () => asked !== undefined,
    onChange(listener) {
      return source.onChange((p) => listener(pin(p)));
    },
    start: () => source.start(),
    async stop() {
      off();
      await source.stop();
    },
  };
}
