//! Address entries of an IPAddressPool: CIDRs and `START-END` ranges (crds.md §2.1).
//!
//! Parsing follows Go's `net.ParseCIDR` / `net.ParseIP` as MetalLB uses them, so the
//! accepted spellings and the error texts match upstream.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Parses one `spec.addresses` entry into the minimal ordered list of CIDRs covering it.
///
/// The error is MetalLB's inner message (P3–P6), without the pool wrapping.
pub fn parse_entry(entry: &str) -> Result<Vec<IpNet>, String> {
    match entry.split_once('-') {
        None => parse_cidr(entry)
            .map(|n| vec![n])
            .ok_or_else(|| format!("invalid CIDR {entry:?}")),
        Some((start_text, end_text)) => parse_range(entry, start_text, end_text),
    }
}

/// Go's `net.ParseCIDR`: `ADDR/LEN`, decimal length within the family's width, no zone;
/// host bits are dropped (`10.0.0.5/24` is `10.0.0.0/24`).
pub fn parse_cidr(text: &str) -> Option<IpNet> {
    let (addr, len) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Bounded before parsing so absurd lengths ("/99999999999999999999") cannot overflow.
    if len.len() > 3 {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let net = match addr {
        IpAddr::V4(a) => IpNet::V4(Ipv4Net::new(a, len).ok()?),
        IpAddr::V6(a) => IpNet::V6(Ipv6Net::new(a, len).ok()?),
    };
    Some(net.trunc())
}

/// Go's `net.ParseIP` for one side of a range: surrounding spaces are trimmed, zones
/// (`fe80::1%eth0`) are rejected, and IPv4-mapped IPv6 addresses count as IPv4 because
/// upstream's range summarisation looks at `To4()`.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let addr: IpAddr = text.trim().parse().ok()?;
    Some(normalize(addr))
}

fn normalize(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn parse_range(entry: &str, start_text: &str, end_text: &str) -> Result<Vec<IpNet>, String> {
    let start = parse_ip(start_text)
        .ok_or_else(|| format!("invalid IP range {entry:?}: invalid start IP {start_text:?}"))?;
    let end = parse_ip(end_text)
        .ok_or_else(|| format!("invalid IP range {entry:?}: invalid end IP {end_text:?}"))?;
    // Upstream compares the 16-byte forms, so this check comes before the family check.
    if as_v6_bytes(start) > as_v6_bytes(end) {
        return Err(format!(
            "invalid IP range {entry:?}: start IP \"{start}\" is after the end IP \"{end}\""
        ));
    }
    match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => Ok(summarize(u32::from(s).into(), u32::from(e).into(), 32)),
        (IpAddr::V6(s), IpAddr::V6(e)) => Ok(summarize(u128::from(s), u128::from(e), 128)),
        // Upstream silently yields no CIDR here; we reject (crds.md §2.4 re-implementation rule).
        _ => Err(format!(
            "invalid IP range {entry:?}: start IP \"{start}\" and end IP \"{end}\" are not of the same IP family"
        )),
    }
}

fn as_v6_bytes(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Minimal ordered CIDR cover of the inclusive range `[start, end]` in a `bits`-wide space.
fn summarize(start: u128, end: u128, bits: u32) -> Vec<IpNet> {
    let mut out = Vec::new();
    let mut cur = start;
    loop {
        // Largest aligned block starting at `cur` that does not pass `end`.
        let align = if cur == 0 { bits } else { cur.trailing_zeros().min(bits) };
        let span = end - cur; // block of size 2^k fits when 2^k - 1 <= span
        let fit = if span == u128::MAX { 128 } else { 128 - (span + 1).leading_zeros() - 1 };
        let k = align.min(fit).min(bits);
        let prefix = (bits - k) as u8;
        out.push(make_net(cur, prefix, bits));
        let last = if k >= 128 { u128::MAX } else { cur + ((1u128 << k) - 1) };
        if last >= end {
            return out;
        }
        cur = last + 1;
    }
}

fn make_net(addr: u128, prefix: u8, bits: u32) -> IpNet {
    if bits == 32 {
        // `addr` came from a u32, so the truncation is lossless.
        let v4 = Ipv4Addr::from(addr as u32);
        IpNet::V4(Ipv4Net::new_assert(v4, prefix))
    } else {
        IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(addr), prefix))
    }
}

