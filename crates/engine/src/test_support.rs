//! Hand-built datasets for tests (this crate's, and through the `test-support`
//! feature those of the crates above it): Parquet segments written the way the store
//! writes them (sorted by time, page statistics, bloom filters) into an in-memory
//! object store, and snapshots naming them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::compute;
use arrow::datatypes::{Float64Type, Int64Type, TimestampNanosecondType};
use bytes::Bytes;
use datafusion::physical_plan::common::collect as collect_stream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::Mutex;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::ParquetMetaDataReader;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use quarry_schema::{DatasetSchema, FieldType, TIMESTAMP};
use quarry_segment_store::{
    BloomFilterLocation, ColumnStats, DatasetSnapshot, SegmentMeta, StatValue,
};

use crate::{DatasetSource, QueryConfig, QueryEngine};

/// Distinct values a test bloom filter is sized for.
const BLOOM_TEST_NDV: u64 = 64;
/// False-positive rate of test bloom filters.
const BLOOM_TEST_FPP: f64 = 0.0001;

/// Datasets kept in memory, segments in an in-memory object store.
pub struct TestSource {
    store: Arc<dyn ObjectStore>,
    snapshots: Mutex<HashMap<(String, String), DatasetSnapshot>>,
}

impl TestSource {
    pub fn new() -> Arc<Self> {
        Arc::new(TestSource {
            store: Arc::new(InMemory::new()),
            snapshots: Mutex::new(HashMap::new()),
        })
    }

    /// Sets dataset `name` of `env` to `segments` plus `buffer`, with the union schema.
    pub fn put(
        &self,
        env: &str,
        name: &str,
        schema: DatasetSchema,
        segments: Vec<SegmentMeta>,
        buffer: Vec<RecordBatch>,
    ) {
        let snapshot = DatasetSnapshot {
            schema,
            segments: segments.into_iter().map(Arc::new).collect(),
            buffer,
            sealed_seq_by_node: Default::default(),
        };
        self.snapshots
            .lock()
            .insert((env.to_owned(), name.to_owned()), snapshot);
    }

    /// Writes `batch` as a segment at `path`, with bloom filters on `bloom_columns`
    /// and at most `row_group_rows` rows per row group.
    pub async fn write_segment(
        &self,
        path: &str,
        batch: &RecordBatch,
        bloom_columns: &[&str],
        row_group_rows: usize,
    ) -> SegmentMeta {
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(row_group_rows));
        for column in bloom_columns {
            // Sized for a handful of values at a negligible false-positive rate, so
            // tests asserting on pruning are deterministic.
            properties = properties
                .set_column_bloom_filter_enabled(ColumnPath::from(*column), true)
                .set_column_bloom_filter_max_ndv(ColumnPath::from(*column), BLOOM_TEST_NDV)
                .set_column_bloom_filter_fpp(ColumnPath::from(*column), BLOOM_TEST_FPP);
        }
        let mut writer =
            ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties.build())).unwrap();
        writer.write(batch).unwrap();
        let bytes = Bytes::from(writer.into_inner().unwrap());
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap();
        let mut bloom_filters = Vec::new();
        for (row_group, group) in metadata.row_groups().iter().enumerate() {
            for (index, field) in batch.schema().fields().iter().enumerate() {
                let chunk = group.column(index);
                if let (Some(offset), Some(length)) =
                    (chunk.bloom_filter_offset(), chunk.bloom_filter_length())
                {
                    bloom_filters.push(BloomFilterLocation {
                        column: field.name().clone(),
                        row_group,
                        offset: offset as u64,
                        length: length as u64,
                    });
                }
            }
        }
        let size_bytes = bytes.len() as u64;
        self.store
            .put(&Path::from(path), PutPayload::from_bytes(bytes))
            .await
            .unwrap();
        let times = batch
            .column_by_name(TIMESTAMP)
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        SegmentMeta {
            path: path.to_owned(),
            size_bytes,
            rows: batch.num_rows() as u64,
            min_time_ns: compute::min(times).unwrap(),
            max_time_ns: compute::max(times).unwrap(),
            partition_start_ns: 0,
            created_at_ns: 1,
            columns: batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(field, column)| column_stats(field.name(), column))
                .collect(),
            bloom_filters,
        }
    }
}

