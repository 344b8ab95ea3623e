//! The WAL's on-disk format.
//!
//! ```text
//! file      := "QWAL" version:u32le frame*
//! frame     := length:u32le crc32(payload):u32le payload
//! payload   := seq:u64le flags:u8 (rows | positions)        (version 2)
//!            | seq:u64le rows                               (version 1)
//! rows      := env_len:u16le env dataset_len:u16le dataset lz4(Arrow IPC stream)
//! positions := count:u32le (name_len:u16le name next:i64le)*
//! ```
//! A frame is valid only if its length fits in the file and its checksum matches, so
//! a torn write at the tail of the last file is detected and dropped on replay (it
//! was never acknowledged: acknowledgements wait for the fsync that follows it).
//!
//! Flags: [`FLAG_HELD`] marks rows that belong to a transaction: they count only
//! once the positions frame that closes the transaction follows them, so a
//! transaction torn anywhere is dropped whole. [`FLAG_POSITIONS`] marks a
//! positions frame: stream sources' consumed positions (a Kafka partition's next
//! offset, say), committed with the rows they produced. A positions frame also
//! opens every file, holding every position so far, so deleting sealed files
//! never loses one.

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::{Result, StoreError};

/// Magic bytes at the start of every WAL file.
pub const FILE_MAGIC: &[u8; 4] = b"QWAL";
/// Version of the frame format written by this build.
pub const FORMAT_VERSION: u32 = 2;
/// The first version, without flags (still read).
pub const FORMAT_VERSION_1: u32 = 1;
/// Flag: rows held until the positions frame closing their transaction.
pub const FLAG_HELD: u8 = 1;
/// Flag: a positions frame.
pub const FLAG_POSITIONS: u8 = 2;
/// Offset of the flags byte in a version 2 frame.
const FLAGS_AT: usize = FRAME_HEADER_LEN + 8;
/// Bytes of the file header (magic + version).
pub const FILE_HEADER_LEN: usize = 8;
/// Bytes of a frame header (length + checksum).
pub const FRAME_HEADER_LEN: usize = 8;
/// Largest payload a frame may carry; a length above it marks corruption.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 30;

/// The file header bytes.
pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[..4].copy_from_slice(FILE_MAGIC);
    header[4..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header
}

/// One decoded WAL entry.
#[derive(Debug)]
pub struct WalEntry {
    pub seq: u64,
    pub env: String,
    pub dataset: String,
    pub batch: RecordBatch,
    /// Part of a transaction: counts only once the transaction's positions
    /// frame follows.
    pub held: bool,
}

/// Stream sources' consumed positions: a name (a source's partition, say) and
/// the next offset to consume there.
pub type SourcePositions = std::collections::BTreeMap<String, i64>;

