//! Identifiers that are unique by construction: a bijective mix of a counter.
//!
//! `mix64` (the SplitMix64 finalizer) is a bijection on `u64`, so distinct counters
//! give distinct ids without remembering any of them — which keeps the generator's
//! memory bounded however many events it makes.

/// The SplitMix64 finalizer: a bijection of `u64` that looks random.
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Per-seed keys for each kind of id, so different seeds give different ids.
#[derive(Debug, Clone, Copy)]
pub struct IdKeys {
    trace_hi: u64,
    trace_lo: u64,
    span: u64,
    request_hi: u64,
    request_lo: u64,
}

impl IdKeys {
    /// Keys derived from the generator's seed.
    pub fn new(seed: u64) -> Self {
        let key = |salt: u64| mix64(seed ^ mix64(salt));
        IdKeys {
            trace_hi: key(1),
            trace_lo: key(2),
            span: key(3),
            request_hi: key(4),
            request_lo: key(5),
        }
    }

    /// `trace.trace_id` of the `index`-th trace: 32 lower-case hex digits (W3C form).
    pub fn trace_id(&self, index: u64) -> String {
        format!(
            "{:016x}{:016x}",
            mix64(index ^ self.trace_hi),
            mix64(index.wrapping_add(self.trace_lo))
        )
    }

    /// `trace.span_id` of the `index`-th span: 16 lower-case hex digits.
    pub fn span_id(&self, index: u64) -> String {
        format!("{:016x}", mix64(index ^ self.span))
    }

    /// `request_id` of the `index`-th request, formatted as a UUID.
    pub fn request_id(&self, index: u64) -> String {
        let hi = mix64(index ^ self.request_hi);
        let lo = mix64(index.wrapping_add(self.request_lo));
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let keys = IdKeys::new(7);
        let mut traces = HashSet::new();
        let mut spans = HashSet::new();
        let mut requests = HashSet::new();
        for i in 0..10_000 {
            let t = keys.trace_id(i);
            assert_eq!(t.len(), 32);
            assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(traces.insert(t));
            assert!(spans.insert(keys.span_id(i)));
            let r = keys.request_id(i);
            assert_eq!(r.len(), 36);
            assert!(requests.insert(r));
        }
    }

    #[test]
    fn seeds_change_ids() {
        assert_ne!(IdKeys::new(1).trace_id(0), IdKeys::new(2).trace_id(0));
        assert_eq!(IdKeys::new(1).trace_id(5), IdKeys::new(1).trace_id(5));
    }
}
