//! When the speaker's loop runs a pass (reads every cache, decides, applies).
//!
//! Two kinds of wake-up: urgent ones (a peer failed, a link went down) run a
//! pass after a short debounce, because failover time is what the speaker is
//! judged by; batched ones (watch events) run one no sooner than a spacing
//! after the previous pass, so a burst of thousands of events costs a
//! handful of passes. The spacing follows what the last pass cost
//! ([`COST_FACTOR`] times it, within [`MIN_BATCH_SPACING`] and
//! [`MAX_BATCH_SPACING`]): passes take at most about a tenth of a core in a
//! burst, and a small cluster, whose passes take a millisecond, is not made
//! to wait 100 ms for each change (a Service is created, then its status
//! and endpoints are written, and only the last change makes it
//! announceable).

use std::time::Duration;

use tokio::time::Instant;

/// Wake-ups this close together are handled in one pass.
pub const DEBOUNCE: Duration = Duration::from_millis(5);
/// Passes started by cache changes are at least this far apart...
pub const MIN_BATCH_SPACING: Duration = Duration::from_millis(10);
/// ... and need never be farther apart than this.
pub const MAX_BATCH_SPACING: Duration = Duration::from_millis(100);
/// The spacing is this many times the last pass's duration.
pub const COST_FACTOR: u32 = 10;

#[derive(Debug)]
pub struct PassSchedule {
    /// When the pending pass runs; `None` = nothing pending.
    at: Option<Instant>,
    last: Option<Instant>,
    spacing: Duration,
}

impl PassSchedule {
    /// A schedule with the first pass due at `now`.
    pub fn new(now: Instant) -> Self {
        PassSchedule { at: Some(now), last: None, spacing: MAX_BATCH_SPACING }
    }

    /// A schedule with nothing pending.
    pub fn idle() -> Self {
        PassSchedule { at: None, last: None, spacing: MIN_BATCH_SPACING }
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
        self.last = Some(now);
        let cost = now.saturating_duration_since(started);
        self.spacing = cost.saturating_mul(COST_FACTOR).clamp(MIN_BATCH_SPACING, MAX_BATCH_SPACING);
    }

    /// Something changed that may wait for the batch spacing.
    pub fn batched(&mut self, now: Instant) {
        let spaced = self.last.map_or(now, |last| last + self.spacing);
        self.want((now + DEBOUNCE).max(spaced));
    }

    /// Something changed that must be handled now.
    pub fn urgent(&mut self, now: Instant) {
        self.want(now + DEBOUNCE);
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

    /// Passes during 1,000 events over 500 ms (one every 0.5 ms), each pass
    /// taking `cost`.
    fn passes_in_a_burst(cost: Duration) -> u32 {
        let t0 = Instant::now();
        let mut s = PassSchedule::new(t0);
        s.done(t0, t0 + cost);
        assert!(!s.due(t0 + Duration::from_secs(10)), "nothing pending after a pass");
        let mut passes = 0;
        for i in 0..1000u64 {
            let now = t0 + Duration::from_micros(500 * i);
            if s.due(now) {
                s.done(now, now + cost);
                passes += 1;
            }
            s.batched(now);
        }
        passes
    }

    #[test]
    fn a_burst_costs_one_pass_per_spacing_and_the_spacing_follows_the_cost() {
        // 10 ms passes: 100 ms apart, about 5 in 500 ms.
        let costly = passes_in_a_burst(Duration::from_millis(10));
        assert!((4..=6).contains(&costly), "{costly} passes");
        // 1 ms passes: 10 ms apart.
        let cheap = passes_in_a_burst(Duration::from_millis(1));
        assert!((40..=50).contains(&cheap), "{cheap} passes");
        // Free passes still wait the minimum spacing.
        let free = passes_in_a_burst(Duration::ZERO);
        assert!((cheap..=50).contains(&free), "{free} passes");
        // Very costly passes never wait more than the maximum after they end.
        let t0 = Instant::now();
        let end = t0 + Duration::from_millis(50);
        let mut s = PassSchedule::idle();
        s.done(t0, end);
        s.batched(end);
        assert_eq!(s.next(), Some(end + MAX_BATCH_SPACING));
    }

    #[test]
    fn urgent_changes_skip_the_spacing() {
        let t0 = Instant::now();
        let mut s = PassSchedule::new(t0);
        s.done(t0, t0 + Duration::from_millis(10));
        let t0 = t0 + Duration::from_millis(10);
        s.batched(t0 + Duration::from_millis(1));
        assert_eq!(s.next(), Some(t0 + MAX_BATCH_SPACING));
        s.urgent(t0 + Duration::from_millis(2));
        assert_eq!(s.next(), Some(t0 + Duration::from_millis(2) + DEBOUNCE));
        // A later batched change does not postpone it.
        s.batched(t0 + Duration::from_millis(3));
        assert_eq!(s.next(), Some(t0 + Duration::from_millis(2) + DEBOUNCE));
    }

    #[test]
    fn a_change_after_a_quiet_period_waits_only_the_debounce() {
        let t0 = Instant::now();
        let mut s = PassSchedule::new(t0);
        s.done(t0, t0);
        let later = t0 + Duration::from_secs(5);
        s.batched(later);
        assert_eq!(s.next(), Some(later + DEBOUNCE));
    }
}
