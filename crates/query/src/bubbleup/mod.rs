//! BubbleUp: what is different about a selection of events, column by column.
//!
//! Decoupled from the query-spec compiler: [`bubbleup`] takes a DataFrame of the
//! base rows (already filtered by the base query) and a selection predicate, and
//! compares every column between the rows where the predicate holds and the rest
//! (the baseline). [`run_bubbleup`] builds both from a [`BubbleUpRequest`].
//! Scoring is described in [`scoring`]; which columns are compared, in [`columns`].

mod analyze;
pub mod columns;
mod request;
pub mod scoring;

pub use analyze::{
    BubbleUpOptions, BubbleUpResult, ColumnComparison, DEFAULT_COLUMNS_PER_PASS,
    DEFAULT_HISTOGRAM_BUCKETS, DEFAULT_MAX_ROWS_PER_SIDE, DEFAULT_TOP_VALUES, HistogramShares,
    SideTotals, SkippedColumn, bubbleup,
};
pub use request::{
    BaseQuery, BubbleUpRequest, Filter, Selection, TimeValue, plan_request, run_bubbleup,
};
