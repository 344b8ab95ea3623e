//! Turning sealed buffer batches into Parquet segments, one per time partition.
//!
//! Rows are sorted by `timestamp` (declared in the footer as the sort order), the
//! timestamp column is delta-encoded, everything is zstd-compressed, statistics are
//! kept per page (so DataFusion can use the page index), and `trace.trace_id` plus
//! any configured column gets a bloom filter whose byte range the manifest records.
//! A column that is null in every row of a partition is left out of its segment:
//! readers fill it with nulls from the dataset schema.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, new_null_array};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::{Field, Int64Type, Schema, TimestampNanosecondType};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{ParquetMetaData, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use quarry_schema::fields::{PARENT_ID, SPAN_ID};
use quarry_schema::{DatasetSchema, FieldType, TIMESTAMP, TRACE_ID};

use crate::{BloomFilterLocation, ColumnStats, Result, SegmentMeta, StatValue, StoreError};

/// zstd level for segments: sealing runs in the background, so spend a little
/// more CPU than the default (1) for smaller files.
const ZSTD_LEVEL: i32 = 3;
/// Bloom filter false-positive rate.
const BLOOM_FPP: f64 = 0.01;
/// Longest string statistic kept; longer minimums are cut to this prefix (still a
/// lower bound) and longer maximums are dropped (a prefix would not bound them).
const MAX_STRING_STAT_BYTES: usize = 64;

/// How segments are cut and encoded.
#[derive(Debug, Clone)]
pub struct SegmentSettings {
    pub partition_width_ns: i64,
    pub row_group_rows: usize,
    pub bloom_filter_columns: Vec<String>,
}

/// A segment ready to upload: its bytes and its manifest record.
pub struct SegmentFile {
    pub meta: SegmentMeta,
    pub bytes: Bytes,
}

/// Builds the segments of `batches`, placing files under `dir` (an object path).
pub fn build_segments(
    batches: &[RecordBatch],
    schema: &DatasetSchema,
    settings: &SegmentSettings,
    dir: &str,
    now_ns: i64,
) -> Result<Vec<SegmentFile>> {
    let Some(sorted) = concat_sorted(batches, schema)? else {
        return Ok(Vec::new());
    };
    let times = sorted
        .column_by_name(TIMESTAMP)
        .and_then(|column| column.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| StoreError::Manifest("sealed rows have no timestamp column".into()))?
        .clone();
    let width = settings.partition_width_ns.max(1);
    let mut segments = Vec::new();
    let mut start = 0;
    while start < times.len() {
        let partition = times.value(start).div_euclid(width);
        let mut end = start;
        while end < times.len() && times.value(end).div_euclid(width) == partition {
            end += 1;
        }
        let rows = drop_all_null_columns(&sorted.slice(start, end - start))?;
        segments.push(write_segment(
            &rows,
            settings,
            dir,
            partition * width,
            now_ns,
        )?);
        start = end;
    }
    Ok(segments)
}

/// Builds one rollup segment from rollup rows (any column types; `timestamp` is
/// the bucket start): sorted by time, all-null columns left out, no bloom filters.
pub fn build_rollup_segment(
    rows: &RecordBatch,
    row_group_rows: usize,
    dir: &str,
    partition_start_ns: i64,
    now_ns: i64,
) -> Result<SegmentFile> {
    let times = rows
        .column_by_name(TIMESTAMP)
        .ok_or_else(|| StoreError::Manifest("rollup rows have no timestamp column".into()))?;
    let order = sort_to_indices(times, None, None)?;
    let sorted = drop_all_null_columns(&take_record_batch(rows, &order)?)?;
    let settings = SegmentSettings {
        partition_width_ns: 0,
        row_group_rows,
        bloom_filter_columns: Vec::new(),
    };
    write_segment(&sorted, &settings, dir, partition_start_ns, now_ns)
}

