//! Refusal of replayed datagrams (pure: the wall clock is an argument).
//!
//! Every process numbers its datagrams (`seq`) under a `boot` identifier that
//! grows across restarts. Per sender the guard keeps the newest boot, the
//! highest sequence number and a 64-wide bitmap below it, as IPsec does
//! (RFC 4303 §3.4.3), so a datagram is accepted at most once even when UDP
//! reorders a little. With a key configured the sender's timestamp must also
//! be within `window` of our clock, so a datagram captured earlier cannot be
//! replayed to a receiver that has restarted (and forgotten the numbers).

use std::collections::HashMap;

use crate::packet::Header;

const BITMAP_WIDTH: u64 = 64;
/// Above this many tracked senders, forget the ones silent for a whole window.
const PRUNE_ABOVE: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("timestamp {skew_ms} ms away from our clock")]
    Stale { skew_ms: i128 },
    #[error("datagram {seq} already seen or too old")]
    Replayed { seq: u64 },
    #[error("datagram from an earlier process (boot {boot})")]
    OldBoot { boot: u64 },
}

#[derive(Debug)]
struct Peer {
    boot: u64,
    highest: u64,
    /// Bit i set: `highest - i` was seen.
    seen: u64,
    last_ms: u64,
}

#[derive(Debug)]
pub struct ReplayGuard {
    window_ms: u64,
    check_clock: bool,
    peers: HashMap<String, Peer>,
}

impl ReplayGuard {
    /// `check_clock` is meaningful only for authenticated traffic: without a
    /// key anyone can forge a fresh timestamp, and clusters without a key
    /// should not depend on synchronised clocks.
    pub fn new(window_ms: u64, check_clock: bool) -> Self {
        Self { window_ms, check_clock, peers: HashMap::new() }
    }

    pub fn check(&mut self, h: &Header, now_ms: u64) -> Result<(), ReplayError> {
        if self.check_clock {
            let skew = i128::from(h.timestamp_ms) - i128::from(now_ms);
            if skew.unsigned_abs() > u128::from(self.window_ms) {
                return Err(ReplayError::Stale { skew_ms: skew });
            }
        }
        if self.peers.len() > PRUNE_ABOVE && !self.peers.contains_key(&h.sender) {
            let window = self.window_ms;
            self.peers.retain(|_, p| now_ms.saturating_sub(p.last_ms) <= window);
        }
        let Some(p) = self.peers.get_mut(&h.sender) else {
            self.peers.insert(h.sender.clone(), Peer { boot: h.boot, highest: h.seq, seen: 1, last_ms: now_ms });
            return Ok(());
        };
        // A sender silent for a whole window is forgotten: every datagram it
        // sent before is then outside the clock window anyway. This lets a
        // node whose clock stepped back across a restart (a lower boot) in.
        let forgotten = now_ms.saturating_sub(p.last_ms) > self.window_ms;
        if h.boot < p.boot && !forgotten {
            return Err(ReplayError::OldBoot { boot: h.boot });
        }
        if h.boot != p.boot {
            *p = Peer { boot: h.boot, highest: h.seq, seen: 1, last_ms: now_ms };
            return Ok(());
        }
        if h.seq > p.highest {
            let shift = h.seq - p.highest;
            p.seen = if shift >= BITMAP_WIDTH { 0 } else { p.seen << shift };
            p.seen |= 1;
            p.highest = h.seq;
        } else {
            let back = p.highest - h.seq;
            if back >= BITMAP_WIDTH || p.seen & (1 << back) != 0 {
                return Err(ReplayError::Replayed { seq: h.seq });
            }
            p.seen |= 1 << back;
        }
        p.last_ms = now_ms;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(sender: &str, boot: u64, seq: u64, ts: u64) -> Header {
        Header { sender: sender.into(), boot, seq, timestamp_ms: ts }
    }

    #[test]
    fn each_datagram_once_with_reordering() {
        let mut g = ReplayGuard::new(60_000, true);
        assert_eq!(g.check(&h("a", 1, 10, 1000), 1000), Ok(()));
        assert_eq!(g.check(&h("a", 1, 12, 1000), 1000), Ok(()));
        assert_eq!(g.check(&h("a", 1, 11, 1000), 1000), Ok(()), "reordered, first time");
        assert_eq!(g.check(&h("a", 1, 11, 1000), 1000), Err(ReplayError::Replayed { seq: 11 }));
        assert_eq!(g.check(&h("a", 1, 12, 1000), 1000), Err(ReplayError::Replayed { seq: 12 }));
        assert_eq!(g.check(&h("a", 1, 200, 1000), 1000), Ok(()));
        assert_eq!(g.check(&h("a", 1, 100, 1000), 1000), Err(ReplayError::Replayed { seq: 100 }), "below the window");
        // Another sender has its own numbers.
        assert_eq!(g.check(&h("b", 1, 11, 1000), 1000), Ok(()));
    }

    #[test]
    fn restart_resets_and_old_process_is_refused() {
        let mut g = ReplayGuard::new(60_000, true);
        assert_eq!(g.check(&h("a", 5, 100, 0), 0), Ok(()));
        assert_eq!(g.check(&h("a", 6, 0, 0), 0), Ok(()));
        assert_eq!(g.check(&h("a", 5, 101, 0), 0), Err(ReplayError::OldBoot { boot: 5 }));
        // After a whole window of silence, even a lower boot (clock stepped
        // back across a restart) is let in.
        assert_eq!(g.check(&h("a", 4, 1, 60_001), 60_001), Ok(()));
        assert_eq!(g.check(&h("a", 4, 1, 60_001), 60_001), Err(ReplayError::Replayed { seq: 1 }));
    }

    #[test]
    fn clock_window_only_when_asked() {
        let mut g = ReplayGuard::new(30_000, true);
        assert_eq!(g.check(&h("a", 1, 1, 0), 30_001), Err(ReplayError::Stale { skew_ms: -30_001 }));
        assert_eq!(g.check(&h("a", 1, 1, 60_002), 30_001), Err(ReplayError::Stale { skew_ms: 30_001 }));
        assert_eq!(g.check(&h("a", 1, 1, 0), 30_000), Ok(()));
        let mut g = ReplayGuard::new(30_000, false);
        assert_eq!(g.check(&h("a", 1, 1, 0), 1_000_000), Ok(()));
    }
}
