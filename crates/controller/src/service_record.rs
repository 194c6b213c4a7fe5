//! What the controller keeps of a Service, and the cache that holds it.
//!
//! With 5,000 Services the cache is the largest thing the controller holds.
//! A `k8s_openapi` `Service` is 824 bytes inline however few of its fields
//! are set, and kube's reflector store copies name, namespace,
//! resourceVersion and uid once more into each key. A [`ServiceRecord`]
//! holds only the fields the controller reads, is built once per watch
//! event, and is keyed by its own `namespace/name`.

use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use ferrolb_allocator::ServiceView;
use ferrolb_allocator::annotations::DEPRECATED_PREFIX;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::watcher::Event;
use tokio::sync::watch;

use crate::service_status::{CONDITION_TYPE, Current, POOL_ANNOTATION};
use crate::watch::ServiceId;

/// Annotation domains the controller reads: every key of
/// `ferrolb_allocator::annotations` (requested pool and addresses, sharing
/// key, the pool written back) is in one of them, and any key of the
/// deprecated domain is reported in an Event.
const READ_ANNOTATION_PREFIXES: [&str; 2] = ["metallb.io/", DEPRECATED_PREFIX];

/// Values of `type`, `protocol`, `ipFamilies`, `ipFamilyPolicy` and
/// `externalTrafficPolicy` the API server accepts: kept without an
/// allocation of their own.
const WELL_KNOWN: [&str; 14] = [
    "LoadBalancer", "ClusterIP", "NodePort", "ExternalName", "TCP", "UDP", "SCTP", "IPv4", "IPv6",
    "SingleStack", "PreferDualStack", "RequireDualStack", "Cluster", "Local",
];

/// A short field value: borrowed when it is one of [`WELL_KNOWN`].
type Text = Cow<'static, str>;

fn text(s: String) -> Text {
    WELL_KNOWN.iter().find(|k| **k == s).map_or(Cow::Owned(s), |k| Cow::Borrowed(*k))
}

fn owned(t: &Text) -> String {
    t.to_string()
}

/// The fields of a Service the controller reads.
///
/// Kept: namespace, name, uid, creationTimestamp, labels (pool
/// `serviceSelectors`), the metallb.io and metallb.universe.tf annotations;
/// the `spec` fields of `ServiceView` (ports as protocol and port); what
/// the status writer compares ([`Current`]: the ingress IPs, ferrolb's
/// condition, the pool annotation, generation and resourceVersion). The
/// selector is read only for `externalTrafficPolicy: Local` Services (the
/// backend key of IP sharing) and is dropped otherwise.
///
/// Everything else (managed fields, other annotations such as kubectl's
/// last-applied-configuration, finalizers, owner references, session
/// affinity, node ports, port names and targets, health check port, other
/// controllers' conditions, ipMode) is never read by the controller.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceRecord {
    pub id: ServiceId,
    pub uid: Option<String>,
    pub created: Option<Time>,
    /// What the status writer compares with, and the precondition of a write.
    pub status: Current,
    // Maps and lists are boxed slices of exactly their length: an empty
    // one allocates nothing (a BTreeMap emptied by removals keeps a 500-byte
    // node), and none keeps the spare capacity of deserialisation.
    /// Sorted by key, as the map they came from.
    labels: Box<[(String, String)]>,
    /// The annotations of [`READ_ANNOTATION_PREFIXES`] but the pool one,
    /// which is `status.pool`; sorted by key.
    annotations: Box<[(String, String)]>,
    type_: Option<Text>,
    load_balancer_class: Option<String>,
    load_balancer_ip: Option<String>,
    cluster_ip: Option<String>,
    cluster_ips: Box<[String]>,
    ip_family_policy: Option<Text>,
    ip_families: Box<[Text]>,
    /// `(protocol, port)`, TCP where the protocol is unset.
    ports: Box<[(Text, i32)]>,
    external_traffic_policy: Option<Text>,
    /// Sorted by key.
    selector: Box<[(String, String)]>,
}

fn pairs(map: BTreeMap<String, String>) -> Box<[(String, String)]> {
    map.into_iter().collect()
}

