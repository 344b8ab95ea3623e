//! Reading one trace's rows from `__all__` with a bloom-prunable lookup.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimestampNanosecondType};
use arrow::json::ArrayWriter;
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, cast, lit};
use quarry_schema::{TIMESTAMP, TRACE_ID};
use serde_json::{Map, Value};

use super::tree::{Trace, TraceRow, build_trace};
use quarry_engine::panic_guard::catch_panics;
use quarry_engine::{ALL_DATASETS, QueryEngine, QueryError};

/// Most rows one trace lookup returns; beyond it the trace is marked truncated.
pub const MAX_TRACE_ROWS: usize = 100_000;

/// Every row of trace `trace_id` in environment `env` as a span tree; `None` when
/// no dataset has a row of it.
///
/// The lookup is `"trace.trace_id" = '<id>'` over `__all__`, which each dataset's
/// scan turns into segment pruning by bloom filter (see `segment_pruning`).
pub async fn assemble_trace(
    engine: &QueryEngine,
    env: &str,
    trace_id: &str,
) -> Result<Option<Trace>, QueryError> {
    // A panic while planning or running fails this query only.
    catch_panics(assemble_trace_unguarded(engine, env, trace_id)).await
}

async fn assemble_trace_unguarded(
    engine: &QueryEngine,
    env: &str,
    trace_id: &str,
) -> Result<Option<Trace>, QueryError> {
    let context = engine.session(env)?;
    let frame = context.table(ALL_DATASETS).await?;
    let id_type = frame
        .schema()
        .fields()
        .iter()
        .find(|field| field.name() == TRACE_ID)
        .map(|field| field.data_type().clone());
    let Some(id_type) = id_type else {
        return Ok(None);
    };
    let id_column = Expr::Column(Column::new_unqualified(TRACE_ID));
    // Ids are strings by convention; a dataset that stored them otherwise is still
    // searchable, compared as text (without bloom pruning).
    let id_column = match id_type {
        DataType::Utf8 => id_column,
        _ => cast(id_column, DataType::Utf8),
    };
    let batches = frame
        .filter(id_column.eq(lit(trace_id)))?
        .limit(0, Some(MAX_TRACE_ROWS + 1))?
        .collect()
        .await?;
    let mut rows = Vec::new();
    for batch in &batches {
        rows.extend(trace_rows(batch)?);
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let truncated = rows.len() > MAX_TRACE_ROWS;
    rows.truncate(MAX_TRACE_ROWS);
    Ok(Some(build_trace(trace_id, rows, truncated)))
}

/// The rows of `batch`: event time and every non-null column as JSON.
fn trace_rows(batch: &RecordBatch) -> Result<Vec<TraceRow>, QueryError> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let times = batch
        .column_by_name(TIMESTAMP)
        .and_then(|column| column.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| QueryError::Execution(format!("trace rows lack {TIMESTAMP}")))?;
    let mut writer = ArrayWriter::new(Vec::new());
    writer.write(batch)?;
    writer.finish()?;
    let objects: Vec<Map<String, Value>> = serde_json::from_slice(&writer.into_inner())
        .map_err(|error| QueryError::Execution(format!("trace rows as JSON: {error}")))?;
    Ok(objects
        .into_iter()
        .enumerate()
        .map(|(index, fields)| TraceRow {
            timestamp_ns: times.value(index),
            fields,
        })
        .collect())
}
