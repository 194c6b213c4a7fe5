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
pub struct RetryQueue<K> {
    base: Duration,
    max: Duration,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    due: HashMap<u64, K>,
    attempts: HashMap<K, u32>,
    seq: u64,
}

impl<K: Clone + Eq + Hash> RetryQueue<K> {
    /// Delays double from `base` per consecutive failure of a key, up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        RetryQueue { base, max, heap: BinaryHeap::new(), due: HashMap::new(), attempts: HashMap::new(), seq: 0 }
    }

    /// Schedules `key` after its next backoff delay; returns the delay.
    pub fn schedule(&mut self, key: K, now: Instant) -> Duration {
        let n = self.attempts.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let delay = backoff(self.base, self.max, *n);
        self.seq += 1;
        self.heap.push(Reverse((now + delay, self.seq)));
        self.due.insert(self.seq, key);
        delay
    }

    /// Forgets the failure history of `key` (it succeeded).
    pub fn reset(&mut self, key: &K) {
        self.attempts.remove(key);
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
                out.push(k);
            }
        }
        out
    }

    /// Forgets every key and its history.
    pub fn clear(&mut self) {
        self.heap.clear();
        self.due.clear();
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
}
