//! A line format for the announcer's inputs and outputs, used by the replay
//! tests (tests/replay/*.in -> *.out) and handy in logs.
//!
//! Input script, one event per line, `#` starts a comment:
//!
//! ```text
//! @0 interfaces                 # the whole link list; one indented line per link:
//!   2 eth0 02:00:00:00:00:11 up carrier broadcast ll=fe80::ff:fe00:11
//! @0 announce                   # the whole set; one indented line per address:
//!   198.51.100.200 all
//!   2001:db8::200 eth0,eth1
//! @100 arp 2 op=request sha=02:00:00:00:00:01 spa=198.51.100.1 tpa=198.51.100.200
//! @200 ns 2 src=2001:db8::1 target=2001:db8::200 slla=02:00:00:00:00:01
//! @300 na 2 src=fe80::99 dst=ff02::1 target=2001:db8::200 flags=O tlla=02:00:00:00:00:99
//! @400 hex 2 ffffffffffff...
//! @20000 tick
//! ```
//!
//! Link flags: `up carrier broadcast noarp master`, `ll=` the link-local
//! address. Frame fields left out take the value a normal sender would use
//! (`eth-src` = the sender MAC, `eth-dst` = broadcast for ARP, the group's
//! MAC for multicast IPv6, `dst` = the target's solicited-node group,
//! `hlim=255`, `tha=00:00:00:00:00:00`). Before each event the replay runs
//! every deadline that falls before it, as the responder's timer would.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use super::{Announcer, Count, Input, Output, Purpose, Report};
use crate::interfaces::{InterfaceInfo, InterfaceScope};
use crate::packet::{
    ArpOp, ArpPacket, EthernetHeader, Frame, Ipv6Header, Mac, NdpMessage, NeighborAdvertisement,
    NeighborSolicitation, solicited_node, ETHERTYPE_ARP, ETHERTYPE_IPV6,
};

/// Parses a whole script into timed inputs; errors name the line.
pub fn parse_script(text: &str) -> Result<Vec<(Duration, Input)>, String> {
    let mut events: Vec<(Duration, Input)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let err = |e: String| format!("line {}: {e}: {raw:?}", n + 1);
        if line.starts_with(char::is_whitespace) {
            match events.last_mut() {
                Some((_, Input::Interfaces(list))) => list.push(parse_link(line.trim()).map_err(err)?),
                Some((_, Input::SetAnnounced(set))) => {
                    let (ip, scope) = parse_announce(line.trim()).map_err(err)?;
                    set.insert(ip, scope);
                }
                _ => return Err(err("indented line outside an interfaces/announce block".into())),
            }
        } else {
            events.push(parse_input_line(line).map_err(err)?);
        }
    }
    Ok(events)
}

/// Parses one unindented line (`interfaces` and `announce` start empty).
pub fn parse_input_line(line: &str) -> Result<(Duration, Input), String> {
    let mut words = line.split_whitespace();
    let at = words
        .next()
        .and_then(|w| w.strip_prefix('@'))
        .ok_or("expected @<milliseconds>")?;
    let at = Duration::from_millis(at.parse().map_err(|e| format!("time {at:?}: {e}"))?);
    let kind = words.next().ok_or("expected an event")?;
    let rest: Vec<&str> = words.collect();
    let input = match kind {
        "interfaces" => Input::Interfaces(Vec::new()),
        "announce" => Input::SetAnnounced(BTreeMap::new()),
        "tick" => Input::Tick,
        "arp" | "ns" | "na" | "hex" => {
            let (ifindex, fields) = rest.split_first().ok_or("expected an interface index")?;
            let ifindex = ifindex.parse().map_err(|e| format!("ifindex {ifindex:?}: {e}"))?;
            let fields = Fields::parse(fields)?;
            let bytes = match kind {
                "arp" => arp_frame(&fields)?.encode(),
                "ns" | "na" => ndp_frame(kind, &fields)?.encode(),
                _ => hex(fields.raw.as_deref().ok_or("hex needs the frame bytes")?)?,
            };
            Input::Frame { ifindex, bytes }
        }
        other => return Err(format!("unknown event {other:?}")),
    };
    Ok((at, input))
}

fn parse_link(line: &str) -> Result<InterfaceInfo, String> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let [index, name, mac, flags @ ..] = w.as_slice() else {
        return Err("link: expected INDEX NAME MAC FLAGS...".into());
    };
    let mut link = InterfaceInfo {
        index: index.parse().map_err(|e| format!("index: {e}"))?,
        name: name.to_string(),
        mac: Mac::from_str(mac)?.0,
        up: false,
        carrier: false,
        broadcast: false,
        noarp: false,
        has_master: false,
        ipv4: Vec::new(),
        ipv6: Vec::new(),
        link_local: None,
    };
    for f in flags {
        match *f {
            "up" => link.up = true,
            "carrier" => link.carrier = true,
            "broadcast" => link.broadcast = true,
            "noarp" => link.noarp = true,
            "master" => link.has_master = true,
            other => match other.strip_prefix("ll=") {
                Some(ll) => link.link_local = Some(ll.parse().map_err(|e| format!("ll: {e}"))?),
                None => return Err(format!("unknown link flag {other:?}")),
            },
        }
    }
    Ok(link)
}

fn parse_announce(line: &str) -> Result<(IpAddr, InterfaceScope), String> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let [ip, scope] = w.as_slice() else { return Err("announce: expected IP all|NAME,NAME".into()) };
    let ip = ip.parse().map_err(|e| format!("ip: {e}"))?;
    let scope = match *scope {
        "all" => InterfaceScope::All,
        names => InterfaceScope::Only(names.split(',').map(str::to_string).collect()),
    };
    Ok((ip, scope))
}

