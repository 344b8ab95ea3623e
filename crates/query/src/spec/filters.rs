//! Filters compiled to DataFusion predicates.
//!
//! Operands are converted to the column's type where that is lossless (`"200"`
//! against an int column is 200, `200` against a string column is `"200"`);
//! otherwise the filter is rejected naming its `value`. String ops read any column
//! as text. The negative ops (`!=`, `does-not-*`, `not-in`) also match events
//! without the column, as Honeycomb's do.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::{contains, ends_with, starts_with};
use datafusion::logical_expr::{Expr, cast, lit, not};
use quarry_schema::{TIMESTAMP, TIMESTAMP_TZ};
use serde_json::Value;

use super::columns::{Columns, column, value_type};
use super::error::SpecError;
use super::model::TimeValue;
use super::ops::FilterOp;
use super::validate::{NANOS_PER_SECOND, Operand, ValidFilter, time_ns};

/// The predicate of `filters` combined with AND (or OR); `None` when there are none.
pub fn filters_predicate(
    filters: &[ValidFilter],
    combine_or: bool,
    columns: &Columns,
) -> Result<Option<Expr>, SpecError> {
    let parts = filters
        .iter()
        .map(|filter| filter_predicate(filter, columns))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(parts
        .into_iter()
        .reduce(|a, b| if combine_or { a.or(b) } else { a.and(b) }))
}

/// A timestamp literal of the `timestamp` column's type.
pub fn time_literal(nanos: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(
        Some(nanos),
        Some(TIMESTAMP_TZ.into()),
    ))
}

/// `start <= timestamp < end`.
pub fn time_predicate(start_ns: i64, end_ns: i64) -> Expr {
    column(TIMESTAMP)
        .gt_eq(time_literal(start_ns))
        .and(column(TIMESTAMP).lt(time_literal(end_ns)))
}

/// The predicate of one filter.
pub fn filter_predicate(filter: &ValidFilter, columns: &Columns) -> Result<Expr, SpecError> {
    let target = columns.resolve(&filter.column, &format!("{}.column", filter.field))?;
    let data_type = columns.data_type(&target, &format!("{}.column", filter.field))?;
    let value_field = format!("{}.value", filter.field);
    let scalar = || match &filter.value {
        Operand::Scalar(value) => Ok(value),
        _ => Err(SpecError::new(&value_field, "needs a value")),
    };
    let text = || -> Result<Expr, SpecError> {
        match scalar()? {
            Value::String(text) => Ok(lit(text.as_str())),
            _ => Err(SpecError::new(&value_field, "needs a string")),
        }
    };
    let as_text = cast(target.clone(), DataType::Utf8);
    let positive = match filter.op {
        FilterOp::Exists => return Ok(target.is_not_null()),
        FilterOp::DoesNotExist => return Ok(target.is_null()),
        FilterOp::Eq | FilterOp::NotEq => {
            target
                .clone()
                .eq(typed_literal(&data_type, scalar()?, &value_field)?)
        }
        FilterOp::Gt => target
            .clone()
            .gt(typed_literal(&data_type, scalar()?, &value_field)?),
        FilterOp::GtEq => target
            .clone()
            .gt_eq(typed_literal(&data_type, scalar()?, &value_field)?),
        FilterOp::Lt => target
            .clone()
            .lt(typed_literal(&data_type, scalar()?, &value_field)?),
        FilterOp::LtEq => target
            .clone()
            .lt_eq(typed_literal(&data_type, scalar()?, &value_field)?),
        FilterOp::StartsWith | FilterOp::DoesNotStartWith => starts_with(as_text, text()?),
        FilterOp::EndsWith | FilterOp::DoesNotEndWith => ends_with(as_text, text()?),
        FilterOp::Contains | FilterOp::DoesNotContain => contains(as_text, text()?),
        FilterOp::In | FilterOp::NotIn => {
            let Operand::List(items) = &filter.value else {
                return Err(SpecError::new(&value_field, "needs an array"));
            };
            let list = items
                .iter()
                .enumerate()
                .map(|(i, item)| typed_literal(&data_type, item, &format!("{value_field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            target.clone().in_list(list, false)
        }
    };
    Ok(if filter.op.matches_missing() {
        // NOT(x) is null where x is; a missing value matches a negative op.
        target.is_null().or(not(positive))
    } else {
        positive
    })
}

fn mismatch(field: &str, value: &Value, data_type: &DataType) -> SpecError {
    SpecError::new(
        field,
        format!("{value} cannot be compared with a column of type {data_type}"),
    )
}

/// `value` as a literal of the column's type, when that is lossless.
fn typed_literal(data_type: &DataType, value: &Value, field: &str) -> Result<Expr, SpecError> {
    let data_type = value_type(data_type);
    let bad = || mismatch(field, value, data_type);
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64 => number_literal(value).ok_or_else(bad),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(lit(match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            _ => return Err(bad()),
        })),
        DataType::Boolean => match value {
            Value::Bool(flag) => Ok(lit(*flag)),
            Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(lit(true)),
            Value::String(text) if text.eq_ignore_ascii_case("false") => Ok(lit(false)),
            _ => Err(bad()),
        },
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            let time = match value {
                Value::Number(number) => number.as_f64().map(TimeValue::Seconds),
                Value::String(text) => Some(TimeValue::Text(text.clone())),
                _ => None,
            }
            .ok_or_else(bad)?;
            Ok(time_literal(time_ns(&time, field)?))
        }
        // Dynamic types (a calculated field of mixed kinds): let DataFusion coerce.
        _ => match value {
            Value::String(text) => Ok(lit(text.as_str())),
            Value::Bool(flag) => Ok(lit(*flag)),
            other => number_literal(other).ok_or_else(bad),
        },
    }
}

