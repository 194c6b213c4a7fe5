//! The owner reference a component puts on the objects it writes for
//! itself (ConfigurationState, ServiceL2Status): its own Pod, so they are
//! collected with it.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::Api;
use kube::{Client, Resource};

/// Reference to the Pod `pod_name` in `namespace`; `None` (with a warning)
/// when no name is given or the Pod cannot be read: the objects are then
/// written without an owner rather than not at all.
pub async fn pod_owner(client: &Client, namespace: &str, pod_name: Option<&str>) -> Option<OwnerReference> {
    let name = pod_name.filter(|n| !n.is_empty())?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.get_opt(name).await {
        Ok(Some(pod)) => pod.controller_owner_ref(&()).map(|mut o| {
            // A plain reference: the Pod neither controls these objects nor
            // blocks on their deletion.
            o.controller = None;
            o.block_owner_deletion = None;
            o
        }),
        Ok(None) => {
            tracing::warn!(pod = name, "own Pod not found: objects written get no owner reference");
            None
        }
        Err(error) => {
            tracing::warn!(pod = name, %error, "reading own Pod failed: objects written get no owner reference");
            None
        }
    }
}