#[derive(Default)]
struct Fields {
    map: BTreeMap<String, String>,
    raw: Option<String>,
}

impl Fields {
    fn parse(words: &[&str]) -> Result<Self, String> {
        let mut f = Fields::default();
        for w in words {
            match w.split_once('=') {
                Some((k, v)) => {
                    f.map.insert(k.to_string(), v.to_string());
                }
                None if f.raw.is_none() => f.raw = Some(w.to_string()),
                None => return Err(format!("expected key=value, got {w:?}")),
            }
        }
        Ok(f)
    }

    fn get<T: FromStr>(&self, key: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        self.map
            .get(key)
            .map(|v| v.parse::<T>().map_err(|e| format!("{key}={v}: {e}")))
            .transpose()
    }

    fn need<T: FromStr>(&self, key: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.get(key)?.ok_or_else(|| format!("missing {key}="))
    }
}

fn arp_frame(f: &Fields) -> Result<Frame, String> {
    let op = match f.map.get("op").map(String::as_str) {
        Some("request") | None => ArpOp::Request,
        Some("reply") => ArpOp::Reply,
        Some(other) => return Err(format!("op={other}: request or reply")),
    };
    let sha: Mac = f.need("sha")?;
    let arp = ArpPacket {
        op,
        sha,
        spa: f.need::<Ipv4Addr>("spa")?,
        tha: f.get("tha")?.unwrap_or(Mac::ZERO),
        tpa: f.need("tpa")?,
    };
    let eth = EthernetHeader {
        dst: f.get("eth-dst")?.unwrap_or(Mac::BROADCAST),
        src: f.get("eth-src")?.unwrap_or(sha),
        ethertype: ETHERTYPE_ARP,
    };
    Ok(Frame::Arp { eth, arp })
}

fn ndp_frame(kind: &str, f: &Fields) -> Result<Frame, String> {
    let target: Ipv6Addr = f.need("target")?;
    let dst: Ipv6Addr = f.get("dst")?.unwrap_or_else(|| solicited_node(&target));
    let (msg, lla) = if kind == "ns" {
        let slla: Option<Mac> = f.get("slla")?;
        (NdpMessage::Solicitation(NeighborSolicitation { target, source_lla: slla }), slla)
    } else {
        let flags = f.map.get("flags").cloned().unwrap_or_default();
        let tlla: Option<Mac> = f.get("tlla")?;
        let na = NeighborAdvertisement {
            router: flags.contains('R'),
            solicited: flags.contains('S'),
            override_flag: flags.contains('O'),
            target,
            target_lla: tlla,
        };
        (NdpMessage::Advertisement(na), tlla)
    };
    let src = f.get("eth-src")?.or(lla).ok_or("missing eth-src= (no link-layer option to take it from)")?;
    let eth_dst = match f.get("eth-dst")? {
        Some(m) => m,
        None if dst.is_multicast() => Mac::ipv6_multicast(&dst),
        None => return Err("missing eth-dst= for a unicast destination".into()),
    };
    let eth = EthernetHeader { dst: eth_dst, src, ethertype: ETHERTYPE_IPV6 };
    let ip = Ipv6Header { src: f.need("src")?, dst, hop_limit: f.get("hlim")?.unwrap_or(255) };
    Ok(Frame::Ndp { eth, ip, msg })
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or(""), 16).map_err(|e| format!("hex: {e}")))
        .collect()
}

/// One output as a line (frames are decoded back to text).
pub fn render_output(out: &Output) -> String {
    match out {
        Output::Send { ifindex, frame, purpose } => {
            let (why, ip) = match purpose {
                Purpose::Reply(ip) => ("reply", ip),
                Purpose::Gratuitous(ip) => ("gratuitous", ip),
                Purpose::Probe(ip) => ("probe", ip),
            };
            let text = Frame::decode(frame).map_or_else(
                |e| format!("undecodable ({e}) {}", frame.iter().map(|b| format!("{b:02x}")).collect::<String>()),
                |f| f.to_string(),
            );
            format!("send {ifindex} {why} {ip}: {text}")
        }
        Output::JoinGroup { ifindex, group } => format!("join {ifindex} {group}"),
        Output::LeaveGroup { ifindex, group } => format!("leave {ifindex} {group}"),
        Output::Report(Report::Conflict { ip, interface, mac }) => format!("conflict {ip} {interface} {mac}"),
        Output::Count(Count::RequestReceived(ip)) => format!("count request {ip}"),
        Output::Count(Count::GratuitousSent(ip, n)) => format!("count gratuitous {ip} +{n}"),
        Output::Count(Count::Dropped(reason)) => format!("count dropped {reason}"),
        Output::Withdrawn(ip) => format!("withdrawn {ip}"),
    }
}

/// Runs a script, firing every deadline before each event as the
/// responder's timer does; returns the outputs as `@<ms> <output>` lines.
pub fn replay(announcer: &mut Announcer, events: Vec<(Duration, Input)>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut emit = |at: Duration, outs: Vec<Output>| {
        lines.extend(outs.iter().map(|o| format!("@{} {}", at.as_millis(), render_output(o))));
    };
    for (at, input) in events {
        let mut last = None;
        while let Some(due) = announcer.next_deadline().filter(|d| *d < at) {
            // A deadline that a tick does not move would loop forever.
            if last == Some(due) {
                break;
            }
            last = Some(due);
            emit(due, announcer.handle(due, Input::Tick));
        }
        emit(at, announcer.handle(at, input));
    }
    lines
}
