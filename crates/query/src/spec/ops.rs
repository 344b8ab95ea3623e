//! The ops of a query spec as types: calculations, filters, having comparisons.

use std::fmt;

/// A percentile calculation: its name and quantile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentile {
    /// `P99`, `P001`, ...
    pub name: &'static str,
    /// Quantile in 0..=1.
    pub quantile: f64,
}

/// Every percentile op Honeycomb offers.
pub const PERCENTILES: [Percentile; 13] = [
    Percentile {
        name: "P001",
        quantile: 0.001,
    },
    Percentile {
        name: "P01",
        quantile: 0.01,
    },
    Percentile {
        name: "P05",
        quantile: 0.05,
    },
    Percentile {
        name: "P10",
        quantile: 0.10,
    },
    Percentile {
        name: "P20",
        quantile: 0.20,
    },
    Percentile {
        name: "P25",
        quantile: 0.25,
    },
    Percentile {
        name: "P50",
        quantile: 0.50,
    },
    Percentile {
        name: "P75",
        quantile: 0.75,
    },
    Percentile {
        name: "P80",
        quantile: 0.80,
    },
    Percentile {
        name: "P90",
        quantile: 0.90,
    },
    Percentile {
        name: "P95",
        quantile: 0.95,
    },
    Percentile {
        name: "P99",
        quantile: 0.99,
    },
    Percentile {
        name: "P999",
        quantile: 0.999,
    },
];

/// A calculation op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CalcOp {
    /// Events (weighted).
    Count,
    /// Spans in flight per time bucket.
    Concurrency,
    /// Sum of a column (weighted).
    Sum,
    /// Mean of a column (weighted).
    Avg,
    /// Distinct values of a column (unweighted).
    CountDistinct,
    /// Distribution of a column over time (not per group).
    Heatmap,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// A weighted percentile.
    Percentile(Percentile),
    /// Mean per-second rate of change.
    RateAvg,
    /// Sum of per-second rates of change.
    RateSum,
    /// Largest per-second rate of change.
    RateMax,
    /// The value of the latest event with one (Quarry's gauge reading).
    Last,
}

impl CalcOp {
    /// The op named `text` (case-insensitive).
    pub fn parse(text: &str) -> Option<CalcOp> {
        let upper = text.to_ascii_uppercase();
        Some(match upper.as_str() {
            "COUNT" => CalcOp::Count,
            "CONCURRENCY" => CalcOp::Concurrency,
            "SUM" => CalcOp::Sum,
            "AVG" => CalcOp::Avg,
            "COUNT_DISTINCT" => CalcOp::CountDistinct,
            "HEATMAP" => CalcOp::Heatmap,
            "MAX" => CalcOp::Max,
            "MIN" => CalcOp::Min,
            "RATE_AVG" => CalcOp::RateAvg,
            "RATE_SUM" => CalcOp::RateSum,
            "RATE_MAX" => CalcOp::RateMax,
            "LAST" => CalcOp::Last,
            other => CalcOp::Percentile(*PERCENTILES.iter().find(|p| p.name == other)?),
        })
    }

    /// The op's canonical name.
    pub fn name(self) -> &'static str {
        match self {
            CalcOp::Count => "COUNT",
            CalcOp::Concurrency => "CONCURRENCY",
            CalcOp::Sum => "SUM",
            CalcOp::Avg => "AVG",
            CalcOp::CountDistinct => "COUNT_DISTINCT",
            CalcOp::Heatmap => "HEATMAP",
            CalcOp::Max => "MAX",
            CalcOp::Min => "MIN",
            CalcOp::Percentile(p) => p.name,
            CalcOp::RateAvg => "RATE_AVG",
            CalcOp::RateSum => "RATE_SUM",
            CalcOp::RateMax => "RATE_MAX",
            CalcOp::Last => "LAST",
        }
    }

    /// Whether the op reads a column.
    pub fn needs_column(self) -> bool {
        !matches!(self, CalcOp::Count | CalcOp::Concurrency)
    }

    /// Whether the op is a RATE_* (per-event rates over a window function).
    pub fn is_rate(self) -> bool {
        matches!(self, CalcOp::RateAvg | CalcOp::RateSum | CalcOp::RateMax)
    }

    /// Whether the op reads numbers only.
    pub fn needs_numbers(self) -> bool {
        !matches!(
            self,
            CalcOp::Count | CalcOp::Concurrency | CalcOp::CountDistinct
        )
    }
}

