//! ServiceL2Status objects (speaker.md §5.1): which node announces each
//! Service. A pure plan (what to create, update and delete) and the requests
//! that carry it out.

use std::collections::{BTreeMap, BTreeSet};

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
/// empty = all) for this node: exactly one object per announced Service,
/// labelled with this node, every other object of that Service deleted
/// (other nodes' too: this node is the owner now); this node's objects of
/// Services it does not announce deleted.
pub fn plan(node: &str, announced: &BTreeMap<ServiceKey, Vec<String>>, current: &[L2StatusFacts]) -> Vec<L2StatusOp> {
    let mut by_service: BTreeMap<&ServiceKey, Vec<&L2StatusFacts>> = BTreeMap::new();
    for facts in current {
        by_service.entry(&facts.service).or_default().push(facts);
    }
    let mut ops = Vec::new();
    for (service, interfaces) in announced {
        let objects = by_service.remove(service).unwrap_or_default();
        let mut mine = objects.iter().filter(|f| f.node == node).min_by(|a, b| a.name.cmp(&b.name));
        match mine {
            Some(kept) if sorted(&kept.interfaces) != sorted(interfaces) => ops.push(L2StatusOp::SetInterfaces {
                name: kept.name.clone(),
                service: service.clone(),
                interfaces: sorted(interfaces),
            }),
            Some(_) => {}
            None => ops.push(L2StatusOp::Create { service: service.clone(), interfaces: sorted(interfaces) }),
        }
        let kept = mine.take().map(|k| k.name.as_str());
        for other in objects.iter().filter(|f| Some(f.name.as_str()) != kept) {
            ops.push(L2StatusOp::Delete { name: other.name.clone(), service: service.clone() });
        }
    }
    for (service, objects) in by_service {
        for own in objects.iter().filter(|f| f.node == node) {
            ops.push(L2StatusOp::Delete { name: own.name.clone(), service: service.clone() });
        }
    }
    ops
}

fn sorted(names: &[String]) -> Vec<String> {
    names.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

/// Carries out one operation in `namespace`. A Delete of an object that is
/// already gone succeeds.
pub async fn apply(
    client: &Client,
    namespace: &str,
    node: &str,
    owner: Option<&OwnerReference>,
    op: &L2StatusOp,
) -> Result<(), kube::Error> {
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
            Ok(())
        }
        L2StatusOp::SetInterfaces { name, service, interfaces } => {
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(status_body(node, service, interfaces)))
                .await?;
            Ok(())
        }
        L2StatusOp::Delete { name, .. } => match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
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
        let ops = plan("n1", &announced, &current);
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
        let ops = plan("n1", &announced, &current);
        assert_eq!(
            ops,
            vec![
                L2StatusOp::SetInterfaces {
                    name: "l2-1".into(),
                    service: ServiceKey::new("default", "moved"),
                    interfaces: vec!["eth0".into()]
                },
                L2StatusOp::Create { service: ServiceKey::new("default", "new"), interfaces: vec!["eth0".into(), "eth1".into()] },
                L2StatusOp::Delete { name: "l2-2".into(), service: ServiceKey::new("default", "gone") },
            ]
        );
    }

    #[test]
    fn nothing_to_do_when_in_agreement() {
        let announced = BTreeMap::from([(ServiceKey::new("default", "web"), vec!["eth0".to_string()])]);
        assert!(plan("n1", &announced, &[facts("l2-1", "n1", "web", &["eth0"])]).is_empty());
    }
}
