//! Replay-style golden tests: each `golden/NAME.in` holds a realistic cluster
//! (MetalLB objects, Nodes and Services as YAML, read by the same manifest
//! reader and configuration builder as `ferrolb validate`) and the decision
//! for one node must print as `golden/NAME.out`. With
//! FERROLB_UPDATE_REPLAY=1 the `.out` files are rewritten instead (review the
//! diff before committing).
//!
//! Input: header lines, then `---` and the YAML documents.
//!   `node: NAME` (required), `mode: native|frr|frr-k8s`,
//!   `ignore-exclude-lb: true`,
//!   `endpoints: NAMESPACE/NAME NODE[!] ...` (serving endpoints of a Service
//!   on those nodes; `!` marks one that does not serve).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use ferrolb_allocator::ServiceKey;
use ferrolb_config::assemble::{BgpMode, Password, build_config};
use ferrolb_config::manifest::{ReadOptions, read_str};
use kube::ResourceExt;

use super::*;
use crate::cluster::{node_facts, service_facts};
use crate::decide::Endpoint;

struct Header {
    node: String,
    mode: BgpMode,
    ignore_exclude_lb: bool,
    endpoints: BTreeMap<ServiceKey, Vec<Endpoint>>,
}

fn header(text: &str) -> Result<Header, String> {
    let mut h = Header { node: String::new(), mode: BgpMode::Native, ignore_exclude_lb: false, endpoints: BTreeMap::new() };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (field, value) = line.split_once(':').ok_or_else(|| format!("not `field: value`: {line}"))?;
        let value = value.trim();
        match field {
            "node" => h.node = value.to_string(),
            "mode" => h.mode = BgpMode::from_env_value(Some(value))?,
            "ignore-exclude-lb" => h.ignore_exclude_lb = value == "true",
            "endpoints" => {
                let mut words = value.split_whitespace();
                let svc = words.next().ok_or("endpoints without a Service")?;
                let (ns, name) = svc.split_once('/').ok_or_else(|| format!("not NAMESPACE/NAME: {svc}"))?;
                let eps = words
                    .map(|w| match w.strip_suffix('!') {
                        Some(node) => Endpoint { node: Some(node.into()), serving: false },
                        None => Endpoint { node: Some(w.into()), serving: true },
                    })
                    .collect();
                h.endpoints.insert(ServiceKey::new(ns, name), eps);
            }
            other => return Err(format!("unknown header field {other:?}")),
        }
    }
    if h.node.is_empty() {
        return Err("no `node:` line".into());
    }
    Ok(h)
}

fn run(text: &str) -> Result<String, String> {
    let (head, yaml) = text.split_once("\n---\n").ok_or("no `---` between the header and the objects")?;
    let h = header(head)?;
    let manifests = read_str("golden", yaml, &ReadOptions::default()).map_err(|e| e.to_string())?;
    let config = build_config(&manifests.config_input(h.mode, "metallb-system"))
        .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;
    let nodes: BTreeMap<String, NodeState> =
        manifests.nodes.iter().filter_map(|n| Some((n.name_any(), node_facts(n)?))).collect();
    let services: Vec<ServiceState> = manifests
        .services
        .iter()
        .filter_map(|s| service_facts(&crate::watch::key_of(s), s, ""))
        .map(|s| ServiceState { endpoints: h.endpoints.get(&s.key).cloned().unwrap_or_default(), ..s })
        .collect();
    let decision = decide_bgp(&BgpInput {
        node: &h.node,
        mode: h.mode,
        config: &config,
        services: &services,
        nodes: &nodes,
        ignore_exclude_lb: h.ignore_exclude_lb,
    });
    Ok(render(&decision))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if items.is_empty() { "-".into() } else { items.join(",") }
}

fn render(d: &BgpDecision) -> String {
    let mut out = String::new();
    for (name, s) in &d.sessions {
        let remote = match s.remote_asn {
            RemoteAsn::Exact(asn) => asn.to_string(),
            RemoteAsn::Dynamic(DynamicAsn::Internal) => "internal".into(),
            RemoteAsn::Dynamic(DynamicAsn::External) => "external".into(),
        };
        let password = match &s.password {
            Password::None => "-".to_string(),
            Password::Plain(_) => "plain".to_string(),
            Password::SecretRef { name, namespace } => format!("secret:{namespace}/{name}"),
        };
        let families = list(s.families.iter().map(|f| match f {
            Family::Ipv4Unicast => "ipv4",
            Family::Ipv6Unicast => "ipv6",
        }));
        let _ = writeln!(
            out,
            "session {name} my-asn={} local-asn={} remote-asn={remote} ibgp={} address={} interface={} port={} hold={} keepalive={} connect={} router-id={} password={password} source={} multihop={} vrf={} bfd={} graceful-restart={} dual-stack={} disable-mp={} families={families}",
            s.my_asn,
            opt(s.local_asn),
            s.ibgp(),
            opt(s.address),
            opt(s.interface.as_deref()),
            s.port,
            s.hold_time,
            opt(s.keepalive_time),
            opt(s.connect_time),
            opt(s.router_id),
            opt(s.source_address),
            s.ebgp_multihop,
            opt(s.vrf.as_deref()),
            opt(s.bfd_profile.as_deref()),
            s.graceful_restart,
            s.dual_stack_address_family,
            s.disable_mp,
        );
    }
    for (peer, routes) in &d.routes {
        if routes.is_empty() {
            let _ = writeln!(out, "routes {peer} none");
        }
        for (prefix, r) in routes {
            let _ = writeln!(out, "route {peer} {prefix} local-pref={} communities={}", opt(r.local_pref), list(&r.communities));
        }
    }
    for r in &d.refused {
        let _ = writeln!(out, "refused {} {}: {}", r.peer, r.prefix, r.message());
    }
    for (key, a) in &d.advertised {
        let _ = writeln!(out, "advertise {key} ips={} prefixes={} status-peers={}", list(a.ips.iter()), list(&a.prefixes), list(a.peers.iter()));
    }
    for (key, reason) in &d.withdrawn {
        let _ = writeln!(out, "withdraw {key} {reason}");
    }
    out
}

#[test]
fn golden_files_match() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/decide/bgp/golden");
    ferrolb_test_harness::golden::check_dir(&dir, 4, run);
}
