//! The durable log of spans waiting for a decision (`<data_dir>/sampling/`):
//! a span is acknowledged only once it is here (fsynced), so buffered spans
//! survive `kill -9`; decisions are appended too, so a restart knows which
//! buffered traces were decided, and which kept ones still have to be written.
//!
//! Frames are the WAL's (checksummed, lz4-compressed Arrow IPC, a torn tail
//! ignored); the frame's dataset name says what it holds:
//!
//! - a dataset: buffered rows of that dataset (`Record::Spans`);
//! - [`DECIDED`]: decisions (`trace_id`, `keep`, `rate`), written and synced
//!   before a kept trace's rows are appended to the store;
//! - [`APPLIED`]: traces whose kept rows are durable in the store.
//!
//! The log is rewritten (a new file renamed over the old) at start-up and when it
//! has grown: only undecided rows and remembered decisions are carried over.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use quarry_segment_store::wal::frame::{
    FILE_HEADER_LEN, FrameRead, encode_frame, file_header, read_frame, stamp_seq,
};

use super::buffer::Remembered;

/// The log's file in its directory.
const FILE_NAME: &str = "undecided.journal";
/// The file being written by a rewrite, renamed over [`FILE_NAME`] when complete.
const REWRITE_NAME: &str = "undecided.journal.new";
/// Frame "dataset" of decisions (no dataset name starts with NUL).
const DECIDED: &str = "\u{0}decided";
/// Frame "dataset" of applied traces.
const APPLIED: &str = "\u{0}applied";
const TRACE_ID: &str = "trace_id";
const KEEP: &str = "keep";
const RATE: &str = "rate";

/// Why the journal failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("sampling journal {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("sampling journal: {0}")]
    Encode(String),
}