/// Exact manifest statistics of one column.
fn column_stats(name: &str, column: &ArrayRef) -> ColumnStats {
    let field_type = FieldType::from_data_type(column.data_type()).unwrap();
    let (min, max) = match field_type {
        FieldType::Int => {
            let ints = column.as_primitive::<Int64Type>();
            (
                compute::min(ints).map(StatValue::Int),
                compute::max(ints).map(StatValue::Int),
            )
        }
        FieldType::Timestamp => {
            let times = column.as_primitive::<TimestampNanosecondType>();
            (
                compute::min(times).map(StatValue::Int),
                compute::max(times).map(StatValue::Int),
            )
        }
        FieldType::Float => {
            let floats = column.as_primitive::<Float64Type>();
            (
                compute::min(floats).map(StatValue::Float),
                compute::max(floats).map(StatValue::Float),
            )
        }
        FieldType::Bool => {
            let flags = column.as_boolean();
            (
                compute::min_boolean(flags).map(StatValue::Bool),
                compute::max_boolean(flags).map(StatValue::Bool),
            )
        }
        FieldType::String => {
            let texts = column.as_string::<i32>();
            (
                compute::min_string(texts).map(|text| StatValue::String(text.to_owned())),
                compute::max_string(texts).map(|text| StatValue::String(text.to_owned())),
            )
        }
    };
    ColumnStats {
        name: name.to_owned(),
        field_type,
        null_count: column.null_count() as u64,
        min,
        max,
    }
}

impl DatasetSource for TestSource {
    fn snapshot(&self, env: &str, dataset: &str) -> Option<DatasetSnapshot> {
        self.snapshots
            .lock()
            .get(&(env.to_owned(), dataset.to_owned()))
            .cloned()
    }

    fn datasets(&self, env: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .snapshots
            .lock()
            .keys()
            .filter(|(e, _)| e == env)
            .map(|(_, name)| name.clone())
            .collect();
        names.sort();
        names
    }

    fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }
}

/// An engine over `source` with small, fixed parallelism.
pub fn engine(source: &Arc<TestSource>) -> QueryEngine {
    let config = QueryConfig {
        target_partitions: 2,
        ..QueryConfig::default()
    };
    QueryEngine::with_source(Arc::clone(source) as Arc<dyn DatasetSource>, config).unwrap()
}

/// Runs `sql` in `env` and collects every batch.
pub async fn query(engine: &QueryEngine, env: &str, sql: &str) -> Vec<RecordBatch> {
    let stream = engine
        .sql(env, sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    collect_stream(stream).await.unwrap()
}

/// The single Int64 value of a one-row, one-column result.
pub fn single_int(batches: &[RecordBatch]) -> i64 {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 1, "expected one row");
    let batch = batches.iter().find(|batch| batch.num_rows() == 1).unwrap();
    batch.column(0).as_primitive::<Int64Type>().value(0)
}

/// A batch from named columns, nullable as in a dataset schema (all but `timestamp`).
pub fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter_with_nullable(
        columns
            .into_iter()
            .map(|(name, column)| (name, column, name != TIMESTAMP)),
    )
    .unwrap()
}

/// A `timestamp` column (ns, UTC).
pub fn times(nanos: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(nanos).with_timezone(quarry_schema::TIMESTAMP_TZ))
}

/// An Int64 column.
pub fn ints(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(values))
}

/// A Float64 column.
pub fn floats(values: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(values))
}

/// A Utf8 column.
pub fn strings(values: Vec<Option<&str>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

/// A Boolean column.
pub fn bools(values: Vec<Option<bool>>) -> ArrayRef {
    Arc::new(BooleanArray::from(values))
}

/// A dataset schema with `columns` after `timestamp`.
pub fn schema(columns: &[(&str, FieldType)]) -> DatasetSchema {
    let mut schema = DatasetSchema::default();
    for (name, field_type) in columns {
        schema.insert(name, *field_type);
    }
    schema
}
