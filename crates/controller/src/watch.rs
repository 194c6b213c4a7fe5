//! Always-on caches (reflectors) of what the controller reads, and the
//! change notifications that drive the reconcile session.
//!
//! The caches run whether or not this replica leads, so a standby that takes
//! over starts from warm caches. Notifications go to the current session
//! only; a session that starts later begins with a full pass anyway.
//!
//! The notification channel is bounded ([`CHANGE_CAPACITY`]) with
//! back-pressure: when it is full, a reflector waits before it takes its
//! next watch event, so nothing is dropped and its cache never runs ahead
//! of what the session was told. The session drains the whole channel on
//! every turn of its loop and coalesces it (a set per kind), so the channel
//! fills only while the session is busy acting on a batch.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use ferrolb_allocator::annotations::DEPRECATED_PREFIX;
use ferrolb_api::v1beta1::{Community, ConfigurationState, IPAddressPool};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Namespace, Service, ServicePort, ServiceSpec, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// `namespace/name` of a Service.
pub type ServiceId = (String, String);

/// What changed, at the granularity the session acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A Service was added, modified or deleted.
    Service(ServiceId),
    /// The Service cache was rebuilt from a fresh list (watch expired or
    /// reconnected); deletions in between may have gone unnoticed.
    ServicesRelisted,
    /// Pools, Communities or Namespaces changed: rebuild the pool configuration.
    Config,
    /// An IPAddressPool was created or modified (its status may need a rewrite).
    Pool(String),
    /// ConfigurationState/controller was created, modified or deleted.
    ConfigState,
}

/// Notifications that may wait for the session before reflectors pause.
pub const CHANGE_CAPACITY: usize = 1024;

/// Where notifications go: the current session, if any.
#[derive(Clone)]
pub struct ChangeRouter {
    current: Arc<Mutex<Option<mpsc::Sender<Change>>>>,
    capacity: usize,
}

impl Default for ChangeRouter {
    fn default() -> Self {
        ChangeRouter::with_capacity(CHANGE_CAPACITY)
    }
}

impl ChangeRouter {
    /// A router whose channels hold at most `capacity` (at least 1) notifications.
    pub fn with_capacity(capacity: usize) -> Self {
        ChangeRouter { current: Arc::default(), capacity: capacity.max(1) }
    }

