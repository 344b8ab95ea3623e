//! The one time bucket of a row, shared by query specs, rollups and their
//! rewrite of specs, so a rollup's bucket and a raw plan's bucket can never
//! disagree: `timestamp` truncated to a whole multiple of the granularity since
//! the Unix epoch.

use arrow::datatypes::{DataType, IntervalMonthDayNano};
use datafusion::common::{Column, ScalarValue};
use datafusion::functions::expr_fn::date_bin;
use datafusion::logical_expr::{Expr, cast, lit};
use quarry_schema::{TIMESTAMP, TIMESTAMP_TZ};

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// The start of the row's bucket of `granularity_secs`, as a timestamp.
pub fn bucket_start(granularity_secs: i64) -> Expr {
    let stride = IntervalMonthDayNano::new(0, 0, granularity_secs.saturating_mul(NANOS_PER_SECOND));
    date_bin(
        lit(ScalarValue::IntervalMonthDayNano(Some(stride))),
        Expr::Column(Column::new_unqualified(TIMESTAMP)),
        lit(ScalarValue::TimestampNanosecond(
            Some(0),
            Some(TIMESTAMP_TZ.into()),
        )),
    )
}

/// The start of the row's bucket of `granularity_secs`, in nanoseconds since
/// the epoch.
pub fn bucket_start_ns(granularity_secs: i64) -> Expr {
    cast(bucket_start(granularity_secs), DataType::Int64)
}
