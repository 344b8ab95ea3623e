//! Errors of the sketch crate.

use thiserror::Error;

/// Why a sketch operation was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SketchError {
    /// The relative accuracy must lie strictly between 0 and 1.
    #[error("relative accuracy must be in (0, 1), got {0}")]
    InvalidAccuracy(f64),
    /// NaN and infinite values have no place in a distribution.
    #[error("value must be finite, got {0}")]
    NonFiniteValue(f64),
    /// Weights are positive, finite numbers (a sample rate, a count).
    #[error("weight must be finite and positive, got {0}")]
    InvalidWeight(f64),
    /// Sketches of different accuracies cannot be merged without losing the bound.
    #[error("cannot merge sketches of relative accuracy {0} and {1}")]
    IncompatibleAccuracy(f64, f64),
    /// The bytes are not a sketch this version can read.
    #[error("invalid sketch bytes: {0}")]
    InvalidBytes(String),
    /// The bytes were written by a newer format version.
    #[error("unsupported sketch format version {0}")]
    UnsupportedVersion(u8),
}
