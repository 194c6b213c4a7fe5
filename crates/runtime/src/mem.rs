//! Returning the memory of tables a burst has grown.
//!
//! `HashMap`, `HashSet` and `VecDeque` never give back capacity. A burst
//! (5,000 Services at start-up) sizes the write queues and the session's
//! per-Service tables for thousands of entries, and the memory stayed
//! reserved after they drained, while the Events that trail convergence
//! allocate afresh: that is where the controller's peak RSS was set
//! (docs/benchmarks-metallb.md, "Controller memory").

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Capacity below which a table is left alone: shrinking it would save
/// little and cost reallocations as it refills.
const KEEP: usize = 64;

/// A collection that can give back spare capacity.
pub trait Shrink {
    /// Its length and capacity.
    fn len_capacity(&self) -> (usize, usize);
    /// Shrinks the capacity to at least `min` and at least the length.
    fn shrink_capacity_to(&mut self, min: usize);
}

/// Halves the spare room of `table` once it is three quarters empty: after a
/// burst drains, the capacity follows the length down, and a table that only
/// fluctuates is not reallocated over and over (it is shrunk to twice its
/// length, so it must lose half again before the next shrink).
pub fn shrink_sparse(table: &mut impl Shrink) {
    let (len, capacity) = table.len_capacity();
    if capacity > KEEP && len < capacity / 4 {
        table.shrink_capacity_to((len * 2).max(KEEP / 2));
    }
}

impl<K: Eq + Hash, V, S: BuildHasher> Shrink for HashMap<K, V, S> {
    fn len_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_capacity_to(&mut self, min: usize) {
        self.shrink_to(min);
    }
}

impl<K: Eq + Hash, S: BuildHasher> Shrink for HashSet<K, S> {
    fn len_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_capacity_to(&mut self, min: usize) {
        self.shrink_to(min);
    }
}

impl<T> Shrink for VecDeque<T> {
    fn len_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_capacity_to(&mut self, min: usize) {
        self.shrink_to(min);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_table_gives_back_its_room_and_a_busy_one_keeps_it() {
        let mut t: HashMap<u32, u32> = (0..5_000).map(|i| (i, i)).collect();
        let full = t.capacity();
        shrink_sparse(&mut t);
        assert_eq!(t.capacity(), full, "a full table is left alone");
        t.retain(|k, _| *k < 2_000);
        // (A hash table's capacity counts the free slots, which removals
        // may leave unusable until it is rebuilt.)
        let before = t.capacity();
        shrink_sparse(&mut t);
        assert_eq!(t.capacity(), before, "not yet three quarters empty");
        t.retain(|k, _| *k < 100);
        shrink_sparse(&mut t);
        assert!(t.capacity() < full / 10 && t.capacity() >= 100, "{}", t.capacity());
        assert_eq!(t.len(), 100);
        t.clear();
        shrink_sparse(&mut t);
        assert!(t.capacity() <= KEEP, "{}", t.capacity());
        let mut q: VecDeque<u8> = VecDeque::with_capacity(10);
        shrink_sparse(&mut q);
        assert_eq!(q.capacity(), 10, "small tables are left alone");
        let mut q: VecDeque<u8> = (0..=255).collect();
        q.truncate(3);
        shrink_sparse(&mut q);
        assert!(q.capacity() < 256);
    }
}
