//! The BubbleUp request: the base query (time range and simple filters) and the
//! selection, turned into DataFusion expressions.
//!
//! Filters and calculated fields compile with the query-spec compiler
//! ([`crate::spec`]), so every filter op of a query works here too. Other
//! query-spec fields (calculations, breakdowns, ...) are accepted and ignored.

use std::collections::BTreeMap;

use datafusion::common::{DFSchema, ScalarValue, TableReference};
use datafusion::logical_expr::{Expr, lit};
use datafusion::prelude::{DataFrame, SessionContext};
use quarry_schema::{TIMESTAMP, TIMESTAMP_TZ};
use serde::Deserialize;
use serde_json::Value;

use super::analyze::{BubbleUpOptions, BubbleUpResult, bubbleup};
use super::columns::column;
pub use crate::spec::Filter;
use crate::spec::{CalculatedField, Columns, MAX_LIST_LEN, filters_predicate, validate_filters};
use quarry_engine::panic_guard::catch_panics;
use quarry_engine::{QueryEngine, QueryError};

/// Nanoseconds per second.
const NANOS_PER_SECOND: f64 = 1e9;

/// `POST /api/v1/bubbleup/{dataset}` body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BubbleUpRequest {
    /// The base query: which rows are compared at all.
    #[serde(default)]
    pub query: BaseQuery,
    /// The rows singled out (may also be given as `query.selection`).
    pub selection: Option<Selection>,
}

/// The base query's fields BubbleUp uses (Honeycomb query-spec names).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BaseQuery {
    /// Seconds: with `start_time` the range after it, with `end_time` the range
    /// before it, alone the range before now.
    pub time_range: Option<f64>,
    /// Epoch seconds or RFC 3339; inclusive.
    pub start_time: Option<TimeValue>,
    /// Epoch seconds or RFC 3339; exclusive.
    pub end_time: Option<TimeValue>,
    /// Filters, combined by `filter_combination`.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// `AND` (default) or `OR`.
    pub filter_combination: Option<String>,
    /// Calculated fields usable in the filters.
    #[serde(default)]
    pub calculated_fields: Vec<CalculatedField>,
    /// The selection, when not given at the top level.
    pub selection: Option<Selection>,
}

/// A time as epoch seconds or an RFC 3339 string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TimeValue {
    /// Seconds since the epoch.
    Seconds(f64),
    /// RFC 3339.
    Text(String),
}

/// The selection: a box (column value range and/or time range) or one group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Column the value range applies to.
    pub column: Option<String>,
    /// Smallest selected value (inclusive).
    pub min: Option<f64>,
    /// Largest selected value (inclusive).
    pub max: Option<f64>,
    /// Selected time from (inclusive).
    pub start_time: Option<TimeValue>,
    /// Selected time until (exclusive).
    pub end_time: Option<TimeValue>,
    /// A group: every column equal to its value (null = missing).
    pub group: Option<BTreeMap<String, Value>>,
}

fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::InvalidQuery(message.into())
}

/// Nanoseconds since the epoch of `value`.
fn time_ns(value: &TimeValue, field: &str) -> Result<i64, QueryError> {
    match value {
        TimeValue::Seconds(seconds) if seconds.is_finite() => {
            Ok((seconds * NANOS_PER_SECOND).round() as i64)
        }
        TimeValue::Seconds(_) => Err(invalid(format!("{field} must be a finite number"))),
        TimeValue::Text(text) => chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .and_then(|time| time.timestamp_nanos_opt())
            .ok_or_else(|| {
                invalid(format!(
                    "{field}: {text:?} is not RFC 3339 or epoch seconds"
                ))
            }),
    }
}

fn time_literal(nanos: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(
        Some(nanos),
        Some(TIMESTAMP_TZ.into()),
    ))
}

/// `start <= timestamp < end` for the bounds given.
fn time_bounds(start: Option<i64>, end: Option<i64>) -> Option<Expr> {
    let lower = start.map(|ns| column(TIMESTAMP).gt_eq(time_literal(ns)));
    let upper = end.map(|ns| column(TIMESTAMP).lt(time_literal(ns)));
    match (lower, upper) {
        (Some(lower), Some(upper)) => Some(lower.and(upper)),
        (one, other) => one.or(other),
    }
}

