//! Trace assembly: every row of one trace, across the environment's datasets, as a
//! span tree.
//!
//! ```text
//!  SELECT * FROM "__all__" WHERE "trace.trace_id" = '<id>' LIMIT MAX_TRACE_ROWS + 1
//!     │ the equality reaches each dataset's scan: time/stats pruning, then the
//!     │ segments' bloom filters on trace.trace_id rule out almost every segment
//!     ▼
//!  rows (timestamp + non-null columns) ──► build_trace (pure) ──► Trace
//! ```

mod fetch;
mod tree;

pub use fetch::{MAX_TRACE_ROWS, assemble_trace};
pub use tree::{Annotation, Trace, TraceRow, TraceSpan, build_trace, uncovered_ms};
