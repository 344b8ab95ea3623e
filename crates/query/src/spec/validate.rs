//! Checks a [`QuerySpec`] and resolves everything that does not need the data:
//! op names, the time range and granularity, orders and havings against the
//! calculations. Checks against the dataset's columns happen in [`super::columns`].

use serde_json::Value;

use super::error::SpecError;
use super::model::{Filter, QuerySpec, TimeValue};
use super::ops::{CalcOp, Comparison, FilterOp, calc_op_names, filter_op_names};

/// Nanoseconds per second.
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Time range when the spec gives none: two hours.
pub const DEFAULT_TIME_RANGE_SECS: i64 = 2 * 60 * 60;
/// Groups returned when the spec gives no limit.
pub const DEFAULT_LIMIT: usize = 1000;
/// Most groups one query may return.
pub const MAX_LIMIT: usize = 10_000;
/// Most time buckets a series may have.
pub const MAX_TIME_BUCKETS: i64 = 1000;
/// The default granularity gives at most this many buckets.
pub const TARGET_TIME_BUCKETS: i64 = 120;
/// Granularities the default picks from, in seconds ("nice" steps).
const NICE_GRANULARITIES_SECS: [i64; 19] = [
    1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172_800,
    604_800, 2_592_000,
];
/// Most calculations, filters, breakdowns or calculated fields in one spec.
pub const MAX_LIST_LEN: usize = 100;
/// Most values of an `in` / `not-in` filter.
pub const MAX_IN_VALUES: usize = 10_000;

/// A checked calculation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidCalculation {
    /// Its op.
    pub op: CalcOp,
    /// Its column (every op but COUNT and CONCURRENCY has one).
    pub column: Option<String>,
    /// Its name in results: `COUNT`, `CONCURRENCY` or `OP(column)`.
    pub name: String,
}

/// A filter operand, shaped as its op needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `exists` / `does-not-exist`.
    None,
    /// One string, number or bool.
    Scalar(Value),
    /// `in` / `not-in`.
    List(Vec<Value>),
}

/// A checked filter.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidFilter {
    /// Column or calculated field.
    pub column: String,
    /// Op.
    pub op: FilterOp,
    /// Operand.
    pub value: Operand,
    /// JSON path of the filter, for errors found later.
    pub field: String,
}

/// What a group is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKey {
    /// The calculation at this index.
    Calculation(usize),
    /// The breakdown at this index.
    Breakdown(usize),
}

/// A checked order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidOrder {
    /// What is compared.
    pub key: OrderKey,
    /// Largest first.
    pub descending: bool,
}

/// A checked having.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidHaving {
    /// Index of the calculation it tests.
    pub calculation: usize,
    /// Comparison.
    pub op: Comparison,
    /// Compared with.
    pub value: f64,
}

/// A spec that passed every check that does not need the data.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec {
    /// Calculations (COUNT when the spec has none).
    pub calculations: Vec<ValidCalculation>,
    /// Filters.
    pub filters: Vec<ValidFilter>,
    /// OR instead of AND.
    pub combine_or: bool,
    /// Breakdown columns.
    pub breakdowns: Vec<String>,
    /// Orders (the first calculation, descending, when the spec has none).
    pub orders: Vec<ValidOrder>,
    /// Havings.
    pub havings: Vec<ValidHaving>,
    /// Most groups.
    pub limit: usize,
    /// Start, inclusive, nanoseconds since the epoch.
    pub start_ns: i64,
    /// End, exclusive, nanoseconds since the epoch.
    pub end_ns: i64,
    /// Seconds per time bucket.
    pub granularity_secs: i64,
    /// Calculated fields, in order.
    pub calculated_fields: Vec<(String, String)>,
    /// Unweighted.
    pub usage_mode: bool,
}

