//! Reading the WAL back at start-up.

use std::fs::OpenOptions;
use std::path::Path;

use super::frame::{
    FILE_HEADER_LEN, FILE_MAGIC, FORMAT_VERSION, FrameRead, SourcePositions, WalEntry,
    read_frame_of,
};
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
    /// Stream sources' positions, as the last committed transaction left them.
    pub positions: SourcePositions,
}

/// Replays every WAL file in `dir` in order. Entries at or below their dataset's
/// sealed sequence are skipped (they are in segments already), which makes replay
/// idempotent however often it runs. A torn tail of the last file (a write that
/// was never acknowledged) is cut off, and with it every frame of a transaction
/// whose positions frame did not make it; an invalid frame anywhere else is
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
        let corrupt = |offset: usize, reason: String| StoreError::WalCorrupt {
            path: path.display().to_string(),
            offset: offset as u64,
            reason,
        };
        let bytes = std::fs::read(&path).map_err(wal_error)?;
        let Some(version) = file_version(&bytes) else {
            if is_last {
                // Crashed while creating the file: nothing in it was acknowledged.
                tracing::warn!(path = %path.display(), "removing a WAL file with an incomplete header");
                std::fs::remove_file(&path).map_err(wal_error)?;
                continue;
            }
            return Err(corrupt(0, "bad file header".into()));
        };
        if version > FORMAT_VERSION {
            return Err(corrupt(
                0,
                format!(
                    "WAL format {version} is newer than this build reads ({FORMAT_VERSION}); upgrade Quarry"
                ),
            ));
        }
        index.add_file(id);
        let mut offset = FILE_HEADER_LEN;
        // Held entries of the open transaction, and where it starts.
        let mut held: Vec<WalEntry> = Vec::new();
        let mut held_from = offset;
        let mut apply_entry = |entry: WalEntry, outcome: &mut ReplayOutcome| -> Result<()> {
            outcome.max_seq = outcome.max_seq.max(entry.seq);
            let key = (entry.env.clone(), entry.dataset.clone());
            index.record(id, &key, entry.seq);
            if entry.seq <= sealed_seq(&key) {
                outcome.entries_already_sealed += 1;
                Ok(())
            } else {
                outcome.entries_applied += 1;
                apply(entry)
            }
        };
        let torn = loop {
            match read_frame_of(version, &bytes, offset) {
                FrameRead::End if held.is_empty() => break None,
                FrameRead::End => {
                    break Some((
                        held_from,
                        "a transaction without its positions frame".into(),
                    ));
                }
                FrameRead::Entry(entry, next) if entry.held => {
                    if held.is_empty() {
                        held_from = offset;
                    }
                    held.push(entry);
                    offset = next;
                }
                FrameRead::Entry(..) if !held.is_empty() => {
                    return Err(corrupt(
                        offset,
                        "a frame inside another write's transaction".into(),
                    ));
                }
                FrameRead::Entry(entry, next) => {
                    apply_entry(entry, &mut outcome)?;
                    offset = next;
                }
                FrameRead::Positions(positions, next) => {
                    for entry in held.drain(..) {
                        apply_entry(entry, &mut outcome)?;
                    }
                    for (name, position) in positions {
                        let kept = outcome.positions.entry(name).or_insert(position);
                        *kept = (*kept).max(position);
                    }
                    offset = next;
                }
                FrameRead::Invalid(reason) if held.is_empty() => break Some((offset, reason)),
                FrameRead::Invalid(reason) => break Some((held_from, reason)),
            }
        };
        let Some((cut_at, reason)) = torn else {
            continue;
        };
        if !is_last {
            return Err(corrupt(cut_at, reason));
        }
        tracing::warn!(path = %path.display(), offset = cut_at, %reason, "cutting a torn write at the end of the WAL");
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(wal_error)?;
        file.set_len(cut_at as u64).map_err(wal_error)?;
        file.sync_all().map_err(wal_error)?;
    }
    Ok(outcome)
}

/// The format version of a WAL file, if its header is whole.
fn file_version(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < FILE_HEADER_LEN || &bytes[..4] != FILE_MAGIC {
        return None;
    }
    Some(u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::frame::{encode_frame, encode_positions, file_header, mark_held, stamp_seq};
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

    fn held(seq: u64, dataset: &str) -> Vec<u8> {
        let batch = RecordBatch::try_from_iter(vec![(
            "v",
            Arc::new(Int64Array::from(vec![seq as i64])) as ArrayRef,
        )])
        .unwrap();
        let mut frame = encode_frame("default", dataset, &batch).unwrap();
        mark_held(&mut frame);
        stamp_seq(&mut frame, seq);
        frame
    }

    fn positions(pairs: &[(&str, i64)]) -> Vec<u8> {
        let positions = pairs
            .iter()
            .map(|(name, next)| ((*name).to_owned(), *next))
            .collect();
        encode_positions(&positions).unwrap()
    }

    /// Replays `dir` with nothing sealed: the applied entries' sequence numbers.
    fn replayed_seqs(dir: &Path) -> (Vec<u64>, ReplayOutcome) {
        let mut seen = Vec::new();
        let outcome = replay(
            dir,
            |_| 0,
            &mut WalIndex::default(),
            |entry| {
                seen.push(entry.seq);
                Ok(())
            },
        )
        .unwrap();
        (seen, outcome)
    }

    #[test]
    fn a_transaction_counts_only_with_its_positions_frame() {
        let dir = tempfile::tempdir().unwrap();
        // File 1: a committed transaction over two datasets.
        write_file(
            dir.path(),
            1,
            &[held(1, "a"), held(2, "b"), positions(&[("p0", 10)])],
            &[],
        );
        // File 2 opens with the positions so far, then a committed transaction,
        // then one whose positions frame never made it (its rows are whole).
        let committed = [
            positions(&[("p0", 10)]),
            held(3, "a"),
            positions(&[("p1", 4)]),
        ];
        let tail = [held(4, "a"), held(5, "b")].concat();
        write_file(dir.path(), 2, &committed, &tail);
        let (seen, outcome) = replayed_seqs(dir.path());
        assert_eq!(seen, vec![1, 2, 3]);
        assert_eq!(
            outcome.positions,
            SourcePositions::from([("p0".to_owned(), 10), ("p1".to_owned(), 4)])
        );
        // The uncommitted transaction was cut off whole.
        let whole: usize = committed.iter().map(Vec::len).sum();
        let len = std::fs::metadata(file_path(dir.path(), 2)).unwrap().len();
        assert_eq!(len as usize, FILE_HEADER_LEN + whole);
    }

    #[test]
    fn a_torn_transaction_is_cut_from_its_first_frame() {
        let dir = tempfile::tempdir().unwrap();
        let closing = positions(&[("p0", 3)]);
        write_file(
            dir.path(),
            1,
            &[frame(1, "a"), held(2, "a")],
            &closing[..closing.len() - 1],
        );
        let (seen, outcome) = replayed_seqs(dir.path());
        assert_eq!(seen, vec![1]);
        assert!(outcome.positions.is_empty());
        let len = std::fs::metadata(file_path(dir.path(), 1)).unwrap().len();
        assert_eq!(len as usize, FILE_HEADER_LEN + frame(1, "a").len());
    }

    #[test]
    fn an_open_transaction_before_the_last_file_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), 1, &[held(1, "a")], &[]);
        write_file(dir.path(), 2, &[frame(2, "a")], &[]);
        let result = replay(dir.path(), |_| 0, &mut WalIndex::default(), |_| Ok(()));
        assert!(matches!(result, Err(StoreError::WalCorrupt { .. })));
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