/// Concatenates batches over the union of their columns (in dataset order) and
/// sorts the rows by time.
fn concat_sorted(batches: &[RecordBatch], schema: &DatasetSchema) -> Result<Option<RecordBatch>> {
    let fields: Vec<Field> = schema
        .columns()
        .filter(|(name, _)| {
            batches
                .iter()
                .any(|batch| batch.column_by_name(name).is_some())
        })
        .map(|(name, field_type)| Field::new(name, field_type.data_type(), name != TIMESTAMP))
        .collect();
    let segment_schema = Arc::new(Schema::new(fields));
    let padded = batches
        .iter()
        .filter(|batch| batch.num_rows() > 0)
        .map(|batch| {
            let columns = segment_schema
                .fields()
                .iter()
                .map(|field| {
                    batch
                        .column_by_name(field.name())
                        .cloned()
                        .unwrap_or_else(|| new_null_array(field.data_type(), batch.num_rows()))
                })
                .collect();
            RecordBatch::try_new(segment_schema.clone(), columns)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if padded.is_empty() {
        return Ok(None);
    }
    let all = concat_batches(&segment_schema, &padded)?;
    let times = all
        .column_by_name(TIMESTAMP)
        .ok_or_else(|| StoreError::Manifest("sealed rows have no timestamp column".into()))?;
    let order = sort_to_indices(times, None, None)?;
    Ok(Some(take_record_batch(&all, &order)?))
}

fn drop_all_null_columns(batch: &RecordBatch) -> Result<RecordBatch> {
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|&index| {
            batch.schema().field(index).name() == TIMESTAMP
                || batch.column(index).null_count() < batch.num_rows()
        })
        .collect();
    Ok(batch.project(&keep)?)
}

fn write_segment(
    rows: &RecordBatch,
    settings: &SegmentSettings,
    dir: &str,
    partition_start_ns: i64,
    now_ns: i64,
) -> Result<SegmentFile> {
    let schema = rows.schema();
    let bloom_columns: Vec<&str> = schema
        .fields()
        .iter()
        .map(|field| field.name().as_str())
        .filter(|name| *name == TRACE_ID || settings.bloom_filter_columns.iter().any(|c| c == name))
        .collect();
    let properties = writer_properties(rows, settings, &bloom_columns)?;
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, schema.clone(), Some(properties))?;
    writer.write(rows)?;
    let metadata = writer.close()?;
    let bytes = Bytes::from(buffer);
    let times = rows
        .column_by_name(TIMESTAMP)
        .and_then(|column| column.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| StoreError::Manifest("segment has no timestamp column".into()))?;
    let meta = SegmentMeta {
        path: format!(
            "{dir}/{}/{}.parquet",
            partition_start_ns.div_euclid(1_000_000_000),
            uuid::Uuid::now_v7()
        ),
        size_bytes: bytes.len() as u64,
        rows: rows.num_rows() as u64,
        min_time_ns: times.values().first().copied().unwrap_or_default(),
        max_time_ns: times.values().last().copied().unwrap_or_default(),
        partition_start_ns,
        created_at_ns: now_ns,
        columns: column_stats(rows),
        bloom_filters: bloom_locations(&metadata, &bloom_columns),
    };
    Ok(SegmentFile { meta, bytes })
}

/// Rows per data page at most (ClickHouse's granule). With the page index, a
/// lookup of a few rows by time (a spec's exemplars, a trace's spans) decodes a
/// few pages of this size instead of the library's 20,000-row pages.
const DATA_PAGE_ROWS: usize = 8192;

/// Bytes of an id column's data page at most (about a thousand ids; pages are
/// cut between the writer's batches of 1,024 rows).
const ID_PAGE_BYTES: usize = 32 << 10;

/// Columns of random identifiers (OpenTelemetry's trace, span and parent ids).
const RANDOM_ID_COLUMNS: &[&str] = &[TRACE_ID, SPAN_ID, PARENT_ID];

