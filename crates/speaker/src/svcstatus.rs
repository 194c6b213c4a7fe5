//! The per-node status objects of a Service (speaker.md §5):
//! ServiceL2Status (which node announces it) and ServiceBGPStatus (which
//! peers each node advertises it to). One pure plan (what to create, update
//! and delete), the memory of writes the watch has not shown yet, and the
//! requests; [`StatusKind`] holds what differs between the two kinds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_allocator::ServiceKey;
use ferrolb_api::labels;
use ferrolb_api::v1beta1::{
    InterfaceInfo, MetalLBServiceBGPStatus, MetalLBServiceL2Status, ServiceBGPStatus, ServiceBGPStatusSpec, ServiceL2Status,
    ServiceL2StatusSpec,
};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::intern;
use crate::watch::ObjectKey;

/// One status object as the plan reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusFacts {
    /// Shared with the watch's key.
    pub name: Arc<str>,
    /// The `metallb.io/node` label (the writer), shared ([`intern::node`]).
    pub node: Arc<str>,
    pub service: ServiceKey,
    /// Interfaces (layer 2) or peers (BGP).
    pub items: Items,
}

/// Whose objects a node manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Layer 2: one node announces a Service, and it deletes the objects
    /// other nodes left for it (§5.1 step 2).
    OneNode,
    /// BGP: every advertising node keeps its own object (§5.2).
    PerNode,
}

/// What differs between ServiceL2Status and ServiceBGPStatus.
pub trait StatusKind: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static {
    /// `generateName` of created objects.
    const GENERATE_NAME: &'static str;
    const OWNERSHIP: Ownership;
    fn empty(meta: ObjectMeta) -> Self;
    /// The status patch; lists are sent whole, an empty one as `[]` (a
    /// merge patch replaces lists, and a left-out field would stay).
    fn status_body(node: &str, service: &ServiceKey, items: &[Arc<str>]) -> serde_json::Value;
    fn items(&self) -> Vec<String>;
}

impl StatusKind for ServiceL2Status {
    const GENERATE_NAME: &'static str = "l2-";
    const OWNERSHIP: Ownership = Ownership::OneNode;
    fn empty(metadata: ObjectMeta) -> Self {
        ServiceL2Status { metadata, spec: ServiceL2StatusSpec::default(), status: None }
    }
    fn status_body(node: &str, service: &ServiceKey, items: &[Arc<str>]) -> serde_json::Value {
        let status = MetalLBServiceL2Status {
            node: node.to_string(),
            service_name: service.name.to_string(),
            service_namespace: service.namespace.to_string(),
            interfaces: items.iter().map(|name| InterfaceInfo { name: name.to_string() }).collect(),
        };
        let mut value = serde_json::json!({ "status": status });
        value["status"]["interfaces"] = serde_json::json!(status.interfaces);
        value
    }
    fn items(&self) -> Vec<String> {
        self.status.iter().flat_map(|s| s.interfaces.iter().map(|i| i.name.clone())).collect()
    }
}

impl StatusKind for ServiceBGPStatus {
    const GENERATE_NAME: &'static str = "bgp-";
    const OWNERSHIP: Ownership = Ownership::PerNode;
    fn empty(metadata: ObjectMeta) -> Self {
        ServiceBGPStatus { metadata, spec: ServiceBGPStatusSpec::default(), status: None }
    }
    fn status_body(node: &str, service: &ServiceKey, items: &[Arc<str>]) -> serde_json::Value {
        let status = MetalLBServiceBGPStatus {
            node: node.to_string(),
            service_name: service.name.to_string(),
            service_namespace: service.namespace.to_string(),
            peers: items.iter().map(|peer| peer.to_string()).collect(),
        };
        let mut value = serde_json::json!({ "status": status });
        value["status"]["peers"] = serde_json::json!(status.peers);
        value
    }
    fn items(&self) -> Vec<String> {
        self.status.iter().flat_map(|s| s.peers.iter().cloned()).collect()
    }
}

