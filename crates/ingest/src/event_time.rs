//! Event times: RFC 3339 strings (and the close variants clients send) and epoch numbers.
//!
//! An epoch number's unit is chosen by its magnitude (of the integer part, sign
//! ignored), so that every unit covers 1973-03-03 .. 5138-11-16:
//!
//! | integer part below | unit          |
//! |--------------------|---------------|
//! | 10^11              | seconds       |
//! | 10^14              | milliseconds  |
//! | 10^17              | microseconds  |
//! | otherwise          | nanoseconds   |
//!
//! Fractions are honoured down to the nanosecond. Times outside what an `i64` of
//! nanoseconds holds (years 1677 to 2262) are invalid.

use chrono::{DateTime, NaiveDate, SecondsFormat};

use crate::IngestError;

/// Epoch values whose integer part is below this are seconds.
const SECONDS_BELOW: u128 = 100_000_000_000;
/// Epoch values whose integer part is below this (and not seconds) are milliseconds.
const MILLIS_BELOW: u128 = 100_000_000_000_000;
/// Epoch values whose integer part is below this (and not ms) are microseconds.
const MICROS_BELOW: u128 = 100_000_000_000_000_000;
/// Nanoseconds per second.
const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Seconds per minute and per hour, for UTC offsets and times of day.
const SECONDS_PER_MINUTE: i64 = 60;
const SECONDS_PER_HOUR: i64 = 3_600;
/// Digits of a nanosecond fraction of a second.
const NANO_DIGITS: usize = 9;
/// More integer digits than any nanosecond epoch has; longer inputs are invalid at once.
const MAX_EPOCH_DIGITS: usize = 20;
/// msgpack's standard timestamp extension type.
const MSGPACK_TIMESTAMP_EXT: i8 = -1;
/// The timestamp extension type of Go's tinylib/msgp (`msgp.TimeExtension`), which
/// libhoney-go uses for `time.Time` values inside event data.
const MSGP_GO_TIME_EXT: i8 = 5;

/// Parses an event time into nanoseconds since the epoch (UTC).
///
/// Accepts RFC 3339 with any offset and fraction (`2024-05-01T12:00:00.123+02:00`),
/// a space instead of `T`, no offset (taken as UTC), `+0200` / `+02` offsets, Go's
/// `time.String()` form (`2024-05-01 12:00:00.5 +0000 UTC`), a bare date, or an epoch
/// number in seconds, ms, us or ns (see the module docs for the thresholds).
pub fn parse_event_time(value: &str) -> Result<i64, IngestError> {
    let trimmed = value.trim();
    parse_epoch_str(trimmed)
        .or_else(|| parse_datetime(trimmed))
        .ok_or_else(|| IngestError::InvalidTime(format!("{value:?}")))
}

/// An integer epoch (seconds, ms, us or ns by magnitude) as nanoseconds.
pub(crate) fn epoch_from_i64(value: i64) -> Result<i64, IngestError> {
    epoch_to_nanos(value < 0, u128::from(value.unsigned_abs()), "")
        .ok_or_else(|| IngestError::InvalidTime(value.to_string()))
}

/// An unsigned integer epoch as nanoseconds.
pub(crate) fn epoch_from_u64(value: u64) -> Result<i64, IngestError> {
    epoch_to_nanos(false, u128::from(value), "")
        .ok_or_else(|| IngestError::InvalidTime(value.to_string()))
}

/// A float epoch as nanoseconds.
///
/// The float's shortest decimal form is what the client wrote, so it is parsed
/// exactly: `1700000000.123` becomes `...123000000` ns, not the nearest binary value.
pub(crate) fn epoch_from_f64(value: f64) -> Result<i64, IngestError> {
    let invalid = || IngestError::InvalidTime(value.to_string());
    if !value.is_finite() {
        return Err(invalid());
    }
    // `Display` for f64 never uses exponent notation and is the shortest round trip.
    parse_epoch_str(&value.to_string()).ok_or_else(invalid)
}