fn writer_properties(
    rows: &RecordBatch,
    settings: &SegmentSettings,
    bloom_columns: &[&str],
) -> Result<WriterProperties> {
    let timestamp_index = rows
        .schema()
        .index_of(TIMESTAMP)
        .map_err(|_| StoreError::Manifest("segment has no timestamp column".into()))?;
    let timestamp_path = ColumnPath::new(vec![TIMESTAMP.to_owned()]);
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(settings.row_group_rows.max(1)))
        .set_data_page_row_count_limit(DATA_PAGE_ROWS)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: timestamp_index as i32,
            descending: false,
            nulls_first: false,
        }]))
        .set_column_dictionary_enabled(timestamp_path.clone(), false)
        .set_column_encoding(timestamp_path, Encoding::DELTA_BINARY_PACKED);
    // Random ids repeat little within a segment: their dictionary page (up to
    // a megabyte) gained little and had to be read and decoded whole by any
    // lookup of a few rows (a trace, a spec's exemplars). Small pages, for the
    // same lookups: random text compresses no better in large ones.
    for column in RANDOM_ID_COLUMNS {
        if rows.schema().index_of(column).is_ok() {
            let path = ColumnPath::new(vec![(*column).to_owned()]);
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_data_page_size_limit(path, ID_PAGE_BYTES);
        }
    }
    // Sized for this segment's rows rather than the library default of a million
    // distinct values, so small segments get small filters.
    let ndv = rows.num_rows().min(settings.row_group_rows.max(1)) as u64;
    for column in bloom_columns {
        let path = ColumnPath::new(vec![(*column).to_owned()]);
        builder = builder
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_fpp(path.clone(), BLOOM_FPP)
            .set_column_bloom_filter_max_ndv(path, ndv.max(1));
    }
    Ok(builder.build())
}

fn bloom_locations(metadata: &ParquetMetaData, bloom_columns: &[&str]) -> Vec<BloomFilterLocation> {
    let mut locations = Vec::new();
    for (row_group, group) in metadata.row_groups().iter().enumerate() {
        for chunk in group.columns() {
            let name = chunk.column_path().string();
            if !bloom_columns.contains(&name.as_str()) {
                continue;
            }
            if let (Some(offset), Some(length)) =
                (chunk.bloom_filter_offset(), chunk.bloom_filter_length())
            {
                locations.push(BloomFilterLocation {
                    column: name,
                    row_group,
                    offset: offset as u64,
                    length: length as u64,
                });
            }
        }
    }
    locations
}

/// Per-column statistics computed from the rows themselves.
fn column_stats(rows: &RecordBatch) -> Vec<ColumnStats> {
    rows.schema()
        .fields()
        .iter()
        .zip(rows.columns())
        .filter_map(|(field, column)| {
            let field_type = FieldType::from_data_type(field.data_type())?;
            let (min, max) = min_max(field_type, column);
            Some(ColumnStats {
                name: field.name().clone(),
                field_type,
                null_count: column.null_count() as u64,
                min,
                max,
            })
        })
        .collect()
}

fn min_max(field_type: FieldType, column: &ArrayRef) -> (Option<StatValue>, Option<StatValue>) {
    use arrow::compute::{max, max_boolean, max_string, min, min_boolean, min_string};
    match field_type {
        FieldType::Bool => {
            let values = column.as_boolean();
            (
                min_boolean(values).map(StatValue::Bool),
                max_boolean(values).map(StatValue::Bool),
            )
        }
        FieldType::Int => {
            let values = column.as_primitive::<Int64Type>();
            (
                min(values).map(StatValue::Int),
                max(values).map(StatValue::Int),
            )
        }
        FieldType::Timestamp => {
            let values = column.as_primitive::<TimestampNanosecondType>();
            (
                min(values).map(StatValue::Int),
                max(values).map(StatValue::Int),
            )
        }
        FieldType::Float => {
            let values = column.as_primitive::<arrow::datatypes::Float64Type>();
            // NaN has no place in min/max pruning; leave such columns unbounded.
            if values.iter().flatten().any(f64::is_nan) {
                return (None, None);
            }
            (
                min(values).map(StatValue::Float),
                max(values).map(StatValue::Float),
            )
        }
        FieldType::String => {
            let values = column.as_string::<i32>();
            let min = min_string(values).map(|value| StatValue::String(prefix(value).to_owned()));
            let max = max_string(values)
                .filter(|value| value.len() <= MAX_STRING_STAT_BYTES)
                .map(|value| StatValue::String(value.to_owned()));
            (min, max)
        }
    }
}

