//! UPDATE: building the ones we send (through netgauze) and reducing the
//! received ones to what the session needs (routes received are ignored:
//! the speaker only advertises).

use std::net::IpAddr;

use ipnet::IpNet;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::community::{Community, LargeCommunity};
use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv4UnicastAddress, Ipv6Unicast, Ipv6UnicastAddress};
use netgauze_bgp_pkt::path_attribute::{
    As2PathSegment, As4Path, As4PathSegment, AsPath, AsPathSegmentType, Communities,
    LargeCommunities, LocalPreference, MpReach, MpUnreach, NextHop, Origin, PathAttribute,
    PathAttributeValue,
};
use netgauze_bgp_pkt::update::BgpUpdateMessage;

use super::open::AS_TRANS;
use super::{DecodeError, EncodeError, Family, MAX_MESSAGE_LEN, write_ng};

/// The attributes of a route we advertise. ORIGIN is always IGP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteAttrs {
    pub next_hop: IpAddr,
    /// AS_SEQUENCE; empty toward iBGP peers.
    pub as_path: Vec<u32>,
    /// Sent to iBGP peers only (the caller leaves it `None` for eBGP).
    pub local_pref: Option<u32>,
    /// RFC 1997 communities, sorted, no duplicates.
    pub communities: Vec<u32>,
    /// RFC 8092 large communities, sorted, no duplicates.
    pub large_communities: Vec<(u32, u32, u32)>,
}

/// How routes of a family are carried: IPv4 routes with an IPv4 next hop go
/// in the classic NLRI field (every router takes it), everything else in
/// MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760).
fn classic(family: Family, ipv4_over_mp: bool) -> bool {
    family == Family::Ipv4Unicast && !ipv4_over_mp
}

/// Wire size of one prefix in an NLRI field.
fn prefix_size(net: &IpNet) -> usize {
    1 + usize::from(net.prefix_len()).div_ceil(8)
}

fn attr(
    optional: bool,
    transitive: bool,
    extended: bool,
    value: PathAttributeValue,
) -> Result<PathAttribute, EncodeError> {
    PathAttribute::from(optional, transitive, false, extended, value)
        .map_err(|(_, e)| EncodeError::Netgauze(format!("{e:?}")))
}

fn v4_nlri(nets: &[IpNet]) -> Result<Vec<Ipv4UnicastAddress>, EncodeError> {
    nets.iter()
        .map(|n| match n {
            IpNet::V4(n) => Ipv4Unicast::from_net(*n)
                .map(Ipv4UnicastAddress::new_no_path_id)
                .map_err(|_| EncodeError::BadPrefix(n.to_string())),
            IpNet::V6(n) => Err(EncodeError::BadPrefix(n.to_string())),
        })
        .collect()
}

fn v6_nlri(nets: &[IpNet]) -> Result<Vec<Ipv6UnicastAddress>, EncodeError> {
    nets.iter()
        .map(|n| match n {
            IpNet::V6(n) => Ipv6Unicast::from_net(*n)
                .map(|u| Ipv6UnicastAddress::new(None, u))
                .map_err(|_| EncodeError::BadPrefix(n.to_string())),
            IpNet::V4(n) => Err(EncodeError::BadPrefix(n.to_string())),
        })
        .collect()
}

/// AS_PATH, and AS4_PATH when one is needed.
fn as_path(
    path: &[u32],
    asn4: bool,
) -> Result<(PathAttribute, Option<PathAttribute>), EncodeError> {
    let seg = |v: &[u32]| {
        if v.is_empty() {
            vec![]
        } else {
            vec![As4PathSegment::new(
                AsPathSegmentType::AsSequence,
                v.to_vec(),
            )]
        }
    };
    if asn4 {
        return Ok((
            attr(
                false,
                true,
                false,
                PathAttributeValue::AsPath(AsPath::As4PathSegments(seg(path).into())),
            )?,
            None,
        ));
    }
    // RFC 6793 §4.2.2: toward an old speaker, large ASNs become AS_TRANS in
    // AS_PATH and the real path goes in AS4_PATH.
    let two: Vec<u16> = path
        .iter()
        .map(|a| u16::try_from(*a).unwrap_or(AS_TRANS))
        .collect();
    let segs = if two.is_empty() {
        vec![]
    } else {
        vec![As2PathSegment::new(AsPathSegmentType::AsSequence, two)]
    };
    let as4 = if path.iter().any(|a| *a > u32::from(u16::MAX)) {
        Some(attr(
            true,
            true,
            false,
            PathAttributeValue::As4Path(As4Path::new(seg(path))),
        )?)
    } else {
        None
    };
    Ok((
        attr(
            false,
            true,
            false,
            PathAttributeValue::AsPath(AsPath::As2PathSegments(segs.into())),
        )?,
        as4,
    ))
}

