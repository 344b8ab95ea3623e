//! Reading the WAL back at start-up.

use std::fs::OpenOptions;
use std::path::Path;

use super::frame::{FILE_HEADER_LEN, FILE_MAGIC, FrameRead, WalEntry, read_frame};
use super::{DatasetKey, WalIndex, file_path, list_files};
use crate::{Result, StoreError};

/// What replay found.
#[derive(Debug, Default)]
pub struct ReplayOutcome {
    /// Entries handed to `apply` (not yet sealed).
    pub entries_applied: u64,
    /// Entries skipped because the manifest says they are sealed already.
    pub entries_already_sealed: u64,
    /// Highest sequence number seen (0 when the WAL is empty).
    pub max_seq: u64,
    /// Highest file id present (the writer starts after it).
    pub last_file_id: Option<u64>,
}

/// Replays every WAL file in `dir` in order. Entries at or below their dataset's
/// sealed sequence are skipped (they are in segments already), which makes replay
/// idempotent however often it runs. A torn tail of the last file (a write that
/// was never acknowledged) is cut off; an invalid frame anywhere else is
/// corruption and stops the start-up rather than silently dropping acknowledged
/// data behind it.
pub fn replay(
    dir: &Path,
    sealed_seq: impl Fn(&DatasetKey) -> u64,
    index: &mut WalIndex,
    mut apply: impl FnMut(WalEntry) -> Result<()>,
) -> Result<ReplayOutcome> {
    let files = list_files(dir)?;
    let mut outcome = ReplayOutcome {
        last_file_id: files.last().copied(),
        ..Default::default()
    };
    for (position, &id) in files.iter().enumerate() {
        let is_last = position + 1 == files.len();
        let path = file_path(dir, id);
        let wal_error = |source| StoreError::Wal {
            path: path.display().to_string(),
            source,
        };
        let bytes = std::fs::read(&path).map_err(wal_error)?;
        if bytes.len() < FILE_HEADER_LEN || &bytes[..4] != FILE_MAGIC {
            if is_last {
                // Crashed while creating the file: nothing in it was acknowledged.
                tracing::warn!(path = %path.display(), "removing a WAL file with an incomplete header");
                std::fs::remove_file(&path).map_err(wal_error)?;
                continue;
            }
            return Err(StoreError::WalCorrupt {
                path: path.display().to_string(),
                offset: 0,
                reason: "bad file header".into(),
            });
        }
        index.add_file(id);
        let mut offset = FILE_HEADER_LEN;
        loop {
            match read_frame(&bytes, offset) {
                FrameRead::End => break,
                FrameRead::Entry(entry, next) => {
                    offset = next;
                    outcome.max_seq = outcome.max_seq.max(entry.seq);
                    let key = (entry.env.clone(), entry.dataset.clone());
                    index.record(id, &key, entry.seq);
                    if entry.seq <= sealed_seq(&key) {
                        outcome.entries_already_sealed += 1;
                    } else {
                        outcome.entries_applied += 1;
                        apply(entry)?;
                    }
                }
                FrameRead::Invalid(reason) if is_last => {
                    tracing::warn!(path = %path.display(), offset, %reason, "cutting a torn write at the end of the WAL");
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(wal_error)?;
                    file.set_len(offset as u64).map_err(wal_error)?;
                    file.sync_all().map_err(wal_error)?;
                    break;
                }
                FrameRead::Invalid(reason) => {
                    return Err(StoreError::WalCorrupt {
                        path: path.display().to_string(),
                        offset: offset as u64,
                        reason,
                    });
                }
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::frame::{encode_frame, file_header, stamp_seq};
    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use std::io::Write;
    use std::sync::Arc;

    fn frame(seq: u64, dataset: &str) -> Vec<u8> {
        let batch = RecordBatch::try_from_iter(vec![(
            "v",
            Arc::new(Int64Array::from(vec![seq as i64])) as ArrayRef,
        )])
        .unwrap();
        let mut frame = encode_frame("default", dataset, &batch).unwrap();
        stamp_seq(&mut frame, seq);
        frame
    }

    fn write_file(dir: &Path, id: u64, frames: &[Vec<u8>], tail: &[u8]) {
        let mut file = std::fs::File::create(file_path(dir, id)).unwrap();
        file.write_all(&file_header()).unwrap();
        for frame in frames {
            file.write_all(frame).unwrap();
        }
        file.write_all(tail).unwrap();
    }

    #[test]
    fn skips_sealed_entries_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), 1, &[frame(1, "a"), frame(2, "b")], &[]);
        let torn = frame(4, "a");
        write_file(dir.path(), 2, &[frame(3, "a")], &torn[..torn.len() / 2]);
        let sealed = |key: &DatasetKey| if key.1 == "a" { 1 } else { 0 };
        let mut index = WalIndex::default();
        let mut seen = Vec::new();
        let outcome = replay(dir.path(), sealed, &mut index, |entry| {
            seen.push((entry.seq, entry.dataset));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(2, "b".to_owned()), (3, "a".to_owned())]);
        assert_eq!(
            (
                outcome.entries_applied,
                outcome.entries_already_sealed,
                outcome.max_seq
            ),
            (2, 1, 3)
        );
        // The torn tail is gone: a second replay sees the same and no warning path.
        let len = std::fs::metadata(file_path(dir.path(), 2)).unwrap().len();
        assert_eq!(len as usize, FILE_HEADER_LEN + frame(3, "a").len());
    }

    #[test]
    fn corruption_before_the_last_file_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut bad = frame(1, "a");
        let last = bad.len() - 1;
        bad[last] ^= 1;
        write_file(dir.path(), 1, &[bad], &[]);
        write_file(dir.path(), 2, &[frame(2, "a")], &[]);
        let result = replay(dir.path(), |_| 0, &mut WalIndex::default(), |_| Ok(()));
        assert!(matches!(result, Err(StoreError::WalCorrupt { .. })));
    }
}
