//! MetalLB-compatible admission webhooks (observability.md §6): the validating
//! endpoints for every metallb.io kind and the BGPPeer conversion endpoint,
//! served over HTTPS with a generated (or supplied) certificate.
//!
//! Entry point: [`serve`]. The binary flattens [`WebhookArgs`] and [`TlsArgs`]
//! into its commands and builds a [`ServeOptions`].

pub mod admission;
pub mod certs;
pub mod check;
pub mod cluster;
pub mod convert;
pub mod endpoints;
pub mod idle;
pub mod inject;
pub mod options;
pub mod policy;
pub mod server;
pub mod tls;
pub mod upkeep;

pub use options::{CertTiming, ServeOptions, WebhookArgs};
pub use server::{ServeError, WebhookServer};
pub use tls::TlsArgs;

/// Serves the webhooks until `shutdown` resolves: loads or generates the
/// certificate, keeps the caBundle of `metallb-webhook-configuration` (and of
/// the BGPPeer CRD's conversion webhook) in step with it, and answers
/// admission and conversion reviews.
pub async fn serve(
    opts: ServeOptions,
    client: kube::Client,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let server = WebhookServer::bind(opts, client).await?;
    server.run(shutdown).await.map_err(ServeError::Io)
}
