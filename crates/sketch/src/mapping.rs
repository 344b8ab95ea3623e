//! The logarithmic map from a positive magnitude to a bucket key, and back.
//!
//! Bucket `k` holds magnitudes in `(γ^(k-1), γ^k]` with `γ = (1 + α) / (1 − α)`;
//! its representative value `2γ^k / (γ + 1)` is within a relative `α` of every
//! magnitude in the bucket — that is the sketch's whole accuracy argument.

use crate::SketchError;

/// Magnitudes below this (subnormal numbers) are counted as zero: they have no
/// finite logarithmic key worth keeping.
pub const MIN_INDEXABLE: f64 = f64::MIN_POSITIVE;

/// Bucket geometry for one relative accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LogMapping {
    relative_accuracy: f64,
    /// `ln γ`.
    ln_gamma: f64,
    /// `2 / (γ + 1)`: the representative's factor below `γ^k`.
    representative_factor: f64,
}

impl LogMapping {
    /// The mapping whose buckets guarantee `relative_accuracy`.
    pub(crate) fn new(relative_accuracy: f64) -> Result<Self, SketchError> {
        if !(relative_accuracy > 0.0 && relative_accuracy < 1.0) {
            return Err(SketchError::InvalidAccuracy(relative_accuracy));
        }
        let gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy);
        Ok(LogMapping {
            relative_accuracy,
            ln_gamma: gamma.ln(),
            representative_factor: 2.0 / (gamma + 1.0),
        })
    }

    /// The accuracy this mapping was built for.
    pub(crate) fn relative_accuracy(&self) -> f64 {
        self.relative_accuracy
    }

    /// The key of a magnitude `>= MIN_INDEXABLE`.
    pub(crate) fn key(&self, magnitude: f64) -> i32 {
        // |ln| <= 745 for finite doubles, so the key fits i32 for any accuracy
        // above 1e-6; the cast saturates beyond that.
        (magnitude.ln() / self.ln_gamma).ceil() as i32
    }

    /// The representative magnitude of bucket `key`.
    pub(crate) fn value(&self, key: i32) -> f64 {
        (f64::from(key) * self.ln_gamma).exp() * self.representative_factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_magnitude_is_within_the_accuracy_of_its_representative() {
        let mapping = LogMapping::new(0.01).unwrap();
        let mut magnitude = 1e-300;
        while magnitude < 1e300 {
            let estimate = mapping.value(mapping.key(magnitude));
            let error = (estimate - magnitude).abs() / magnitude;
            assert!(error <= 0.01 + 1e-12, "{magnitude}: {estimate}");
            magnitude *= 1.37;
        }
    }

    #[test]
    fn accuracy_out_of_range_is_refused() {
        for bad in [0.0, 1.0, -0.1, f64::NAN, 2.0] {
            assert!(LogMapping::new(bad).is_err(), "{bad}");
        }
    }
}
