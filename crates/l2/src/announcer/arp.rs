//! IPv4: answering ARP requests (speaker.md §3.5), gratuitous frames (§3.6)
//! and the RFC 5227 probe of the conflict check.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{Announcer, Count, Output, Purpose, arp_packet};
use crate::packet::{ArpOp, ArpPacket, Frame, Mac};

/// One IPv4 gratuitous round on one link: a request and a reply, both
/// broadcast, sender = target = the address, target MAC = broadcast.
pub(super) fn gratuitous(mac: Mac, ip: Ipv4Addr) -> Vec<Frame> {
    [ArpOp::Request, ArpOp::Reply]
        .into_iter()
        .map(|op| Frame::arp(Mac::BROADCAST, mac, arp_packet(op, mac, ip, Mac::BROADCAST, ip)))
        .collect()
}

/// RFC 5227 §2.1.1 probe: sender IP 0.0.0.0, so that no neighbour learns
/// anything from it; whoever holds the address answers.
pub(super) fn probe(mac: Mac, ip: Ipv4Addr) -> Frame {
    Frame::arp(Mac::BROADCAST, mac, arp_packet(ArpOp::Request, mac, Ipv4Addr::UNSPECIFIED, Mac::ZERO, ip))
}

impl Announcer {
    pub(super) fn arp(&mut self, now: Duration, ifindex: u32, eth_dst: &Mac, arp: &ArpPacket, out: &mut Vec<Output>) {
        // Anyone else claiming one of our addresses as its sender: an answer
        // to our probe, a gratuitous ARP, or a plain request from a host
        // configured with it.
        let sender = IpAddr::V4(arp.spa);
        if self.owned.contains_key(&sender) {
            self.conflict(now, sender, ifindex, arp.sha, out);
        }
        if arp.op != ArpOp::Request {
            return;
        }
        let target = IpAddr::V4(arp.tpa);
        let Some(link) = self.allowed_link(&target, ifindex) else { return };
        if *eth_dst != Mac::BROADCAST && *eth_dst != link.mac() {
            return;
        }
        let mac = link.mac();
        out.push(Output::Count(Count::RequestReceived(target)));
        let reply = Frame::arp(arp.sha, mac, arp_packet(ArpOp::Reply, mac, arp.tpa, arp.sha, arp.spa));
        out.push(Output::Send { ifindex, frame: reply.encode(), purpose: Purpose::Reply(target) });
    }
}
