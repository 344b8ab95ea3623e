//! `quarry_histogram_quantile(series, time_ns, delta, bounds, counts, q)` ->
//! Float64: the `q`-quantile (0..=1) of the values recorded by OTLP explicit-bucket
//! histogram points, whose `metric.explicit_bounds` and `metric.bucket_counts` are
//! JSON arrays (docs/otlp.md).
//!
//! Which observations the aggregated rows hold:
//! - a delta point (`delta` true) holds its own observations: they are added up;
//! - a cumulative point counts everything since its series started, so per series
//!   (`series`, the point's `metric.series_id`) the observations of the rows are the
//!   latest point's counts minus the earliest point's. When a latest count is below
//!   the earliest (the series restarted) the latest point's counts are taken. A
//!   series with a single cumulative point adds nothing, as a rate needs two points.
//!
//! The histograms of the rows must share their bounds: rows with other bounds than
//! the first histogram seen are skipped, and bounds or counts that are not JSON
//! arrays of numbers (or counts not one longer than the bounds) are skipped.
//!
//! The quantile interpolates linearly inside the bucket holding rank `q × total`, as
//! Prometheus' `histogram_quantile` does: bucket `i` spans `(bounds[i-1],
//! bounds[i]]`, the first bucket starts at 0 when its bound is positive, and a rank
//! in the overflow bucket answers the highest bound. The error is therefore bounded
//! by the bucket widths, not by the sketches' 1%.
//!
//! Hand-written because it is Quarry's own metric semantics; the state is JSON text
//! (a few series of a few dozen buckets per group).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};
use serde::{Deserialize, Serialize};

use super::args::{constant_arg, quantile_arg};

/// Name of the function.
pub const HISTOGRAM_QUANTILE: &str = "quarry_histogram_quantile";

/// Argument types after coercion.
const ARGUMENTS: [DataType; 6] = [
    DataType::Utf8,
    DataType::Int64,
    DataType::Boolean,
    DataType::Utf8,
    DataType::Utf8,
    DataType::Float64,
];

/// See the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HistogramQuantile {
    signature: Signature,
}

impl Default for HistogramQuantile {
    fn default() -> Self {
        HistogramQuantile {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for HistogramQuantile {
    fn name(&self) -> &str {
        HISTOGRAM_QUANTILE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != ARGUMENTS.len() {
            return plan_err!(
                "{HISTOGRAM_QUANTILE} takes (series, time_ns, delta, bounds, counts, q)"
            );
        }
        Ok(ARGUMENTS.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let Some(q) = args.exprs.get(5) else {
            return plan_err!(
                "{HISTOGRAM_QUANTILE} takes (series, time_ns, delta, bounds, counts, q)"
            );
        };
        let q = quantile_arg(HISTOGRAM_QUANTILE, &constant_arg(HISTOGRAM_QUANTILE, q)?)?;
        Ok(Box::new(HistogramAccumulator {
            q,
            histograms: Histograms::default(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "histograms"),
            DataType::Utf8,
            true,
        ))])
    }
}

/// The earliest and latest cumulative point of one series.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeriesPoints {
    first_ns: i64,
    first: Vec<f64>,
    last_ns: i64,
    last: Vec<f64>,
}

/// What the rows said so far.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Histograms {
    bounds: Option<Vec<f64>>,
    /// Sum of the delta points' counts.
    delta: Vec<f64>,
    series: BTreeMap<String, SeriesPoints>,
}

impl Histograms {
    fn add(&mut self, series: &str, time_ns: i64, delta: bool, bounds: &str, counts: &str) {
        let (Ok(bounds), Ok(counts)) = (
            serde_json::from_str::<Vec<f64>>(bounds),
            serde_json::from_str::<Vec<f64>>(counts),
        ) else {
            return;
        };
        if counts.len() != bounds.len() + 1 || !self.same_bounds(bounds) {
            return;
        }
        if delta {
            add_into(&mut self.delta, &counts);
        } else {
            self.offer(
                series.to_owned(),
                SeriesPoints {
                    first_ns: time_ns,
                    first: counts.clone(),
                    last_ns: time_ns,
                    last: counts,
                },
            );
        }
    }

