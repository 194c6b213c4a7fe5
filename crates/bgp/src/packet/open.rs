//! OPEN and its capabilities (RFC 5492), converted to and from netgauze.

use std::net::Ipv4Addr;

use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::capabilities::{
    BgpCapability, FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};

use super::{EncodeError, Family, write_ng};

/// RFC 6793: "My AS" when the real one does not fit in two octets.
pub const AS_TRANS: u16 = 23456;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GracefulRestart {
    /// The R bit: the sender has restarted.
    pub restarting: bool,
    /// Seconds the peer should keep our routes after the session drops.
    pub restart_time: u16,
    /// Families with the F bit (forwarding state preserved).
    pub families: Vec<(Family, bool)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Multiprotocol (RFC 4760), in the order sent.
    pub families: Vec<Family>,
    /// 4-octet AS (RFC 6793) with the sender's AS.
    pub four_octet_as: Option<u32>,
    /// RFC 2918 route refresh.
    pub route_refresh: bool,
    pub graceful_restart: Option<GracefulRestart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    /// The 2-octet "My AS" field as on the wire (AS_TRANS for large ASNs).
    pub my_as: u16,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub caps: Capabilities,
}

impl Open {
    /// An OPEN for `asn`, carrying it in capability 65 as well.
    pub fn new(asn: u32, hold_time: u16, router_id: Ipv4Addr, mut caps: Capabilities) -> Open {
        caps.four_octet_as = Some(asn);
        Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            router_id,
            caps,
        }
    }

    /// The sender's AS: capability 65 replaces "My AS" (RFC 6793 §4.1).
    pub fn asn(&self) -> u32 {
        self.caps.four_octet_as.unwrap_or(u32::from(self.my_as))
    }

    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut caps = Vec::new();
        for f in &self.caps.families {
            caps.push(BgpCapability::MultiProtocolExtensions(
                MultiProtocolExtensionsCapability::new(f.to_ng()),
            ));
        }
        if self.caps.route_refresh {
            caps.push(BgpCapability::RouteRefresh);
        }
        if let Some(gr) = &self.caps.graceful_restart {
            let fams: Vec<_> = gr
                .families
                .iter()
                .map(|(f, fwd)| GracefulRestartAddressFamily::new(*fwd, f.to_ng()))
                .collect();
            caps.push(BgpCapability::GracefulRestartCapability(
                GracefulRestartCapability::new(gr.restarting, false, gr.restart_time, fams),
            ));
        }
        if let Some(asn) = self.caps.four_octet_as {
            caps.push(BgpCapability::FourOctetAs(FourOctetAsCapability::new(asn)));
        }
        let params = if caps.is_empty() {
            vec![]
        } else {
            vec![BgpOpenMessageParameter::new_capabilities(caps)]
        };
        write_ng(&BgpMessage::Open(BgpOpenMessage::new(
            self.my_as,
            self.hold_time,
            self.router_id,
            params,
        )))
    }

    pub(crate) fn from_ng(o: &BgpOpenMessage) -> Open {
        let mut caps = Capabilities::default();
        for BgpOpenMessageParameter::Capabilities(list) in o.params() {
            for c in list.iter() {
                match c {
                    BgpCapability::MultiProtocolExtensions(mp) => {
                        if let Some(f) = Family::from_ng(mp.address_type())
                            && !caps.families.contains(&f)
                        {
                            caps.families.push(f);
                        }
                    }
                    BgpCapability::FourOctetAs(a) => caps.four_octet_as = Some(a.asn4()),
                    BgpCapability::RouteRefresh | BgpCapability::EnhancedRouteRefresh => {
                        caps.route_refresh = true
                    }
                    BgpCapability::GracefulRestartCapability(gr) => {
                        caps.graceful_restart = Some(GracefulRestart {
                            restarting: gr.restart(),
                            restart_time: gr.time(),
                            families: gr
                                .address_families()
                                .iter()
                                .filter_map(|af| {
                                    Family::from_ng(af.address_type())
                                        .map(|f| (f, af.forwarding_state()))
                                })
                                .collect(),
                        })
                    }
                    // Others (add-path, FQDN, extended message, ...) are not
                    // used by this engine; RFC 5492 says to ignore them.
                    _ => {}
                }
            }
        }
        Open {
            version: o.version(),
            my_as: o.my_as(),
            hold_time: o.hold_time(),
            router_id: o.bgp_id(),
            caps,
        }
    }
}
