//! Builder tests: one or more per validation-table row, message text checked.

mod advertisements;
mod bfd_mode;
mod peers;
mod pools;

use super::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub(super) fn obj<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("test object matches the schema")
}

/// Owned inputs for [`ConfigInput`].
#[derive(Default)]
pub(super) struct Fixture {
    pub pools: Vec<IPAddressPool>,
    pub l2: Vec<v1beta1::L2Advertisement>,
    pub bgp: Vec<BGPAdvertisement>,
    pub peers: Vec<BGPPeer>,
    pub communities: Vec<Community>,
    pub bfd: Vec<BFDProfile>,
    pub secrets: Vec<Secret>,
    pub namespaces: Vec<Namespace>,
    pub nodes: Vec<Node>,
    pub mode: BgpMode,
    pub passthrough: bool,
}

impl Fixture {
    pub fn input(&self) -> ConfigInput<'_> {
        ConfigInput {
            pools: &self.pools,
            l2_advertisements: &self.l2,
            bgp_advertisements: &self.bgp,
            bgp_peers: &self.peers,
            communities: &self.communities,
            bfd_profiles: &self.bfd,
            secrets: &self.secrets,
            namespaces: &self.namespaces,
            nodes: &self.nodes,
            mode: self.mode,
            namespace: DEFAULT_NAMESPACE,
            secret_passthrough: self.passthrough,
        }
    }

    pub fn build(&self) -> Result<Config, Vec<ConfigError>> {
        build_config(&self.input())
    }

    pub fn ok(&self) -> Config {
        match self.build() {
            Ok(c) => c,
            Err(errs) => panic!("unexpected errors: {:#?}", errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()),
        }
    }

    pub fn errors(&self) -> Vec<String> {
        match self.build() {
            Ok(_) => panic!("configuration unexpectedly valid"),
            Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// Exactly one error, equal to `expected`.
    pub fn expect_error(&self, expected: &str) {
        assert_eq!(self.errors(), vec![expected.to_string()]);
    }
}

pub(super) fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "metallb-system"})
}

pub(super) fn pool(name: &str, addresses: &[&str]) -> IPAddressPool {
    obj(json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": meta(name), "spec": {"addresses": addresses}}))
}

pub(super) fn pool_spec(name: &str, spec: Value) -> IPAddressPool {
    obj(json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": meta(name), "spec": spec}))
}

pub(super) fn labeled_pool(name: &str, labels: Value, addresses: &[&str]) -> IPAddressPool {
    obj(json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system", "labels": labels},
        "spec": {"addresses": addresses}}))
}

pub(super) fn l2(name: &str, spec: Value) -> v1beta1::L2Advertisement {
    obj(json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": meta(name), "spec": spec}))
}

pub(super) fn bgp(name: &str, spec: Value) -> BGPAdvertisement {
    obj(json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": meta(name), "spec": spec}))
}

pub(super) fn peer(name: &str, spec: Value) -> BGPPeer {
    obj(json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": meta(name), "spec": spec}))
}

pub(super) fn community(name: &str, aliases: &[(&str, &str)]) -> Community {
    let list: Vec<Value> = aliases.iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
    obj(json!({"apiVersion": "metallb.io/v1beta1", "kind": "Community", "metadata": meta(name), "spec": {"communities": list}}))
}

pub(super) fn bfd(name: &str, spec: Value) -> BFDProfile {
    obj(json!({"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile", "metadata": meta(name), "spec": spec}))
}

pub(super) fn node(name: &str, labels: Value) -> Node {
    obj(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}))
}

pub(super) fn namespace(name: &str, labels: Value) -> Namespace {
    obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}))
}

pub(super) fn secret(name: &str, type_: &str, data: Value) -> Secret {
    obj(json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(name), "type": type_, "data": data}))
}
