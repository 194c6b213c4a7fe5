//! [`Cluster`] over a kube client: plain LIST requests to the API server.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject, ListParams};
use kube::Client;
use serde_json::Value;

use crate::endpoints::Kind;
use crate::policy::Cluster;

#[derive(Clone)]
pub struct KubeCluster {
    client: Client,
    namespace: String,
}

impl KubeCluster {
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        KubeCluster { client, namespace: namespace.into() }
    }
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

impl Cluster for KubeCluster {
    async fn list(&self, kind: Kind) -> Result<Vec<Value>, String> {
        let resource = kind.api_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
        let list = api.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let mut items = Vec::with_capacity(list.items.len());
        for mut item in list.items {
            // List items of custom resources usually carry apiVersion/kind, but
            // the typed parsers downstream need them, so make sure.
            item.types = Some(kube::api::TypeMeta {
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
            });
            items.push(serde_json::to_value(item).map_err(|e| e.to_string())?);
        }
        // The API server lists in key (= name) order; sorting keeps that
        // guarantee explicit (observability.md §6.1).
        items.sort_by(|a, b| name_of(a).cmp(name_of(b)));
        Ok(items)
    }

    async fn nodes(&self) -> Result<Vec<Value>, String> {
        let api: Api<Node> = Api::all(self.client.clone());
        let list = api.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        list.items
            .into_iter()
            .map(|n| {
                // Typed list items come back without apiVersion/kind.
                let mut v = serde_json::to_value(&n).map_err(|e| e.to_string())?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("apiVersion".into(), "v1".into());
                    o.insert("kind".into(), "Node".into());
                }
                Ok(v)
            })
            .collect()
    }
}
