export { createClusterCache, type ClusterCacheImpl, type ClusterCacheOptions } from "./cache.js";
export { Backoff, type BackoffOptions } from "./backoff.js";
export { Reflector, relistDeletions, objectKey, isExpiredStatus, type ReflectorOptions, type ReflectorSink, type RestartReason } from "./reflector.js";
export { ApiStatusError, createRequester, type Requester } from "./http.js";
