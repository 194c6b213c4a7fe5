//! The layer 2 state machine (speaker.md §3.3-3.7 plus ferrolb's conflict
//! check). Pure: no sockets, no clock. Typed inputs go in with the current
//! time, typed outputs come out; the caller sends the frames, joins the
//! groups and counts. This is what the replay tests drive.

mod arp;
mod ndp;
pub mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;


use crate::interfaces::{InterfaceInfo, InterfaceScope};
use crate::packet::{
    ArpOp, ArpPacket, Frame, Mac, NdpMessage, NeighborAdvertisement, NeighborSolicitation, solicited_node,
};

/// Timings of speaker.md §3.6 and of the conflict probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long after the last confirmation gratuitous rounds go on (5 s).
    pub window: Duration,
    /// Interval between gratuitous rounds (1.1 s).
    pub round_interval: Duration,
    /// Interval between conflict probes while an address is owned (10 s);
    /// also the minimum interval between two reports of the same conflict.
    pub probe_interval: Duration,
    /// After taking an address over, the first probe waits this long and
    /// foreign claims are not reported before it (2 s): the previous owner
    /// may still be answering until it has processed the same change.
    pub takeover_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            window: Duration::from_secs(5),
            round_interval: Duration::from_millis(1100),
            probe_interval: Duration::from_secs(10),
            takeover_grace: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The whole desired set; every call re-confirms each address in it.
    SetAnnounced(BTreeMap<IpAddr, InterfaceScope>),
    /// The node's links after name exclusion (usability is judged here).
    Interfaces(Vec<InterfaceInfo>),
    /// A frame received on an interface.
    Frame { ifindex: u32, bytes: Vec<u8> },
    /// Time passed: run what is due.
    Tick,
}

/// Why a frame is sent; the caller counts replies only once actually sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Reply(IpAddr),
    Gratuitous(IpAddr),
    Probe(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A MAC that is not one of ours answered or announced for an address we own.
    Conflict { ip: IpAddr, interface: String, mac: Mac },
}

/// Metric events (observability.md §2.3 rules are applied here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Count {
    /// A request for an address we answer, counted when a reply is attempted.
    RequestReceived(IpAddr),
    /// Gratuitous packets of one round on one interface (2 for IPv4, 1 for IPv6).
    GratuitousSent(IpAddr, u64),
    /// A received frame dropped as invalid, by reason.
    Dropped(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send { ifindex: u32, frame: Vec<u8>, purpose: Purpose },
    JoinGroup { ifindex: u32, group: Ipv6Addr },
    LeaveGroup { ifindex: u32, group: Ipv6Addr },
    Report(Report),
    Count(Count),
    /// The address left the set: forget its metric series.
    Withdrawn(IpAddr),
}

#[derive(Debug, Clone)]
struct Owned {
    scope: InterfaceScope,
    /// Open gratuitous window: (end, next round).
    window: Option<(Duration, Duration)>,
    next_probe: Duration,
    /// No conflict is reported before this time (end of the takeover grace).
    quiet_until: Duration,
    last_conflict: Option<(Mac, Duration)>,
}

#[derive(Debug, Clone, Default)]
pub struct Announcer {
    timing: Timing,
    owned: BTreeMap<IpAddr, Owned>,
    links: BTreeMap<u32, InterfaceInfo>,
    joined: BTreeSet<(u32, Ipv6Addr)>,
}

impl Announcer {
    pub fn new(timing: Timing) -> Self {
        Announcer { timing, ..Default::default() }
    }

