//! Reading the facts rules test from a trace's buffered span rows: one row of a
//! held Arrow batch per span (or span event, link, log).

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, TimestampNanosecondType};
use quarry_schema::fields::{
    ANNOTATION_TYPE, DURATION_MS, ERROR, PARENT_ID, SIGNAL_LOG, SIGNAL_TYPE, STATUS_CODE, TRACE_ID,
};

/// OTLP's `STATUS_CODE_ERROR`.
const STATUS_CODE_ERROR: i64 = 2;

/// One row of a trace: its dataset and where it is held.
#[derive(Debug, Clone, Copy)]
pub struct SpanRow<'a> {
    pub dataset: &'a str,
    pub batch: &'a RecordBatch,
    pub row: usize,
}

/// A field's value in one row.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'a str),
}

impl FieldValue<'_> {
    /// The value as a number, for numeric comparisons.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::Int(v) => Some(*v as f64),
            FieldValue::Float(v) => Some(*v),
            FieldValue::Bool(_) | FieldValue::Text(_) => None,
        }
    }

    /// The value as text (for keys and text comparisons).
    pub fn to_text(&self) -> String {
        match self {
            FieldValue::Bool(v) => v.to_string(),
            FieldValue::Int(v) => v.to_string(),
            FieldValue::Float(v) => v.to_string(),
            FieldValue::Text(v) => (*v).to_owned(),
        }
    }
}

fn column<'a>(batch: &'a RecordBatch, field: &str) -> Option<&'a ArrayRef> {
    batch.column_by_name(field)
}

/// The value of `field` in `row` of `batch` (none when absent or null).
pub fn value_of<'a>(batch: &'a RecordBatch, row: usize, field: &str) -> Option<FieldValue<'a>> {
    let column = column(batch, field)?;
    if column.is_null(row) {
        return None;
    }
    match column.data_type() {
        DataType::Boolean => column
            .as_any()
            .downcast_ref::<BooleanArray>()
            .map(|a| FieldValue::Bool(a.value(row))),
        DataType::Int64 => column
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| FieldValue::Int(a.value(row))),
        DataType::Float64 => column
            .as_any()
            .downcast_ref::<Float64Array>()
            .map(|a| FieldValue::Float(a.value(row))),
        DataType::Utf8 => column
            .as_any()
            .downcast_ref::<StringArray>()
            .map(|a| FieldValue::Text(a.value(row))),
        DataType::Timestamp(..) => column
            .as_primitive_opt::<TimestampNanosecondType>()
            .map(|a| FieldValue::Int(a.value(row))),
        _ => None,
    }
}

/// The text of `field` in `row`, when it is a non-empty string.
pub fn text_of<'a>(batch: &'a RecordBatch, row: usize, field: &str) -> Option<&'a str> {
    match value_of(batch, row, field)? {
        FieldValue::Text(text) if !text.is_empty() => Some(text),
        _ => None,
    }
}

/// Whether the row is a root span: a span (not a span event or link, which name
/// their span as parent, nor a log) without a parent.
pub fn is_root(batch: &RecordBatch, row: usize) -> bool {
    text_of(batch, row, PARENT_ID).is_none()
        && value_of(batch, row, ANNOTATION_TYPE).is_none()
        && text_of(batch, row, SIGNAL_TYPE) != Some(SIGNAL_LOG)
}

/// Whether the row is an error: `error` = true or an error status code.
pub fn is_error(batch: &RecordBatch, row: usize) -> bool {
    value_of(batch, row, ERROR) == Some(FieldValue::Bool(true))
        || value_of(batch, row, STATUS_CODE) == Some(FieldValue::Int(STATUS_CODE_ERROR))
}

/// The row's `duration_ms`.
pub fn duration_ms(batch: &RecordBatch, row: usize) -> Option<f64> {
    value_of(batch, row, DURATION_MS)?.as_f64()
}

/// The row that speaks for the trace: its root span, else its first row.
pub fn representative<'a>(spans: &[SpanRow<'a>]) -> Option<SpanRow<'a>> {
    spans
        .iter()
        .find(|span| is_root(span.batch, span.row))
        .or_else(|| spans.first())
        .copied()
}

/// The trace id column of a batch, when it has one.
pub fn trace_ids(batch: &RecordBatch) -> Option<&StringArray> {
    batch
        .column_by_name(TRACE_ID)
        .and_then(|column| column.as_any().downcast_ref::<StringArray>())
}

/// The trace id of a row, when it has a non-empty one.
pub fn trace_id_of(ids: &StringArray, row: usize) -> Option<&str> {
    (!ids.is_null(row) && !ids.value(row).is_empty()).then(|| ids.value(row))
}
