//! When the speaker's loop runs a pass (reads every cache, decides, applies).
//!
//! Two kinds of wake-up: urgent ones (a peer failed, a link went down) run a
//! pass at once, because failover time is what the speaker is judged by;
//! batched ones (watch events) are rate-limited by what passes cost, so a
//! burst of thousands of events costs a handful of passes.
//!
//! There is no timed debounce. Wake-ups that arrive while the loop is busy
//! already fold into one (a `Notify` holds one permit), and the loop yields
//! to the runtime once before a pass, so changes other tasks hold ready are
//! in the caches first. A timer of even 1 ms cost 1–2 ms on every change
//! (tokio's timer wheel rounds up to the next millisecond tick), which was
//! a tenth of the Service-to-route time.
//!
//! The limit is a token bucket over pass time (the "generic cell rate
//! algorithm" of ATM traffic shaping): each pass is charged [`COST_FACTOR`]
//! times its duration, so over a long burst passes take at most about a
//! tenth of a core; and a quiet speaker has [`BURST_PASSES`] passes in hand.
//! Those matter for the common case of one Service: it is created, then its
//! status and its endpoints are written within milliseconds, and only the
//! last change makes it announceable. With a fixed spacing after every pass
//! that last change waited the whole spacing (up to 100 ms at 1,000
//! Services); with passes in hand it waits for nothing.

use std::time::Duration;

use tokio::time::Instant;

/// A pass is charged at least this much, so even free passes are spaced.
pub const MIN_BATCH_SPACING: Duration = Duration::from_millis(10);
/// ... and at most this much: a burst never waits longer than this after a
/// pass, however long the passes take.
pub const MAX_BATCH_SPACING: Duration = Duration::from_millis(100);
/// A pass is charged this many times its duration.
pub const COST_FACTOR: u32 = 10;
/// Passes a quiet speaker may run back to back before the charge applies.
pub const BURST_PASSES: u32 = 4;

#[derive(Debug)]
pub struct PassSchedule {
    /// When the pending pass runs; `None` = nothing pending.
    at: Option<Instant>,
    /// The bucket's theoretical arrival time: passes are in hand while it
    /// lies less than `BURST_PASSES` charges ahead of now.
    tat: Option<Instant>,
    /// The charge of the last pass.
    spacing: Duration,
}

impl PassSchedule {
    /// A schedule with the first pass due at `now`.
    pub fn new(now: Instant) -> Self {
        PassSchedule { at: Some(now), tat: None, spacing: MIN_BATCH_SPACING }
    }

    /// A schedule with nothing pending.
    pub fn idle() -> Self {
        PassSchedule { at: None, tat: None, spacing: MIN_BATCH_SPACING }
    }

    /// Whether a pass is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.at.is_some_and(|at| at <= now)
    }

    /// When the pending pass is due (for a timer).
    pub fn next(&self) -> Option<Instant> {
        self.at
    }

    /// A pass that started at `started` ended at `now`.
    pub fn done(&mut self, started: Instant, now: Instant) {
        self.at = None;
        let cost = now.saturating_duration_since(started);
        self.spacing = cost.saturating_mul(COST_FACTOR).clamp(MIN_BATCH_SPACING, MAX_BATCH_SPACING);
        let tat = self.tat.map_or(started, |tat| tat.max(started)) + self.spacing;
        // However far behind the bucket is, the next batched pass waits at
        // most MAX_BATCH_SPACING after this one.
        self.tat = Some(tat.min(now + MAX_BATCH_SPACING + self.allowance()));
    }

    /// Something changed that may wait for the bucket.
    pub fn batched(&mut self, now: Instant) {
        let earliest = self.tat.and_then(|tat| tat.checked_sub(self.allowance())).unwrap_or(now);
        self.want(now.max(earliest));
    }

    /// Something changed that must be handled now.
    pub fn urgent(&mut self, now: Instant) {
        self.want(now);
    }

    fn allowance(&self) -> Duration {
        self.spacing.saturating_mul(BURST_PASSES)
    }

    fn want(&mut self, at: Instant) {
        self.at = Some(self.at.map_or(at, |pending| pending.min(at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_pass_is_due_at_once() {
        let t0 = Instant::now();
        let s = PassSchedule::new(t0);
        assert!(s.due(t0));
    }

    /// Passes during `events` changes, one every 0.5 ms, each pass taking
    /// `cost` (the loop is single-threaded: no change is seen during a pass).
    fn passes_in_a_burst(cost: Duration, events: u64) -> u32 {
        let t0 = Instant::now();
        let mut s = PassSchedule::new(t0);
        s.done(t0, t0 + cost);
        assert!(!s.due(t0 + Duration::from_secs(10)), "nothing pending after a pass");
        let mut passes = 0;
        let mut busy_until = t0 + cost;
        for i in 0..events {
            let now = t0 + Duration::from_micros(500 * i);
            if now < busy_until {
                continue;
            }
            if s.due(now) {
                s.done(now, now + cost);
                busy_until = now + cost;
                passes += 1;
            }
            s.batched(now);
        }
        passes
    }

    #[test]
    fn a_long_burst_costs_a_tenth_of_a_core_plus_the_passes_in_hand() {
        // 10,000 events over 5 s.
        for (cost_ms, spacing_ms) in [(10, 100), (1, 10), (0, 10)] {
            let cost = Duration::from_millis(cost_ms);
            let passes = passes_in_a_burst(cost, 10_000);
            let paced = 5_000 / spacing_ms as u32;
            assert!((paced..=paced + BURST_PASSES + 1).contains(&passes), "{cost_ms} ms passes: {passes} passes, {paced} paced");
        }
        // Passes dearer than a tenth of the maximum spacing are charged the
        // maximum: at most one pass per MAX_BATCH_SPACING after the burst.
        let passes = passes_in_a_burst(Duration::from_millis(50), 10_000);
        assert!((50..=50 + BURST_PASSES + 1).contains(&passes), "{passes} passes");
    }

    #[test]
    fn a_quiet_speaker_handles_each_of_a_few_changes_at_once() {
        let t0 = Instant::now();
        let mut s = PassSchedule::new(t0);
        let cost = Duration::from_millis(8);
        s.done(t0, t0 + cost);
        // A Service created, its status written, its endpoints written, 3 ms
        // apart, a second later: each change is seen by its own pass.
        let mut now = t0 + Duration::from_secs(1);
        for _ in 0..3 {
            s.batched(now);
            assert_eq!(s.next(), Some(now));
            let started = now;
            s.done(started, started + cost);
            now = started + cost + Duration::from_millis(3);
        }
    }

    #[test]
    fn urgent_changes_skip_the_bucket() {
        let t0 = Instant::now();
        let mut s = PassSchedule::new(t0);
        let cost = Duration::from_millis(10);
        let mut now = t0;
        // Spend the passes in hand.
        for _ in 0..=BURST_PASSES {
            s.done(now, now + cost);
            now += cost;
        }
        s.batched(now);
        let batched_at = s.next().expect("a pass is pending");
        assert!(batched_at > now, "the bucket is empty: the batched pass waits");
        assert!(batched_at <= now + MAX_BATCH_SPACING, "never longer than the maximum spacing");
        s.urgent(now + Duration::from_millis(1));
        assert_eq!(s.next(), Some(now + Duration::from_millis(1)));
        // A later batched change does not postpone it.
        s.batched(now + Duration::from_millis(2));
        assert_eq!(s.next(), Some(now + Duration::from_millis(1)));
    }
}
