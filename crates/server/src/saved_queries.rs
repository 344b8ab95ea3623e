//! Saved queries and query results of Honeycomb's Query Data API, kept in memory.
//!
//! Both are bounded least-recently-used maps: a server restart forgets them, and
//! under many distinct queries the oldest go first (a client then gets a 404 and
//! creates them again, as after Honeycomb's own result expiry).

use std::collections::HashMap;
use std::hash::Hash;

use parking_lot::Mutex;
use quarry_query::spec::QuerySpec;
use serde_json::Value;

/// Saved queries kept per server.
pub const MAX_SAVED_QUERIES: usize = 1000;
/// Query results kept per server.
pub const MAX_SAVED_RESULTS: usize = 1000;

/// A map that forgets its least recently used entry beyond `capacity`.
struct Lru<K, V> {
    capacity: usize,
    tick: u64,
    entries: HashMap<K, (V, u64)>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Lru {
            capacity: capacity.max(1),
            tick: 0,
            entries: HashMap::new(),
        }
    }

    fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(value, used)| {
            *used = tick;
            value.clone()
        })
    }

    fn put(&mut self, key: K, value: V) {
        self.tick += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            // Linear in the capacity, which is small; simpler than a linked list.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (value, self.tick));
    }
}

/// (environment, dataset, id)
type Key = (String, String, String);

/// The Query Data API's memory.
pub struct SavedQueries {
    queries: Mutex<Lru<Key, QuerySpec>>,
    results: Mutex<Lru<Key, Value>>,
    next_result: Mutex<u64>,
}

impl Default for SavedQueries {
    fn default() -> Self {
        SavedQueries {
            queries: Mutex::new(Lru::new(MAX_SAVED_QUERIES)),
            results: Mutex::new(Lru::new(MAX_SAVED_RESULTS)),
            next_result: Mutex::new(0),
        }
    }
}

fn key(env: &str, dataset: &str, id: &str) -> Key {
    (env.to_owned(), dataset.to_owned(), id.to_owned())
}

impl SavedQueries {
    /// Saves `spec`; the same spec always gets the same id, as in Honeycomb.
    pub fn save_query(&self, env: &str, dataset: &str, spec: QuerySpec) -> String {
        let canonical = serde_json::to_string(&spec).unwrap_or_default();
        let id = format!("q{:016x}", fnv1a(canonical.as_bytes()));
        self.queries.lock().put(key(env, dataset, &id), spec);
        id
    }

    /// A saved query.
    pub fn query(&self, env: &str, dataset: &str, id: &str) -> Option<QuerySpec> {
        self.queries.lock().get(&key(env, dataset, id))
    }

    /// Saves a result body under a new id.
    pub fn save_result(&self, env: &str, dataset: &str, make: impl FnOnce(&str) -> Value) -> Value {
        let id = {
            let mut next = self.next_result.lock();
            *next += 1;
            format!("r{:x}", *next)
        };
        let body = make(&id);
        self.results
            .lock()
            .put(key(env, dataset, &id), body.clone());
        body
    }

    /// A saved result body.
    pub fn result(&self, env: &str, dataset: &str, id: &str) -> Option<Value> {
        self.results.lock().get(&key(env, dataset, id))
    }
}

/// FNV-1a, 64 bits: a stable id for a spec's canonical JSON (std's hasher is not
/// guaranteed stable across releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut lru = Lru::new(2);
        lru.put(1, "a");
        lru.put(2, "b");
        assert_eq!(lru.get(&1), Some("a"));
        lru.put(3, "c");
        assert_eq!(lru.get(&2), None);
        assert_eq!(lru.get(&1), Some("a"));
        assert_eq!(lru.get(&3), Some("c"));
    }

    #[test]
    fn the_same_spec_gets_the_same_id_per_dataset() {
        let saved = SavedQueries::default();
        let spec = QuerySpec::default();
        let a = saved.save_query("default", "api", spec.clone());
        let b = saved.save_query("default", "api", spec.clone());
        assert_eq!(a, b);
        assert_eq!(saved.query("default", "api", &a), Some(spec));
        assert_eq!(saved.query("other", "api", &a), None);
    }
}
