//! What a speaker pass costs in its BGP decision: a decision from scratch
//! (`BgpState::rebuild`, what every pass did before passes became
//! incremental, and what a configuration change still does) against the
//! update after one Service changed (`BgpState::update`), for N Services
//! advertised to one peer. Prints `key=value` figures (medians).
//!
//!   cargo run --release -p ferrolb-speaker --example decide_bench [N ...]
//!
//! Default N: 1000 10000.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ferrolb_allocator::ServiceKey;
use ferrolb_config::assemble::{BgpMode, build_config};
use ferrolb_config::manifest::{ReadOptions, read_str};
use ferrolb_speaker::decide::bgp::{BgpContext, BgpState};
use ferrolb_speaker::decide::{Endpoint, NodeState, ServiceState};

const OBJECTS: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench}
spec:
  addresses: [198.18.0.0/15]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bench}
spec:
  ipAddressPools: [bench]
  communities: ["64512:100"]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router}
spec:
  myASN: 64513
  peerASN: 64512
  peerAddress: 192.0.2.1
"#;

fn service(i: u32, serving: bool) -> ServiceState {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i);
    ServiceState {
        key: ServiceKey::new("bench", format!("svc-{i}")),
        is_load_balancer: true,
        labels: Default::default(),
        has_sharing_key: false,
        ingress: vec![ip.to_string()].into(),
        local_traffic_policy: false,
        endpoints: vec![Endpoint { node: Some("node1".into()), serving }],
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

fn main() -> Result<(), String> {
    let sizes: Vec<u32> = std::env::args().skip(1).map(|a| a.parse().map_err(|e| format!("{a}: {e}"))).collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() { vec![1000, 10000] } else { sizes };
    let manifests = read_str("bench", OBJECTS, &ReadOptions::default()).map_err(|e| e.to_string())?;
    let config = build_config(&manifests.config_input(BgpMode::Native, "metallb-system"))
        .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;
    let nodes: BTreeMap<String, NodeState> = [("node1".to_string(), NodeState::default())].into();
    let ctx = BgpContext { node: "node1", mode: BgpMode::Native, config: &config, nodes: &nodes, ignore_exclude_lb: false };
    for n in sizes {
        let services: Vec<ServiceState> = (0..n).map(|i| service(i, true)).collect();
        let mut state = BgpState::default();
        let rebuilds: Vec<Duration> = (0..9)
            .map(|_| {
                let t = Instant::now();
                state.rebuild(&ctx, &services);
                t.elapsed()
            })
            .collect();
        let routes = state.decision().routes.values().map(BTreeMap::len).sum::<usize>();
        // One Service at a time loses and regains its endpoint, as a new
        // Service's arrival or a rollout would change it.
        let mut updates = Vec::new();
        for i in 0..200u32 {
            let changed = service(i % n, i % 2 == 1);
            let t = Instant::now();
            state.update(&ctx, [(&changed.key, Some(&changed))]);
            updates.push(t.elapsed());
        }
        println!("services={n} routes={routes}");
        println!("rebuild_us_median_{n}={:.0}", median(rebuilds));
        println!("update_one_us_median_{n}={:.1}", median(updates));
    }
    Ok(())
}