/// Encodes the UPDATEs announcing `prefixes` (all of `family`) with `attrs`,
/// split so that each message stays within 4096 bytes.
pub fn encode_announce(
    family: Family,
    attrs: &RouteAttrs,
    prefixes: &[IpNet],
    asn4: bool,
    ipv4_over_mp: bool,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let build = |chunk: &[IpNet]| -> Result<Vec<u8>, EncodeError> {
        // Attributes in ascending type order (RFC 4271 §5 "SHOULD").
        let (path, as4_path) = as_path(&attrs.as_path, asn4)?;
        let mut pa = vec![
            attr(false, true, false, PathAttributeValue::Origin(Origin::IGP))?,
            path,
        ];
        let mut nlri = vec![];
        let mut mp_reach = None;
        if classic(family, ipv4_over_mp) {
            let IpAddr::V4(nh) = attrs.next_hop else {
                return Err(EncodeError::NextHopFamily {
                    next_hop: attrs.next_hop,
                    family,
                });
            };
            pa.push(attr(
                false,
                true,
                false,
                PathAttributeValue::NextHop(NextHop::new(nh)),
            )?);
            nlri = v4_nlri(chunk)?;
        } else {
            let reach = match (family, attrs.next_hop) {
                (Family::Ipv6Unicast, IpAddr::V6(nh)) => MpReach::Ipv6Unicast {
                    next_hop_global: nh,
                    next_hop_local: None,
                    nlri: v6_nlri(chunk)?.into(),
                },
                // RFC 4760 with an IPv4 next hop, or RFC 8950 with an IPv6 one.
                (Family::Ipv4Unicast, nh) => MpReach::Ipv4Unicast {
                    next_hop: nh,
                    next_hop_local: None,
                    nlri: v4_nlri(chunk)?.into(),
                },
                (Family::Ipv6Unicast, nh @ IpAddr::V4(_)) => {
                    return Err(EncodeError::NextHopFamily {
                        next_hop: nh,
                        family,
                    });
                }
            };
            mp_reach = Some(attr(true, false, true, PathAttributeValue::MpReach(reach))?);
        }
        if let Some(lp) = attrs.local_pref {
            pa.push(attr(
                false,
                true,
                false,
                PathAttributeValue::LocalPreference(LocalPreference::new(lp)),
            )?);
        }
        if !attrs.communities.is_empty() {
            let c: Vec<Community> = attrs
                .communities
                .iter()
                .map(|c| Community::new(*c))
                .collect();
            pa.push(attr(
                true,
                true,
                c.len() * 4 > 255,
                PathAttributeValue::Communities(Communities::new(c)),
            )?);
        }
        pa.extend(mp_reach);
        pa.extend(as4_path);
        if !attrs.large_communities.is_empty() {
            let c: Vec<LargeCommunity> = attrs
                .large_communities
                .iter()
                .map(|(a, b, c)| LargeCommunity::new(*a, *b, *c))
                .collect();
            pa.push(attr(
                true,
                true,
                c.len() * 12 > 255,
                PathAttributeValue::LargeCommunities(LargeCommunities::new(c)),
            )?);
        }
        write_ng(&BgpMessage::Update(BgpUpdateMessage::new(vec![], pa, nlri)))
    };
    let base = build(&[])?.len();
    chunked(prefixes, base, build)
}

/// Encodes the UPDATEs withdrawing `prefixes` (all of `family`).
pub fn encode_withdraw(
    family: Family,
    prefixes: &[IpNet],
    ipv4_over_mp: bool,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let build = |chunk: &[IpNet]| -> Result<Vec<u8>, EncodeError> {
        let msg = if classic(family, ipv4_over_mp) {
            BgpUpdateMessage::new(v4_nlri(chunk)?, vec![], vec![])
        } else {
            let unreach = match family {
                Family::Ipv4Unicast => MpUnreach::Ipv4Unicast {
                    nlri: v4_nlri(chunk)?.into(),
                },
                Family::Ipv6Unicast => MpUnreach::Ipv6Unicast {
                    nlri: v6_nlri(chunk)?.into(),
                },
            };
            BgpUpdateMessage::new(
                vec![],
                vec![attr(
                    true,
                    false,
                    true,
                    PathAttributeValue::MpUnreach(unreach),
                )?],
                vec![],
            )
        };
        write_ng(&BgpMessage::Update(msg))
    };
    let base = build(&[])?.len();
    chunked(prefixes, base, build)
}

/// End-of-RIB (RFC 4724 §2): an empty UPDATE for IPv4 unicast, an empty
/// MP_UNREACH_NLRI for any other family.
pub fn encode_end_of_rib(family: Family, ipv4_over_mp: bool) -> Result<Vec<u8>, EncodeError> {
    let mut v = encode_withdraw(family, &[], ipv4_over_mp)?;
    v.pop()
        .ok_or_else(|| EncodeError::Netgauze("no message built".into()))
}

