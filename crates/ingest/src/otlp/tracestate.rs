//! Head-sampling rates carried in a span's W3C `tracestate`: the OpenTelemetry
//! consistent-probability threshold `ot=th:<hex>`.
//!
//! The threshold `T` is up to 14 hex digits, trailing zeros removed, read as a
//! 56-bit number: a span was kept when its randomness was at least `T`, so with
//! probability `(2^56 - T) / 2^56`, and each kept span stands for
//! `2^56 / (2^56 - T)` spans. `meta.sample_rate` is an integer, so that rate is
//! rounded to the nearest whole number (at least 1): `th:8` is 2, `th:c` is 4,
//! `th:0` (keep everything) is 1.

/// Bits of a threshold.
const THRESHOLD_BITS: u32 = 56;
/// Most hex digits of a threshold (56 bits).
const MAX_THRESHOLD_DIGITS: usize = 14;
/// The `tracestate` list member OpenTelemetry owns.
const OTEL_MEMBER: &str = "ot";
/// The sub-key of the threshold inside the `ot` member.
const THRESHOLD_KEY: &str = "th";

/// The sample rate a `tracestate` states, when it carries a valid `ot=th:` value.
pub fn tracestate_sample_rate(tracestate: &str) -> Option<i64> {
    threshold(tracestate).map(rate_of_threshold)
}

/// The threshold of the `ot` member's `th` sub-key.
fn threshold(tracestate: &str) -> Option<u64> {
    let otel = tracestate.split(',').find_map(|member| {
        let (key, value) = member.trim().split_once('=')?;
        (key == OTEL_MEMBER).then_some(value)
    })?;
    let hex = otel.split(';').find_map(|field| {
        let (key, value) = field.split_once(':')?;
        (key == THRESHOLD_KEY).then_some(value)
    })?;
    let valid = !hex.is_empty()
        && hex.len() <= MAX_THRESHOLD_DIGITS
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid {
        return None;
    }
    let value = u64::from_str_radix(hex, 16).ok()?;
    // Trailing zeros were removed: pad back to 14 digits.
    Some(value << (4 * (MAX_THRESHOLD_DIGITS - hex.len())))
}

/// `2^56 / (2^56 - T)`, rounded, as a sample rate (in integers: a float cannot
/// hold every 56-bit threshold exactly).
fn rate_of_threshold(threshold: u64) -> i64 {
    let span = 1u128 << THRESHOLD_BITS;
    // A threshold has at most 56 bits, so at least 1 span in 2^56 is kept.
    let kept = span.saturating_sub(u128::from(threshold)).max(1);
    let rate = (span + kept / 2) / kept;
    i64::try_from(rate).unwrap_or(i64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_become_rates() {
        assert_eq!(tracestate_sample_rate("ot=th:0"), Some(1));
        assert_eq!(tracestate_sample_rate("ot=th:8"), Some(2));
        assert_eq!(tracestate_sample_rate("ot=th:c"), Some(4));
        assert_eq!(tracestate_sample_rate("ot=th:e"), Some(8));
        // 1 - 1/10 of 2^56 ≈ e6666666666666 (the spec's 10% example, rounded).
        assert_eq!(tracestate_sample_rate("ot=th:e666666666666"), Some(10));
        assert_eq!(tracestate_sample_rate("ot=th:fd70a3d70a3d71"), Some(100));
        assert_eq!(
            tracestate_sample_rate("ot=th:ffffffffffffff"),
            Some(1 << 56)
        );
    }

    #[test]
    fn the_threshold_is_found_among_other_members_and_keys() {
        assert_eq!(
            tracestate_sample_rate("vendor=x:1, ot=rv:abcdef01234567;th:c ,other=th:8"),
            Some(4)
        );
        assert_eq!(tracestate_sample_rate("ot=th:c;rv:00000000000001"), Some(4));
    }

    #[test]
    fn anything_else_states_no_rate() {
        for tracestate in [
            "",
            "vendor=th:8",
            "ot=rv:8",
            "ot=th:",
            "ot=th:C",
            "ot=th:0123456789abcde",
            "ot=th:xyz",
            "ot=th:-1",
        ] {
            assert_eq!(tracestate_sample_rate(tracestate), None, "{tracestate}");
        }
    }
}
