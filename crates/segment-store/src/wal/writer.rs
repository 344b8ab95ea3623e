//! The WAL writer thread: orders appends, writes them, syncs once per group.
//!
//! A dedicated OS thread (not a tokio task) because its work is blocking file I/O
//! and fsync; callers hand it frames already encoded and compressed on their own
//! tasks, so the thread's time goes to the disk. After a group is durable it hands
//! each entry, in sequence order, to the [`WalSink`] (the buffers) before
//! acknowledging: an acknowledged append is durable *and* visible, and buffers see
//! a dataset's entries in sequence order, which sealing relies on.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use arrow::array::RecordBatch;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::frame::{SourcePositions, encode_positions, file_header, mark_held, stamp_seq};
use super::{DatasetKey, WalIndex, file_path, sync_dir};
use crate::metrics::observe_since;
use crate::{Durability, Result, StoreError, StoreMetrics};

/// Most appends written in one group.
const MAX_GROUP_APPENDS: usize = 1024;
/// Most bytes written in one group.
const MAX_GROUP_BYTES: usize = 32 << 20;
/// How long the idle writer sleeps between checks when nothing needs syncing.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Receives each entry after it is durable, in sequence order.
pub trait WalSink: Send + Sync + 'static {
    /// Entry `seq` of `key` is durable: make it visible.
    fn applied(&self, seq: u64, key: &DatasetKey, batch: RecordBatch);
}

/// One append handed to the writer: one entry, or a transaction of entries
/// committed with stream sources' positions.
pub struct WalAppend {
    pub entries: Vec<WalAppendEntry>,
    /// Positions committed with the entries, which then count only together
    /// (see [`super::frame`]).
    pub positions: Option<SourcePositions>,
    /// Answered with the last entry's sequence number once durable.
    pub done: oneshot::Sender<Result<u64>>,
}

/// One dataset's rows in an append.
pub struct WalAppendEntry {
    /// Encoded by [`super::frame::encode_frame`]; the writer stamps the sequence.
    pub frame: Vec<u8>,
    pub key: DatasetKey,
    pub batch: RecordBatch,
}

impl WalAppend {
    fn bytes(&self) -> usize {
        self.entries.iter().map(|entry| entry.frame.len()).sum()
    }
}

enum Command {
    Append(WalAppend),
    /// Close the active file if it has entries and start a new one.
    Rotate(oneshot::Sender<Result<()>>),
    /// Sync and stop.
    Shutdown(oneshot::Sender<()>),
}

/// Handle to the writer thread.
pub struct WalHandle {
    sender: SyncSender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
    pub index: Arc<Mutex<WalIndex>>,
}

/// Settings of the writer thread.
pub struct WriterSettings {
    pub dir: PathBuf,
    pub first_file_id: u64,
    pub next_seq: u64,
    pub durability: Durability,
    pub relaxed_sync_interval: Duration,
    pub file_max_bytes: u64,
    pub max_pending: usize,
}

/// Stream sources' durable positions, shared between the writer (which moves
/// them) and the store (which reads them).
pub type SharedPositions = Arc<Mutex<SourcePositions>>;

impl WalHandle {
    /// Starts the writer on a new file.
    pub fn start(
        settings: WriterSettings,
        index: Arc<Mutex<WalIndex>>,
        positions: SharedPositions,
        sink: Arc<dyn WalSink>,
        metrics: Arc<StoreMetrics>,
    ) -> Result<WalHandle> {
        let (sender, receiver) = sync_channel(settings.max_pending.max(1));
        let mut writer = Writer::open(settings, index.clone(), positions, sink, metrics)?;
        let thread = std::thread::Builder::new()
            .name("quarry-wal".into())
            .spawn(move || writer.run(receiver))
            .map_err(|source| StoreError::Wal {
                path: "writer thread".into(),
                source,
            })?;
        Ok(WalHandle {
            sender,
            thread: Mutex::new(Some(thread)),
            index,
        })
    }

