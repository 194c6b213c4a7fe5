//! Claiming addresses for a Service (allocation.md §7.3) and the sharing
//! test (§8).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::allocator::{Allocator, Loc};
use crate::error::AllocError;
use crate::family::Family;
use crate::records::{PortId, Record};
use crate::service::ServiceView;

/// The Service facts the allocator needs to claim or pick addresses.
#[derive(Clone, Debug)]
pub(crate) struct Claimant<'a> {
    pub key: &'a str,
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub sharing: &'a str,
    pub backend: &'a str,
    /// `(protocol, port)` as in the view; an empty protocol is TCP.
    pub ports: &'a [(String, i32)],
}

/// The protocol name of a view port (empty means TCP).
pub(crate) fn protocol(name: &str) -> &str {
    if name.is_empty() { "TCP" } else { name }
}

/// `namespace/name`, built without the formatting machinery (hot path).
pub(crate) fn service_key_text(namespace: &str, name: &str) -> String {
    let mut key = String::with_capacity(namespace.len() + name.len() + 1);
    key.push_str(namespace);
    key.push('/');
    key.push_str(name);
    key
}

/// Owned parts of a Claimant derived from a view.
pub(crate) struct ClaimantParts {
    pub key: String,
    pub backend: String,
}

impl ClaimantParts {
    pub fn of(view: &ServiceView) -> Self {
        ClaimantParts {
            key: service_key_text(&view.namespace, &view.name),
            backend: view.backend_key(),
        }
    }

    pub fn claimant<'a>(&'a self, view: &'a ServiceView) -> Claimant<'a> {
        Claimant {
            key: &self.key,
            namespace: &view.namespace,
            labels: &view.labels,
            sharing: view.sharing_key(),
            backend: &self.backend,
            ports: &view.ports,
        }
    }
}

/// Lookups shared by every pool an allocation attempt looks at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe {
    /// The claimant's record slot.
    pub mine: Option<u32>,
    /// The interned id of its (sharing, backend) key when it has a sharing
    /// key and some address carries that key.
    pub key: Option<u32>,
}

impl Allocator {
    pub(crate) fn probe(&self, c: &Claimant) -> Probe {
        Probe {
            mine: self.records.find(c.key),
            key: if c.sharing.is_empty() {
                None
            } else {
                self.keys.lookup(c.sharing, c.backend)
            },
        }
    }

    /// upstream `checkSharing`: may `c` use the address at `loc`?
    pub(crate) fn check_sharing(
        &self,
        c: &Claimant,
        loc: Loc,
        ip: &IpAddr,
    ) -> Result<(), AllocError> {
        let space = self.pool_state(loc.pool).space(loc.family);
        let Some(holders) = space.holders.get(&loc.index) else {
            return Ok(());
        };
        let me = self.records.find(c.key);
        let recorded = self
            .records
            .get(holders.first())
            .map_or(("", ""), |r| self.keys.get(r.sharing));
        let compatible = !recorded.0.is_empty()
            && !c.sharing.is_empty()
            && recorded.0 == c.sharing
            && recorded.1 == c.backend;
        if !compatible {
            let mut others: Vec<String> = holders
                .iter()
                .filter(|s| Some(*s) != me)
                .filter_map(|s| self.records.get(s).map(|r| r.key.to_string()))
                .collect();
            if !others.is_empty() {
                others.sort();
                return Err(AllocError::CantChangeSharingKey {
                    service: c.key.to_string(),
                    others,
                });
            }
        }
        for (proto_name, port) in c.ports {
            let Some(proto) = self.protos.lookup(protocol(proto_name)) else {
                continue;
            };
            let id = PortId { proto, port: *port };
            let taken = holders
                .iter()
                .filter(|s| Some(*s) != me)
                .filter_map(|s| self.records.get(s))
                .any(|r| r.ports.contains(&id));
            if taken {
                return Err(AllocError::PortInUse {
                    port: format!("{}/{port}", protocol(proto_name)),
                    ip: *ip,
                });
            }
        }
        Ok(())
    }

    /// upstream `Assign`: claims `ips` for `c`, replacing its previous record.
    /// Returns the pool.
    pub(crate) fn claim(
        &mut self,
        c: &Claimant,
        ips: &[Option<IpAddr>],
    ) -> Result<u32, AllocError> {
        let (pool, locs) = self
            .pool_and_locs(ips)
            .ok_or_else(|| AllocError::NotAllowed(ips.to_vec()))?;
        let def = &self.pool_state(pool).def;
        if def.compatibility(c.namespace, c.labels).is_err() {
            return Err(AllocError::NotCompatible(def.name.clone()));
        }
        // pool_for succeeded, so every address is present.
        let present = || ips.iter().flatten().copied();
        let (first, second) = match ips {
            [Some(a)] => (*a, None),
            [Some(a), Some(b)] if Family::of(a) == Family::of(b) => {
                return Err(AllocError::SameFamily(*a, *b));
            }
            [Some(a), Some(b)] => (*a, Some(*b)),
            _ => return Err(AllocError::MoreThanTwo(present().collect())),
        };
        for (ip, loc) in [Some(first), second].into_iter().zip(locs) {
            if let (Some(ip), Some(loc)) = (ip, loc) {
                self.check_sharing(c, loc, &ip)?;
            }
        }
        self.release_key(c.key);
        let sharing = self.keys.acquire(c.sharing, c.backend);
        let ports: Box<[PortId]> = c
            .ports
            .iter()
            .map(|(proto, port)| PortId {
                proto: self.protos.intern(protocol(proto)),
                port: *port,
            })
            .collect();
        self.insert_record_at(
            Record {
                key: c.key.into(),
                pool,
                sharing,
                first,
                second,
                ports,
            },
            locs,
        );
        Ok(pool)
    }

