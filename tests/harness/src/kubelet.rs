//! Objects a kubelet and the EndpointSlice controller would write, which the
//! fixture (no kubelet, no controller manager) never does by itself: Nodes
//! with addresses and a Ready condition, speaker Pods that are Running on a
//! node, EndpointSlices with endpoints on given nodes. Status goes through
//! the status subresource, as the real writers do.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result, kube};
use crate::resources::FIELD_MANAGER;

/// Labels of MetalLB's speaker Pods (its manifests, and what the speakers'
/// `--ml-labels` select for memberlist discovery).
pub const SPEAKER_POD_LABELS: [(&str, &str); 2] = [("app", "metallb"), ("component", "speaker")];

/// `app=metallb,component=speaker`, the `--ml-labels` value.
pub fn speaker_label_selector() -> String {
    SPEAKER_POD_LABELS
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn labels_object(labels: &[(&str, &str)]) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect::<Map<_, _>>(),
    )
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn condition(type_: &str, status: bool, reason: &str) -> Value {
    let t = now();
    json!({
        "type": type_,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "lastHeartbeatTime": t,
        "lastTransitionTime": t,
    })
}

/// Creates (or takes over) Node `name` with `labels`, then writes its status
/// as a kubelet does: `InternalIP` addresses, a `Hostname`, and conditions
/// `Ready=True` and `NetworkUnavailable=False`.
pub async fn create_ready_node(
    client: &Client,
    name: &str,
    labels: &[(&str, &str)],
    addresses: &[IpAddr],
) -> Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let mut all_labels = vec![
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
    ];
    all_labels.extend_from_slice(labels);
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": labels_object(&all_labels) },
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&node),
    )
    .await
    .map_err(kube(format!("creating node {name}")))?;
    let mut addrs: Vec<Value> = addresses
        .iter()
        .map(|a| json!({"type": "InternalIP", "address": a.to_string()}))
        .collect();
    addrs.push(json!({"type": "Hostname", "address": name}));
    let status = json!({
        "status": {
            "addresses": addrs,
            "conditions": [
                condition("Ready", true, "KubeletReady"),
                condition("NetworkUnavailable", false, "RouteCreated"),
            ],
        }
    });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(kube(format!("writing the status of node {name}")))
}

/// Sets one condition of a Node (`Ready`, `NetworkUnavailable`, ...),
/// keeping the others. Conditions are a list without a merge key for a merge
/// patch, so the whole list is read and written back.
pub async fn set_node_condition(
    client: &Client,
    name: &str,
    type_: &str,
    status: bool,
) -> Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let node = api
        .get(name)
        .await
        .map_err(kube(format!("reading node {name}")))?;
    let mut conditions: Vec<Value> = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != type_)
        .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
        .filter(|v| !v.is_null())
        .collect();
    conditions.push(condition(type_, status, "SetByTest"));
    let patch = json!({"status": {"conditions": conditions}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube(format!("setting condition {type_} of node {name}")))
}

/// Sets (`Some`) or removes (`None`) labels of a Node.
pub async fn label_node(
    client: &Client,
    name: &str,
    labels: &[(&str, Option<&str>)],
) -> Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let labels: Map<String, Value> = labels
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                v.map_or(Value::Null, |v| Value::String(v.to_owned())),
            )
        })
        .collect();
    let patch = json!({"metadata": {"labels": labels}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube(format!("labelling node {name}")))
}

pub async fn delete_node(client: &Client, name: &str) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    api.delete(name, &DeleteParams::default())
        .await
        .map_err(kube(format!("deleting node {name}")))?;
    Ok(())
}

