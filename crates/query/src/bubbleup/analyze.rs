//! Running BubbleUp over a DataFrame of base rows: few passes, whatever the width.
//!
//! ```text
//!  base rows ── + selected (selection IS TRUE), weight (meta.sample_rate, default 1)
//!     │
//!     ├─ pass 1: one aggregate ─ rows and weight per side; per column: non-null
//!     │          count, approx_distinct, min, max  ──► classify columns
//!     │          (above MAX rows per side: sample each side with random())
//!     │
//!     └─ pass 2..: one aggregate per COLUMNS_PER_PASS columns ─ GROUPING SETS
//!                  ((selected, key_1), (selected, key_2), ...) SUM(weight)
//!                  key = value text (categorical) or bucket index (numeric)
//!                  ──► shares per side ──► TVD score ──► ranked columns
//! ```
//!
//! Each pass reads only the columns it groups by (plus those of the filters), so
//! reading is proportional to the number of columns, not passes × columns. All
//! passes run on the same DataFrame, hence the same dataset snapshot.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::functions::math::expr_fn::random;
use datafusion::functions_aggregate::expr_fn::{approx_distinct, count, max, min, sum};
use datafusion::logical_expr::{Expr, GroupingSet, cast, lit, when};
use datafusion::prelude::DataFrame;
use quarry_schema::{FieldType, SAMPLE_RATE};
use serde::Serialize;

use super::columns::{
    Candidate, ColumnStats, Comparison, MISSING_BUCKET, MISSING_VALUE_KEY, Scale, SkipReason,
    VALUE_KEY_PREFIX, candidate, classify, column, key_expr, scalar_f64, typed_value,
};
use super::scoring::{Shares, SideWeights, ValueShares, compare_categorical, compare_histogram};
use quarry_engine::QueryError;

/// Internal column: whether a row is in the selection.
const SELECTED: &str = "__bubbleup_selected";
/// Internal column: a row's weight.
const WEIGHT: &str = "__bubbleup_weight";

/// Knobs of one BubbleUp run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BubbleUpOptions {
    /// Leading values kept per side of a categorical column.
    pub top_values: usize,
    /// Buckets of a numeric column's histogram.
    pub histogram_buckets: usize,
    /// Rows per side read at most; beyond it each side is sampled uniformly.
    pub max_rows_per_side: u64,
    /// Columns grouped in one aggregate pass (the grouping id must fit 64 bits).
    pub columns_per_pass: usize,
}

/// Default leading values per side.
pub const DEFAULT_TOP_VALUES: usize = 10;
/// Default histogram buckets.
pub const DEFAULT_HISTOGRAM_BUCKETS: usize = 20;
/// Default rows per side before sampling: 1 Mi.
pub const DEFAULT_MAX_ROWS_PER_SIDE: u64 = 1 << 20;
/// Default columns per grouping-sets pass.
pub const DEFAULT_COLUMNS_PER_PASS: usize = 32;

impl Default for BubbleUpOptions {
    fn default() -> Self {
        BubbleUpOptions {
            top_values: DEFAULT_TOP_VALUES,
            histogram_buckets: DEFAULT_HISTOGRAM_BUCKETS,
            max_rows_per_side: DEFAULT_MAX_ROWS_PER_SIDE,
            columns_per_pass: DEFAULT_COLUMNS_PER_PASS,
        }
    }
}

/// Rows and weight on one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SideTotals {
    /// Stored rows.
    pub rows: u64,
    /// Events they stand for (sum of `meta.sample_rate`).
    pub weight: f64,
}

/// A numeric column's histogram, for the response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramShares {
    /// Edge spacing.
    pub scale: Scale,
    /// Bucket edges (buckets + 1), shared by both sides; the last bucket includes its upper edge.
    pub edges: Vec<f64>,
    /// Share of the selection's weight per bucket.
    pub selection: Vec<f64>,
    /// Share of the baseline's weight per bucket.
    pub baseline: Vec<f64>,
}

