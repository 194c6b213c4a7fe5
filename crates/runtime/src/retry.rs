//! Per-key exponential backoff: the "error, retry" result of controller.md
//! §3.5 (failed writes) and any retried pass of a reconcile loop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// Delay before attempt `n` (1-based): `base * 2^(n-1)`, capped at `max`.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

/// Keys waiting for their next attempt, each with its own failure count.
///
/// Memory is per key that failed and was not [reset](RetryQueue::reset) or
/// [forgotten](RetryQueue::forget); entries of forgotten keys leave the heap
/// when they come due or when the heap is compacted.
pub struct RetryQueue<K> {
    base: Duration,
    max: Duration,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    due: HashMap<u64, K>,
    /// The sequence numbers of each key's pending schedules.
    scheduled: HashMap<K, Vec<u64>>,
    attempts: HashMap<K, u32>,
    seq: u64,
}

impl<K: Clone + Eq + Hash> RetryQueue<K> {
    /// Delays double from `base` per consecutive failure of a key, up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        RetryQueue {
            base,
            max,
            heap: BinaryHeap::new(),
            due: HashMap::new(),
            scheduled: HashMap::new(),
            attempts: HashMap::new(),
            seq: 0,
        }
    }

    /// Schedules `key` after its next backoff delay; returns the delay.
    pub fn schedule(&mut self, key: K, now: Instant) -> Duration {
        let n = self.attempts.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let delay = backoff(self.base, self.max, *n);
        self.seq += 1;
        self.scheduled.entry(key.clone()).or_default().push(self.seq);
        self.heap.push(Reverse((now + delay, self.seq)));
        self.due.insert(self.seq, key);
        delay
    }

    /// Forgets the failure history of `key` (it succeeded).
    pub fn reset(&mut self, key: &K) {
        self.attempts.remove(key);
    }

    /// Forgets everything about `key`: its history and its pending retry
    /// (the object is gone).
    pub fn forget(&mut self, key: &K) {
        self.attempts.remove(key);
        for seq in self.scheduled.remove(key).unwrap_or_default() {
            self.due.remove(&seq);
        }
        self.compact();
    }

    /// Keys with a failure history or a pending retry.
    pub fn len(&self) -> usize {
        self.attempts.len().max(self.scheduled.len())
    }

    /// Whether no key has a failure history or a pending retry.
    pub fn is_empty(&self) -> bool {
        self.attempts.is_empty() && self.scheduled.is_empty()
    }

    /// Drops heap entries of replaced or forgotten schedules once they
    /// outnumber the live ones.
    fn compact(&mut self) {
        if self.heap.len() > 2 * self.due.len() + 16 {
            let due = &self.due;
            self.heap.retain(|Reverse((_, seq))| due.contains_key(seq));
        }
    }

    /// When the earliest scheduled key comes due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Keys whose delay has passed.
    pub fn pop_due(&mut self, now: Instant) -> Vec<K> {
        let mut out = Vec::new();
        while let Some(Reverse((at, seq))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if let Some(k) = self.due.remove(&seq) {
                if let Some(seqs) = self.scheduled.get_mut(&k) {
                    seqs.retain(|s| *s != seq);
                    if seqs.is_empty() {
                        self.scheduled.remove(&k);
                    }
                }
                out.push(k);
            }
        }
        out
    }

    /// Forgets every key and its history.
    pub fn clear(&mut self) {
        self.heap.clear();
        self.due.clear();
        self.scheduled.clear();
        self.attempts.clear();
    }
}

/// Sleeps until `deadline`, forever when there is none (for `select!`).
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_millis(100);
        let m = Duration::from_secs(5);
        assert_eq!(backoff(b, m, 1), b);
        assert_eq!(backoff(b, m, 2), b * 2);
        assert_eq!(backoff(b, m, 4), b * 8);
        assert_eq!(backoff(b, m, 10), m);
        assert_eq!(backoff(b, m, 200), m);
    }

    #[test]
    fn keys_come_due_in_order_and_reset() {
        let mut q = RetryQueue::new(Duration::from_millis(100), Duration::from_secs(5));
        let t = Instant::now();
        q.schedule("a", t);
        q.schedule("a", t + Duration::from_millis(100));
        q.schedule("b", t);
        assert_eq!(q.pop_due(t + Duration::from_millis(150)), vec!["a", "b"]);
        assert!(q.pop_due(t + Duration::from_millis(250)).is_empty());
        assert_eq!(q.pop_due(t + Duration::from_millis(300)), vec!["a"]);
        q.reset(&"a");
        assert_eq!(q.schedule("a", t), Duration::from_millis(100));
    }

    #[test]
    fn forgotten_keys_leave_no_state() {
        let mut q = RetryQueue::new(Duration::from_millis(100), Duration::from_secs(5));
        let t = Instant::now();
        for i in 0..10_000u32 {
            q.schedule(i, t);
            q.schedule(i, t);
            q.forget(&i);
        }
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
        assert!(q.heap.len() <= 16 + 1, "heap compacted: {}", q.heap.len());
        assert!(q.pop_due(t + Duration::from_secs(10)).is_empty(), "a forgotten key never comes due");
        q.schedule(7, t);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_due(t + Duration::from_secs(1)), vec![7]);
        q.forget(&7);
        assert!(q.is_empty());
    }
}
