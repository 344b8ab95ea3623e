//! Weights by bucket key for one sign, bounded to [`MAX_BINS`] consecutive keys.
//!
//! Two representations, whichever is smaller: a sorted list of `(key, weight)`
//! pairs (a group that saw a few values, the common case with 200,000 groups), or a
//! dense array from the lowest key (a group with many values; O(1) adds). A store
//! starts sparse, turns dense once it has [`DENSE_MIN_BINS`] bins and the array
//! would be no larger, and turns sparse again if the array grows to more than
//! [`SPARSE_AGAIN_FACTOR`] slots per filled bin (hysteresis, so a store does not
//! flip back and forth).
//!
//! Collapse rule: keys span at most [`MAX_BINS`]. When a higher key arrives, every
//! bin more than `MAX_BINS - 1` keys below it is merged into the lowest kept bin,
//! and lower keys added later land there too. So the *lowest* values lose accuracy
//! first and the upper quantiles (p99, p999) keep the guarantee. The result does not
//! depend on the order of adds or merges: it always equals "exact bins, then merge
//! every key below `max_key - MAX_BINS + 1` into that key".

/// Most consecutive keys one store spans. At 1% accuracy that is a ratio of
/// `γ^2048 ≈ 6e17` between the largest and smallest magnitude kept exactly.
pub const MAX_BINS: i32 = 2048;
/// Filled bins before a sparse store may turn dense: tiny stores stay pairs.
pub const DENSE_MIN_BINS: usize = 16;
/// A dense store with more slots than this many per filled bin turns sparse again.
pub const SPARSE_AGAIN_FACTOR: usize = 4;

#[derive(Debug, Clone)]
enum Repr {
    /// Sorted by key; weights > 0.
    Sparse(Vec<(i32, f64)>),
    /// `counts[i]` is the weight of key `offset + i`; the first and last are > 0;
    /// `filled` counts the slots > 0.
    Dense {
        offset: i32,
        counts: Vec<f64>,
        filled: usize,
    },
}

/// Weights of one sign's buckets.
#[derive(Debug, Clone)]
pub(crate) struct Bins {
    repr: Repr,
}

/// Equal when the bins are, whatever the representation.
impl PartialEq for Bins {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Default for Bins {
    fn default() -> Self {
        Bins {
            repr: Repr::Sparse(Vec::new()),
        }
    }
}

impl Bins {
    /// Adds `weight` (> 0) to bucket `key`, applying the collapse rule.
    pub(crate) fn add(&mut self, key: i32, weight: f64) {
        let key = match self.key_range() {
            Some((_, max)) if key > max => {
                self.collapse_below(key.saturating_sub(MAX_BINS - 1));
                key
            }
            Some((_, max)) => key.max(max.saturating_sub(MAX_BINS - 1)),
            None => key,
        };
        self.add_raw(key, weight);
    }

    /// Adds every bin of `other`.
    pub(crate) fn merge(&mut self, other: &Bins) {
        let Some((other_min, other_max)) = other.key_range() else {
            return;
        };
        // Fast path (merging rollup sketches into a query's accumulator): other's
        // keys all fall inside this dense array, so no collapse and no resize.
        if let Repr::Dense {
            offset,
            counts,
            filled,
        } = &mut self.repr
            && other_min >= *offset
            && other_max < *offset + counts.len() as i32
        {
            let mut add = |key: i32, weight: f64| {
                let slot = &mut counts[(key - *offset) as usize];
                if *slot == 0.0 {
                    *filled += 1;
                }
                *slot += weight;
            };
            match &other.repr {
                Repr::Sparse(pairs) => pairs.iter().for_each(|&(key, weight)| add(key, weight)),
                Repr::Dense {
                    offset: from,
                    counts: weights,
                    ..
                } => {
                    for (i, &weight) in weights.iter().enumerate() {
                        if weight > 0.0 {
                            add(from + i as i32, weight);
                        }
                    }
                }
            }
            return;
        }
        // Highest first: the collapse floor is fixed by the first add, so lower
        // keys go straight to their final bin.
        let mut pairs: Vec<(i32, f64)> = other.iter().collect();
        pairs.reverse();
        for (key, weight) in pairs {
            self.add(key, weight);
        }
    }