    /// The lowest address of `family` in `pool` that `c` may use (§6), as an
    /// index: the first free one, the first one already shared under `c`'s
    /// key without port clash, or one `c` holds itself — whichever is lowest.
    pub(crate) fn candidate(
        &self,
        c: &Claimant,
        probe: Probe,
        pool: u32,
        family: Family,
    ) -> Option<u128> {
        let space = self.pool_state(pool).space(family);
        // O(1) emptiness test first: a full pool costs no tree walk.
        let mut best = if space.free.is_empty() {
            None
        } else {
            space.free.first()
        };
        if let Some(set) = probe.key.and_then(|k| space.shared.get(&k)) {
            for index in set.iter() {
                if best.is_some_and(|b| index > b) {
                    break;
                }
                let loc = Loc {
                    pool,
                    family,
                    index,
                };
                let usable = space
                    .address(index)
                    .is_some_and(|ip| self.check_sharing(c, loc, &ip).is_ok());
                if usable {
                    best = Some(index);
                    break;
                }
            }
        }
        if let Some(record) = probe.mine.and_then(|s| self.records.get(s)) {
            for ip in record.ips() {
                let Some(loc) = self.locate(&ip) else {
                    continue;
                };
                if loc.pool == pool
                    && loc.family == family
                    && best.is_none_or(|b| loc.index < b)
                    && self.check_sharing(c, loc, &ip).is_ok()
                {
                    best = Some(loc.index);
                }
            }
        }
        best
    }

    pub(crate) fn candidate_ip(
        &self,
        c: &Claimant,
        probe: Probe,
        pool: u32,
        family: Family,
    ) -> Option<IpAddr> {
        let index = self.candidate(c, probe, pool, family)?;
        self.pool_state(pool).space(family).address(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolDef;

    fn setup() -> (Allocator, ServiceView) {
        let mut a = Allocator::new();
        a.set_pools(vec![PoolDef::new(
            "p",
            vec![
                "10.0.0.0/24".parse().unwrap(),
                "fc00::/120".parse().unwrap(),
            ],
        )]);
        let view = ServiceView {
            namespace: "ns".into(),
            name: "s".into(),
            ..Default::default()
        };
        (a, view)
    }

    fn ips(list: &[&str]) -> Vec<Option<IpAddr>> {
        list.iter().map(|s| Some(s.parse().unwrap())).collect()
    }

    #[test]
    fn claim_checks_count_and_families_after_pool_and_compatibility() {
        let (mut a, view) = setup();
        let parts = ClaimantParts::of(&view);
        let c = parts.claimant(&view);
        assert_eq!(
            a.claim(&c, &ips(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]))
                .unwrap_err()
                .to_string(),
            "more than two addresses [\"10.0.0.1\" \"10.0.0.2\" \"10.0.0.3\"]"
        );
        assert_eq!(
            a.claim(&c, &ips(&["10.0.0.1", "10.0.0.2"]))
                .unwrap_err()
                .to_string(),
            "\"10.0.0.1\" \"10.0.0.2\" has the same family"
        );
        assert_eq!(
            a.claim(&c, &ips(&["10.0.0.1", "10.9.0.2"]))
                .unwrap_err()
                .to_string(),
            "[\"10.0.0.1\" \"10.9.0.2\"] is not allowed in config"
        );
        assert_eq!(a.claim(&c, &ips(&["fc00::1", "10.0.0.1"])), Ok(0));
        assert_eq!(a.records.len(), 1);
    }

    #[test]
    fn reclaiming_replaces_the_previous_record() {
        let (mut a, view) = setup();
        let parts = ClaimantParts::of(&view);
        let c = parts.claimant(&view);
        a.claim(&c, &ips(&["10.0.0.1"])).unwrap();
        a.claim(&c, &ips(&["10.0.0.2"])).unwrap();
        let counters = a.pool_counters("p").unwrap();
        assert_eq!(counters.assigned_v4, 1);
        let probe = a.probe(&c);
        // Its own address is usable for it, and lower than the first free one.
        assert_eq!(a.candidate(&c, probe, 0, Family::V4), Some(0));
        a.release_key(c.key);
        assert_eq!(a.pool_counters("p").unwrap().assigned_v4, 0);
    }
}