impl ValidSpec {
    /// Checks `spec`; `now_ns` anchors a spec without start or end.
    pub fn new(spec: &QuerySpec, now_ns: i64) -> Result<ValidSpec, SpecError> {
        let calculations = calculations(spec)?;
        let (filters, combine_or) = validate_filters(
            &spec.filters,
            spec.filter_combination.as_deref(),
            "filters",
            "filter_combination",
        )?;
        let breakdowns = breakdowns(spec)?;
        let orders = orders(spec, &calculations, &breakdowns)?;
        let havings = havings(spec, &calculations)?;
        let limit = match spec.limit {
            None => DEFAULT_LIMIT,
            Some(0) => return Err(SpecError::new("limit", "must be at least 1")),
            Some(n) if n > MAX_LIMIT as u64 => {
                return Err(SpecError::new(
                    "limit",
                    format!("must be at most {MAX_LIMIT}"),
                ));
            }
            Some(n) => n as usize,
        };
        source(spec.source.as_deref())?;
        let (start_ns, end_ns) = time_range(spec, now_ns)?;
        let granularity_secs = granularity(spec.granularity, end_ns - start_ns)?;
        let calculated_fields = calculated_fields(spec)?;
        Ok(ValidSpec {
            calculations,
            filters,
            combine_or,
            breakdowns,
            orders,
            havings,
            limit,
            start_ns,
            end_ns,
            granularity_secs,
            calculated_fields,
            usage_mode: spec.usage_mode,
        })
    }
}

/// `source` may only force raw rows: any other value (a typo of "raw", a rollup
/// name copied from an answer) would otherwise be read as "let a rollup answer".
fn source(source: Option<&str>) -> Result<(), SpecError> {
    match source {
        None => Ok(()),
        Some(source) if source.eq_ignore_ascii_case("raw") => Ok(()),
        Some(other) => Err(SpecError::new(
            "source",
            format!(
                "{other:?} is not a source to ask for: \"raw\" forces raw rows; \
                 without it a rollup answers where one fits"
            ),
        )),
    }
}

fn too_long(field: &str, len: usize) -> Result<(), SpecError> {
    if len > MAX_LIST_LEN {
        return Err(SpecError::new(
            field,
            format!("at most {MAX_LIST_LEN} entries, got {len}"),
        ));
    }
    Ok(())
}

fn calculations(spec: &QuerySpec) -> Result<Vec<ValidCalculation>, SpecError> {
    too_long("calculations", spec.calculations.len())?;
    if spec.calculations.is_empty() {
        return Ok(vec![ValidCalculation {
            op: CalcOp::Count,
            column: None,
            name: "COUNT".into(),
        }]);
    }
    let mut out: Vec<ValidCalculation> = Vec::new();
    for (index, calculation) in spec.calculations.iter().enumerate() {
        let field = format!("calculations[{index}]");
        let op = CalcOp::parse(&calculation.op).ok_or_else(|| {
            SpecError::new(
                format!("{field}.op"),
                format!(
                    "unknown op {:?} (one of {})",
                    calculation.op,
                    calc_op_names()
                ),
            )
        })?;
        let column = if op.needs_column() {
            match calculation.column.as_deref() {
                Some(name) if !name.is_empty() => Some(name.to_owned()),
                _ => {
                    return Err(SpecError::new(
                        format!("{field}.column"),
                        format!("{op} needs a column"),
                    ));
                }
            }
        } else {
            None
        };
        let name = calculation_name(op, column.as_deref());
        if let Some(first) = out.iter().position(|c| c.name == name) {
            return Err(SpecError::new(
                field,
                format!("{name} is already calculations[{first}]"),
            ));
        }
        out.push(ValidCalculation { op, column, name });
    }
    Ok(out)
}

/// The result name of a calculation.
pub fn calculation_name(op: CalcOp, column: Option<&str>) -> String {
    match column {
        Some(column) if op.needs_column() => format!("{op}({column})"),
        _ => op.name().to_owned(),
    }
}

