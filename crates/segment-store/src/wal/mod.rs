//! The write-ahead log: durability for appends until they are sealed into segments.
//!
//! Files are `<wal_dir>/<file id, 20 digits>.wal`, written by one thread
//! ([`writer`]) that groups concurrent appends into one write and one fsync. Every
//! entry has a store-wide sequence number. A file is deleted once every entry in it
//! is at or below its dataset's sealed sequence in the manifest ([`WalIndex`]).

pub mod frame;
mod replay;
pub mod writer;

pub use frame::SourcePositions;
pub use replay::{ReplayOutcome, replay};
pub use writer::{SharedPositions, WalAppend, WalAppendEntry, WalHandle, WalSink};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// Key of a dataset: (environment, dataset name).
pub type DatasetKey = (String, String);

/// Path of WAL file `id`.
pub fn file_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

/// Ids of the WAL files in `dir`, ascending.
pub fn list_files(dir: &Path) -> Result<Vec<u64>> {
    let wal_error = |source| StoreError::Wal {
        path: dir.display().to_string(),
        source,
    };
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(wal_error)? {
        let entry = entry.map_err(wal_error)?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|name| name.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(id) = stem.parse::<u64>() {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Fsyncs a directory so a created or deleted file name is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let wal_error = |source| StoreError::Wal {
        path: dir.display().to_string(),
        source,
    };
    std::fs::File::open(dir)
        .map_err(wal_error)?
        .sync_all()
        .map_err(wal_error)
}

/// Which datasets each WAL file holds entries of, and up to which sequence.
#[derive(Debug, Default)]
pub struct WalIndex {
    files: BTreeMap<u64, HashMap<DatasetKey, u64>>,
    active: Option<u64>,
}

impl WalIndex {
    /// Records that file `id` holds an entry of `key` with sequence `seq`.
    pub fn record(&mut self, id: u64, key: &DatasetKey, seq: u64) {
        let file = self.files.entry(id).or_default();
        match file.get_mut(key) {
            Some(max) => *max = (*max).max(seq),
            None => {
                file.insert(key.clone(), seq);
            }
        }
    }

    /// Registers a file (with no entries yet), so an empty file is deleted too.
    pub fn add_file(&mut self, id: u64) {
        self.files.entry(id).or_default();
    }

    /// Marks `id` as the file being written (never deleted while active).
    pub fn set_active(&mut self, id: u64) {
        self.files.entry(id).or_default();
        self.active = Some(id);
    }

    /// Removes and returns the closed files whose every entry is sealed, given each
    /// dataset's sealed sequence.
    pub fn take_deletable(&mut self, sealed_seq: impl Fn(&DatasetKey) -> u64) -> Vec<u64> {
        let deletable: Vec<u64> = self
            .files
            .iter()
            .filter(|(id, _)| Some(**id) != self.active)
            .filter(|(_, datasets)| datasets.iter().all(|(key, max)| *max <= sealed_seq(key)))
            .map(|(id, _)| *id)
            .collect();
        for id in &deletable {
            self.files.remove(id);
        }
        deletable
    }

    /// Whether the active file holds any entry.
    pub fn active_has_entries(&self) -> bool {
        self.active
            .and_then(|id| self.files.get(&id))
            .is_some_and(|datasets| !datasets.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_closed_fully_sealed_files_are_deletable() {
        let a: DatasetKey = ("default".into(), "a".into());
        let b: DatasetKey = ("default".into(), "b".into());
        let mut index = WalIndex::default();
        index.record(1, &a, 5);
        index.record(1, &b, 6);
        index.record(2, &a, 9);
        index.set_active(3);
        index.record(3, &a, 10);
        // b is sealed up to 6, a only up to 5: file 1 goes, file 2 (a:9) stays.
        let sealed = |key: &DatasetKey| if key == &a { 5 } else { 6 };
        assert_eq!(index.take_deletable(sealed), vec![1]);
        // Everything sealed: the active file 3 still stays.
        assert_eq!(index.take_deletable(|_| 100), vec![2]);
        assert!(index.active_has_entries());
    }
}
