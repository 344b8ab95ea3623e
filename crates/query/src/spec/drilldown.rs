//! Drill-down: the raw events behind a group or a heatmap cell, newest first,
//! a page at a time.
//!
//! The rows are the query's (time range, filters, calculated fields), narrowed to
//! the group (each breakdown equal to its value; null = missing) and the cell
//! (`min <= column <= max`, `start_time <= timestamp < end_time`). Pages are cut
//! by a keyset cursor `<timestamp ns>:<rows already returned at that timestamp>`,
//! so new events arriving between pages do not shift them.

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion::logical_expr::{Expr, cast, lit};
use quarry_schema::TIMESTAMP;
use quarry_schema::fields::SPAN_ID;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ts_rs::TS;

use super::columns::{Columns, column};
use super::error::SpecError;
use super::filters::{filter_predicate, filters_predicate, time_literal, time_predicate};
use super::json::{json_values, rfc3339};
use super::model::{QuerySpec, TimeValue};
use super::ops::FilterOp;
use super::plan::base_table;
use super::validate::{MAX_LIST_LEN, Operand, ValidFilter, ValidSpec, time_ns};
use quarry_engine::panic_guard::catch_panics;
use quarry_engine::{QueryEngine, QueryError};

/// Events per page when the request gives no limit.
pub const DEFAULT_EVENTS_PER_PAGE: usize = 100;
/// Most events per page.
pub const MAX_EVENTS_PER_PAGE: usize = 1000;

/// `POST /api/v1/query/{dataset}/events` body.
#[derive(Debug, Clone, Default, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(optional_fields = nullable)]
pub struct DrillDownRequest {
    /// The query whose rows are drilled into.
    #[serde(default)]
    #[ts(as = "Option<QuerySpec>")]
    pub query: QuerySpec,
    /// Breakdown column -> value of one group.
    #[serde(default)]
    #[ts(
        optional,
        type = "Record<string, string | number | boolean | null> | null"
    )]
    pub group: Option<Map<String, Value>>,
    /// One heatmap cell (or any value box).
    #[serde(default)]
    pub cell: Option<Cell>,
    /// Events per page.
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A value range of a column and a time range.
#[derive(Debug, Clone, Default, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(optional_fields = nullable)]
pub struct Cell {
    /// The column.
    pub column: Option<String>,
    /// Smallest value, inclusive.
    pub min: Option<f64>,
    /// Largest value, inclusive.
    pub max: Option<f64>,
    /// Start, inclusive.
    pub start_time: Option<TimeValue>,
    /// End, exclusive.
    pub end_time: Option<TimeValue>,
}

/// One page of events.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct EventsPage {
    /// Newest first.
    pub events: Vec<Event>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One raw event.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct Event {
    /// Event time, RFC 3339.
    pub timestamp: String,
    /// Every field the event has (missing fields are left out).
    pub fields: Map<String, Value>,
}

impl DrillDownRequest {
    /// Parses a request; errors name the field's JSON path.
    pub fn from_json(body: &[u8]) -> Result<DrillDownRequest, SpecError> {
        let mut reader = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut reader).map_err(|error| {
            let field = error.path().to_string();
            let field = if field == "." { String::new() } else { field };
            SpecError::new(field, error.into_inner().to_string())
        })
    }
}

fn prefixed(error: SpecError) -> SpecError {
    let field = if error.field.is_empty() {
        "query".to_owned()
    } else if error.field.starts_with("group") || error.field.starts_with("cell") {
        error.field
    } else {
        format!("query.{}", error.field)
    };
    SpecError::new(field, error.message)
}

/// `(timestamp ns, rows already returned at it)`.
fn parse_cursor(cursor: &str) -> Result<(i64, usize), SpecError> {
    cursor
        .split_once(':')
        .and_then(|(t, n)| Some((t.parse().ok()?, n.parse().ok()?)))
        .ok_or_else(|| SpecError::new("cursor", "is not a cursor this server gave out"))
}

fn group_predicate(group: &Map<String, Value>, columns: &Columns) -> Result<Vec<Expr>, SpecError> {
    // One value per breakdown, and a spec has at most MAX_LIST_LEN breakdowns; the
    // bound also keeps the conjunction of the values shallow.
    if group.len() > MAX_LIST_LEN {
        return Err(SpecError::new(
            "group",
            format!("at most {MAX_LIST_LEN} columns, got {}", group.len()),
        ));
    }
    group
        .iter()
        .map(|(name, value)| {
            let field = format!("group.{name}");
            let (op, value) = match value {
                Value::Null => (FilterOp::DoesNotExist, Operand::None),
                other => (FilterOp::Eq, Operand::Scalar(other.clone())),
            };
            let filter = ValidFilter {
                column: name.clone(),
                op,
                value,
                field: field.clone(),
            };
            // `=` also matches nothing missing; errors name `group.<name>`.
            filter_predicate(&filter, columns).map_err(|e| SpecError::new(field.clone(), e.message))
        })
        .collect()
}