/// The watch's projection of a status object (`key` its key): those without
/// the labels naming node and Service are not ours to manage.
pub fn facts<K: StatusKind>(key: &ObjectKey, obj: &K) -> Option<StatusFacts> {
    let l = obj.labels();
    Some(StatusFacts {
        name: key.name.clone(),
        node: intern::node(l.get(labels::NODE)?),
        service: ServiceKey::new(intern::namespace(l.get(labels::SERVICE_NAMESPACE)?), l.get(labels::SERVICE_NAME)?.as_str()),
        items: intern::items(&obj.items()),
    })
}

/// The interfaces (layer 2) or peers (BGP) a node announces a Service on, as
/// its object should show them. Shared names: the BGP decision's peer names
/// are one allocation each, however many Services go to the peer.
pub type Items = Arc<[Arc<str>]>;

/// One request against the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusOp {
    Create { service: ServiceKey, items: Items },
    SetItems { name: String, service: ServiceKey, items: Items },
    Delete { name: String, service: ServiceKey },
}

impl StatusOp {
    pub fn service(&self) -> &ServiceKey {
        match self {
            StatusOp::Create { service, .. } | StatusOp::SetItems { service, .. } | StatusOp::Delete { service, .. } => service,
        }
    }
}

/// What makes the objects agree with `announced` (Service → interfaces or
/// peers) for this node, per Service: exactly one object per announced
/// Service, labelled with this node, every other object of that Service
/// deleted (with [`Ownership::OneNode`], other nodes' too: this node is the
/// owner now); this node's objects of Services it does not announce
/// deleted. Services needing no request are left out.
///
/// Each Service's requests go to `emit` as they are planned, in key order,
/// rather than into one map: at the first pass every Service needs a
/// request, and a whole plan held beside the writer's queue was a copy of
/// every key and request more at the speaker's peak (10,000 Services,
/// docs/benchmarks-bgp.md).
pub fn plan_each<'a>(
    ownership: Ownership,
    node: &str,
    announced: &'a BTreeMap<ServiceKey, Items>,
    current: impl IntoIterator<Item = &'a StatusFacts>,
    mut emit: impl FnMut(&'a ServiceKey, Vec<StatusOp>),
) {
    let mut by_service: BTreeMap<&ServiceKey, Vec<&StatusFacts>> = BTreeMap::new();
    for facts in current {
        if ownership == Ownership::OneNode || &*facts.node == node {
            by_service.entry(&facts.service).or_default().push(facts);
        }
    }
    let services: BTreeSet<&ServiceKey> = announced.keys().chain(by_service.keys().copied()).collect();
    for service in services {
        let objects = by_service.get(service).map(Vec::as_slice).unwrap_or_default();
        let ops = plan_service(ownership, node, service, announced.get(service), objects);
        if !ops.is_empty() {
            emit(service, ops);
        }
    }
}

/// [`plan_each`] collected by Service.
#[cfg(test)]
pub fn plan<'a>(
    ownership: Ownership,
    node: &str,
    announced: &'a BTreeMap<ServiceKey, Vec<String>>,
    current: impl IntoIterator<Item = &'a StatusFacts>,
) -> BTreeMap<ServiceKey, Vec<StatusOp>> {
    let announced: BTreeMap<ServiceKey, Items> =
        announced.iter().map(|(k, items)| (k.clone(), items.iter().map(|i| Arc::from(i.as_str())).collect())).collect();
    let current: Vec<StatusFacts> = current.into_iter().cloned().collect();
    let mut plan = BTreeMap::new();
    plan_each(ownership, node, &announced, &current, |service, ops| {
        plan.insert(service.clone(), ops);
    });
    plan
}

