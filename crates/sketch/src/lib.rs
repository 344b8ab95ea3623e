//! A mergeable, weighted quantile sketch with a relative-error guarantee, shared by
//! the query engine (percentiles) and the segment store (rollup measures).
//!
//! DDSketch-style (Masson, Rim, Lee, VLDB 2019): values fall into logarithmic
//! buckets whose width guarantees a relative error `α` (1% by default) on every
//! quantile; merging is adding bucket weights, so partial sketches from segments,
//! partitions and rollup rows combine exactly.
//!
//! Written here rather than wrapping a crate: the sketches on crates.io either take
//! only unit (integer) weights, or bring protobuf and a wire format of their own,
//! while Quarry needs float weights (sample rates), negatives, a small per-group
//! footprint (200,000 groups in one aggregate) and a byte format it versions itself.
//!
//! ```
//! use quarry_sketch::QuantileSketch;
//! let mut sketch = QuantileSketch::new();
//! for (value, weight) in [(10.0, 1.0), (20.0, 1.0), (1000.0, 2.0)] {
//!     sketch.add(value, weight).unwrap();
//! }
//! let p50 = sketch.quantile(0.5).unwrap();
//! assert!((p50 - 20.0).abs() <= 0.01 * 20.0);
//! let restored = QuantileSketch::from_bytes(&sketch.to_bytes()).unwrap();
//! assert_eq!(restored, sketch);
//! ```
//!
//! quarry-sketch is a leaf: it depends on no other Quarry crate and on no engine
//! (no arrow, no DataFusion), so every layer can keep and merge sketches.

mod bins;
mod codec;
mod error;
mod mapping;
mod sketch;

pub use bins::MAX_BINS;
pub use codec::FORMAT_VERSION;
pub use error::SketchError;
pub use mapping::MIN_INDEXABLE;
pub use sketch::{DEFAULT_RELATIVE_ACCURACY, QuantileSketch};

#[cfg(test)]
mod tests;
