//! The versioned byte format of a sketch, for rollup segments and query state.
//!
//! Version 1, little-endian:
//!
//! ```text
//! magic "QSK" | version u8 = 1
//! relative_accuracy f64 | count f64 | zero f64 | min f64 | max f64
//! negative bins: n u32, then n × (key i32, weight f64), keys ascending
//! positive bins: same
//! ```
//!
//! Negative keys are the negated magnitude keys (ascending with the values).
//! Readers refuse unknown versions rather than guess; a later version adds a new
//! number and keeps reading this one.

use crate::bins::{Bins, MAX_BINS};
use crate::mapping::LogMapping;
use crate::{QuantileSketch, SketchError};

/// Leading bytes of every encoded sketch.
const MAGIC: &[u8; 3] = b"QSK";
/// The format version written by this code.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of one encoded bin.
const BIN_BYTES: usize = 4 + 8;

impl QuantileSketch {
    /// The sketch as bytes in the current format ([`FORMAT_VERSION`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let bins = self.negative.len() + self.positive.len();
        let mut out = Vec::with_capacity(4 + 5 * 8 + 2 * 4 + bins * BIN_BYTES);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        for number in [
            self.relative_accuracy(),
            self.count,
            self.zero,
            self.min,
            self.max,
        ] {
            out.extend_from_slice(&number.to_le_bytes());
        }
        for store in [&self.negative, &self.positive] {
            out.extend_from_slice(&(store.len() as u32).to_le_bytes());
            for (key, weight) in store.iter() {
                out.extend_from_slice(&key.to_le_bytes());
                out.extend_from_slice(&weight.to_le_bytes());
            }
        }
        out
    }

    /// Reads a sketch written by [`QuantileSketch::to_bytes`], checking every field.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchError> {
        let mut reader = Reader { bytes };
        if reader.take(MAGIC.len())? != MAGIC {
            return Err(invalid("bad magic"));
        }
        let version = reader.take(1)?[0];
        if version != FORMAT_VERSION {
            return Err(SketchError::UnsupportedVersion(version));
        }
        let mapping = LogMapping::new(reader.f64()?)?;
        let mut sketch = QuantileSketch::empty(mapping);
        sketch.count = reader.f64()?;
        sketch.zero = reader.f64()?;
        sketch.min = reader.f64()?;
        sketch.max = reader.f64()?;
        sketch.negative = reader.bins()?;
        sketch.positive = reader.bins()?;
        if !reader.bytes.is_empty() {
            return Err(invalid("trailing bytes"));
        }
        let weights_ok = sketch.count.is_finite()
            && sketch.count >= 0.0
            && sketch.zero.is_finite()
            && sketch.zero >= 0.0;
        if !weights_ok {
            return Err(invalid("count or zero weight out of range"));
        }
        if sketch.count > 0.0 && !(sketch.min.is_finite() && sketch.max >= sketch.min) {
            return Err(invalid("min/max out of range"));
        }
        if sketch.count == 0.0 && (sketch.bucket_count() > 0) {
            return Err(invalid("buckets in an empty sketch"));
        }
        if sketch.count == 0.0 {
            sketch.min = f64::INFINITY;
            sketch.max = f64::NEG_INFINITY;
        }
        Ok(sketch)
    }
}

/// A cursor over the input.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SketchError> {
        if self.bytes.len() < n {
            return Err(invalid("truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SketchError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn f64(&mut self) -> Result<f64, SketchError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    fn bins(&mut self) -> Result<Bins, SketchError> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        if n > MAX_BINS as usize || n * BIN_BYTES > self.bytes.len() {
            return Err(invalid("bin count out of range"));
        }
        let mut pairs: Vec<(i32, f64)> = Vec::with_capacity(n);
        for _ in 0..n {
            let key = i32::from_le_bytes(self.array()?);
            let weight = self.f64()?;
            if !(weight.is_finite() && weight > 0.0) {
                return Err(invalid("bin weight out of range"));
            }
            if pairs.last().is_some_and(|(last, _)| *last >= key) {
                return Err(invalid("bin keys not ascending"));
            }
            pairs.push((key, weight));
        }
        if let (Some(first), Some(last)) = (pairs.first(), pairs.last())
            && i64::from(last.0) - i64::from(first.0) >= i64::from(MAX_BINS)
        {
            return Err(invalid("bins span more than the collapse limit"));
        }
        Ok(Bins::from_sorted_pairs(pairs))
    }
}

fn invalid(reason: &str) -> SketchError {
    SketchError::InvalidBytes(reason.to_owned())
}