/// One column compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnComparison {
    /// Column name.
    pub column: String,
    /// `string`, `integer`, `float` or `boolean`.
    #[serde(rename = "type")]
    pub column_type: &'static str,
    /// `categorical` or `numeric`.
    pub kind: &'static str,
    /// Total variation distance between the sides, 0..=1.
    pub score: f64,
    /// The selection itself is defined on this column: it differs by construction
    /// and is ranked after every other column.
    pub selection_column: bool,
    /// Share of rows without a value.
    pub missing: Shares,
    /// Leading values (categorical).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<ValueShares>>,
    /// Every other value together (categorical).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<Shares>,
    /// Histogram (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<HistogramShares>,
}

/// A column not compared, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedColumn {
    /// Column name.
    pub column: String,
    /// Why.
    pub reason: SkipReason,
}

/// The result of a BubbleUp run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BubbleUpResult {
    /// Base rows in the selection.
    pub selection: SideTotals,
    /// Base rows not in it.
    pub baseline: SideTotals,
    /// Whether a side was sampled (more than `max_rows_per_side` rows).
    pub sampled: bool,
    /// Compared columns, most different first.
    pub columns: Vec<ColumnComparison>,
    /// Columns not compared.
    pub skipped: Vec<SkippedColumn>,
}

/// Compares every column of `base` between the rows where `selection` is true and
/// the rest, and ranks the columns by how different they are.
pub async fn bubbleup(
    base: DataFrame,
    selection: Expr,
    options: &BubbleUpOptions,
) -> Result<BubbleUpResult, QueryError> {
    let selection_columns: HashSet<String> = selection
        .column_refs()
        .into_iter()
        .map(|column| column.name.clone())
        .collect();
    let mut skipped = Vec::new();
    let mut candidates = Vec::new();
    for field in base.schema().fields() {
        match candidate(field.name(), field.data_type()) {
            Ok(found) => candidates.push(found),
            Err(reason) => skipped.push(SkippedColumn {
                column: field.name().clone(),
                reason,
            }),
        }
    }
    let weight = if base
        .schema()
        .fields()
        .iter()
        .any(|f| f.name() == SAMPLE_RATE)
    {
        when(column(SAMPLE_RATE).is_null(), lit(1.0))
            .otherwise(cast(column(SAMPLE_RATE), DataType::Float64))?
    } else {
        lit(1.0)
    };
    // CASE rather than IS TRUE: DataFusion 55 plans `IS TRUE` as non-null logically
    // but nullable physically, and refuses the mismatch after common subexpression
    // elimination.
    let selected = when(selection, lit(true)).otherwise(lit(false))?;
    let mut projection = vec![selected.alias(SELECTED), weight.alias(WEIGHT)];
    projection.extend(candidates.iter().map(|c| column(&c.name)));
    let framed = base.select(projection)?;

    let (selection_totals, baseline_totals, stats) = statistics(&framed, &candidates).await?;
    if selection_totals.rows == 0 {
        return Err(QueryError::InvalidQuery(
            "the selection holds none of the query's events".into(),
        ));
    }
    let fraction = |rows: u64| (options.max_rows_per_side as f64 / rows.max(1) as f64).min(1.0);
    let (selection_fraction, baseline_fraction) = (
        fraction(selection_totals.rows),
        fraction(baseline_totals.rows),
    );
    let sampled = selection_fraction < 1.0 || baseline_fraction < 1.0;
    let rows = if sampled {
        framed.filter(random().lt(
            when(column(SELECTED), lit(selection_fraction)).otherwise(lit(baseline_fraction))?,
        ))?
    } else {
        framed
    };

    let mut compared: Vec<(Candidate, Comparison)> = Vec::new();
    for (found, stat) in candidates.into_iter().zip(&stats) {
        match classify(&found, stat, options.histogram_buckets, options.top_values) {
            Ok(comparison) => compared.push((found, comparison)),
            Err(reason) => skipped.push(SkippedColumn {
                column: found.name,
                reason,
            }),
        }
    }

    let mut columns = Vec::with_capacity(compared.len());
    for chunk in compared.chunks(options.columns_per_pass.max(1)) {
        let weights = grouped_weights(&rows, chunk).await?;
        for ((found, comparison), keyed) in chunk.iter().zip(weights) {
            columns.push(compare(
                found,
                comparison,
                keyed,
                options,
                &selection_columns,
            ));
        }
    }
    columns.sort_by(|a, b| {
        a.selection_column
            .cmp(&b.selection_column)
            .then(b.score.total_cmp(&a.score))
            .then_with(|| a.column.cmp(&b.column))
    });
    Ok(BubbleUpResult {
        selection: selection_totals,
        baseline: baseline_totals,
        sampled,
        columns,
        skipped,
    })
}

