use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::discovery::{ApiCapabilities, Scope, pinned_kind};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::error::{Error, Result, kube};
use crate::wait::wait_for;

/// Field manager of every server-side apply made by the harness.
pub const FIELD_MANAGER: &str = "ferrolb-test-harness";

/// How long a CRD may take to become Established and served. Generous: on a
/// loaded two-core machine the apiserver rebuilds its OpenAPI on each CRD.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);

/// A DNS-1123 label unique within this machine's test runs, for namespaces
/// and other objects of tests that share one fixture.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("{}-{n}-{:x}", std::process::id(), nanos & 0xff_ffff);
    let prefix: String = prefix
        .chars()
        .take(63 - suffix.len() - 1)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned();
    format!("{prefix}-{suffix}")
}

pub async fn create_namespace(client: &Client, name: &str) -> Result<Namespace> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .map_err(kube(format!("creating namespace {name}")))
}

/// Creates a Node object (nothing runs on it: the fixture has no kubelet).
/// Nodes are cluster-scoped, so tests sharing a fixture need distinct names.
pub async fn create_node(client: &Client, name: &str, labels: &[(&str, &str)]) -> Result<Node> {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .map_err(kube(format!("creating node {name}")))
}

/// Splits multi-document YAML, dropping empty documents.
fn parse_documents(yaml: &str) -> Result<Vec<Value>> {
    let docs: Vec<Option<Value>> =
        serde_saphyr::from_str_multiple(yaml).map_err(|source| Error::Yaml {
            context: "parsing multi-document YAML".into(),
            source: Box::new(source),
        })?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter(|d| !d.is_null())
        .collect())
}

/// Server-side applies every document of `yaml` (any kind, CRDs and custom
/// resources included), in order; namespaced objects without a namespace go
/// to the client's default namespace. A CRD is waited for until Established
/// and served before the next document, so a YAML stream may define a CRD
/// and then use it. Returns the objects as the server stored them.
pub async fn apply_yaml(client: &Client, yaml: &str) -> Result<Vec<DynamicObject>> {
    apply_yaml_in(client, client.default_namespace(), yaml).await
}

/// [`apply_yaml`] with an explicit namespace for documents that name none.
pub async fn apply_yaml_in(
    client: &Client,
    namespace: &str,
    yaml: &str,
) -> Result<Vec<DynamicObject>> {
    let mut resolved = HashMap::new();
    let mut applied = Vec::new();
    for (index, doc) in parse_documents(yaml)?.into_iter().enumerate() {
        let obj: DynamicObject = serde_json::from_value(doc).map_err(|source| Error::Json {
            context: format!("document {index} is not a Kubernetes object"),
            source,
        })?;
        let types = obj.types.as_ref().ok_or_else(|| {
            Error::Manifest(format!("document {index} has no apiVersion and kind"))
        })?;
        let gvk = GroupVersionKind::try_from(types).map_err(|e| {
            Error::Manifest(format!(
                "document {index}: bad apiVersion {:?}: {e}",
                types.api_version
            ))
        })?;
        let name = obj.metadata.name.clone().ok_or_else(|| {
            Error::Manifest(format!(
                "document {index} ({}) has no metadata.name",
                gvk.kind
            ))
        })?;
        let what = format!("{} {name}", gvk.kind);
        let (resource, caps) = resolve(client, &gvk, &mut resolved).await?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                obj.metadata.namespace.as_deref().unwrap_or(namespace),
                &resource,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let stored = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await
            .map_err(kube(format!("applying {what} (document {index})")))?;
        if gvk.group == "apiextensions.k8s.io" && gvk.kind == "CustomResourceDefinition" {
            wait_crds_established(client, &[name.as_str()], CRD_TIMEOUT).await?;
        }
        applied.push(stored);
    }
    Ok(applied)
}

