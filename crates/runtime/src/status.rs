//! One keyed writer for every kind of status object (Service status,
//! IPAddressPool status, ConfigurationState, ServiceL2Status, ...).
//!
//! - bounded concurrency: at most `limit` writes in flight;
//! - at most one write in flight per key, so two writes for one object can
//!   never overtake each other;
//! - a later submission for a key whose write has not started replaces the
//!   queued one (only the newest state is worth sending);
//! - optional spacing: a key's next write starts no sooner than
//!   `min_interval` after its previous one started, and [`StatusWriter::hold`]
//!   delays a key (retry after a failure).
//!
//! The request itself is the caller's: a function from key and body to a
//! future, called when the write starts. Results come back from
//! [`StatusWriter::next`], which the caller polls in its `select!` loop; the
//! caller decides what a failure means (retry, give up, re-read).
//!
//! Dropping the writer aborts the writes in flight (a deposed leader stops
//! writing at once).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::task::{self, JoinSet};
use tokio::time::Instant;

use crate::mem::shrink_sparse;
use crate::retry::sleep_until;

/// Performs one write: called with the key and the newest body when the
/// write starts.
pub type WriteFn<K, B, T> = Arc<dyn Fn(K, B) -> BoxFuture<'static, T> + Send + Sync>;

/// Keyed status writes: see the module documentation.
pub struct StatusWriter<K, B, T> {
    write: WriteFn<K, B, T>,
    limit: usize,
    min_interval: Duration,
    /// Newest body not yet started, per key.
    queued: HashMap<K, B>,
    /// Keys with a queued body, oldest submission first.
    order: VecDeque<K>,
    in_flight: HashSet<K>,
    /// Keys that are both queued and in flight (a follow-up waits).
    follow_ups: usize,
    /// Keys that may not start before the instant (spacing, holds); only
    /// entries in the future are kept, so the map stays small.
    held: HashMap<K, Instant>,
    tasks: JoinSet<T>,
    task_keys: HashMap<task::Id, K>,
}

impl<K, B, T> StatusWriter<K, B, T>
where
    K: Clone + Eq + Hash + Send + 'static,
    B: Send + 'static,
    T: Send + 'static,
{
    /// A writer with at most `limit` (at least 1) writes in flight, each
    /// performed by `write`.
    pub fn new<F>(limit: usize, write: F) -> Self
    where
        F: Fn(K, B) -> BoxFuture<'static, T> + Send + Sync + 'static,
    {
        StatusWriter {
            write: Arc::new(write),
            limit: limit.max(1),
            min_interval: Duration::ZERO,
            queued: HashMap::new(),
            order: VecDeque::new(),
            in_flight: HashSet::new(),
            follow_ups: 0,
            held: HashMap::new(),
            tasks: JoinSet::new(),
            task_keys: HashMap::new(),
        }
    }

    /// Spaces the starts of two writes for one key by at least `interval`.
    pub fn with_min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// Queues `body` for `key`, replacing a queued body that has not started.
    /// If a write for `key` is in flight, this one starts after it returns.
    pub fn submit(&mut self, key: K, body: B) {
        if self.queued.insert(key.clone(), body).is_none() {
            if self.in_flight.contains(&key) {
                self.follow_ups += 1;
            }
            self.order.push_back(key);
        }
        self.start(Instant::now());
    }

    /// Drops the queued body of `key`, if one has not started; returns
    /// whether there was one. A write in flight is not affected.
    pub fn cancel(&mut self, key: &K) -> bool {
        if self.queued.remove(key).is_none() {
            return false;
        }
        if self.in_flight.contains(key) {
            self.follow_ups -= 1;
        }
        // Linear, but cancels are rare next to submits, which stay O(1).
        self.order.retain(|k| k != key);
        true
    }

    /// Drops the queued bodies of the keys `keep` refuses, as [`Self::cancel`]
    /// of each would, in one pass over the queue (a caller that re-plans
    /// every key would otherwise keep its own copy of the keys it queued, to
    /// know which to cancel).
    pub fn retain_queued(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let before = self.queued.len();
        let (in_flight, follow_ups) = (&self.in_flight, &mut self.follow_ups);
        self.queued.retain(|key, _| {
            let kept = keep(key);
            if !kept && in_flight.contains(key) {
                *follow_ups -= 1;
            }
            kept
        });
        if self.queued.len() != before {
            let queued = &self.queued;
            self.order.retain(|k| queued.contains_key(k));
        }
    }

    /// No write for `key` starts before `until` (e.g. a retry delay).
    pub fn hold(&mut self, key: &K, until: Instant) {
        if until <= Instant::now() {
            return;
        }
        let at = self.held.entry(key.clone()).or_insert(until);
        *at = (*at).max(until);
    }

    /// Whether a write for `key` is queued or in flight.
    pub fn busy(&self, key: &K) -> bool {
        self.in_flight.contains(key) || self.queued.contains_key(key)
    }

    /// Whether a write for `key` is in flight.
    pub fn in_flight(&self, key: &K) -> bool {
        self.in_flight.contains(key)
    }

    /// Keys with a write queued or in flight.
    pub fn backlog(&self) -> usize {
        self.in_flight.len() + self.queued.len() - self.follow_ups
    }

    /// The next finished write: its key and what the write function returned.
    /// Starts queued writes as capacity and spacing allow. Pends for ever
    /// while nothing is queued or in flight, so it can sit in a `select!`
    /// unguarded; cancel-safe.
    pub async fn next(&mut self) -> (K, T) {
        loop {
            let wake = self.wake_at();
            tokio::select! {
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    let (id, out) = match done {
                        Ok((id, out)) => (id, Some(out)),
                        Err(error) => {
                            // A panic in the write function (a bug): the key
                            // is freed so later writes for it can go.
                            tracing::error!(%error, "status write task failed");
                            (error.id(), None)
                        }
                    };
                    let key = self.task_keys.remove(&id);
                    if let Some(key) = &key {
                        self.in_flight.remove(key);
                        if self.queued.contains_key(key) {
                            self.follow_ups -= 1;
                        }
                    }
                    self.start(Instant::now());
                    // A drained burst gives back the room it took.
                    shrink_sparse(&mut self.queued);
                    shrink_sparse(&mut self.order);
                    if let (Some(key), Some(out)) = (key, out) {
                        return (key, out);
                    }
                }
                _ = sleep_until(wake), if wake.is_some() => self.start(Instant::now()),
                else => std::future::pending::<()>().await,
            }
        }
    }

    /// When a held key with a queued body may start.
    fn wake_at(&self) -> Option<Instant> {
        self.held
            .iter()
            .filter(|(k, _)| self.queued.contains_key(*k) && !self.in_flight.contains(*k))
            .map(|(_, at)| *at)
            .min()
    }

    fn start(&mut self, now: Instant) {
        self.held.retain(|_, at| *at > now);
        let mut skipped = Vec::new();
        while self.tasks.len() < self.limit {
            let Some(key) = self.order.pop_front() else { break };
            if self.in_flight.contains(&key) || self.held.contains_key(&key) {
                skipped.push(key);
                continue;
            }
            let Some(body) = self.queued.remove(&key) else { continue };
            if !self.min_interval.is_zero() {
                self.held.insert(key.clone(), now + self.min_interval);
            }
            let handle = self.tasks.spawn((self.write)(key.clone(), body));
            self.task_keys.insert(handle.id(), key.clone());
            self.in_flight.insert(key);
        }
        // Skipped keys keep their place ahead of later submissions.
        for key in skipped.into_iter().rev() {
            self.order.push_front(key);
        }
    }
}

