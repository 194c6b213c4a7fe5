//! Writes held back while the Service status writes are outstanding, and a
//! little after.
//!
//! The executor sends IPAddressPool status writes only once the Service
//! status writes queued or in flight have been answered and none has been
//! outstanding for [`Held::settle`], or after [`Held::max`] at the latest.
//! A new Service's address is what its user and every speaker wait for; the
//! pool's counters are informational. Sent together, the two patches share
//! the API server, and the pool's, spawned last, usually starts first (tokio
//! runs the task spawned last first), which delays the address by a
//! millisecond or two. Sent just after the Service write is answered, the
//! pool's patch meets the speakers' reaction to the address (their watch
//! events, their own status writes, the router's UPDATE processing on the
//! same nodes): the settle period leaves those milliseconds to them. The
//! bound keeps the counters current during a burst, when Service writes stay
//! outstanding for seconds.
//!
//! Pure: the clock and "are Service writes outstanding" are arguments.

use std::time::Duration;

use tokio::time::Instant;

/// Items waiting, and since when the oldest of them waits.
pub(super) struct Held<T> {
    items: Vec<T>,
    since: Option<Instant>,
    /// Since when no Service write has been outstanding, as last seen.
    idle_since: Option<Instant>,
    max: Duration,
    settle: Duration,
}

impl<T> Held<T> {
    /// Items wait until nothing has been busy for `settle`, and at most
    /// `max`.
    pub(super) fn new(max: Duration, settle: Duration) -> Self {
        Held { items: Vec::new(), since: None, idle_since: None, max, settle }
    }

    /// Holds `item` from `now` (the oldest held item's time counts).
    pub(super) fn push(&mut self, now: Instant, item: T) {
        self.since.get_or_insert(now);
        self.items.push(item);
    }

    /// Everything held, in order, if nothing has been `busy` for the settle
    /// period or the oldest item has waited `max`; else nothing.
    pub(super) fn release(&mut self, now: Instant, busy: bool) -> Vec<T> {
        if busy {
            self.idle_since = None;
        } else {
            self.idle_since.get_or_insert(now);
        }
        match self.deadline() {
            Some(due) if now >= due => {
                self.since = None;
                std::mem::take(&mut self.items)
            }
            _ => Vec::new(),
        }
    }

    /// When the held items are due, if nothing becomes busy meanwhile.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let since = self.since?;
        let settled = self.idle_since.map(|idle| idle.max(since) + self.settle);
        Some(settled.map_or(since + self.max, |settled| settled.min(since + self.max)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_millis(100);
    const SETTLE: Duration = Duration::from_millis(20);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_busy_releases_after_the_settle_period() {
        let t = Instant::now();
        let mut h = Held::new(MAX, SETTLE);
        assert!(h.release(t, false).is_empty() && h.deadline().is_none());
        h.push(t, 1);
        assert!(h.release(t, false).is_empty(), "the settle period counts from the push");
        assert_eq!(h.deadline(), Some(t + SETTLE));
        assert!(h.release(t + ms(19), false).is_empty());
        assert_eq!(h.release(t + SETTLE, false), [1]);
        assert!(h.deadline().is_none(), "nothing left to wait for");
    }

    #[test]
    fn the_settle_period_starts_when_the_service_writes_are_answered() {
        let t = Instant::now();
        let mut h = Held::new(MAX, SETTLE);
        h.push(t, 1);
        assert!(h.release(t, true).is_empty());
        assert_eq!(h.deadline(), Some(t + MAX), "busy: only the bound applies");
        assert!(h.release(t + ms(5), false).is_empty(), "answered at 5 ms");
        assert_eq!(h.deadline(), Some(t + ms(25)));
        assert!(h.release(t + ms(10), true).is_empty(), "a new Service write restarts the wait");
        assert!(h.release(t + ms(30), false).is_empty());
        assert_eq!(h.release(t + ms(50), false), [1]);
    }

    #[test]
    fn busy_holds_until_released_or_the_oldest_waited_max() {
        let t = Instant::now();
        let mut h = Held::new(MAX, SETTLE);
        h.push(t, 1);
        h.push(t + ms(60), 2);
        assert_eq!(h.deadline(), Some(t + MAX), "the oldest item's wait counts");
        assert!(h.release(t + ms(99), true).is_empty());
        assert_eq!(h.release(t + MAX, true), [1, 2], "all of them, in order");
        h.push(t + ms(150), 3);
        assert_eq!(h.deadline(), Some(t + ms(250)), "a new wait starts");
        assert!(h.release(t + ms(151), false).is_empty());
        assert_eq!(h.release(t + ms(171), false), [3], "the Service writes were answered and settled");
    }

    #[test]
    fn the_bound_applies_however_the_writes_come_and_go() {
        let t = Instant::now();
        let mut h = Held::new(MAX, SETTLE);
        h.push(t, 1);
        for i in 0..10 {
            let busy = i % 2 == 0;
            assert!(h.release(t + ms(i * 10), busy).is_empty(), "at {} ms", i * 10);
        }
        assert_eq!(h.release(t + MAX, false), [1]);
    }
}
