export { createClusterCache, type CacheChange, type ClusterCache, type ClusterCacheImpl, type ClusterCacheOptions } from "./cache.js";
