//! speaker.md §2 steps 2–6: the checks every protocol shares, from a Service
//! to its parsed addresses and the one pool they belong to.

use std::net::IpAddr;

use ferrolb_allocator::PoolDef;
use ferrolb_config::assemble::Config;

use super::{ServiceState, WithdrawReason};

/// The Service's pool and addresses, or why it cannot be announced at all.
pub(super) fn addresses<'c>(
    config: &'c Config,
    svc: &ServiceState,
) -> Result<(&'c PoolDef, Vec<IpAddr>), WithdrawReason> {
    if !svc.is_load_balancer {
        return Err(WithdrawReason::NotLoadBalancer);
    }
    if svc.ingress.is_empty() {
        return Err(WithdrawReason::NoIpAllocated);
    }
    let ips = svc
        .ingress
        .iter()
        .map(|text| text.parse::<IpAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| WithdrawReason::InvalidIp)?;
    // All addresses inside one pool (buggy-IP exclusion is not considered,
    // as upstream): the pool's advertisements decide how they are announced.
    let pool = config
        .pools
        .iter()
        .find(|pool| ips.iter().all(|ip| pool.cidrs.iter().any(|net| net.contains(ip))))
        .ok_or(WithdrawReason::IpNotAllowed)?;
    Ok((pool, ips))
}