    /// Routes every later notification to a new receiver.
    pub fn subscribe(&self) -> mpsc::Receiver<Change> {
        let (tx, rx) = mpsc::channel(self.capacity);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    pub fn unsubscribe(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Delivers `change` to the current session, waiting while its channel
    /// is full; returns at once when no session listens.
    pub async fn send(&self, change: Change) {
        let tx = self.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(tx) = tx {
            // A closed receiver means the session just ended; the next one
            // starts with a full pass.
            let _ = tx.send(change).await;
        }
    }
}

#[derive(Clone)]
pub struct Caches {
    pub services: Store<Service>,
    pub namespaces: Store<Namespace>,
    pub pools: Store<IPAddressPool>,
    pub communities: Store<Community>,
    pub config_states: Store<ConfigurationState>,
}

impl Caches {
    /// Waits until every cache has completed its first list.
    pub async fn ready(&self) {
        // A dropped writer means the reflector task ended, which only happens
        // at shutdown; the session is being torn down then.
        let _ = self.services.wait_until_ready().await;
        let _ = self.namespaces.wait_until_ready().await;
        let _ = self.pools.wait_until_ready().await;
        let _ = self.communities.wait_until_ready().await;
        let _ = self.config_states.wait_until_ready().await;
    }
}

/// Name of the controller's ConfigurationState object.
pub const CONFIG_STATE_NAME: &str = ferrolb_runtime::config_state::CONTROLLER_OBJECT;

/// Starts the reflectors on `tasks`; they run until the set is dropped.
pub fn start(client: &Client, namespace: &str, router: &ChangeRouter, tasks: &mut JoinSet<()>) -> Caches {
    let services = spawn_reflector(
        tasks,
        "services",
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        slim_service,
        router.clone(),
        |ev, out| match ev {
            Event::Apply(s) | Event::Delete(s) => out.push(Change::Service(id_of(s))),
            Event::InitDone => out.push(Change::ServicesRelisted),
            Event::Init | Event::InitApply(_) => {}
        },
    );
    let namespaces = spawn_reflector(
        tasks,
        "namespaces",
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        drop_managed_fields,
        router.clone(),
        config_change,
    );
    let pools = spawn_reflector(
        tasks,
        "ipaddresspools",
        Api::<IPAddressPool>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
        drop_managed_fields,
        router.clone(),
        |ev, out| {
            if let Event::Apply(p) = ev {
                out.push(Change::Pool(p.name_any()));
            }
            config_change(ev, out);
        },
    );
    let communities = spawn_reflector(
        tasks,
        "communities",
        Api::<Community>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
        drop_managed_fields,
        router.clone(),
        config_change,
    );
    let config_states = spawn_reflector(
        tasks,
        "configurationstates",
        Api::<ConfigurationState>::namespaced(client.clone(), namespace),
        watcher::Config::default().fields(&format!("metadata.name={CONFIG_STATE_NAME}")),
        drop_managed_fields,
        router.clone(),
        |ev, out| match ev {
            Event::Apply(_) | Event::Delete(_) | Event::InitDone => out.push(Change::ConfigState),
            Event::Init | Event::InitApply(_) => {}
        },
    );
    Caches { services, namespaces, pools, communities, config_states }
}

fn config_change<K>(ev: &Event<K>, out: &mut Vec<Change>) {
    match ev {
        Event::Apply(_) | Event::Delete(_) | Event::InitDone => out.push(Change::Config),
        Event::Init | Event::InitApply(_) => {}
    }
}

pub fn id_of(s: &Service) -> ServiceId {
    (s.namespace().unwrap_or_default(), s.name_any())
}

/// managedFields are never read and are the bulk of a large object.
fn drop_managed_fields<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

/// Annotation domains the controller reads: every key of
/// `ferrolb_allocator::annotations` (requested pool and addresses, sharing
/// key, the pool written back) is in one of them, and any key of the
/// deprecated domain is reported in an Event.
const READ_ANNOTATION_PREFIXES: [&str; 2] = ["metallb.io/", DEPRECATED_PREFIX];

/// Keeps, of a Service, only what the controller reads, before it is cached
/// (5,000 Services: the cache is the largest thing the controller holds).
///
/// Kept: name, namespace, uid, resourceVersion, generation,
/// creationTimestamp, labels (pool `serviceSelectors`), the metallb.io and
/// metallb.universe.tf annotations; the `spec` fields of `ServiceView`
/// (ports as protocol and port); `status.loadBalancer.ingress` as one item
/// per entry with its `ip` only (an item without one still counts: the
/// status writer replaces it), and ferrolb's own condition. The selector is
/// read only for `externalTrafficPolicy: Local` Services (the backend key of
/// IP sharing) and is dropped otherwise.
///
/// Everything else (other annotations such as kubectl's
/// last-applied-configuration, finalizers, owner references, session
/// affinity, node ports, port names and targets, health check port, other
/// controllers' conditions, ipMode) is never read by the controller, and
/// dropping it changes neither the `ServiceView`, the status the
/// controller compares against, nor the Events' object references.
pub fn slim_service(svc: &mut Service) {
    let meta = std::mem::take(&mut svc.metadata);
    let annotations = meta.annotations.map(|mut all| {
        all.retain(|k, _| READ_ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p)));
        all
    });
    svc.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        generation: meta.generation,
        creation_timestamp: meta.creation_timestamp,
        labels: meta.labels.filter(|l| !l.is_empty()),
        annotations: annotations.filter(|a| !a.is_empty()),
        ..ObjectMeta::default()
    };
    svc.spec = svc.spec.take().map(|spec| {
        let local = spec.external_traffic_policy.as_deref() == Some("Local");
        ServiceSpec {
            type_: spec.type_,
            load_balancer_class: spec.load_balancer_class,
            load_balancer_ip: spec.load_balancer_ip,
            cluster_ip: spec.cluster_ip,
            cluster_ips: spec.cluster_ips,
            ip_family_policy: spec.ip_family_policy,
            ip_families: spec.ip_families,
            ports: spec.ports.map(|ports| {
                ports
                    .into_iter()
                    .map(|p| ServicePort { protocol: p.protocol, port: p.port, ..ServicePort::default() })
                    .collect()
            }),
            external_traffic_policy: spec.external_traffic_policy,
            selector: spec.selector.filter(|_| local),
            ..ServiceSpec::default()
        }
    });
    svc.status = svc.status.take().map(|status| {
        let load_balancer = status.load_balancer.map(|lb| LoadBalancerStatus {
            ingress: lb.ingress.map(|items| {
                items.into_iter().map(|i| LoadBalancerIngress { ip: i.ip, ..LoadBalancerIngress::default() }).collect()
            }),
        });
        let conditions = status.conditions.map(|mut all| {
            all.retain(|c| c.type_ == crate::service_status::CONDITION_TYPE);
            all
        });
        ServiceStatus { load_balancer, conditions: conditions.filter(|c| !c.is_empty()) }
    });
}

