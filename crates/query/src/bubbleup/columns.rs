//! Which columns BubbleUp compares, how, and the grouping key of each.
//!
//! Skipped without reading data: `timestamp` and other time columns (the selection
//! box already fixes time), trace/span/parent/link ids (a value per trace or span:
//! their shares are all tiny and compare nothing), and Quarry's `meta.` columns
//! except `meta.dataset`. Skipped after the statistics pass: columns with no value
//! in the base rows, and string columns whose values are nearly all distinct
//! (approximate distinct count at least [`UNIQUE_FRACTION`] of their non-null rows:
//! request ids and the like).

use arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::error::Result;
use datafusion::functions::math::expr_fn::{floor, ln};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, cast, lit, try_cast, when};
use quarry_schema::fields::{LINK_SPAN_ID, LINK_TRACE_ID, PARENT_ID, SPAN_ID};
use quarry_schema::{FieldType, META_PREFIX, TIMESTAMP, TRACE_ID};
use serde::Serialize;

use quarry_engine::DATASET_COLUMN;

/// Id columns never compared.
pub const ID_COLUMNS: [&str; 5] = [TRACE_ID, SPAN_ID, PARENT_ID, LINK_TRACE_ID, LINK_SPAN_ID];
/// A string column with approximately this share of distinct values among its
/// non-null rows is treated as an identifier and skipped.
pub const UNIQUE_FRACTION: f64 = 0.8;
/// An int column with at most this many distinct values is categorical; with more,
/// a histogram.
pub const MAX_CATEGORICAL_INTS: u64 = 32;
/// A positive numeric column whose max / min reaches this ratio gets log-spaced
/// histogram buckets (latencies); otherwise linear ones.
pub const LOG_SCALE_MIN_RATIO: f64 = 100.0;
/// Key of a missing value of a histogram column (real buckets are 0..n).
pub const MISSING_BUCKET: i64 = -1;
/// Key of a missing value of a categorical column; present values are `v<text>`.
pub const MISSING_VALUE_KEY: &str = "n";
/// Prefix of a present categorical value's key.
pub const VALUE_KEY_PREFIX: &str = "v";

/// A column worth reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Column name.
    pub name: String,
    /// Its type.
    pub field_type: FieldType,
}

/// Why a column is not compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A time column.
    Time,
    /// A trace, span, parent or link id.
    Identifier,
    /// One of Quarry's `meta.` columns.
    Meta,
    /// A type BubbleUp does not compare.
    UnsupportedType,
    /// No value in the base rows.
    Empty,
    /// Nearly every value distinct.
    Unique,
}

/// Statistics of one candidate over the base rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ColumnStats {
    /// Rows with a value.
    pub non_null: u64,
    /// Approximate distinct values (strings and ints).
    pub distinct: Option<u64>,
    /// Smallest value (numbers).
    pub min: Option<f64>,
    /// Largest value (numbers).
    pub max: Option<f64>,
}

/// How histogram edges are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Equal widths.
    Linear,
    /// Equal ratios.
    Log,
}

/// How a column is compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// Shares of the leading values.
    Categorical,
    /// Histogram over shared edges (`edges.len()` = buckets + 1).
    Numeric {
        /// Bucket edges, ascending.
        edges: Vec<f64>,
        /// Their spacing.
        scale: Scale,
    },
}

/// Whether column `name` of `data_type` is read at all.
pub fn candidate(name: &str, data_type: &DataType) -> Result<Candidate, SkipReason> {
    if ID_COLUMNS.contains(&name) {
        return Err(SkipReason::Identifier);
    }
    if name.starts_with(META_PREFIX) && name != DATASET_COLUMN {
        return Err(SkipReason::Meta);
    }
    match FieldType::from_data_type(data_type) {
        _ if name == TIMESTAMP => Err(SkipReason::Time),
        Some(FieldType::Timestamp) => Err(SkipReason::Time),
        Some(field_type) => Ok(Candidate {
            name: name.to_owned(),
            field_type,
        }),
        None => Err(SkipReason::UnsupportedType),
    }
}