/// Pass 1: side totals and per-column statistics, in one aggregate.
async fn statistics(
    framed: &DataFrame,
    candidates: &[Candidate],
) -> Result<(SideTotals, SideTotals, Vec<ColumnStats>), QueryError> {
    let selected = column(SELECTED);
    let side_sum = |value: Expr, in_selection: bool| -> Result<Expr, QueryError> {
        let on_side = if in_selection {
            selected.clone()
        } else {
            !selected.clone()
        };
        Ok(sum(when(on_side, value).otherwise(lit(0.0))?))
    };
    let mut aggregates = vec![
        side_sum(lit(1.0), true)?.alias("rows_selected"),
        side_sum(lit(1.0), false)?.alias("rows_baseline"),
        side_sum(column(WEIGHT), true)?.alias("weight_selected"),
        side_sum(column(WEIGHT), false)?.alias("weight_baseline"),
    ];
    for (index, found) in candidates.iter().enumerate() {
        let value = column(&found.name);
        aggregates.push(count(value.clone()).alias(format!("n{index}")));
        if matches!(found.field_type, FieldType::String | FieldType::Int) {
            aggregates.push(approx_distinct(value.clone()).alias(format!("d{index}")));
        }
        if matches!(found.field_type, FieldType::Int | FieldType::Float) {
            let number = cast(value, DataType::Float64);
            aggregates.push(min(number.clone()).alias(format!("lo{index}")));
            aggregates.push(max(number).alias(format!("hi{index}")));
        }
    }
    let batches = framed
        .clone()
        .aggregate(vec![], aggregates)?
        .collect()
        .await?;
    let Some(batch) = batches.iter().find(|batch| batch.num_rows() > 0) else {
        return Ok((SideTotals::default(), SideTotals::default(), Vec::new()));
    };
    let value = |name: &str| -> Option<f64> {
        let array = batch.column_by_name(name)?;
        ScalarValue::try_from_array(array, 0)
            .ok()
            .as_ref()
            .and_then(scalar_f64)
    };
    let side = |rows: &str, weight: &str| SideTotals {
        rows: value(rows).unwrap_or(0.0) as u64,
        weight: value(weight).unwrap_or(0.0),
    };
    let stats = (0..candidates.len())
        .map(|index| ColumnStats {
            non_null: value(&format!("n{index}")).unwrap_or(0.0) as u64,
            distinct: value(&format!("d{index}")).map(|d| d as u64),
            min: value(&format!("lo{index}")),
            max: value(&format!("hi{index}")),
        })
        .collect();
    Ok((
        side("rows_selected", "weight_selected"),
        side("rows_baseline", "weight_baseline"),
        stats,
    ))
}

/// Weight per key and side of each column of `chunk`, from one grouping-sets pass.
enum Keyed {
    Values(HashMap<Option<String>, SideWeights>),
    Buckets(HashMap<Option<i64>, SideWeights>),
}

async fn grouped_weights(
    rows: &DataFrame,
    chunk: &[(Candidate, Comparison)],
) -> Result<Vec<Keyed>, QueryError> {
    let key_name = |index: usize| format!("k{index}");
    let mut projection = vec![column(SELECTED), column(WEIGHT)];
    for (index, (found, comparison)) in chunk.iter().enumerate() {
        projection.push(key_expr(&found.name, comparison)?.alias(key_name(index)));
    }
    let sets = (0..chunk.len())
        .map(|index| vec![column(SELECTED), column(&key_name(index))])
        .collect();
    let batches = rows
        .clone()
        .select(projection)?
        .aggregate(
            vec![Expr::GroupingSet(GroupingSet::GroupingSets(sets))],
            vec![sum(column(WEIGHT)).alias("w")],
        )?
        .collect()
        .await?;
    let mut keyed: Vec<Keyed> = chunk
        .iter()
        .map(|(_, comparison)| match comparison {
            Comparison::Categorical => Keyed::Values(HashMap::new()),
            Comparison::Numeric { .. } => Keyed::Buckets(HashMap::new()),
        })
        .collect();
    for batch in &batches {
        add_rows(batch, &mut keyed)?;
    }
    Ok(keyed)
}

