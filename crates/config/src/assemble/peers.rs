//! BGPPeer v1beta2 (crds.md §5.4–5.5, R1–R18) and password resolution.

use super::nodes::{NodeIndex, convert_all};
use super::types::{BfdProfile, DynamicAsn, Password, Peer};
use super::{BgpMode, ConfigInput, Errors, by_name, name_of};
use crate::error::kinds;
use crate::{cidr, duration, selector, timers};
use ferrolb_api::v1beta2::{BGPPeer, DEFAULT_PEER_PORT, DynamicASNMode};
use k8s_openapi::api::core::v1::Secret;
use std::collections::HashSet;

const BASIC_AUTH: &str = "kubernetes.io/basic-auth";

pub(crate) fn build(input: &ConfigInput<'_>, bfd: &[BfdProfile], nodes: &NodeIndex, errs: &mut Errors) -> Vec<Peer> {
    let mut out: Vec<Peer> = Vec::new();
    let mut names = HashSet::new();
    for p in by_name(input.bgp_peers, |p| &p.metadata) {
        let name = name_of(&p.metadata);
        if !names.insert(name) {
            // R18 upstream only catches fully identical peers; a second object of the same
            // name is just as much a mistake in offline input.
            errs.push(kinds::PEER, name, "metadata.name", format!("peer {name} already exists"));
            continue;
        }
        let Some(peer) = parse(p, input, nodes, errs) else { continue };
        if let Some(profile) = &peer.bfd_profile
            && !bfd.iter().any(|b| &b.name == profile)
        {
            errs.push(
                kinds::PEER,
                name,
                "spec.bfdProfile",
                format!("peer {name} referencing non existing bfd profile {profile}"),
            );
            continue;
        }
        out.push(peer);
    }
    out
}