    pub fn handle(&mut self, now: Duration, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::SetAnnounced(set) => self.set_announced(now, set, &mut out),
            Input::Interfaces(list) => self.set_interfaces(now, list, &mut out),
            Input::Frame { ifindex, bytes } => self.frame(now, ifindex, &bytes, &mut out),
            Input::Tick => {}
        }
        self.run_due(now, &mut out);
        out
    }

    /// When the next gratuitous round, window end or probe is due.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.owned
            .values()
            .flat_map(|o| [Some(o.next_probe), o.window.map(|w| w.0), o.window.map(|w| w.1)])
            .flatten()
            .min()
    }

    pub fn announced(&self) -> impl Iterator<Item = &IpAddr> {
        self.owned.keys()
    }

    fn set_announced(&mut self, now: Duration, set: BTreeMap<IpAddr, InterfaceScope>, out: &mut Vec<Output>) {
        let gone: Vec<IpAddr> = self.owned.keys().filter(|ip| !set.contains_key(ip)).copied().collect();
        for ip in gone {
            self.owned.remove(&ip);
            out.push(Output::Withdrawn(ip));
        }
        for (ip, scope) in set {
            let before = self.allowed_links(&ip);
            let grace = self.timing.takeover_grace;
            let entry = self.owned.entry(ip).or_insert_with(|| Owned {
                scope: scope.clone(),
                window: None,
                next_probe: now + grace,
                quiet_until: now + grace,
                last_conflict: None,
            });
            entry.scope = scope;
            if before.is_some_and(|b| self.allowed_links(&ip).is_some_and(|a| !a.is_subset(&b))) {
                // Taking over on interfaces it was not answered on before.
                self.probe_soon(now, ip);
            }
            self.confirm(now, ip, out);
        }
        self.sync_groups(out);
    }

    fn set_interfaces(&mut self, now: Duration, list: Vec<InterfaceInfo>, out: &mut Vec<Output>) {
        let before: BTreeMap<IpAddr, BTreeSet<u32>> =
            self.owned.keys().filter_map(|ip| Some((*ip, self.allowed_links(ip)?))).collect();
        self.links = list.into_iter().map(|l| (l.index, l)).collect();
        let ips: Vec<IpAddr> = self.owned.keys().copied().collect();
        for ip in ips {
            let after = self.allowed_links(&ip).unwrap_or_default();
            let old = before.get(&ip).cloned().unwrap_or_default();
            if !after.is_subset(&old) {
                // A link became usable (carrier back, new port): neighbours
                // there may hold a stale entry, so announce and probe again.
                self.probe_soon(now, ip);
                self.confirm(now, ip, out);
            }
        }
        self.sync_groups(out);
    }

    /// Probe after the takeover grace (sooner if one is due anyway).
    fn probe_soon(&mut self, now: Duration, ip: IpAddr) {
        let grace = self.timing.takeover_grace;
        if let Some(o) = self.owned.get_mut(&ip) {
            o.next_probe = o.next_probe.min(now + grace);
        }
    }

    /// speaker.md §3.6 step 1.
    fn confirm(&mut self, now: Duration, ip: IpAddr, out: &mut Vec<Output>) {
        let timing = self.timing;
        let Some(o) = self.owned.get_mut(&ip) else { return };
        match &mut o.window {
            Some((end, _)) if *end > now => *end = now + timing.window,
            _ => {
                o.window = Some((now + timing.window, now + timing.round_interval));
                self.gratuitous_round(ip, out);
            }
        }
    }

    /// §3.6 step 2 and the conflict probes.
    fn run_due(&mut self, now: Duration, out: &mut Vec<Output>) {
        let timing = self.timing;
        let mut rounds = Vec::new();
        let mut probes = Vec::new();
        for (ip, o) in &mut self.owned {
            if let Some((end, next)) = o.window {
                if now >= end {
                    o.window = None;
                } else if now >= next {
                    o.window = Some((end, now + timing.round_interval));
                    rounds.push(*ip);
                }
            }
            if now >= o.next_probe {
                o.next_probe = now + timing.probe_interval;
                probes.push(*ip);
            }
        }
        for ip in rounds {
            self.gratuitous_round(ip, out);
        }
        for ip in probes {
            self.probe(ip, out);
        }
    }

    /// The links an owned address is answered on, or None if not owned.
    fn allowed_links(&self, ip: &IpAddr) -> Option<BTreeSet<u32>> {
        let o = self.owned.get(ip)?;
        Some(self.links.values().filter(|l| allowed(&o.scope, ip, l)).map(|l| l.index).collect())
    }

    fn allowed_link(&self, ip: &IpAddr, ifindex: u32) -> Option<&InterfaceInfo> {
        let o = self.owned.get(ip)?;
        self.links.get(&ifindex).filter(|l| allowed(&o.scope, ip, l))
    }

    fn for_each_allowed(&self, ip: IpAddr, f: impl FnMut(&InterfaceInfo)) {
        if let Some(o) = self.owned.get(&ip) {
            self.links.values().filter(|l| allowed(&o.scope, &ip, l)).for_each(f);
        }
    }

    fn gratuitous_round(&self, ip: IpAddr, out: &mut Vec<Output>) {
        self.for_each_allowed(ip, |link| {
            let frames = match ip {
                IpAddr::V4(v4) => arp::gratuitous(link.mac(), v4),
                IpAddr::V6(v6) => ndp::unsolicited(link, v6).into_iter().collect(),
            };
            if frames.is_empty() {
                return;
            }
            out.push(Output::Count(Count::GratuitousSent(ip, frames.len() as u64)));
            for frame in frames {
                out.push(Output::Send { ifindex: link.index, frame: frame.encode(), purpose: Purpose::Gratuitous(ip) });
            }
        });
    }

    fn probe(&self, ip: IpAddr, out: &mut Vec<Output>) {
        self.for_each_allowed(ip, |link| {
            let frame = match ip {
                IpAddr::V4(v4) => Some(arp::probe(link.mac(), v4)),
                IpAddr::V6(v6) => ndp::probe(link, v6),
            };
            if let Some(frame) = frame {
                out.push(Output::Send { ifindex: link.index, frame: frame.encode(), purpose: Purpose::Probe(ip) });
            }
        });
    }

    /// Solicited-node groups: joined on a link while at least one owned
    /// address maps to the group there (set difference = reference count).
    fn sync_groups(&mut self, out: &mut Vec<Output>) {
        let mut wanted = BTreeSet::new();
        for ip in self.owned.keys() {
            if let IpAddr::V6(v6) = ip {
                for index in self.allowed_links(ip).unwrap_or_default() {
                    wanted.insert((index, solicited_node(v6)));
                }
            }
        }
        for &(ifindex, group) in self.joined.difference(&wanted) {
            out.push(Output::LeaveGroup { ifindex, group });
        }
        for &(ifindex, group) in wanted.difference(&self.joined) {
            out.push(Output::JoinGroup { ifindex, group });
        }
        self.joined = wanted;
    }

    fn frame(&mut self, now: Duration, ifindex: u32, bytes: &[u8], out: &mut Vec<Output>) {
        let frame = match Frame::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                out.push(Output::Count(Count::Dropped(e.kind())));
                return;
            }
        };
        // Our own frames coming back (another of our ports on the same segment).
        if self.is_ours(&frame.eth().src) {
            return;
        }
        match frame {
            Frame::Arp { eth, arp } => self.arp(now, ifindex, &eth.dst, &arp, out),
            Frame::Ndp { eth, ip, msg } => self.ndp(now, ifindex, &eth, &ip, &msg, out),
        }
    }

    fn is_ours(&self, mac: &Mac) -> bool {
        self.links.values().any(|l| l.mac == mac.0)
    }

    fn conflict(&mut self, now: Duration, ip: IpAddr, ifindex: u32, mac: Mac, out: &mut Vec<Output>) {
        if self.is_ours(&mac) {
            return;
        }
        let Some(interface) = self.links.get(&ifindex).map(|l| l.name.clone()) else { return };
        let quiet = self.timing.probe_interval;
        let Some(o) = self.owned.get_mut(&ip) else { return };
        if now < o.quiet_until || o.last_conflict.is_some_and(|(m, at)| m == mac && now < at + quiet) {
            return;
        }
        o.last_conflict = Some((mac, now));
        out.push(Output::Report(Report::Conflict { ip, interface, mac }));
    }
}

/// May `ip` be answered on `link`: in scope, and the link usable for its family.
fn allowed(scope: &InterfaceScope, ip: &IpAddr, link: &InterfaceInfo) -> bool {
    scope.allows(&link.name)
        && match ip {
            IpAddr::V4(_) => link.arp_usable(),
            IpAddr::V6(_) => link.ndp_usable(),
        }
}

// Shared by the ARP and NDP halves.
fn arp_packet(op: ArpOp, sha: Mac, spa: std::net::Ipv4Addr, tha: Mac, tpa: std::net::Ipv4Addr) -> ArpPacket {
    ArpPacket { op, sha, spa, tha, tpa }
}

fn advertisement(target: Ipv6Addr, mac: Mac, solicited: bool, override_flag: bool) -> NdpMessage {
    NdpMessage::Advertisement(NeighborAdvertisement {
        router: false,
        solicited,
        override_flag,
        target,
        target_lla: Some(mac),
    })
}

fn solicitation(target: Ipv6Addr, mac: Mac) -> NdpMessage {
    NdpMessage::Solicitation(NeighborSolicitation { target, source_lla: Some(mac) })
}

#[cfg(test)]
mod tests;