/// Adds one result batch of a grouping-sets pass to `keyed`.
fn add_rows(batch: &RecordBatch, keyed: &mut [Keyed]) -> Result<(), QueryError> {
    let missing = |name: &str| QueryError::Execution(format!("BubbleUp pass lacks {name}"));
    let selected = batch
        .column_by_name(SELECTED)
        .and_then(|c| c.as_boolean_opt())
        .ok_or_else(|| missing(SELECTED))?;
    let weights = batch
        .column_by_name("w")
        .and_then(|c| c.as_primitive_opt::<Float64Type>())
        .ok_or_else(|| missing("w"))?;
    for (index, slot) in keyed.iter_mut().enumerate() {
        let name = format!("k{index}");
        let keys = batch.column_by_name(&name).ok_or_else(|| missing(&name))?;
        for row in 0..batch.num_rows() {
            if keys.is_null(row) || weights.is_null(row) {
                continue;
            }
            let weight = weights.value(row);
            let add = |side: &mut SideWeights| {
                if selected.value(row) {
                    side.selection += weight;
                } else {
                    side.baseline += weight;
                }
            };
            match slot {
                Keyed::Values(values) => {
                    let text = keys.as_string_opt::<i32>().ok_or_else(|| missing(&name))?;
                    let key = text.value(row);
                    let value = match key.strip_prefix(VALUE_KEY_PREFIX) {
                        Some(value) => Some(value.to_owned()),
                        None if key == MISSING_VALUE_KEY => None,
                        None => continue,
                    };
                    add(values.entry(value).or_default());
                }
                Keyed::Buckets(buckets) => {
                    let index = keys
                        .as_primitive_opt::<Int64Type>()
                        .ok_or_else(|| missing(&name))?
                        .value(row);
                    let bucket = (index != MISSING_BUCKET).then_some(index);
                    add(buckets.entry(bucket).or_default());
                }
            }
        }
    }
    Ok(())
}

fn compare(
    found: &Candidate,
    comparison: &Comparison,
    keyed: Keyed,
    options: &BubbleUpOptions,
    selection_columns: &HashSet<String>,
) -> ColumnComparison {
    let mut result = ColumnComparison {
        column: found.name.clone(),
        column_type: found.field_type.honeycomb_name(),
        kind: "categorical",
        score: 0.0,
        selection_column: selection_columns.contains(&found.name),
        missing: Shares::default(),
        values: None,
        other: None,
        histogram: None,
    };
    match (keyed, comparison) {
        (Keyed::Values(values), _) => {
            let field_type = found.field_type;
            let compared = compare_categorical(&values, options.top_values, |text| {
                typed_value(field_type, text)
            });
            result.score = compared.score;
            result.missing = compared.missing;
            result.values = Some(compared.values);
            result.other = Some(compared.other);
        }
        (Keyed::Buckets(buckets), Comparison::Numeric { edges, scale }) => {
            let compared = compare_histogram(&buckets, edges.len().saturating_sub(1).max(1));
            result.kind = "numeric";
            result.score = compared.score;
            result.missing = compared.missing;
            result.histogram = Some(HistogramShares {
                scale: *scale,
                edges: edges.clone(),
                selection: compared.selection,
                baseline: compared.baseline,
            });
        }
        (Keyed::Buckets(_), Comparison::Categorical) => {}
    }
    result
}

#[cfg(test)]
mod tests {
    use datafusion::common::TableReference;
    use quarry_schema::FieldType;
    use serde_json::json;

    use super::*;
    use quarry_engine::test_support::*;