fn map(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

impl From<Service> for ServiceRecord {
    fn from(svc: Service) -> Self {
        let meta = svc.metadata;
        let mut annotations = meta.annotations.unwrap_or_default();
        annotations.retain(|k, _| READ_ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p)));
        let pool = annotations.remove(POOL_ANNOTATION);
        let status = svc.status.unwrap_or_default();
        let mut ingress: Vec<Option<String>> = status
            .load_balancer
            .and_then(|lb| lb.ingress)
            .map(|items| items.into_iter().map(|i| i.ip.filter(|ip| !ip.is_empty())).collect())
            .unwrap_or_default();
        // Collected in place: without this it keeps the buffer of the
        // deserialised items, several times its size.
        ingress.shrink_to_fit();
        let condition = status.conditions.and_then(|cs| cs.into_iter().find(|c| c.type_ == CONDITION_TYPE)).map(Box::new);
        let spec = svc.spec.unwrap_or_default();
        let local = spec.external_traffic_policy.as_deref() == Some("Local");
        ServiceRecord {
            id: (meta.namespace.unwrap_or_default().into(), meta.name.unwrap_or_default().into()),
            uid: meta.uid,
            created: meta.creation_timestamp,
            status: Current {
                ingress,
                pool,
                condition,
                generation: meta.generation,
                resource_version: meta.resource_version,
            },
            labels: pairs(meta.labels.unwrap_or_default()),
            annotations: pairs(annotations),
            type_: spec.type_.map(text),
            load_balancer_class: spec.load_balancer_class,
            load_balancer_ip: spec.load_balancer_ip,
            cluster_ip: spec.cluster_ip,
            cluster_ips: spec.cluster_ips.unwrap_or_default().into_boxed_slice(),
            ip_family_policy: spec.ip_family_policy.map(text),
            ip_families: spec.ip_families.unwrap_or_default().into_iter().map(text).collect(),
            ports: spec
                .ports
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p.protocol.map_or(Cow::Borrowed("TCP"), text), p.port))
                .collect(),
            external_traffic_policy: spec.external_traffic_policy.map(text),
            selector: pairs(spec.selector.filter(|_| local).unwrap_or_default()),
        }
    }
}

impl ServiceRecord {
    /// What the allocation rules read: the same as
    /// `ferrolb_config::view::service_view` of the whole Service.
    pub fn view(&self) -> ServiceView {
        let mut annotations = map(&self.annotations);
        if let Some(pool) = &self.status.pool {
            annotations.insert(POOL_ANNOTATION.to_string(), pool.clone());
        }
        ServiceView {
            namespace: self.id.0.to_string(),
            name: self.id.1.to_string(),
            labels: map(&self.labels),
            annotations,
            type_: self.type_.as_ref().map(owned),
            load_balancer_class: self.load_balancer_class.clone(),
            load_balancer_ip: self.load_balancer_ip.clone(),
            cluster_ip: self.cluster_ip.clone(),
            cluster_ips: self.cluster_ips.to_vec(),
            ip_family_policy: self.ip_family_policy.as_ref().map(owned),
            ip_families: self.ip_families.iter().map(owned).collect(),
            ports: self.ports.iter().map(|(proto, port)| (owned(proto), *port)).collect(),
            external_traffic_policy: self.external_traffic_policy.as_ref().map(owned),
            selector: map(&self.selector),
            ingress_ips: self.status.ips(),
            creation_timestamp: self.created.as_ref().map(|t| t.0.to_string()),
        }
    }

    /// The object of the Service's Events: what kube's `object_ref` gives
    /// for the whole Service.
    pub fn object_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Service".to_string()),
            namespace: Some(self.id.0.to_string()).filter(|n| !n.is_empty()),
            name: Some(self.id.1.to_string()).filter(|n| !n.is_empty()),
            uid: self.uid.clone(),
            // kube's object_ref leaves it out too: an Event names the
            // object, not one version of it.
            resource_version: None,
            field_path: None,
        }
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.status.resource_version.as_deref()
    }
}

/// A cache entry, found by the `namespace/name` its record holds (the key
/// is not stored twice).
#[derive(Clone)]
struct Entry(Arc<ServiceRecord>);

impl Borrow<ServiceId> for Entry {
    fn borrow(&self) -> &ServiceId {
        &self.0.id
    }
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Entry {}

/// The Services as the last watch event left them; cloning shares it.
#[derive(Clone)]
pub struct ServiceCache {
    entries: Arc<RwLock<HashSet<Entry>>>,
    ready: watch::Receiver<bool>,
}

impl ServiceCache {
    pub fn get(&self, id: &ServiceId) -> Option<Arc<ServiceRecord>> {
        self.read().get(id).map(|e| e.0.clone())
    }

    /// Every Service, in no particular order.
    pub fn state(&self) -> Vec<Arc<ServiceRecord>> {
        self.read().iter().map(|e| e.0.clone()).collect()
    }

