//! Deterministic "1 in N" by trace id: every node, and every restart, keeps the
//! same traces at the same rate, and a trace kept at rate N is also kept at every
//! rate below N (the choices nest).

use sha2::{Digest, Sha256};

/// Whether the trace `trace_id` is among the 1 in `rate` kept.
pub fn keeps(trace_id: &str, rate: u64) -> bool {
    if rate <= 1 {
        return true;
    }
    let digest = Sha256::digest(trace_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let position = u64::from_be_bytes(first);
    // Kept when position / 2^64 < 1 / rate.
    (u128::from(position) * u128::from(rate)) >> 64 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_one_keeps_all_and_choices_are_stable_and_nested() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("{i:032x}")).collect();
        assert!(ids.iter().all(|id| keeps(id, 1)));
        let kept_10: Vec<&String> = ids.iter().filter(|id| keeps(id, 10)).collect();
        // Binomial(20000, 0.1): mean 2000, sigma 42.4; 5 sigma is 212.
        assert!((1788..=2212).contains(&kept_10.len()), "{}", kept_10.len());
        let kept_100 = ids.iter().filter(|id| keeps(id, 100)).count();
        assert!((130..=270).contains(&kept_100), "{kept_100}");
        assert!(
            ids.iter()
                .filter(|id| keeps(id, 100))
                .all(|id| keeps(id, 10))
        );
        assert_eq!(
            kept_10,
            ids.iter().filter(|id| keeps(id, 10)).collect::<Vec<_>>()
        );
    }
}