/// [`plan`] for one Service: `announced` is `Some(items)` when this node
/// announces it; `objects` are the Service's status objects.
pub fn plan_service(
    ownership: Ownership,
    node: &str,
    service: &ServiceKey,
    announced: Option<&Items>,
    objects: &[&StatusFacts],
) -> Vec<StatusOp> {
    let objects: Vec<&StatusFacts> = objects.iter().copied().filter(|f| ownership == Ownership::OneNode || &*f.node == node).collect();
    let delete = |f: &&StatusFacts| StatusOp::Delete { name: f.name.to_string(), service: service.clone() };
    let Some(items) = announced else {
        return exact(None, objects.iter().filter(|f| &*f.node == node), delete);
    };
    let mine = objects.iter().filter(|f| &*f.node == node).min_by(|a, b| a.name.cmp(&b.name));
    let write = match mine {
        Some(kept) if sorted(&kept.items) != sorted(items) => {
            Some(StatusOp::SetItems { name: kept.name.to_string(), service: service.clone(), items: in_order(items) })
        }
        Some(_) => None,
        None => Some(StatusOp::Create { service: service.clone(), items: in_order(items) }),
    };
    let kept = mine.map(|k| &*k.name);
    exact(write, objects.iter().filter(|f| Some(&*f.name) != kept), delete)
}

/// `first`, then `to_op` of each of `rest`, in a Vec of exactly their
/// number: the writer queues one per Service, and one grown by pushes has
/// room for four requests where one is the rule (a third of a MiB per 1,000
/// Services).
fn exact<'f, I>(first: Option<StatusOp>, rest: I, to_op: impl FnMut(&'f &'f StatusFacts) -> StatusOp) -> Vec<StatusOp>
where
    I: Iterator<Item = &'f &'f StatusFacts> + Clone,
{
    let mut ops = Vec::with_capacity(usize::from(first.is_some()) + rest.clone().count());
    ops.extend(first);
    ops.extend(rest.map(to_op));
    ops
}

fn sorted(names: &[Arc<str>]) -> Vec<&str> {
    names.iter().map(|n| &**n).collect::<BTreeSet<&str>>().into_iter().collect()
}

/// `items` sorted, each once: the same list when it already is (the BGP
/// decision's peer lists are), so a request shares it.
fn in_order(items: &Items) -> Items {
    if items.windows(2).all(|w| w[0] < w[1]) {
        return items.clone();
    }
    sorted(items).into_iter().map(Arc::from).collect()
}

/// How long a write of ours may stay unseen by the watch before it is no
/// longer assumed: a watch shows a write within milliseconds, but one that
/// relisted across it would otherwise never clear the entry.
const UNSEEN_EXPIRY: Duration = Duration::from_secs(60);

/// This node's finished writes that the ServiceL2Status watch has not shown
/// yet. Planning from the watch alone would repeat them: a Service whose
/// object was just created would get a second one (then a delete).
#[derive(Debug, Default)]
pub struct Unseen {
    /// Objects created or updated, as written, by name.
    written: BTreeMap<String, (StatusFacts, Instant)>,
    /// Objects deleted, by name.
    deleted: BTreeMap<String, Instant>,
    /// Bumped when [`Self::settle`] forgets a write, which changes the
    /// effective objects of a Service nobody is writing to.
    settled: u64,
}

impl Unseen {
    /// Records a successful `op`; `created` is the name the API server gave
    /// a created object.
    pub fn record(&mut self, node: &str, op: &StatusOp, created: Option<String>, now: Instant) {
        let (name, service, items) = match op {
            StatusOp::Create { service, items } => match created {
                Some(name) => (name, service, items),
                None => return,
            },
            StatusOp::SetItems { name, service, items } => (name.clone(), service, items),
            StatusOp::Delete { name, .. } => {
                self.written.remove(name);
                self.deleted.insert(name.clone(), now);
                return;
            }
        };
        let facts = StatusFacts { name: Arc::from(name.as_str()), node: intern::node(node), service: service.clone(), items: items.clone() };
        self.deleted.remove(&name);
        self.written.insert(name, (facts, now));
    }