fn chunked(
    prefixes: &[IpNet],
    base: usize,
    build: impl Fn(&[IpNet]) -> Result<Vec<u8>, EncodeError>,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    if prefixes.is_empty() {
        return Ok(vec![build(&[])?]);
    }
    let mut out = vec![];
    let mut start = 0;
    let mut size = base;
    for (i, p) in prefixes.iter().enumerate() {
        if size + prefix_size(p) > MAX_MESSAGE_LEN && i > start {
            out.push(build(&prefixes[start..i])?);
            start = i;
            size = base;
        }
        size += prefix_size(p);
    }
    out.push(build(&prefixes[start..])?);
    Ok(out)
}

/// A received UPDATE, reduced to counts and End-of-RIB detection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedUpdate {
    pub end_of_rib: Option<Family>,
    pub announced: usize,
    pub withdrawn: usize,
}

impl ReceivedUpdate {
    pub(crate) fn from_ng(u: &BgpUpdateMessage) -> ReceivedUpdate {
        let mut r = ReceivedUpdate {
            end_of_rib: None,
            announced: u.nlri().len(),
            withdrawn: u.withdraw_routes().len(),
        };
        for a in u.path_attributes() {
            match a.value() {
                PathAttributeValue::MpReach(MpReach::Ipv4Unicast { nlri, .. }) => {
                    r.announced += nlri.len()
                }
                PathAttributeValue::MpReach(MpReach::Ipv6Unicast { nlri, .. }) => {
                    r.announced += nlri.len()
                }
                PathAttributeValue::MpUnreach(MpUnreach::Ipv4Unicast { nlri }) => {
                    r.withdrawn += nlri.len()
                }
                PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri }) => {
                    r.withdrawn += nlri.len()
                }
                _ => {}
            }
        }
        let attrs = u.path_attributes();
        if r.announced == 0 && r.withdrawn == 0 {
            r.end_of_rib = match attrs {
                [] => Some(Family::Ipv4Unicast),
                [a] => match a.value() {
                    PathAttributeValue::MpUnreach(MpUnreach::Ipv4Unicast { .. }) => {
                        Some(Family::Ipv4Unicast)
                    }
                    PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { .. }) => {
                        Some(Family::Ipv6Unicast)
                    }
                    _ => None,
                },
                _ => None,
            };
        }
        r
    }
}

/// Attribute type codes netgauze decodes as optional attributes.
const KNOWN_OPTIONAL: &[u8] = &[4, 7, 8, 9, 10, 14, 15, 16, 17, 18, 25, 26, 29, 32, 35, 40];
/// RFC 4271 well-known attributes.
const WELL_KNOWN: &[u8] = &[1, 2, 3, 5, 6];

/// Walks the attribute list of an UPDATE body (after the header) before
/// netgauze parses it. Hand-written because netgauze accepts an attribute of
/// unknown type whatever its flags, while RFC 4271 §6.3 requires 3/2 for an
/// unrecognised well-known one (optional bit clear), and 3/4 for a known
/// optional attribute that claims to be well-known. An unknown attribute with
/// the optional bit set is fine (and passed on by netgauze as unknown).
pub fn scan_attributes(body: &[u8]) -> Result<(), DecodeError> {
    let rd16 = |at: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *body.get(at)?,
            *body.get(at + 1)?,
        ])))
    };
    let withdrawn = rd16(0).ok_or(DecodeError::MalformedAttributeList)?;
    let total = rd16(2 + withdrawn).ok_or(DecodeError::MalformedAttributeList)?;
    let start = 4 + withdrawn;
    let end = start + total;
    if end > body.len() {
        return Err(DecodeError::MalformedAttributeList);
    }
    let mut at = start;
    while at < end {
        let (Some(&flags), Some(&code)) = (body.get(at), body.get(at + 1)) else {
            return Err(DecodeError::MalformedAttributeList);
        };
        let extended = flags & 0x10 != 0;
        let (len, hdr) = if extended {
            (rd16(at + 2).ok_or(DecodeError::MalformedAttributeList)?, 4)
        } else {
            (
                usize::from(
                    *body
                        .get(at + 2)
                        .ok_or(DecodeError::MalformedAttributeList)?,
                ),
                3,
            )
        };
        let next = at + hdr + len;
        if next > end {
            return Err(DecodeError::MalformedAttributeList);
        }
        let optional = flags & 0x80 != 0;
        if !optional && !WELL_KNOWN.contains(&code) {
            let attribute = body[at..next].to_vec();
            if KNOWN_OPTIONAL.contains(&code) {
                return Err(DecodeError::Body {
                    message: format!("attribute {code} is optional but its flags say well-known"),
                    notification: super::Notification::new(
                        super::notification::UPDATE_MESSAGE_ERROR,
                        4,
                        attribute,
                    ),
                });
            }
            return Err(DecodeError::UnrecognizedWellKnown { code, attribute });
        }
        at = next;
    }
    Ok(())
}
