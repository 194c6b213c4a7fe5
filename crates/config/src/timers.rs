//! BGPPeer hold/keepalive rules (crds.md §5.5).

use crate::duration::{self, Nanos, SECOND};

/// Resolved timers; `None` from [`resolve`] means "unset" (implementation defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub hold: Nanos,
    pub keepalive: Nanos,
}

/// Applies the derivation rules; the error is the inner text of R8.
pub fn resolve(hold: Option<Nanos>, keepalive: Option<Nanos>) -> Result<Option<Timers>, String> {
    let (hold_time, keepalive_time) = match (hold, keepalive) {
        (None, None) => return Ok(None),
        (Some(h), Some(k)) => (h, k),
        (Some(h), None) => (h, h / 3),
        // Go would wrap on overflow; saturating keeps the value ordered instead.
        (None, Some(k)) => (k.saturating_mul(3), k),
    };
    let rounded = hold_time / SECOND * SECOND;
    if rounded != 0 && rounded < 3 * SECOND {
        return Err(format!(
            "invalid hold time \"{}\": must be 0 or >=3s",
            duration::format(hold_time)
        ));
    }
    if keepalive_time > hold_time {
        return Err(format!(
            "invalid keepaliveTime \"{}\", must be lower than holdTime \"{}\"",
            duration::format(keepalive_time),
            duration::format(hold_time)
        ));
    }
    Ok(Some(Timers { hold: hold_time, keepalive: keepalive_time }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset() {
        assert_eq!(resolve(None, None), Ok(None));
    }

    #[test]
    fn hold_only_derives_keepalive() {
        assert_eq!(resolve(Some(90 * SECOND), None), Ok(Some(Timers { hold: 90 * SECOND, keepalive: 30 * SECOND })));
    }

    #[test]
    fn keepalive_only_derives_hold() {
        assert_eq!(resolve(None, Some(10 * SECOND)), Ok(Some(Timers { hold: 30 * SECOND, keepalive: 10 * SECOND })));
    }

    #[test]
    fn zero_and_subsecond_hold_accepted() {
        assert_eq!(resolve(Some(0), Some(0)), Ok(Some(Timers { hold: 0, keepalive: 0 })));
        assert!(resolve(Some(SECOND / 2), None).is_ok());
    }

    #[test]
    fn short_hold_rejected() {
        assert_eq!(
            resolve(Some(2 * SECOND), None).unwrap_err(),
            "invalid hold time \"2s\": must be 0 or >=3s"
        );
        assert_eq!(
            resolve(Some(2_900_000_000), None).unwrap_err(),
            "invalid hold time \"2.9s\": must be 0 or >=3s"
        );
        assert!(resolve(Some(3 * SECOND), None).is_ok());
        assert!(resolve(Some(-5 * SECOND), None).is_err());
    }

    #[test]
    fn keepalive_above_hold_rejected() {
        assert_eq!(
            resolve(Some(30 * SECOND), Some(31 * SECOND)).unwrap_err(),
            "invalid keepaliveTime \"31s\", must be lower than holdTime \"30s\""
        );
        assert!(resolve(Some(30 * SECOND), Some(30 * SECOND)).is_ok());
    }
}