fn spawn_reflector<K, F>(
    tasks: &mut JoinSet<()>,
    what: &'static str,
    api: Api<K>,
    cfg: watcher::Config,
    prune: fn(&mut K),
    router: ChangeRouter,
    notify: F,
) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    F: Fn(&Event<K>, &mut Vec<Change>) + Send + 'static,
{
    let (reader, writer) = reflector::store();
    // What the controller never reads is dropped before caching.
    let stream = watcher(api, cfg).default_backoff().modify(prune);
    let stream = reflector::reflector(writer, stream);
    tasks.spawn(drive(what, stream, router, notify));
    reader
}

async fn drive<K, S, F>(what: &'static str, stream: S, router: ChangeRouter, notify: F)
where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
    F: Fn(&Event<K>, &mut Vec<Change>),
{
    let mut stream = std::pin::pin!(stream);
    let mut changes = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(ev) => {
                notify(&ev, &mut changes);
                // Back-pressure: the next watch event is taken only once
                // the session has room for these.
                for change in changes.drain(..) {
                    router.send(change).await;
                }
            }
            // The watcher retries with backoff (and relists on 410 Gone);
            // errors are only reported.
            Err(error) => tracing::warn!(resource = what, %error, "watch failed, retrying"),
        }
    }
}

use kube::runtime::watcher::watcher;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn svc(i: usize) -> Change {
        Change::Service(("ns".into(), format!("s{i}")))
    }

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
                    {"port": 443}
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
                    {"type": crate::service_status::CONDITION_TYPE, "status": "True", "reason": "AllocationSucceeded",
                     "message": "", "observedGeneration": 3, "lastTransitionTime": "2026-01-02T03:04:05Z"}
                ]
            }
        }))
        .expect("a Service")
    }

    #[test]
    fn the_slim_service_reads_the_same_to_the_controller() {
        use ferrolb_allocator::annotations as keys;
        use crate::service_status::{Current, POOL_ANNOTATION};
        for etp in ["Local", "Cluster"] {
            let full = full_service(etp);
            let mut slim = full.clone();
            slim_service(&mut slim);
            let (a, b) = (ferrolb_config::view::service_view(&full), ferrolb_config::view::service_view(&slim));
            // What the allocation rules derive from the view is unchanged.
            assert_eq!(b.backend_key(), a.backend_key(), "{etp}");
            assert_eq!(b.sharing_key(), a.sharing_key());
            assert_eq!(b.requested_pool(), a.requested_pool());
            assert_eq!(b.desired_ips(), a.desired_ips());
            assert_eq!(b.port_set(), a.port_set());
            assert_eq!(b.family(), a.family());
            assert_eq!(b.deprecated_annotation_keys().collect::<Vec<_>>(), a.deprecated_annotation_keys().collect::<Vec<_>>());
            for key in [
                keys::ADDRESS_POOL, keys::ADDRESS_POOL_DEPRECATED, keys::LOADBALANCER_IPS, keys::LOADBALANCER_IPS_DEPRECATED,
                keys::ALLOW_SHARED_IP, keys::ALLOW_SHARED_IP_DEPRECATED, keys::IP_ALLOCATED_FROM_POOL, POOL_ANNOTATION,
            ] {
                assert_eq!(b.annotations.get(key), a.annotations.get(key), "{key}");
            }
            // Every other view field is copied as is.
            let same = |v: &ferrolb_allocator::ServiceView| {
                let mut v = v.clone();
                v.annotations.clear();
                v.selector.clear();
                v
            };
            assert_eq!(same(&b), same(&a));
            // What the status writer compares and the precondition it sends.
            assert_eq!(Current::of(&slim), Current::of(&full));
            assert_eq!(slim.object_ref(&()), full.object_ref(&()), "the Events' object reference");
            assert_eq!(id_of(&slim), id_of(&full));
            assert_eq!(slim.metadata.creation_timestamp, full.metadata.creation_timestamp);
            // And what is dropped.
            let annotations = slim.metadata.annotations.as_ref().expect("metallb annotations kept");
            assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
            assert!(!annotations.contains_key("example.com/other"));
            assert_eq!(annotations.len(), 5, "the five metallb.io and metallb.universe.tf ones");
            assert!(slim.metadata.managed_fields.is_none() && slim.metadata.finalizers.is_none());
            assert!(slim.metadata.owner_references.is_none());
            let spec = slim.spec.as_ref().expect("spec");
            assert_eq!(spec.selector.is_some(), etp == "Local", "the selector only where it is read");
            assert!(spec.session_affinity.is_none() && spec.health_check_node_port.is_none());
            assert!(spec.ports.iter().flatten().all(|p| p.name.is_none() && p.node_port.is_none() && p.target_port.is_none()));
            let status = slim.status.as_ref().expect("status");
            assert_eq!(status.conditions.as_ref().map(Vec::len), Some(1), "only ferrolb's condition");
            let ingress = status.load_balancer.as_ref().and_then(|lb| lb.ingress.as_ref()).expect("ingress");
            assert_eq!(ingress.len(), 2, "an item without an IP still counts");
            assert!(ingress.iter().all(|i| i.ip_mode.is_none() && i.ports.is_none() && i.hostname.is_none()));
        }
    }

    #[test]
    fn a_bare_service_stays_bare() {
        let mut s = Service::default();
        s.metadata.name = Some("a".into());
        let before = s.clone();
        slim_service(&mut s);
        assert_eq!(s, before);
    }

    #[tokio::test]
    async fn a_full_channel_makes_the_sender_wait_and_loses_nothing() {
        let router = ChangeRouter::with_capacity(4);
        // Nobody listens: sends return at once.
        router.send(svc(0)).await;
        let mut rx = router.subscribe();
        for i in 0..4 {
            router.send(svc(i)).await;
        }
        let sender = router.clone();
        let blocked = tokio::spawn(async move {
            for i in 4..10 {
                sender.send(svc(i)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!blocked.is_finished(), "the sender waits for room");
        assert_eq!(rx.len(), 4, "the channel holds no more than its bound");
        let mut got = Vec::new();
        while got.len() < 10 {
            got.push(rx.recv().await.expect("change"));
        }
        blocked.await.expect("sender");
        assert_eq!(got, (0..10).map(svc).collect::<Vec<_>>(), "every change arrives, in order");
        // A session that ended (receiver dropped) does not block reflectors.
        drop(rx);
        tokio::time::timeout(Duration::from_secs(1), router.send(svc(11))).await.expect("no wait on a closed channel");
        router.unsubscribe();
        router.send(svc(12)).await;
    }
}