    /// Forgets what `cache` (the watch's objects) already shows, and what is
    /// older than the expiry.
    pub fn settle<'a>(&mut self, cache: impl IntoIterator<Item = &'a StatusFacts>, now: Instant) {
        if self.written.is_empty() && self.deleted.is_empty() {
            return;
        }
        let cached: BTreeMap<&str, &StatusFacts> = cache.into_iter().map(|f| (&*f.name, f)).collect();
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < UNSEEN_EXPIRY;
        let before = self.written.len() + self.deleted.len();
        self.written.retain(|name, (facts, at)| fresh(at) && cached.get(name.as_str()).is_none_or(|c| !same(c, facts)));
        self.deleted.retain(|name, at| fresh(at) && cached.contains_key(name.as_str()));
        if self.written.len() + self.deleted.len() != before {
            self.settled += 1;
        }
    }

    /// Counts the calls of [`Self::settle`] that forgot something.
    pub fn settled(&self) -> u64 {
        self.settled
    }

    /// The objects as they are after this node's writes: `cache` with the
    /// unseen writes laid over it.
    pub fn effective<'a>(&'a self, cache: impl IntoIterator<Item = &'a StatusFacts>) -> Vec<&'a StatusFacts> {
        cache
            .into_iter()
            .filter(|f| !self.deleted.contains_key(&*f.name) && !self.written.contains_key(&*f.name))
            .chain(self.written.values().map(|(f, _)| f))
            .collect()
    }

    /// [`Self::effective`] for one Service: after each write, so it looks
    /// at that Service's objects only (the scan of `cache` compares keys
    /// and allocates nothing for the others).
    pub fn effective_for<'a>(&'a self, cache: impl IntoIterator<Item = &'a StatusFacts>, service: &ServiceKey) -> Vec<&'a StatusFacts> {
        let of_service = cache.into_iter().filter(|f| f.service == *service);
        let written = self.written.values().map(|(f, _)| f).filter(|f| f.service == *service);
        of_service.filter(|f| !self.deleted.contains_key(&*f.name) && !self.written.contains_key(&*f.name)).chain(written).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.deleted.is_empty()
    }
}

fn same(a: &StatusFacts, b: &StatusFacts) -> bool {
    a.node == b.node && a.service == b.service && sorted(&a.items) == sorted(&b.items)
}

