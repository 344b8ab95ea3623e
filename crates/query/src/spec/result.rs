//! The response of `POST /api/v1/query/{dataset}` (see docs/query.md).

use serde::Serialize;
use serde_json::{Map, Value};
use ts_rs::TS;

/// A query's answer.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct QueryResult {
    /// `raw`, or `rollup:<name>` when answered from a rollup.
    pub source: String,
    /// Start of the range, epoch seconds.
    #[ts(type = "number")]
    pub start_time: Value,
    /// End of the range (exclusive), epoch seconds.
    #[ts(type = "number")]
    pub end_time: Value,
    /// Seconds per time bucket.
    pub granularity: i64,
    /// The calculations, in spec order.
    pub calculations: Vec<CalculationInfo>,
    /// The breakdown columns, in spec order.
    pub breakdowns: Vec<String>,
    /// The top groups over the whole range, in order.
    pub groups: Vec<Group>,
    /// One point per (time bucket, group) with rows, by time.
    pub series: Vec<SeriesPoint>,
    /// The calculations over every matching row.
    #[ts(type = "Record<string, number | null>")]
    pub totals: Map<String, Value>,
    /// One per HEATMAP calculation.
    pub heatmaps: Vec<Heatmap>,
    /// How much work the query did.
    pub stats: Stats,
}

/// A calculation as echoed in the result.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct CalculationInfo {
    /// Key of its values: `COUNT`, `P99(duration_ms)`, ...
    pub name: String,
    /// Its op.
    pub op: String,
    /// Its column.
    pub column: Option<String>,
}

/// One group.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct Group {
    /// Breakdown column -> value (null when missing).
    #[ts(type = "Record<string, string | number | boolean | null>")]
    pub key: Map<String, Value>,
    /// Calculation name -> value.
    #[ts(type = "Record<string, number | null>")]
    pub values: Map<String, Value>,
    /// Up to three real events of the group.
    pub exemplars: Vec<Exemplar>,
}

/// One point of a group's time series.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct SeriesPoint {
    /// Start of the time bucket, epoch seconds.
    #[ts(type = "number")]
    pub time: Value,
    /// The group's key.
    #[ts(type = "Record<string, string | number | boolean | null>")]
    pub key: Map<String, Value>,
    /// Calculation name -> value in this bucket.
    #[ts(type = "Record<string, number | null>")]
    pub values: Map<String, Value>,
}

/// A reference to one real event.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, TS)]
pub struct Exemplar {
    /// Its dataset.
    pub dataset: Option<String>,
    /// Its time, RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// `trace.trace_id`.
    pub trace_id: Option<String>,
    /// `trace.span_id`.
    pub span_id: Option<String>,
    /// The calculation's column value.
    pub value: Option<f64>,
}

/// A heatmap of one column.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct Heatmap {
    /// `HEATMAP(column)`.
    pub name: String,
    /// The column.
    pub column: String,
    /// `linear` or `log`.
    pub scale: String,
    /// Value buckets, ascending.
    pub buckets: Vec<HeatmapBucket>,
    /// Start of every time bucket of the range, epoch seconds.
    #[ts(type = "Array<number>")]
    pub times: Vec<Value>,
    /// Non-empty cells.
    pub cells: Vec<HeatmapCell>,
    /// Counts per value bucket over the whole range.
    pub totals: Vec<BucketTotal>,
}

/// A value bucket: `lower <= value < upper` (the last bucket includes `upper`).
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct HeatmapBucket {
    /// Its index.
    pub index: usize,
    /// Lower edge.
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
}

/// One cell: a time bucket and a value bucket.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct HeatmapCell {
    /// Start of the time bucket, epoch seconds.
    #[ts(type = "number")]
    pub time: Value,
    /// Value bucket index.
    pub bucket: usize,
    /// Events (weighted).
    pub count: f64,
    /// Up to three real events of the cell.
    pub exemplars: Vec<Exemplar>,
}

/// A value bucket's count over the whole range.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct BucketTotal {
    /// Value bucket index.
    pub bucket: usize,
    /// Events (weighted).
    pub count: f64,
}

/// Work done.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct Stats {
    /// Rows that passed the time range and filters (unweighted).
    pub rows_matched: u64,
    /// Wall time of the query.
    pub elapsed_ms: f64,
}