    /// Queues an append; refuses at once when the queue is full (load shedding).
    pub fn submit(&self, append: WalAppend) -> Result<()> {
        match self.sender.try_send(Command::Append(append)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(StoreError::Overloaded(
                "write-ahead log queue is full".into(),
            )),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::ShutDown),
        }
    }

    /// Closes the active file (if it has entries) so it can be deleted once sealed.
    pub async fn rotate(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.send_blocking(Command::Rotate(done)).await?;
        wait.await.map_err(|_| StoreError::ShutDown)?
    }

    /// Syncs and stops the writer; later appends fail with [`StoreError::ShutDown`].
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.send_blocking(Command::Shutdown(done)).await.is_ok() {
            let _ = wait.await;
        }
        let thread = self.thread.lock().take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    async fn send_blocking(&self, command: Command) -> Result<()> {
        let sender = self.sender.clone();
        tokio::task::spawn_blocking(move || sender.send(command))
            .await
            .map_err(|_| StoreError::ShutDown)?
            .map_err(|_| StoreError::ShutDown)
    }
}

struct Writer {
    settings: WriterSettings,
    index: Arc<Mutex<WalIndex>>,
    positions: SharedPositions,
    sink: Arc<dyn WalSink>,
    metrics: Arc<StoreMetrics>,
    file: File,
    file_id: u64,
    file_bytes: u64,
    next_seq: u64,
    unsynced: bool,
    /// Last fsync in relaxed mode; a busy writer syncs when the interval has passed.
    last_sync: std::time::Instant,
    /// Set after a failed write or sync: the file's state is unknown, so nothing
    /// more may be acknowledged (fsync errors cannot be retried safely).
    failed: Option<String>,
}

impl Writer {
    fn open(
        settings: WriterSettings,
        index: Arc<Mutex<WalIndex>>,
        positions: SharedPositions,
        sink: Arc<dyn WalSink>,
        metrics: Arc<StoreMetrics>,
    ) -> Result<Writer> {
        let file_id = settings.first_file_id;
        let (file, file_bytes) = create_file(&settings.dir, file_id, &positions.lock())?;
        index.lock().set_active(file_id);
        let next_seq = settings.next_seq;
        Ok(Writer {
            settings,
            index,
            positions,
            sink,
            metrics,
            file,
            file_id,
            file_bytes,
            next_seq,
            unsynced: false,
            last_sync: std::time::Instant::now(),
            failed: None,
        })
    }

