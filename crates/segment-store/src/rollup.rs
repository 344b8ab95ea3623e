//! Rollups as the manifest records them: definitions, and the rollup segments
//! computed from raw segments.
//!
//! The store does not aggregate anything (that is the query engine's work, with
//! DataFusion); it only keeps, per dataset, which rollups exist and which raw
//! segments each rollup segment was computed from. That record is what makes
//! maintenance exactly-once: a raw segment is rolled up when a rollup segment lists
//! it as a source, and [`RollupSet::add_segment`] refuses a second one.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SegmentMeta;

/// What a rollup keeps: a user's (or the configuration's) definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollupDefinition {
    /// Unique per dataset.
    pub name: String,
    /// Width of a time bucket, in seconds; buckets start at multiples of it.
    pub granularity: u64,
    /// Columns the rows are grouped by (besides the time bucket).
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// What is kept per group; `COUNT` is always kept.
    #[serde(default)]
    pub measures: Vec<RollupMeasure>,
    /// Only rows matching every filter (query-spec syntax) are rolled up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<RollupFilter>,
}

/// One measure of a rollup.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollupMeasure {
    pub op: MeasureOp,
    /// The numeric column measured (absent for `COUNT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

/// The kinds of measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MeasureOp {
    /// Weighted event count.
    Count,
    /// Weighted sum and weighted count of non-null values (answers SUM and AVG).
    Sum,
    Min,
    Max,
    /// A mergeable quantile sketch (answers P001 ... P999).
    Percentiles,
}

/// A filter of a rollup definition, in the query spec's syntax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollupFilter {
    pub column: String,
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// A rollup of a dataset and the rollup segments computed so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    /// Unique forever (a re-created rollup of the same name gets a new one), so
    /// late work for a deleted rollup is never attributed to its successor.
    pub id: String,
    pub definition: RollupDefinition,
    pub created_at_ns: i64,
    #[serde(default)]
    pub segments: Vec<Arc<RollupSegment>>,
}

impl Rollup {
    /// A rollup with no segments yet.
    pub fn new(definition: RollupDefinition, created_at_ns: i64) -> Rollup {
        Rollup {
            id: uuid::Uuid::now_v7().to_string(),
            definition,
            created_at_ns,
            segments: Vec::new(),
        }
    }

    /// Paths of the raw segments already rolled up.
    pub fn covered(&self) -> HashSet<&str> {
        self.segments
            .iter()
            .flat_map(|segment| segment.sources.iter().map(String::as_str))
            .collect()
    }
}

/// The rollup rows computed from some raw segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupSegment {
    /// The Parquet file; absent when the sources had no row to roll up.
    pub file: Option<SegmentMeta>,
    /// Paths of the raw segments whose rows are in `file`, each exactly once.
    pub sources: Vec<String>,
}

/// The rollups of one dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RollupSet {
    #[serde(default)]
    pub rollups: Vec<Arc<Rollup>>,
    /// Names of default rollups created once for this dataset (never again, even
    /// after a user deletes them).
    #[serde(default)]
    pub defaults_created: Vec<String>,
}

