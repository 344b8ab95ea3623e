//! Helpers shared by the store's maintenance tests.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use object_store::ObjectStoreExt;
use object_store::local::LocalFileSystem;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{MeasureOp, RollupDefinition, RollupMeasure, Store, StoreConfig};

pub const HOUR_NS: i64 = 3_600_000_000_000;
pub const MINUTE_NS: i64 = 60_000_000_000;

/// A store under `dir` (WAL in `dir/wal`, objects in `dir/objects`) with no
/// background compaction or retention unless `configure` turns them on.
pub async fn open_store(dir: &Path, configure: impl FnOnce(&mut StoreConfig)) -> Arc<Store> {
    let objects = dir.join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    let mut config = StoreConfig::new(dir.join("wal"));
    config.seal_max_age = std::time::Duration::from_secs(3600);
    config.compaction.enabled = false;
    config.compaction.deletion_delay = std::time::Duration::ZERO;
    configure(&mut config);
    Store::open(
        config,
        Arc::new(LocalFileSystem::new_with_prefix(objects).unwrap()),
    )
    .await
    .unwrap()
}

/// Rows with ids `ids`, at `time_ns(id)`, each with a trace id `t<id>`.
pub fn rows(ids: std::ops::Range<i64>, time_ns: impl Fn(i64) -> i64) -> RecordBatch {
    let ids: Vec<i64> = ids.collect();
    let times: ArrayRef = Arc::new(
        TimestampNanosecondArray::from(ids.iter().map(|id| time_ns(*id)).collect::<Vec<_>>())
            .with_timezone("UTC"),
    );
    let traces: ArrayRef = Arc::new(StringArray::from(
        ids.iter().map(|id| format!("t{id}")).collect::<Vec<_>>(),
    ));
    let ids: ArrayRef = Arc::new(Int64Array::from(ids));
    RecordBatch::try_from_iter(vec![
        ("timestamp", times),
        ("id", ids),
        (quarry_schema::TRACE_ID, traces),
    ])
    .unwrap()
}

/// Every row of a segment file, in file order.
pub async fn read_segment(store: &Store, path: &str) -> Vec<RecordBatch> {
    let bytes = store
        .object_store()
        .get(&object_store::path::Path::from(path))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Whether the object exists in the local object store under `dir`.
pub fn exists(dir: &Path, path: &str) -> bool {
    dir.join("objects").join(path).exists()
}

/// A rollup named `r` counting rows per minute, without dimensions.
pub fn count_rollup() -> RollupDefinition {
    RollupDefinition {
        name: "r".into(),
        granularity: 60,
        dimensions: vec![],
        measures: vec![RollupMeasure {
            op: MeasureOp::Count,
            column: None,
        }],
        filters: vec![],
    }
}
