//! BFDProfile (crds.md §6) and the cross-object BFD echo rule.

use super::pools::WorkPool;
use super::types::{BfdProfile, Peer, PoolAdvertisements};
use super::{Errors, by_name, name_of};
use crate::error::kinds;
use ferrolb_api::v1beta1::BFDProfile;
use std::collections::{BTreeMap, HashSet};

pub(crate) fn build(profiles: &[BFDProfile], errs: &mut Errors) -> Vec<BfdProfile> {
    let mut out: Vec<BfdProfile> = Vec::new();
    let mut seen = HashSet::new();
    for p in by_name(profiles, |p| &p.metadata) {
        let name = name_of(&p.metadata);
        if name.is_empty() {
            errs.push(kinds::BFD, name, "metadata.name", "missing bfd profile name");
            continue;
        }
        if !seen.insert(name) {
            errs.push(kinds::BFD, name, "metadata.name", format!("found duplicate bfd profile name {name}"));
            continue;
        }
        let spec = &p.spec;
        let mut ok = true;
        let mut range = |field: &str, value: Option<u32>, min: u32, max: u32, what: &str| {
            if let Some(v) = value
                && !(min..=max).contains(&v)
            {
                errs.push(
                    kinds::BFD,
                    name,
                    format!("spec.{field}"),
                    format!("{what}: invalid value {v}, must be in {min}-{max} range"),
                );
                ok = false;
            }
        };
        range("receiveInterval", spec.receive_interval, 10, 60000, "invalid receive interval value");
        range("transmitInterval", spec.transmit_interval, 10, 60000, "invalid transmit interval value");
        range("detectMultiplier", spec.detect_multiplier, 2, 255, "invalid detect multiplier value");
        range("echoInterval", spec.echo_interval, 10, 60000, "invalid echo interval value");
        range("minimumTtl", spec.minimum_ttl, 1, 254, "invalid minimum ttl value");
        if ok {
            out.push(BfdProfile {
                name: name.to_string(),
                receive_interval: spec.receive_interval,
                transmit_interval: spec.transmit_interval,
                detect_multiplier: spec.detect_multiplier,
                echo_interval: spec.echo_interval,
                echo_mode: spec.echo_mode.unwrap_or(false),
                passive_mode: spec.passive_mode.unwrap_or(false),
                minimum_ttl: spec.minimum_ttl,
            });
        }
    }
    out
}

/// A pool with an IPv6 CIDR must not be advertised toward a peer whose BFD profile
/// has echo mode on.
pub(crate) fn check_echo(
    pools: &[WorkPool],
    adverts: &BTreeMap<String, PoolAdvertisements>,
    peers: &[Peer],
    profiles: &[BfdProfile],
    errs: &mut Errors,
) {
    let echo_profiles: HashSet<&str> = profiles.iter().filter(|p| p.echo_mode).map(|p| p.name.as_str()).collect();
    let echo_peers: Vec<&Peer> = peers
        .iter()
        .filter(|p| p.bfd_profile.as_deref().is_some_and(|b| echo_profiles.contains(b)))
        .collect();
    if echo_peers.is_empty() {
        return;
    }
    for pool in pools.iter().filter(|p| p.def.cidrs.iter().any(|c| matches!(c, ipnet::IpNet::V6(_)))) {
        let Some(pa) = adverts.get(&pool.def.name) else { continue };
        for adv in &pa.bgp {
            let target = echo_peers.iter().find(|p| adv.peers.is_empty() || adv.peers.contains(&p.name));
            if let Some(peer) = target {
                errs.push(
                    kinds::POOL,
                    &pool.def.name,
                    "",
                    format!(
                        "pool {} has bgpadvertisement {} which references peer {} which has bfd echo enabled, which is not possible",
                        pool.def.name, adv.name, peer.name
                    ),
                );
            }
        }
    }
}
