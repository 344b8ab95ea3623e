//! Sample rates: positive integers, `1` meaning "not sampled".

use crate::IngestError;

/// Sample rate of an event that states none.
pub(crate) const DEFAULT_SAMPLE_RATE: i64 = 1;

/// Largest float that converts to an `i64` sample rate (the next one, 2^63, does not).
const MAX_FLOAT_RATE: f64 = 9_223_372_036_854_774_784.0;

/// Parses a sample rate header (`X-Honeycomb-Samplerate`): a positive integer.
pub fn parse_sample_rate(value: &str) -> Result<u64, IngestError> {
    let trimmed = value.trim();
    let invalid = || IngestError::InvalidSampleRate(format!("{value:?}"));
    let rate = match trimmed.parse::<i64>() {
        Ok(rate) => sample_rate_from_i64(rate),
        Err(_) => sample_rate_from_f64(trimmed.parse::<f64>().map_err(|_| invalid())?),
    }
    .map_err(|_| invalid())?;
    u64::try_from(rate).map_err(|_| invalid())
}

/// Checks a sample rate given as an unsigned integer (from a header default).
pub(crate) fn sample_rate_from_u64(rate: u64) -> Result<i64, IngestError> {
    match i64::try_from(rate) {
        Ok(rate) if rate > 0 => Ok(rate),
        _ => Err(IngestError::InvalidSampleRate(rate.to_string())),
    }
}

/// Checks a sample rate given as a signed integer.
pub(crate) fn sample_rate_from_i64(rate: i64) -> Result<i64, IngestError> {
    if rate > 0 {
        Ok(rate)
    } else {
        Err(IngestError::InvalidSampleRate(rate.to_string()))
    }
}

/// Checks a sample rate given as a float: it must hold a whole positive number.
pub(crate) fn sample_rate_from_f64(rate: f64) -> Result<i64, IngestError> {
    if rate.is_finite() && rate.fract() == 0.0 && (1.0..=MAX_FLOAT_RATE).contains(&rate) {
        // Whole and in range, so the conversion is exact.
        Ok(rate as i64)
    } else {
        Err(IngestError::InvalidSampleRate(rate.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_integers_only() {
        assert_eq!(sample_rate_from_i64(10).unwrap(), 10);
        assert!(sample_rate_from_i64(0).is_err());
        assert!(sample_rate_from_i64(-3).is_err());
        assert_eq!(sample_rate_from_f64(4.0).unwrap(), 4);
        assert!(sample_rate_from_f64(2.5).is_err());
        assert!(sample_rate_from_f64(0.0).is_err());
        assert!(sample_rate_from_f64(f64::INFINITY).is_err());
        assert!(sample_rate_from_f64(1e19).is_err());
        assert_eq!(sample_rate_from_u64(7).unwrap(), 7);
        assert!(sample_rate_from_u64(0).is_err());
        assert!(sample_rate_from_u64(u64::MAX).is_err());
    }

    #[test]
    fn header_values() {
        assert_eq!(parse_sample_rate(" 20 ").unwrap(), 20);
        assert_eq!(parse_sample_rate("20.0").unwrap(), 20);
        for bad in ["0", "-1", "abc", "", "1.5"] {
            assert!(
                matches!(
                    parse_sample_rate(bad),
                    Err(IngestError::InvalidSampleRate(_))
                ),
                "{bad}"
            );
        }
    }
}
