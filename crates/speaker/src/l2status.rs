//! ServiceL2Status objects (speaker.md §5.1): which node announces each
//! Service. A pure plan (what to create, update and delete) and the requests
//! that carry it out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ferrolb_allocator::ServiceKey;
use ferrolb_api::labels;
use ferrolb_api::v1beta1::{InterfaceInfo, MetalLBServiceL2Status, ServiceL2Status, ServiceL2StatusSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use crate::cluster::L2StatusFacts;

/// One request against the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L2StatusOp {
    Create { service: ServiceKey, interfaces: Vec<String> },
    SetInterfaces { name: String, service: ServiceKey, interfaces: Vec<String> },
    Delete { name: String, service: ServiceKey },
}

impl L2StatusOp {
    pub fn service(&self) -> &ServiceKey {
        match self {
            L2StatusOp::Create { service, .. } | L2StatusOp::SetInterfaces { service, .. } | L2StatusOp::Delete { service, .. } => service,
        }
    }
}

/// What makes the objects agree with `announced` (Service → interfaces,
/// empty = all) for this node, per Service: exactly one object per announced
/// Service, labelled with this node, every other object of that Service
/// deleted (other nodes' too: this node is the owner now); this node's
/// objects of Services it does not announce deleted. Services needing no
/// request are left out.
pub fn plan<'a>(
    node: &str,
    announced: &BTreeMap<ServiceKey, Vec<String>>,
    current: impl IntoIterator<Item = &'a L2StatusFacts>,
) -> BTreeMap<ServiceKey, Vec<L2StatusOp>> {
    let mut by_service: BTreeMap<&ServiceKey, Vec<&L2StatusFacts>> = BTreeMap::new();
    for facts in current {
        by_service.entry(&facts.service).or_default().push(facts);
    }
    let services: BTreeSet<&ServiceKey> = announced.keys().chain(by_service.keys().copied()).collect();
    services
        .into_iter()
        .filter_map(|service| {
            let objects = by_service.get(service).map(Vec::as_slice).unwrap_or_default();
            let ops = plan_service(node, service, announced.get(service).map(Vec::as_slice), objects);
            (!ops.is_empty()).then(|| (service.clone(), ops))
        })
        .collect()
}

/// [`plan`] for one Service: `announced` is `Some(interfaces)` when this node
/// announces it; `objects` are the Service's ServiceL2Status objects.
pub fn plan_service(node: &str, service: &ServiceKey, announced: Option<&[String]>, objects: &[&L2StatusFacts]) -> Vec<L2StatusOp> {
    let mut ops = Vec::new();
    let Some(interfaces) = announced else {
        for own in objects.iter().filter(|f| f.node == node) {
            ops.push(L2StatusOp::Delete { name: own.name.clone(), service: service.clone() });
        }
        return ops;
    };
    let mine = objects.iter().filter(|f| f.node == node).min_by(|a, b| a.name.cmp(&b.name));
    match mine {
        Some(kept) if sorted(&kept.interfaces) != sorted(interfaces) => ops.push(L2StatusOp::SetInterfaces {
            name: kept.name.clone(),
            service: service.clone(),
            interfaces: sorted(interfaces),
        }),
        Some(_) => {}
        None => ops.push(L2StatusOp::Create { service: service.clone(), interfaces: sorted(interfaces) }),
    }
    let kept = mine.map(|k| k.name.as_str());
    for other in objects.iter().filter(|f| Some(f.name.as_str()) != kept) {
        ops.push(L2StatusOp::Delete { name: other.name.clone(), service: service.clone() });
    }
    ops
}

fn sorted(names: &[String]) -> Vec<String> {
    names.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
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
    written: BTreeMap<String, (L2StatusFacts, Instant)>,
    /// Objects deleted, by name.
    deleted: BTreeMap<String, Instant>,
}

