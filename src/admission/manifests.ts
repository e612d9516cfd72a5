import type { V1MutatingWebhookConfiguration, V1ValidatingWebhookConfiguration, AdmissionregistrationV1WebhookClientConfig } from "@kubernetes/client-node";
import { PATHS } from "./server.js";

// The two webhook configurations the gate needs, as objects for client-node (or YAML).
//
// failurePolicy, decided per webhook: what happens to Backups while the gate is down?
//
// - mutate (CREATE): Ignore. It only annotates and warns. A gate outage must not stop
//   people and Schedules from recording backups: they queue, and run once the gate (the only
//   promoter) is back.
// - validate-create (CREATE): Ignore, for the same reason. During an outage a second run of a
//   Schedule is not refused (serialWorkloads: Forbid); it still never overlaps the first,
//   because the queue never puts two runs of one Schedule in flight together.
// - validate-create-in-flight (CREATE straight into ReadyToStart/InProgress): Fail. Velero
//   ignores creates, but the next update of such a backup makes it run; it is a promotion by
//   another means, guarded as one. A matchCondition sends only these creates here, and
//   validate-create (Ignore) gets every other create, so each create is judged once.
// - validate-promotion (UPDATE): Fail. This is the guard of the invariant against other
//   writers (Velero's own queue left on, a script, kubectl edit): while the gate is down
//   nobody may promote, which costs nothing because the gate is the promoter. A matchCondition
//   limits the call to moves into ReadyToStart/InProgress from outside flight, and to spec
//   changes of a backup in flight (other than Velero's own ReadyToStart -> InProgress write),
//   so Velero's own status writes (the Backup CRD has no status subresource, every
//   InProgress/Completed write is an UPDATE) never depend on the gate: a gate outage cannot
//   freeze running backups. Labels and annotations of a backup in flight stay editable.
//
// Every webhook has sideEffects: None, admissionReviewVersions [v1], a namespaceSelector for
// Velero's namespace, and a short timeout (the gate answers from memory in milliseconds).

export interface WebhookManifestOptions {
  /** Name of both configurations. */
  readonly name: string;
  readonly veleroNamespace: string;
  /** In-cluster: the gate's Service. */
  readonly service?: { readonly name: string; readonly namespace: string; readonly port?: number };
  /** Out of cluster (local runs, tests): the base URL, e.g. https://127.0.0.1:8443. */
  readonly url?: string;
  /** PEM; usually left out and written by the CaBundlePatcher. */
  readonly caBundle?: string;
  readonly timeoutSeconds?: number;
}

export const WEBHOOK_NAMES = {
  mutate: "mutate.backups.backup-gate.io",
  validateCreate: "validate-create.backups.backup-gate.io",
  validateCreateInFlight: "validate-create-in-flight.backups.backup-gate.io",
  validatePromotion: "validate-promotion.backups.backup-gate.io",
  validateRestore: "validate-create.restores.backup-gate.io",
} as const;

const IN_FLIGHT = "['ReadyToStart', 'InProgress']";
const NEW_IN_FLIGHT = `has(object.status) && has(object.status.phase) && object.status.phase in ${IN_FLIGHT}`;
const OLD_IN_FLIGHT = `has(oldObject.status) && has(oldObject.status.phase) && oldObject.status.phase in ${IN_FLIGHT}`;

/** CEL: a create straight into ReadyToStart/InProgress. */
export const CREATED_IN_FLIGHT = NEW_IN_FLIGHT;

/**
 * CEL: the update moves status.phase into ReadyToStart/InProgress from outside them, or changes
 * the spec of a backup that stays in flight, except Velero's own ReadyToStart -> InProgress write.
 */
export const INTO_OR_IN_FLIGHT =
  `${NEW_IN_FLIGHT} && (!(${OLD_IN_FLIGHT}) || ` +
  "(!(oldObject.status.phase == 'ReadyToStart' && object.status.phase == 'InProgress') && " +
  "(has(object.spec) != has(oldObject.spec) || (has(object.spec) && object.spec != oldObject.spec))))";

/** Kept for callers of the earlier name: the promotion guard's condition. */
export const INTO_READY_TO_START = INTO_OR_IN_FLIGHT;

export function webhookConfigurations(o: WebhookManifestOptions): { mutating: V1MutatingWebhookConfiguration; validating: V1ValidatingWebhookConfiguration } {
  if (!o.service === !o.url) throw new Error("webhookConfigurations: give exactly one of service and url");
  const clientConfig = (path: string): AdmissionregistrationV1WebhookClientConfig => ({
    ...(o.service
      ? { service: { name: o.service.name, namespace: o.service.namespace, port: o.service.port ?? 443, path } }
      : { url: `${(o.url as string).replace(/\/$/, "")}${path}` }),
    ...(o.caBundle ? { caBundle: Buffer.from(o.caBundle).toString("base64") } : {}),
  });
  const common = {
    sideEffects: "None",
    admissionReviewVersions: ["v1"],
    matchPolicy: "Equivalent",
    timeoutSeconds: o.timeoutSeconds ?? 5,
    namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": o.veleroNamespace } },
  };
  const rule = (operations: string[]) => [{ apiGroups: ["velero.io"], apiVersions: ["v1"], resources: ["backups"], operations, scope: "Namespaced" }];
  return {
    mutating: {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata: { name: o.name, labels: { "app.kubernetes.io/name": "backup-gate" } },
      webhooks: [
        {
          ...common,
          name: WEBHOOK_NAMES.mutate,
          clientConfig: clientConfig(PATHS.mutate),
          rules: rule(["CREATE"]),
          failurePolicy: "Ignore",
          reinvocationPolicy: "Never",
        },
      ],
    },
    validating: {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingWebhookConfiguration",
      metadata: { name: o.name, labels: { "app.kubernetes.io/name": "backup-gate" } },
      webhooks: [
        {
          ...common,
          name: WEBHOOK_NAMES.validateCreate,
          clientConfig: clientConfig(PATHS.validate),
          rules: rule(["CREATE"]),
          failurePolicy: "Ignore",
          matchConditions: [{ name: "not-created-in-flight", expression: `!(${CREATED_IN_FLIGHT})` }],
        },
        {
          ...common,
          name: WEBHOOK_NAMES.validateCreateInFlight,
          clientConfig: clientConfig(PATHS.validate),
          rules: rule(["CREATE"]),
          failurePolicy: "Fail",
          matchConditions: [{ name: "created-in-flight", expression: CREATED_IN_FLIGHT }],
        },
        {
          ...common,
          name: WEBHOOK_NAMES.validatePromotion,
          clientConfig: clientConfig(PATHS.validate),
          rules: rule(["UPDATE"]),
          failurePolicy: "Fail",
          matchConditions: [{ name: "into-or-in-flight", expression: INTO_OR_IN_FLIGHT }],
        },
        {
          // A Restore into what a backup in flight holds: a warning, or under restores.onConflict:
          // Deny a refusal. Ignore: a gate that cannot answer never stands in a restore's way.
          ...common,
          name: WEBHOOK_NAMES.validateRestore,
          clientConfig: clientConfig(PATHS.validate),
          rules: [{ apiGroups: ["velero.io"], apiVersions: ["v1"], resources: ["restores"], operations: ["CREATE"], scope: "Namespaced" }],
          failurePolicy: "Ignore",
        },
      ],
    },
  };
}
