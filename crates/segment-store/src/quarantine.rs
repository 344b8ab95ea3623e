//! Manifest records that cannot be read: reported, set aside, never fatal.
//!
//! One unreadable record — a segment's statistics written differently by a buggy
//! or newer build, a damaged log entry — must not keep the whole store from
//! starting. Loading first parses an entry or checkpoint whole (the fast path);
//! when that fails it parses again piece by piece: every segment on its own, then
//! every action, then every dataset of a checkpoint. What still fails is set aside
//! as a [`QuarantinedRecord`] with its raw JSON and the error, and the rest is
//! served.
//!
//! Quarantined records are kept in every checkpoint, so they are not forgotten
//! when the log entry that held them is trimmed, and the data files they name are
//! never swept as orphans: an operator can repair the record and restore them. A
//! record that is not JSON at all names no files we can see, so while one is kept
//! the orphan sweep deletes nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SegmentMeta;
use crate::manifest::{Action, DatasetManifest, FORMAT_VERSION};

/// A manifest record that could not be read, kept aside instead of applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantinedRecord {
    /// Where it was read: `log entry 12`, `checkpoint 40`.
    pub source: String,
    /// What it is: `segment`, `action`, `dataset`, `log entry` or `checkpoint`.
    pub kind: String,
    /// Why it could not be read.
    pub error: String,
    /// Data files it names; the orphan sweep leaves them alone.
    #[serde(default)]
    pub paths: Vec<String>,
    /// True when the record is not JSON at all, so the files it names are unknown.
    #[serde(default)]
    pub opaque: bool,
    /// The record as stored (a JSON string of the text when it was not JSON).
    pub raw: Value,
}

impl QuarantinedRecord {
    fn new(source: &str, kind: &str, error: impl ToString, raw: Value) -> Self {
        let mut paths = Vec::new();
        collect_paths(&raw, &mut paths);
        let record = QuarantinedRecord {
            source: source.to_owned(),
            kind: kind.to_owned(),
            error: error.to_string(),
            paths,
            opaque: false,
            raw,
        };
        record.report();
        record
    }

    fn opaque(source: &str, kind: &str, error: impl ToString, bytes: &[u8]) -> Self {
        let record = QuarantinedRecord {
            source: source.to_owned(),
            kind: kind.to_owned(),
            error: error.to_string(),
            paths: Vec::new(),
            opaque: true,
            raw: Value::String(String::from_utf8_lossy(bytes).into_owned()),
        };
        record.report();
        record
    }

    fn report(&self) {
        tracing::error!(
            source = %self.source,
            kind = %self.kind,
            error = %self.error,
            files = ?self.paths,
            "unreadable manifest record set aside (quarantined); the rest of the store is served"
        );
    }
}

/// Header of a log entry, read when the entry as a whole does not parse.
#[derive(Deserialize)]
struct RawLogEntry {
    version: u32,
    #[serde(default)]
    actions: Vec<Value>,
}

/// Header of a checkpoint, read when the checkpoint as a whole does not parse.
#[derive(Deserialize)]
struct RawCheckpoint {
    version: u32,
    #[serde(default)]
    datasets: Vec<Value>,
    #[serde(default)]
    quarantined: Vec<Value>,
}

/// The readable actions of a log entry that did not parse whole, and its format
/// version (`None` when not even that could be read: the whole entry is set aside).
pub(crate) fn salvage_log_entry(
    source: &str,
    bytes: &[u8],
    quarantine: &mut Vec<QuarantinedRecord>,
) -> (Option<u32>, Vec<Action>) {
    let entry: RawLogEntry = match serde_json::from_slice(bytes) {
        Ok(entry) => entry,
        Err(error) => {
            quarantine.push(QuarantinedRecord::opaque(source, "log entry", error, bytes));
            return (None, Vec::new());
        }
    };
    if entry.version > FORMAT_VERSION {
        // Not unreadable, only newer: the caller refuses it as a whole.
        return (Some(entry.version), Vec::new());
    }
    let actions = entry
        .actions
        .into_iter()
        .filter_map(|action| salvage_action(source, action, quarantine))
        .collect();
    (Some(entry.version), actions)
}