/// Checks filters and their combination; `field` and `combination_field` are the
/// JSON paths used in errors (BubbleUp nests them under `query.`).
pub fn validate_filters(
    filters: &[Filter],
    combination: Option<&str>,
    field: &str,
    combination_field: &str,
) -> Result<(Vec<ValidFilter>, bool), SpecError> {
    too_long(field, filters.len())?;
    let combine_or = match combination {
        None => false,
        Some(text) if text.eq_ignore_ascii_case("and") => false,
        Some(text) if text.eq_ignore_ascii_case("or") => true,
        Some(other) => {
            return Err(SpecError::new(
                combination_field,
                format!("{other:?} is not AND or OR"),
            ));
        }
    };
    let filters = filters
        .iter()
        .enumerate()
        .map(|(index, filter)| validate_filter(filter, &format!("{field}[{index}]")))
        .collect::<Result<_, _>>()?;
    Ok((filters, combine_or))
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn validate_filter(filter: &Filter, field: &str) -> Result<ValidFilter, SpecError> {
    if filter.column.is_empty() {
        return Err(SpecError::new(
            format!("{field}.column"),
            "must not be empty",
        ));
    }
    let op = FilterOp::parse(&filter.op).ok_or_else(|| {
        SpecError::new(
            format!("{field}.op"),
            format!("unknown op {:?} (one of {})", filter.op, filter_op_names()),
        )
    })?;
    let value_field = format!("{field}.value");
    let value = match op {
        FilterOp::Exists | FilterOp::DoesNotExist => match &filter.value {
            None | Some(Value::Null) => Operand::None,
            Some(_) => {
                return Err(SpecError::new(
                    value_field,
                    format!("{} takes no value", filter.op),
                ));
            }
        },
        FilterOp::In | FilterOp::NotIn => match &filter.value {
            Some(Value::Array(items)) if !items.is_empty() => {
                if items.len() > MAX_IN_VALUES {
                    return Err(SpecError::new(
                        value_field,
                        format!("at most {MAX_IN_VALUES} values"),
                    ));
                }
                if let Some(bad) = items.iter().position(|item| !is_scalar(item)) {
                    return Err(SpecError::new(
                        format!("{value_field}[{bad}]"),
                        "must be a string, number or bool",
                    ));
                }
                Operand::List(items.clone())
            }
            _ => {
                return Err(SpecError::new(
                    value_field,
                    format!("{} needs a non-empty array", filter.op),
                ));
            }
        },
        FilterOp::StartsWith
        | FilterOp::DoesNotStartWith
        | FilterOp::EndsWith
        | FilterOp::DoesNotEndWith
        | FilterOp::Contains
        | FilterOp::DoesNotContain => match &filter.value {
            Some(Value::String(text)) => Operand::Scalar(Value::String(text.clone())),
            _ => {
                return Err(SpecError::new(
                    value_field,
                    format!("{} needs a string", filter.op),
                ));
            }
        },
        _ => match &filter.value {
            Some(value) if is_scalar(value) => Operand::Scalar(value.clone()),
            _ => {
                return Err(SpecError::new(
                    value_field,
                    format!("{} needs a string, number or bool", filter.op),
                ));
            }
        },
    };
    Ok(ValidFilter {
        column: filter.column.clone(),
        op,
        value,
        field: field.to_owned(),
    })
}

fn breakdowns(spec: &QuerySpec) -> Result<Vec<String>, SpecError> {
    too_long("breakdowns", spec.breakdowns.len())?;
    for (index, name) in spec.breakdowns.iter().enumerate() {
        let field = format!("breakdowns[{index}]");
        if name.is_empty() {
            return Err(SpecError::new(field, "must not be empty"));
        }
        if spec.breakdowns[..index].contains(name) {
            return Err(SpecError::new(field, format!("{name:?} is listed twice")));
        }
    }
    Ok(spec.breakdowns.clone())
}

/// The index of the calculation `op(column)` among `calculations`.
fn find_calculation(
    calculations: &[ValidCalculation],
    op_text: &str,
    column: Option<&str>,
    field: &str,
    op_field: &str,
) -> Result<usize, SpecError> {
    let op = CalcOp::parse(op_text).ok_or_else(|| {
        SpecError::new(
            op_field,
            format!("unknown op {op_text:?} (one of {})", calc_op_names()),
        )
    })?;
    if op == CalcOp::Heatmap {
        return Err(SpecError::new(
            op_field,
            "a HEATMAP has no single value to use here",
        ));
    }
    if op == CalcOp::Concurrency {
        // Its group value is a maximum over time buckets, computed after ranking.
        return Err(SpecError::new(
            op_field,
            "CONCURRENCY cannot rank or filter groups",
        ));
    }
    let name = calculation_name(op, column);
    calculations
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| SpecError::new(field, format!("{name} is not among the calculations")))
}

