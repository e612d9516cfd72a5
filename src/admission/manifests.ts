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
// - validate-promotion (UPDATE into ReadyToStart): Fail. This is the guard of the invariant
//   against other writers (Velero's own queue left on, a script): while the gate is down
//   nobody may promote, which costs nothing because the gate is the promoter. A
//   matchCondition limits the call to moves into ReadyToStart, so Velero's own status writes
//   (the Backup CRD has no status subresource, every InProgress/Completed write is an
//   UPDATE) never depend on the gate: a gate outage cannot freeze running backups.
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
  validatePromotion: "validate-promotion.backups.backup-gate.io",
} as const;

/** CEL: the update moves status.phase into ReadyToStart. */
export const INTO_READY_TO_START =
  "has(object.status) && has(object.status.phase) && object.status.phase == 'ReadyToStart' && " +
  "!(has(oldObject.status) && has(oldObject.status.phase) && oldObject.status.phase == 'ReadyToStart')";

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
      webhooks: [{
        ...common, name: WEBHOOK_NAMES.mutate, clientConfig: clientConfig(PATHS.mutate), rules: rule(["CREATE"]),
        failurePolicy: "Ignore", reinvocationPolicy: "Never",
      }],
    },
    validating: {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingWebhookConfiguration",
      metadata: { name: o.name, labels: { "app.kubernetes.io/name": "backup-gate" } },
      webhooks: [
        { ...common, name: WEBHOOK_NAMES.validateCreate, clientConfig: clientConfig(PATHS.validate), rules: rule(["CREATE"]), failurePolicy: "Ignore" },
        {
          ...common, name: WEBHOOK_NAMES.validatePromotion, clientConfig: clientConfig(PATHS.validate), rules: rule(["UPDATE"]), failurePolicy: "Fail",
          matchConditions: [{ name: "into-ready-to-start", expression: INTO_READY_TO_START }],
        },
      ],
    },
  };
}
