//! Ordered set of free indexes, stored as disjoint inclusive intervals.
//!
//! Lowest-first allocation only ever needs "the smallest free index", taking
//! one index and giving one back; with intervals each is O(log n) in the
//! number of holes, whatever the pool size.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct FreeSet {
    /// start -> end (inclusive); intervals never touch or overlap.
    intervals: BTreeMap<u128, u128>,
}

impl FreeSet {
    /// All of `0..=last` free; `None` gives an empty set.
    pub fn full(last: Option<u128>) -> Self {
        let mut intervals = BTreeMap::new();
        if let Some(last) = last {
            intervals.insert(0, last);
        }
        FreeSet { intervals }
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    pub fn first(&self) -> Option<u128> {
        self.intervals.first_key_value().map(|(s, _)| *s)
    }

    #[cfg(test)]
    pub fn contains(&self, index: u128) -> bool {
        self.intervals
            .range(..=index)
            .next_back()
            .is_some_and(|(_, e)| *e >= index)
    }

    /// Marks `index` used; false when it was not free.
    pub fn take(&mut self, index: u128) -> bool {
        let Some((&start, &end)) = self.intervals.range(..=index).next_back() else {
            return false;
        };
        if end < index {
            return false;
        }
        if start == index {
            self.intervals.remove(&start);
        } else {
            self.intervals.insert(start, index - 1);
        }
        if index < end {
            self.intervals.insert(index + 1, end);
        }
        true
    }

    /// Marks `index` free again; false when it already was.
    pub fn put(&mut self, index: u128) -> bool {
        let before = self.intervals.range(..=index).next_back().map(|(s, e)| (*s, *e));
        if let Some((_, e)) = before {
            if e >= index {
                return false;
            }
        }
        let mut start = index;
        let mut end = index;
        if let Some((s, e)) = before {
            if e + 1 == index {
                start = s;
            }
        }
        if let Some(next) = index.checked_add(1) {
            if let Some(e) = self.intervals.remove(&next) {
                end = e;
            }
        }
        self.intervals.insert(start, end);
        true
    }

    #[cfg(test)]
    /// Number of free indexes, saturating.
    pub fn count(&self) -> u128 {
        self.intervals
            .iter()
            .fold(0u128, |acc, (s, e)| acc.saturating_add((e - s).saturating_add(1)))
    }

    #[cfg(test)]
    /// Number of stored intervals (memory accounting, tests).
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
