//! The memberlist Secret (controller.md §1 step 6): speakers read its
//! `secretkey` to authenticate their gossip. Created once at start-up when
//! missing, owned by the controller's Deployment; an existing one is never
//! touched, so a key chosen by the operator survives.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::error::ControllerError;

/// The one key of the Secret.
pub const SECRET_KEY: &str = "secretkey";

/// Random bytes behind the key, as MetalLB draws them.
const KEY_BYTES: usize = 16;

/// What [`ensure_secret`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// The Secret existed (or another replica created it at the same moment).
    Existed,
}

/// A fresh key: 16 random bytes in standard base64 without padding (22
/// characters), the text MetalLB stores.
pub fn new_key() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; KEY_BYTES];
    getrandom::fill(&mut raw)?;
    Ok(STANDARD_NO_PAD.encode(raw))
}

/// Creates Secret `name` in `namespace` unless it exists, owned by
/// Deployment `deployment` of the same namespace. Every failure is a
/// start-up error (MetalLB exits 1).
pub async fn ensure_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    deployment: &str,
) -> Result<Outcome, ControllerError> {
    let fail = |message: String| ControllerError::MemberlistSecret {
        namespace: namespace.to_string(),
        name: name.to_string(),
        message,
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match secrets.get_opt(name).await {
        Ok(Some(_)) => return Ok(Outcome::Existed),
        Ok(None) => {}
        Err(error) => return Err(fail(format!("reading it: {error}"))),
    }
    if deployment.is_empty() {
        return Err(fail("--deployment (METALLB_DEPLOYMENT) must name the owning Deployment".into()));
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let owner = deployments
        .get(deployment)
        .await
        .map_err(|error| fail(format!("reading Deployment {deployment}: {error}")))?;
    let uid = owner
        .metadata
        .uid
        .ok_or_else(|| fail(format!("Deployment {deployment} has no uid")))?;
    let key = new_key().map_err(|error| fail(format!("drawing random bytes: {error}")))?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: deployment.to_string(),
                uid,
                ..Default::default()
            }]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(SECRET_KEY.to_string(), ByteString(key.into_bytes()))])),
        ..Default::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(%namespace, secret = name, "created the memberlist Secret");
            Ok(Outcome::Created)
        }
        // Another replica won the race: its key stands.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::Existed),
        Err(error) => Err(fail(format!("creating it: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_22_base64_characters_and_differ() {
        let a = new_key().unwrap();
        let b = new_key().unwrap();
        assert_eq!(a.len(), 22);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/'), "{a}");
        assert_eq!(STANDARD_NO_PAD.decode(&a).unwrap().len(), KEY_BYTES);
        assert_ne!(a, b);
    }
}
