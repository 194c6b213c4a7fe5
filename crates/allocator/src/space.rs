//! The address sequence of one pool and family, as a contiguous index space.
//!
//! CIDRs are laid end to end in pool list order, so "the lowest free index"
//! is exactly allocation.md §6's "first usable address walking the CIDRs in
//! order". With `avoidBuggyIPs` the `.0`/`.255` addresses are left out of the
//! index space arithmetically (254 usable addresses per /24 block), so they
//! never need to be materialised or skipped at run time.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;
use ipnet::IpNet;

use crate::family::Family;
use crate::freeset::FreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stride {
    /// Every address from `base` on.
    Plain,
    /// `base` is a /24-aligned IPv4 address; offsets 1..=254 of each
    /// 256-address block are usable.
    SkipBuggy,
}

/// One CIDR's usable addresses, mapped to `first..=last` in the index space.
#[derive(Clone, Debug)]
pub struct Segment {
    pub first: u128,
    pub last: u128,
    pub base: u128,
    pub stride: Stride,
}

impl Segment {
    pub fn address(&self, index: u128) -> u128 {
        let j = index - self.first;
        match self.stride {
            Stride::Plain => self.base + j,
            Stride::SkipBuggy => self.base + (j / 254) * 256 + (j % 254) + 1,
        }
    }

    pub fn index(&self, addr: u128) -> Option<u128> {
        let off = addr.checked_sub(self.base)?;
        let j = match self.stride {
            Stride::Plain => off,
            Stride::SkipBuggy => {
                let low = off % 256;
                if low == 0 || low == 255 {
                    return None;
                }
                (off / 256) * 254 + low - 1
            }
        };
        (j <= self.last - self.first).then(|| self.first + j)
    }
}

/// The usable part of one CIDR: `(base, usable count - 1, stride)`, or
/// `None` when `avoidBuggyIPs` leaves nothing (a lone `.0`/`.255`).
pub fn usable_range(cidr: &IpNet, avoid_buggy: bool) -> Option<(u128, u128, Stride)> {
    let (network, width) = match cidr {
        IpNet::V4(n) => (u128::from(u32::from(n.network())), 32u32),
        IpNet::V6(n) => (u128::from(n.network()), 128u32),
    };
    let host_bits = width - u32::from(cidr.prefix_len());
    let span_minus_one = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    if !avoid_buggy || width == 128 {
        return Some((network, span_minus_one, Stride::Plain));
    }
    if host_bits >= 8 {
        let blocks = 1u128 << (host_bits - 8);
        return Some((network, blocks * 254 - 1, Stride::SkipBuggy));
    }
    // Smaller than a /24: only the two ends can be `.0` / `.255`.
    let mut start = network;
    let mut end = network + span_minus_one;
    if start & 0xff == 0 {
        start += 1;
    }
    if end & 0xff == 0xff {
        end -= 1;
    }
    (start <= end).then(|| (start, end - start, Stride::Plain))
}

/// Who holds an address. Nearly every address has exactly one holder.
#[derive(Clone, Debug)]
pub enum Holders {
    One(u32),
    // Boxed so that `Holders` stays 16 bytes: every held address pays for
    // this enum, only shared ones for the vector.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<u32>>),
}

impl Holders {
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let (one, many) = match self {
            Holders::One(s) => (Some(*s), &[][..]),
            Holders::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().copied())
    }

    pub fn first(&self) -> u32 {
        match self {
            Holders::One(s) => *s,
            Holders::Many(v) => v.first().copied().unwrap_or(u32::MAX),
        }
    }

    pub fn add(&mut self, slot: u32) {
        match self {
            Holders::One(s) => {
                if *s != slot {
                    *self = Holders::Many(Box::new(vec![*s, slot]));
                }
            }
            Holders::Many(v) => {
                if !v.contains(&slot) {
                    v.push(slot);
                }
            }
        }
    }

    /// Removes `slot`; true when nobody holds the address any more.
    pub fn remove(&mut self, slot: u32) -> bool {
        match self {
            Holders::One(s) => *s == slot,
            Holders::Many(v) => {
                v.retain(|s| *s != slot);
                match v.as_slice() {
                    [] => true,
                    [only] => {
                        *self = Holders::One(*only);
                        false
                    }
                    _ => false,
                }
            }
        }
    }
}