impl fmt::Display for CalcOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every op name, for error messages.
pub fn calc_op_names() -> String {
    let mut names = vec![
        "COUNT",
        "CONCURRENCY",
        "SUM",
        "AVG",
        "COUNT_DISTINCT",
        "HEATMAP",
        "MAX",
        "MIN",
    ];
    names.extend(PERCENTILES.iter().map(|p| p.name));
    names.extend(["RATE_AVG", "RATE_SUM", "RATE_MAX", "LAST"]);
    names.join(", ")
}

/// A filter op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    NotEq,
    Gt,
    GtEq,
    Lt,
    LtEq,
    StartsWith,
    DoesNotStartWith,
    EndsWith,
    DoesNotEndWith,
    Exists,
    DoesNotExist,
    Contains,
    DoesNotContain,
    In,
    NotIn,
}

/// Every filter op with its spec name.
pub const FILTER_OPS: [(&str, FilterOp); 16] = [
    ("=", FilterOp::Eq),
    ("!=", FilterOp::NotEq),
    (">", FilterOp::Gt),
    (">=", FilterOp::GtEq),
    ("<", FilterOp::Lt),
    ("<=", FilterOp::LtEq),
    ("starts-with", FilterOp::StartsWith),
    ("does-not-start-with", FilterOp::DoesNotStartWith),
    ("ends-with", FilterOp::EndsWith),
    ("does-not-end-with", FilterOp::DoesNotEndWith),
    ("exists", FilterOp::Exists),
    ("does-not-exist", FilterOp::DoesNotExist),
    ("contains", FilterOp::Contains),
    ("does-not-contain", FilterOp::DoesNotContain),
    ("in", FilterOp::In),
    ("not-in", FilterOp::NotIn),
];

impl FilterOp {
    /// The op named `text`.
    pub fn parse(text: &str) -> Option<FilterOp> {
        FILTER_OPS
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, op)| *op)
    }

    /// Whether the op matches a row whose column is missing (the negative ops do,
    /// as in Honeycomb: "does not contain x" holds for an event without the field).
    pub fn matches_missing(self) -> bool {
        matches!(
            self,
            FilterOp::NotEq
                | FilterOp::DoesNotStartWith
                | FilterOp::DoesNotEndWith
                | FilterOp::DoesNotContain
                | FilterOp::NotIn
                | FilterOp::DoesNotExist
        )
    }
}

/// Every filter op name, for error messages.
pub fn filter_op_names() -> String {
    FILTER_OPS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A comparison of a having.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    NotEq,
    Gt,
    GtEq,
    Lt,
    LtEq,
}

impl Comparison {
    /// The comparison named `text`.
    pub fn parse(text: &str) -> Option<Comparison> {
        Some(match text {
            "=" => Comparison::Eq,
            "!=" => Comparison::NotEq,
            ">" => Comparison::Gt,
            ">=" => Comparison::GtEq,
            "<" => Comparison::Lt,
            "<=" => Comparison::LtEq,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_parse_by_name() {
        assert_eq!(CalcOp::parse("count"), Some(CalcOp::Count));
        assert_eq!(CalcOp::parse("P999").map(CalcOp::name), Some("P999"));
        assert!(
            matches!(CalcOp::parse("P001"), Some(CalcOp::Percentile(p)) if p.quantile == 0.001)
        );
        assert_eq!(CalcOp::parse("P98"), None);
        assert_eq!(FilterOp::parse("not-in"), Some(FilterOp::NotIn));
        assert_eq!(FilterOp::parse("like"), None);
        assert!(FilterOp::DoesNotContain.matches_missing());
        assert!(!FilterOp::Contains.matches_missing());
        assert_eq!(Comparison::parse(">="), Some(Comparison::GtEq));
        assert!(calc_op_names().contains("RATE_MAX"));
    }
}