/// A msgpack timestamp extension value as nanoseconds, if `ext_type` is one.
pub(crate) fn msgpack_ext_time(ext_type: i8, data: &[u8]) -> Option<i64> {
    let (seconds, nanos): (i64, u32) = match (ext_type, data.len()) {
        (MSGPACK_TIMESTAMP_EXT, 4) => (i64::from(u32::from_be_bytes(data.try_into().ok()?)), 0),
        (MSGPACK_TIMESTAMP_EXT, 8) => {
            let packed = u64::from_be_bytes(data.try_into().ok()?);
            // 30 bits of nanoseconds above 34 bits of seconds.
            let nanos = u32::try_from(packed >> 34).ok()?;
            (i64::try_from(packed & 0x0000_0003_ffff_ffff).ok()?, nanos)
        }
        (MSGPACK_TIMESTAMP_EXT, 12) => {
            let nanos = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
            (i64::from_be_bytes(data.get(4..)?.try_into().ok()?), nanos)
        }
        (MSGP_GO_TIME_EXT, 12) => {
            let seconds = i64::from_be_bytes(data.get(..8)?.try_into().ok()?);
            (seconds, u32::from_be_bytes(data.get(8..)?.try_into().ok()?))
        }
        _ => return None,
    };
    if i64::from(nanos) >= NANOS_PER_SECOND {
        return None;
    }
    seconds
        .checked_mul(NANOS_PER_SECOND)?
        .checked_add(i64::from(nanos))
}

