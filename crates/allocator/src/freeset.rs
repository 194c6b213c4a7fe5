//! Ordered set of free indexes, stored as disjoint inclusive intervals.
//!
//! Lowest-first allocation only ever needs "the smallest free index", taking
//! one index and giving one back; with intervals each is O(log n) in the
//! number of holes, whatever the pool size.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct FreeSet {
    /// end (inclusive) -> start; intervals never touch or overlap. Keyed by
    /// the end so that taking the lowest index of an interval (the common
    /// case) only rewrites a value in place.
    intervals: BTreeMap<u128, u128>,
}

impl FreeSet {
    /// All of `0..=last` free; `None` gives an empty set.
    pub fn full(last: Option<u128>) -> Self {
        let mut intervals = BTreeMap::new();
        if let Some(last) = last {
            intervals.insert(last, 0);
        }
        FreeSet { intervals }
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    pub fn first(&self) -> Option<u128> {
        self.intervals.first_key_value().map(|(_, start)| *start)
    }

    /// The interval holding `index`, as (start, end).
    fn around(&self, index: u128) -> Option<(u128, u128)> {
        let (end, start) = self.intervals.range(index..).next()?;
        (*start <= index).then_some((*start, *end))
    }

    #[cfg(test)]
    pub fn contains(&self, index: u128) -> bool {
        self.around(index).is_some()
    }

    /// Marks `index` used; false when it was not free.
    pub fn take(&mut self, index: u128) -> bool {
        let Some((start, end)) = self.around(index) else {
            return false;
        };
        if index == end {
            self.intervals.remove(&end);
        } else if let Some(s) = self.intervals.get_mut(&end) {
            *s = index + 1;
        }
        if start < index {
            self.intervals.insert(index - 1, start);
        }
        true
    }

    /// Marks `index` free again; false when it already was.
    pub fn put(&mut self, index: u128) -> bool {
        if self.around(index).is_some() {
            return false;
        }
        // An interval ending just before `index` merges into the new one.
        let start = match index.checked_sub(1).and_then(|p| self.intervals.remove(&p)) {
            Some(s) => s,
            None => index,
        };
        // So does one starting just after it: it is the next interval by end.
        let next = index.checked_add(1).and_then(|n| {
            self.intervals
                .range_mut(n..)
                .next()
                .filter(|(_, s)| **s == n)
        });
        match next {
            Some((_, s)) => *s = start,
            None => {
                self.intervals.insert(index, start);
            }
        }
        true
    }

    /// Number of free indexes, saturating.
    #[cfg(test)]
    pub fn count(&self) -> u128 {
        self.intervals.iter().fold(0u128, |acc, (e, s)| {
            acc.saturating_add((e - s).saturating_add(1))
        })
    }

    /// Number of stored intervals.
    #[cfg(test)]
    pub fn interval_count(&self) -> usize {
        self.intervals.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn take_and_put_split_and_merge() {
        let mut f = FreeSet::full(Some(9));
        assert_eq!(f.first(), Some(0));
        assert!(f.take(0));
        assert!(!f.take(0));
        assert!(f.take(5));
        assert_eq!(f.interval_count(), 2);
        assert_eq!(f.first(), Some(1));
        assert!(f.put(5));
        assert!(!f.put(5));
        assert_eq!(f.interval_count(), 1);
        assert!(f.put(0));
        assert_eq!(f.count(), 10);
        assert!(!f.take(10));
    }

    #[test]
    fn handles_the_whole_u128_range() {
        let mut f = FreeSet::full(Some(u128::MAX));
        assert!(f.take(u128::MAX));
        assert!(f.put(u128::MAX));
        assert!(f.take(0));
        assert_eq!(f.first(), Some(1));
        assert!(f.put(0));
        assert_eq!(f.count(), u128::MAX);
        assert!(FreeSet::full(None).is_empty());
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((any::<bool>(), 0u128..64), 0..200)) {
            let mut f = FreeSet::full(Some(63));
            let mut model: BTreeSet<u128> = (0..64).collect();
            for (take, i) in ops {
                if take {
                    prop_assert_eq!(f.take(i), model.remove(&i));
                } else {
                    prop_assert_eq!(f.put(i), model.insert(i));
                }
                prop_assert_eq!(f.first(), model.first().copied());
                prop_assert_eq!(f.count(), model.len() as u128);
                prop_assert_eq!(f.contains(i), model.contains(&i));
            }
        }
    }
}