/// How to compare `candidate` given its statistics, with `buckets` histogram buckets
/// and `top` leading values.
pub fn classify(
    candidate: &Candidate,
    stats: &ColumnStats,
    buckets: usize,
    top: usize,
) -> Result<Comparison, SkipReason> {
    if stats.non_null == 0 {
        return Err(SkipReason::Empty);
    }
    let distinct = stats.distinct.unwrap_or(0);
    match candidate.field_type {
        FieldType::Bool => Ok(Comparison::Categorical),
        FieldType::String => {
            let unique = distinct as f64 >= UNIQUE_FRACTION * stats.non_null as f64;
            if unique && stats.non_null > top as u64 {
                Err(SkipReason::Unique)
            } else {
                Ok(Comparison::Categorical)
            }
        }
        FieldType::Int if distinct <= MAX_CATEGORICAL_INTS => Ok(Comparison::Categorical),
        FieldType::Int | FieldType::Float => {
            let (Some(min), Some(max)) = (stats.min, stats.max) else {
                return Err(SkipReason::Empty);
            };
            Ok(histogram_edges(min, max, buckets))
        }
        FieldType::Timestamp => Err(SkipReason::Time),
    }
}

/// Edges of `buckets` buckets covering `[min, max]`.
pub fn histogram_edges(min: f64, max: f64, buckets: usize) -> Comparison {
    let buckets = buckets.max(1);
    // NaN bounds or a single value: one bucket.
    if max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) {
        return Comparison::Numeric {
            edges: vec![min, max],
            scale: Scale::Linear,
        };
    }
    let log = min > 0.0 && max / min >= LOG_SCALE_MIN_RATIO;
    let edges = (0..=buckets)
        .map(|i| {
            let fraction = i as f64 / buckets as f64;
            if i == buckets {
                max
            } else if log {
                min * (max / min).powf(fraction)
            } else {
                min + (max - min) * fraction
            }
        })
        .collect();
    Comparison::Numeric {
        edges,
        scale: if log { Scale::Log } else { Scale::Linear },
    }
}

/// A column reference that keeps dots in the name.
pub fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// The grouping key of a compared column: never null, so each grouping set's own
/// key is the one non-null key of its result rows.
///
/// Categorical: `'n'` when missing, else `'v' || value::text`. Numeric: the bucket
/// index (clamped to the edges: rows that arrive between passes stay counted), or
/// [`MISSING_BUCKET`].
pub fn key_expr(name: &str, comparison: &Comparison) -> Result<Expr> {
    let value = column(name);
    match comparison {
        Comparison::Categorical => when(value.clone().is_null(), lit(MISSING_VALUE_KEY)).otherwise(
            Expr::BinaryExpr(BinaryExpr::new(
                Box::new(lit(VALUE_KEY_PREFIX)),
                Operator::StringConcat,
                Box::new(cast(value, DataType::Utf8)),
            )),
        ),
        Comparison::Numeric { edges, scale } => {
            let buckets = edges.len().saturating_sub(1).max(1) as i64;
            let min = edges.first().copied().unwrap_or(0.0);
            let max = edges.last().copied().unwrap_or(0.0);
            let number = cast(value.clone(), DataType::Float64);
            let position = match scale {
                Scale::Linear if max > min => {
                    (number - lit(min)) / lit((max - min) / buckets as f64)
                }
                Scale::Linear => lit(0.0),
                Scale::Log => (ln(number) - lit(min.ln())) / lit((max / min).ln() / buckets as f64),
            };
            let index = try_cast(floor(position), DataType::Int64);
            let clamped = when(index.clone().is_null(), lit(0i64))
                .when(index.clone().lt(lit(0i64)), lit(0i64))
                .when(index.clone().gt(lit(buckets - 1)), lit(buckets - 1))
                .otherwise(index)?;
            when(value.is_null(), lit(MISSING_BUCKET)).otherwise(clamped)
        }
    }
}

