//! Parsing, and the subset of PromQL Quarry evaluates.
//!
//! The subset (issue 22): selectors with matchers and offsets; `rate`, `irate`,
//! `increase`, `delta`, `idelta`, `histogram_quantile` and a few pure functions;
//! `sum`, `avg`, `min`, `max`, `count`, `topk` and `bottomk` with `by` or
//! `without`; arithmetic, comparison and set operators between vectors and
//! scalars with one-to-one matching (`on`, `ignoring`). Anything else is refused
//! before any data is read, naming what is unsupported.

use promql_parser::parser::{self, Expr, Offset, VectorMatchCardinality, VectorSelector};

use crate::PromError;

/// Functions the evaluator knows.
pub(crate) const FUNCTIONS: [&str; 15] = [
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "histogram_quantile",
    "abs",
    "ceil",
    "floor",
    "exp",
    "ln",
    "sqrt",
    "time",
    "vector",
    "scalar",
];

/// Aggregations the evaluator knows.
pub(crate) const AGGREGATIONS: [&str; 7] = ["sum", "avg", "min", "max", "count", "topk", "bottomk"];

/// A selector the query reads, with the widest window it looks back over.
#[derive(Debug, Clone)]
pub(crate) struct SelectorUse {
    /// The selector (its offset included).
    pub selector: VectorSelector,
    /// How far before an evaluation time (less the offset) it reads, in ms.
    pub look_back_ms: i64,
}

/// Parses `query` and checks it is within the subset.
pub(crate) fn parse(query: &str) -> Result<Expr, PromError> {
    let expr = parser::parse(query).map_err(PromError::BadData)?;
    check(&expr)?;
    Ok(expr)
}

fn unsupported(what: impl Into<String>) -> PromError {
    PromError::Unsupported(what.into())
}

fn check(expr: &Expr) -> Result<(), PromError> {
    match expr {
        Expr::Aggregate(aggregate) => {
            let op = aggregate.op.to_string();
            if !AGGREGATIONS.contains(&op.as_str()) {
                return Err(unsupported(format!(
                    "aggregation {op:?} (supported: {})",
                    AGGREGATIONS.join(", ")
                )));
            }
            check(&aggregate.expr)?;
            aggregate.param.as_deref().map_or(Ok(()), check)
        }
        Expr::Unary(unary) => check(&unary.expr),
        Expr::Binary(binary) => {
            if let Some(modifier) = &binary.modifier
                && matches!(
                    modifier.card,
                    VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_)
                )
            {
                return Err(unsupported("group_left and group_right vector matching"));
            }
            if binary.op.to_string() == "atan2" {
                return Err(unsupported("the atan2 operator"));
            }
            check(&binary.lhs)?;
            check(&binary.rhs)
        }
        Expr::Paren(paren) => check(&paren.expr),
        Expr::Subquery(_) => Err(unsupported("subqueries")),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(selector) => check_selector(selector),
        Expr::MatrixSelector(matrix) => check_selector(&matrix.vs),
        Expr::Call(call) => {
            if !FUNCTIONS.contains(&call.func.name) {
                return Err(unsupported(format!(
                    "function {}() (supported: {})",
                    call.func.name,
                    FUNCTIONS.join(", ")
                )));
            }
            call.args.args.iter().try_for_each(|arg| check(arg))
        }
        Expr::Extension(_) => Err(unsupported("extension expressions")),
    }
}

fn check_selector(selector: &VectorSelector) -> Result<(), PromError> {
    if selector.at.is_some() {
        return Err(unsupported("the @ modifier"));
    }
    if !selector.matchers.or_matchers.is_empty() {
        return Err(unsupported("`or` between label matchers"));
    }
    Ok(())
}

/// The offset of `selector` in milliseconds (negative offsets look ahead).
pub(crate) fn offset_ms(selector: &VectorSelector) -> i64 {
    match &selector.offset {
        None => 0,
        Some(Offset::Pos(duration)) => millis(*duration),
        Some(Offset::Neg(duration)) => -millis(*duration),
    }
}

pub(crate) fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Every selector of `expr`, with how far back it reads (`lookback_ms` for an
/// instant selector, the range for a range selector).
pub(crate) fn selectors(expr: &Expr, lookback_ms: i64, out: &mut Vec<SelectorUse>) {
    match expr {
        Expr::Aggregate(aggregate) => {
            selectors(&aggregate.expr, lookback_ms, out);
            if let Some(param) = &aggregate.param {
                selectors(param, lookback_ms, out);
            }
        }
        Expr::Unary(unary) => selectors(&unary.expr, lookback_ms, out),
        Expr::Binary(binary) => {
            selectors(&binary.lhs, lookback_ms, out);
            selectors(&binary.rhs, lookback_ms, out);
        }
        Expr::Paren(paren) => selectors(&paren.expr, lookback_ms, out),
        Expr::Subquery(subquery) => selectors(&subquery.expr, lookback_ms, out),
        Expr::VectorSelector(selector) => out.push(SelectorUse {
            selector: selector.clone(),
            look_back_ms: lookback_ms,
        }),
        Expr::MatrixSelector(matrix) => out.push(SelectorUse {
            selector: matrix.vs.clone(),
            look_back_ms: millis(matrix.range),
        }),
        Expr::Call(call) => {
            for arg in &call.args.args {
                selectors(arg, lookback_ms, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subset_parses() {
        for query in [
            r#"up{job="api"}"#,
            "rate(http_requests_total[5m] offset 1m)",
            "sum by (code) (rate(http_requests_total[5m]))",
            "histogram_quantile(0.9, sum by (le) (rate(d_bucket[5m])))",
            "topk(3, up) * 2 > bool 1",
            "a / on(job) b",
            "a and ignoring(code) b",
            "-up",
        ] {
            assert!(parse(query).is_ok(), "{query}: {:?}", parse(query).err());
        }
    }

    #[test]
    fn what_is_outside_the_subset_is_named() {
        for (query, named) in [
            ("quantile(0.5, up)", "quantile"),
            ("max_over_time(up[5m])", "max_over_time"),
            ("rate(up[5m:1m])", "subqueries"),
            ("up @ 100", "@ modifier"),
            ("a * on(job) group_left b", "group_left"),
        ] {
            let error = parse(query).unwrap_err();
            assert!(matches!(error, PromError::Unsupported(_)), "{query}");
            assert!(error.to_string().contains(named), "{query}: {error}");
        }
        assert!(matches!(parse("sum("), Err(PromError::BadData(_))));
    }

    #[test]
    fn selectors_report_their_windows() {
        let expr = parse("rate(a[10m] offset 1m) + b").unwrap();
        let mut found = Vec::new();
        selectors(&expr, 300_000, &mut found);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].look_back_ms, 600_000);
        assert_eq!(offset_ms(&found[0].selector), 60_000);
        assert_eq!(found[1].look_back_ms, 300_000);
    }
}
