export { createWebhookServer, PATHS, STRONG_CIPHERS, tlsOptions, type WebhookServer, type WebhookServerOptions } from "./server.js";
export { AdmissionEngine, type EngineOptions, type TransitionVerdict, type CreateVerdict } from "./engine.js";
export { webhookConfigurations, WEBHOOK_NAMES, INTO_READY_TO_START, INTO_OR_IN_FLIGHT, CREATED_IN_FLIGHT, type WebhookManifestOptions } from "./manifests.js";
export { parseReview, annotationPatch, escapePointer, shortWarning, shortWarnings, review, type AdmissionRequest, type AdmissionResponse } from "./review.js";