    /// Non-empty bins, ascending by key.
    pub(crate) fn iter(&self) -> Box<dyn DoubleEndedIterator<Item = (i32, f64)> + '_> {
        match &self.repr {
            Repr::Sparse(pairs) => Box::new(pairs.iter().copied()),
            Repr::Dense { offset, counts, .. } => Box::new(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, weight)| **weight > 0.0)
                    .map(move |(i, weight)| (offset + i as i32, *weight)),
            ),
        }
    }

    /// Number of non-empty bins.
    pub(crate) fn len(&self) -> usize {
        match &self.repr {
            Repr::Sparse(pairs) => pairs.len(),
            Repr::Dense { filled, .. } => *filled,
        }
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Sparse(pairs) => pairs.capacity() * size_of::<(i32, f64)>(),
            Repr::Dense { counts, .. } => counts.capacity() * size_of::<f64>(),
        }
    }

    /// Lowest and highest non-empty key.
    pub(crate) fn key_range(&self) -> Option<(i32, i32)> {
        match &self.repr {
            Repr::Sparse(pairs) => Some((pairs.first()?.0, pairs.last()?.0)),
            Repr::Dense { offset, counts, .. } if !counts.is_empty() => {
                Some((*offset, offset + counts.len() as i32 - 1))
            }
            Repr::Dense { .. } => None,
        }
    }

    /// Merges every bin below `floor` into bin `floor`.
    fn collapse_below(&mut self, floor: i32) {
        match self.key_range() {
            Some((min, _)) if min < floor => {}
            _ => return,
        }
        let moved: f64 = match &mut self.repr {
            Repr::Sparse(pairs) => {
                let split = pairs.partition_point(|(key, _)| *key < floor);
                pairs.drain(..split).map(|(_, weight)| weight).sum()
            }
            Repr::Dense {
                offset,
                counts,
                filled,
            } => {
                let split = ((floor - *offset) as usize).min(counts.len());
                let drained = counts.drain(..split);
                let mut moved = 0.0;
                for weight in drained {
                    if weight > 0.0 {
                        *filled -= 1;
                        moved += weight;
                    }
                }
                *offset = floor;
                // Keep the invariant: the first stored count is non-zero.
                let leading_zeros = counts.iter().take_while(|weight| **weight == 0.0).count();
                counts.drain(..leading_zeros);
                *offset += leading_zeros as i32;
                moved
            }
        };
        if moved > 0.0 {
            self.add_raw(floor, moved);
        }
    }

    /// Adds `weight` to `key` without the collapse rule.
    fn add_raw(&mut self, key: i32, weight: f64) {
        if self.dense_would_be_mostly_empty(key) {
            self.repr = Repr::Sparse(self.iter().collect());
        }
        match &mut self.repr {
            Repr::Sparse(pairs) => {
                match pairs.binary_search_by_key(&key, |(k, _)| *k) {
                    Ok(at) => pairs[at].1 += weight,
                    Err(at) => pairs.insert(at, (key, weight)),
                }
                let span = i64::from(pairs[pairs.len() - 1].0) - i64::from(pairs[0].0) + 1;
                // A dense slot is half a sparse pair: dense once no larger.
                if pairs.len() >= DENSE_MIN_BINS && span <= 2 * pairs.len() as i64 {
                    self.repr = to_dense(pairs);
                }
            }
            Repr::Dense {
                offset,
                counts,
                filled,
            } => {
                if counts.is_empty() {
                    *offset = key;
                    counts.push(weight);
                    *filled = 1;
                } else if key < *offset {
                    let grow = (*offset - key) as usize;
                    counts.splice(0..0, std::iter::repeat_n(0.0, grow));
                    *offset = key;
                    counts[0] = weight;
                    *filled += 1;
                } else {
                    let at = (key - *offset) as usize;
                    if at >= counts.len() {
                        counts.resize(at + 1, 0.0);
                    }
                    if counts[at] == 0.0 {
                        *filled += 1;
                    }
                    counts[at] += weight;
                }
            }
        }
    }

    /// Whether a dense store, stretched to hold `key`, would have more than
    /// [`SPARSE_AGAIN_FACTOR`] slots per filled bin.
    fn dense_would_be_mostly_empty(&self, key: i32) -> bool {
        let Repr::Dense {
            offset,
            counts,
            filled,
        } = &self.repr
        else {
            return false;
        };
        if counts.is_empty() {
            return false;
        }
        let low = i64::from(key.min(*offset));
        let high = i64::from(key.max(*offset + counts.len() as i32 - 1));
        let span = (high - low + 1) as usize;
        span > counts.len() && span > SPARSE_AGAIN_FACTOR * (*filled + 1)
    }

    /// Bins from pairs read back from bytes (ascending, positive weights, span
    /// already checked by the caller), in the representation adds would reach.
    pub(crate) fn from_sorted_pairs(pairs: Vec<(i32, f64)>) -> Bins {
        let repr = match (pairs.first(), pairs.last()) {
            (Some(first), Some(last))
                if pairs.len() >= DENSE_MIN_BINS
                    && i64::from(last.0) - i64::from(first.0) < 2 * pairs.len() as i64 =>
            {
                to_dense(&pairs)
            }
            _ => Repr::Sparse(pairs),
        };
        Bins { repr }
    }
}