impl Unseen {
    /// Records a successful `op`; `created` is the name the API server gave
    /// a created object.
    pub fn record(&mut self, node: &str, op: &L2StatusOp, created: Option<String>, now: Instant) {
        let (name, service, interfaces) = match op {
            L2StatusOp::Create { service, interfaces } => match created {
                Some(name) => (name, service, interfaces),
                None => return,
            },
            L2StatusOp::SetInterfaces { name, service, interfaces } => (name.clone(), service, interfaces),
            L2StatusOp::Delete { name, .. } => {
                self.written.remove(name);
                self.deleted.insert(name.clone(), now);
                return;
            }
        };
        let facts = L2StatusFacts { name: name.clone(), node: node.to_string(), service: service.clone(), interfaces: interfaces.clone() };
        self.deleted.remove(&name);
        self.written.insert(name, (facts, now));
    }

    /// Forgets what `cache` (the watch's objects) already shows, and what is
    /// older than the expiry.
    pub fn settle<'a>(&mut self, cache: impl IntoIterator<Item = &'a L2StatusFacts>, now: Instant) {
        if self.written.is_empty() && self.deleted.is_empty() {
            return;
        }
        let cached: BTreeMap<&str, &L2StatusFacts> = cache.into_iter().map(|f| (f.name.as_str(), f)).collect();
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < UNSEEN_EXPIRY;
        self.written.retain(|name, (facts, at)| fresh(at) && cached.get(name.as_str()).is_none_or(|c| !same(c, facts)));
        self.deleted.retain(|name, at| fresh(at) && cached.contains_key(name.as_str()));
    }

    /// The objects as they are after this node's writes: `cache` with the
    /// unseen writes laid over it.
    pub fn effective<'a>(&'a self, cache: impl IntoIterator<Item = &'a L2StatusFacts>) -> Vec<&'a L2StatusFacts> {
        cache
            .into_iter()
            .filter(|f| !self.deleted.contains_key(&f.name) && !self.written.contains_key(&f.name))
            .chain(self.written.values().map(|(f, _)| f))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.deleted.is_empty()
    }
}

fn same(a: &L2StatusFacts, b: &L2StatusFacts) -> bool {
    a.node == b.node && a.service == b.service && sorted(&a.interfaces) == sorted(&b.interfaces)
}

/// Carries out one operation in `namespace`. A Delete of an object that is
/// already gone succeeds. Returns the name of a created object.
pub async fn apply(
    client: &Client,
    namespace: &str,
    node: &str,
    owner: Option<&OwnerReference>,
    op: &L2StatusOp,
) -> Result<Option<String>, kube::Error> {
    let api: Api<ServiceL2Status> = Api::namespaced(client.clone(), namespace);
    match op {
        L2StatusOp::Create { service, interfaces } => {
            let obj = ServiceL2Status {
                metadata: ObjectMeta {
                    generate_name: Some("l2-".into()),
                    namespace: Some(namespace.into()),
                    labels: Some(
                        [
                            (labels::NODE.to_string(), node.to_string()),
                            (labels::SERVICE_NAME.to_string(), service.name.clone()),
                            (labels::SERVICE_NAMESPACE.to_string(), service.namespace.clone()),
                        ]
                        .into(),
                    ),
                    owner_references: owner.map(|o| vec![o.clone()]),
                    ..ObjectMeta::default()
                },
                spec: ServiceL2StatusSpec::default(),
                status: None,
            };
            let created = api.create(&PostParams::default(), &obj).await?;
            let name = created.metadata.name.unwrap_or_default();
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status_body(node, service, interfaces)))
                .await?;
            Ok(Some(name))
        }
        L2StatusOp::SetInterfaces { name, service, interfaces } => {
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(status_body(node, service, interfaces)))
                .await?;
            Ok(None)
        }
        L2StatusOp::Delete { name, .. } => match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                tracing::debug!(object = %name, error = %e, "ServiceL2Status already gone");
                Ok(None)
            }
            Err(e) => Err(e),
        },
    }
}