fn prefix(value: &str) -> &str {
    if value.len() <= MAX_STRING_STAT_BYTES {
        return value;
    }
    let mut end = MAX_STRING_STAT_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampNanosecondArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::bloom_filter::Sbbf;

    const HOUR_NS: i64 = 3_600_000_000_000;

    fn batch(
        times: Vec<i64>,
        ids: Vec<Option<&str>>,
        extra: Option<Vec<Option<i64>>>,
    ) -> RecordBatch {
        let mut columns: Vec<(&str, ArrayRef)> = vec![
            (
                TIMESTAMP,
                Arc::new(TimestampNanosecondArray::from(times).with_timezone("UTC")),
            ),
            (TRACE_ID, Arc::new(StringArray::from(ids))),
        ];
        if let Some(extra) = extra {
            columns.push(("n", Arc::new(Int64Array::from(extra))));
        }
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn schema() -> DatasetSchema {
        let mut schema = DatasetSchema::default();
        schema.insert(TRACE_ID, FieldType::String);
        schema.insert("n", FieldType::Int);
        schema
    }

    fn settings() -> SegmentSettings {
        SegmentSettings {
            partition_width_ns: HOUR_NS,
            row_group_rows: 2,
            bloom_filter_columns: vec![],
        }
    }

    #[test]
    fn splits_by_partition_sorts_and_records_stats() {
        let batches = vec![
            batch(
                vec![HOUR_NS + 5, 3, HOUR_NS + 1],
                vec![Some("t3"), Some("t1"), Some("t2")],
                None,
            ),
            batch(vec![1], vec![Some("t0")], Some(vec![Some(7)])),
        ];
        let segments = build_segments(&batches, &schema(), &settings(), "segments/x", 99).unwrap();
        assert_eq!(segments.len(), 2);
        let first = &segments[0].meta;
        assert_eq!(
            (
                first.rows,
                first.min_time_ns,
                first.max_time_ns,
                first.partition_start_ns
            ),
            (2, 1, 3, 0)
        );
        assert_eq!(first.column("n").unwrap().max, Some(StatValue::Int(7)));
        assert_eq!(
            first.column(TRACE_ID).unwrap().min,
            Some(StatValue::String("t0".into()))
        );
        // Partition two never saw `n`: the column is left out of its file.
        let second = &segments[1].meta;
        assert_eq!((second.rows, second.partition_start_ns), (2, HOUR_NS));
        assert!(second.column("n").is_none());
        // The file reads back sorted.
        let reader = ParquetRecordBatchReaderBuilder::try_new(segments[1].bytes.clone())
            .unwrap()
            .build()
            .unwrap();
        let read: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        let times = read[0].column(0).as_primitive::<TimestampNanosecondType>();
        assert_eq!(times.values().to_vec(), vec![HOUR_NS + 1, HOUR_NS + 5]);
    }

    #[test]
    fn bloom_filter_locations_point_at_parseable_filters() {
        let ids: Vec<String> = (0..5).map(|i| format!("trace-{i}")).collect();
        let batches = vec![batch(
            (0..5).collect(),
            ids.iter().map(|id| Some(id.as_str())).collect(),
            None,
        )];
        let segments = build_segments(&batches, &schema(), &settings(), "segments/x", 0).unwrap();
        let segment = &segments[0];
        // Five rows, two per row group: three row groups, three filters.
        assert_eq!(segment.meta.bloom_filters.len(), 3);
        let location = &segment.meta.bloom_filters[0];
        let range = location.offset as usize..(location.offset + location.length) as usize;
        let filter = Sbbf::from_bytes(&segment.bytes[range]).unwrap();
        assert!(filter.check(&"trace-0"));
        assert!(!filter.check(&"trace-4"));
    }

    #[test]
    fn long_strings_keep_a_lower_bound_only() {
        let long = "x".repeat(100);
        let batches = vec![batch(vec![1], vec![Some(long.as_str())], None)];
        let segments = build_segments(&batches, &schema(), &settings(), "d", 0).unwrap();
        let stats = segments[0].meta.column(TRACE_ID).unwrap();
        assert_eq!(stats.min, Some(StatValue::String("x".repeat(64))));
        assert_eq!(stats.max, None);
    }
}
