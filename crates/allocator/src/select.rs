//! Picking addresses: automatic allocation over pool phases (allocation.md
//! §4, §5), allocation from a requested pool (§7.2) and the PreferDualStack
//! follow-up (§11).

use std::net::IpAddr;

use crate::allocator::Allocator;
use crate::claim::{Claimant, Probe};
use crate::error::AllocError;
use crate::family::{Family, Policy, ServiceFamily};

/// The first usable IPv4 and IPv6 address of one pool for a Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pair {
    pub v4: Option<IpAddr>,
    pub v6: Option<IpAddr>,
}

impl Pair {
    pub fn get(&self, f: Family) -> Option<IpAddr> {
        match f {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

/// How a Service wants its addresses picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub family: ServiceFamily,
    pub policy: Policy,
    pub primary: Family,
}

/// upstream `selectIPsForFamilyAndPolicy`. A single-family Service gets its
/// family's slot even when empty: the nil address then fails the claim with
/// `["<nil>"] is not allowed in config`, as upstream.
pub(crate) fn select_ips(
    pool: &str,
    pair: Pair,
    shape: Shape,
) -> Result<Vec<Option<IpAddr>>, AllocError> {
    if let Some(f) = shape.family.as_single() {
        return Ok(vec![pair.get(f)]);
    }
    let both = pair.v4.is_some() && pair.v6.is_some();
    let picked = match shape.policy {
        Policy::SingleStack => None,
        Policy::RequireDualStack => both.then(|| vec![pair.v4, pair.v6]),
        Policy::PreferDualStack => {
            if both {
                Some(vec![pair.v4, pair.v6])
            } else if pair.v4.is_some() {
                Some(vec![pair.v4])
            } else if pair.v6.is_some() {
                Some(vec![pair.v6])
            } else {
                None
            }
        }
    };
    picked.ok_or_else(|| AllocError::NoIpsForFamily {
        pool: pool.to_string(),
        family: shape.family,
    })
}

impl Allocator {
    /// The candidate pair of a pool, computing only the families `shape` reads.
    pub(crate) fn pair(
        &self,
        c: &Claimant,
        probe: Probe,
        pool: u32,
        family: ServiceFamily,
    ) -> Pair {
        let want = |f: Family| family.as_single().is_none_or(|s| s == f);
        Pair {
            v4: if want(Family::V4) {
                self.candidate_ip(c, probe, pool, Family::V4)
            } else {
                None
            },
            v6: if want(Family::V6) {
                self.candidate_ip(c, probe, pool, Family::V6)
            } else {
                None
            },
        }
    }

    /// upstream `findBestPoolForService`.
    pub(crate) fn find_best(
        &self,
        c: &Claimant,
        pools: impl IntoIterator<Item = u32>,
        shape: Shape,
    ) -> Option<(u32, Pair)> {
        let mut primary = None;
        let mut secondary = None;
        let probe = self.probe(c);
        for pool in pools {
            let pair = self.pair(c, probe, pool, shape.family);
            match shape.family.as_single() {
                Some(f) => {
                    if pair.get(f).is_some() {
                        return Some((pool, pair));
                    }
                }
                None => {
                    if pair.v4.is_some() && pair.v6.is_some() {
                        return Some((pool, pair));
                    }
                    if shape.policy != Policy::PreferDualStack {
                        continue;
                    }
                    if primary.is_none() && pair.get(shape.primary).is_some() {
                        primary = Some((pool, pair));
                    }
                    if secondary.is_none() && pair.get(shape.primary.other()).is_some() {
                        secondary = Some((pool, pair));
                    }
                }
            }
        }
        primary.or(secondary)
    }

    /// Phase-1 pools for a Service: pinned, autoAssign, compatible.
    pub(crate) fn phase1<'a>(&'a self, c: &'a Claimant) -> impl Iterator<Item = u32> + 'a {
        self.pinned.iter().copied().filter(|p| {
            let def = &self.pool_state(*p).def;
            def.auto_assign && def.compatibility(c.namespace, c.labels).is_ok()
        })
    }

    /// Phase-2 pools: autoAssign and no serviceAllocation.
    pub(crate) fn phase2(&self) -> impl Iterator<Item = u32> + '_ {
        self.fallback
            .iter()
            .copied()
            .filter(|p| self.pool_state(*p).def.auto_assign)
    }

    fn claim_best(
        &mut self,
        c: &Claimant,
        best: Option<(u32, Pair)>,
        shape: Shape,
    ) -> Option<(Vec<Option<IpAddr>>, u32)> {
        let (pool, pair) = best?;
        let ips = select_ips(self.pool_name(pool), pair, shape).ok()?;
        let pool = self.claim(c, &ips).ok()?;
        Some((ips, pool))
    }

    /// upstream `Allocate`: phase 1, then phase 2, else `no available IPs`.
    /// The addresses returned are all present (`Some`).
    pub(crate) fn allocate_auto(
        &mut self,
        c: &Claimant,
        shape: Shape,
    ) -> Result<(Vec<Option<IpAddr>>, u32), AllocError> {
        let best = self.find_best(c, self.phase1(c), shape);
        if let Some(done) = self.claim_best(c, best, shape) {
            return Ok(done);
        }
        let best = self.find_best(c, self.phase2(), shape);
        self.claim_best(c, best, shape)
            .ok_or(AllocError::NoAvailableIps)
    }

    /// upstream `AllocateFromPool` (allocation.md §7.2).
    pub(crate) fn allocate_from_pool(
        &mut self,
        c: &Claimant,
        name: &str,
        shape: Shape,
    ) -> Result<(Vec<Option<IpAddr>>, u32), AllocError> {
        let pool = self
            .pool_id(name)
            .ok_or_else(|| AllocError::UnknownPool(name.to_string()))?;
        let pair = self.pair(c, self.probe(c), pool, ServiceFamily::Dual);
        if pair.v4.is_none() && pair.v6.is_none() {
            return Err(AllocError::PoolExhausted(name.to_string()));
        }
        let ips = select_ips(name, pair, shape)?;
        let pool = self.claim(c, &ips)?;
        Ok((ips, pool))
    }

    /// upstream `AllocateFromPoolForAdditionalFamily` (allocation.md §11):
    /// adds the other family from the pool already holding `existing`.
    pub(crate) fn allocate_additional(
        &mut self,
        c: &Claimant,
        existing: IpAddr,
        pool: u32,
    ) -> Result<IpAddr, AllocError> {
        let family = Family::of(&existing).other();
        let extra = self.candidate_ip(c, self.probe(c), pool, family);
        self.claim(c, &[Some(existing), extra])?;
        // claim rejects a missing address, so `extra` is set here.
        extra.ok_or_else(|| AllocError::NotAllowed(vec![Some(existing), None]))
    }
}
