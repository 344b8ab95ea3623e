//! The WAL's on-disk format.
//!
//! ```text
//! file   := "QWAL" version:u32le frame*
//! frame  := length:u32le crc32(payload):u32le payload
//! payload:= seq:u64le env_len:u16le env dataset_len:u16le dataset lz4(Arrow IPC stream)
//! ```
//! A frame is valid only if its length fits in the file and its checksum matches, so
//! a torn write at the tail of the last file is detected and dropped on replay (it
//! was never acknowledged: acknowledgements wait for the fsync that follows it).

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::{Result, StoreError};

/// Magic bytes at the start of every WAL file.
pub const FILE_MAGIC: &[u8; 4] = b"QWAL";
/// Version of the frame format written by this build.
pub const FORMAT_VERSION: u32 = 1;
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
}

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
    /// A valid frame and the offset just past it.
    Entry(WalEntry, usize),
    /// Clean end of the file.
    End,
    /// An incomplete or corrupt frame starts here (reason given).
    Invalid(String),
}

/// Reads the frame starting at `offset` of `bytes`.
pub fn read_frame(bytes: &[u8], offset: usize) -> FrameRead {
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
    match decode_payload(payload) {
        Ok(entry) => FrameRead::Entry(entry, offset + FRAME_HEADER_LEN + len),
        Err(reason) => FrameRead::Invalid(reason),
    }
}

fn decode_payload(payload: &[u8]) -> Result<WalEntry, String> {
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
    let env = cursor.name()?;
    let dataset = cursor.name()?;
    let ipc = lz4_flex::block::decompress_size_prepended(cursor.rest())
        .map_err(|error| format!("lz4: {error}"))?;
    let mut reader = StreamReader::try_new(Cursor::new(ipc), None)
        .map_err(|error| format!("arrow ipc: {error}"))?;
    let batch = reader
        .next()
        .ok_or("frame holds no batch")?
        .map_err(|error| format!("arrow ipc: {error}"))?;
    Ok(WalEntry {
        seq,
        env,
        dataset,
        batch,
    })
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
    use arrow::array::{ArrayRef, Int64Array};
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
}