/// A dense array of sorted, non-empty pairs.
fn to_dense(pairs: &[(i32, f64)]) -> Repr {
    let offset = pairs[0].0;
    let span = (pairs[pairs.len() - 1].0 - offset + 1) as usize;
    let mut counts = vec![0.0; span];
    for (key, weight) in pairs {
        counts[(key - offset) as usize] += weight;
    }
    Repr::Dense {
        offset,
        counts,
        filled: pairs.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(bins: &Bins) -> Vec<(i32, f64)> {
        bins.iter().collect()
    }

    #[test]
    fn sparse_keys_stay_sorted_and_sum() {
        let mut bins = Bins::default();
        for key in [50, -3, 900, 50] {
            bins.add(key, 1.0);
        }
        assert_eq!(pairs(&bins), vec![(-3, 1.0), (50, 2.0), (900, 1.0)]);
        assert!(matches!(bins.repr, Repr::Sparse(_)));
    }

    #[test]
    fn a_dense_run_turns_dense_with_the_same_bins_and_back() {
        let mut bins = Bins::default();
        for key in (10..30).chain([10, 12]) {
            bins.add(key, 0.5);
        }
        assert!(matches!(bins.repr, Repr::Dense { .. }));
        assert_eq!(bins.len(), 20);
        assert_eq!(pairs(&bins)[..3], [(10, 1.0), (11, 0.5), (12, 1.0)]);
        bins.add(5, 2.0);
        bins.add(40, 1.0);
        assert!(matches!(bins.repr, Repr::Dense { .. }));
        assert_eq!(bins.key_range(), Some((5, 40)));
        assert_eq!(bins.len(), 22);
        // Far away: the array would be mostly empty, so back to pairs.
        bins.add(1500, 1.0);
        assert!(matches!(bins.repr, Repr::Sparse(_)));
        assert_eq!(bins.len(), 23);
        assert_eq!(pairs(&bins).last(), Some(&(1500, 1.0)));
        let total: f64 = bins.iter().map(|(_, weight)| weight).sum();
        assert_eq!(total, 10.0 + 0.5 * 2.0 + 2.0 + 1.0 + 1.0);
    }

    #[test]
    fn keys_beyond_the_span_collapse_into_the_lowest_kept_bin() {
        let mut bins = Bins::default();
        bins.add(0, 1.0);
        bins.add(1, 2.0);
        bins.add(MAX_BINS, 4.0);
        // Floor is 1: key 0 merged into 1.
        assert_eq!(pairs(&bins), vec![(1, 3.0), (MAX_BINS, 4.0)]);
        bins.add(-500, 1.0);
        assert_eq!(pairs(&bins), vec![(1, 4.0), (MAX_BINS, 4.0)]);
    }

    #[test]
    fn collapse_does_not_depend_on_the_order_of_adds() {
        let keys = [0, 5, 3000, -200, 2999, 1000, 4000, 2000];
        let mut forward = Bins::default();
        for key in keys {
            forward.add(key, 1.0);
        }
        let mut backward = Bins::default();
        for key in keys.iter().rev() {
            backward.add(*key, 1.0);
        }
        let mut merged = Bins::default();
        let (left, right) = keys.split_at(3);
        let mut other = Bins::default();
        for key in left {
            merged.add(*key, 1.0);
        }
        for key in right {
            other.add(*key, 1.0);
        }
        merged.merge(&other);
        assert_eq!(pairs(&forward), pairs(&backward));
        assert_eq!(pairs(&forward), pairs(&merged));
        assert_eq!(forward.key_range(), Some((4000 - MAX_BINS + 1, 4000)));
    }
}
