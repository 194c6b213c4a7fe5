//! The speaker's configuration (speaker.md §1.1): every metallb.io object of
//! the MetalLB namespace, its Secrets, the Namespaces and the Nodes, built and
//! validated by the same code as the controller and `ferrolb validate`.

use ferrolb_api::v1beta1::{BFDProfile, BGPAdvertisement, Community, IPAddressPool, L2Advertisement};
use ferrolb_api::v1beta2::BGPPeer;
use ferrolb_config::ConfigError;
use ferrolb_config::assemble::{BgpMode, Config, ConfigInput, build_config};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::decide::NodeState;
use crate::watch::Projected;

/// Keeps only what selectors read of a Node (name and labels) for the
/// configuration, and what the election reads of it.
pub fn node_facts(node: &Node) -> Option<(Node, NodeState)> {
    let state = crate::cluster::node_facts(node)?;
    Some((Node { metadata: slim_meta(&node.metadata), ..Node::default() }, state))
}

pub fn slim_namespace(ns: &Namespace) -> Option<Namespace> {
    Some(Namespace { metadata: slim_meta(&ns.metadata), ..Namespace::default() })
}

fn slim_meta(meta: &ObjectMeta) -> ObjectMeta {
    ObjectMeta { name: meta.name.clone(), labels: meta.labels.clone(), ..ObjectMeta::default() }
}

pub fn whole<K: Clone>(obj: &K) -> Option<K> {
    Some(obj.clone())
}

/// An IPAddressPool without its status and what changes with it (the
/// resource version, managed fields): the controller rewrites the status
/// (addresses in use) on every allocation, and the speaker reads only the
/// spec. Kept whole, each new Service woke a configuration reload and a
/// pass over every Service.
pub fn pool_spec(pool: &IPAddressPool) -> Option<IPAddressPool> {
    let metadata = ObjectMeta { resource_version: None, managed_fields: None, ..pool.metadata.clone() };
    Some(IPAddressPool { metadata, spec: pool.spec.clone(), status: None })
}

/// The configuration objects being watched.
#[derive(Clone)]
pub struct ConfigSources {
    pub pools: Projected<IPAddressPool>,
    pub l2_advertisements: Projected<L2Advertisement>,
    pub bgp_advertisements: Projected<BGPAdvertisement>,
    pub bgp_peers: Projected<BGPPeer>,
    pub communities: Projected<Community>,
    pub bfd_profiles: Projected<BFDProfile>,
    pub secrets: Projected<Secret>,
    pub namespaces: Projected<Namespace>,
    pub nodes: Projected<(Node, NodeState)>,
}

impl ConfigSources {
    pub async fn synced(&self) {
        self.pools.synced().await;
        self.l2_advertisements.synced().await;
        self.bgp_advertisements.synced().await;
        self.bgp_peers.synced().await;
        self.communities.synced().await;
        self.bfd_profiles.synced().await;
        self.secrets.synced().await;
        self.namespaces.synced().await;
        self.nodes.synced().await;
    }

    /// Builds and validates the configuration as it stands now.
    pub fn build(&self, mode: BgpMode, namespace: &str, secret_passthrough: bool) -> Result<Config, Vec<ConfigError>> {
        let pools = self.pools.values();
        let l2 = self.l2_advertisements.values();
        let bgp = self.bgp_advertisements.values();
        let peers = self.bgp_peers.values();
        let communities = self.communities.values();
        let bfd = self.bfd_profiles.values();
        let secrets = self.secrets.values();
        let namespaces = self.namespaces.values();
        let nodes: Vec<Node> = self.nodes.values().into_iter().map(|(node, _)| node).collect();
        build_config(&ConfigInput {
            pools: &pools,
            l2_advertisements: &l2,
            bgp_advertisements: &bgp,
            bgp_peers: &peers,
            communities: &communities,
            bfd_profiles: &bfd,
            secrets: &secrets,
            namespaces: &namespaces,
            nodes: &nodes,
            mode,
            namespace,
            secret_passthrough,
        })
    }
}

/// speaker.md §1.2 step 1: a new configuration that would strand addresses
/// this node announces (no pool contains them any more) is refused until the
/// controller has moved those Services. Returns the stranded addresses.
pub fn stranded<'a>(config: &Config, announced: impl Iterator<Item = &'a std::net::IpAddr>) -> Vec<std::net::IpAddr> {
    announced
        .filter(|ip| !config.pools.iter().any(|p| p.cidrs.iter().any(|n| n.contains(*ip))))
        .copied()
        .collect()
}

/// One line per error, `Kind/name: field: message`.
pub fn describe(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}