/// A JSON operand as a literal.
fn literal(value: &Value, field: &str) -> Result<Expr, QueryError> {
    match value {
        Value::String(text) => Ok(lit(text.as_str())),
        Value::Bool(flag) => Ok(lit(*flag)),
        Value::Number(number) => match number.as_i64() {
            Some(int) => Ok(lit(int)),
            None => number
                .as_f64()
                .map(lit)
                .ok_or_else(|| invalid(format!("{field}: number out of range"))),
        },
        _ => Err(invalid(format!("{field} must be a string, number or bool"))),
    }
}

impl BaseQuery {
    /// The time range as `(start, end)` nanoseconds; `now_ns` anchors a lone range.
    pub fn time_range_ns(&self, now_ns: i64) -> Result<(Option<i64>, Option<i64>), QueryError> {
        let start = self
            .start_time
            .as_ref()
            .map(|t| time_ns(t, "query.start_time"))
            .transpose()?;
        let end = self
            .end_time
            .as_ref()
            .map(|t| time_ns(t, "query.end_time"))
            .transpose()?;
        let range = match self.time_range {
            Some(seconds) if seconds.is_finite() && seconds > 0.0 => {
                Some((seconds * NANOS_PER_SECOND).round() as i64)
            }
            Some(_) => return Err(invalid("query.time_range must be a positive number")),
            None => None,
        };
        Ok(match (start, end, range) {
            (Some(start), None, Some(range)) => (Some(start), Some(start.saturating_add(range))),
            (None, Some(end), Some(range)) => (Some(end.saturating_sub(range)), Some(end)),
            (None, None, Some(range)) => (Some(now_ns.saturating_sub(range)), Some(now_ns)),
            (start, end, _) => (start, end),
        })
    }

    /// The dataset's columns and the query's calculated fields, by name.
    pub fn columns<'a>(&self, schema: &'a DFSchema) -> Result<Columns<'a>, QueryError> {
        let fields: Vec<(String, String)> = self
            .calculated_fields
            .iter()
            .map(|field| (field.name.clone(), field.expression.clone()))
            .collect();
        Ok(Columns::new(schema, &fields).map_err(|error| {
            crate::spec::SpecError::new(format!("query.{}", error.field), error.message)
        })?)
    }

    /// The filter of the base rows (time range and filters) over `schema`, if any.
    pub fn base_filter(&self, schema: &DFSchema, now_ns: i64) -> Result<Option<Expr>, QueryError> {
        let (start, end) = self.time_range_ns(now_ns)?;
        let (filters, combine_or) = validate_filters(
            &self.filters,
            self.filter_combination.as_deref(),
            "query.filters",
            "query.filter_combination",
        )?;
        let columns = self.columns(schema)?;
        let combined = filters_predicate(&filters, combine_or, &columns)?;
        Ok(match (time_bounds(start, end), combined) {
            (Some(time), Some(filters)) => Some(time.and(filters)),
            (one, other) => one.or(other),
        })
    }
}

impl Selection {
    /// The selection predicate over dataset columns only.
    pub fn predicate(&self) -> Result<Expr, QueryError> {
        self.predicate_with(|_| None)
    }