/// Indexes carrying one sharing key in one pool family. Most keys mark a
/// single address, which then needs no tree node.
#[derive(Clone, Debug)]
pub enum SharedSet {
    One(u128),
    Many(BTreeSet<u128>),
}

impl SharedSet {
    pub fn insert(&mut self, index: u128) {
        match self {
            SharedSet::One(i) if *i == index => {}
            SharedSet::One(i) => *self = SharedSet::Many(BTreeSet::from([*i, index])),
            SharedSet::Many(set) => {
                set.insert(index);
            }
        }
    }

    /// Removes `index`; true when the set is now empty.
    pub fn remove(&mut self, index: u128) -> bool {
        match self {
            SharedSet::One(i) => *i == index,
            SharedSet::Many(set) => {
                set.remove(&index);
                set.is_empty()
            }
        }
    }

    /// Ascending.
    pub fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        let (one, many) = match self {
            SharedSet::One(i) => (Some(*i), None),
            SharedSet::Many(set) => (None, Some(set.iter().copied())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// One family of one pool: layout, free set, holders and sharing index.
#[derive(Clone, Debug)]
pub struct FamilySpace {
    pub family: Family,
    pub segments: Vec<Segment>,
    pub free: FreeSet,
    pub holders: HashMap<u128, Holders>,
    /// Sharing-key id -> indexes whose recorded key is that (non-empty) key,
    /// so packing (allocation.md §8) never scans the pool.
    pub shared: HashMap<u32, SharedSet>,
}

impl FamilySpace {
    pub fn new(family: Family) -> Self {
        FamilySpace {
            family,
            segments: Vec::new(),
            free: FreeSet::default(),
            holders: HashMap::default(),
            shared: HashMap::default(),
        }
    }

    /// Appends a CIDR's usable range; returns its segment number, or `None`
    /// when it is empty or the index space is exhausted.
    pub fn push(&mut self, base: u128, count_minus_one: u128, stride: Stride) -> Option<usize> {
        let first = match self.segments.last() {
            None => 0,
            Some(s) => s.last.checked_add(1)?,
        };
        let last = first.checked_add(count_minus_one)?;
        self.segments.push(Segment {
            first,
            last,
            base,
            stride,
        });
        Some(self.segments.len() - 1)
    }

    /// Call once all segments are pushed.
    pub fn seal(&mut self) {
        self.free = FreeSet::full(self.segments.last().map(|s| s.last));
    }

    pub fn has_addresses(&self) -> bool {
        !self.segments.is_empty()
    }

    pub fn address(&self, index: u128) -> Option<IpAddr> {
        let pos = self.segments.partition_point(|s| s.first <= index);
        let seg = self.segments.get(pos.checked_sub(1)?)?;
        if index > seg.last {
            return None;
        }
        Some(to_ip(self.family, seg.address(index)))
    }
}

pub fn to_ip(family: Family, raw: u128) -> IpAddr {
    match family {
        // IPv4 raw values always fit: they come from 32-bit addresses.
        Family::V4 => IpAddr::V4(Ipv4Addr::from(raw as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(raw)),
    }
}

pub fn from_ip(ip: &IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(*v4))),
        IpAddr::V6(v6) => (Family::V6, u128::from(*v6)),
    }
}

/// allocation.md §9: capacity of one CIDR, `i64::MAX` for IPv6 /66 or larger.
pub fn cidr_capacity(cidr: &IpNet, avoid_buggy: bool) -> i64 {
    let width: u32 = match cidr {
        IpNet::V4(_) => 32,
        IpNet::V6(_) => 128,
    };
    let host_bits = width - u32::from(cidr.prefix_len());
    if host_bits >= 62 {
        return i64::MAX;
    }
    let mut size = 1i64 << host_bits;
    if avoid_buggy && width == 32 {
        if host_bits >= 8 {
            size -= 2 * (1i64 << (host_bits - 8));
        } else {
            if let IpNet::V4(n) = cidr {
                if matches!(n.network().octets()[3], 0 | 255) {
                    size -= 1;
                }
                if matches!(n.broadcast().octets()[3], 0 | 255) {
                    size -= 1;
                }
            }
        }
    }
    size.max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn skip_buggy_mapping_round_trips() {
        let (base, last, stride) = usable_range(&net("10.0.0.0/23"), true).unwrap();
        assert_eq!(stride, Stride::SkipBuggy);
        assert_eq!(last, 507);
        let seg = Segment {
            first: 0,
            last,
            base,
            stride,
        };
        let first = to_ip(Family::V4, seg.address(0));
        assert_eq!(first.to_string(), "10.0.0.1");
        assert_eq!(
            to_ip(Family::V4, seg.address(253)).to_string(),
            "10.0.0.254"
        );
        assert_eq!(to_ip(Family::V4, seg.address(254)).to_string(), "10.0.1.1");
        for i in 0..=last {
            assert_eq!(seg.index(seg.address(i)), Some(i));
        }
        assert_eq!(seg.index(base + 255), None);
        assert_eq!(seg.index(base + 256), None);
        assert_eq!(seg.index(base + 512), None);
    }

    #[test]
    fn small_cidrs_with_avoid_buggy_trim_their_ends() {
        let r = |s: &str| {
            usable_range(&net(s), true).map(|(b, l, _)| (to_ip(Family::V4, b).to_string(), l))
        };
        assert_eq!(r("10.0.0.0/25"), Some(("10.0.0.1".into(), 126)));
        assert_eq!(r("10.0.0.128/25"), Some(("10.0.0.128".into(), 126)));
        assert_eq!(r("10.0.0.0/32"), None);
        assert_eq!(r("10.0.0.255/32"), None);
        assert_eq!(r("10.0.0.7/32"), Some(("10.0.0.7".into(), 0)));
        assert_eq!(r("0.0.0.0/32"), None);
        assert_eq!(r("255.255.255.255/32"), None);
    }

    #[test]
    fn capacity_matches_section_9() {
        assert_eq!(cidr_capacity(&net("10.0.0.0/24"), true), 254);
        assert_eq!(cidr_capacity(&net("10.0.0.0/24"), false), 256);
        assert_eq!(cidr_capacity(&net("10.0.0.0/16"), true), 65536 - 512);
        assert_eq!(cidr_capacity(&net("10.0.0.0/25"), true), 127);
        assert_eq!(cidr_capacity(&net("10.0.0.0/32"), true), 0);
        assert_eq!(cidr_capacity(&net("10.0.0.0/31"), true), 1);
        assert_eq!(cidr_capacity(&net("fc00::/64"), true), i64::MAX);
        assert_eq!(cidr_capacity(&net("fc00::/66"), false), i64::MAX);
        assert_eq!(cidr_capacity(&net("fc00::/67"), false), 1i64 << 61);
        assert_eq!(cidr_capacity(&net("fc00::/120"), true), 256);
    }

    #[test]
    fn usable_ranges_agree_with_capacity_below_the_sentinel() {
        for s in [
            "10.0.0.0/8",
            "10.0.0.0/24",
            "10.0.0.0/30",
            "10.0.0.255/32",
            "10.0.0.128/26",
            "fc00::/100",
        ] {
            for avoid in [false, true] {
                let n = net(s);
                let count = usable_range(&n, avoid).map_or(0, |(_, l, _)| l + 1);
                assert_eq!(count as i64, cidr_capacity(&n, avoid), "{s} {avoid}");
            }
        }
    }

    #[test]
    fn shared_sets_stay_sorted() {
        let mut s = SharedSet::One(5);
        s.insert(5);
        assert_eq!(s.iter().collect::<Vec<_>>(), [5]);
        s.insert(2);
        s.insert(9);
        assert_eq!(s.iter().collect::<Vec<_>>(), [2, 5, 9]);
        assert!(!s.remove(5));
        assert!(!s.remove(2));
        assert!(s.remove(9));
        assert!(SharedSet::One(1).remove(1));
        assert!(!SharedSet::One(1).remove(2));
    }

    #[test]
    fn whole_ipv6_space_fits() {
        let (_, last, _) = usable_range(&net("::/0"), false).unwrap();
        assert_eq!(last, u128::MAX);
        let mut s = FamilySpace::new(Family::V6);
        assert_eq!(s.push(0, last, Stride::Plain), Some(0));
        assert_eq!(s.push(0, 0, Stride::Plain), None);
    }
}
