//! The read cache's counters, exported on `/metrics` as `quarry_read_cache_*`.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What the read cache did.
#[derive(Debug, Default)]
pub struct ReadCacheMetrics {
    /// Chunks served from local disk.
    pub hits: Counter,
    /// Chunks downloaded from the object store.
    pub misses: Counter,
    /// Bytes served from local disk.
    pub hit_bytes: Counter,
    /// Bytes downloaded from the object store into the cache.
    pub miss_bytes: Counter,
    /// Chunks removed to stay within the budget.
    pub evictions: Counter,
    /// Bytes of chunks on local disk now.
    pub cached_bytes: Gauge<u64, AtomicU64>,
}

impl ReadCacheMetrics {
    /// Registers the counters (prometheus-client adds `_total` to counters).
    pub fn register(&self, registry: &mut Registry) {
        let cache = registry.sub_registry_with_prefix("quarry_read_cache");
        let counters: [(&str, &str, &Counter); 5] = [
            (
                "hits",
                "Chunks of object data served from the local read cache",
                &self.hits,
            ),
            (
                "misses",
                "Chunks of object data downloaded from the object store into the read cache",
                &self.misses,
            ),
            (
                "hit_bytes",
                "Bytes served from the local read cache",
                &self.hit_bytes,
            ),
            (
                "miss_bytes",
                "Bytes downloaded from the object store into the read cache",
                &self.miss_bytes,
            ),
            (
                "evictions",
                "Chunks evicted from the read cache (least recently used first)",
                &self.evictions,
            ),
        ];
        for (name, help, counter) in counters {
            cache.register(name, help, counter.clone());
        }
        cache.register(
            "bytes",
            "Bytes of object data held in the read cache on local disk",
            self.cached_bytes.clone(),
        );
    }
}