/// Creates a speaker Pod `name` in `namespace` bound to `node`, labelled as
/// MetalLB's ([`SPEAKER_POD_LABELS`]), host network, and writes its status
/// as the kubelet would: Running, Ready, `podIP(s)` and `hostIP(s)` = the
/// node's addresses (a host-network Pod has the node's IPs).
pub async fn create_speaker_pod(
    client: &Client,
    namespace: &str,
    name: &str,
    node: &str,
    node_ips: &[IpAddr],
) -> Result<Pod> {
    let first = node_ips
        .first()
        .ok_or_else(|| Error::Manifest(format!("speaker pod {name} needs at least one IP")))?;
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels_object(&SPEAKER_POD_LABELS),
        },
        "spec": {
            "nodeName": node,
            "hostNetwork": true,
            "serviceAccountName": "speaker",
            "containers": [{
                "name": "speaker",
                "image": "quay.io/metallb/speaker:v0.16.2",
                "ports": [{"name": "memberlist-tcp", "containerPort": 7946, "protocol": "TCP"}],
            }],
        },
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&pod),
    )
    .await
    .map_err(kube(format!("creating pod {namespace}/{name}")))?;
    let ips: Vec<Value> = node_ips
        .iter()
        .map(|ip| json!({"ip": ip.to_string()}))
        .collect();
    let t = now();
    let status = json!({
        "status": {
            "phase": "Running",
            "podIP": first.to_string(),
            "podIPs": ips,
            "hostIP": first.to_string(),
            "hostIPs": ips,
            "startTime": t,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                {"type": "Ready", "status": "True", "lastTransitionTime": t},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": t},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
            ],
            "containerStatuses": [{
                "name": "speaker",
                "image": "quay.io/metallb/speaker:v0.16.2",
                "imageID": "",
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": t}},
            }],
        }
    });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(kube(format!(
            "writing the status of pod {namespace}/{name}"
        )))
}

/// Deletes a Pod at once (grace period 0): without a kubelet a graceful
/// delete would leave it Terminating for ever.
pub async fn delete_pod(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    api.delete(name, &params)
        .await
        .map_err(kube(format!("deleting pod {namespace}/{name}")))?;
    Ok(())
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointOnNode {
    pub address: IpAddr,
    /// `nodeName` of the endpoint.
    pub node: String,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

impl EndpointOnNode {
    /// A ready, serving endpoint (a healthy Pod) on `node`.
    pub fn ready(address: IpAddr, node: &str) -> EndpointOnNode {
        EndpointOnNode {
            address,
            node: node.to_owned(),
            ready: true,
            serving: true,
            terminating: false,
        }
    }
}

/// Creates or replaces EndpointSlice `slice` of Service `service` (label
/// `kubernetes.io/service-name`, as the EndpointSlice controller writes it)
/// with `endpoints`, one port `http`/TCP `port`. The address type follows the
/// endpoints' family (IPv4 when there are none); mixing families is an
/// error, as in the API.
pub async fn apply_endpoint_slice(
    client: &Client,
    namespace: &str,
    service: &str,
    slice: &str,
    endpoints: &[EndpointOnNode],
    port: u16,
) -> Result<EndpointSlice> {
    let v6 = endpoints.first().is_some_and(|e| e.address.is_ipv6());
    if endpoints.iter().any(|e| e.address.is_ipv6() != v6) {
        return Err(Error::Manifest(format!(
            "EndpointSlice {slice}: endpoints of both families"
        )));
    }
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|e| {
            json!({
                "addresses": [e.address.to_string()],
                "nodeName": e.node,
                "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating},
            })
        })
        .collect();
    let object = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice,
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": if v6 { "IPv6" } else { "IPv4" },
        "endpoints": eps,
        "ports": [{"name": "http", "protocol": "TCP", "port": port}],
    });
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    api.patch(
        slice,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .map_err(kube(format!("applying EndpointSlice {namespace}/{slice}")))
}

pub async fn delete_endpoint_slice(client: &Client, namespace: &str, slice: &str) -> Result<()> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    api.delete(slice, &DeleteParams::default())
        .await
        .map_err(kube(format!("deleting EndpointSlice {namespace}/{slice}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaker_selector_is_metallbs() {
        assert_eq!(speaker_label_selector(), "app=metallb,component=speaker");
    }

    #[test]
    fn conditions_carry_kubelet_fields() {
        let c = condition("Ready", false, "KubeletNotReady");
        assert_eq!(c["status"], "False");
        assert_eq!(c["type"], "Ready");
        assert!(
            c["lastTransitionTime"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
}
