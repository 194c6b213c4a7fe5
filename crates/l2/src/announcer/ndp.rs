//! IPv6: answering Neighbor Solicitations (speaker.md §3.5, with ferrolb's
//! choices for unicast and DAD solicitations), unsolicited advertisements
//! (§3.6) and the conflict probe.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use super::{Announcer, Count, Output, Purpose, advertisement, solicitation};
use crate::interfaces::InterfaceInfo;
use crate::packet::{EthernetHeader, Frame, Ipv6Header, Mac, NdpMessage, NeighborSolicitation, solicited_node};

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// An unsolicited advertisement to all nodes, Override=1, from the link-local address.
pub(super) fn unsolicited(link: &InterfaceInfo, target: Ipv6Addr) -> Option<Frame> {
    let mac = link.mac();
    let src = link.link_local?;
    Some(Frame::ndp(Mac::ipv6_multicast(&ALL_NODES), mac, src, ALL_NODES, advertisement(target, mac, false, true)))
}

/// A solicitation for our own address, from our link-local address: only
/// a host that holds the address answers it.
pub(super) fn probe(link: &InterfaceInfo, target: Ipv6Addr) -> Option<Frame> {
    let mac = link.mac();
    let src = link.link_local?;
    let group = solicited_node(&target);
    Some(Frame::ndp(Mac::ipv6_multicast(&group), mac, src, group, solicitation(target, mac)))
}

impl Announcer {
    pub(super) fn ndp(
        &mut self,
        now: Duration,
        ifindex: u32,
        eth: &EthernetHeader,
        ip: &Ipv6Header,
        msg: &NdpMessage,
        out: &mut Vec<Output>,
    ) {
        match msg {
            NdpMessage::Advertisement(na) => {
                let target = IpAddr::V6(na.target);
                if self.owned.contains_key(&target) {
                    self.conflict(now, target, ifindex, na.target_lla.unwrap_or(eth.src), out);
                }
            }
            NdpMessage::Solicitation(ns) => self.solicitation(ifindex, eth, ip, ns, out),
        }
    }

    fn solicitation(
        &mut self,
        ifindex: u32,
        eth: &EthernetHeader,
        ip: &Ipv6Header,
        ns: &NeighborSolicitation,
        out: &mut Vec<Output>,
    ) {
        let target = IpAddr::V6(ns.target);
        let Some(link) = self.allowed_link(&target, ifindex) else { return };
        let (mac, Some(link_local)) = (link.mac(), link.link_local) else { return };
        let group = solicited_node(&ns.target);
        // Multicast to the target's solicited-node group, or unicast to the
        // target itself (neighbour unreachability detection; MetalLB leaves
        // those unanswered and the neighbour entry fails until a multicast
        // solicitation resolves it again).
        let to_us = (ip.dst == group && eth.dst == Mac::ipv6_multicast(&group)) || (ip.dst == ns.target && eth.dst == mac);
        if !to_us || ip.src.is_multicast() {
            return;
        }
        let reply = if ip.src.is_unspecified() {
            // Duplicate address detection (RFC 4861 §7.1.1: only to the
            // solicited-node group, never with a source link-layer option).
            // Answered as §7.2.4 says: to all nodes, not solicited, so the
            // host trying to take our address sees it is in use.
            if ip.dst != group || ns.source_lla.is_some() {
                out.push(Output::Count(Count::Dropped("invalid_dad_solicitation")));
                return;
            }
            Frame::ndp(Mac::ipv6_multicast(&ALL_NODES), mac, link_local, ALL_NODES, advertisement(ns.target, mac, false, true))
        } else {
            // Solicited=1, Override=0 as MetalLB; to the option's address,
            // else (unicast solicitations may omit it) the frame's source.
            let to = ns.source_lla.unwrap_or(eth.src);
            Frame::ndp(to, mac, link_local, ip.src, advertisement(ns.target, mac, true, false))
        };
        out.push(Output::Count(Count::RequestReceived(target)));
        out.push(Output::Send { ifindex, frame: reply.encode(), purpose: Purpose::Reply(target) });
    }
}