    fn run(&mut self, receiver: Receiver<Command>) {
        let poll = match self.settings.durability {
            Durability::Fsync => IDLE_POLL,
            Durability::Relaxed => self.settings.relaxed_sync_interval,
        };
        loop {
            let first = match receiver.recv_timeout(poll) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    self.sync_if_unsynced();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut group = Vec::new();
            let mut control = Vec::new();
            let mut group_bytes = 0;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append(append) => {
                        group_bytes += append.bytes();
                        group.push(append);
                    }
                    other => {
                        control.push(other);
                        break;
                    }
                }
                if group.len() < MAX_GROUP_APPENDS && group_bytes < MAX_GROUP_BYTES {
                    next = receiver.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.write_group(group);
            }
            for command in control {
                match command {
                    Command::Rotate(done) => {
                        let _ = done.send(self.rotate_if_used());
                    }
                    Command::Shutdown(done) => {
                        self.sync_if_unsynced();
                        let _ = done.send(());
                        return;
                    }
                    Command::Append(_) => {}
                }
            }
        }
        self.sync_if_unsynced();
    }

    fn write_group(&mut self, mut group: Vec<WalAppend>) {
        if let Some(reason) = &self.failed {
            for append in group {
                let _ = append.done.send(Err(failed_error(reason)));
            }
            return;
        }
        // Every transaction's closing frame first, so a group is written whole or not at all.
        let closing: Result<Vec<Option<Vec<u8>>>> = group
            .iter()
            .map(|append| append.positions.as_ref().map(encode_positions).transpose())
            .collect();
        let closing = match closing {
            Ok(closing) => closing,
            Err(error) => {
                tracing::error!(%error, "source positions could not be encoded");
                return self.fail_group(group, error.to_string());
            }
        };
        let first_seq = self.next_seq;
        let mut seq = first_seq;
        let mut bytes = Vec::with_capacity(group.iter().map(WalAppend::bytes).sum());
        let mut moved = SourcePositions::new();
        for (append, closing) in group.iter_mut().zip(closing) {
            for entry in &mut append.entries {
                if closing.is_some() {
                    mark_held(&mut entry.frame);
                }
                stamp_seq(&mut entry.frame, seq);
                seq += 1;
                bytes.extend_from_slice(&entry.frame);
            }
            if let (Some(frame), Some(positions)) = (closing, &append.positions) {
                bytes.extend_from_slice(&frame);
                moved.extend(positions.iter().map(|(name, next)| (name.clone(), *next)));
            }
        }
        let durable = self
            .file
            .write_all(&bytes)
            .and_then(|()| match self.settings.durability {
                Durability::Fsync => sync_counted(&self.file, &self.metrics),
                Durability::Relaxed => Ok(()),
            });
        if let Err(error) = durable {
            let reason = format!(
                "{}: {error}",
                file_path(&self.settings.dir, self.file_id).display()
            );
            tracing::error!(%reason, "write-ahead log write failed; refusing further appends");
            self.failed = Some(reason.clone());
            return self.fail_group(group, reason);
        }
        self.unsynced = self.settings.durability == Durability::Relaxed;
        self.file_bytes += bytes.len() as u64;
        self.next_seq = seq;
        self.metrics.wal_bytes.inc_by(bytes.len() as u64);
        if !moved.is_empty() {
            self.positions.lock().extend(moved);
        }
        {
            let mut index = self.index.lock();
            let entries = group.iter().flat_map(|append| &append.entries);
            for (seq, entry) in (first_seq..).zip(entries) {
                index.record(self.file_id, &entry.key, seq);
            }
        }
        let mut seq = first_seq;
        for append in group {
            for entry in append.entries {
                self.sink.applied(seq, &entry.key, entry.batch);
                seq += 1;
            }
            let _ = append.done.send(Ok(seq.saturating_sub(1)));
        }
        if self.last_sync.elapsed() >= self.settings.relaxed_sync_interval {
            self.sync_if_unsynced();
        }
        if self.file_bytes >= self.settings.file_max_bytes
            && let Err(error) = self.rotate_if_used()
        {
            tracing::error!(%error, "write-ahead log rotation failed");
        }
    }

    fn fail_group(&self, group: Vec<WalAppend>, reason: String) {
        for append in group {
            let _ = append.done.send(Err(failed_error(&reason)));
        }
    }

    fn rotate_if_used(&mut self) -> Result<()> {
        if !self.index.lock().active_has_entries() {
            return Ok(());
        }
        let wal_error = |source| StoreError::Wal {
            path: "rotation".into(),
            source,
        };
        self.file.sync_data().map_err(wal_error)?;
        self.unsynced = false;
        let next_id = self.file_id + 1;
        let (file, file_bytes) = create_file(&self.settings.dir, next_id, &self.positions.lock())?;
        self.file = file;
        self.file_id = next_id;
        self.file_bytes = file_bytes;
        self.index.lock().set_active(next_id);
        Ok(())
    }

    fn sync_if_unsynced(&mut self) {
        self.last_sync = std::time::Instant::now();
        if self.unsynced && self.failed.is_none() {
            if let Err(error) = sync_counted(&self.file, &self.metrics) {
                tracing::error!(%error, "write-ahead log sync failed; refusing further appends");
                self.failed = Some(error.to_string());
            }
            self.unsynced = false;
        }
    }
}

fn failed_error(reason: &str) -> StoreError {
    StoreError::Wal {
        path: "write-ahead log".into(),
        source: std::io::Error::other(reason.to_owned()),
    }
}

/// Creates WAL file `id`: its header and, when any source has a position, a
/// positions frame holding them all (so older files can go). Returns the file
/// and its length.
fn create_file(dir: &std::path::Path, id: u64, positions: &SourcePositions) -> Result<(File, u64)> {
    let path = file_path(dir, id);
    let wal_error = |source| StoreError::Wal {
        path: path.display().to_string(),
        source,
    };
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(wal_error)?;
    let mut start = file_header().to_vec();
    if !positions.is_empty() {
        start.extend_from_slice(&encode_positions(positions)?);
    }
    file.write_all(&start).map_err(wal_error)?;
    file.sync_all().map_err(wal_error)?;
    sync_dir(dir)?;
    Ok((file, start.len() as u64))
}
/// One fsync of the active file, counted and timed for `/metrics`.
fn sync_counted(file: &File, metrics: &StoreMetrics) -> std::io::Result<()> {
    metrics.wal_fsyncs.inc_by(1);
    let started = std::time::Instant::now();
    let synced = file.sync_data();
    observe_since(&metrics.wal_fsync_seconds, started);
    synced
}
