//! From MetalLB objects to a validated [`Config`] (crds.md, all validation tables and
//! §10 whole-configuration rules).
//!
//! Unlike upstream, which stops at the first failing check, every independent error
//! is collected; each names its object and field. Objects are processed in
//! `metadata.name` order (§10.1), which decides which object an order-dependent
//! error (overlap, local preference) names.

mod bfd;
mod bgp_adv;
mod communities;
mod l2;
mod mode;
mod nodes;
mod peers;
mod pools;
#[cfg(test)]
mod tests;
mod types;

pub use bgp_adv::advertisements_compatible;
pub use types::*;

use crate::error::ConfigError;
use ferrolb_allocator::PoolDef;
use ferrolb_api::v1beta1::{BFDProfile, BGPAdvertisement, Community, IPAddressPool};
use ferrolb_api::{v1beta1, v1beta2::BGPPeer};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// `METALLB_BGP_TYPE`: which implementation-specific checks apply (§10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BgpMode {
    #[default]
    Native,
    Frr,
    FrrK8s,
}

impl BgpMode {
    /// Parses the env value; unset or empty means native, as upstream.
    pub fn from_env_value(value: Option<&str>) -> Result<BgpMode, String> {
        match value.unwrap_or("") {
            "" | "native" => Ok(BgpMode::Native),
            "frr" => Ok(BgpMode::Frr),
            "frr-k8s" => Ok(BgpMode::FrrK8s),
            other => Err(format!("unknown BGP type {other:?}, expected native, frr or frr-k8s")),
        }
    }
}

pub const DEFAULT_NAMESPACE: &str = "metallb-system";

/// Everything the builder reads. Every list may be empty (the admission webhook
/// validates partial sets); BGPPeers are v1beta2 (convert v1beta1 first).
#[derive(Debug, Clone, Copy)]
pub struct ConfigInput<'a> {
    pub pools: &'a [IPAddressPool],
    pub l2_advertisements: &'a [v1beta1::L2Advertisement],
    pub bgp_advertisements: &'a [BGPAdvertisement],
    pub bgp_peers: &'a [BGPPeer],
    pub communities: &'a [Community],
    pub bfd_profiles: &'a [BFDProfile],
    /// Secrets holding BGP passwords; only those in `namespace` are considered.
    pub secrets: &'a [Secret],
    pub namespaces: &'a [Namespace],
    pub nodes: &'a [Node],
    pub mode: BgpMode,
    /// The MetalLB namespace (password Secrets are looked up there).
    pub namespace: &'a str,
    /// FRR-K8s `--frrk8s-secret-passthrough`: password secrets are not resolved (R14–R16 skipped).
    pub secret_passthrough: bool,
}

impl Default for ConfigInput<'_> {
    fn default() -> Self {
        ConfigInput {
            pools: &[],
            l2_advertisements: &[],
            bgp_advertisements: &[],
            bgp_peers: &[],
            communities: &[],
            bfd_profiles: &[],
            secrets: &[],
            namespaces: &[],
            nodes: &[],
            mode: BgpMode::Native,
            namespace: DEFAULT_NAMESPACE,
            secret_passthrough: false,
        }
    }
}

/// Builds and validates the whole configuration (§10.1 order).
pub fn build_config(input: &ConfigInput<'_>) -> Result<Config, Vec<ConfigError>> {
    let mut errs = Errors::default();
    let nodes = nodes::NodeIndex::new(input.nodes);

    mode::check(input, &nodes, &mut errs);
    let bfd_profiles = bfd::build(input.bfd_profiles, &mut errs);
    let peers = peers::build(input, &bfd_profiles, &nodes, &mut errs);
    let communities = communities::build(input.communities, &mut errs);
    let pools = pools::build(input.pools, input.namespaces, &mut errs);
    let mut pool_advertisements = l2::attach(input.l2_advertisements, &pools, &nodes, &mut errs);
    bgp_adv::attach(input.bgp_advertisements, &pools, &communities, &nodes, &mut pool_advertisements, &mut errs);
    bfd::check_echo(&pools, &pool_advertisements, &peers, &bfd_profiles, &mut errs);

    errs.into_result(Config {
        pools: pools.into_iter().map(|p| p.def).collect(),
        pool_advertisements,
        peers,
        bfd_profiles,
        communities,
    })
}

/// The controller's part (controller.md §2): pools, communities and namespaces only.
pub fn build_pool_config(
    pools: &[IPAddressPool],
    communities: &[Community],
    namespaces: &[Namespace],
) -> Result<Vec<PoolDef>, Vec<ConfigError>> {
    let mut errs = Errors::default();
    communities::build(communities, &mut errs);
    let pools = pools::build(pools, namespaces, &mut errs);
    errs.into_result(pools.into_iter().map(|p| p.def).collect())
}

/// Error collector shared by the build steps.
#[derive(Default)]
pub(crate) struct Errors(Vec<ConfigError>);

impl Errors {
    pub(crate) fn push(&mut self, kind: &'static str, name: &str, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(kind, name, field, message));
    }

    fn into_result<T>(self, value: T) -> Result<T, Vec<ConfigError>> {
        if self.0.is_empty() { Ok(value) } else { Err(self.0) }
    }
}

pub(crate) fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// References to `items` in ascending `metadata.name` order (stable for equal names).
pub(crate) fn by_name<T, F: Fn(&T) -> &ObjectMeta>(items: &[T], meta: F) -> Vec<&T> {
    let mut refs: Vec<&T> = items.iter().collect();
    refs.sort_by(|a, b| name_of(meta(a)).cmp(name_of(meta(b))));
    refs
}