impl RollupSet {
    /// The rollup named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Rollup>> {
        self.rollups
            .iter()
            .find(|rollup| rollup.definition.name == name)
    }

    /// Adds `rollup`, replacing one of the same name; a default is remembered.
    pub fn put(&mut self, rollup: Rollup, default: bool) {
        let name = rollup.definition.name.clone();
        self.rollups
            .retain(|existing| existing.definition.name != name);
        self.rollups.push(Arc::new(rollup));
        if default && !self.defaults_created.contains(&name) {
            self.defaults_created.push(name);
        }
    }

    /// Removes the rollup named `name`; returns it.
    pub fn drop_rollup(&mut self, name: &str) -> Option<Arc<Rollup>> {
        let index = self
            .rollups
            .iter()
            .position(|rollup| rollup.definition.name == name)?;
        Some(self.rollups.remove(index))
    }

    /// Records a rollup segment of rollup `id`, unless the rollup is gone or one of
    /// the sources is already rolled up (then nothing changes and `false` says so).
    pub fn add_segment(&mut self, id: &str, segment: RollupSegment) -> bool {
        let Some(rollup) = self.rollups.iter_mut().find(|rollup| rollup.id == id) else {
            return false;
        };
        let covered = rollup.covered();
        if segment.sources.is_empty()
            || segment
                .sources
                .iter()
                .any(|source| covered.contains(source.as_str()))
        {
            return false;
        }
        Arc::make_mut(rollup).segments.push(Arc::new(segment));
        true
    }

    /// Forgets every rollup segment computed from any of `paths` (raw segments that
    /// left the manifest); returns the files no longer referenced.
    pub fn remove_sources(&mut self, paths: &HashSet<&str>) -> Vec<SegmentMeta> {
        let mut orphaned = Vec::new();
        for rollup in &mut self.rollups {
            if !rollup
                .segments
                .iter()
                .any(|segment| segment.sources.iter().any(|s| paths.contains(s.as_str())))
            {
                continue;
            }
            let rollup = Arc::make_mut(rollup);
            rollup.segments.retain(|segment| {
                let stale = segment.sources.iter().any(|s| paths.contains(s.as_str()));
                if stale && let Some(file) = &segment.file {
                    orphaned.push(file.clone());
                }
                !stale
            });
        }
        orphaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(name: &str) -> RollupDefinition {
        RollupDefinition {
            name: name.into(),
            granularity: 60,
            dimensions: vec!["service.name".into()],
            measures: vec![RollupMeasure {
                op: MeasureOp::Count,
                column: None,
            }],
            filters: vec![],
        }
    }

    fn segment(sources: &[&str]) -> RollupSegment {
        RollupSegment {
            file: None,
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn a_source_is_rolled_up_at_most_once() {
        let mut set = RollupSet::default();
        let rollup = Rollup::new(definition("r"), 0);
        let id = rollup.id.clone();
        set.put(rollup, false);
        assert!(set.add_segment(&id, segment(&["a"])));
        assert!(!set.add_segment(&id, segment(&["a"])));
        assert!(!set.add_segment(&id, segment(&["b", "a"])));
        assert!(set.add_segment(&id, segment(&["b"])));
        assert!(!set.add_segment("other-id", segment(&["c"])));
        assert_eq!(set.get("r").unwrap().covered().len(), 2);
    }

    #[test]
    fn a_recreated_rollup_starts_empty_and_ignores_its_predecessor() {
        let mut set = RollupSet::default();
        let first = Rollup::new(definition("r"), 0);
        let old_id = first.id.clone();
        set.put(first, true);
        assert!(set.add_segment(&old_id, segment(&["a"])));
        set.put(Rollup::new(definition("r"), 1), false);
        assert!(set.get("r").unwrap().segments.is_empty());
        assert!(!set.add_segment(&old_id, segment(&["b"])));
        assert_eq!(set.defaults_created, vec!["r".to_owned()]);
        assert!(set.drop_rollup("r").is_some());
        assert!(set.drop_rollup("r").is_none());
    }

    #[test]
    fn removed_sources_take_their_rollup_segments_along() {
        let mut set = RollupSet::default();
        let rollup = Rollup::new(definition("r"), 0);
        let id = rollup.id.clone();
        set.put(rollup, false);
        set.add_segment(&id, segment(&["a"]));
        set.add_segment(&id, segment(&["b"]));
        set.remove_sources(&HashSet::from(["a"]));
        let covered: Vec<&str> = set.get("r").unwrap().covered().into_iter().collect();
        assert_eq!(covered, vec!["b"]);
    }

    #[test]
    fn definitions_read_the_documented_json() {
        let text = r#"{"name": "requests", "granularity": 60,
            "dimensions": ["service.name"],
            "measures": [{"op": "COUNT"}, {"op": "PERCENTILES", "column": "duration_ms"}],
            "filters": [{"column": "error", "op": "exists"}]}"#;
        let parsed: RollupDefinition = serde_json::from_str(text).unwrap();
        assert_eq!(parsed.measures[1].op, MeasureOp::Percentiles);
        assert_eq!(parsed.filters[0].value, None);
        let unknown = r#"{"name": "x", "granularity": 60, "color": "red"}"#;
        assert!(serde_json::from_str::<RollupDefinition>(unknown).is_err());
    }
}