fn number_literal(value: &Value) -> Option<Expr> {
    match value {
        Value::Number(number) => match number.as_i64() {
            Some(int) => Some(lit(int)),
            None => number.as_f64().map(lit),
        },
        Value::String(text) => {
            let text = text.trim();
            if let Ok(int) = text.parse::<i64>() {
                Some(lit(int))
            } else {
                text.parse::<f64>().ok().filter(|f| f.is_finite()).map(lit)
            }
        }
        _ => None,
    }
}

/// Nanoseconds of a whole number of seconds.
pub fn seconds_to_ns(seconds: i64) -> i64 {
    seconds.saturating_mul(NANOS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::model::Filter;
    use crate::spec::validate::validate_filters;
    use arrow::datatypes::{Field, Schema};
    use datafusion::common::DFSchema;
    use serde_json::json;

    fn schema() -> DFSchema {
        DFSchema::try_from(Schema::new(vec![
            Field::new("status", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("ok", DataType::Boolean, true),
        ]))
        .unwrap()
    }

    fn compile(filter: serde_json::Value) -> Result<String, SpecError> {
        let schema = schema();
        let columns = Columns::new(&schema, &[])?;
        let filter: Filter = serde_json::from_value(filter).unwrap();
        let (filters, _) = validate_filters(&[filter], None, "filters", "filter_combination")?;
        filter_predicate(&filters[0], &columns).map(|e| e.to_string())
    }

    #[test]
    fn operands_take_the_column_type() {
        assert_eq!(
            compile(json!({"column": "status", "op": "=", "value": "200"})).unwrap(),
            "status = Int64(200)"
        );
        assert_eq!(
            compile(json!({"column": "name", "op": ">=", "value": 3})).unwrap(),
            "name >= Utf8(\"3\")"
        );
        assert_eq!(
            compile(json!({"column": "ok", "op": "=", "value": "true"})).unwrap(),
            "ok = Boolean(true)"
        );
        let error =
            compile(json!({"column": "status", "op": "in", "value": [1, "x"]})).unwrap_err();
        assert_eq!(error.field, "filters[0].value[1]");
        let error = compile(json!({"column": "ok", "op": "=", "value": 3})).unwrap_err();
        assert_eq!(error.field, "filters[0].value");
        let error = compile(json!({"column": "nope", "op": "exists"})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "filters[0].column: unknown column \"nope\""
        );
    }

    #[test]
    fn negative_ops_match_missing_values() {
        let text =
            compile(json!({"column": "name", "op": "does-not-contain", "value": "x"})).unwrap();
        assert!(text.starts_with("name IS NULL OR NOT"), "{text}");
        let text = compile(json!({"column": "status", "op": "not-in", "value": [1, 2]})).unwrap();
        assert!(text.contains("IS NULL OR status NOT IN"), "{text}");
        let text = compile(json!({"column": "name", "op": "starts-with", "value": "a"})).unwrap();
        assert!(text.contains("starts_with"), "{text}");
        assert_eq!(
            compile(json!({"column": "name", "op": "exists"})).unwrap(),
            "name IS NOT NULL"
        );
    }
}