/// Carries out one operation in `namespace`. A Delete of an object that is
/// already gone succeeds. Returns the name of a created object.
pub async fn apply<K: StatusKind>(
    client: &Client,
    namespace: &str,
    node: &str,
    owner: Option<&OwnerReference>,
    op: &StatusOp,
) -> Result<Option<String>, kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match op {
        StatusOp::Create { service, items } => {
            let obj = K::empty(ObjectMeta {
                generate_name: Some(K::GENERATE_NAME.into()),
                namespace: Some(namespace.into()),
                labels: Some(
                    [
                        (labels::NODE.to_string(), node.to_string()),
                        (labels::SERVICE_NAME.to_string(), service.name.to_string()),
                        (labels::SERVICE_NAMESPACE.to_string(), service.namespace.to_string()),
                    ]
                    .into(),
                ),
                owner_references: owner.map(|o| vec![o.clone()]),
                ..ObjectMeta::default()
            });
            let created = api.create(&PostParams::default(), &obj).await?;
            let name = created.name_any();
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(K::status_body(node, service, items))).await?;
            Ok(Some(name))
        }
        StatusOp::SetItems { name, service, items } => {
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(K::status_body(node, service, items))).await?;
            Ok(None)
        }
        StatusOp::Delete { name, .. } => match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                tracing::debug!(object = %name, kind = %K::kind(&()), error = %e, "status object already gone");
                Ok(None)
            }
            Err(e) => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(names: &[&str]) -> Items {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    fn facts(name: &str, node: &str, svc: &str, items: &[&str]) -> StatusFacts {
        StatusFacts {
            name: name.into(),
            node: node.into(),
            service: ServiceKey::new("default", svc),
            items: items.iter().map(|s| Arc::from(*s)).collect(),
        }
    }

    #[test]
    fn owner_keeps_one_object_and_deletes_the_rest() {
        let announced = BTreeMap::from([(ServiceKey::new("default", "web"), vec![])]);
        let current = vec![facts("l2-b", "n1", "web", &[]), facts("l2-a", "n2", "web", &[]), facts("l2-c", "n1", "web", &[])];
        let ops: Vec<StatusOp> = plan(Ownership::OneNode, "n1", &announced, &current).into_values().flatten().collect();
        assert_eq!(
            ops,
            vec![
                StatusOp::Delete { name: "l2-a".into(), service: ServiceKey::new("default", "web") },
                StatusOp::Delete { name: "l2-c".into(), service: ServiceKey::new("default", "web") },
            ]
        );
    }

    #[test]
    fn creates_updates_and_drops_own_objects_only() {
        let announced = BTreeMap::from([
            (ServiceKey::new("default", "new"), vec!["eth1".to_string(), "eth0".to_string()]),
            (ServiceKey::new("default", "moved"), vec!["eth0".to_string()]),
        ]);
        let current = vec![
            facts("l2-1", "n1", "moved", &[]),
            facts("l2-2", "n1", "gone", &[]),
            facts("l2-3", "n2", "elsewhere", &[]),
        ];
        let ops: Vec<StatusOp> = plan(Ownership::OneNode, "n1", &announced, &current).into_values().flatten().collect();
        assert_eq!(
            ops,
            vec![
                StatusOp::Delete { name: "l2-2".into(), service: ServiceKey::new("default", "gone") },
                StatusOp::SetItems {
                    name: "l2-1".into(),
                    service: ServiceKey::new("default", "moved"),
                    items: items(&["eth0"])
                },
                StatusOp::Create { service: ServiceKey::new("default", "new"), items: items(&["eth0", "eth1"]) },
            ]
        );
    }

    #[test]
    fn bgp_nodes_keep_their_own_objects_and_leave_the_others() {
        let web = ServiceKey::new("default", "web");
        let announced = BTreeMap::from([(web.clone(), vec!["r2".to_string(), "r1".to_string()])]);
        let current = vec![facts("bgp-a", "n2", "web", &["r1"]), facts("bgp-b", "n1", "web", &["r1"]), facts("bgp-c", "n1", "web", &["r1"])];
        let ops: Vec<StatusOp> = plan(Ownership::PerNode, "n1", &announced, &current).into_values().flatten().collect();
        assert_eq!(
            ops,
            vec![
                StatusOp::SetItems { name: "bgp-b".into(), service: web.clone(), items: items(&["r1", "r2"]) },
                StatusOp::Delete { name: "bgp-c".into(), service: web.clone() },
            ]
        );
        // No longer advertised from n1: only n1's objects go.
        let ops: Vec<StatusOp> = plan(Ownership::PerNode, "n1", &BTreeMap::new(), &current).into_values().flatten().collect();
        assert_eq!(
            ops,
            vec![StatusOp::Delete { name: "bgp-b".into(), service: web.clone() }, StatusOp::Delete { name: "bgp-c".into(), service: web }]
        );
    }

    #[test]
    fn nothing_to_do_when_in_agreement() {
        let announced = BTreeMap::from([(ServiceKey::new("default", "web"), vec!["eth0".to_string()])]);
        assert!(plan(Ownership::OneNode, "n1", &announced, &[facts("l2-1", "n1", "web", &["eth0"])]).is_empty());
    }

    #[test]
    fn own_writes_count_until_the_watch_shows_them() {
        let web = ServiceKey::new("default", "web");
        let announced = BTreeMap::from([(web.clone(), vec!["eth0".to_string()])]);
        let t0 = Instant::now();
        let mut unseen = Unseen::default();
        let cache: Vec<StatusFacts> = vec![facts("l2-old", "n2", "web", &[])];

        // Before the create is seen, the plan must not create a second object.
        let create = StatusOp::Create { service: web.clone(), items: items(&["eth0"]) };
        unseen.record("n1", &create, Some("l2-new".into()), t0);
        unseen.record("n1", &StatusOp::Delete { name: "l2-old".into(), service: web.clone() }, None, t0);
        unseen.settle(&cache, t0);
        assert!(plan(Ownership::OneNode, "n1", &announced, unseen.effective(&cache)).is_empty());

        // The watch shows the create but not yet the delete: still nothing to do.
        let caught_up = vec![facts("l2-old", "n2", "web", &[]), facts("l2-new", "n1", "web", &["eth0"])];
        unseen.settle(&caught_up, t0);
        assert!(plan(Ownership::OneNode, "n1", &announced, unseen.effective(&caught_up)).is_empty());
        assert!(!unseen.is_empty(), "the delete is not seen yet");

        // Both seen: nothing left to remember.
        let done = vec![facts("l2-new", "n1", "web", &["eth0"])];
        unseen.settle(&done, t0);
        assert!(unseen.is_empty());
        assert!(plan(Ownership::OneNode, "n1", &announced, unseen.effective(&done)).is_empty());
    }

    #[test]
    fn unseen_writes_expire() {
        let web = ServiceKey::new("default", "web");
        let announced = BTreeMap::from([(web.clone(), vec![])]);
        let t0 = Instant::now();
        let mut unseen = Unseen::default();
        unseen.record("n1", &StatusOp::Create { service: web.clone(), items: items(&[]) }, Some("l2-x".into()), t0);
        // The watch relisted across the write and the object is gone: once the
        // entry expires, the plan creates one again.
        unseen.settle(&[], t0 + UNSEEN_EXPIRY);
        assert!(unseen.is_empty());
        let ops = plan(Ownership::OneNode, "n1", &announced, unseen.effective(&[]));
        assert_eq!(ops[&web], vec![StatusOp::Create { service: web.clone(), items: items(&[]) }]);
    }

    #[test]
    fn effective_for_one_service_is_effective_filtered_to_it() {
        let (web, db) = (ServiceKey::new("default", "web"), ServiceKey::new("default", "db"));
        let t0 = Instant::now();
        let cache = vec![
            facts("bgp-a", "n1", "web", &["p1"]),
            facts("bgp-b", "n1", "db", &["p1"]),
            facts("bgp-c", "n2", "web", &["p2"]),
            facts("bgp-d", "n1", "web", &["p3"]),
        ];
        let mut unseen = Unseen::default();
        unseen.record("n1", &StatusOp::SetItems { name: "bgp-a".into(), service: web.clone(), items: items(&["p9"]) }, None, t0);
        unseen.record("n1", &StatusOp::Delete { name: "bgp-d".into(), service: web.clone() }, None, t0);
        unseen.record("n1", &StatusOp::Create { service: db.clone(), items: items(&[]) }, Some("bgp-e".into()), t0);
        for service in [&web, &db, &ServiceKey::new("other", "none")] {
            let mut whole: Vec<&StatusFacts> = unseen.effective(&cache).into_iter().filter(|f| f.service == *service).collect();
            let mut one = unseen.effective_for(&cache, service);
            whole.sort_by(|a, b| a.name.cmp(&b.name));
            one.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(one, whole, "{service}");
        }
        let names: Vec<&str> = unseen.effective_for(&cache, &web).iter().map(|f| &*f.name).collect();
        assert_eq!(names, vec!["bgp-c", "bgp-a"], "bgp-a as written, bgp-d deleted");
    }
}