/// Encodes a frame without its sequence number: the writer stamps it when it
/// orders the frame (see [`stamp_seq`]). Compression and IPC encoding run on the
/// caller's task so the single WAL writer only writes and syncs.
pub fn encode_frame(env: &str, dataset: &str, batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut ipc = Vec::with_capacity(batch.get_array_memory_size() / 2);
    {
        let mut writer = StreamWriter::try_new(&mut ipc, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    let compressed = lz4_flex::block::compress_prepend_size(&ipc);
    let mut frame =
        Vec::with_capacity(FRAME_HEADER_LEN + 12 + env.len() + dataset.len() + compressed.len());
    frame.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    frame.extend_from_slice(&0u64.to_le_bytes());
    frame.push(0);
    push_name(&mut frame, env)?;
    push_name(&mut frame, dataset)?;
    frame.extend_from_slice(&compressed);
    let payload_len = frame.len() - FRAME_HEADER_LEN;
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(StoreError::Overloaded(format!(
            "batch of {payload_len} bytes exceeds the WAL frame limit"
        )));
    }
    frame[..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    Ok(frame)
}

/// Marks an encoded rows frame as part of a transaction (before [`stamp_seq`]).
pub fn mark_held(frame: &mut [u8]) {
    frame[FLAGS_AT] |= FLAG_HELD;
}

/// Encodes a positions frame, sealed (it takes no sequence number).
pub fn encode_positions(positions: &SourcePositions) -> Result<Vec<u8>> {
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + 13 + positions.len() * 40);
    frame.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    frame.extend_from_slice(&0u64.to_le_bytes());
    frame.push(FLAG_POSITIONS);
    let count = u32::try_from(positions.len()).map_err(|_| {
        StoreError::Overloaded("more source positions than a WAL frame holds".into())
    })?;
    frame.extend_from_slice(&count.to_le_bytes());
    for (name, next) in positions {
        push_name(&mut frame, name)?;
        frame.extend_from_slice(&next.to_le_bytes());
    }
    let payload_len = frame.len() - FRAME_HEADER_LEN;
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(StoreError::Overloaded(format!(
            "source positions of {payload_len} bytes exceed the WAL frame limit"
        )));
    }
    frame[..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    stamp_seq(&mut frame, 0);
    Ok(frame)
}

/// Writes the sequence number into an encoded frame and seals it with its checksum.
pub fn stamp_seq(frame: &mut [u8], seq: u64) {
    frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + 8].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&frame[FRAME_HEADER_LEN..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
}

fn push_name(frame: &mut Vec<u8>, name: &str) -> Result<()> {
    let len = u16::try_from(name.len()).map_err(|_| StoreError::InvalidName {
        name: name.to_owned(),
        reason: "longer than 65535 bytes",
    })?;
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(name.as_bytes());
    Ok(())
}

/// Outcome of reading one frame at an offset of a WAL file's bytes.
pub enum FrameRead {
    /// A valid rows frame and the offset just past it.
    Entry(WalEntry, usize),
    /// A valid positions frame and the offset just past it.
    Positions(SourcePositions, usize),
    /// Clean end of the file.
    End,
    /// An incomplete or corrupt frame starts here (reason given).
    Invalid(String),
}

/// Reads the frame starting at `offset` of `bytes`, in this build's format.
pub fn read_frame(bytes: &[u8], offset: usize) -> FrameRead {
    read_frame_of(FORMAT_VERSION, bytes, offset)
}

/// Reads the frame starting at `offset` of `bytes`, of a file in `version`.
pub fn read_frame_of(version: u32, bytes: &[u8], offset: usize) -> FrameRead {
    let rest = &bytes[offset.min(bytes.len())..];
    if rest.is_empty() {
        return FrameRead::End;
    }
    if rest.len() < FRAME_HEADER_LEN {
        return FrameRead::Invalid("truncated frame header".into());
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len > MAX_PAYLOAD_BYTES || rest.len() < FRAME_HEADER_LEN + len {
        return FrameRead::Invalid(format!(
            "frame of {len} bytes runs past the end of the file"
        ));
    }
    let payload = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
    if crc32fast::hash(payload) != crc {
        return FrameRead::Invalid("checksum mismatch".into());
    }
    let next = offset + FRAME_HEADER_LEN + len;
    match decode_payload(version, payload) {
        Ok(Decoded::Rows(entry)) => FrameRead::Entry(entry, next),
        Ok(Decoded::Positions(positions)) => FrameRead::Positions(positions, next),
        Err(reason) => FrameRead::Invalid(reason),
    }
}

enum Decoded {
    Rows(WalEntry),
    Positions(SourcePositions),
}

fn decode_payload(version: u32, payload: &[u8]) -> Result<Decoded, String> {
    let mut cursor = PayloadCursor {
        bytes: payload,
        at: 0,
    };
    let seq = u64::from_le_bytes(
        cursor
            .take(8)?
            .try_into()
            .map_err(|_| "bad sequence number")?,
    );
    let flags = if version >= FORMAT_VERSION {
        cursor.take(1)?[0]
    } else {
        0
    };
    if flags & !(FLAG_HELD | FLAG_POSITIONS) != 0 {
        return Err(format!("unknown frame flags {flags:#04x}"));
    }
    if flags & FLAG_POSITIONS != 0 {
        return decode_positions(&mut cursor).map(Decoded::Positions);
    }
    let env = cursor.name()?;
    let dataset = cursor.name()?;
    let compressed = cursor.rest();
    // The size prefix says how much to allocate: no more than lz4 can expand
    // these bytes to (a damaged prefix must not reserve gigabytes).
    let declared = compressed.get(..4).map_or(0, |prefix| {
        u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]])
    });
    if declared as usize > compressed.len().saturating_mul(LZ4_MAX_RATIO) {
        return Err(format!(
            "lz4: a size of {declared} bytes from {} compressed",
            compressed.len()
        ));
    }
    let ipc = lz4_flex::block::decompress_size_prepended(compressed)
        .map_err(|error| format!("lz4: {error}"))?;
    // arrow-ipc allocates what a message says its body holds before reading it
    // (an allocation failure aborts the process), and asserts some buffer
    // bounds with panics (`Buffer::slice_with_length` on a damaged buffer
    // length). The checksum keeps torn and flipped bytes out, so only content
    // damaged before it was computed gets here; replay must report that frame,
    // not abort the start-up.
    check_message_lengths(&ipc)?;
    let batch = std::panic::catch_unwind(|| decode_ipc(ipc))
        .unwrap_or_else(|_| Err("arrow ipc: the decoder panicked on this frame".to_owned()))?;
    Ok(Decoded::Rows(WalEntry {
        seq,
        env,
        dataset,
        batch,
        held: flags & FLAG_HELD != 0,
    }))
}

