//! The query spec as clients send it: Honeycomb's query JSON, field for field.
//!
//! Everything here is plain data; [`super::validate`] checks it and turns the
//! strings (ops, orders) into types. Unknown fields are ignored, as Honeycomb
//! specs carry fields Quarry does not use.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;

use super::error::SpecError;

/// A Honeycomb query spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[ts(optional_fields)]
pub struct QuerySpec {
    /// What to compute per group (default: COUNT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<Calculation>>", optional)]
    pub calculations: Vec<Calculation>,
    /// Which events count at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<Filter>>", optional)]
    pub filters: Vec<Filter>,
    /// `AND` (default) or `OR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(type = "\"AND\" | \"OR\"")]
    pub filter_combination: Option<String>,
    /// Columns (or calculated fields) to group by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>", optional)]
    pub breakdowns: Vec<String>,
    /// How groups are ranked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<Order>>", optional)]
    pub orders: Vec<Order>,
    /// Conditions on a group's calculations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<Having>>", optional)]
    pub havings: Vec<Having>,
    /// Most groups returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Seconds covered; anchored at `start_time`, `end_time` or now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<f64>,
    /// Start (inclusive), epoch seconds or RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<TimeValue>,
    /// End (exclusive), epoch seconds or RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<TimeValue>,
    /// Seconds per time bucket of the series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<f64>,
    /// Named expressions usable as columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<CalculatedField>>", optional)]
    pub calculated_fields: Vec<CalculatedField>,
    /// Unweighted figures (ignore `meta.sample_rate`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>", optional)]
    pub usage_mode: bool,
    /// `"raw"` forces raw rows even where a rollup could answer (docs/rollups.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One calculation: an op and, for all but COUNT and CONCURRENCY, a column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[ts(optional_fields)]
pub struct Calculation {
    /// `COUNT`, `SUM`, `P99`, ...
    pub op: String,
    /// The column it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

/// One filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Filter {
    /// Column (or calculated field) name.
    pub column: String,
    /// `=`, `starts-with`, `in`, ...
    pub op: String,
    /// Operand: absent for `exists` / `does-not-exist`, an array for `in` / `not-in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(
        optional,
        type = "string | number | boolean | null | Array<string | number | boolean | null>"
    )]
    pub value: Option<Value>,
}

/// One order: by a calculation (`op`, `column`) or by a breakdown (`column` only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[ts(optional_fields)]
pub struct Order {
    /// The calculation's op; absent to order by a breakdown column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// The calculation's column, or the breakdown column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `ascending` or `descending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(type = "\"ascending\" | \"descending\"")]
    pub order: Option<String>,
}

/// One having: a condition on a group's calculation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(optional_fields)]
pub struct Having {
    /// The calculation's op.
    pub calculate_op: String,
    /// The calculation's column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `=`, `!=`, `>`, `>=`, `<`, `<=`.
    pub op: String,
    /// The number compared with.
    pub value: f64,
}

/// A named expression (see docs/calculated-fields.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct CalculatedField {
    /// The name it is referred to by.
    pub name: String,
    /// Its expression.
    pub expression: String,
}

/// A time as epoch seconds or an RFC 3339 string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(untagged)]
pub enum TimeValue {
    /// Seconds since the epoch.
    Seconds(f64),
    /// RFC 3339.
    Text(String),
}

impl QuerySpec {
    /// Parses a spec from JSON; a type error names the field's JSON path.
    pub fn from_json(body: &[u8]) -> Result<QuerySpec, SpecError> {
        let mut reader = serde_json::Deserializer::from_slice(body);
        Self::deserialize_named(&mut reader)
    }

    /// Parses a spec from a JSON value; a type error names the field's JSON path.
    pub fn from_value(value: Value) -> Result<QuerySpec, SpecError> {
        Self::deserialize_named(value)
    }

    fn deserialize_named<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<QuerySpec, SpecError>
    where
        D::Error: std::fmt::Display,
    {
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let field = error.path().to_string();
            let field = if field == "." { String::new() } else { field };
            SpecError::new(field, error.into_inner().to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_contract_example_parses() {
        let spec = QuerySpec::from_value(json!({
            "calculations": [{"op": "COUNT"}, {"op": "P99", "column": "duration_ms"}],
            "filters": [{"column": "service.name", "op": "=", "value": "api"},
                        {"column": "error", "op": "exists"}],
            "filter_combination": "AND",
            "breakdowns": ["service.name"],
            "orders": [{"op": "P99", "column": "duration_ms", "order": "descending"}],
            "havings": [{"calculate_op": "COUNT", "op": ">", "value": 10}],
            "limit": 100, "time_range": 7200, "start_time": 1764000000,
            "end_time": "2025-11-24T16:00:00Z", "granularity": 60,
            "calculated_fields": [{"name": "slow", "expression": "GT($duration_ms, 1000)"}],
            "usage_mode": false, "something_else": 1
        }))
        .unwrap();
        assert_eq!(spec.calculations[1].column.as_deref(), Some("duration_ms"));
        assert_eq!(spec.filters[1].value, None);
        assert_eq!(spec.start_time, Some(TimeValue::Seconds(1764000000.0)));
        assert_eq!(
            spec.end_time,
            Some(TimeValue::Text("2025-11-24T16:00:00Z".into()))
        );
        assert_eq!(spec.havings[0].value, 10.0);
    }

    #[test]
    fn type_errors_name_the_field() {
        let error = QuerySpec::from_value(json!({
            "calculations": [{"op": "COUNT"}, {"op": "P99", "column": 7}]
        }))
        .unwrap_err();
        assert_eq!(error.field, "calculations[1].column");
        let error = QuerySpec::from_value(json!({"limit": -1})).unwrap_err();
        assert_eq!(error.field, "limit");
        let error = QuerySpec::from_json(b"{\"filters\": [{\"op\": \"=\"}]}").unwrap_err();
        assert_eq!(error.field, "filters[0]");
        assert!(error.message.contains("column"), "{error}");
        let error = QuerySpec::from_json(b"7").unwrap_err();
        assert_eq!(error.field, "");
    }

    #[test]
    fn an_echoed_spec_omits_what_was_not_given() {
        let spec = QuerySpec::from_value(json!({"calculations": [{"op": "COUNT"}]})).unwrap();
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({"calculations": [{"op": "COUNT"}]})
        );
    }
}