fn orders(
    spec: &QuerySpec,
    calculations: &[ValidCalculation],
    breakdowns: &[String],
) -> Result<Vec<ValidOrder>, SpecError> {
    too_long("orders", spec.orders.len())?;
    let mut out = Vec::new();
    for (index, order) in spec.orders.iter().enumerate() {
        let field = format!("orders[{index}]");
        let descending = match order.order.as_deref() {
            None => order.op.is_some(),
            Some(text) if text.eq_ignore_ascii_case("descending") => true,
            Some(text) if text.eq_ignore_ascii_case("ascending") => false,
            Some(other) => {
                return Err(SpecError::new(
                    format!("{field}.order"),
                    format!("{other:?} is not ascending or descending"),
                ));
            }
        };
        let key = match &order.op {
            Some(op) => OrderKey::Calculation(find_calculation(
                calculations,
                op,
                order.column.as_deref(),
                &field,
                &format!("{field}.op"),
            )?),
            None => {
                let Some(column) = order.column.as_deref() else {
                    return Err(SpecError::new(field, "needs an op or a breakdown column"));
                };
                let index = breakdowns.iter().position(|b| b == column).ok_or_else(|| {
                    SpecError::new(
                        format!("{field}.column"),
                        format!("{column:?} is not among the breakdowns"),
                    )
                })?;
                OrderKey::Breakdown(index)
            }
        };
        out.push(ValidOrder { key, descending });
    }
    if out.is_empty()
        && let Some(first) = calculations
            .iter()
            .position(|c| !matches!(c.op, CalcOp::Heatmap | CalcOp::Concurrency))
    {
        out.push(ValidOrder {
            key: OrderKey::Calculation(first),
            descending: true,
        });
    }
    Ok(out)
}

fn havings(
    spec: &QuerySpec,
    calculations: &[ValidCalculation],
) -> Result<Vec<ValidHaving>, SpecError> {
    too_long("havings", spec.havings.len())?;
    spec.havings
        .iter()
        .enumerate()
        .map(|(index, having)| {
            let field = format!("havings[{index}]");
            let op = Comparison::parse(&having.op).ok_or_else(|| {
                SpecError::new(
                    format!("{field}.op"),
                    format!("{:?} is not one of =, !=, >, >=, <, <=", having.op),
                )
            })?;
            if !having.value.is_finite() {
                return Err(SpecError::new(format!("{field}.value"), "must be finite"));
            }
            let calculation = find_calculation(
                calculations,
                &having.calculate_op,
                having.column.as_deref(),
                &field,
                &format!("{field}.calculate_op"),
            )?;
            Ok(ValidHaving {
                calculation,
                op,
                value: having.value,
            })
        })
        .collect()
}

/// Nanoseconds since the epoch of `value`.
pub fn time_ns(value: &TimeValue, field: &str) -> Result<i64, SpecError> {
    match value {
        TimeValue::Seconds(seconds) if seconds.is_finite() && seconds.abs() < 9.0e9 => {
            Ok((seconds * NANOS_PER_SECOND as f64).round() as i64)
        }
        TimeValue::Seconds(_) => Err(SpecError::new(field, "is not a valid epoch time")),
        TimeValue::Text(text) => chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .and_then(|time| time.timestamp_nanos_opt())
            .ok_or_else(|| {
                SpecError::new(field, format!("{text:?} is not RFC 3339 or epoch seconds"))
            }),
    }
}

/// `(start, end)` in nanoseconds, end exclusive.
fn time_range(spec: &QuerySpec, now_ns: i64) -> Result<(i64, i64), SpecError> {
    let start = spec
        .start_time
        .as_ref()
        .map(|t| time_ns(t, "start_time"))
        .transpose()?;
    let end = spec
        .end_time
        .as_ref()
        .map(|t| time_ns(t, "end_time"))
        .transpose()?;
    let range = match spec.time_range {
        Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 1.0e10 => {
            Some((seconds * NANOS_PER_SECOND as f64).round() as i64)
        }
        Some(_) => {
            return Err(SpecError::new(
                "time_range",
                "must be a positive number of seconds",
            ));
        }
        None => None,
    };
    let default_range = DEFAULT_TIME_RANGE_SECS * NANOS_PER_SECOND;
    let (start, end) = match (start, end, range) {
        (Some(_), Some(_), Some(_)) => {
            return Err(SpecError::new(
                "time_range",
                "give at most two of time_range, start_time and end_time",
            ));
        }
        (Some(start), Some(end), None) => (start, end),
        (Some(start), None, range) => (start, start + range.unwrap_or(default_range)),
        (None, Some(end), range) => (end - range.unwrap_or(default_range), end),
        (None, None, range) => (now_ns - range.unwrap_or(default_range), now_ns),
    };
    if end <= start {
        return Err(SpecError::new("end_time", "must be after start_time"));
    }
    Ok((start, end))
}

