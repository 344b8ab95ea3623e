//! Sealing buffers into segments: the background loop and one dataset's seal.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::manifest::Action;
use crate::metrics::observe_since;
use crate::segment_writer::{SegmentSettings, build_segments};
use crate::wal::DatasetKey;
use crate::{Result, SegmentMeta, Store, StoreError, names};

/// How often the sealer looks for buffers past their age limit.
const SEAL_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// Fraction of the memory budget above which the largest buffer is sealed early.
const MEMORY_PRESSURE_FRACTION: f64 = 0.5;

/// The background loop: seals every buffer past a threshold, then waits for a
/// wake-up or the next check. Holds only a weak reference between rounds so a
/// dropped store is not kept alive by its own sealer.
pub async fn run(store: Weak<Store>) {
    loop {
        let Some(strong) = store.upgrade() else {
            return;
        };
        if strong.inner.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        for key in due(&strong) {
            if let Err(error) = seal_dataset(&strong, &key).await {
                tracing::error!(env = %key.0, dataset = %key.1, %error, "sealing failed; rows stay buffered and will be retried");
            }
        }
        let inner = strong.inner.clone();
        drop(strong);
        tokio::select! {
            _ = inner.seal_wakeup.notified() => {}
            _ = tokio::time::sleep(SEAL_CHECK_INTERVAL) => {}
        }
    }
}

/// Datasets whose buffer crossed a row, byte or age threshold, or the largest
/// buffer when all buffers together press on the memory budget.
fn due(store: &Store) -> Vec<DatasetKey> {
    let config = &store.inner.config;
    let datasets: Vec<_> = store
        .inner
        .datasets
        .read()
        .iter()
        .map(|(k, d)| (k.clone(), d.clone()))
        .collect();
    let now_ns = store.inner.now_ns();
    let mut due = Vec::new();
    let mut largest: Option<(usize, DatasetKey)> = None;
    for (key, dataset) in datasets {
        let state = dataset.state.lock();
        if state.buffer.is_empty() {
            continue;
        }
        let max_age_ns = i64::try_from(config.seal_max_age.as_nanos()).unwrap_or(i64::MAX);
        let too_old = state
            .buffer_oldest_ns
            .is_some_and(|oldest| now_ns.saturating_sub(oldest) >= max_age_ns);
        if state.buffer_rows >= config.seal_max_rows
            || state.buffer_bytes >= config.seal_max_bytes
            || too_old
        {
            due.push(key);
        } else if largest
            .as_ref()
            .is_none_or(|(bytes, _)| state.buffer_bytes > *bytes)
        {
            largest = Some((state.buffer_bytes, key));
        }
    }
    let buffered = store.inner.metrics.buffered_bytes.get() as f64;
    if buffered >= config.max_buffered_bytes as f64 * MEMORY_PRESSURE_FRACTION
        && let Some((_, key)) = largest
    {
        due.push(key);
    }
    due
}

/// Seals one dataset's buffer: writes its segments, commits them to the manifest,
/// then releases the rows and the WAL files no longer needed.
pub async fn seal_dataset(store: &Store, key: &DatasetKey) -> Result<()> {
    let inner = &store.inner;
    let _one_seal_at_a_time = inner.seal_lock.lock().await;
    let Some(dataset) = inner.dataset(key) else {
        return Ok(());
    };
    let (batches, max_seq, schema, created_at_ns, last_written_ns) = {
        let mut state = dataset.state.lock();
        let Some((batches, max_seq)) = state.begin_seal() else {
            return Ok(());
        };
        (
            batches,
            max_seq,
            state.schema.clone(),
            state.created_at_ns,
            state.last_written_ns,
        )
    };
    let started = Instant::now();
    let settings = SegmentSettings {
        partition_width_ns: inner.config.partition_width.as_nanos() as i64,
        row_group_rows: inner.config.row_group_rows,
        bloom_filter_columns: inner.config.bloom_filter_columns.clone(),
    };
    let dir = names::segment_dir(&key.0, &key.1);
    let created_ns = inner.now_ns();
    let uploaded: Result<Vec<SegmentMeta>> = async {
        let build_schema = schema.clone();
        let files = tokio::task::spawn_blocking(move || {
            build_segments(&batches, &build_schema, &settings, &dir, created_ns)
        })
        .await
        .map_err(|error| StoreError::Manifest(format!("segment build task failed: {error}")))??;
        for file in &files {
            inner
                .object_store
                .put(
                    &Path::from(file.meta.path.as_str()),
                    PutPayload::from(file.bytes.clone()),
                )
                .await?;
        }
        Ok(files.into_iter().map(|file| file.meta).collect())
    }
    .await;
    // The commit and the hand-over of the rows from `sealing` to `segments` happen
    // under the manifest lock: whoever applies other writers' changes (which takes
    // it too) never sees this seal half done.
    let mut manifest = inner.manifest.lock().await;
    let committed = match uploaded {
        Ok(metas) => inner
            .commit(
                &mut manifest,
                vec![Action::SealSegments {
                    env: key.0.clone(),
                    dataset: key.1.clone(),
                    node: inner.config.node_id.clone(),
                    schema,
                    segments: metas.clone(),
                    sealed_wal_seq: max_seq,
                    created_at_ns,
                    last_written_ns,
                }],
            )
            .await
            .map(|_| metas),
        Err(error) => Err(error),
    };
    let metas = match committed {
        Ok(metas) => metas,
        Err(error) => {
            drop(manifest);
            dataset.state.lock().abort_seal(inner.now_ns());
            return Err(error);
        }
    };
    let rows: u64 = metas.iter().map(|meta| meta.rows).sum();
    inner.metrics.manifest_commits.inc_by(1);
    inner.metrics.segments_written.inc_by(metas.len() as u64);
    inner.metrics.rows_sealed.inc_by(rows);
    observe_since(&inner.metrics.seal_seconds, started);
    if inner.crash_after_seal_commit {
        tracing::error!(
            "{} is set: aborting after the seal commit",
            crate::FAULT_CRASH_AFTER_SEAL_COMMIT
        );
        std::process::abort();
    }
    let segments = metas.into_iter().map(Arc::new).collect();
    let freed = dataset.state.lock().finish_seal(segments, max_seq);
    drop(manifest);
    inner.changed();
    inner.metrics.buffered_bytes.dec_by(freed as u64);
    store.wal.rotate().await?;
    store.delete_sealed_wal_files()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use quarry_schema::ManualClock;

    use super::*;
    use crate::test_support::{HOUR_NS, open_store, rows};

    /// Seal age is measured by the store's clock: moving a manual clock makes a
    /// buffer due without sleeping.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_buffer_is_due_once_old_by_the_store_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000 * HOUR_NS);
        let shared = clock.clone();
        let store = open_store(dir.path(), move |config| {
            config.seal_max_age = Duration::from_secs(60);
            config.clock = shared;
        })
        .await;
        store
            .append("default", "a", rows(0..5, |id| HOUR_NS + id))
            .await
            .unwrap();
        assert!(due(&store).is_empty());
        clock.advance(Duration::from_secs(59));
        assert!(due(&store).is_empty());
        clock.advance(Duration::from_secs(1));
        assert_eq!(due(&store), [("default".to_owned(), "a".to_owned())]);
        store.shutdown().await.unwrap();
    }
}
