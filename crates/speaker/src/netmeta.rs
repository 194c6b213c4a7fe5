//! What a speaker tells the others about itself through the failure
//! detector: the interfaces it can answer on and their networks, so that a
//! node whose link lost carrier, or which has no address in a Service's
//! subnet, stops being elected (crate::decide, ferrolb's link-awareness).
//!
//! Encoded as compact JSON: the detector carries it as opaque bytes, it is
//! small (a few interfaces), and a newer speaker can add fields that an older
//! one skips.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::decide::MemberNetworks;

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    /// Usable interfaces: name and networks.
    #[serde(rename = "i")]
    interfaces: Vec<(String, Vec<IpNet>)>,
}

pub fn encode(interfaces: &[(String, Vec<IpNet>)]) -> Vec<u8> {
    // Serialising strings and networks to JSON cannot fail.
    serde_json::to_vec(&Meta { interfaces: interfaces.to_vec() }).unwrap_or_default()
}

/// Unreadable or empty meta (a member that has not scanned its interfaces
/// yet) says nothing: the member counts as able to answer anywhere.
pub fn decode(bytes: &[u8]) -> MemberNetworks {
    let interfaces = serde_json::from_slice::<Meta>(bytes).ok().map(|m| m.interfaces);
    MemberNetworks { interfaces }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let ifaces = vec![("eth0".to_string(), vec!["198.51.100.11/24".parse().unwrap(), "2001:db8::11/64".parse().unwrap()])];
        assert_eq!(decode(&encode(&ifaces)).interfaces, Some(ifaces));
        assert_eq!(decode(b"").interfaces, None);
        assert_eq!(decode(b"\xff{").interfaces, None);
        assert_eq!(decode(&encode(&[])).interfaces, Some(vec![]));
    }
}
