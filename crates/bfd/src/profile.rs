//! The session parameters a BFDProfile gives (crds.md §6), in the units the
//! engine uses, with MetalLB's defaults and ranges.

use std::time::Duration;

/// Timers and roles of one session. `Default` is what FRR applies when a
/// BFDProfile leaves a field unset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Required Min RX Interval: the fastest we accept packets.
    pub receive_interval: Duration,
    /// Desired Min TX Interval: the fastest we want to send once Up.
    pub transmit_interval: Duration,
    pub detect_multiplier: u8,
    /// Wait for the remote's first packet before sending (RFC 5880 §6.1).
    pub passive: bool,
    /// Multi-hop only (RFC 5883): lowest TTL accepted. Single hop always
    /// requires 255 (RFC 5881 §5) whatever this says.
    pub minimum_ttl: u8,
    /// Echo function (RFC 5880 §6.4, single hop only): advertise Required
    /// Min Echo RX `echo_interval` and send echo packets every
    /// `echo_interval` (never faster than the remote asks) while Up and the
    /// remote accepts them (docs/bfd.md, "Echo").
    pub echo_mode: bool,
    pub echo_interval: Duration,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            receive_interval: Duration::from_millis(300),
            transmit_interval: Duration::from_millis(300),
            detect_multiplier: 3,
            passive: false,
            minimum_ttl: 254,
            echo_mode: false,
            echo_interval: Duration::from_millis(50),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("invalid {field} value {value}, must be in {min}-{max} range")]
    OutOfRange { field: &'static str, value: u64, min: u64, max: u64 },
}

impl Profile {
    /// The ranges of crds.md §6 (the CRD schema enforces them too; this
    /// keeps a caller that builds profiles by hand from running 1 ms timers).
    pub fn validate(&self) -> Result<(), ProfileError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let checks = [
            ("receive interval", ms(self.receive_interval), 10, 60_000),
            ("transmit interval", ms(self.transmit_interval), 10, 60_000),
            ("echo interval", ms(self.echo_interval), 10, 60_000),
            ("detect multiplier", u64::from(self.detect_multiplier), 2, 255),
            ("minimum ttl", u64::from(self.minimum_ttl), 1, 254),
        ];
        for (field, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(ProfileError::OutOfRange { field, value, min, max });
            }
        }
        Ok(())
    }
}

/// How far away the peer is, which decides the port and the TTL check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hop {
    /// RFC 5881: port 3784, TTL/hop limit must arrive as 255.
    Single,
    /// RFC 5883: port 4784, TTL at least the profile's `minimum_ttl`.
    Multi,
}

impl Hop {
    pub fn min_ttl(self, profile: &Profile) -> u8 {
        match self {
            Hop::Single => 255,
            Hop::Multi => profile.minimum_ttl,
        }
    }

    pub fn port(self) -> u16 {
        match self {
            Hop::Single => 3784,
            Hop::Multi => 4784,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_frrs_and_ranges_are_metallbs() {
        assert_eq!(Profile::default().validate(), Ok(()));
        let p = Profile { detect_multiplier: 1, ..Profile::default() };
        assert_eq!(
            p.validate().map_err(|e| e.to_string()),
            Err("invalid detect multiplier value 1, must be in 2-255 range".into())
        );
        let p = Profile { receive_interval: Duration::from_millis(9), ..Profile::default() };
        assert!(p.validate().is_err());
        let p = Profile { transmit_interval: Duration::from_secs(61), ..Profile::default() };
        assert!(p.validate().is_err());
        let p = Profile { minimum_ttl: 255, ..Profile::default() };
        assert!(p.validate().is_err());
    }
}
