//! Which kinds the reader understands and how each document becomes a typed object.

use super::schema::{self, Violation};
use super::Manifests;
use ferrolb_api::{conversion, v1beta1, v1beta2};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Pool,
    L2Advertisement,
    BgpAdvertisement,
    Community,
    BfdProfile,
    BgpPeerV1beta1,
    BgpPeer,
    Service,
    Namespace,
    Node,
    Secret,
}

impl Kind {
    pub(crate) fn of(api_version: &str, kind: &str) -> Option<Kind> {
        Some(match (api_version, kind) {
            ("metallb.io/v1beta1", "IPAddressPool") => Kind::Pool,
            ("metallb.io/v1beta1", "L2Advertisement") => Kind::L2Advertisement,
            ("metallb.io/v1beta1", "BGPAdvertisement") => Kind::BgpAdvertisement,
            ("metallb.io/v1beta1", "Community") => Kind::Community,
            ("metallb.io/v1beta1", "BFDProfile") => Kind::BfdProfile,
            ("metallb.io/v1beta1", "BGPPeer") => Kind::BgpPeerV1beta1,
            ("metallb.io/v1beta2", "BGPPeer") => Kind::BgpPeer,
            ("v1", "Service") => Kind::Service,
            ("v1", "Namespace") => Kind::Namespace,
            ("v1", "Node") => Kind::Node,
            ("v1", "Secret") => Kind::Secret,
            _ => return None,
        })
    }

    /// Objects that only count inside the MetalLB namespace.
    pub(crate) fn lives_in_metallb_namespace(self) -> bool {
        !matches!(self, Kind::Service | Kind::Namespace | Kind::Node)
    }
}

/// Why a document did not become an object.
pub(crate) enum Rejection {
    /// Schema mismatch: field path and message.
    Invalid(Violation),
    /// Outside the MetalLB namespace: the namespace it was in.
    OtherNamespace(String),
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<T, Rejection> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        Rejection::Invalid((field, e.into_inner().to_string()))
    })
}

fn checked<T>(obj: T, check: impl Fn(&T) -> Result<(), Violation>) -> Result<T, Rejection> {
    check(&obj).map(|()| obj).map_err(Rejection::Invalid)
}

/// Names are required for every kind (the API server demands one).
fn named(meta: &ObjectMeta) -> Result<(), Rejection> {
    match meta.name.as_deref() {
        Some(n) if !n.is_empty() => Ok(()),
        _ => Err(Rejection::Invalid((
            "metadata.name".into(),
            "Required value: name or generateName is required".into(),
        ))),
    }
}

/// Puts the object's namespace in place: MetalLB objects without one are taken to be
/// meant for MetalLB's namespace, Services default to `default`.
fn place(meta: &mut ObjectMeta, kind: Kind, metallb_ns: &str) -> Result<(), Rejection> {
    named(meta)?;
    match kind {
        Kind::Namespace | Kind::Node => {
            meta.namespace = None;
            Ok(())
        }
        Kind::Service => {
            if meta.namespace.as_deref().is_none_or(str::is_empty) {
                meta.namespace = Some("default".into());
            }
            Ok(())
        }
        _ => match meta.namespace.as_deref() {
            None | Some("") => {
                meta.namespace = Some(metallb_ns.to_string());
                Ok(())
            }
            Some(ns) if ns == metallb_ns => Ok(()),
            Some(other) => Err(Rejection::OtherNamespace(other.to_string())),
        },
    }
}

/// Deserializes `value` as `kind` and stores it.
pub(crate) fn store(kind: Kind, value: Value, metallb_ns: &str, out: &mut Manifests) -> Result<(), Rejection> {
    macro_rules! load {
        ($ty:ty, $list:ident, $check:expr) => {{
            let mut obj: $ty = typed(value)?;
            place(&mut obj.metadata, kind, metallb_ns)?;
            out.$list.push(checked(obj, $check)?);
        }};
    }
    match kind {
        Kind::Pool => load!(v1beta1::IPAddressPool, pools, |_| Ok(())),
        Kind::L2Advertisement => load!(v1beta1::L2Advertisement, l2_advertisements, schema::l2_advertisement),
        Kind::BgpAdvertisement => load!(v1beta1::BGPAdvertisement, bgp_advertisements, schema::bgp_advertisement),
        Kind::Community => load!(v1beta1::Community, communities, |_| Ok(())),
        Kind::BfdProfile => load!(v1beta1::BFDProfile, bfd_profiles, schema::bfd_profile),
        Kind::BgpPeer => load!(v2::BGPPeer, bgp_peers, schema::bgp_peer),
        Kind::BgpPeerV1beta1 => {
            let mut obj: v1beta1::BGPPeer = typed(value)?;
            place(&mut obj.metadata, kind, metallb_ns)?;
            let obj = checked(obj, schema::bgp_peer_v1beta1)?;
            out.bgp_peers.push(conversion::to_v1beta2(&obj));
        }
        Kind::Service => load!(Service, services, |_| Ok(())),
        Kind::Namespace => load!(Namespace, namespaces, |_| Ok(())),
        Kind::Node => load!(Node, nodes, |_| Ok(())),
        Kind::Secret => load!(Secret, secrets, |_| Ok(())),
    }
    Ok(())
}

use v1beta2 as v2;
