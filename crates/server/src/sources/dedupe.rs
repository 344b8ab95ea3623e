//! Recognising a redelivered message by its id (MQTT QoS 1 is at-least-once: a
//! message written but not yet acknowledged at a crash or a disconnect comes
//! again).
//!
//! Two checks: ids stored recently by this process (a bounded set), and, for a
//! message the broker marks as redelivered (the `DUP` flag), a query of the
//! store, which also covers a redelivery after a restart. What remains is
//! documented in docs/streams.md.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, Int64Array};
use futures::TryStreamExt;
use quarry_engine::QueryEngine;

/// How many recent (dataset, id) pairs each source remembers.
pub const RECENT_IDS: usize = 100_000;

/// A bounded set of recent (dataset, id) pairs, oldest forgotten first.
#[derive(Debug, Default)]
struct RecentIds {
    set: HashSet<(String, String)>,
    order: VecDeque<(String, String)>,
}

impl RecentIds {
    fn contains(&self, key: &(String, String)) -> bool {
        self.set.contains(key)
    }

    fn insert(&mut self, key: (String, String)) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > RECENT_IDS
                && let Some(oldest) = self.order.pop_front()
            {
                self.set.remove(&oldest);
            }
        }
    }
}

/// One source's duplicate check.
pub struct Dedupe {
    field: String,
    environment: String,
    engine: Arc<QueryEngine>,
    recent: RecentIds,
}

impl Dedupe {
    /// Recognises messages by `field` of their JSON event, in `environment`.
    pub fn new(field: String, environment: String, engine: Arc<QueryEngine>) -> Dedupe {
        Dedupe {
            field,
            environment,
            engine,
            recent: RecentIds::default(),
        }
    }

    /// The field holding a message's id.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Whether message `id` is stored in `dataset` already. `redelivered`
    /// (the broker says it sent this message before) also asks the store.
    pub async fn seen(&self, dataset: &str, id: &str, redelivered: bool) -> bool {
        let key = (dataset.to_owned(), id.to_owned());
        if self.recent.contains(&key) {
            return true;
        }
        redelivered && self.stored(dataset, id).await
    }

    /// Remembers that message `id` is stored in `dataset`.
    pub fn remember(&mut self, dataset: &str, id: &str) {
        self.recent.insert((dataset.to_owned(), id.to_owned()));
    }

    /// Whether a row of `dataset` has this id (a missing dataset or column: no).
    async fn stored(&self, dataset: &str, id: &str) -> bool {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} WHERE CAST({} AS VARCHAR) = {}",
            quote_identifier(dataset),
            quote_identifier(&self.field),
            quote_literal(id)
        );
        let Ok(stream) = self.engine.sql(&self.environment, &sql).await else {
            return false;
        };
        let Ok(batches) = stream.try_collect::<Vec<_>>().await else {
            return false;
        };
        batches.iter().any(|batch| {
            batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .is_some_and(|counts| !counts.is_empty() && counts.value(0) > 0)
        })
    }
}

/// `name` as an SQL identifier (quotes doubled).
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal (quotes doubled).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest_beyond_the_bound() {
        let mut recent = RecentIds::default();
        for n in 0..=RECENT_IDS {
            recent.insert(("d".into(), n.to_string()));
        }
        assert!(!recent.contains(&("d".into(), "0".into())));
        assert!(recent.contains(&("d".into(), "1".into())));
        assert!(recent.contains(&("d".into(), RECENT_IDS.to_string())));
        assert_eq!(recent.set.len(), RECENT_IDS);
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
