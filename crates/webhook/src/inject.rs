//! Keeping the cluster in step with the generated certificate: the Secret that
//! stores it (so a restart reuses it) and the caBundle fields the API server
//! uses to trust the webhook (observability.md §6.1).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;

use crate::certs::{self, CertBundle};
use crate::tls::PemPair;

pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("{what}: {source}")]
    Kube { what: String, source: kube::Error },
    #[error(transparent)]
    Cert(#[from] certs::CertError),
}

impl InjectError {
    /// A 409 from the API server: the object was created or changed by
    /// someone else since it was read.
    pub fn is_conflict(&self) -> bool {
        matches!(self, InjectError::Kube { source: kube::Error::Api(status), .. } if status.code == 409)
    }
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> InjectError {
    let what = what.into();
    move |source| InjectError::Kube { what, source }
}

/// The bundle stored in a Secret, if it has all four keys in UTF-8.
pub fn bundle_from_secret(secret: &Secret) -> Option<CertBundle> {
    let data = secret.data.as_ref()?;
    let get = |k: &str| data.get(k).and_then(|b| String::from_utf8(b.0.clone()).ok());
    Some(CertBundle {
        ca_cert_pem: get(CA_CERT_KEY)?,
        ca_key_pem: get(CA_KEY_KEY)?,
        serving: PemPair { cert_pem: get(TLS_CERT_KEY)?, key_pem: get(TLS_KEY_KEY)? },
    })
}

fn secret_data(b: &CertBundle) -> BTreeMap<String, ByteString> {
    [
        (CA_CERT_KEY, &b.ca_cert_pem),
        (CA_KEY_KEY, &b.ca_key_pem),
        (TLS_CERT_KEY, &b.serving.cert_pem),
        (TLS_KEY_KEY, &b.serving.key_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect()
}

/// Where the generated certificate lives and what it must cover.
#[derive(Clone, Debug)]
pub struct CertStore {
    pub namespace: String,
    pub secret_name: String,
    pub sans: Vec<String>,
}

impl CertStore {
    /// Writes `bundle` into the Secret. `existing` is the Secret as last read
    /// (its resourceVersion guards against overwriting a concurrent writer).
    pub async fn store(
        &self,
        client: &Client,
        existing: Option<Secret>,
        bundle: &CertBundle,
    ) -> Result<(), InjectError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        let what = format!("Secret {}/{}", self.namespace, self.secret_name);
        match existing {
            Some(mut s) => {
                s.data = Some(secret_data(bundle));
                s.string_data = None;
                api.replace(&self.secret_name, &PostParams::default(), &s)
                    .await
                    .map_err(kube_err(format!("updating {what}")))?;
            }
            None => {
                let s = Secret {
                    metadata: ObjectMeta {
                        name: Some(self.secret_name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    data: Some(secret_data(bundle)),
                    ..Secret::default()
                };
                api.create(&PostParams::default(), &s)
                    .await
                    .map_err(kube_err(format!("creating {what}")))?;
            }
        }
        Ok(())
    }

    /// Re-reads the Secret (for a rotation after a failed first write).
    pub async fn read(&self, client: &Client) -> Result<Option<Secret>, InjectError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        api.get_opt(&self.secret_name)
            .await
            .map_err(kube_err(format!("reading Secret {}/{}", self.namespace, self.secret_name)))
    }
}

/// What was changed by one [`inject_ca_bundle`] call.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Injected {
    pub webhook_configuration: bool,
    pub crd: bool,
}

/// Updates lost to a concurrent writer in a row before giving up until the
/// next round.
const MAX_UPDATE_RACES: usize = 3;

/// Writes `ca_pem` into every webhook's `clientConfig.caBundle` of the
/// ValidatingWebhookConfiguration and into the conversion webhook of the CRD,
/// where they exist and differ. Missing objects are not an error: the webhook
/// configuration may be applied after the controller starts (the periodic
/// re-run catches it). An update that loses to a concurrent writer (another
/// replica injecting the same bundle, a re-applied manifest) is re-read and
/// retried.
pub async fn inject_ca_bundle(
    client: &Client,
    webhook_configuration: &str,
    crd: &str,
    ca_pem: &str,
) -> Result<Injected, InjectError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match inject_once(client, webhook_configuration, crd, ca_pem).await {
            Err(e) if e.is_conflict() && attempt < MAX_UPDATE_RACES => {
                tracing::debug!(error = %e, "caBundle update raced another writer; retrying");
            }
            other => return other,
        }
    }
}

async fn inject_once(
    client: &Client,
    webhook_configuration: &str,
    crd: &str,
    ca_pem: &str,
) -> Result<Injected, InjectError> {
    let wanted = ByteString(ca_pem.as_bytes().to_vec());
    let mut done = Injected::default();

    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let what = format!("ValidatingWebhookConfiguration {webhook_configuration}");
    if let Some(mut vwc) = vwcs.get_opt(webhook_configuration).await.map_err(kube_err(format!("reading {what}")))? {
        let mut changed = false;
        for hook in vwc.webhooks.iter_mut().flatten() {
            if hook.client_config.ca_bundle.as_ref() != Some(&wanted) {
                hook.client_config.ca_bundle = Some(wanted.clone());
                changed = true;
            }
        }
        if changed {
            vwcs.replace(webhook_configuration, &PostParams::default(), &vwc)
                .await
                .map_err(kube_err(format!("updating {what}")))?;
            done.webhook_configuration = true;
        }
    }

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let what = format!("CustomResourceDefinition {crd}");
    if let Some(mut def) = crds.get_opt(crd).await.map_err(kube_err(format!("reading {what}")))? {
        let client_config = def
            .spec
            .conversion
            .as_mut()
            .filter(|c| c.strategy == "Webhook")
            .and_then(|c| c.webhook.as_mut())
            .and_then(|w| w.client_config.as_mut());
        if let Some(cc) = client_config.filter(|cc| cc.ca_bundle.as_ref() != Some(&wanted)) {
            cc.ca_bundle = Some(wanted);
            crds.replace(crd, &PostParams::default(), &def)
                .await
                .map_err(kube_err(format!("updating {what}")))?;
            done.crd = true;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn secret_round_trip() {
        let b = certs::generate(&["a.b.svc".into()], SystemTime::now()).unwrap();
        let s = Secret { data: Some(secret_data(&b)), ..Secret::default() };
        assert_eq!(bundle_from_secret(&s), Some(b));
        let mut partial = s.clone();
        partial.data.as_mut().unwrap().remove(CA_KEY_KEY);
        assert_eq!(bundle_from_secret(&partial), None);
        assert_eq!(bundle_from_secret(&Secret::default()), None);
    }
}
