//! Retention: dropping whole sealed segments whose newest row is older than their
//! dataset's maximum age.
//!
//! A segment goes as a whole (never rewritten), in one manifest transaction with
//! the rollup segments computed from it: rollup data does not outlive the raw data
//! it was computed from, so a query answered from a rollup and the same query over
//! raw rows keep agreeing. Buffered rows are not touched; once sealed, old rows go
//! at the next pass.

use std::sync::Arc;

use serde::Serialize;

use crate::{Result, SegmentMeta, Store};

/// What one retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// Raw segments dropped.
    pub segments_dropped: u64,
    /// Their rows and file bytes.
    pub rows_dropped: u64,
    pub bytes_dropped: u64,
    /// Rollup segment files dropped with them.
    pub rollup_files_dropped: u64,
}

/// The segments whose newest row is older than `cutoff_ns`.
pub(crate) fn expired(segments: &[Arc<SegmentMeta>], cutoff_ns: i64) -> Vec<Arc<SegmentMeta>> {
    segments
        .iter()
        .filter(|segment| segment.max_time_ns < cutoff_ns)
        .cloned()
        .collect()
}

impl Store {
    /// Drops, as of `now_ns`, every segment older than its dataset's maximum age
    /// (one manifest transaction per dataset), then deletes their files.
    pub async fn enforce_retention(&self, now_ns: i64) -> Result<RetentionReport> {
        let _one_at_a_time = self.inner.maintenance_lock.lock().await;
        self.inner.require_lease().await?;
        self.follow_manifest().await?;
        let retention = &self.inner.config.retention;
        let mut report = RetentionReport::default();
        for key in self.dataset_keys() {
            let Some(max_age) = retention.max_age_for(&key.1) else {
                continue;
            };
            let max_age_ns = i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX);
            let cutoff_ns = now_ns.saturating_sub(max_age_ns);
            let Some(snapshot) = self.snapshot(&key.0, &key.1) else {
                continue;
            };
            let dropped = expired(&snapshot.segments, cutoff_ns);
            if dropped.is_empty() {
                continue;
            }
            // `None` only if the dataset changed under us (passes are serialized, so
            // not by compaction); the next pass looks again.
            let Some(replaced) = self.replace_segments(&key, &dropped, Vec::new()).await? else {
                continue;
            };
            let rows: u64 = dropped.iter().map(|segment| segment.rows).sum();
            let bytes: u64 = dropped.iter().map(|segment| segment.size_bytes).sum();
            report.segments_dropped += dropped.len() as u64;
            report.rows_dropped += rows;
            report.bytes_dropped += bytes;
            report.rollup_files_dropped += replaced.rollup_files.len() as u64;
            let metrics = &self.inner.metrics;
            metrics.segments_expired.inc_by(dropped.len() as u64);
            metrics.rows_expired.inc_by(rows);
            metrics.bytes_expired.inc_by(bytes);
            tracing::info!(env = %key.0, dataset = %key.1, segments = dropped.len(), rows, "retention dropped expired segments");
            let obsolete: Vec<String> = dropped
                .iter()
                .map(|segment| segment.path.clone())
                .chain(replaced.rollup_files.into_iter().map(|file| file.path))
                .collect();
            self.retire_files(obsolete).await;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{HOUR_NS, MINUTE_NS, count_rollup, exists, open_store, rows};
    use crate::{PutRollupMode, PutRollupOutcome, StoreConfig};
    use std::time::Duration;

    fn two_hours_and_keep_forever(config: &mut StoreConfig) {
        config.retention.max_age = Some(Duration::from_secs(2 * 3600));
        config.retention.dataset_max_age.insert("keep".into(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_drops_only_old_segments_with_their_rollup_segments() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path(), two_hours_and_keep_forever).await;
        // Hours 1, 2 and 3, each up to minute 20, in two datasets.
        for dataset in ["a", "keep"] {
            for hour in 1..=3i64 {
                store
                    .append(
                        "default",
                        dataset,
                        rows(hour * 10..hour * 10 + 10, |id| {
                            hour * HOUR_NS + (id % 10) * 2 * MINUTE_NS
                        }),
                    )
                    .await
                    .unwrap();
            }
        }
        store.seal_all().await.unwrap();
        let PutRollupOutcome::Created(rollup) = store
            .put_rollup("default", "a", count_rollup(), PutRollupMode::Create)
            .await
            .unwrap()
        else {
            panic!("not created")
        };
        let segments = store.snapshot("default", "a").unwrap().segments;
        for segment in &segments {
            assert!(
                store
                    .add_rollup_segment(
                        "default",
                        "a",
                        &rollup.id,
                        vec![segment.path.clone()],
                        Some(rows(0..1, |_| segment.min_time_ns)),
                        segment.partition_start_ns,
                    )
                    .await
                    .unwrap()
            );
        }
        let by_hour = |hour: i64| {
            segments
                .iter()
                .find(|s| s.partition_start_ns == hour * HOUR_NS)
                .unwrap()
                .clone()
        };

        // At 4:30 the cutoff is 2:30: hours 1 and 2 (newest rows at :18) expire.
        let report = store
            .enforce_retention(4 * HOUR_NS + 30 * MINUTE_NS)
            .await
            .unwrap();
        assert_eq!(
            report,
            RetentionReport {
                segments_dropped: 2,
                rows_dropped: 20,
                bytes_dropped: by_hour(1).size_bytes + by_hour(2).size_bytes,
                rollup_files_dropped: 2,
            }
        );
        let (kept, set) = store.rollup_snapshot("default", "a").unwrap();
        assert_eq!(kept.segments, vec![by_hour(3)]);
        let covered: Vec<&str> = set.rollups[0].covered().into_iter().collect();
        assert_eq!(covered, vec![by_hour(3).path.as_str()]);
        assert!(!exists(dir.path(), &by_hour(1).path));
        assert!(!exists(dir.path(), &by_hour(2).path));
        assert!(exists(dir.path(), &by_hour(3).path));
        assert_eq!(
            store.snapshot("default", "keep").unwrap().segments.len(),
            3,
            "a dataset kept forever is untouched"
        );
        assert_eq!(store.metrics().segments_expired.get(), 2);
        assert_eq!(store.metrics().rollup_segments_removed.get(), 2);
        // Nothing more to drop at the same time.
        assert_eq!(
            store
                .enforce_retention(4 * HOUR_NS + 30 * MINUTE_NS)
                .await
                .unwrap(),
            RetentionReport::default()
        );

        store.shutdown().await.unwrap();
        drop(store);
        let reopened = open_store(dir.path(), two_hours_and_keep_forever).await;
        let (replayed, set_after) = reopened.rollup_snapshot("default", "a").unwrap();
        assert_eq!(replayed.segments, kept.segments);
        assert_eq!(set_after, set);
    }

    #[test]
    fn per_dataset_ages_override_the_default() {
        let mut config = StoreConfig::new("wal");
        assert!(!config.retention.is_enabled());
        two_hours_and_keep_forever(&mut config);
        config
            .retention
            .dataset_max_age
            .insert("short".into(), Some(Duration::from_secs(60)));
        assert_eq!(
            config.retention.max_age_for("other"),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(config.retention.max_age_for("keep"), None);
        assert_eq!(
            config.retention.max_age_for("short"),
            Some(Duration::from_secs(60))
        );
    }
}