    /// Waits until the first list is complete (returns at once after it,
    /// or when the writer is gone).
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashSet<Entry>> {
        // A writer panicking mid-update leaves a set that is still whole.
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Applies the watch events of Services to a [`ServiceCache`].
pub struct CacheWriter {
    entries: Arc<RwLock<HashSet<Entry>>>,
    /// A relist in progress: it replaces the whole cache when complete.
    relist: Option<HashSet<Entry>>,
    /// One copy of each namespace name for all its Services' ids.
    namespaces: HashSet<Arc<str>>,
    ready: watch::Sender<bool>,
}

/// An empty cache and its only writer.
pub fn cache() -> (ServiceCache, CacheWriter) {
    let entries = Arc::new(RwLock::new(HashSet::new()));
    let (ready_tx, ready_rx) = watch::channel(false);
    (ServiceCache { entries: entries.clone(), ready: ready_rx }, CacheWriter { entries, relist: None, namespaces: HashSet::new(), ready: ready_tx })
}

impl CacheWriter {
    /// Stores what `event` says of a Service, as kube's reflector store
    /// does (a relist replaces the cache at its end); returns the event
    /// with the Service's `namespace/name` only.
    pub fn apply(&mut self, event: Event<Service>) -> Event<ServiceId> {
        match event {
            Event::Apply(svc) => {
                let record = Arc::new(self.record(svc));
                let id = record.id.clone();
                self.write().replace(Entry(record));
                Event::Apply(id)
            }
            Event::Delete(svc) => {
                let id = ServiceRecord::from(svc).id;
                self.write().remove(&id);
                Event::Delete(id)
            }
            Event::Init => {
                self.relist = Some(HashSet::new());
                Event::Init
            }
            Event::InitApply(svc) => {
                let record = Arc::new(self.record(svc));
                let id = record.id.clone();
                self.relist.get_or_insert_default().replace(Entry(record));
                Event::InitApply(id)
            }
            Event::InitDone => {
                // The old set is dropped here, outside the lock.
                let fresh = self.relist.take().unwrap_or_default();
                let old = std::mem::replace(&mut *self.write(), fresh);
                drop(old);
                // Namespaces no id refers to any more.
                self.namespaces.retain(|ns| Arc::strong_count(ns) > 1);
                self.ready.send_replace(true);
                Event::InitDone
            }
        }
    }

    /// The record of `svc`, its namespace shared with the other Services'.
    fn record(&mut self, svc: Service) -> ServiceRecord {
        let mut record = ServiceRecord::from(svc);
        match self.namespaces.get(&record.id.0) {
            Some(ns) => record.id.0 = ns.clone(),
            None => {
                self.namespaces.insert(record.id.0.clone());
            }
        }
        record
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<Entry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    fn full_service(etp: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42", "generation": 3,
                "creationTimestamp": "2026-01-02T03:04:05Z",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"a\": \"large copy\"}",
                    "metallb.io/address-pool": "blue",
                    "metallb.io/loadBalancerIPs": "10.0.0.7",
                    "metallb.io/allow-shared-ip": "k",
                    "metallb.io/ip-allocated-from-pool": "blue",
                    "metallb.universe.tf/address-pool": "old",
                    "example.com/other": "x"
                },
                "finalizers": ["service.kubernetes.io/load-balancer-cleanup"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "p-1"}],
                "managedFields": [{"manager": "kubectl", "operation": "Update"}]
            },
            "spec": {
                "type": "LoadBalancer", "loadBalancerClass": "c", "loadBalancerIP": "10.0.0.7",
                "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00::1"],
                "ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"],
                "externalTrafficPolicy": etp, "selector": {"app": "web"},
                "sessionAffinity": "None", "internalTrafficPolicy": "Cluster", "healthCheckNodePort": 31000,
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"port": 443},
                    {"port": 9, "protocol": "Other"}
                ]
            },
            "status": {
                "loadBalancer": {"ingress": [
                    {"ip": "10.0.0.7", "ipMode": "VIP", "ports": [{"port": 80, "protocol": "TCP"}]},
                    {"hostname": "lb.example.com"}
                ]},
                "conditions": [
                    {"type": "other/Ready", "status": "True", "reason": "R", "message": "m",
                     "lastTransitionTime": "2026-01-02T03:04:05Z"},
                    {"type": CONDITION_TYPE, "status": "True", "reason": "AllocationSucceeded",
                     "message": "", "observedGeneration": 3, "lastTransitionTime": "2026-01-02T03:04:05Z"}
                ]
            }
        }))
        .expect("a Service")
    }

    #[test]
    fn the_record_reads_the_same_to_the_controller() {
        for etp in ["Local", "Cluster"] {
            let full = full_service(etp);
            let record = ServiceRecord::from(full.clone());
            let (a, b) = (ferrolb_config::view::service_view(&full), record.view());
            // What the allocation rules derive from the view is unchanged.
            assert_eq!(b.backend_key(), a.backend_key(), "{etp}");
            assert_eq!(b.sharing_key(), a.sharing_key());
            assert_eq!(b.requested_pool(), a.requested_pool());
            assert_eq!(b.desired_ips(), a.desired_ips());
            assert_eq!(b.port_set(), a.port_set());
            assert_eq!(b.family(), a.family());
            assert_eq!(b.deprecated_annotation_keys().collect::<Vec<_>>(), a.deprecated_annotation_keys().collect::<Vec<_>>());
            // The view differs only in what is dropped: foreign annotations,
            // and the selector where it is not read.
            let mut expected = a.clone();
            expected.annotations.retain(|k, _| k.starts_with("metallb.io/") || k.starts_with(DEPRECATED_PREFIX));
            assert_eq!(expected.annotations.len(), 5, "the five metallb.io and metallb.universe.tf ones");
            if etp != "Local" {
                expected.selector.clear();
            }
            assert_eq!(b, expected);
            // What the status writer compares and the precondition it sends.
            assert_eq!(record.status, Current::of(&full));
            assert_eq!(record.status.ips(), ["10.0.0.7"], "hostname-only items carry no IP");
            assert_eq!(record.status.ingress.len(), 2, "an item without an IP still counts");
            assert_eq!(record.status.condition.as_ref().map(|c| c.reason.as_str()), Some("AllocationSucceeded"));
            assert_eq!(record.status.pool.as_deref(), Some("blue"));
            assert_eq!(record.object_ref(), full.object_ref(&()), "the Events' object reference");
            assert_eq!(record.id, ("shop".into(), "web".into()));
            assert_eq!(record.created, full.metadata.creation_timestamp);
            assert!(matches!(record.ports[0].0, Cow::Borrowed("TCP")) && matches!(record.ports[3].0, Cow::Owned(_)));
        }
    }

    #[test]
    fn a_bare_service_gives_the_view_of_a_bare_service() {
        let mut s = Service::default();
        s.metadata.name = Some("a".into());
        assert_eq!(ServiceRecord::from(s.clone()).view(), ferrolb_config::view::service_view(&s));
        assert_eq!(ServiceRecord::from(s.clone()).object_ref(), s.object_ref(&()));
    }

    fn named(ns: &str, name: &str, rv: &str) -> Service {
        let mut s = Service::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        s.metadata.resource_version = Some(rv.into());
        s
    }

    #[tokio::test]
    async fn the_writer_applies_events_and_a_relist_replaces_the_cache_when_complete() {
        let (cache, mut writer) = cache();
        let id = |n: &str| -> ServiceId { ("ns".into(), n.into()) };
        let rv = |n: &str| cache.get(&id(n)).and_then(|r| r.resource_version().map(str::to_string));
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), cache.wait_until_ready()).await.is_err());
        assert!(matches!(writer.apply(Event::Init), Event::Init));
        assert!(matches!(writer.apply(Event::InitApply(named("ns", "a", "1"))), Event::InitApply(a) if a == id("a")));
        assert!(cache.get(&id("a")).is_none(), "a relist shows when it is complete");
        writer.apply(Event::InitDone);
        cache.wait_until_ready().await;
        assert_eq!(rv("a"), Some("1".into()));
        writer.apply(Event::Apply(named("ns", "b", "2")));
        writer.apply(Event::Apply(named("ns", "a", "3")));
        assert_eq!((rv("a"), rv("b")), (Some("3".into()), Some("2".into())));
        assert!(matches!(writer.apply(Event::Delete(named("ns", "b", "4"))), Event::Delete(d) if d == id("b")));
        assert_eq!(cache.state().len(), 1);
        // A relist without `a`: it stays until the relist completes.
        writer.apply(Event::Init);
        writer.apply(Event::InitApply(named("ns", "c", "5")));
        assert_eq!(rv("a"), Some("3".into()));
        writer.apply(Event::InitDone);
        assert_eq!((rv("a"), rv("c")), (None, Some("5".into())));
        let ids: Vec<ServiceId> = [writer.apply(Event::Apply(named("ns", "d", "6"))), writer.apply(Event::Apply(named("ns", "e", "7")))]
            .into_iter()
            .filter_map(|ev| if let Event::Apply(id) = ev { Some(id) } else { None })
            .collect();
        assert!(Arc::ptr_eq(&ids[0].0, &ids[1].0), "one copy of the namespace");
        assert!(Arc::ptr_eq(&ids[0].0, &cache.get(&id("c")).expect("c").id.0));
    }
}