fn cell_predicate(cell: &Cell, columns: &Columns) -> Result<Vec<Expr>, SpecError> {
    let mut parts = Vec::new();
    if cell.min.is_some() || cell.max.is_some() {
        let Some(name) = &cell.column else {
            return Err(SpecError::new("cell.column", "is required with min or max"));
        };
        let value = cast(columns.resolve(name, "cell.column")?, DataType::Float64);
        if let Some(min) = cell.min {
            parts.push(value.clone().gt_eq(lit(min)));
        }
        if let Some(max) = cell.max {
            parts.push(value.lt_eq(lit(max)));
        }
    }
    if let Some(start) = &cell.start_time {
        parts.push(column(TIMESTAMP).gt_eq(time_literal(time_ns(start, "cell.start_time")?)));
    }
    if let Some(end) = &cell.end_time {
        parts.push(column(TIMESTAMP).lt(time_literal(time_ns(end, "cell.end_time")?)));
    }
    Ok(parts)
}

/// One page of the events behind `request` over `dataset` of `env`.
pub async fn drill_down(
    engine: &QueryEngine,
    env: &str,
    dataset: &str,
    request: &DrillDownRequest,
    now_ns: i64,
) -> Result<EventsPage, QueryError> {
    // A panic while planning or running fails this query only.
    catch_panics(drill_down_unguarded(engine, env, dataset, request, now_ns)).await
}

async fn drill_down_unguarded(
    engine: &QueryEngine,
    env: &str,
    dataset: &str,
    request: &DrillDownRequest,
    now_ns: i64,
) -> Result<EventsPage, QueryError> {
    let spec = ValidSpec::new(&request.query, now_ns).map_err(prefixed)?;
    let limit = match request.limit {
        None => DEFAULT_EVENTS_PER_PAGE,
        Some(n) if (1..=MAX_EVENTS_PER_PAGE).contains(&n) => n,
        Some(_) => {
            return Err(
                SpecError::new("limit", format!("must be 1 to {MAX_EVENTS_PER_PAGE}")).into(),
            );
        }
    };
    let cursor = request.cursor.as_deref().map(parse_cursor).transpose()?;
    let context = engine.session(env)?;
    let table = base_table(&context, dataset).await?;
    let schema = table.schema().clone();
    let columns = Columns::new(&schema, &spec.calculated_fields).map_err(prefixed)?;
    let mut parts = vec![time_predicate(spec.start_ns, spec.end_ns)];
    parts.extend(filters_predicate(&spec.filters, spec.combine_or, &columns).map_err(prefixed)?);
    if let Some(group) = &request.group {
        parts.extend(group_predicate(group, &columns)?);
    }
    if let Some(cell) = &request.cell {
        parts.extend(cell_predicate(cell, &columns)?);
    }
    let (skip, page_end) = match cursor {
        Some((time, skip)) => {
            parts.push(column(TIMESTAMP).lt_eq(time_literal(time)));
            (skip, Some(time))
        }
        None => (0, None),
    };
    let mut order = vec![column(TIMESTAMP).sort(false, false)];
    if schema.has_column_with_unqualified_name(SPAN_ID) {
        order.push(column(SPAN_ID).sort(true, false));
    }
    let predicate = parts.into_iter().reduce(Expr::and).unwrap_or(lit(true));
    // One row more than the page tells whether there is a next page.
    let batches = table
        .filter(predicate)?
        .sort(order)?
        .limit(skip, Some(limit + 1))?
        .collect()
        .await?;
    let mut events = events_of(&batches)?;
    let more = events.len() > limit;
    events.truncate(limit);
    let next_cursor = match events.last() {
        Some(last) if more => {
            let time = last.1;
            let at_time = events.iter().filter(|(_, t)| *t == time).count();
            // Rows at the cursor's time returned by earlier pages count too.
            let before = if page_end == Some(time) { skip } else { 0 };
            Some(format!("{time}:{}", before + at_time))
        }
        _ => None,
    };
    Ok(EventsPage {
        events: events.into_iter().map(|(event, _)| event).collect(),
        next_cursor,
    })
}

/// Events and their timestamps (ns).
fn events_of(batches: &[RecordBatch]) -> Result<Vec<(Event, i64)>, QueryError> {
    let mut out = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let mut columns = Vec::with_capacity(batch.num_columns());
        let mut times = Vec::new();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            if field.name() == TIMESTAMP {
                let nanos = arrow::compute::cast(array, &DataType::Int64)?;
                times = json_values(&nanos)?;
            } else {
                columns.push((field.name().clone(), json_values(array)?));
            }
        }
        for row in 0..batch.num_rows() {
            let nanos = times.get(row).and_then(Value::as_i64).unwrap_or(0);
            let fields = columns
                .iter()
                .filter(|(_, values)| !values[row].is_null())
                .map(|(name, values)| (name.clone(), values[row].clone()))
                .collect();
            out.push((
                Event {
                    timestamp: rfc3339(nanos),
                    fields,
                },
                nanos,
            ));
        }
    }
    Ok(out)
}