fn decode_positions(cursor: &mut PayloadCursor<'_>) -> Result<SourcePositions, String> {
    let count = cursor.take(4)?;
    let count = u32::from_le_bytes([count[0], count[1], count[2], count[3]]);
    let mut positions = SourcePositions::new();
    for _ in 0..count {
        let name = cursor.name()?;
        let next = cursor.take(8)?;
        let next = i64::from_le_bytes(next.try_into().map_err(|_| "bad position")?);
        positions.insert(name, next);
    }
    if !cursor.rest().is_empty() {
        return Err("bytes after the last source position".into());
    }
    Ok(positions)
}

/// How many times its compressed size an lz4 block can decompress to (a run
/// of one byte: 255 per sequence byte, rounded up).
const LZ4_MAX_RATIO: usize = 256;

/// Checks that every message of the IPC stream `ipc` fits in it: its metadata
/// is a valid flatbuffer, and the body it declares is no longer than the bytes
/// after it.
fn check_message_lengths(ipc: &[u8]) -> Result<(), String> {
    let word = |at: usize| -> Result<u32, String> {
        ipc.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "arrow ipc: a message is cut short".to_owned())
    };
    let mut at = 0;
    while at < ipc.len() {
        // A message: the continuation marker (absent in the legacy format),
        // the metadata length, the metadata, the body.
        let mut metadata_len = word(at)?;
        at += 4;
        if metadata_len == 0xFFFF_FFFF {
            metadata_len = word(at)?;
            at += 4;
        }
        if metadata_len == 0 {
            return Ok(()); // end of stream
        }
        let metadata = ipc
            .get(at..at.saturating_add(metadata_len as usize))
            .ok_or("arrow ipc: a message's metadata runs past the frame")?;
        let message = arrow::ipc::root_as_message(metadata)
            .map_err(|error| format!("arrow ipc: damaged message metadata: {error}"))?;
        at += metadata.len();
        let body = usize::try_from(message.bodyLength())
            .ok()
            .filter(|body| *body <= ipc.len() - at)
            .ok_or("arrow ipc: a message's body runs past the frame")?;
        at += body;
    }
    Ok(())
}

/// The one batch of an Arrow IPC stream.
fn decode_ipc(ipc: Vec<u8>) -> Result<RecordBatch, String> {
    let mut reader = StreamReader::try_new(Cursor::new(ipc), None)
        .map_err(|error| format!("arrow ipc: {error}"))?;
    let batch = reader
        .next()
        .ok_or("frame holds no batch")?
        .map_err(|error| format!("arrow ipc: {error}"))?;
    Ok(batch)
}