/// Seconds per bucket: the spec's, or a nice step giving at most
/// [`TARGET_TIME_BUCKETS`] buckets.
fn granularity(given: Option<f64>, range_ns: i64) -> Result<i64, SpecError> {
    let range_secs = (range_ns + NANOS_PER_SECOND - 1) / NANOS_PER_SECOND;
    match given {
        Some(seconds) => {
            if !(seconds.is_finite() && seconds >= 1.0 && seconds.fract() == 0.0 && seconds < 1e10)
            {
                return Err(SpecError::new(
                    "granularity",
                    "must be a whole number of seconds, at least 1",
                ));
            }
            let seconds = seconds as i64;
            if range_secs / seconds > MAX_TIME_BUCKETS {
                return Err(SpecError::new(
                    "granularity",
                    format!(
                        "{seconds}s gives more than {MAX_TIME_BUCKETS} buckets over {range_secs}s; \
                         use at least {}s",
                        (range_secs + MAX_TIME_BUCKETS - 1) / MAX_TIME_BUCKETS
                    ),
                ));
            }
            Ok(seconds)
        }
        None => {
            let wanted = (range_secs + TARGET_TIME_BUCKETS - 1) / TARGET_TIME_BUCKETS;
            Ok(NICE_GRANULARITIES_SECS
                .iter()
                .copied()
                .find(|step| *step >= wanted)
                .unwrap_or_else(|| {
                    let last = NICE_GRANULARITIES_SECS[NICE_GRANULARITIES_SECS.len() - 1];
                    (wanted + last - 1) / last * last
                }))
        }
    }
}