/// RFC 3339 text of a nanosecond timestamp (for time values inside event data).
pub(crate) fn format_rfc3339(nanos: i64) -> String {
    DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An epoch number written in decimal (exponents allowed) as nanoseconds.
fn parse_epoch_str(s: &str) -> Option<i64> {
    if s.contains(['e', 'E']) {
        let value: f64 = s.parse().ok()?;
        if !value.is_finite() {
            return None;
        }
        return parse_epoch_str(&value.to_string());
    }
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > MAX_EPOCH_DIGITS {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    epoch_to_nanos(negative, whole, fraction)
}

/// Scales an epoch (integer part and fraction digits of its unit) to nanoseconds.
fn epoch_to_nanos(negative: bool, whole: u128, fraction: &str) -> Option<i64> {
    let (unit_nanos, fraction_digits): (u128, usize) = if whole < SECONDS_BELOW {
        (1_000_000_000, 9)
    } else if whole < MILLIS_BELOW {
        (1_000_000, 6)
    } else if whole < MICROS_BELOW {
        (1_000, 3)
    } else {
        (1, 0)
    };
    let fraction_nanos = fraction_value(fraction, fraction_digits);
    let total = whole.checked_mul(unit_nanos)?.checked_add(fraction_nanos)?;
    if negative {
        let magnitude = i128::try_from(total).ok()?;
        i64::try_from(-magnitude).ok()
    } else {
        i64::try_from(total).ok()
    }
}

/// The first `digits` digits of a fraction as an integer (padded with zeros, rest dropped).
fn fraction_value(fraction: &str, digits: usize) -> u128 {
    let mut value = 0u128;
    let mut bytes = fraction.bytes();
    for _ in 0..digits {
        let digit = bytes.next().map_or(0, |b| b.wrapping_sub(b'0'));
        value = value * 10 + u128::from(digit);
    }
    value
}

/// A small byte cursor for the date-time grammar.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.pos += usize::from(hit);
        hit
    }

    fn eat_any(&mut self, set: &[u8]) -> bool {
        match self.peek() {
            Some(b) if set.contains(&b) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// Exactly `count` ASCII digits as a number.
    fn digits(&mut self, count: usize) -> Option<i64> {
        let slice = self.bytes.get(self.pos..self.pos + count)?;
        let mut value = 0i64;
        for &b in slice {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(b - b'0');
        }
        self.pos += count;
        Some(value)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn rest(&self) -> &[u8] {
        self.bytes.get(self.pos..).unwrap_or(&[])
    }
}

/// Parses the date-time forms listed on [`parse_event_time`].
fn parse_datetime(s: &str) -> Option<i64> {
    let mut cur = Cursor {
        bytes: s.as_bytes(),
        pos: 0,
    };
    let year = cur.digits(4)?;
    let month = cur.eat(b'-').then(|| cur.digits(2)).flatten()?;
    let day = cur.eat(b'-').then(|| cur.digits(2)).flatten()?;
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    )?;
    let midnight = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    let (mut seconds_of_day, mut nanos, mut offset) = (0i64, 0i64, 0i64);
    if cur.peek().is_some() {
        if !cur.eat_any(b"Tt ") {
            return None;
        }
        let hour = cur.digits(2)?;
        let minute = cur.eat(b':').then(|| cur.digits(2)).flatten()?;
        let second = if cur.eat(b':') { cur.digits(2)? } else { 0 };
        // A leap second (:60) is folded into the last nanosecond of its minute.
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        seconds_of_day = hour * SECONDS_PER_HOUR + minute * SECONDS_PER_MINUTE + second.min(59);
        if second == 60 {
            nanos = NANOS_PER_SECOND - 1;
        }
        if cur.eat_any(b".,") {
            let start = cur.pos;
            while cur.peek().is_some_and(|b| b.is_ascii_digit()) {
                cur.pos += 1;
            }
            let fraction = s.get(start..cur.pos)?;
            if fraction.is_empty() {
                return None;
            }
            if second != 60 {
                nanos = i64::try_from(fraction_value(fraction, NANO_DIGITS)).ok()?;
            }
        }
        cur.skip_spaces();
        offset = parse_zone(&mut cur)?;
    }
    let seconds = midnight.checked_add(seconds_of_day)?.checked_sub(offset)?;
    seconds.checked_mul(NANOS_PER_SECOND)?.checked_add(nanos)
}

/// Parses the zone (and Go's trailing abbreviation) to a UTC offset in seconds.
fn parse_zone(cur: &mut Cursor<'_>) -> Option<i64> {
    let mut offset = 0;
    let mut explicit = false;
    if cur.eat_any(b"Zz") {
        explicit = true;
    } else if let Some(sign) = cur.peek().filter(|b| matches!(b, b'+' | b'-')) {
        cur.pos += 1;
        let hours = cur.digits(2)?;
        cur.eat(b':');
        let minutes = if cur.peek().is_some_and(|b| b.is_ascii_digit()) {
            cur.digits(2)?
        } else {
            0
        };
        if hours > 23 || minutes > 59 {
            return None;
        }
        offset = hours * SECONDS_PER_HOUR + minutes * SECONDS_PER_MINUTE;
        if sign == b'-' {
            offset = -offset;
        }
        explicit = true;
    }
    cur.skip_spaces();
    // Go's `time.String()` appends the zone abbreviation after the numeric offset
    // (and a monotonic clock reading); an abbreviation alone only counts for UTC.
    let word_len = cur
        .rest()
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    if word_len > 0 {
        // The abbreviation is a separate word: `Zjunk` is not a zone.
        if cur.pos == 0 || cur.bytes.get(cur.pos - 1) != Some(&b' ') {
            return None;
        }
        let word = cur.rest().get(..word_len)?;
        let universal = word.eq_ignore_ascii_case(b"UTC") || word.eq_ignore_ascii_case(b"GMT");
        if !explicit && !universal {
            return None;
        }
        cur.pos += word_len;
        cur.skip_spaces();
    }
    if cur.rest().starts_with(b"m=") {
        cur.pos = cur.bytes.len();
    }
    cur.rest().is_empty().then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-05-01T12:00:00Z in nanoseconds.
    const NOON: i64 = 1_714_564_800_000_000_000;

    fn t(s: &str) -> i64 {
        parse_event_time(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        assert_eq!(t("2024-05-01T12:00:00Z"), NOON);
        assert_eq!(t("2024-05-01T12:00:00.5Z"), NOON + 500_000_000);
        assert_eq!(t("2024-05-01T14:00:00+02:00"), NOON);
        assert_eq!(t("2024-05-01T07:30:00-04:30"), NOON);
        assert_eq!(t("2024-05-01t12:00:00.123456789z"), NOON + 123_456_789);
        // Digits beyond nanoseconds are dropped, not rounded.
        assert_eq!(t("2024-05-01T12:00:00.1234567899Z"), NOON + 123_456_789);
    }

    #[test]
    fn client_variants() {
        assert_eq!(t("2024-05-01 12:00:00.999Z"), NOON + 999_000_000);
        assert_eq!(t("2024-05-01 12:00:00"), NOON);
        assert_eq!(t("2024-05-01T14:00:00+0200"), NOON);
        assert_eq!(t("2024-05-01T14:00:00+02"), NOON);
        assert_eq!(t("2024-05-01 14:00:00.25 +0200 CEST"), NOON + 250_000_000);
        assert_eq!(t("2024-05-01 12:00:00 +0000 UTC m=+0.000123"), NOON);
        assert_eq!(t("2024-05-01T12:00:00 UTC"), NOON);
        assert_eq!(t("2024-05-01"), NOON - 12 * 3_600 * NANOS_PER_SECOND);
        assert_eq!(t("  2024-05-01T12:00:00Z "), NOON);
    }

    #[test]
    fn epoch_numbers_by_magnitude() {
        assert_eq!(t("1714564800"), NOON);
        assert_eq!(t("1714564800.25"), NOON + 250_000_000);
        assert_eq!(t("1714564800000"), NOON);
        assert_eq!(t("1714564800000.5"), NOON + 500_000);
        assert_eq!(t("1714564800000000"), NOON);
        assert_eq!(t("1714564800000000000"), NOON);
        assert_eq!(t("1.7145648e9"), NOON);
        assert_eq!(t("-1.5"), -1_500_000_000);
        assert_eq!(epoch_from_i64(1_714_564_800_000).unwrap(), NOON);
        assert_eq!(epoch_from_u64(1_714_564_800_000_000_000).unwrap(), NOON);
        assert_eq!(
            epoch_from_f64(1_714_564_800.123).unwrap(),
            NOON + 123_000_000
        );
        assert_eq!(
            epoch_from_f64(1_714_564_800_123.5).unwrap(),
            NOON + 123_500_000
        );
    }

    #[test]
    fn garbage_and_out_of_range_are_invalid() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-02-30",
            "2024-05-01T25:00:00Z",
            "2024-05-01T12:00:00+25:00",
            "2024-05-01T12:00:00 PST",
            "2024-05-01T12:00:00Zjunk",
            "2024-05-01T12",
            "12:00:00",
            "1e400",
            "--5",
            "1.2.3",
            "9999-01-01T00:00:00Z",
            "99999999999999999999999",
        ] {
            assert!(
                matches!(parse_event_time(bad), Err(IngestError::InvalidTime(_))),
                "{bad:?} should be invalid"
            );
        }
        assert!(epoch_from_f64(f64::NAN).is_err());
        assert!(epoch_from_u64(u64::MAX).is_err());
    }

    #[test]
    fn msgpack_timestamps() {
        let seconds = NOON / NANOS_PER_SECOND;
        let mut ts96 = 7u32.to_be_bytes().to_vec();
        ts96.extend_from_slice(&seconds.to_be_bytes());
        assert_eq!(msgpack_ext_time(-1, &ts96), Some(NOON + 7));
        let ts32 = u32::try_from(seconds).unwrap().to_be_bytes();
        assert_eq!(msgpack_ext_time(-1, &ts32), Some(NOON));
        let ts64 = (9u64 << 34) | u64::try_from(seconds).unwrap();
        assert_eq!(msgpack_ext_time(-1, &ts64.to_be_bytes()), Some(NOON + 9));
        let mut go = seconds.to_be_bytes().to_vec();
        go.extend_from_slice(&5u32.to_be_bytes());
        assert_eq!(msgpack_ext_time(5, &go), Some(NOON + 5));
        assert_eq!(msgpack_ext_time(3, &go), None);
        assert_eq!(
            format_rfc3339(NOON + 500_000_000),
            "2024-05-01T12:00:00.500Z"
        );
    }
}