/// The JSON value of a categorical value's text, by column type.
pub fn typed_value(field_type: FieldType, text: &str) -> serde_json::Value {
    match field_type {
        FieldType::Bool => match text {
            "true" => serde_json::Value::Bool(true),
            "false" => serde_json::Value::Bool(false),
            other => serde_json::Value::String(other.to_owned()),
        },
        FieldType::Int => text
            .parse::<i64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| serde_json::Value::String(text.to_owned())),
        _ => serde_json::Value::String(text.to_owned()),
    }
}

/// A float statistic of a scalar (ints and floats), if present.
pub fn scalar_f64(value: &ScalarValue) -> Option<f64> {
    match value {
        ScalarValue::Float64(Some(v)) => Some(*v),
        ScalarValue::Int64(Some(v)) => Some(*v as f64),
        ScalarValue::UInt64(Some(v)) => Some(*v as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(non_null: u64, distinct: u64) -> ColumnStats {
        ColumnStats {
            non_null,
            distinct: Some(distinct),
            min: Some(1.0),
            max: Some(5000.0),
        }
    }

    #[test]
    fn ids_time_and_meta_columns_are_not_read() {
        assert_eq!(
            candidate("trace.trace_id", &DataType::Utf8),
            Err(SkipReason::Identifier)
        );
        assert_eq!(
            candidate("timestamp", &quarry_schema::timestamp_data_type()),
            Err(SkipReason::Time)
        );
        assert_eq!(
            candidate("meta.sample_rate", &DataType::Int64),
            Err(SkipReason::Meta)
        );
        assert!(candidate(DATASET_COLUMN, &DataType::Utf8).is_ok());
        assert_eq!(
            candidate("build_id", &DataType::Utf8).map(|c| c.field_type),
            Ok(FieldType::String)
        );
    }

    #[test]
    fn columns_are_classified_by_type_and_cardinality() {
        let string = Candidate {
            name: "s".into(),
            field_type: FieldType::String,
        };
        assert_eq!(
            classify(&string, &stats(1000, 990), 20, 10),
            Err(SkipReason::Unique)
        );
        assert_eq!(
            classify(&string, &stats(1000, 50), 20, 10),
            Ok(Comparison::Categorical)
        );
        assert_eq!(
            classify(&string, &stats(5, 5), 20, 10),
            Ok(Comparison::Categorical)
        );
        assert_eq!(
            classify(&string, &stats(0, 0), 20, 10),
            Err(SkipReason::Empty)
        );
        let int = Candidate {
            name: "status".into(),
            field_type: FieldType::Int,
        };
        assert_eq!(
            classify(&int, &stats(1000, 4), 20, 10),
            Ok(Comparison::Categorical)
        );
        let Ok(Comparison::Numeric { edges, scale }) = classify(&int, &stats(1000, 900), 4, 10)
        else {
            panic!("many ints are a histogram")
        };
        assert_eq!(scale, Scale::Log);
        assert_eq!(edges.len(), 5);
        assert_eq!(edges[0], 1.0);
        assert_eq!(edges[4], 5000.0);
    }

    #[test]
    fn linear_edges_split_the_range_evenly() {
        assert_eq!(
            histogram_edges(0.0, 10.0, 4),
            Comparison::Numeric {
                edges: vec![0.0, 2.5, 5.0, 7.5, 10.0],
                scale: Scale::Linear
            }
        );
        assert_eq!(
            histogram_edges(3.0, 3.0, 4),
            Comparison::Numeric {
                edges: vec![3.0, 3.0],
                scale: Scale::Linear
            }
        );
    }

    #[test]
    fn categorical_texts_turn_back_into_typed_values() {
        assert_eq!(
            typed_value(FieldType::Bool, "true"),
            serde_json::json!(true)
        );
        assert_eq!(typed_value(FieldType::Int, "-4"), serde_json::json!(-4));
        assert_eq!(typed_value(FieldType::String, "x"), serde_json::json!("x"));
    }
}