fn parse(p: &BGPPeer, input: &ConfigInput<'_>, nodes: &NodeIndex, errs: &mut Errors) -> Option<Peer> {
    let name = name_of(&p.metadata);
    let spec = &p.spec;
    let before = errs.0.len();
    let mut fail = |field: &str, msg: String| errs.push(kinds::PEER, name, field, msg);

    if spec.my_asn == 0 {
        fail("spec.myASN", "missing local ASN".into());
    }
    match (spec.peer_asn, spec.dynamic_asn) {
        (0, None) => fail("spec.peerASN", "missing peer ASN and dynamicASN".into()),
        (a, Some(_)) if a != 0 => fail("spec.dynamicASN", "both peer ASN and dynamicASN specified".into()),
        _ => {}
    }
    if spec.peer_asn == spec.my_asn && spec.ebgp_multi_hop {
        fail("spec.ebgpMultiHop", "invalid ebgp-multihop parameter set for an ibgp peer".into());
    }
    match (spec.peer_address.is_empty(), spec.interface.is_empty()) {
        (true, true) => fail("spec.peerAddress", "peer has no Address or Interface specified".into()),
        (false, false) => fail("spec.interface", "peer has both Address and Interface specified".into()),
        _ => {}
    }
    let timers = parse_duration(spec.hold_time.as_deref())
        .and_then(|h| Ok((h, parse_duration(spec.keepalive_time.as_deref())?)))
        .and_then(|(h, k)| timers::resolve(h, k))
        .map_err(|e| fail("spec.holdTime", format!("invalid BGPPeer timers: {e}")))
        .ok()
        .flatten();
    let connect_time = parse_duration(spec.connect_time.as_deref())
        .map_err(|e| fail("spec.connectTime", format!("invalid connect time: {e}")))
        .ok()
        .flatten();
    let address = optional_ip(&spec.peer_address, |v| fail("spec.peerAddress", format!("invalid BGPPeer address {v:?}")));
    let router_id = optional_ip(&spec.router_id, |v| fail("spec.routerID", format!("invalid router ID {v:?}")));
    let source_address = optional_ip(&spec.source_address, |v| fail("spec.sourceAddress", format!("invalid source IP {v:?}")));
    if let Err(msg) = selector::check_duplicates("nodeSelectors", &spec.node_selectors) {
        fail("spec.nodeSelectors", msg);
    }
    let node_selectors = convert_all(&spec.node_selectors)
        .map_err(|(i, e)| fail(&format!("spec.nodeSelectors[{i}]"), format!("failed to convert peer {name} node selector: {e}")))
        .ok();
    let password = password(p, input).map_err(|(field, msg)| fail(field, msg)).ok();
    if errs.0.len() != before {
        return None;
    }
    let (Some(node_selectors), Some(password)) = (node_selectors, password) else { return None };
    Some(Peer {
        name: name.to_string(),
        my_asn: spec.my_asn,
        asn: spec.peer_asn,
        dynamic_asn: spec.dynamic_asn.map(|d| match d {
            DynamicASNMode::Internal => DynamicAsn::Internal,
            DynamicASNMode::External => DynamicAsn::External,
        }),
        local_asn: spec.local_asn,
        address: address.flatten(),
        interface: non_empty(&spec.interface),
        source_address: source_address.flatten(),
        // A v1beta1 object stored without conversion reads back with an explicit 0.
        port: if spec.peer_port == 0 { DEFAULT_PEER_PORT } else { spec.peer_port },
        timers,
        connect_time,
        router_id: router_id.flatten(),
        nodes: nodes.node_set(node_selectors),
        password,
        bfd_profile: non_empty(&spec.bfd_profile),
        ebgp_multihop: spec.ebgp_multi_hop,
        vrf: non_empty(&spec.vrf),
        enable_graceful_restart: spec.enable_graceful_restart,
        disable_mp: spec.disable_mp,
        dual_stack_address_family: spec.dual_stack_address_family,
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

pub(crate) fn parse_duration(text: Option<&str>) -> Result<Option<duration::Nanos>, String> {
    text.map(duration::parse).transpose()
}

/// `Some(None)` when empty, `Some(Some(ip))` when valid, `None` after reporting.
fn optional_ip(text: &str, mut report: impl FnMut(&str)) -> Option<Option<std::net::IpAddr>> {
    if text.is_empty() {
        return Some(None);
    }
    match cidr::parse_ip(text) {
        // Go's ParseIP does not trim; surrounding spaces make the address invalid.
        Some(ip) if text.trim() == text => Some(Some(ip)),
        _ => {
            report(text);
            None
        }
    }
}

/// R13–R16. The Secret must live in the MetalLB namespace, whatever
/// `passwordSecret.namespace` says.
fn password(p: &BGPPeer, input: &ConfigInput<'_>) -> Result<Password, (&'static str, String)> {
    let spec = &p.spec;
    let ns = p.metadata.namespace.as_deref().unwrap_or(input.namespace);
    let name = name_of(&p.metadata);
    let secret_name = spec.password_secret.as_ref().and_then(|s| s.name.clone()).unwrap_or_default();
    if !spec.password.is_empty() && !secret_name.is_empty() {
        return Err((
            "spec.passwordSecret",
            format!("can not have both password and secret ref set in peer config {ns:?}/{name:?}"),
        ));
    }
    if secret_name.is_empty() {
        return Ok(if spec.password.is_empty() { Password::None } else { Password::Plain(spec.password.clone()) });
    }
    if input.secret_passthrough && input.mode == BgpMode::FrrK8s {
        return Ok(Password::SecretRef { name: secret_name, namespace: input.namespace.to_string() });
    }
    let secret = find_secret(input.secrets, input.namespace, &secret_name).ok_or_else(|| {
        ("spec.passwordSecret.name", format!("secret ref not found for peer config {ns:?}/{name:?}"))
    })?;
    let secret_ns = input.namespace;
    if secret.type_.as_deref() != Some(BASIC_AUTH) {
        return Err((
            "spec.passwordSecret.name",
            format!("secret type mismatch on {secret_ns:?}/{secret_name:?}, type {BASIC_AUTH:?} is expected "),
        ));
    }
    let from_data = secret.data.as_ref().and_then(|d| d.get("password")).map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let from_string = secret.string_data.as_ref().and_then(|d| d.get("password")).cloned();
    // stringData is write-only in a cluster and merged over data; offline input may hold either.
    match from_string.or(from_data) {
        Some(pw) => Ok(Password::Plain(pw)),
        None => Err((
            "spec.passwordSecret.name",
            format!("password not specified in the secret {secret_ns:?}/{secret_name:?}"),
        )),
    }
}

fn find_secret<'a>(secrets: &'a [Secret], namespace: &str, name: &str) -> Option<&'a Secret> {
    secrets.iter().find(|s| {
        s.metadata.name.as_deref() == Some(name) && s.metadata.namespace.as_deref().unwrap_or(namespace) == namespace
    })
}
