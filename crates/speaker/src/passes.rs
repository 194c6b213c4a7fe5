//! When the speaker's loop runs a pass (reads every cache, decides, applies).
//!
//! Two kinds of wake-up: urgent ones (a peer failed, a link went down) run a
//! pass after a short debounce, because failover time is what the speaker is
//! judged by; batched ones (watch events) run one no sooner than
//! [`BATCH_SPACING`] after the previous pass, so a burst of thousands of
//! events costs a handful of passes.

use std::time::Duration;

use tokio::time::Instant;

/// Wake-ups this close together are handled in one pass.
pub const DEBOUNCE: Duration = Duration::from_millis(5);
/// Passes started by cache changes are at least this far apart.
pub const BATCH_SPACING: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct PassSchedule {
    /// When the pending pass runs; `None` = nothing pending.
    at: Option<Instant>,
    last: Option<Instant>,
}

impl PassSchedule {
    /// A schedule with the first pass due at `now`.
    pub fn new(now: Instant) -> Self {
        PassSchedule { at: Some(now), last: None }
    }

    /// Whether a pass is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.at.is_some_and(|at| at <= now)
    }

    /// When the pending pass is due (for a timer).
    pub fn next(&self) -> Option<Instant> {
        self.at
    }

    /// A pass ended at `now`.
    pub fn done(&mut self, now: Instant) {
        self.at = None;
        self.last = Some(now);
    }

    /// Something changed that may wait for the batch spacing.
    pub fn batched(&mut self, now: Instant) {
        let spaced = self.last.map_or(now, |last| last + BATCH_SPACING);
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

    #[test]
    fn a_burst_of_cache_changes_costs_one_pass_per_spacing() {
        let t0 = Instant::now();
        let mut s = PassSchedule::new(t0);
        s.done(t0);
        assert!(!s.due(t0 + Duration::from_secs(10)), "nothing pending after a pass");
        let mut passes = 0;
        // 1,000 events over 500 ms, one every 0.5 ms.
        for i in 0..1000u64 {
            let now = t0 + Duration::from_micros(500 * i);
            if s.due(now) {
                s.done(now);
                passes += 1;
            }
            s.batched(now);
        }
        assert!((4..=6).contains(&passes), "{passes} passes");
    }

    #[test]
    fn urgent_changes_skip_the_spacing() {
        let t0 = Instant::now();
        let mut s = PassSchedule::new(t0);
        s.done(t0);
        s.batched(t0 + Duration::from_millis(1));
        assert_eq!(s.next(), Some(t0 + BATCH_SPACING));
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
        s.done(t0);
        let later = t0 + Duration::from_secs(5);
        s.batched(later);
        assert_eq!(s.next(), Some(later + DEBOUNCE));
    }
}