fn status_body(node: &str, service: &ServiceKey, interfaces: &[String]) -> serde_json::Value {
    let status = MetalLBServiceL2Status {
        node: node.to_string(),
        service_name: service.name.clone(),
        service_namespace: service.namespace.clone(),
        interfaces: interfaces.iter().map(|name| InterfaceInfo { name: name.clone() }).collect(),
    };
    // A merge patch replaces lists whole, so an emptied interface list must be
    // sent as [] rather than left out.
    let mut value = serde_json::json!({ "status": status });
    value["status"]["interfaces"] = serde_json::json!(status.interfaces);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(name: &str, node: &str, svc: &str, ifaces: &[&str]) -> L2StatusFacts {
        L2StatusFacts {
            name: name.into(),
            node: node.into(),
            service: ServiceKey::new("default", svc),
            interfaces: ifaces.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn owner_keeps_one_object_and_deletes_the_rest() {
        let announced = BTreeMap::from([(ServiceKey::new("default", "web"), vec![])]);
        let current = vec![facts("l2-b", "n1", "web", &[]), facts("l2-a", "n2", "web", &[]), facts("l2-c", "n1", "web", &[])];
        let ops: Vec<L2StatusOp> = plan("n1", &announced, &current).into_values().flatten().collect();
        assert_eq!(
            ops,
            vec![
                L2StatusOp::Delete { name: "l2-a".into(), service: ServiceKey::new("default", "web") },
                L2StatusOp::Delete { name: "l2-c".into(), service: ServiceKey::new("default", "web") },
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
        let ops: Vec<L2StatusOp> = plan("n1", &announced, &current).into_values().flatten().collect();
        assert_eq!(
            ops,
            vec![
                L2StatusOp::Delete { name: "l2-2".into(), service: ServiceKey::new("default", "gone") },
                L2StatusOp::SetInterfaces {
                    name: "l2-1".into(),
                    service: ServiceKey::new("default", "moved"),
                    interfaces: vec!["eth0".into()]
                },
                L2StatusOp::Create { service: ServiceKey::new("default", "new"), interfaces: vec!["eth0".into(), "eth1".into()] },
            ]
        );
    }

    #[test]
    fn nothing_to_do_when_in_agreement() {
        let announced = BTreeMap::from([(ServiceKey::new("default", "web"), vec!["eth0".to_string()])]);
        assert!(plan("n1", &announced, &[facts("l2-1", "n1", "web", &["eth0"])]).is_empty());
    }

    #[test]
    fn own_writes_count_until_the_watch_shows_them() {
        let web = ServiceKey::new("default", "web");
        let announced = BTreeMap::from([(web.clone(), vec!["eth0".to_string()])]);
        let t0 = Instant::now();
        let mut unseen = Unseen::default();
        let cache: Vec<L2StatusFacts> = vec![facts("l2-old", "n2", "web", &[])];

        // Before the create is seen, the plan must not create a second object.
        let create = L2StatusOp::Create { service: web.clone(), interfaces: vec!["eth0".into()] };
        unseen.record("n1", &create, Some("l2-new".into()), t0);
        unseen.record("n1", &L2StatusOp::Delete { name: "l2-old".into(), service: web.clone() }, None, t0);
        unseen.settle(&cache, t0);
        assert!(plan("n1", &announced, unseen.effective(&cache)).is_empty());

        // The watch shows the create but not yet the delete: still nothing to do.
        let caught_up = vec![facts("l2-old", "n2", "web", &[]), facts("l2-new", "n1", "web", &["eth0"])];
        unseen.settle(&caught_up, t0);
        assert!(plan("n1", &announced, unseen.effective(&caught_up)).is_empty());
        assert!(!unseen.is_empty(), "the delete is not seen yet");

        // Both seen: nothing left to remember.
        let done = vec![facts("l2-new", "n1", "web", &["eth0"])];
        unseen.settle(&done, t0);
        assert!(unseen.is_empty());
        assert!(plan("n1", &announced, unseen.effective(&done)).is_empty());
    }

    #[test]
    fn unseen_writes_expire() {
        let web = ServiceKey::new("default", "web");
        let announced = BTreeMap::from([(web.clone(), vec![])]);
        let t0 = Instant::now();
        let mut unseen = Unseen::default();
        unseen.record("n1", &L2StatusOp::Create { service: web.clone(), interfaces: vec![] }, Some("l2-x".into()), t0);
        // The watch relisted across the write and the object is gone: once the
        // entry expires, the plan creates one again.
        unseen.settle(&[], t0 + UNSEEN_EXPIRY);
        assert!(unseen.is_empty());
        let ops = plan("n1", &announced, unseen.effective(&[]));
        assert_eq!(ops[&web], vec![L2StatusOp::Create { service: web.clone(), interfaces: vec![] }]);
    }
}