fn calculated_fields(spec: &QuerySpec) -> Result<Vec<(String, String)>, SpecError> {
    too_long("calculated_fields", spec.calculated_fields.len())?;
    let mut out: Vec<(String, String)> = Vec::new();
    for (index, field) in spec.calculated_fields.iter().enumerate() {
        let path = format!("calculated_fields[{index}]");
        if field.name.is_empty() {
            return Err(SpecError::new(format!("{path}.name"), "must not be empty"));
        }
        if out.iter().any(|(name, _)| *name == field.name) {
            return Err(SpecError::new(
                format!("{path}.name"),
                format!("{:?} is defined twice", field.name),
            ));
        }
        out.push((field.name.clone(), field.expression.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_764_007_200 * NANOS_PER_SECOND;

    fn check(value: Value) -> Result<ValidSpec, SpecError> {
        ValidSpec::new(&QuerySpec::from_value(value).unwrap(), NOW)
    }

    fn field_of(value: Value) -> String {
        check(value).unwrap_err().field
    }

    #[test]
    fn source_may_only_force_raw_rows() {
        assert!(check(json!({"source": "raw"})).is_ok());
        assert!(check(json!({"source": "RAW"})).is_ok());
        let error = check(json!({"source": "rollup:requests"})).unwrap_err();
        assert_eq!(error.field, "source");
        assert!(
            error.message.contains("\"rollup:requests\""),
            "{}",
            error.message
        );
    }

    #[test]
    fn defaults_are_count_last_two_hours_one_minute_buckets() {
        let spec = check(json!({})).unwrap();
        assert_eq!(spec.calculations[0].name, "COUNT");
        assert_eq!(spec.end_ns, NOW);
        assert_eq!(spec.start_ns, NOW - 7200 * NANOS_PER_SECOND);
        assert_eq!(spec.granularity_secs, 60);
        assert_eq!(spec.limit, DEFAULT_LIMIT);
        assert_eq!(
            spec.orders,
            vec![ValidOrder {
                key: OrderKey::Calculation(0),
                descending: true
            }]
        );
    }

    #[test]
    fn time_ranges_anchor_at_start_end_or_now() {
        let spec = check(json!({"start_time": 100, "time_range": 50})).unwrap();
        assert_eq!(
            (spec.start_ns, spec.end_ns),
            (100 * NANOS_PER_SECOND, 150 * NANOS_PER_SECOND)
        );
        assert_eq!(spec.granularity_secs, 1);
        let spec = check(json!({"end_time": "1970-01-02T00:00:00Z"})).unwrap();
        assert_eq!(spec.end_ns, 86_400 * NANOS_PER_SECOND);
        let spec = check(json!({"time_range": 86400})).unwrap();
        assert_eq!(spec.granularity_secs, 900);
        assert_eq!(
            field_of(json!({"start_time": 10, "end_time": 5})),
            "end_time"
        );
        assert_eq!(field_of(json!({"start_time": "yesterday"})), "start_time");
        assert_eq!(
            field_of(json!({"start_time": 1, "end_time": 5, "time_range": 4})),
            "time_range"
        );
        assert_eq!(field_of(json!({"time_range": 0})), "time_range");
        assert_eq!(
            field_of(json!({"time_range": 7200, "granularity": 1})),
            "granularity"
        );
        assert_eq!(field_of(json!({"granularity": 1.5})), "granularity");
    }

    #[test]
    fn calculations_are_checked_and_named() {
        let spec = check(json!({"calculations": [
            {"op": "COUNT"}, {"op": "p99", "column": "d"}, {"op": "HEATMAP", "column": "d"}
        ]}))
        .unwrap();
        let names: Vec<_> = spec.calculations.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["COUNT", "P99(d)", "HEATMAP(d)"]);
        let error = check(json!({"calculations": [{"op": "COUNT"}, {"op": "P99"}]})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "calculations[1].column: P99 needs a column"
        );
        assert_eq!(
            field_of(json!({"calculations": [{"op": "MEDIAN"}]})),
            "calculations[0].op"
        );
        assert_eq!(
            field_of(
                json!({"calculations": [{"op": "SUM", "column": "a"}, {"op": "SUM", "column": "a"}]})
            ),
            "calculations[1]"
        );
    }

    #[test]
    fn filters_are_checked() {
        let spec = check(json!({"filters": [
            {"column": "a", "op": "in", "value": [1, "x"]},
            {"column": "b", "op": "exists"},
            {"column": "c", "op": "contains", "value": "z"}
        ], "filter_combination": "or"}))
        .unwrap();
        assert!(spec.combine_or);
        assert_eq!(
            spec.filters[0].value,
            Operand::List(vec![json!(1), json!("x")])
        );
        assert_eq!(spec.filters[1].value, Operand::None);
        assert_eq!(
            field_of(json!({"filters": [{"column": "a", "op": "like", "value": 1}]})),
            "filters[0].op"
        );
        assert_eq!(
            field_of(json!({"filters": [{"column": "a", "op": "in", "value": []}]})),
            "filters[0].value"
        );
        assert_eq!(
            field_of(json!({"filters": [{"column": "a", "op": "in", "value": [[1]]}]})),
            "filters[0].value[0]"
        );
        assert_eq!(
            field_of(json!({"filters": [{"column": "a", "op": "contains", "value": 3}]})),
            "filters[0].value"
        );
        assert_eq!(
            field_of(json!({"filters": [{"column": "a", "op": "="}]})),
            "filters[0].value"
        );
        assert_eq!(
            field_of(json!({"filters": [{"column": "a", "op": "exists", "value": 1}]})),
            "filters[0].value"
        );
        assert_eq!(
            field_of(json!({"filter_combination": "XOR"})),
            "filter_combination"
        );
    }

    #[test]
    fn orders_and_havings_refer_to_calculations_and_breakdowns() {
        let spec = check(json!({
            "calculations": [{"op": "COUNT"}, {"op": "AVG", "column": "d"}],
            "breakdowns": ["svc"],
            "orders": [{"op": "AVG", "column": "d"}, {"column": "svc", "order": "descending"}],
            "havings": [{"calculate_op": "COUNT", "op": ">=", "value": 2}]
        }))
        .unwrap();
        assert_eq!(
            spec.orders[0],
            ValidOrder {
                key: OrderKey::Calculation(1),
                descending: true
            }
        );
        assert_eq!(
            spec.orders[1],
            ValidOrder {
                key: OrderKey::Breakdown(0),
                descending: true
            }
        );
        assert_eq!(spec.havings[0].calculation, 0);
        assert_eq!(
            field_of(json!({"orders": [{"op": "MAX", "column": "d"}]})),
            "orders[0]"
        );
        assert_eq!(
            field_of(json!({"orders": [{"column": "nope"}]})),
            "orders[0].column"
        );
        assert_eq!(
            field_of(json!({"orders": [{"op": "COUNT", "order": "up"}]})),
            "orders[0].order"
        );
        assert_eq!(
            field_of(json!({"havings": [{"calculate_op": "COUNT", "op": "~", "value": 1}]})),
            "havings[0].op"
        );
        assert_eq!(
            field_of(
                json!({"havings": [{"calculate_op": "SUM", "column": "x", "op": ">", "value": 1}]})
            ),
            "havings[0]"
        );
        assert_eq!(field_of(json!({"source": "rollup:requests"})), "source");
        assert_eq!(field_of(json!({"source": "raww"})), "source");
        assert_eq!(field_of(json!({"limit": 0})), "limit");
        assert_eq!(field_of(json!({"limit": 1_000_000})), "limit");
        assert_eq!(field_of(json!({"breakdowns": ["a", "a"]})), "breakdowns[1]");
    }
}
