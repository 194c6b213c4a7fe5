//! Assembles [`crate::decide::DecideInput`]'s owned parts from the watches
//! and the failure detector's view.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ferrolb_allocator::ServiceKey;

use crate::cluster::SliceFacts;
use crate::svcstatus::StatusFacts;
use crate::watch::ObjectKey;
use crate::decide::{Endpoint, MemberNetworks, ServiceState};

/// Services with their serving endpoints joined in, in key order. Reads the
/// caches in place: only the Services are copied, and each Service gets one
/// [`Endpoint`] per node with a serving endpoint (plus one without a node when
/// a serving endpoint names none), which is all the decision reads.
pub fn services<'a>(
    facts: impl IntoIterator<Item = &'a ServiceState>,
    slices: impl IntoIterator<Item = (&'a ObjectKey, &'a SliceFacts)>,
) -> Vec<ServiceState> {
    // (namespace, Service name): a slice's Service is in the slice's namespace.
    let mut serving: HashMap<(&str, &str), (BTreeSet<&str>, bool)> = HashMap::new();
    for ((namespace, _), slice) in slices {
        let (nodes, unplaced) = serving.entry((namespace.as_str(), slice.service_name.as_str())).or_default();
        nodes.extend(slice.serving_nodes.iter().map(|n| &**n));
        *unplaced |= slice.serving_unplaced;
    }
    let mut out: Vec<ServiceState> = facts
        .into_iter()
        .map(|svc| {
            let endpoints = match serving.get(&(svc.key.namespace.as_str(), svc.key.name.as_str())) {
                None => Vec::new(),
                Some((nodes, unplaced)) => nodes
                    .iter()
                    .map(|n| Endpoint { node: Some((*n).to_string()), serving: true })
                    .chain(unplaced.then_some(Endpoint { node: None, serving: true }))
                    .collect(),
            };
            ServiceState { endpoints, ..svc.clone() }
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// The current layer 2 owner of each Service, from the ServiceL2Status
/// objects. When several exist (a hand-over in progress) the live writer
/// wins, and among live writers the smallest name, so every speaker reads the
/// same owner from the same objects.
pub fn sticky<'a>(statuses: impl IntoIterator<Item = &'a StatusFacts>, live: Option<&BTreeMap<String, MemberNetworks>>) -> BTreeMap<ServiceKey, String> {
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

    fn status(node: &str, svc: &str) -> StatusFacts {
        StatusFacts { name: format!("l2-{node}"), node: node.into(), service: ServiceKey::new("d", svc), items: vec![] }
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
        let slice = |name: &str, service: &str, nodes: &[&str], unplaced| {
            (
                ("d".to_string(), name.to_string()),
                SliceFacts {
                    service_name: service.to_string(),
                    serving_nodes: nodes.iter().map(|n| std::sync::Arc::from(*n)).collect(),
                    serving_unplaced: unplaced,
                },
            )
        };
        let slices = [slice("web-1", "web", &["a", "b"], false), slice("web-2", "web", &["b", "c"], true)];
        let out = services(&facts, slices.iter().map(|(k, v)| (k, v)));
        let nodes: Vec<Option<&str>> = out[0].endpoints.iter().map(|e| e.node.as_deref()).collect();
        assert_eq!(nodes, vec![Some("a"), Some("b"), Some("c"), None]);
        assert!(out[0].endpoints.iter().all(|e| e.serving));
        let other = slice("other-1", "other", &["x"], false);
        assert_eq!(services(&facts, [(&other.0, &other.1)])[0].endpoints, vec![]);
        // A slice of another namespace never serves this Service.
        let foreign = (("e".to_string(), "web-1".to_string()), slices[0].1.clone());
        assert_eq!(services(&facts, [(&foreign.0, &foreign.1)])[0].endpoints, vec![]);
    }
}
