//! The node's links: what they are (netlink scan and change stream), which
//! are excluded by name (speaker.md §3.4 step 1) and which can answer ARP or
//! NDP (steps 3-4, plus ferrolb's carrier rule).

mod exclude;
mod netlink;

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

pub use exclude::{DEFAULT_EXCLUDE_PATTERNS, EXCLUDE_FILE, ExcludeError, ExcludeList};
pub use netlink::{InterfacesError, Scanner};

use crate::packet::Mac;

/// Which interfaces an address may be answered on (speaker.md §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceScope {
    /// Every usable interface.
    All,
    /// Only these interface names (those that are not usable are skipped).
    Only(BTreeSet<String>),
}

impl InterfaceScope {
    pub fn allows(&self, name: &str) -> bool {
        match self {
            InterfaceScope::All => true,
            InterfaceScope::Only(names) => names.contains(name),
        }
    }
}

/// One netlink link with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub index: u32,
    pub name: String,
    pub mac: [u8; 6],
    /// IFF_UP: administratively up.
    pub up: bool,
    /// IFF_LOWER_UP: the link has carrier.
    pub carrier: bool,
    /// IFF_BROADCAST
    pub broadcast: bool,
    /// IFF_NOARP
    pub noarp: bool,
    /// Enslaved to a bridge, bond or VRF (IFLA_MASTER set).
    pub has_master: bool,
    pub ipv4: Vec<ipnet::Ipv4Net>,
    pub ipv6: Vec<ipnet::Ipv6Net>,
    /// The first usable (not tentative, not failed DAD) fe80::/10 address.
    pub link_local: Option<Ipv6Addr>,
}

impl InterfaceInfo {
    /// speaker.md §3.4 step 3, plus ferrolb's rule that a link without
    /// carrier does not answer: frames sent there go nowhere, and MetalLB's
    /// check (IFF_UP only) keeps a responder on a cable-less port.
    pub fn arp_usable(&self) -> bool {
        self.up && self.carrier && !self.has_master && !self.noarp && self.broadcast
    }

    /// speaker.md §3.4 step 4: the same, with a link-local address to answer from.
    pub fn ndp_usable(&self) -> bool {
        self.arp_usable() && self.link_local.is_some()
    }

    pub fn mac(&self) -> Mac {
        Mac(self.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth0() -> InterfaceInfo {
        InterfaceInfo {
            index: 2,
            name: "eth0".into(),
            mac: [2, 0, 0, 0, 0, 0x11],
            up: true,
            carrier: true,
            broadcast: true,
            noarp: false,
            has_master: false,
            ipv4: vec![],
            ipv6: vec![],
            link_local: Some("fe80::ff:fe00:11".parse().expect("addr")),
        }
    }

    #[test]
    fn usability_rules() {
        assert!(eth0().arp_usable() && eth0().ndp_usable());
        let each: [fn(&mut InterfaceInfo); 5] = [
            |i| i.up = false,
            |i| i.carrier = false,
            |i| i.broadcast = false,
            |i| i.noarp = true,
            |i| i.has_master = true,
        ];
        for breaks in each {
            let mut i = eth0();
            breaks(&mut i);
            assert!(!i.arp_usable() && !i.ndp_usable(), "{i:?}");
        }
        let mut no_ll = eth0();
        no_ll.link_local = None;
        assert!(no_ll.arp_usable() && !no_ll.ndp_usable());
    }

    #[test]
    fn scope() {
        assert!(InterfaceScope::All.allows("eth0"));
        let only = InterfaceScope::Only(["eth1".to_string()].into());
        assert!(only.allows("eth1") && !only.allows("eth0"));
    }
}
