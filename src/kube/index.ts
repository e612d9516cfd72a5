export { Backoff, type BackoffOptions } from "./backoff.js";
export { createEventRecorder, type EventRecorder, type EventRecorderOptions, type EventTarget, type EventType } from "./events.js";
export { ApiStatusError, createRequester, type Requester } from "./http.js";
export { Reflector, relistDeletions, objectKey, isExpiredStatus, type ReflectorOptions, type ReflectorSink, type RestartReason } from "./reflector.js";
export { sameValue } from "./sameValue.js";
