//! Checks made from the router namespace with the kernel's and Debian's own
//! tools (test-peers.md §3): who answers ARP (`arping`, Thomas Habets' 2.23)
//! and NDP (`ndprobe.py`, stdlib python), what the router's neighbour table
//! says (`ip -j neigh`), whether TCP reaches a VIP, and, for failover
//! measurements, a fast ARP watcher.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::netns::{Host, NetNs};

/// The interface every host of a [`crate::netns::Topology`] has.
pub const IFACE: &str = "eth0";

/// The NDP probe shipped with the harness (test-peers.md §3.2).
pub fn ndprobe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ndprobe.py")
}

/// Python for the probe: Debian's if present (the `python3` first on PATH
/// may be a pyenv without system packages; the probe is stdlib-only either
/// way).
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").is_file() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// The MACs of `42 bytes from MAC (IP): ...` lines of Habets' arping, in
/// order of arrival, without repeats.
pub fn parse_arping(output: &str) -> Vec<String> {
    let mut macs: Vec<String> = Vec::new();
    for line in output.lines() {
        let Some(rest) = line.split(" bytes from ").nth(1) else {
            continue;
        };
        let Some(mac) = rest.split_whitespace().next() else {
            continue;
        };
        let mac = mac.to_ascii_lowercase();
        if is_mac(&mac) && !macs.contains(&mac) {
            macs.push(mac);
        }
    }
    macs
}

fn is_mac(s: &str) -> bool {
    s.len() == 17
        && s.split(':')
            .all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok())
}