/// Maps a kind to its REST resource through API discovery. A kind of a CRD
/// applied moments ago may not be in discovery yet, hence the retries.
async fn resolve(
    client: &Client,
    gvk: &GroupVersionKind,
    cache: &mut HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
) -> Result<(ApiResource, ApiCapabilities)> {
    if let Some(hit) = cache.get(gvk) {
        return Ok(hit.clone());
    }
    let deadline = Instant::now() + CRD_TIMEOUT;
    loop {
        match pinned_kind(client, gvk).await {
            Ok(found) => {
                cache.insert(gvk.clone(), found.clone());
                return Ok(found);
            }
            Err(source) if Instant::now() >= deadline => {
                return Err(Error::Kube {
                    context: format!(
                        "discovering {}/{} {} for {CRD_TIMEOUT:?} (no such kind served?)",
                        gvk.group, gvk.version, gvk.kind
                    ),
                    source: Box::new(source),
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Server-side applies the CustomResourceDefinitions in `yaml` and waits
/// until every one is Established and served. Documents of other kinds are
/// rejected: this is for CRD manifests, [`apply_yaml`] for anything else.
pub async fn install_crds(client: &Client, yaml: &str) -> Result<Vec<CustomResourceDefinition>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut installed = Vec::new();
    for (index, doc) in parse_documents(yaml)?.into_iter().enumerate() {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind != "CustomResourceDefinition" {
            return Err(Error::Manifest(format!(
                "document {index} is a {kind:?}, not a CustomResourceDefinition"
            )));
        }
        let crd: CustomResourceDefinition =
            serde_json::from_value(doc).map_err(|source| Error::Json {
                context: format!("document {index} is not a valid CustomResourceDefinition"),
                source,
            })?;
        let name = crd.name_any();
        let stored = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .map_err(kube(format!("applying CustomResourceDefinition {name}")))?;
        installed.push(stored);
    }
    let names: Vec<String> = installed.iter().map(ResourceExt::name_any).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    wait_crds_established(client, &names, CRD_TIMEOUT).await?;
    Ok(installed)
}

/// Waits until each named CRD has condition Established=True and the kinds
/// of all its served versions are in API discovery (only then can custom
/// resources of it be created).
pub async fn wait_crds_established(
    client: &Client,
    names: &[&str],
    timeout: Duration,
) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in names {
        let crd = wait_for(
            &format!("CustomResourceDefinition {name} to be Established"),
            timeout,
            || async {
                let crd = api.get_opt(name).await.ok()??;
                let established = crd
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(crd)
            },
        )
        .await?;
        let group = crd.spec.group.clone();
        let kind = crd.spec.names.kind.clone();
        for version in crd.spec.versions.iter().filter(|v| v.served) {
            let gvk = GroupVersionKind::gvk(&group, &version.name, &kind);
            wait_for(
                &format!("discovery to serve {group}/{} {kind}", version.name),
                timeout,
                || async { pinned_kind(client, &gvk).await.ok() },
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_distinct_valid_labels() {
        let a = unique_name("svc");
        let b = unique_name("svc");
        assert_ne!(a, b);
        let long = unique_name(&"x".repeat(100));
        for n in [&a, &b, &long] {
            assert!(n.len() <= 63, "{n} too long");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
            assert!(!n.starts_with('-') && !n.ends_with('-'), "{n}");
        }
        assert!(a.starts_with("svc-"), "{a}");
    }

    #[test]
    fn multi_document_yaml_splits_and_skips_empty_documents() {
        let docs = parse_documents(
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: \"1\"\n",
        )
        .expect("valid YAML");
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert_eq!(docs[0]["kind"], "Namespace");
        assert_eq!(docs[1]["data"]["k"], "1");
    }

    #[test]
    fn broken_yaml_is_an_error_with_context() {
        let err = parse_documents("a: [unclosed\n").unwrap_err();
        assert!(err.to_string().contains("multi-document YAML"), "{err}");
    }
}
