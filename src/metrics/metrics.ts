import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { collectRuntimeMetrics } from "./runtime.js";

// Every metric the gate exports, in one place, so the dashboard test can check its queries
// against this list and no adapter invents a name of its own.

export function createMetrics() {
  const registry = new Registry();
  // Node.js defaults under our prefix: backup_gate_process_* and backup_gate_nodejs_* (no GC histogram: runtime.ts).
  collectRuntimeMetrics(registry, "backup_gate_");
  const m = {
    registry,
    queueLength: new Gauge({ name: "backup_gate_queue_length", help: "Backups waiting (empty, New or Queued phase)", registers: [registry] }),
    inFlight: new Gauge({ name: "backup_gate_in_flight", help: "Backups ReadyToStart or InProgress, from observed phases", registers: [registry] }),
    queueWait: new Histogram({
      name: "backup_gate_queue_wait_seconds",
      help: "Time from creation to promotion to ReadyToStart",
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600],
      registers: [registry],
    }),
    decisions: new Counter({
      name: "backup_gate_decisions_total",
      help: "Queue decisions applied",
      labelNames: ["decision", "level"] as const,
      registers: [registry],
    }),
    planDuration: new Histogram({
      name: "backup_gate_plan_duration_seconds",
      help: "Time to compute one plan",
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    apiWrites: new Counter({
      name: "backup_gate_api_writes_total",
      help: "Writes to the API server",
      labelNames: ["kind", "result"] as const,
      registers: [registry],
    }),
    admissionRequests: new Counter({
      name: "backup_gate_admission_requests_total",
      help: "Admission reviews answered",
      labelNames: ["webhook", "operation", "verdict"] as const,
      registers: [registry],
    }),
    admissionDuration: new Histogram({
      name: "backup_gate_admission_duration_seconds",
      help: "Time to answer one admission review",
      labelNames: ["webhook"] as const,
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers: [registry],
    }),
    policyValid: new Gauge({
      name: "backup_gate_policy_valid",
      help: "1 when the policy in effect is the ConfigMap's current content; 0 when the last edit was refused or the ConfigMap is missing or deleted",
      registers: [registry],
    }),
    policyRestartRequired: new Gauge({
      name: "backup_gate_policy_restart_required",
      help: "1 while the policy asks for another veleroNamespace than the one watched (kept until a restart)",
      registers: [registry],
    }),
    policyReloads: new Counter({
      name: "backup_gate_policy_reloads_total",
      help: "Policy ConfigMap changes seen",
      labelNames: ["result"] as const,
      registers: [registry],
    }),
    overlaps: new Counter({
      name: "backup_gate_overlaps_detected_total",
      help: "Pairs of in-flight backups found sharing an exclusive unit (drift)",
      registers: [registry],
    }),
    foreignPromotions: new Counter({
      name: "backup_gate_foreign_promotions_total",
      help: "Backups seen ReadyToStart without backup-gate's mark (another writer, e.g. Velero's own queue)",
      registers: [registry],
    }),
    nudges: new Counter({ name: "backup_gate_nudges_total", help: "No-op updates of ReadyToStart backups Velero had not picked up", registers: [registry] }),
    leader: new Gauge({ name: "backup_gate_leader", help: "1 while this replica holds the queue lease", registers: [registry] }),
    viewSynced: new Gauge({ name: "backup_gate_view_synced", help: "1 when every informer has listed", registers: [registry] }),
    watchRestarts: new Counter({
      name: "backup_gate_watch_restarts_total",
      help: "Watches restarted",
      labelNames: ["resource", "reason"] as const,
      registers: [registry],
    }),
    certificateExpiry: new Gauge({ name: "backup_gate_certificate_expiry_seconds", help: "Unix time the serving certificate expires", registers: [registry] }),
    caBundleVerified: new Gauge({
      name: "backup_gate_ca_bundle_verified",
      help: "With an injected caBundle (serviceCA, certManager): 1 when every webhook's caBundle verifies the served certificate, 0 when one does not",
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