/// Both probes exit 1 when nothing answered, the normal "nobody has it";
/// any other exit without an answer is the tool failing.
fn no_answer_or_failure(ns: &NetNs, what: &str, silent: bool, out: &Output) -> Result<()> {
    if silent && out.status.code() != Some(1) {
        return Err(Error::Command(format!(
            "{what} in netns {} exited with {}: {}",
            ns.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Every MAC that answered `count` ARP requests for `ip` sent from `ns`'s
/// eth0 (more than one: two nodes claim the address).
pub fn arp_answers(ns: &NetNs, ip: Ipv4Addr, count: u32) -> Result<Vec<String>> {
    let ip = ip.to_string();
    let count = count.max(1).to_string();
    // -W: 0.2 s between requests; arping waits up to one interval for the
    // last answer, so `count` requests take about count * 0.2 s.
    let out = ns.output("arping", &["-c", &count, "-W", "0.2", "-i", IFACE, &ip])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let macs = parse_arping(&text);
    no_answer_or_failure(ns, &format!("arping {ip}"), macs.is_empty(), &out)?;
    Ok(macs)
}

/// Who answers ARP for `ip` (three requests 0.2 s apart): the first MAC
/// that did, or `None`.
pub fn arp_who_has(ns: &NetNs, ip: Ipv4Addr) -> Result<Option<String>> {
    Ok(arp_answers(ns, ip, 3)?.into_iter().next())
}

/// Who answers an IPv6 Neighbor Solicitation for `ip` within `wait`: the
/// target link-layer address of the first Neighbor Advertisement, or `None`.
/// `ndprobe.py` accepts advertisements sent from a link-local address,
/// which MetalLB sends and `ndisc6` ignores.
pub fn ndp_who_has(ns: &NetNs, ip: Ipv6Addr, wait: Duration) -> Result<Option<String>> {
    let probe = ndprobe_path();
    let out = ns.output(
        python(),
        &[
            probe.to_string_lossy().as_ref(),
            IFACE,
            &ip.to_string(),
            &format!("{:.3}", wait.as_secs_f64()),
        ],
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_ascii_lowercase)
        .find(|m| is_mac(m));
    no_answer_or_failure(ns, &format!("ndprobe.py {ip}"), first.is_none(), &out)?;
    Ok(first)
}

/// A neighbour table entry: link-layer address and state(s) such as
/// `REACHABLE`, `STALE` (joined with `,` when the kernel lists several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub mac: String,
    pub state: String,
}

/// The entry for `ip` on eth0 in `ns`'s neighbour table, from
/// `ip -j neigh`; `None` when there is none or it has no address
/// (`INCOMPLETE`, `FAILED`).
pub fn neigh(ns: &NetNs, ip: IpAddr) -> Result<Option<Neighbour>> {
    let out = ns.run(
        "ip",
        &["-j", "neigh", "show", &ip.to_string(), "dev", IFACE],
    )?;
    parse_neigh(&String::from_utf8_lossy(&out.stdout))
}

pub fn parse_neigh(json: &str) -> Result<Option<Neighbour>> {
    if json.trim().is_empty() {
        return Ok(None);
    }
    let entries: Vec<Value> = serde_json::from_str(json).map_err(|source| Error::Json {
        context: "parsing `ip -j neigh` output".into(),
        source,
    })?;
    Ok(entries.iter().find_map(|e| {
        let mac = e.get("lladdr")?.as_str()?.to_ascii_lowercase();
        let state = match e.get("state") {
            Some(Value::Array(states)) => states
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        Some(Neighbour { mac, state })
    }))
}

/// Flushes `ns`'s neighbour table on eth0, so the next probe resolves
/// afresh.
pub fn flush_neigh(ns: &NetNs) -> Result<()> {
    ns.run("ip", &["neigh", "flush", "dev", IFACE]).map(drop)
}

/// What a TCP connection attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOutcome {
    Connected,
    /// A RST came back: the packets reached a host that has the address.
    Refused,
    /// No answer within the timeout, or another error (text).
    Failed(String),
}

/// Opens (and closes) a TCP connection to `addr` from inside `ns`.
pub fn tcp_connect(ns: &NetNs, addr: SocketAddr, timeout: Duration) -> Result<TcpOutcome> {
    ns.enter(|| match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => TcpOutcome::Connected,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => TcpOutcome::Refused,
        Err(e) => TcpOutcome::Failed(e.to_string()),
    })
}

/// An ARP answer seen by [`watch_first_answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpAnswer {
    /// When the frame was read (not when it was sent, but within a
    /// millisecond on a bridge).
    pub at: Instant,
    pub mac: String,
    /// A gratuitous announcement (sender IP = target IP) rather than a reply
    /// to one of our requests.
    pub gratuitous: bool,
}

/// How often [`watch_first_answer`] asks.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// Asks "who has `ip`" from `router`'s eth0 every [`WATCH_INTERVAL`] and
/// returns the first answer from a MAC other than `from_mac_not` (a reply,
/// or a gratuitous ARP), or `None` at `deadline`. For failover measurements:
/// the old owner's answers are ignored, so this returns when the new owner
/// speaks, to within one interval.
pub fn watch_first_answer(
    router: &Host,
    ip: Ipv4Addr,
    from_mac_not: &str,
    deadline: Instant,
) -> Result<Option<ArpAnswer>> {
    let own = crate::arp::parse_mac(&router.mac)
        .ok_or_else(|| Error::Command(format!("bad MAC {}", router.mac)))?;
    let ignore = crate::arp::parse_mac(from_mac_not)
        .ok_or_else(|| Error::Command(format!("bad MAC {from_mac_not}")))?;
    let request = crate::arp::Request {
        sender_mac: own,
        sender_ip: router.ipv4,
        target_ip: ip,
    };
    router
        .ns
        .enter(|| crate::arp::watch(IFACE, &request, ignore, WATCH_INTERVAL, deadline))?
        .map_err(|source| Error::Io {
            context: format!("watching ARP for {ip} in netns {}", router.ns.name()),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arping_output_gives_the_answering_macs() {
        let out = "ARPING 198.51.100.200\n\
            42 bytes from 02:00:00:00:00:12 (198.51.100.200): index=0 time=229.522 usec\n\
            42 bytes from 02:00:00:00:00:11 (198.51.100.200): index=1 time=416.734 usec\n\
            42 bytes from 02:00:00:00:00:12 (198.51.100.200): index=2 time=297.061 usec\n\
            \n--- 198.51.100.200 statistics ---\n\
            2 packets transmitted, 4 packets received,   0% unanswered (2 extra)\n";
        assert_eq!(
            parse_arping(out),
            ["02:00:00:00:00:12", "02:00:00:00:00:11"]
        );
        let silent = "ARPING 198.51.100.200\nTimeout\nTimeout\n\n--- statistics ---\n";
        assert!(parse_arping(silent).is_empty());
    }

    #[test]
    fn neighbour_json_gives_mac_and_state() {
        let json = r#"[{"dst":"2001:db8::200","dev":"eth0","lladdr":"02:00:00:00:00:11","state":["REACHABLE"]}]"#;
        assert_eq!(
            parse_neigh(json).expect("valid"),
            Some(Neighbour {
                mac: "02:00:00:00:00:11".into(),
                state: "REACHABLE".into()
            })
        );
        let failed = r#"[{"dst":"198.51.100.200","dev":"eth0","state":["FAILED"]}]"#;
        assert_eq!(parse_neigh(failed).expect("valid"), None);
        assert_eq!(parse_neigh("").expect("empty"), None);
        assert_eq!(parse_neigh("[]").expect("empty"), None);
        assert!(parse_neigh("[{").is_err());
    }
}
