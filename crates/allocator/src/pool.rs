//! Pool definitions as the allocator receives them, and which Services a pool serves.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::selector::LabelSelector;

/// One validated IPAddressPool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolDef {
    pub name: String,
    /// In `spec.addresses` order, ranges already split into CIDRs (crds.md §2.1).
    pub cidrs: Vec<ipnet::IpNet>,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    /// `None` = the pool has no `serviceAllocation` at all.
    pub allocation: Option<PoolAllocation>,
}

/// `spec.serviceAllocation`, with namespace selectors already resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolAllocation {
    /// `<= 0` behaves as unset.
    pub priority: i32,
    /// Union of `namespaces` and the namespaces matched by `namespaceSelectors`.
    pub namespaces: BTreeSet<String>,
    /// `namespaces` or `namespaceSelectors` was given.
    pub has_namespace_constraint: bool,
    pub service_selectors: Vec<LabelSelector>,
}

/// Why a pool does not serve a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incompatibility {
    /// The namespace constraint resolved to no namespace at all.
    SelectsNoNamespace,
    NamespaceNotSelected,
    LabelsNotSelected,
}

impl PoolDef {
    /// A pool with only the mandatory fields, as `spec` defaults would give.
    pub fn new(name: impl Into<String>, cidrs: Vec<ipnet::IpNet>) -> Self {
        PoolDef {
            name: name.into(),
            cidrs,
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        }
    }

    /// allocation.md §3.1 with ferrolb's rule that a namespace constraint
    /// resolving to nothing serves nobody (docs/allocation.md).
    pub fn compatibility(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), Incompatibility> {
        let Some(a) = &self.allocation else {
            return Ok(());
        };
        if a.has_namespace_constraint && a.namespaces.is_empty() {
            return Err(Incompatibility::SelectsNoNamespace);
        }
        if !a.namespaces.is_empty() && !a.namespaces.contains(namespace) {
            return Err(Incompatibility::NamespaceNotSelected);
        }
        if !a.service_selectors.is_empty() && !a.service_selectors.iter().any(|s| s.matches(labels))
        {
            return Err(Incompatibility::LabelsNotSelected);
        }
        Ok(())
    }

    /// The priority that orders the pool, `None` when unset or `<= 0`.
    pub fn effective_priority(&self) -> Option<i32> {
        self.allocation
            .as_ref()
            .map(|a| a.priority)
            .filter(|p| *p > 0)
    }
}

/// Phase-1 order (allocation.md §4.3 with ferrolb's determinism rule):
/// priority >= 1 ascending, then unset, ties by name.
pub fn pinned_order(a: &PoolDef, b: &PoolDef) -> Ordering {
    let key = |p: &PoolDef| {
        let prio = p.effective_priority();
        (prio.is_none(), prio.unwrap_or(0))
    };
    key(a).cmp(&key(b)).then_with(|| a.name.cmp(&b.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, alloc: Option<PoolAllocation>) -> PoolDef {
        PoolDef {
            allocation: alloc,
            ..PoolDef::new(name, vec![])
        }
    }

    fn prio(p: i32) -> Option<PoolAllocation> {
        Some(PoolAllocation {
            priority: p,
            ..Default::default()
        })
    }

    #[test]
    fn ordering_puts_positive_priorities_first_and_breaks_ties_by_name() {
        let mut pools = [
            pool("z0", prio(0)),
            pool("neg", prio(-3)),
            pool("b5", prio(5)),
            pool("a5", prio(5)),
            pool("c1", prio(1)),
            pool("a0", prio(0)),
        ];
        pools.sort_by(pinned_order);
        let names: Vec<_> = pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["c1", "a5", "b5", "a0", "neg", "z0"]);
    }

    #[test]
    fn priority_only_allocation_serves_everyone() {
        let p = pool("p", prio(3));
        assert_eq!(p.compatibility("any", &BTreeMap::new()), Ok(()));
        let empty = pool("e", Some(PoolAllocation::default()));
        assert_eq!(empty.compatibility("x", &BTreeMap::new()), Ok(()));
    }

    #[test]
    fn namespace_constraint_resolving_to_nothing_serves_nobody() {
        let p = pool(
            "p",
            Some(PoolAllocation {
                has_namespace_constraint: true,
                ..Default::default()
            }),
        );
        assert_eq!(
            p.compatibility("default", &BTreeMap::new()),
            Err(Incompatibility::SelectsNoNamespace)
        );
    }

    #[test]
    fn namespace_and_selectors_must_both_match() {
        let mut sel = LabelSelector::default();
        sel.match_labels.insert("app".into(), "web".into());
        let p = pool(
            "p",
            Some(PoolAllocation {
                namespaces: ["prod".to_string()].into(),
                has_namespace_constraint: true,
                service_selectors: vec![sel],
                ..Default::default()
            }),
        );
        let web: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        assert_eq!(p.compatibility("prod", &web), Ok(()));
        assert_eq!(
            p.compatibility("dev", &web),
            Err(Incompatibility::NamespaceNotSelected)
        );
        assert_eq!(
            p.compatibility("prod", &BTreeMap::new()),
            Err(Incompatibility::LabelsNotSelected)
        );
    }
}
