//! Every tunable of the query engine, with its default, in one place. The
//! server's `[query]` section deserializes straight into [`QueryConfig`].

use std::fmt;

use serde::Deserialize;

/// Default memory budget of all running queries together: 4 GiB.
pub const DEFAULT_MEMORY_LIMIT_BYTES: usize = 4 << 30;
/// Default budget of parsed segment bloom filters kept in memory: 256 MiB. A
/// trace-id filter takes about 2 bytes per event (256 KiB per 128 Ki-row row
/// group), so this keeps the filters of about 100M events resident; with 64 MiB a
/// 100M-event environment re-read most filters on every trace lookup.
pub const DEFAULT_BLOOM_CACHE_BYTES: usize = 256 << 20;
/// Default of [`QueryConfig::spec_many_groups`].
pub const DEFAULT_SPEC_MANY_GROUPS: usize = 4_096;
/// Parallelism used when the number of cores cannot be read.
const FALLBACK_TARGET_PARTITIONS: usize = 4;

/// Configuration of a [`crate::QueryEngine`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Partitions each query is split into (scan parallelism); defaults to the cores.
    pub target_partitions: usize,
    /// Memory shared by all running queries; a query needing more than its fair
    /// share spills or fails with [`crate::QueryError::ResourcesExhausted`].
    pub memory_limit_bytes: usize,
    /// Memory for parsed bloom filters of segments (they are immutable, so cached).
    pub bloom_cache_bytes: usize,
    /// Distinct breakdown values among a query spec's first 65,536 rows at which
    /// it answers in two passes (groups by keys, then the top groups' series)
    /// rather than one over (time bucket, keys): docs/query.md, *How a spec is
    /// computed*.
    pub spec_many_groups: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(FALLBACK_TARGET_PARTITIONS);
        QueryConfig {
            target_partitions: cores,
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            bloom_cache_bytes: DEFAULT_BLOOM_CACHE_BYTES,
            spec_many_groups: DEFAULT_SPEC_MANY_GROUPS,
        }
    }
}

/// A query setting the engine cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidQuerySetting {
    /// The key, as the configuration file names it.
    pub key: &'static str,
}

impl fmt::Display for InvalidQuerySetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} must be greater than 0", self.key)
    }
}

impl QueryConfig {
    /// Refuses zeros, which would leave queries no parallelism or no memory.
    pub fn validate(&self) -> Result<(), InvalidQuerySetting> {
        [
            ("target_partitions", self.target_partitions),
            ("memory_limit_bytes", self.memory_limit_bytes),
            ("bloom_cache_bytes", self.bloom_cache_bytes),
            ("spec_many_groups", self.spec_many_groups),
        ]
        .into_iter()
        .find(|(_, value)| *value == 0)
        .map_or(Ok(()), |(key, _)| Err(InvalidQuerySetting { key }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_use_every_core_and_four_gib() {
        let config = QueryConfig::default();
        assert!(config.target_partitions >= 1);
        assert_eq!(config.memory_limit_bytes, 4 * 1024 * 1024 * 1024);
        assert_eq!(config.bloom_cache_bytes, 256 * 1024 * 1024);
    }
}