/// What a checkpoint that did not parse whole still holds.
pub(crate) struct SalvagedCheckpoint {
    /// `None` when not even the version could be read: the checkpoint is set aside.
    pub version: Option<u32>,
    pub datasets: Vec<DatasetManifest>,
    pub quarantined: Vec<QuarantinedRecord>,
}

/// The readable datasets and segments of a checkpoint that did not parse whole.
pub(crate) fn salvage_checkpoint(
    source: &str,
    bytes: &[u8],
    quarantine: &mut Vec<QuarantinedRecord>,
) -> SalvagedCheckpoint {
    let checkpoint: RawCheckpoint = match serde_json::from_slice(bytes) {
        Ok(checkpoint) => checkpoint,
        Err(error) => {
            quarantine.push(QuarantinedRecord::opaque(
                source,
                "checkpoint",
                error,
                bytes,
            ));
            return SalvagedCheckpoint {
                version: None,
                datasets: Vec::new(),
                quarantined: Vec::new(),
            };
        }
    };
    if checkpoint.version > FORMAT_VERSION {
        return SalvagedCheckpoint {
            version: Some(checkpoint.version),
            datasets: Vec::new(),
            quarantined: Vec::new(),
        };
    }
    let quarantined = checkpoint
        .quarantined
        .into_iter()
        .map(|record| {
            // An earlier record that cannot be read is kept as it is, wrapped.
            QuarantinedRecord::deserialize(&record).unwrap_or_else(|error| {
                QuarantinedRecord::new(source, "quarantined record", error, record)
            })
        })
        .collect();
    let datasets = checkpoint
        .datasets
        .into_iter()
        .filter_map(|mut dataset| {
            set_aside_unreadable_segments(source, &mut dataset, "segments", quarantine);
            DatasetManifest::deserialize(&dataset)
                .map_err(|error| {
                    quarantine.push(QuarantinedRecord::new(
                        source,
                        "dataset",
                        error,
                        dataset.clone(),
                    ))
                })
                .ok()
        })
        .collect();
    SalvagedCheckpoint {
        version: Some(checkpoint.version),
        datasets,
        quarantined,
    }
}

/// One action, its unreadable segments set aside; `None` when the action itself
/// cannot be read.
fn salvage_action(
    source: &str,
    mut action: Value,
    quarantine: &mut Vec<QuarantinedRecord>,
) -> Option<Action> {
    if let Some(body) = action.get_mut("seal_segments") {
        set_aside_unreadable_segments(source, body, "segments", quarantine);
    }
    if let Some(body) = action.get_mut("replace_segments") {
        set_aside_unreadable_segments(source, body, "added", quarantine);
    }
    match Action::deserialize(&action) {
        Ok(action) => Some(action),
        Err(error) => {
            quarantine.push(QuarantinedRecord::new(source, "action", error, action));
            None
        }
    }
}

/// Removes from `body[key]` (a list of segments) every segment that does not parse.
fn set_aside_unreadable_segments(
    source: &str,
    body: &mut Value,
    key: &str,
    quarantine: &mut Vec<QuarantinedRecord>,
) {
    let Some(segments) = body.get_mut(key).and_then(Value::as_array_mut) else {
        return;
    };
    segments.retain(|segment| match SegmentMeta::deserialize(segment) {
        Ok(_) => true,
        Err(error) => {
            quarantine.push(QuarantinedRecord::new(
                source,
                "segment",
                error,
                segment.clone(),
            ));
            false
        }
    });
}

/// Every string under a `path` key: segment and rollup files alike.
fn collect_paths(value: &Value, paths: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match child {
                    Value::String(path) if key == "path" => paths.push(path.clone()),
                    _ => collect_paths(child, paths),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_paths(item, paths)),
        _ => {}
    }
}