struct PayloadCursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> PayloadCursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let slice = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or("payload too short")?;
        self.at += n;
        Ok(slice)
    }

    fn name(&mut self) -> Result<String, String> {
        let len = self.take(2)?;
        let len = u16::from_le_bytes([len[0], len[1]]) as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "name is not UTF-8".to_owned())
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at.min(self.bytes.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampNanosecondArray,
    };
    use proptest::prelude::*;
    use std::sync::Arc;

    fn sample() -> RecordBatch {
        RecordBatch::try_from_iter(vec![(
            "a",
            Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
        )])
        .unwrap()
    }

    #[test]
    fn a_frame_round_trips() {
        let mut frame = encode_frame("default", "my-ds", &sample()).unwrap();
        stamp_seq(&mut frame, 42);
        let FrameRead::Entry(entry, next) = read_frame(&frame, 0) else {
            panic!("frame must decode")
        };
        assert_eq!(
            (entry.seq, entry.env.as_str(), entry.dataset.as_str()),
            (42, "default", "my-ds")
        );
        assert_eq!(entry.batch, sample());
        assert_eq!(next, frame.len());
        assert!(matches!(read_frame(&frame, next), FrameRead::End));
    }

    #[test]
    fn torn_and_flipped_frames_are_invalid() {
        let mut frame = encode_frame("e", "d", &sample()).unwrap();
        stamp_seq(&mut frame, 1);
        assert!(matches!(
            read_frame(&frame[..frame.len() - 1], 0),
            FrameRead::Invalid(_)
        ));
        assert!(matches!(read_frame(&frame[..5], 0), FrameRead::Invalid(_)));
        let last = frame.len() - 1;
        frame[last] ^= 0xff;
        assert!(
            matches!(read_frame(&frame, 0), FrameRead::Invalid(reason) if reason.contains("checksum"))
        );
    }

    /// Most rows in a generated batch: enough for several IPC buffers per column.
    const MAX_ROWS: usize = 40;
    /// Most frames in a generated file.
    const MAX_FRAMES: usize = 4;

    /// A batch of every Arrow type the store keeps in the WAL (nullable columns,
    /// multi-byte text, empty batches included).
    fn batches() -> impl Strategy<Value = RecordBatch> {
        (0..=MAX_ROWS).prop_flat_map(|rows| {
            (
                prop::collection::vec(prop::option::of(any::<i64>()), rows),
                prop::collection::vec(prop::option::of(any::<f64>()), rows),
                prop::collection::vec(prop::option::of("\\PC{0,12}"), rows),
                prop::collection::vec(prop::option::of(any::<bool>()), rows),
                prop::collection::vec(any::<i64>(), rows),
            )
                .prop_map(|(ints, floats, strings, bools, times)| {
                    let times = TimestampNanosecondArray::from(times).with_timezone("UTC");
                    RecordBatch::try_from_iter(vec![
                        ("timestamp", Arc::new(times) as ArrayRef),
                        ("i", Arc::new(Int64Array::from(ints)) as ArrayRef),
                        ("f", Arc::new(Float64Array::from(floats)) as ArrayRef),
                        ("s", Arc::new(StringArray::from(strings)) as ArrayRef),
                        ("b", Arc::new(BooleanArray::from(bools)) as ArrayRef),
                    ])
                    .unwrap()
                })
        })
    }

    /// One frame's content: sequence number, environment, dataset, batch.
    type Content = (u64, String, String, RecordBatch);

    fn contents() -> impl Strategy<Value = Vec<Content>> {
        prop::collection::vec(
            (any::<u64>(), "\\PC{0,16}", "\\PC{0,16}", batches()),
            1..=MAX_FRAMES,
        )
    }

    /// The frames of `contents` back to back, and where each one ends.
    fn encode_all(contents: &[Content]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for (seq, env, dataset, batch) in contents {
            let mut frame = encode_frame(env, dataset, batch).unwrap();
            stamp_seq(&mut frame, *seq);
            bytes.extend_from_slice(&frame);
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    /// Reads frames from the start until one is not an entry.
    fn read_all(bytes: &[u8]) -> (Vec<WalEntry>, FrameRead) {
        let mut entries = Vec::new();
        let mut offset = 0;
        loop {
            match read_frame(bytes, offset) {
                FrameRead::Entry(entry, next) => {
                    entries.push(entry);
                    offset = next;
                }
                other => return (entries, other),
            }
        }
    }

    /// Float columns compare by bits: NaN payloads and signed zeros must survive too.
    fn same_batch(left: &RecordBatch, right: &RecordBatch) -> bool {
        let floats = |batch: &RecordBatch| -> Vec<Option<u64>> {
            let column = batch.column_by_name("f").unwrap();
            let floats = column.as_any().downcast_ref::<Float64Array>().unwrap();
            floats.iter().map(|v| v.map(f64::to_bits)).collect()
        };
        let rest = |batch: &RecordBatch| batch.project(&[0, 1, 3, 4]).unwrap();
        left.schema() == right.schema()
            && floats(left) == floats(right)
            && rest(left) == rest(right)
    }

    fn assert_entry(entry: &WalEntry, content: &Content) -> Result<(), TestCaseError> {
        let (seq, env, dataset, batch) = content;
        prop_assert_eq!(entry.seq, *seq);
        prop_assert_eq!(&entry.env, env);
        prop_assert_eq!(&entry.dataset, dataset);
        prop_assert!(
            same_batch(&entry.batch, batch),
            "batch differs after decoding"
        );
        Ok(())
    }

    /// The IPC stream of a two-row batch.
    fn small_ipc() -> Vec<u8> {
        let batch = RecordBatch::try_from_iter(vec![(
            "i",
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
        )])
        .unwrap();
        let mut ipc = Vec::new();
        let mut writer = StreamWriter::try_new(&mut ipc, &batch.schema()).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        ipc
    }

    #[test]
    fn messages_longer_than_the_frame_are_refused_before_anything_is_allocated() {
        let ipc = small_ipc();
        assert_eq!(check_message_lengths(&ipc), Ok(()));
        assert_eq!(decode_ipc(ipc.clone()).unwrap().num_rows(), 2);
        // Without its last bytes the batch's body is longer than what is left:
        // arrow-ipc would allocate the declared body first (proptest found a
        // damaged length asking for 216 PB, which aborted the process).
        let cut = &ipc[..ipc.len() - 16];
        let error = check_message_lengths(cut).unwrap_err();
        assert!(error.contains("runs past the frame"), "{error}");
        let mut garbage = ipc.clone();
        garbage[8..40].fill(0x5A);
        assert!(check_message_lengths(&garbage).is_err());
    }

    #[test]
    fn an_lz4_size_beyond_what_the_bytes_can_hold_is_refused() {
        let mut payload = 7u64.to_le_bytes().to_vec();
        payload.push(0);
        payload.extend([1, 0, b'a', 1, 0, b'b']);
        payload.extend(u32::MAX.to_le_bytes());
        payload.extend([0x10, b'x']);
        let Err(error) = decode_payload(FORMAT_VERSION, &payload) else {
            panic!("a damaged size decoded")
        };
        assert!(error.contains("lz4: a size of 4294967295"), "{error}");
    }

    #[test]
    fn positions_and_held_rows_round_trip() {
        let positions = SourcePositions::from([
            ("kafka-0/spans/0".to_owned(), 17),
            ("kafka-0/spans/1".to_owned(), 0),
        ]);
        let frame = encode_positions(&positions).unwrap();
        let FrameRead::Positions(read, next) = read_frame(&frame, 0) else {
            panic!("a positions frame must decode")
        };
        assert_eq!((read, next), (positions, frame.len()));

        let mut rows = encode_frame("default", "d", &sample()).unwrap();
        mark_held(&mut rows);
        stamp_seq(&mut rows, 9);
        let FrameRead::Entry(entry, _) = read_frame(&rows, 0) else {
            panic!("a held frame must decode")
        };
        assert!(entry.held);
        assert_eq!((entry.seq, entry.batch), (9, sample()));
    }

    #[test]
    fn version_1_frames_still_read() {
        // Version 1 had no flags byte: the same frame without it.
        let mut frame = encode_frame("default", "old", &sample()).unwrap();
        frame.remove(FLAGS_AT);
        let len = (frame.len() - FRAME_HEADER_LEN) as u32;
        frame[..4].copy_from_slice(&len.to_le_bytes());
        stamp_seq(&mut frame, 3);
        let FrameRead::Entry(entry, next) = read_frame_of(FORMAT_VERSION_1, &frame, 0) else {
            panic!("a version 1 frame must decode")
        };
        assert_eq!(
            (entry.seq, entry.dataset.as_str(), entry.held),
            (3, "old", false)
        );
        assert_eq!((entry.batch, next), (sample(), frame.len()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn frames_round_trip_back_to_back(contents in contents()) {
            let (bytes, ends) = encode_all(&contents);
            let (entries, end) = read_all(&bytes);
            prop_assert!(matches!(end, FrameRead::End));
            prop_assert_eq!(entries.len(), contents.len());
            for (entry, content) in entries.iter().zip(&contents) {
                assert_entry(entry, content)?;
            }
            // Each entry ends where its frame does.
            let mut offset = 0;
            for end in ends {
                let FrameRead::Entry(_, next) = read_frame(&bytes, offset) else {
                    return Err(TestCaseError::fail("frame must decode"));
                };
                prop_assert_eq!(next, end);
                offset = next;
            }
        }

        #[test]
        fn a_cut_keeps_the_whole_frames_before_it_and_no_other(
            contents in contents(),
            cut in any::<prop::sample::Index>(),
        ) {
            let (bytes, ends) = encode_all(&contents);
            let cut = cut.index(bytes.len() + 1);
            let (entries, end) = read_all(&bytes[..cut]);
            let whole = ends.iter().filter(|end| **end <= cut).count();
            prop_assert_eq!(entries.len(), whole);
            for (entry, content) in entries.iter().zip(&contents) {
                assert_entry(entry, content)?;
            }
            // A cut between frames looks like a clean end; inside one, like a torn write.
            let at_boundary = cut == 0 || ends.contains(&cut);
            prop_assert_eq!(matches!(end, FrameRead::End), at_boundary);
            prop_assert_eq!(matches!(end, FrameRead::Invalid(_)), !at_boundary);
        }

        #[test]
        fn a_changed_byte_invalidates_its_frame_and_only_it(
            contents in contents(),
            at in any::<prop::sample::Index>(),
            mask in 1..=255u8,
        ) {
            let (mut bytes, ends) = encode_all(&contents);
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
            let damaged = ends.iter().filter(|end| **end <= at).count();
            let (entries, end) = read_all(&bytes);
            // CRC-32 detects every error within 32 consecutive bits of the payload; a
            // changed length makes the checksum cover other bytes or run past the end.
            prop_assert_eq!(entries.len(), damaged);
            for (entry, content) in entries.iter().zip(&contents) {
                assert_entry(entry, content)?;
            }
            prop_assert!(matches!(end, FrameRead::Invalid(_)));
        }

        #[test]
        fn garbage_is_invalid_never_a_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..256),
            offset in 0..300usize,
        ) {
            // Without a valid checksum nothing decodes (a 2^-32 chance is not a case
            // 256 random bytes meet).
            prop_assert!(!matches!(read_frame(&bytes, offset), FrameRead::Entry(..)));
        }

        #[test]
        fn sealed_frames_of_damaged_content_are_invalid_never_a_panic(
            content in (any::<u64>(), "\\PC{0,8}", "\\PC{0,8}", batches()),
            at in any::<prop::sample::Index>(),
            mask in 1..=255u8,
            recompress in any::<bool>(),
        ) {
            // What a bug upstream of the checksum would write: the checksum matches,
            // the content does not. Decoding must refuse it or return some batch,
            // never panic while replaying at start-up.
            let (seq, env, dataset, batch) = content;
            let mut frame = encode_frame(&env, &dataset, &batch).unwrap();
            let names = 8 + 1 + 2 + env.len() + 2 + dataset.len();
            let body = FRAME_HEADER_LEN + names;
            if recompress {
                // Damage the Arrow IPC stream itself, then compress it again.
                let mut ipc = lz4_flex::block::decompress_size_prepended(&frame[body..]).unwrap();
                let at = at.index(ipc.len());
                ipc[at] ^= mask;
                frame.truncate(body);
                frame.extend_from_slice(&lz4_flex::block::compress_prepend_size(&ipc));
            } else {
                // Damage the compressed bytes after the 4-byte size prefix (a damaged
                // prefix may ask lz4 for up to 4 GiB).
                let start = body + 4;
                let at = start + at.index(frame.len() - start);
                frame[at] ^= mask;
            }
            let len = (frame.len() - FRAME_HEADER_LEN) as u32;
            frame[..4].copy_from_slice(&len.to_le_bytes());
            stamp_seq(&mut frame, seq);
            match read_frame(&frame, 0) {
                FrameRead::Entry(entry, next) => {
                    // Damage that still decodes keeps the frame's framing.
                    prop_assert_eq!(next, frame.len());
                    prop_assert_eq!((entry.seq, entry.env, entry.dataset), (seq, env, dataset));
                }
                FrameRead::Invalid(_) => {}
                FrameRead::End => return Err(TestCaseError::fail("a frame is not the end")),
                FrameRead::Positions(..) => {
                    return Err(TestCaseError::fail("a rows frame read as positions"));
                }
            }
        }
    }
}
