//! IPAddressPool (crds.md §2, P1–P12) and namespace-selector resolution
//! (allocation.md §3.1).

use super::nodes::convert_all;
use super::{Errors, by_name, name_of};
use crate::cidr;
use crate::error::kinds;
use crate::selector;
use ferrolb_allocator::{PoolAllocation, PoolDef};
use ferrolb_api::v1beta1::{IPAddressPool, ServiceAllocation};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Namespace;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// A valid pool plus what advertisements need to know about it.
#[derive(Debug, Clone)]
pub(crate) struct WorkPool {
    pub def: PoolDef,
    pub labels: BTreeMap<String, String>,
    /// `spec.addresses` entries with the CIDRs each produced (B9 works per entry).
    pub entries: Vec<(String, Vec<IpNet>)>,
}

impl WorkPool {
    pub(crate) fn has_v4(&self) -> bool {
        self.def.cidrs.iter().any(|c| matches!(c, IpNet::V4(_)))
    }

    pub(crate) fn has_v6(&self) -> bool {
        self.def.cidrs.iter().any(|c| matches!(c, IpNet::V6(_)))
    }
}

/// Valid pools in name order; every invalid one adds its errors instead.
pub(crate) fn build(pools: &[IPAddressPool], namespaces: &[Namespace], errs: &mut Errors) -> Vec<WorkPool> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut overlaps = OverlapIndex::default();
    for p in by_name(pools, |p| &p.metadata) {
        let name = name_of(&p.metadata);
        if name.is_empty() {
            errs.push(kinds::POOL, name, "metadata.name", "missing pool name");
            continue;
        }
        if !names.insert(name) {
            errs.push(kinds::POOL, name, "metadata.name", format!("duplicate definition of pool {name:?}"));
            continue;
        }
        let before = errs.0.len();
        if p.spec.addresses.is_empty() {
            errs.push(kinds::POOL, name, "spec.addresses", "pool has no prefixes defined");
        }
        let mut entries = Vec::new();
        for (i, entry) in p.spec.addresses.iter().enumerate() {
            let field = format!("spec.addresses[{i}]");
            match cidr::parse_entry(entry) {
                Ok(nets) => {
                    for net in &nets {
                        if let Err(msg) = overlaps.insert(*net, name) {
                            errs.push(kinds::POOL, name, field.clone(), msg);
                        }
                    }
                    entries.push((entry.clone(), nets));
                }
                Err(msg) => errs.push(kinds::POOL, name, field, msg),
            }
        }
        let allocation = p
            .spec
            .service_allocation
            .as_ref()
            .map(|a| allocation(name, a, namespaces, errs));
        if errs.0.len() != before {
            continue;
        }
        out.push(WorkPool {
            def: PoolDef {
                name: name.to_string(),
                cidrs: entries.iter().flat_map(|(_, n)| n.iter().copied()).collect(),
                auto_assign: p.spec.auto_assign,
                avoid_buggy_ips: p.spec.avoid_buggy_ips,
                allocation: allocation.flatten(),
            },
            labels: p.metadata.labels.clone().unwrap_or_default(),
            entries,
        });
    }
    out
}

/// `spec.serviceAllocation` with namespace selectors resolved; `None` after an error.
fn allocation(pool: &str, a: &ServiceAllocation, namespaces: &[Namespace], errs: &mut Errors) -> Option<PoolAllocation> {
    let before = errs.0.len();
    let mut ns_set = BTreeSet::new();
    for n in &a.namespaces {
        if !ns_set.insert(n.clone()) {
            errs.push(kinds::POOL, pool, "spec.serviceAllocation.namespaces", "duplicate definition in namespaces field");
            break;
        }
    }
    if let Err(msg) = selector::check_duplicates("namespaceSelectors", &a.namespace_selectors) {
        errs.push(kinds::POOL, pool, "spec.serviceAllocation.namespaceSelectors", msg);
    }
    if let Err(msg) = selector::check_duplicates("serviceSelectors", &a.service_selectors) {
        errs.push(kinds::POOL, pool, "spec.serviceAllocation.serviceSelectors", msg);
    }
    let ns_selectors = convert_all(&a.namespace_selectors).map_err(|(i, e)| {
        errs.push(
            kinds::POOL,
            pool,
            format!("spec.serviceAllocation.namespaceSelectors[{i}]"),
            format!(
                "invalid namespace label selector {} in ip pool {pool}: {e}",
                selector::canonical_text(&a.namespace_selectors[i])
            ),
        )
    });
    let service_selectors = convert_all(&a.service_selectors).map_err(|(i, e)| {
        errs.push(
            kinds::POOL,
            pool,
            format!("spec.serviceAllocation.serviceSelectors[{i}]"),
            format!(
                "invalid service label selector {} in ip pool {pool}: {e}",
                selector::canonical_text(&a.service_selectors[i])
            ),
        )
    });
    let (Ok(ns_selectors), Ok(service_selectors)) = (ns_selectors, service_selectors) else {
        return None;
    };
    if errs.0.len() != before {
        return None;
    }
    if !ns_selectors.is_empty() {
        for ns in namespaces {
            let labels = ns.metadata.labels.clone().unwrap_or_default();
            if selector::any_matches(&ns_selectors, &labels)
                && let Some(name) = &ns.metadata.name
            {
                ns_set.insert(name.clone());
            }
        }
    }
    Some(PoolAllocation {
        priority: a.priority,
        namespaces: ns_set,
        has_namespace_constraint: !a.namespaces.is_empty() || !a.namespace_selectors.is_empty(),
        service_selectors,
    })
}

/// Every CIDR defined so far, per family, as disjoint intervals (P12). CIDRs that
/// overlap are reported and not inserted, which keeps the intervals disjoint.
#[derive(Default)]
struct OverlapIndex {
    v4: BTreeMap<u128, Defined>,
    v6: BTreeMap<u128, Defined>,
    next_seq: usize,
}

struct Defined {
    end: u128,
    seq: usize,
    net: IpNet,
    pool: String,
}

impl OverlapIndex {
    fn insert(&mut self, net: IpNet, pool: &str) -> Result<(), String> {
        let (start, end) = cidr::bounds(&net);
        let map = match net {
            IpNet::V4(_) => &mut self.v4,
            IpNet::V6(_) => &mut self.v6,
        };
        // Candidates: the interval starting at or before `start` (may reach into it)
        // and every interval starting inside [start, end]. Upstream names the
        // earliest-defined one, so pick by definition sequence.
        let before = map.range(..=start).next_back().filter(|(_, d)| d.end >= start).map(|(_, d)| d);
        let inside = map.range(start..=end).map(|(_, d)| d);
        if let Some(hit) = before.into_iter().chain(inside).min_by_key(|d| d.seq) {
            return Err(format!(
                "CIDR \"{net}\" in pool \"{pool}\" overlaps with already defined CIDR \"{}\" (pool \"{}\")",
                hit.net, hit.pool
            ));
        }
        map.insert(start, Defined { end, seq: self.next_seq, net, pool: pool.to_string() });
        self.next_seq += 1;
        Ok(())
    }
}
