//! Keeping the served certificate and the registered caBundle in step with
//! the certificate Secret, the single source of truth for every replica.
//!
//! Each round a replica reads the Secret. A usable bundle there is adopted
//! (served, its `ca.crt` injected), whoever wrote it. A missing or unusable one
//! is replaced with a conditional write (create, or update at the
//! resourceVersion read); a replica that loses that race reads the Secret again
//! and adopts the winner's bundle. So two replicas starting together on a
//! first install end with one certificate, and the caBundle only ever holds
//! what the Secret holds: it never alternates between replicas.

use std::sync::Arc;
use std::time::SystemTime;

use kube::Client;
use rustls::crypto::CryptoProvider;

use crate::certs::{self, CertBundle, RENEW_BEFORE};
use crate::inject::{self, CertStore, InjectError};
use crate::options::CertTiming;
use crate::tls::CertResolver;

/// Conditional writes lost in a row before a round gives up (each loss means
/// another replica just wrote a bundle, which the next read adopts).
const MAX_WRITE_RACES: usize = 3;

/// Where the caBundle goes.
#[derive(Clone, Debug)]
pub struct InjectTargets {
    pub webhook_configuration: String,
    pub conversion_crd: String,
}

pub struct CertSync {
    pub store: CertStore,
    pub targets: InjectTargets,
    pub timing: CertTiming,
    client: Client,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    /// What the resolver serves; its `ca_cert_pem` is what was injected.
    current: Option<CertBundle>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Cluster(#[from] InjectError),
    #[error(transparent)]
    Cert(#[from] certs::CertError),
    #[error(transparent)]
    KeyPair(#[from] crate::tls::KeyPairError),
    #[error("the certificate Secret kept changing under {MAX_WRITE_RACES} writes in a row")]
    Contended,
}

impl CertSync {
    pub fn new(
        store: CertStore,
        targets: InjectTargets,
        timing: CertTiming,
        client: Client,
        provider: Arc<CryptoProvider>,
        resolver: Arc<CertResolver>,
    ) -> Self {
        CertSync { store, targets, timing, client, provider, resolver, current: None }
    }

    /// The CA bundle this replica injected last (None before the first round).
    pub fn ca_bundle(&self) -> Option<&str> {
        self.current.as_ref().map(|b| b.ca_cert_pem.as_str())
    }

    /// The first round, at start: after it a certificate is always being
    /// served. Without access to the Secret a generated one is served from
    /// memory (and injected, so a lone replica still works); later rounds
    /// persist or replace it once the Secret is reachable.
    pub async fn start(&mut self) -> Result<(), SyncError> {
        if let Err(e) = self.round().await {
            tracing::warn!(error = %e, "webhook certificate not persisted; using an in-memory one");
            let bundle = certs::generate(&self.store.sans, SystemTime::now())?;
            self.adopt(bundle).await?;
        }
        Ok(())
    }

    /// Runs rounds forever, every `timing.sync_every`.
    pub async fn run(mut self) {
        loop {
            tokio::time::sleep(self.timing.sync_every).await;
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "webhook certificate upkeep failed; retrying");
            }
        }
    }

    /// One round: adopt the Secret's bundle, or replace an unusable one.
    async fn round(&mut self) -> Result<(), SyncError> {
        let fresh_until = SystemTime::now() + RENEW_BEFORE;
        for _ in 0..MAX_WRITE_RACES {
            let existing = self.store.read(&self.client).await?;
            let stored = existing.as_ref().and_then(inject::bundle_from_secret);
            if let Some(bundle) = stored {
                match certs::check_bundle(&bundle, &self.store.sans, fresh_until, &self.provider) {
                    Ok(()) => return self.adopt(bundle).await,
                    Err(why) => tracing::info!(reason = %why, "replacing the stored webhook certificate"),
                }
            }
            let replacement = self.replacement(fresh_until)?;
            match self.store.store(&self.client, existing, &replacement).await {
                Ok(()) => return self.adopt(replacement).await,
                Err(e) if e.is_conflict() => {
                    tracing::debug!("another replica wrote the webhook certificate first; adopting it");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(SyncError::Contended)
    }

    /// What to write when the Secret holds nothing usable: the bundle being
    /// served if it is still fresh (the Secret was deleted, or could not be
    /// written before), else a new one whose `ca.crt` also trusts the CA of
    /// the certificate still being served, so the injected bundle covers
    /// every replica while they switch.
    fn replacement(&self, fresh_until: SystemTime) -> Result<CertBundle, SyncError> {
        if let Some(current) = &self.current
            && certs::check_bundle(current, &self.store.sans, fresh_until, &self.provider).is_ok()
        {
            return Ok(current.clone());
        }
        let mut bundle = certs::generate(&self.store.sans, SystemTime::now())?;
        if let Some(serving_ca) = self.current.as_ref().and_then(|c| certs::first_pem_certificate(&c.ca_cert_pem)) {
            bundle.ca_cert_pem.push_str(serving_ca);
        }
        Ok(bundle)
    }

    /// Injects `bundle`'s CA, then serves its certificate. When the certificate
    /// changes under a running server, the API server first gets
    /// `rotation_overlap` to pick up the new caBundle.
    async fn adopt(&mut self, bundle: CertBundle) -> Result<(), SyncError> {
        self.inject(&bundle.ca_cert_pem).await;
        let changed = self.current.as_ref().is_none_or(|c| c.serving != bundle.serving);
        if changed {
            let key = bundle.serving.certified_key(&self.provider)?;
            if self.current.is_some() {
                tokio::time::sleep(self.timing.rotation_overlap).await;
                tracing::info!("webhook certificate switched to the one in the Secret");
            }
            self.resolver.set(key);
        }
        self.current = Some(bundle);
        Ok(())
    }

    async fn inject(&self, ca_pem: &str) {
        let t = &self.targets;
        match inject::inject_ca_bundle(&self.client, &t.webhook_configuration, &t.conversion_crd, ca_pem).await {
            Ok(done) if done != Default::default() => tracing::info!(
                webhook_configuration = done.webhook_configuration,
                crd = done.crd,
                "webhook caBundle updated"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhook caBundle not updated"),
        }
    }
}
