//! `Content-Encoding` of request bodies: identity, gzip, deflate, zstd.
//!
//! Decompression reads at most `max_decompressed + 1` bytes, so a small "bomb" that
//! expands to gigabytes costs no more memory than a legitimate body at the limit.

use std::io::Read;

use bytes::Bytes;
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use crate::IngestError;

/// Largest zstd window (log2 bytes) a body may require: 128 MiB, zstd's own default
/// cap. A frame needing a larger window is refused instead of allocating it.
const ZSTD_MAX_WINDOW_LOG: u32 = 27;
/// Smallest zstd window cap (log2 bytes): 8 MiB. A streaming client that does not
/// declare the content size uses the window of its level (2 MiB at the default
/// level 3, 8 MiB at level 19), whatever the body size: a tiny body limit must not
/// refuse those.
const ZSTD_MIN_WINDOW_LOG: u32 = 23;
/// Initial output buffer per compressed input byte; bodies compress 4-10x typically.
const EXPECTED_COMPRESSION_RATIO: usize = 8;

/// Decompresses `body` per its `Content-Encoding`, refusing more than `max_decompressed` bytes.
pub fn decode_body(
    content_encoding: Option<&str>,
    body: Bytes,
    max_decompressed: usize,
) -> Result<Bytes, IngestError> {
    let encoding = content_encoding.map(str::trim).unwrap_or("");
    let too_large = IngestError::BodyTooLarge {
        limit: max_decompressed,
    };
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        return if body.len() > max_decompressed {
            Err(too_large)
        } else {
            Ok(body)
        };
    }
    let out = if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip") {
        // Multi-member: concatenated gzip streams are one valid body (RFC 1952).
        read_bounded(
            MultiGzDecoder::new(&body[..]),
            body.len(),
            max_decompressed,
            "gzip",
        )?
    } else if encoding.eq_ignore_ascii_case("deflate") {
        // HTTP's "deflate" is zlib-wrapped (RFC 9110), but some clients send raw
        // deflate; the zlib header check tells them apart.
        if has_zlib_header(&body) {
            read_bounded(
                ZlibDecoder::new(&body[..]),
                body.len(),
                max_decompressed,
                "deflate",
            )?
        } else {
            read_bounded(
                DeflateDecoder::new(&body[..]),
                body.len(),
                max_decompressed,
                "deflate",
            )?
        }
    } else if encoding.eq_ignore_ascii_case("zstd") {
        let mut decoder = zstd::stream::read::Decoder::with_buffer(&body[..])
            .map_err(|error| corrupt("zstd", &error))?;
        decoder
            .window_log_max(zstd_window_log(max_decompressed))
            .map_err(|error| corrupt("zstd", &error))?;
        read_bounded(decoder, body.len(), max_decompressed, "zstd")?
    } else {
        return Err(IngestError::UnsupportedEncoding(encoding.to_owned()));
    };
    Ok(Bytes::from(out))
}

/// Reads all of `reader` unless it yields more than `max` bytes.
fn read_bounded(
    reader: impl Read,
    compressed_len: usize,
    max: usize,
    encoding: &str,
) -> Result<Vec<u8>, IngestError> {
    let initial = compressed_len
        .saturating_mul(EXPECTED_COMPRESSION_RATIO)
        .min(max);
    let mut out = Vec::with_capacity(initial);
    // One byte past the limit tells "exactly at the limit" from "over it".
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|error| corrupt(encoding, &error))?;
    if out.len() > max {
        return Err(IngestError::BodyTooLarge { limit: max });
    }
    Ok(out)
}

fn corrupt(encoding: &str, error: &std::io::Error) -> IngestError {
    IngestError::MalformedBody(format!("the body is not valid {encoding} data: {error}"))
}

/// Whether `body` starts with a zlib header (RFC 1950: method 8, check bits).
fn has_zlib_header(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// The zstd window cap for a body limit: the smallest power of two holding the
/// whole body, clamped; a window never needs to exceed the content it covers.
fn zstd_window_log(max_decompressed: usize) -> u32 {
    let needed = usize::BITS - max_decompressed.saturating_sub(1).leading_zeros();
    needed.clamp(ZSTD_MIN_WINDOW_LOG, ZSTD_MAX_WINDOW_LOG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    #[test]
    fn identity_passes_through_and_respects_the_limit() {
        let body = Bytes::from_static(b"{\"a\":1}");
        assert_eq!(decode_body(None, body.clone(), 100).unwrap(), body);
        assert_eq!(
            decode_body(Some("identity"), body.clone(), 100).unwrap(),
            body
        );
        assert!(matches!(
            decode_body(None, body, 3),
            Err(IngestError::BodyTooLarge { limit: 3 })
        ));
    }

    #[test]
    fn gzip_zstd_and_deflate_bodies_decode() {
        let data = b"[{\"data\":{\"a\":1}}]".repeat(10);
        assert_eq!(
            decode_body(Some("gzip"), gzip(&data), 1000).unwrap(),
            &data[..]
        );
        assert_eq!(
            decode_body(Some("X-GZIP"), gzip(&data), 1000).unwrap(),
            &data[..]
        );

        let zstd = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(
            decode_body(Some("zstd"), Bytes::from(zstd), 1000).unwrap(),
            &data[..]
        );

        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&data).unwrap();
        let zlib = Bytes::from(zlib.finish().unwrap());
        assert_eq!(decode_body(Some("deflate"), zlib, 1000).unwrap(), &data[..]);

        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&data).unwrap();
        let raw = Bytes::from(raw.finish().unwrap());
        assert_eq!(decode_body(Some("deflate"), raw, 1000).unwrap(), &data[..]);
    }

    #[test]
    fn exactly_at_the_limit_is_accepted() {
        let data = vec![b'x'; 64];
        assert_eq!(
            decode_body(Some("gzip"), gzip(&data), 64).unwrap().len(),
            64
        );
        assert!(matches!(
            decode_body(Some("gzip"), gzip(&data), 63),
            Err(IngestError::BodyTooLarge { limit: 63 })
        ));
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        // 64 MiB of zeros compresses to ~64 KiB; the limit is 1 MiB.
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 1024 * 1024);
        assert!(matches!(
            decode_body(Some("gzip"), bomb, 1024 * 1024),
            Err(IngestError::BodyTooLarge { limit: 1_048_576 })
        ));
        let bomb = Bytes::from(zstd::encode_all(&zeros[..], 3).unwrap());
        assert!(matches!(
            decode_body(Some("zstd"), bomb, 1024 * 1024),
            Err(IngestError::BodyTooLarge { limit: 1_048_576 })
        ));
    }

    #[test]
    fn unknown_encodings_and_corrupt_data_are_refused() {
        let body = Bytes::from_static(b"abc");
        assert!(matches!(
            decode_body(Some("br"), body.clone(), 100),
            Err(IngestError::UnsupportedEncoding(e)) if e == "br"
        ));
        assert!(matches!(
            decode_body(Some("gzip"), body.clone(), 100),
            Err(IngestError::MalformedBody(_))
        ));
        assert!(matches!(
            decode_body(Some("zstd"), body, 100),
            Err(IngestError::MalformedBody(_))
        ));
    }

    #[test]
    fn zstd_window_cap_follows_the_body_limit() {
        assert_eq!(zstd_window_log(16 * 1024 * 1024), 24);
        assert_eq!(zstd_window_log(64 * 1024 * 1024), 26);
        assert_eq!(zstd_window_log(10), ZSTD_MIN_WINDOW_LOG);
        assert_eq!(zstd_window_log(usize::MAX), ZSTD_MAX_WINDOW_LOG);
    }
}
