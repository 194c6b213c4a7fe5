//! Assembles [`crate::decide::DecideInput`]'s owned parts from the watches
//! and the failure detector's view.

use std::collections::{BTreeMap, HashMap};

use ferrolb_allocator::ServiceKey;

use crate::cluster::{L2StatusFacts, SliceFacts};
use crate::decide::{Endpoint, MemberNetworks, NodeState, ServiceState};

/// Services with their endpoints joined in, in key order.
pub fn services(facts: Vec<ServiceState>, slices: Vec<SliceFacts>) -> Vec<ServiceState> {
    let mut endpoints: HashMap<ServiceKey, Vec<Endpoint>> = HashMap::new();
    for slice in slices {
        endpoints.entry(slice.service).or_default().extend(slice.endpoints);
    }
    let mut out: Vec<ServiceState> = facts
        .into_iter()
        .map(|mut svc| {
            svc.endpoints = endpoints.remove(&svc.key).unwrap_or_default();
            svc
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

pub fn nodes(states: Vec<(String, NodeState)>) -> BTreeMap<String, NodeState> {
    states.into_iter().collect()
}

/// The current layer 2 owner of each Service, from the ServiceL2Status
/// objects. When several exist (a hand-over in progress) the live writer
/// wins, and among live writers the smallest name, so every speaker reads the
/// same owner from the same objects.
pub fn sticky(statuses: &[L2StatusFacts], live: Option<&BTreeMap<String, MemberNetworks>>) -> BTreeMap<ServiceKey, String> {
    let mut out: BTreeMap<ServiceKey, String> = BTreeMap::new();
    for s in statuses {
        if live.is_some_and(|l| !l.contains_key(&s.node)) {
            continue;
        }
        match out.get(&s.service) {
            Some(existing) if existing <= &s.node => {}
            _ => {
                out.insert(s.service.clone(), s.node.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(node: &str, svc: &str) -> L2StatusFacts {
        L2StatusFacts { name: format!("l2-{node}"), node: node.into(), service: ServiceKey::new("d", svc), interfaces: vec![] }
    }

    #[test]
    fn sticky_prefers_live_writers_then_the_smallest_name() {
        let statuses = vec![status("n3", "a"), status("n1", "a"), status("n2", "b")];
        let all = sticky(&statuses, None);
        assert_eq!(all[&ServiceKey::new("d", "a")], "n1");
        let live: BTreeMap<String, MemberNetworks> = [("n3".to_string(), MemberNetworks::default())].into();
        let some = sticky(&statuses, Some(&live));
        assert_eq!(some.get(&ServiceKey::new("d", "a")).map(String::as_str), Some("n3"));
        assert!(!some.contains_key(&ServiceKey::new("d", "b")));
    }

    #[test]
    fn endpoints_of_several_slices_are_joined() {
        let key = ServiceKey::new("d", "web");
        let facts = vec![ServiceState {
            key: key.clone(),
            is_load_balancer: true,
            labels: Default::default(),
            has_sharing_key: false,
            ingress: vec![],
            local_traffic_policy: false,
            endpoints: vec![],
        }];
        let slice = |n: &str| SliceFacts { service: key.clone(), endpoints: vec![Endpoint { node: Some(n.into()), serving: true }] };
        let out = services(facts, vec![slice("a"), slice("b")]);
        assert_eq!(out[0].endpoints.len(), 2);
    }
}
