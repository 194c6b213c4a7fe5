//! Assembles [`crate::decide::DecideInput`]'s owned parts from the watches
//! and the failure detector's view.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ferrolb_allocator::ServiceKey;
use smallvec::SmallVec;

use crate::cluster::SliceFacts;
use crate::svcstatus::StatusFacts;
use crate::watch::{Changes, ObjectKey, Projected};
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
    let mut serving: HashMap<(&str, &str), Vec<&SliceFacts>> = HashMap::new();
    for (key, slice) in slices {
        serving.entry((&*key.namespace, &*slice.service_name)).or_default().push(slice);
    }
    let mut out: Vec<ServiceState> = facts
        .into_iter()
        .map(|svc| {
            let of = serving.get(&(&*svc.key.namespace, &*svc.key.name));
            joined(svc, of.into_iter().flatten().copied())
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// The Service with the serving endpoints of `slices` (its own).
fn joined<'a>(svc: &ServiceState, slices: impl IntoIterator<Item = &'a SliceFacts>) -> ServiceState {
    let mut nodes: BTreeSet<&std::sync::Arc<str>> = BTreeSet::new();
    let mut unplaced = false;
    for slice in slices {
        nodes.extend(slice.serving_nodes.iter());
        unplaced |= slice.serving_unplaced;
    }
    let endpoints = nodes
        .into_iter()
        .map(|n| Endpoint { node: Some(n.clone()), serving: true })
        .chain(unplaced.then_some(Endpoint { node: None, serving: true }))
        .collect();
    ServiceState { endpoints, ..svc.clone() }
}

/// What changed in [`ServiceInputs`] at a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Everything was read again (the first refresh, or a watch relisted).
    All,
    /// These Services were added, removed or changed; nothing else did.
    Keys(BTreeSet<ServiceKey>),
}

/// The Services with their endpoints joined in, kept between passes and
/// refreshed from what the watches say changed: a pass reads and copies
/// only the changed Services and the slices of those, where a full read
/// copied every Service (a sixth of a pass at 1,000 Services).
#[derive(Debug, Default)]
pub struct ServiceInputs {
    /// Ordered by key; the key inside each Service is the set's key, not a
    /// second copy of it.
    services: BTreeSet<ByKey>,
    /// The Service each EndpointSlice named when last read.
    slice_service: HashMap<ObjectKey, ServiceKey>,
    /// The slices naming each Service, sorted: usually one, held inline
    /// (a one-element `BTreeSet` would allocate a whole B-tree node).
    slices_of: HashMap<ServiceKey, SmallVec<[ObjectKey; 1]>>,
}

impl ServiceInputs {
    pub fn get(&self, key: &ServiceKey) -> Option<&ServiceState> {
        self.services.get(key).map(|s| &s.0)
    }

    pub fn all(&self) -> impl Iterator<Item = &ServiceState> {
        self.services.iter().map(|s| &s.0)
    }

    /// Brings the Services up to date with the watches.
    pub fn refresh(&mut self, services: &Projected<ServiceState>, slices: &Projected<SliceFacts>) -> Refreshed {
        // Taken before the maps are read (see `take_changes`).
        let (svc_changes, slice_changes) = (services.take_changes(), slices.take_changes());
        let (Changes::Keys(changed_services), Changes::Keys(changed_slices)) = (svc_changes, slice_changes) else {
            self.reload(services, slices);
            return Refreshed::All;
        };
        let mut dirty: BTreeSet<ServiceKey> = changed_services.into_iter().collect();
        slices.read(|all| {
            for key in changed_slices {
                let now = all.get(&key).map(|s| ServiceKey::new(key.namespace.clone(), s.service_name.clone()));
                if let Some(service) = self.slice_service.remove(&key) {
                    self.unlink(&key, service, &mut dirty);
                }
                if let Some(service) = now {
                    link(self.slices_of.entry(service.clone()).or_default(), &key);
                    dirty.insert(service.clone());
                    self.slice_service.insert(key, service);
                }
            }
        });
        let mut changed = BTreeSet::new();
        for key in dirty {
            let fresh = services.read(|svcs| svcs.get(&key).cloned()).map(|svc| {
                let names = self.slices_of.get(&key);
                slices.read(|all| joined(&svc, names.into_iter().flatten().filter_map(|slice| all.get(slice))))
            });
            if self.get(&key) == fresh.as_ref() {
                continue;
            }
            match fresh {
                Some(svc) => self.services.replace(ByKey(svc)).is_some(),
                None => self.services.remove(&key),
            };
            changed.insert(key);
        }
        Refreshed::Keys(changed)
    }

    /// Forgets that slice `key` named `service`, which must be joined again.
    fn unlink(&mut self, key: &ObjectKey, service: ServiceKey, dirty: &mut BTreeSet<ServiceKey>) {
        if let Some(set) = self.slices_of.get_mut(&service) {
            if let Ok(at) = set.binary_search(key) {
                set.remove(at);
            }
            if set.is_empty() {
                self.slices_of.remove(&service);
            }
        }
        dirty.insert(service);
    }