    /// Whether `bounds` are the histograms' bounds (the first ones seen set them).
    fn same_bounds(&mut self, bounds: Vec<f64>) -> bool {
        match &self.bounds {
            None => {
                self.bounds = Some(bounds);
                true
            }
            Some(known) => *known == bounds,
        }
    }

    fn offer(&mut self, series: String, points: SeriesPoints) {
        match self.series.entry(series) {
            Entry::Vacant(entry) => {
                entry.insert(points);
            }
            Entry::Occupied(mut entry) => {
                let known = entry.get_mut();
                if points.first_ns < known.first_ns {
                    known.first_ns = points.first_ns;
                    known.first = points.first;
                }
                if points.last_ns > known.last_ns {
                    known.last_ns = points.last_ns;
                    known.last = points.last;
                }
            }
        }
    }

    fn merge(&mut self, other: Histograms) {
        let Some(bounds) = other.bounds else {
            return;
        };
        if !self.same_bounds(bounds) {
            return;
        }
        add_into(&mut self.delta, &other.delta);
        for (series, points) in other.series {
            self.offer(series, points);
        }
    }

    /// Observations per bucket.
    fn counts(&self) -> Vec<f64> {
        let mut out = self.delta.clone();
        for points in self.series.values() {
            if points.last_ns <= points.first_ns {
                continue;
            }
            let restarted = points.last.iter().zip(&points.first).any(|(l, f)| l < f);
            if restarted {
                add_into(&mut out, &points.last);
            } else {
                let increase: Vec<f64> = points
                    .last
                    .iter()
                    .zip(&points.first)
                    .map(|(l, f)| l - f)
                    .collect();
                add_into(&mut out, &increase);
            }
        }
        out
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        let bounds = self.bounds.as_ref()?;
        let counts = self.counts();
        let total: f64 = counts.iter().sum();
        if total <= 0.0 || bounds.is_empty() {
            return None;
        }
        let rank = q * total;
        let mut seen = 0.0;
        for (bucket, &count) in counts.iter().enumerate() {
            if count <= 0.0 {
                continue;
            }
            if seen + count >= rank {
                let Some(&upper) = bounds.get(bucket) else {
                    return bounds.last().copied();
                };
                let lower = match bucket {
                    0 if upper > 0.0 => 0.0,
                    0 => upper,
                    _ => bounds[bucket - 1],
                };
                let fraction = ((rank - seen) / count).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * fraction);
            }
            seen += count;
        }
        bounds.last().copied()
    }

    fn heap_bytes(&self) -> usize {
        let floats = |v: &Vec<f64>| v.capacity() * size_of::<f64>();
        self.bounds.as_ref().map_or(0, floats)
            + floats(&self.delta)
            + self
                .series
                .iter()
                .map(|(k, p)| k.capacity() + floats(&p.first) + floats(&p.last) + 64)
                .sum::<usize>()
    }
}

fn add_into(into: &mut Vec<f64>, counts: &[f64]) {
    if into.len() < counts.len() {
        into.resize(counts.len(), 0.0);
    }
    for (total, count) in into.iter_mut().zip(counts) {
        *total += count;
    }
}

#[derive(Debug)]
struct HistogramAccumulator {
    q: f64,
    histograms: Histograms,
}