/// One frame of the journal.
#[derive(Debug, Clone)]
pub enum Record {
    /// Rows of `dataset` waiting for their traces' decisions.
    Spans {
        environment: String,
        dataset: String,
        batch: RecordBatch,
    },
    /// Decisions of traces.
    Decided {
        environment: String,
        decisions: Vec<(String, Remembered)>,
    },
    /// Traces whose kept rows are in the store.
    Applied {
        environment: String,
        trace_ids: Vec<String>,
    },
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: File,
    bytes: u64,
    seq: u64,
    unsynced: bool,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Journal {
    /// Opens the journal in `dir` (created if missing) and reads its records.
    pub fn open(dir: &Path) -> Result<(Journal, Vec<Record>), JournalError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join(FILE_NAME);
        let records = match std::fs::read(&path) {
            Ok(bytes) => read_records(&bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(io_error(&path)(error)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let bytes = file.metadata().map_err(io_error(&path))?.len();
        let mut journal = Journal {
            dir: dir.to_owned(),
            file,
            bytes,
            seq: records.len() as u64,
            unsynced: false,
        };
        if bytes == 0 {
            journal.write_raw(&file_header())?;
            journal.sync()?;
        }
        Ok((journal, records))
    }

    /// Bytes of the journal file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends buffered rows of a dataset (durable after [`Journal::sync`]).
    pub fn append_spans(
        &mut self,
        environment: &str,
        dataset: &str,
        batch: &RecordBatch,
    ) -> Result<(), JournalError> {
        let frame = self.frame(environment, dataset, batch)?;
        self.write_raw(&frame)
    }

    /// Appends decisions.
    pub fn append_decided(
        &mut self,
        environment: &str,
        decisions: &[(String, Remembered)],
    ) -> Result<(), JournalError> {
        if decisions.is_empty() {
            return Ok(());
        }
        let frame = self.frame(environment, DECIDED, &decided_batch(decisions)?)?;
        self.write_raw(&frame)
    }

    /// Appends traces whose kept rows are durable in the store.
    pub fn append_applied(
        &mut self,
        environment: &str,
        trace_ids: &[String],
    ) -> Result<(), JournalError> {
        if trace_ids.is_empty() {
            return Ok(());
        }
        let frame = self.frame(environment, APPLIED, &applied_batch(trace_ids)?)?;
        self.write_raw(&frame)
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.unsynced {
            let path = self.dir.join(FILE_NAME);
            self.file.sync_data().map_err(io_error(&path))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Replaces the journal by `records` alone: written to a new file, synced,
    /// then renamed over the old one, so a crash leaves one or the other whole.
    pub fn rewrite(&mut self, records: &[Record]) -> Result<(), JournalError> {
        let new_path = self.dir.join(REWRITE_NAME);
        let path = self.dir.join(FILE_NAME);
        let mut bytes = file_header().to_vec();
        for (index, record) in records.iter().enumerate() {
            let (environment, dataset, batch) = match record {
                Record::Spans {
                    environment,
                    dataset,
                    batch,
                } => (environment, dataset.as_str(), batch.clone()),
                Record::Decided {
                    environment,
                    decisions,
                } => (environment, DECIDED, decided_batch(decisions)?),
                Record::Applied {
                    environment,
                    trace_ids,
                } => (environment, APPLIED, applied_batch(trace_ids)?),
            };
            let mut frame = encode_frame(environment, dataset, &batch)
                .map_err(|error| JournalError::Encode(error.to_string()))?;
            stamp_seq(&mut frame, index as u64 + 1);
            bytes.extend_from_slice(&frame);
        }
        {
            let mut file = File::create(&new_path).map_err(io_error(&new_path))?;
            file.write_all(&bytes).map_err(io_error(&new_path))?;
            file.sync_all().map_err(io_error(&new_path))?;
        }
        std::fs::rename(&new_path, &path).map_err(io_error(&path))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(&self.dir))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        self.bytes = bytes.len() as u64;
        self.seq = records.len() as u64;
        self.unsynced = false;
        Ok(())
    }

    fn frame(
        &mut self,
        environment: &str,
        dataset: &str,
        batch: &RecordBatch,
    ) -> Result<Vec<u8>, JournalError> {
        let mut frame = encode_frame(environment, dataset, batch)
            .map_err(|error| JournalError::Encode(error.to_string()))?;
        self.seq += 1;
        stamp_seq(&mut frame, self.seq);
        Ok(frame)
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), JournalError> {
        let path = self.dir.join(FILE_NAME);
        self.file.write_all(bytes).map_err(io_error(&path))?;
        self.bytes += bytes.len() as u64;
        self.unsynced = true;
        Ok(())
    }
}

/// The valid records of a journal file, up to its first torn or damaged frame
/// (never acknowledged: acknowledgements wait for the sync after a frame).
fn read_records(bytes: &[u8]) -> Vec<Record> {
    if bytes.len() < FILE_HEADER_LEN || bytes[..FILE_HEADER_LEN] != file_header() {
        if !bytes.is_empty() {
            tracing::warn!("the sampling journal has no valid header; it is ignored");
        }
        return Vec::new();
    }
    let mut records = Vec::new();
    let mut offset = FILE_HEADER_LEN;
    loop {
        let entry = match read_frame(bytes, offset) {
            FrameRead::Entry(entry, next) => {
                offset = next;
                entry
            }
            FrameRead::Invalid(reason) => {
                tracing::warn!(%reason, offset, "the sampling journal ends in a damaged frame; the rest is ignored");
                break;
            }
            // The end (the journal writes row frames only).
            _ => break,
        };
        let record = match entry.dataset.as_str() {
            DECIDED => Record::Decided {
                environment: entry.env,
                decisions: read_decided(&entry.batch),
            },
            APPLIED => Record::Applied {
                environment: entry.env,
                trace_ids: strings(&entry.batch, TRACE_ID),
            },
            _ => Record::Spans {
                environment: entry.env,
                dataset: entry.dataset,
                batch: entry.batch,
            },
        };
        records.push(record);
    }
    records
}

fn decided_batch(decisions: &[(String, Remembered)]) -> Result<RecordBatch, JournalError> {
    let schema = Schema::new(vec![
        Field::new(TRACE_ID, DataType::Utf8, false),
        Field::new(KEEP, DataType::Boolean, false),
        Field::new(RATE, DataType::Int64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from_iter_values(
                decisions.iter().map(|(id, _)| id.as_str()),
            )),
            Arc::new(BooleanArray::from_iter(
                decisions.iter().map(|(_, d)| Some(d.keep)),
            )),
            Arc::new(Int64Array::from_iter_values(
                decisions
                    .iter()
                    .map(|(_, d)| i64::try_from(d.rate).unwrap_or(i64::MAX)),
            )),
        ],
    )
    .map_err(|error| JournalError::Encode(error.to_string()))
}

fn applied_batch(trace_ids: &[String]) -> Result<RecordBatch, JournalError> {
    let schema = Schema::new(vec![Field::new(TRACE_ID, DataType::Utf8, false)]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(StringArray::from_iter_values(
            trace_ids.iter().map(String::as_str),
        ))],
    )
    .map_err(|error| JournalError::Encode(error.to_string()))
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    batch
        .column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .map(|a| (0..a.len()).map(|i| a.value(i).to_owned()).collect())
        .unwrap_or_default()
}

fn read_decided(batch: &RecordBatch) -> Vec<(String, Remembered)> {
    let ids = strings(batch, TRACE_ID);
    let keep = batch
        .column_by_name(KEEP)
        .and_then(|c| c.as_any().downcast_ref::<BooleanArray>());
    let rate = batch
        .column_by_name(RATE)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>());
    let (Some(keep), Some(rate)) = (keep, rate) else {
        return Vec::new();
    };
    ids.into_iter()
        .enumerate()
        .filter(|(i, _)| *i < keep.len() && *i < rate.len())
        .map(|(i, id)| {
            let decision = Remembered {
                keep: keep.value(i),
                rate: u64::try_from(rate.value(i)).unwrap_or(1),
            };
            (id, decision)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(n: i64) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("n", DataType::Int64, false)]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int64Array::from_iter_values(0..n))],
        )
        .unwrap()
    }

    #[test]
    fn records_survive_a_reopen_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let kept = Remembered {
            keep: true,
            rate: 4,
        };
        {
            let (mut journal, records) = Journal::open(dir.path()).unwrap();
            assert!(records.is_empty());
            journal.append_spans("prod", "shop", &spans(3)).unwrap();
            journal
                .append_decided("prod", &[("t1".into(), kept)])
                .unwrap();
            journal.append_applied("prod", &["t1".into()]).unwrap();
            journal.sync().unwrap();
        }
        // A torn frame at the end, as after kill -9 in the middle of a write.
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
        std::fs::write(&path, &bytes).unwrap();

        let (mut journal, records) = Journal::open(dir.path()).unwrap();
        assert_eq!(records.len(), 3);
        assert!(
            matches!(&records[0], Record::Spans { dataset, batch, .. } if dataset == "shop" && batch.num_rows() == 3)
        );
        assert!(
            matches!(&records[1], Record::Decided { decisions, .. } if decisions == &[("t1".to_owned(), kept)])
        );
        assert!(
            matches!(&records[2], Record::Applied { trace_ids, .. } if trace_ids == &["t1".to_owned()])
        );

        journal
            .rewrite(&[Record::Spans {
                environment: "prod".into(),
                dataset: "db".into(),
                batch: spans(2),
            }])
            .unwrap();
        journal.append_applied("prod", &["t9".into()]).unwrap();
        journal.sync().unwrap();
        drop(journal);
        let (_, records) = Journal::open(dir.path()).unwrap();
        assert_eq!(records.len(), 2);
        assert!(matches!(&records[0], Record::Spans { dataset, .. } if dataset == "db"));
        assert!(!dir.path().join(REWRITE_NAME).exists());
    }
}