/// Numeric bounds of a CIDR in its family, for overlap tests.
pub fn bounds(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (u32::from(n.network()).into(), u32::from(n.broadcast()).into()),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn range_split_example_from_spec() {
        assert_eq!(
            parse_entry("10.0.0.10-10.0.0.20").unwrap(),
            nets(&["10.0.0.10/31", "10.0.0.12/30", "10.0.0.16/30", "10.0.0.20/32"])
        );
    }

    #[test]
    fn range_with_spaces_and_single_address() {
        assert_eq!(parse_entry(" 192.168.9.1 - 192.168.9.1 ").unwrap(), nets(&["192.168.9.1/32"]));
    }

    #[test]
    fn full_ranges() {
        assert_eq!(parse_entry("0.0.0.0-255.255.255.255").unwrap(), nets(&["0.0.0.0/0"]));
        assert_eq!(parse_entry("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").unwrap(), nets(&["::/0"]));
        assert_eq!(
            parse_entry("0.0.0.1-255.255.255.254").unwrap().len(),
            62,
            "31 blocks on each side"
        );
    }

    #[test]
    fn ipv6_range() {
        assert_eq!(
            parse_entry("fc00::1-fc00::4").unwrap(),
            nets(&["fc00::1/128", "fc00::2/127", "fc00::4/128"])
        );
    }

    #[test]
    fn cidr_host_bits_ignored() {
        assert_eq!(parse_entry("10.0.0.5/24").unwrap(), nets(&["10.0.0.0/24"]));
        assert_eq!(parse_entry("fc00::5/124").unwrap(), nets(&["fc00::/124"]));
    }

    #[test]
    fn invalid_cidrs() {
        for bad in [
            "10.0.0.0/33", "fc00::/129", "10.0.0.0", "10.0.0.0/", "10.0.0.0/+8",
            "10.0.0.0/99999999999999999999", "fe80::1%eth0/64", "10.0.0.256/24", "/24", "",
            "010.0.0.0/8", " 10.0.0.0/8",
        ] {
            assert_eq!(parse_entry(bad), Err(format!("invalid CIDR {bad:?}")), "{bad}");
        }
    }

    #[test]
    fn dash_makes_an_entry_a_range() {
        assert_eq!(
            parse_entry("10.0.0.0/-1"),
            Err(r#"invalid IP range "10.0.0.0/-1": invalid start IP "10.0.0.0/""#.to_string())
        );
    }

    #[test]
    fn leading_zero_prefix_length_accepted_like_go() {
        assert_eq!(parse_entry("10.0.0.0/08").unwrap(), nets(&["10.0.0.0/8"]));
    }

    #[test]
    fn invalid_range_start() {
        assert_eq!(
            parse_entry("fe80::1%eth0-fe80::2"),
            Err(r#"invalid IP range "fe80::1%eth0-fe80::2": invalid start IP "fe80::1%eth0""#.to_string())
        );
    }

    #[test]
    fn invalid_range_end() {
        assert_eq!(
            parse_entry("10.0.0.1-x"),
            Err(r#"invalid IP range "10.0.0.1-x": invalid end IP "x""#.to_string())
        );
        assert_eq!(
            parse_entry("10.0.0.1-10.0.0.2-10.0.0.3"),
            Err(r#"invalid IP range "10.0.0.1-10.0.0.2-10.0.0.3": invalid end IP "10.0.0.2-10.0.0.3""#.to_string())
        );
    }

    #[test]
    fn reversed_range() {
        assert_eq!(
            parse_entry("10.0.0.20-10.0.0.10"),
            Err(r#"invalid IP range "10.0.0.20-10.0.0.10": start IP "10.0.0.20" is after the end IP "10.0.0.10""#.to_string())
        );
    }

    #[test]
    fn mixed_family_range_rejected() {
        let err = parse_entry("10.0.0.1-fc00::1").unwrap_err();
        assert!(err.starts_with(r#"invalid IP range "10.0.0.1-fc00::1": "#), "{err}");
        assert!(err.contains("same IP family"), "{err}");
        // Reversed in 16-byte order: upstream's "after" message comes first.
        let err = parse_entry("fc00::1-10.0.0.1").unwrap_err();
        assert!(err.contains("is after the end IP"), "{err}");
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4_in_ranges() {
        assert_eq!(parse_entry("::ffff:10.0.0.1-10.0.0.1").unwrap(), nets(&["10.0.0.1/32"]));
    }

    #[test]
    fn bounds_of_nets() {
        assert_eq!(bounds(&"10.0.0.0/30".parse().unwrap()), (0x0a00_0000, 0x0a00_0003));
    }

    proptest::proptest! {
        #[test]
        fn split_covers_range_exactly(a in proptest::num::u32::ANY, b in proptest::num::u32::ANY) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let entry = format!("{}-{}", Ipv4Addr::from(lo), Ipv4Addr::from(hi));
            let nets = parse_entry(&entry).unwrap();
            let mut next = u128::from(lo);
            for n in &nets {
                let (s, e) = bounds(n);
                proptest::prop_assert_eq!(s, next);
                next = e + 1;
            }
            proptest::prop_assert_eq!(next, u128::from(hi) + 1);
            proptest::prop_assert!(nets.len() <= 62);
        }

        #[test]
        fn split_v6_covers_range_exactly(a in proptest::num::u128::ANY, b in proptest::num::u128::ANY) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            // Stay off the IPv4-mapped block so both ends are genuine IPv6.
            proptest::prop_assume!(Ipv6Addr::from(lo).to_ipv4_mapped().is_none());
            proptest::prop_assume!(Ipv6Addr::from(hi).to_ipv4_mapped().is_none());
            let entry = format!("{}-{}", Ipv6Addr::from(lo), Ipv6Addr::from(hi));
            let nets = parse_entry(&entry).unwrap();
            let mut next = Some(lo);
            for n in &nets {
                let (s, e) = bounds(n);
                proptest::prop_assert_eq!(Some(s), next);
                next = e.checked_add(1);
            }
            proptest::prop_assert_eq!(next, hi.checked_add(1));
            proptest::prop_assert!(nets.len() <= 254);
        }
    }
}