impl Accumulator for HistogramAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [series, time, delta, bounds, counts, ..] = values else {
            return exec_err!("{HISTOGRAM_QUANTILE}: missing arguments");
        };
        let (Some(series), Some(time), Some(delta), Some(bounds), Some(counts)) = (
            series.as_string_opt::<i32>(),
            time.as_primitive_opt::<Int64Type>(),
            delta.as_boolean_opt(),
            bounds.as_string_opt::<i32>(),
            counts.as_string_opt::<i32>(),
        ) else {
            return exec_err!("{HISTOGRAM_QUANTILE}: arguments of unexpected types");
        };
        for row in 0..counts.len() {
            if counts.is_null(row) || bounds.is_null(row) || time.is_null(row) {
                continue;
            }
            let series = if series.is_valid(row) {
                series.value(row)
            } else {
                ""
            };
            self.histograms.add(
                series,
                time.value(row),
                delta.is_valid(row) && delta.value(row),
                bounds.value(row),
                counts.value(row),
            );
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.histograms.quantile(self.q)))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.histograms.heap_bytes()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let text = serde_json::to_string(&self.histograms)
            .map_err(|error| DataFusionError::External(Box::new(error)))?;
        Ok(vec![ScalarValue::Utf8(Some(text))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(states) = states.first().and_then(|s| s.as_string_opt::<i32>()) else {
            return exec_err!("{HISTOGRAM_QUANTILE}: state of unexpected type");
        };
        for row in 0..states.len() {
            if states.is_valid(row) {
                let other: Histograms = serde_json::from_str(states.value(row))
                    .map_err(|error| DataFusionError::External(Box::new(error)))?;
                self.histograms.merge(other);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(points: &[(&str, i64, bool, &str)]) -> Histograms {
        let mut histograms = Histograms::default();
        for (series, time, delta, counts) in points {
            histograms.add(series, *time, *delta, "[10, 100]", counts);
        }
        histograms
    }

    #[test]
    fn delta_points_add_up_and_interpolate_within_the_bucket() {
        // 10 values in (0, 10], 10 in (10, 100]: the median is the top of the first
        // bucket, p75 halfway through the second.
        let h = with(&[("a", 1, true, "[5, 5, 0]"), ("a", 2, true, "[5, 5, 0]")]);
        assert_eq!(h.quantile(0.5), Some(10.0));
        assert_eq!(h.quantile(0.75), Some(55.0));
        assert_eq!(h.quantile(0.25), Some(5.0));
    }

    #[test]
    fn cumulative_series_count_their_increase_and_restarts() {
        // Series a: 10 -> 30 in the first bucket, then 0 -> 20 in the overflow
        // bucket: 20 values each side. Series b restarted: its latest counts.
        let h = with(&[
            ("a", 1, false, "[10, 0, 0]"),
            ("a", 9, false, "[30, 0, 20]"),
            ("a", 5, false, "[20, 0, 5]"),
            ("b", 1, false, "[0, 50, 0]"),
            ("b", 9, false, "[0, 10, 0]"),
            ("c", 3, false, "[99, 99, 99]"),
        ]);
        assert_eq!(h.counts(), vec![20.0, 10.0, 20.0]);
        assert_eq!(h.quantile(1.0), Some(100.0));
        assert_eq!(h.quantile(0.2), Some(5.0));
    }

    #[test]
    fn states_merge_like_the_rows_they_came_from() {
        let mut left = with(&[("a", 1, false, "[10, 0, 0]"), ("d", 1, true, "[1, 0, 0]")]);
        let right = with(&[("a", 9, false, "[30, 0, 20]")]);
        let text = serde_json::to_string(&right).unwrap();
        left.merge(serde_json::from_str(&text).unwrap());
        assert_eq!(left.counts(), vec![21.0, 0.0, 20.0]);
    }

    #[test]
    fn other_bounds_and_bad_arrays_are_skipped() {
        let mut h = with(&[("a", 1, true, "[1, 1, 0]")]);
        h.add("a", 2, true, "[10, 50]", "[100, 0, 0]");
        h.add("a", 3, true, "[10, 100]", "not json");
        h.add("a", 4, true, "[10, 100]", "[1, 2]");
        assert_eq!(h.counts(), vec![1.0, 1.0, 0.0]);
        assert_eq!(Histograms::default().quantile(0.5), None);
    }
}