    /// The selection predicate; `calculated` gives the expression of a group
    /// name that is a calculated field of the base query (so a group of a
    /// breakdown by a calculated field, such as an SLI, can be selected).
    pub fn predicate_with(
        &self,
        calculated: impl Fn(&str) -> Option<Expr>,
    ) -> Result<Expr, QueryError> {
        let boxed = self.column.is_some()
            || self.min.is_some()
            || self.max.is_some()
            || self.start_time.is_some()
            || self.end_time.is_some();
        if let Some(group) = &self.group {
            if boxed {
                return Err(invalid("selection: give either group or a box, not both"));
            }
            // One value per breakdown, as many as a spec may have; the bound also
            // keeps the conjunction of the values shallow.
            if group.len() > MAX_LIST_LEN {
                return Err(invalid(format!(
                    "selection.group: at most {MAX_LIST_LEN} columns, got {}",
                    group.len()
                )));
            }
            let mut parts = Vec::new();
            for (name, value) in group {
                let target = calculated(name).unwrap_or_else(|| column(name));
                parts.push(match value {
                    Value::Null => target.is_null(),
                    value => target.eq(literal(value, &format!("selection.group.{name}"))?),
                });
            }
            return parts
                .into_iter()
                .reduce(Expr::and)
                .ok_or_else(|| invalid("selection.group names no column"));
        }
        let mut parts = Vec::new();
        if self.min.is_some() || self.max.is_some() {
            let Some(name) = &self.column else {
                return Err(invalid("selection.column is required with min/max"));
            };
            if let Some(min) = self.min {
                parts.push(column(name).gt_eq(lit(min)));
            }
            if let Some(max) = self.max {
                parts.push(column(name).lt_eq(lit(max)));
            }
        }
        let start = self
            .start_time
            .as_ref()
            .map(|t| time_ns(t, "selection.start_time"))
            .transpose()?;
        let end = self
            .end_time
            .as_ref()
            .map(|t| time_ns(t, "selection.end_time"))
            .transpose()?;
        parts.extend(time_bounds(start, end));
        parts
            .into_iter()
            .reduce(Expr::and)
            .ok_or_else(|| invalid("selection needs min/max of a column, a time range, or a group"))
    }
}

/// The expression of a name that is a calculated field (not a dataset column).
fn calculated_fields_of<'c>(columns: &'c Columns<'_>) -> impl Fn(&str) -> Option<Expr> + 'c {
    move |name| {
        if columns.is_plain_column(name) {
            return None;
        }
        columns.resolve(name, "selection.group").ok()
    }
}

/// The base rows of `request` over `dataset` (or `__all__`) and its selection.
pub async fn plan_request(
    context: &SessionContext,
    dataset: &str,
    request: &BubbleUpRequest,
    now_ns: i64,
) -> Result<(DataFrame, Expr), QueryError> {
    let selection = request
        .selection
        .as_ref()
        .or(request.query.selection.as_ref())
        .ok_or_else(|| invalid("selection is required"))?;
    // A malformed selection is refused before the dataset is looked up.
    selection.predicate()?;
    let reference = TableReference::bare(dataset);
    if !context.table_exist(reference.clone())? {
        return Err(QueryError::DatasetNotFound(dataset.to_owned()));
    }
    let mut base = context.table(reference).await?;
    let schema = base.schema().clone();
    if let Some(filter) = request.query.base_filter(&schema, now_ns)? {
        base = base.filter(filter)?;
    }
    let columns = request.query.columns(&schema)?;
    let predicate = selection.predicate_with(calculated_fields_of(&columns))?;
    Ok((base, predicate))
}

/// Runs BubbleUp for `request` over `dataset` of environment `env`.
pub async fn run_bubbleup(
    engine: &QueryEngine,
    env: &str,
    dataset: &str,
    request: &BubbleUpRequest,
    options: &BubbleUpOptions,
) -> Result<BubbleUpResult, QueryError> {
    // A panic while planning or running fails this query only.
    catch_panics(run_bubbleup_unguarded(
        engine, env, dataset, request, options,
    ))
    .await
}

