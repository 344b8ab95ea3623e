//! What to generate: how many events, over which time window, from which seed.

use std::time::Duration;

use crate::DatagenError;

/// Default number of distinct customers (`customer_id`, Zipf-distributed).
pub const DEFAULT_CUSTOMERS: u64 = 100_000;
/// Default number of distinct merchants (`merchant_id`, Zipf-distributed).
pub const DEFAULT_MERCHANTS: u64 = 10_000;
/// Default Zipf exponent of `customer_id`: a few customers make most requests.
pub const DEFAULT_CUSTOMER_ZIPF_EXPONENT: f64 = 1.1;
/// Default Zipf exponent of `merchant_id`: flatter than customers.
pub const DEFAULT_MERCHANT_ZIPF_EXPONENT: f64 = 0.9;
/// Default time window the events spread over: four hours ending at `end_time_ns`.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(4 * 3600);
/// Traces start at least this long before the end of the window, so that their
/// spans and logs (which end later than the trace starts) stay inside it.
pub const TRACE_END_MARGIN: Duration = Duration::from_secs(60);

/// Everything that determines the generated events: equal configs give equal events.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of events (spans and logs together) to produce.
    pub events: u64,
    /// End of the time window, in ns since the Unix epoch (usually "now").
    pub end_time_ns: i64,
    /// Length of the time window.
    pub window: Duration,
    /// Distinct `customer_id` values.
    pub customers: u64,
    /// Distinct `merchant_id` values.
    pub merchants: u64,
    /// Zipf exponent of `customer_id`.
    pub customer_zipf_exponent: f64,
    /// Zipf exponent of `merchant_id`.
    pub merchant_zipf_exponent: f64,
}

impl GeneratorConfig {
    /// Defaults for `events` events from `seed` in the window ending at `end_time_ns`.
    pub fn new(seed: u64, events: u64, end_time_ns: i64) -> Self {
        GeneratorConfig {
            seed,
            events,
            end_time_ns,
            window: DEFAULT_WINDOW,
            customers: DEFAULT_CUSTOMERS,
            merchants: DEFAULT_MERCHANTS,
            customer_zipf_exponent: DEFAULT_CUSTOMER_ZIPF_EXPONENT,
            merchant_zipf_exponent: DEFAULT_MERCHANT_ZIPF_EXPONENT,
        }
    }

    /// The same config with another window.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Start of the window in ns since the epoch.
    pub fn start_time_ns(&self) -> i64 {
        self.end_time_ns - duration_ns(self.window)
    }

    /// Checks the config makes sense before generating anything.
    pub fn validate(&self) -> Result<(), DatagenError> {
        if self.window < 2 * TRACE_END_MARGIN {
            return Err(DatagenError::InvalidConfig(format!(
                "window must be at least {} s",
                (2 * TRACE_END_MARGIN).as_secs()
            )));
        }
        if self.customers == 0 || self.merchants == 0 {
            return Err(DatagenError::InvalidConfig(
                "customers and merchants must be at least 1".into(),
            ));
        }
        let exponents = [self.customer_zipf_exponent, self.merchant_zipf_exponent];
        if exponents.iter().any(|e| !e.is_finite() || *e < 0.0) {
            return Err(DatagenError::InvalidConfig(
                "Zipf exponents must be finite and non-negative".into(),
            ));
        }
        if self.start_time_ns() < 0 {
            return Err(DatagenError::InvalidConfig(
                "the window starts before 1970".into(),
            ));
        }
        Ok(())
    }
}

/// A duration in whole nanoseconds, saturating at `i64::MAX`.
pub fn duration_ns(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// Parses a size like `1M`, `10m`, `250k`, `100000` or `1.5M` into a count.
pub fn parse_count(text: &str) -> Result<u64, DatagenError> {
    let trimmed = text.trim().replace('_', "");
    let (number, factor) = match trimmed.chars().last() {
        Some('k' | 'K') => (&trimmed[..trimmed.len() - 1], 1e3),
        Some('m' | 'M') => (&trimmed[..trimmed.len() - 1], 1e6),
        Some('g' | 'G' | 'b' | 'B') => (&trimmed[..trimmed.len() - 1], 1e9),
        _ => (trimmed.as_str(), 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| DatagenError::InvalidConfig(format!("not a count: {text:?}")))?;
    let count = value * factor;
    if !count.is_finite() || count < 0.0 || count.fract() != 0.0 {
        return Err(DatagenError::InvalidConfig(format!(
            "not a whole count: {text:?}"
        )));
    }
    Ok(count as u64)
}

/// Parses a duration like `90s`, `15m`, `4h`, `2d` or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DatagenError> {
    let trimmed = text.trim();
    let (number, unit_secs) = match trimmed.chars().last() {
        Some('s') => (&trimmed[..trimmed.len() - 1], 1.0),
        Some('m') => (&trimmed[..trimmed.len() - 1], 60.0),
        Some('h') => (&trimmed[..trimmed.len() - 1], 3600.0),
        Some('d') => (&trimmed[..trimmed.len() - 1], 86_400.0),
        _ => (trimmed, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| DatagenError::InvalidConfig(format!("not a duration: {text:?}")))?;
    Duration::try_from_secs_f64(value * unit_secs)
        .map_err(|_| DatagenError::InvalidConfig(format!("not a duration: {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_with_suffixes() {
        assert_eq!(parse_count("1M").unwrap(), 1_000_000);
        assert_eq!(parse_count("10m").unwrap(), 10_000_000);
        assert_eq!(parse_count("250k").unwrap(), 250_000);
        assert_eq!(parse_count("1.5M").unwrap(), 1_500_000);
        assert_eq!(parse_count("1_000").unwrap(), 1_000);
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("lots").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("4h").unwrap(), Duration::from_secs(14_400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("120").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("-1h").is_err());
    }

    #[test]
    fn tiny_windows_are_refused() {
        let config = GeneratorConfig::new(1, 10, 1_700_000_000_000_000_000)
            .with_window(Duration::from_secs(10));
        assert!(config.validate().is_err());
        assert!(
            GeneratorConfig::new(1, 10, 1_700_000_000_000_000_000)
                .validate()
                .is_ok()
        );
    }
}
