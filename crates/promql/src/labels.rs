//! Series, samples and their label sets, and how labels map to columns.

use std::collections::BTreeMap;

use quarry_schema::fields::{META_PREFIX, METRIC_NAME, SERVICE_NAME, TIMESTAMP, VALUE};

/// A label set, ordered by name (the order of Prometheus's output).
pub type Labels = BTreeMap<String, String>;

/// The label holding the metric name.
pub const NAME_LABEL: &str = "__name__";

/// Labels stored under another column name (label, column).
const RENAMED: [(&str, &str); 3] = [
    (NAME_LABEL, METRIC_NAME),
    ("job", SERVICE_NAME),
    ("instance", "service.instance.id"),
];

/// Column prefixes of Quarry's own fields, which are never labels.
const NOT_LABEL_PREFIXES: [&str; 2] = ["metric.", META_PREFIX];

/// The separator of a type variant's column (`code#str`), whose label is `code`.
const VARIANT_SEPARATOR: char = '#';

/// One time series: its labels and samples (milliseconds, value), oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels, `__name__` among them where it has one.
    pub labels: Labels,
    /// Its samples in time order, at most one per millisecond.
    pub samples: Vec<(i64, f64)>,
}

/// One value of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The labels of the series it came from (or of the group it stands for).
    pub labels: Labels,
    /// The value.
    pub value: f64,
}

/// The column holding `label`.
pub fn column_of(label: &str) -> &str {
    RENAMED
        .iter()
        .find(|(name, _)| *name == label)
        .map_or(label, |(_, column)| column)
}

/// The label `column` holds, or `None` when it is one of Quarry's own fields.
pub fn label_of(column: &str) -> Option<&str> {
    if let Some((label, _)) = RENAMED.iter().find(|(_, name)| *name == column) {
        return Some(label);
    }
    if column == TIMESTAMP
        || column == VALUE
        || NOT_LABEL_PREFIXES
            .iter()
            .any(|prefix| column.starts_with(prefix))
    {
        return None;
    }
    Some(
        column
            .split_once(VARIANT_SEPARATOR)
            .map_or(column, |(label, _)| label),
    )
}

/// `labels` without `__name__`, as functions and arithmetic return them.
pub fn without_name(mut labels: Labels) -> Labels {
    labels.remove(NAME_LABEL);
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_columns_map_both_ways() {
        for label in ["__name__", "job", "instance", "code"] {
            assert_eq!(label_of(column_of(label)), Some(label));
        }
        assert_eq!(label_of("code#str"), Some("code"));
        for own in ["timestamp", "value", "metric.kind", "meta.sample_rate"] {
            assert_eq!(label_of(own), None, "{own}");
        }
    }
}