    fn reload(&mut self, services: &Projected<ServiceState>, slices: &Projected<SliceFacts>) {
        let joined = services.read(|svcs| slices.read(|all| self::services(svcs.values(), all.iter())));
        self.services = joined.into_iter().map(ByKey).collect();
        self.slice_service.clear();
        self.slices_of.clear();
        slices.read(|all| {
            for (key, slice) in all {
                let service = ServiceKey::new(key.namespace.clone(), slice.service_name.clone());
                link(self.slices_of.entry(service.clone()).or_default(), key);
                self.slice_service.insert(key.clone(), service);
            }
        });
    }
}

/// A Service ordered, compared and looked up by its key alone.
#[derive(Debug)]
struct ByKey(ServiceState);

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for ByKey {}

impl PartialOrd for ByKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.key.cmp(&other.0.key)
    }
}

impl std::borrow::Borrow<ServiceKey> for ByKey {
    fn borrow(&self) -> &ServiceKey {
        &self.0.key
    }
}

/// Adds slice `key` to a Service's sorted list of slices.
fn link(slices: &mut SmallVec<[ObjectKey; 1]>, key: &ObjectKey) {
    if let Err(at) = slices.binary_search(key) {
        slices.insert(at, key.clone());
    }
}

/// The current layer 2 owner of each Service, from the ServiceL2Status
/// objects. When several exist (a hand-over in progress) the live writer
/// wins, and among live writers the smallest name, so every speaker reads the
/// same owner from the same objects.
pub fn sticky<'a>(statuses: impl IntoIterator<Item = &'a StatusFacts>, live: Option<&BTreeMap<String, MemberNetworks>>) -> BTreeMap<ServiceKey, String> {
    let mut out: BTreeMap<ServiceKey, String> = BTreeMap::new();
    for s in statuses {
        if live.is_some_and(|l| !l.contains_key(&*s.node)) {
            continue;
        }
        match out.get(&s.service) {
            Some(existing) if existing.as_str() <= &*s.node => {}
            _ => {
                out.insert(s.service.clone(), s.node.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(node: &str, svc: &str) -> StatusFacts {
        StatusFacts { name: format!("l2-{node}").into(), node: node.into(), service: ServiceKey::new("d", svc), items: Default::default() }
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

    proptest::proptest! {
        /// However Services and slices change (a slice moving between
        /// Services too), the kept Services equal a full read after each
        /// refresh, and every Service whose joined state changed is reported.
        #[test]
        fn refreshes_equal_a_full_read(steps in proptest::collection::vec((0u8..2, 0u8..4, 0u8..4, proptest::option::of(0u8..4), proptest::collection::vec(0u8..3, 0..3)), 1..40)) {
            let services = Projected::<ServiceState>::detached();
            let slices = Projected::<SliceFacts>::detached();
            let mut kept = ServiceInputs::default();
            let mut previous: BTreeMap<ServiceKey, ServiceState> = BTreeMap::new();
            for (chunk, (kind, which, ingress, owner, nodes)) in steps.iter().enumerate() {
                let ns = "d".to_string();
                if *kind == 0 {
                    let name = format!("s{which}");
                    let value = (*ingress > 0).then(|| ServiceState {
                        key: ServiceKey::new(ns.clone(), name.clone()),
                        is_load_balancer: true,
                        labels: Default::default(),
                        has_sharing_key: false,
                        ingress: vec![format!("10.0.0.{ingress}")].into(),
                        local_traffic_policy: false,
                        endpoints: vec![],
                    });
                    services.put(ServiceKey::new(ns, name), value);
                } else {
                    let value = owner.map(|o| SliceFacts {
                        service_name: format!("s{o}").into(),
                        serving_nodes: nodes.iter().map(|n| std::sync::Arc::from(format!("n{n}").as_str())).collect::<BTreeSet<_>>().into_iter().collect(),
                        serving_unplaced: *ingress == 3,
                    });
                    slices.put(ServiceKey::new(ns, format!("slice{which}")), value);
                }
                // Refresh after some steps only, so changes pile up.
                if chunk % 3 == 2 || chunk + 1 == steps.len() {
                    let refreshed = kept.refresh(&services, &slices);
                    let full: Vec<ServiceState> = services.read(|svcs| slices.read(|all| super::services(svcs.values(), all.iter())));
                    let now: BTreeMap<ServiceKey, ServiceState> = full.into_iter().map(|s| (s.key.clone(), s)).collect();
                    proptest::prop_assert_eq!(kept.all().cloned().collect::<Vec<_>>(), now.values().cloned().collect::<Vec<_>>());
                    if let Refreshed::Keys(keys) = refreshed {
                        for key in previous.keys().chain(now.keys()) {
                            if previous.get(key) != now.get(key) {
                                proptest::prop_assert!(keys.contains(key), "{} changed but was not reported", key);
                            }
                        }
                    }
                    previous = now;
                }
            }
        }
    }

    #[test]
    fn endpoints_of_several_slices_are_joined() {
        let key = ServiceKey::new("d", "web");
        let facts = vec![ServiceState {
            key: key.clone(),
            is_load_balancer: true,
            labels: Default::default(),
            has_sharing_key: false,
            ingress: Default::default(),
            local_traffic_policy: false,
            endpoints: vec![],
        }];
        let slice = |name: &str, service: &str, nodes: &[&str], unplaced| {
            (
                ServiceKey::new("d", name),
                SliceFacts {
                    service_name: service.into(),
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
        let foreign = (ServiceKey::new("e", "web-1"), slices[0].1.clone());
        assert_eq!(services(&facts, [(&foreign.0, &foreign.1)])[0].endpoints, vec![]);
    }
}