async fn run_bubbleup_unguarded(
    engine: &QueryEngine,
    env: &str,
    dataset: &str,
    request: &BubbleUpRequest,
    options: &BubbleUpOptions,
) -> Result<BubbleUpResult, QueryError> {
    let context = engine.session(env)?;
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let (base, selection) = plan_request(&context, dataset, request, now_ns).await?;
    bubbleup(base, selection, options).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn selection(value: Value) -> Selection {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn time_ranges_follow_the_query_spec() {
        let query: BaseQuery =
            serde_json::from_value(json!({"start_time": 100, "time_range": 50})).unwrap();
        assert_eq!(
            query.time_range_ns(0).unwrap(),
            (Some(100_000_000_000), Some(150_000_000_000))
        );
        let query: BaseQuery = serde_json::from_value(json!({"time_range": 10})).unwrap();
        assert_eq!(
            query.time_range_ns(20_000_000_000).unwrap(),
            (Some(10_000_000_000), Some(20_000_000_000))
        );
        let query: BaseQuery =
            serde_json::from_value(json!({"end_time": "1970-01-01T00:00:10Z"})).unwrap();
        assert_eq!(
            query.time_range_ns(0).unwrap(),
            (None, Some(10_000_000_000))
        );
        let query: BaseQuery = serde_json::from_value(json!({"time_range": -1})).unwrap();
        assert!(query.time_range_ns(0).is_err());
    }

    #[test]
    fn filters_compile_and_bad_ones_name_their_field() {
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = DFSchema::try_from(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Int64, true),
            Field::new("c", DataType::Utf8, true),
        ]))
        .unwrap();
        let query: BaseQuery = serde_json::from_value(json!({
            "filters": [
                {"column": "a", "op": "=", "value": "x"},
                {"column": "b", "op": "in", "value": [1, 2]},
                {"column": "c", "op": "exists"},
                {"column": "c", "op": "contains", "value": "z"}
            ],
            "calculations": [{"op": "COUNT"}]
        }))
        .unwrap();
        let text = query.base_filter(&schema, 0).unwrap().unwrap().to_string();
        assert!(text.contains("a = Utf8(\"x\")"), "{text}");
        assert!(text.contains("b IN ([Int64(1), Int64(2)])"), "{text}");
        assert!(text.contains("c IS NOT NULL"), "{text}");
        assert!(text.contains("contains"), "{text}");

        let bad: BaseQuery = serde_json::from_value(json!({
            "filters": [{"column": "a", "op": "like", "value": "x"}]
        }))
        .unwrap();
        let error = bad.base_filter(&schema, 0).unwrap_err().to_string();
        assert!(error.starts_with("query.filters[0].op"), "{error}");
    }

    #[test]
    fn selections_are_a_box_or_a_group() {
        let boxed = selection(json!({"column": "duration_ms", "min": 100, "start_time": 5}))
            .predicate()
            .unwrap()
            .to_string();
        assert!(boxed.contains("duration_ms >= Float64(100)"), "{boxed}");
        assert!(boxed.contains("timestamp >="), "{boxed}");
        let group = selection(json!({"group": {"region": "eu", "flag": null}}))
            .predicate()
            .unwrap()
            .to_string();
        assert!(group.contains("flag IS NULL"), "{group}");
        assert!(group.contains("region = Utf8(\"eu\")"), "{group}");
        assert!(selection(json!({"min": 1})).predicate().is_err());
        assert!(selection(json!({})).predicate().is_err());
        assert!(
            selection(json!({"group": {"a": 1}, "column": "b", "min": 1}))
                .predicate()
                .is_err()
        );
        assert!(serde_json::from_value::<Selection>(json!({"colum": "x"})).is_err());
    }

    #[test]
    fn a_group_may_name_a_calculated_field_of_the_base_query() {
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = DFSchema::try_from(Schema::new(vec![
            Field::new("status", DataType::Int64, true),
            Field::new("region", DataType::Utf8, true),
        ]))
        .unwrap();
        let query: BaseQuery = serde_json::from_value(json!({
            "calculated_fields": [{"name": "ok", "expression": "LT($status, 500)"}]
        }))
        .unwrap();
        let columns = query.columns(&schema).unwrap();
        let group = selection(json!({"group": {"ok": false, "region": "eu"}}))
            .predicate_with(calculated_fields_of(&columns))
            .unwrap()
            .to_string();
        assert!(
            group.contains("quarry_lt(status, Int64(500)) = Boolean(false)"),
            "{group}"
        );
        assert!(group.contains("region = Utf8(\"eu\")"), "{group}");
        assert!(!group.contains("ok ="), "{group}");
    }
}
