//! [`QuantileSketch`]: weighted values in, quantiles within a relative error out.

use crate::SketchError;
use crate::bins::Bins;
use crate::mapping::{LogMapping, MIN_INDEXABLE};

/// Default relative accuracy: every quantile is within 1% of the exact value.
pub const DEFAULT_RELATIVE_ACCURACY: f64 = 0.01;

/// A mergeable, weighted quantile sketch with a relative-error guarantee.
///
/// For every `q` in `[0, 1]`, `quantile(q)` returns `x̂` with
/// `|x̂ − x| <= α·|x|`, where `α` is the relative accuracy (1% by default) and `x`
/// is the exact weighted lower quantile: the smallest added value whose cumulative
/// weight (of all values `<=` it) reaches `q ×` the total weight. `q = 0` and
/// `q = 1` return the exact minimum and maximum. The bound holds as long as no
/// store collapsed (values of one sign spanning a ratio above `γ^2048 ≈ 6e17` at
/// 1%; see the collapse rule in `bins`), and for magnitudes above
/// `f64::MIN_POSITIVE` (subnormals count as zero).
///
/// Negative values are kept in their own buckets, mirrored around zero; zero has
/// its own counter. Merging two sketches gives the same sketch as adding both
/// inputs to one (up to float rounding of the weights).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileSketch {
    pub(crate) mapping: LogMapping,
    /// Negative values by *negated* magnitude key, so keys ascend with the values
    /// and both stores collapse their lowest values first.
    pub(crate) negative: Bins,
    pub(crate) positive: Bins,
    pub(crate) zero: f64,
    pub(crate) count: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Default for QuantileSketch {
    fn default() -> Self {
        Self::new()
    }
}

impl QuantileSketch {
    /// An empty sketch with [`DEFAULT_RELATIVE_ACCURACY`] (1%).
    pub fn new() -> Self {
        match Self::with_relative_accuracy(DEFAULT_RELATIVE_ACCURACY) {
            Ok(sketch) => sketch,
            // The default accuracy is a valid constant.
            Err(_) => unreachable!("default relative accuracy is valid"),
        }
    }

    /// An empty sketch whose quantiles are within `relative_accuracy` (0 < α < 1).
    pub fn with_relative_accuracy(relative_accuracy: f64) -> Result<Self, SketchError> {
        Ok(Self::empty(LogMapping::new(relative_accuracy)?))
    }

    pub(crate) fn empty(mapping: LogMapping) -> Self {
        QuantileSketch {
            mapping,
            negative: Bins::default(),
            positive: Bins::default(),
            zero: 0.0,
            count: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// The relative accuracy of this sketch's quantiles.
    pub fn relative_accuracy(&self) -> f64 {
        self.mapping.relative_accuracy()
    }

    /// Adds `value` with `weight` (e.g. a sample rate). NaN or infinite values and
    /// weights that are not finite and positive are refused.
    pub fn add(&mut self, value: f64, weight: f64) -> Result<(), SketchError> {
        if !value.is_finite() {
            return Err(SketchError::NonFiniteValue(value));
        }
        if !(weight.is_finite() && weight > 0.0) {
            return Err(SketchError::InvalidWeight(weight));
        }
        let magnitude = value.abs();
        if magnitude < MIN_INDEXABLE {
            self.zero += weight;
        } else if value > 0.0 {
            self.positive.add(self.mapping.key(magnitude), weight);
        } else {
            self.negative
                .add(self.mapping.key(magnitude).saturating_neg(), weight);
        }
        self.count += weight;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        Ok(())
    }

    /// Adds every value of `other`. Both must have the same relative accuracy.
    pub fn merge(&mut self, other: &QuantileSketch) -> Result<(), SketchError> {
        if self.mapping != other.mapping {
            return Err(SketchError::IncompatibleAccuracy(
                self.relative_accuracy(),
                other.relative_accuracy(),
            ));
        }
        if other.is_empty() {
            return Ok(());
        }
        self.negative.merge(&other.negative);
        self.positive.merge(&other.positive);
        self.zero += other.zero;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        Ok(())
    }

    /// The weighted `q`-quantile (`0 <= q <= 1`), or `None` for an empty sketch or
    /// a `q` outside `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.is_empty() || !(0.0..=1.0).contains(&q) {
            return None;
        }
        if q == 0.0 {
            return Some(self.min);
        }
        if q == 1.0 {
            return Some(self.max);
        }
        let rank = q * self.count;
        let mut cumulative = 0.0;
        for (key, weight) in self.negative.iter() {
            cumulative += weight;
            if cumulative >= rank {
                return Some(self.clamp(-self.mapping.value(key.saturating_neg())));
            }
        }
        cumulative += self.zero;
        if self.zero > 0.0 && cumulative >= rank {
            return Some(self.clamp(0.0));
        }
        for (key, weight) in self.positive.iter() {
            cumulative += weight;
            if cumulative >= rank {
                return Some(self.clamp(self.mapping.value(key)));
            }
        }
        // Only float rounding of the running sum can get here.
        Some(self.max)
    }

    /// Total weight added.
    pub fn count(&self) -> f64 {
        self.count
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.count <= 0.0
    }

    /// The exact smallest value added.
    pub fn min(&self) -> Option<f64> {
        (!self.is_empty()).then_some(self.min)
    }

    /// The exact largest value added.
    pub fn max(&self) -> Option<f64> {
        (!self.is_empty()).then_some(self.max)
    }

    /// Non-empty buckets: a measure of the sketch's size.
    pub fn bucket_count(&self) -> usize {
        self.negative.len() + self.positive.len() + usize::from(self.zero > 0.0)
    }

    /// Bytes this sketch holds, inline and on the heap (for memory accounting).
    pub fn size_bytes(&self) -> usize {
        size_of::<Self>() + self.negative.heap_bytes() + self.positive.heap_bytes()
    }

    /// A representative inside the exact range: never below the minimum or above
    /// the maximum, which only brings it closer to the exact quantile.
    fn clamp(&self, value: f64) -> f64 {
        value.clamp(self.min, self.max)
    }
}
