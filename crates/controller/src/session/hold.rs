//! Writes held back while the Service status writes are outstanding.
//!
//! The executor sends IPAddressPool status writes only once the Service
//! status writes queued or in flight have been answered, or after
//! [`Held::max`] at the latest. A new Service's address is what its user and
//! every speaker wait for; the pool's counters are informational. Sent
//! together, the two patches share the API server, and the pool's, spawned
//! last, usually starts first (tokio runs the task spawned last first),
//! which delays the address by a millisecond or two. The bound keeps the
//! counters current during a burst, when Service writes stay outstanding
//! for seconds.
//!
//! Pure: the clock and "are Service writes outstanding" are arguments.

use std::time::Duration;

use tokio::time::Instant;

/// Items waiting, and since when the oldest of them waits.
pub(super) struct Held<T> {
    items: Vec<T>,
    since: Option<Instant>,
    max: Duration,
}

impl<T> Held<T> {
    /// Items wait at most `max`.
    pub(super) fn new(max: Duration) -> Self {
        Held { items: Vec::new(), since: None, max }
    }

    /// Holds `item` from `now` (the oldest held item's time counts).
    pub(super) fn push(&mut self, now: Instant, item: T) {
        self.since.get_or_insert(now);
        self.items.push(item);
    }

    /// Everything held, in order, if nothing is `busy` any more or the
    /// oldest item has waited `max`; else nothing.
    pub(super) fn release(&mut self, now: Instant, busy: bool) -> Vec<T> {
        match self.since {
            Some(since) if !busy || now >= since + self.max => {
                self.since = None;
                std::mem::take(&mut self.items)
            }
            _ => Vec::new(),
        }
    }

    /// When the oldest held item has waited long enough.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_millis(100);

    #[test]
    fn nothing_busy_releases_at_once() {
        let t = Instant::now();
        let mut h = Held::new(MAX);
        assert!(h.release(t, false).is_empty() && h.deadline().is_none());
        h.push(t, 1);
        assert_eq!(h.release(t, false), [1]);
        assert!(h.deadline().is_none(), "nothing left to wait for");
    }

    #[test]
    fn busy_holds_until_released_or_the_oldest_waited_max() {
        let t = Instant::now();
        let mut h = Held::new(MAX);
        h.push(t, 1);
        h.push(t + Duration::from_millis(60), 2);
        assert_eq!(h.deadline(), Some(t + MAX), "the oldest item's wait counts");
        assert!(h.release(t + Duration::from_millis(99), true).is_empty());
        assert_eq!(h.release(t + MAX, true), [1, 2], "all of them, in order");
        h.push(t + Duration::from_millis(150), 3);
        assert_eq!(h.deadline(), Some(t + Duration::from_millis(250)), "a new wait starts");
        assert_eq!(h.release(t + Duration::from_millis(151), false), [3], "the Service writes were answered");
    }
}