    /// 400 spans over two regions and four builds: build b-bad in region east is
    /// slow, everything else fast. b-bad is rarer in the baseline than east is, so
    /// build_id differs most.
    fn anomaly_source() -> std::sync::Arc<TestSource> {
        let source = TestSource::new();
        let count = 400i64;
        let regions = ["east", "west"];
        let builds = ["b-1", "b-2", "b-3", "b-bad"];
        let mut durations = Vec::new();
        let mut region = Vec::new();
        let mut build = Vec::new();
        let mut request = Vec::new();
        let mut noise = Vec::new();
        let mut rate = Vec::new();
        for i in 0..count {
            let r = regions[(i % 2) as usize];
            let b = builds[((i / 2) % 4) as usize];
            let slow = r == "east" && b == "b-bad";
            durations.push(Some(if slow {
                500.0 + i as f64
            } else {
                10.0 + (i % 7) as f64
            }));
            region.push(r);
            build.push(b);
            request.push(format!("req-{i}"));
            noise.push(Some(i % 3 == 0));
            rate.push(Some(1 + (i / 3) % 2));
        }
        let rows = batch(vec![
            ("timestamp", times((0..count).collect())),
            ("duration_ms", floats(durations)),
            ("region", strings(region.iter().map(|r| Some(*r)).collect())),
            (
                "build_id",
                strings(build.iter().map(|b| Some(*b)).collect()),
            ),
            (
                "request_id",
                strings(request.iter().map(|r| Some(r.as_str())).collect()),
            ),
            ("cache_hit", bools(noise)),
            ("meta.sample_rate", ints(rate)),
        ]);
        source.put(
            "default",
            "spans",
            schema(&[
                ("duration_ms", FieldType::Float),
                ("region", FieldType::String),
                ("build_id", FieldType::String),
                ("request_id", FieldType::String),
                ("cache_hit", FieldType::Bool),
                ("meta.sample_rate", FieldType::Int),
            ]),
            Vec::new(),
            vec![rows],
        );
        source
    }

    #[tokio::test]
    async fn a_box_around_slow_spans_ranks_the_injected_field_first() {
        let engine = engine(&anomaly_source());
        let context = engine.session("default").unwrap();
        let base = context.table(TableReference::bare("spans")).await.unwrap();
        let selection = column("duration_ms").gt_eq(lit(400.0));
        let result = bubbleup(base, selection, &BubbleUpOptions::default())
            .await
            .unwrap();
        assert_eq!(result.selection.rows, 50);
        assert_eq!(result.baseline.rows, 350);
        assert!(!result.sampled);
        let ranked: Vec<&str> = result.columns.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(ranked[0], "build_id", "{ranked:?}");
        assert_eq!(ranked[1], "region", "{ranked:?}");
        assert_eq!(*ranked.last().unwrap(), "duration_ms");
        let build = &result.columns[0];
        assert_eq!(build.values.as_ref().unwrap()[0].value, json!("b-bad"));
        assert_eq!(build.values.as_ref().unwrap()[0].selection, 1.0);
        assert!(result.columns.last().unwrap().selection_column);
        let skipped: Vec<(&str, SkipReason)> = result
            .skipped
            .iter()
            .map(|s| (s.column.as_str(), s.reason))
            .collect();
        assert!(skipped.contains(&("request_id", SkipReason::Unique)));
        assert!(skipped.contains(&("timestamp", SkipReason::Time)));
        assert!(skipped.contains(&("meta.sample_rate", SkipReason::Meta)));
    }

    #[tokio::test]
    async fn one_pass_per_column_chunk_gives_the_same_ranking() {
        let engine = engine(&anomaly_source());
        let context = engine.session("default").unwrap();
        let base = context.table(TableReference::bare("spans")).await.unwrap();
        let selection = column("duration_ms").gt_eq(lit(400.0));
        let narrow = BubbleUpOptions {
            columns_per_pass: 1,
            ..BubbleUpOptions::default()
        };
        let one_by_one = bubbleup(base.clone(), selection.clone(), &narrow)
            .await
            .unwrap();
        let together = bubbleup(base, selection, &BubbleUpOptions::default())
            .await
            .unwrap();
        assert_eq!(one_by_one, together);
    }
}
