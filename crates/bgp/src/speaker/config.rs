//! A peer as the engine needs it: every BGPPeer field of FRR mode that
//! reaches the wire. The speaker crate converts from the CRD.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use crate::network::Endpoint;
use crate::packet::Family;
use crate::session::{PeerAsn, SessionConfig};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub my_asn: u32,
    /// BGPPeer localASN: the AS presented to this peer instead of myASN.
    pub local_asn: Option<u32>,
    pub peer_asn: PeerAsn,
    /// The peer's address; for an unnumbered peer (`interface`), its IPv6
    /// link-local address on that interface.
    pub address: IpAddr,
    pub port: u16,
    pub source: Option<IpAddr>,
    /// BGP unnumbered: the interface whose scope the link-local address has.
    pub interface: Option<String>,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
    pub keepalive_time: Option<u16>,
    /// FRR "timers connect": the first retry delay (default 1 s here).
    pub connect_time: Option<u16>,
    pub ebgp_multihop: bool,
    pub password: Option<String>,
    pub vrf: Option<String>,
    /// Restart time to announce; `None` sends no capability.
    pub graceful_restart: Option<u16>,
    pub families: Vec<Family>,
    /// Never dial (the peer connects to our listener).
    pub passive: bool,
    /// Next hops for advertised routes; by default the local address of
    /// the connection for its own family.
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl PeerConfig {
    /// A peer with FRR's defaults for everything optional.
    pub fn new(my_asn: u32, peer_asn: PeerAsn, address: IpAddr, router_id: Ipv4Addr) -> Self {
        Self {
            my_asn,
            local_asn: None,
            peer_asn,
            address,
            port: 179,
            source: None,
            interface: None,
            router_id,
            hold_time: 180,
            keepalive_time: None,
            connect_time: None,
            ebgp_multihop: false,
            password: None,
            vrf: None,
            graceful_restart: None,
            families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
            passive: false,
            next_hop_v4: None,
            next_hop_v6: None,
        }
    }

    pub fn local_asn(&self) -> u32 {
        self.local_asn.unwrap_or(self.my_asn)
    }

    /// Possibly iBGP (decides the TTL before the OPEN tells).
    fn internal(&self) -> bool {
        match self.peer_asn {
            PeerAsn::Exact(a) => a == self.local_asn(),
            PeerAsn::Internal => true,
            PeerAsn::External | PeerAsn::Any => false,
        }
    }

    pub fn session(&self) -> SessionConfig {
        let retry = Duration::from_secs(u64::from(self.connect_time.unwrap_or(1).max(1)));
        SessionConfig {
            local_asn: self.local_asn(),
            peer_asn: self.peer_asn,
            router_id: self.router_id,
            hold_time: self.hold_time,
            keepalive: self.keepalive_time,
            connect_retry: retry,
            connect_retry_max: Duration::from_secs(120).max(retry),
            families: self.families.clone(),
            graceful_restart: self.graceful_restart,
            passive: self.passive,
        }
    }

    pub fn endpoint(&self, scope_id: u32) -> Endpoint {
        let peer = match self.address {
            IpAddr::V6(a) if self.interface.is_some() => {
                SocketAddr::V6(SocketAddrV6::new(a, self.port, 0, scope_id))
            }
            a => SocketAddr::new(a, self.port),
        };
        Endpoint {
            peer,
            source: self.source,
            ttl: if self.internal() || self.ebgp_multihop {
                255
            } else {
                1
            },
            md5_password: self.password.clone().filter(|p| !p.is_empty()),
            device: self.vrf.clone().or_else(|| self.interface.clone()),
        }
    }

    /// Whether going from `self` to `new` needs the session torn down:
    /// anything carried in the OPEN or the connection does; next hops do not.
    pub fn needs_reset(&self, new: &PeerConfig) -> bool {
        let strip = |c: &PeerConfig| PeerConfig {
            next_hop_v4: None,
            next_hop_v6: None,
            ..c.clone()
        };
        strip(self) != strip(new)
    }
}