/// Whether a cached object at `cached_rv` already includes a write that
/// produced `written_rv`.
///
/// resourceVersions are opaque by contract; with the etcd3 storage they are
/// increasing integers, which is used when both parse. Otherwise the cache
/// is trusted (equal: it is the write; different: assumed newer), which at
/// worst costs one redundant, idempotent write.
pub fn cache_caught_up(cached_rv: Option<&str>, written_rv: &str) -> bool {
    let Some(cached) = cached_rv else { return false };
    match (cached.parse::<u64>(), written_rv.parse::<u64>()) {
        (Ok(c), Ok(w)) => c >= w,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::FutureExt;

    type Log = Arc<Mutex<Vec<(&'static str, u32, Instant)>>>;

    /// A writer whose writes take `delay` and log (key, body, start time).
    fn writer(limit: usize, delay: Duration, log: &Log, peak: &Arc<AtomicUsize>) -> StatusWriter<&'static str, u32, u32> {
        let log = log.clone();
        let peak = peak.clone();
        let running = Arc::new(AtomicUsize::new(0));
        StatusWriter::new(limit, move |key, body| {
            let (log, peak, running) = (log.clone(), peak.clone(), running.clone());
            async move {
                log.lock().unwrap().push((key, body, Instant::now()));
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                running.fetch_sub(1, Ordering::SeqCst);
                body
            }
            .boxed()
        })
    }

    async fn drain(w: &mut StatusWriter<&'static str, u32, u32>, n: usize) -> Vec<(&'static str, u32)> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(w.next().await);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded() {
        let (log, peak) = (Log::default(), Arc::new(AtomicUsize::new(0)));
        let mut w = writer(2, Duration::from_millis(10), &log, &peak);
        for (i, k) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            w.submit(k, i as u32);
        }
        assert_eq!(w.backlog(), 5);
        let done = drain(&mut w, 5).await;
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), ["a", "b", "c", "d", "e"]);
        assert_eq!(w.backlog(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn one_write_per_key_and_later_bodies_supersede() {
        let (log, peak) = (Log::default(), Arc::new(AtomicUsize::new(0)));
        let mut w = writer(8, Duration::from_millis(10), &log, &peak);
        w.submit("a", 1);
        w.submit("a", 2);
        w.submit("a", 3);
        w.submit("b", 1);
        assert!(w.in_flight(&"a") && w.busy(&"a"));
        assert_eq!(w.backlog(), 2, "a (in flight + follow-up) and b");
        let done = drain(&mut w, 3).await;
        assert_eq!(peak.load(Ordering::SeqCst), 2, "a's follow-up waited for a's first write");
        let written: Vec<u32> = log.lock().unwrap().iter().filter(|l| l.0 == "a").map(|l| l.1).collect();
        assert_eq!(written, [1, 3], "body 2 was superseded before it started");
        assert!(done.contains(&("a", 3)) && done.contains(&("b", 1)));
        assert!(!w.busy(&"a"));
        assert_eq!(w.backlog(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_for_a_key_are_spaced() {
        let (log, peak) = (Log::default(), Arc::new(AtomicUsize::new(0)));
        let mut w = writer(8, Duration::from_millis(1), &log, &peak).with_min_interval(Duration::from_millis(500));
        w.submit("a", 1);
        w.next().await;
        w.submit("a", 2);
        w.submit("b", 1);
        w.next().await;
        w.next().await;
        let log = log.lock().unwrap();
        let starts: Vec<Instant> = log.iter().filter(|l| l.0 == "a").map(|l| l.2).collect();
        assert!(starts[1] - starts[0] >= Duration::from_millis(500), "{:?}", starts[1] - starts[0]);
        let b = log.iter().find(|l| l.0 == "b").unwrap().2;
        assert!(b - starts[0] < Duration::from_millis(100), "other keys are not delayed");
    }

    #[tokio::test(start_paused = true)]
    async fn held_keys_wait() {
        let (log, peak) = (Log::default(), Arc::new(AtomicUsize::new(0)));
        let mut w = writer(8, Duration::from_millis(1), &log, &peak);
        let t0 = Instant::now();
        w.hold(&"a", t0 + Duration::from_secs(2));
        w.submit("a", 7);
        assert!(w.busy(&"a") && !w.in_flight(&"a"));
        assert_eq!(w.next().await, ("a", 7));
        assert!(log.lock().unwrap()[0].2 - t0 >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_bodies_are_not_written() {
        let (log, peak) = (Log::default(), Arc::new(AtomicUsize::new(0)));
        let mut w = writer(8, Duration::from_millis(10), &log, &peak);
        w.submit("a", 1);
        w.submit("a", 2);
        assert!(w.cancel(&"a"), "the follow-up was queued");
        assert!(!w.cancel(&"a"));
        assert_eq!(w.backlog(), 1);
        assert_eq!(w.next().await, ("a", 1));
        w.submit("a", 3);
        assert_eq!(w.next().await, ("a", 3));
        let written: Vec<u32> = log.lock().unwrap().iter().map(|l| l.1).collect();
        assert_eq!(written, [1, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn retained_queue_keeps_only_what_is_kept() {
        let (log, peak) = (Log::default(), Arc::new(AtomicUsize::new(0)));
        let mut w = writer(1, Duration::from_millis(10), &log, &peak);
        // a in flight with a follow-up; b, c, d queued.
        for (k, body) in [("a", 1), ("a", 2), ("b", 1), ("c", 1), ("d", 1)] {
            w.submit(k, body);
        }
        assert_eq!(w.backlog(), 4);
        w.retain_queued(|k| *k == "c");
        assert_eq!(w.backlog(), 2, "a in flight, c queued");
        assert!(w.in_flight(&"a") && !w.busy(&"b") && w.busy(&"c") && !w.busy(&"d"));
        assert_eq!(drain(&mut w, 2).await, [("a", 1), ("c", 1)]);
        assert_eq!(w.backlog(), 0);
        let written: Vec<(&str, u32)> = log.lock().unwrap().iter().map(|l| (l.0, l.1)).collect();
        assert_eq!(written, [("a", 1), ("c", 1)], "a's follow-up, b and d were dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_writer_pends() {
        let (log, peak) = (Log::default(), Arc::new(AtomicUsize::new(0)));
        let mut w = writer(8, Duration::from_millis(1), &log, &peak);
        assert!(tokio::time::timeout(Duration::from_secs(5), w.next()).await.is_err());
    }

    #[test]
    fn caught_up() {
        assert!(cache_caught_up(Some("10"), "10"));
        assert!(cache_caught_up(Some("11"), "10"));
        assert!(!cache_caught_up(Some("9"), "10"));
        assert!(!cache_caught_up(None, "10"));
        assert!(cache_caught_up(Some("x"), "y"));
        assert!(cache_caught_up(Some("x"), "x"));
    }
}
