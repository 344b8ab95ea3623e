//! A dynamic sampler with a target throughput (Refinery's EMA throughput
//! sampler): traces are counted per key (e.g. `service.name` + `http.route` +
//! status) each interval; at the interval's end each key's count joins an
//! exponential moving average, and rates are recomputed so that all keys together
//! keep about `target_per_second` traces per second. The budget is shared fairly:
//! keys rarer than their share are kept whole (rate 1), and what they leave over
//! goes to the busier keys, which are sampled harder.
//!
//! Before its first interval ends the sampler knows no rates and keeps everything
//! (rate 1); a key first seen since the last recomputation is kept at rate 1 too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::rules::DynamicRule;

/// Most keys tracked; further keys share one overflow key (bounded memory).
const MAX_KEYS: usize = 10_000;
/// The key of the traces past [`MAX_KEYS`].
const OVERFLOW_KEY: &str = "\u{0}overflow";
/// An average below this is forgotten (the key has gone quiet).
const FORGET_BELOW: f64 = 0.01;

/// One dynamic rule's state.
#[derive(Debug)]
pub struct DynamicSampler {
    interval: Duration,
    weight: f64,
    /// Traces to keep per interval.
    target: f64,
    counts: HashMap<String, u64>,
    averages: HashMap<String, f64>,
    rates: HashMap<String, u64>,
    next_adjust: Instant,
}

impl DynamicSampler {
    /// A sampler for `rule`, its first interval starting at `now`.
    pub fn new(rule: &DynamicRule, now: Instant) -> DynamicSampler {
        let interval = Duration::from_millis(rule.adjust_interval_ms);
        DynamicSampler {
            interval,
            weight: rule.ema_weight,
            target: rule.target_per_second * interval.as_secs_f64(),
            counts: HashMap::new(),
            averages: HashMap::new(),
            rates: HashMap::new(),
            next_adjust: now + interval,
        }
    }

    /// Whether this sampler was made for `rule` (else the rule changed).
    pub fn matches(&self, rule: &DynamicRule) -> bool {
        self.interval == Duration::from_millis(rule.adjust_interval_ms)
            && self.weight == rule.ema_weight
            && self.target == rule.target_per_second * self.interval.as_secs_f64()
    }

    /// Counts a trace of `key` and answers its rate.
    pub fn rate(&mut self, key: &str, now: Instant) -> u64 {
        if now >= self.next_adjust {
            self.adjust();
            // Skip intervals that passed without traffic: each counts as empty.
            while self.next_adjust <= now {
                self.next_adjust += self.interval;
            }
        }
        let key = if self.counts.contains_key(key) || self.counts.len() < MAX_KEYS {
            key
        } else {
            OVERFLOW_KEY
        };
        *self.counts.entry(key.to_owned()).or_insert(0) += 1;
        self.rates.get(key).copied().unwrap_or(1)
    }

    /// Folds the interval's counts into the averages and recomputes the rates.
    fn adjust(&mut self) {
        let counts = std::mem::take(&mut self.counts);
        for average in self.averages.values_mut() {
            *average *= 1.0 - self.weight;
        }
        for (key, count) in counts {
            *self.averages.entry(key).or_insert(0.0) += self.weight * count as f64;
        }
        self.averages.retain(|_, average| *average >= FORGET_BELOW);
        self.rates = fair_rates(&self.averages, self.target);
    }
}

/// Rates per key so that `Σ average / rate ≈ target`, rarest keys first: each
/// key gets an equal share of what is left, kept whole if it fits in it.
pub fn fair_rates(averages: &HashMap<String, f64>, target: f64) -> HashMap<String, u64> {
    let mut keys: Vec<(&String, f64)> = averages.iter().map(|(k, v)| (k, *v)).collect();
    keys.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
    let mut budget = target;
    let total = keys.len();
    let mut rates = HashMap::with_capacity(total);
    for (index, (key, average)) in keys.into_iter().enumerate() {
        let share = budget / (total - index) as f64;
        let rate = if average <= share {
            1
        } else if share <= 0.0 {
            u64::MAX
        } else {
            let rate = (average / share).round();
            if rate >= u64::MAX as f64 {
                u64::MAX
            } else {
                (rate as u64).max(1)
            }
        };
        budget = (budget - average / rate as f64).max(0.0);
        rates.insert(key.clone(), rate);
    }
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(target_per_second: f64) -> DynamicRule {
        DynamicRule {
            key_fields: vec!["k".into()],
            target_per_second,
            adjust_interval_ms: 1_000,
            ema_weight: 0.5,
        }
    }

    #[test]
    fn rare_keys_are_kept_whole_and_busy_keys_share_the_rest() {
        let averages: HashMap<String, f64> = [("rare", 5.0), ("busy", 1_000.0), ("mid", 100.0)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let rates = fair_rates(&averages, 100.0);
        assert_eq!(rates["rare"], 1);
        // rare keeps 5; mid's share is 47.5 of 95 -> rate 2 (keeps 50); busy gets 45.
        assert_eq!(rates["mid"], 2);
        assert_eq!(rates["busy"], 22);
        let kept: f64 = averages.iter().map(|(k, v)| v / rates[k] as f64).sum();
        assert!((kept - 100.0).abs() < 5.0, "{kept}");
    }

    #[test]
    fn the_target_is_met_after_the_average_settles() {
        let start = Instant::now();
        let mut sampler = DynamicSampler::new(&rule(50.0), start);
        let keys = [("a", 900u32), ("b", 90), ("c", 10)];
        let mut kept_last_interval = 0.0;
        // Ten one-second intervals of 1,000 traces each, spread through the second.
        for second in 0..10u32 {
            kept_last_interval = 0.0;
            for (key, per_second) in keys {
                for i in 0..per_second {
                    let at = start
                        + Duration::from_secs(u64::from(second))
                        + Duration::from_micros(u64::from(i) * 1_000_000 / u64::from(per_second));
                    kept_last_interval += 1.0 / sampler.rate(key, at) as f64;
                }
            }
        }
        assert!(
            (kept_last_interval - 50.0).abs() <= 5.0,
            "kept {kept_last_interval} per second"
        );
        assert_eq!(sampler.rates["c"], 1);
        assert!(sampler.rates["a"] > sampler.rates["b"]);
    }

    #[test]
    fn keys_are_bounded() {
        let start = Instant::now();
        let mut sampler = DynamicSampler::new(&rule(10.0), start);
        for i in 0..(MAX_KEYS + 100) {
            sampler.rate(&format!("k{i}"), start);
        }
        assert_eq!(sampler.counts.len(), MAX_KEYS + 1);
        assert_eq!(sampler.counts[OVERFLOW_KEY], 100);
    }
}
