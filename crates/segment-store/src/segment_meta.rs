//! What the manifest records about one sealed Parquet segment.
//!
//! Enough to plan a query without opening the file: time range, per-column
//! statistics, and where each bloom filter lies so a point lookup reads only it.

use quarry_schema::FieldType;
use serde::{Deserialize, Serialize};

use crate::stat_value;

/// One immutable Parquet segment of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Object store path of the Parquet file.
    pub path: String,
    /// File size in bytes (lets readers skip a HEAD request).
    pub size_bytes: u64,
    pub rows: u64,
    /// Smallest and largest `timestamp` in the segment (ns since the epoch, UTC).
    pub min_time_ns: i64,
    pub max_time_ns: i64,
    /// Start of the time partition the segment belongs to (ns).
    pub partition_start_ns: i64,
    /// Creation time (ns), for age-based maintenance.
    pub created_at_ns: i64,
    /// Statistics of every column present in the file.
    pub columns: Vec<ColumnStats>,
    /// Bloom filters in the file, one per (column, row group).
    pub bloom_filters: Vec<BloomFilterLocation>,
}

impl SegmentMeta {
    /// Statistics of column `name`, if the segment has it.
    pub fn column(&self, name: &str) -> Option<&ColumnStats> {
        self.columns.iter().find(|column| column.name == name)
    }
}

/// Statistics of one column of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub name: String,
    pub field_type: FieldType,
    pub null_count: u64,
    /// Exact minimum, or for long strings a prefix that bounds it from below.
    #[serde(default, deserialize_with = "stat_value::unknown_if_null")]
    pub min: Option<StatValue>,
    /// Exact maximum; absent for strings longer than the statistics limit.
    #[serde(default, deserialize_with = "stat_value::unknown_if_null")]
    pub max: Option<StatValue>,
}

/// A statistics value.
///
/// Floats may be infinite (a column holding `inf` has `inf` as its maximum). JSON
/// has no number for them, so they are written as the strings `"Infinity"`,
/// `"-Infinity"` and `"NaN"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatValue {
    Bool(bool),
    Int(i64),
    Float(#[serde(with = "stat_value::float")] f64),
    String(String),
}

/// Where one bloom filter lies inside a segment file: header and bitset, the bytes
/// `parquet::bloom_filter::Sbbf::from_bytes` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BloomFilterLocation {
    pub column: String,
    pub row_group: usize,
    pub offset: u64,
    pub length: u64,
}
