export { createClusterCache, type ClusterCacheImpl, type ClusterCacheOptions } from "./cache.js";
