//! Runs `ferrolb_config`'s whole-configuration builder over a [`Snapshot`]
//! (observability.md §6.2: "all validating endpoints reuse the configuration
//! builder ... applied to a partial set of objects").

use k8s_openapi::api::core::v1::Node;
use serde::de::DeserializeOwned;
use serde_json::Value;

use ferrolb_api::{v1beta1, v1beta2};
use ferrolb_config::assemble::{BgpMode, ConfigInput, build_config};

use crate::policy::Snapshot;

/// Reads each object as its typed form; a failure names the object and the
/// JSON path of the offending field.
fn typed<T: DeserializeOwned>(kind: &str, values: &[Value], errors: &mut Vec<String>) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        match serde_path_to_error::deserialize::<_, T>(v) {
            Ok(t) => out.push(t),
            Err(e) => errors.push(format!("{kind}/{name}: {}: {}", e.path(), e.inner())),
        }
    }
    out
}

/// The builder's verdict on the snapshot: `Err` holds one text per problem,
/// each `Kind/name: field: message`.
pub fn check(snapshot: &Snapshot, mode: BgpMode, namespace: &str) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let pools: Vec<v1beta1::IPAddressPool> = typed("IPAddressPool", &snapshot.pools, &mut errors);
    let peers: Vec<v1beta2::BGPPeer> = typed("BGPPeer", &snapshot.peers, &mut errors);
    let bgp_advs: Vec<v1beta1::BGPAdvertisement> =
        typed("BGPAdvertisement", &snapshot.bgp_advertisements, &mut errors);
    let l2_advs: Vec<v1beta1::L2Advertisement> =
        typed("L2Advertisement", &snapshot.l2_advertisements, &mut errors);
    let communities: Vec<v1beta1::Community> = typed("Community", &snapshot.communities, &mut errors);
    let nodes: Vec<Node> = typed("Node", &snapshot.nodes, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let input = ConfigInput {
        pools: &pools,
        l2_advertisements: &l2_advs,
        bgp_advertisements: &bgp_advs,
        bgp_peers: &peers,
        communities: &communities,
        nodes: &nodes,
        mode,
        namespace,
        ..ConfigInput::default()
    };
    build_config(&input).map(|_| ()).map_err(|errs| errs.iter().map(ToString::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool(name: &str, addresses: &[&str]) -> Value {
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": "metallb-system"},
            "spec": {"addresses": addresses}
        })
    }

    fn run(s: &Snapshot) -> Result<(), Vec<String>> {
        check(s, BgpMode::Native, "metallb-system")
    }

    #[test]
    fn valid_pools_pass() {
        let s = Snapshot { pools: vec![pool("a", &["10.0.0.0/24"]), pool("b", &["10.0.1.0/24"])], ..Default::default() };
        assert_eq!(run(&s), Ok(()));
    }

    #[test]
    fn overlap_is_reported_naming_the_pools() {
        let s = Snapshot { pools: vec![pool("a", &["10.0.0.0/24"]), pool("b", &["10.0.0.128/25"])], ..Default::default() };
        let errs = run(&s).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("IPAddressPool/b"), "{errs:?}");
        assert!(errs[0].contains("overlaps"), "{errs:?}");
    }

    #[test]
    fn malformed_cidr_names_the_field() {
        let s = Snapshot { pools: vec![pool("bad", &["10.0.0.0/33"])], ..Default::default() };
        let errs = run(&s).unwrap_err();
        assert!(errs[0].contains("IPAddressPool/bad"), "{errs:?}");
        assert!(errs[0].contains("spec.addresses"), "{errs:?}");
        assert!(errs[0].contains("10.0.0.0/33"), "{errs:?}");
    }

    #[test]
    fn wrongly_typed_object_names_the_path() {
        let mut p = pool("p", &[]);
        p["spec"]["autoAssign"] = json!("yes");
        let errs = run(&Snapshot { pools: vec![p], ..Default::default() }).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("IPAddressPool/p: spec.autoAssign:"), "{errs:?}");
    }

    #[test]
    fn native_mode_rules_apply_to_peers() {
        let peer = json!({
            "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": {"name": "p", "namespace": "metallb-system"},
            "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "vrf": "red"}
        });
        let s = Snapshot { peers: vec![peer.clone()], ..Default::default() };
        let errs = check(&s, BgpMode::Native, "metallb-system").unwrap_err();
        assert!(errs.iter().any(|e| e.contains("vrf set on native bgp mode")), "{errs:?}");
        assert_eq!(check(&s, BgpMode::Frr, "metallb-system"), Ok(()));
    }
}
