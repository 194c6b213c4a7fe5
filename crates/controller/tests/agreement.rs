//! Online/offline agreement: after the live controller has converged, the
//! objects as the API server returns them are dumped to YAML and planned
//! offline — with `ferrolb plan` when the workspace build produced it, and
//! always through the libraries it is made of; every Service must get the
//! same addresses.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use ferrolb_api::v1beta1::IPAddressPool;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ListParams};

type Planned = BTreeMap<String, (String, Vec<String>)>;

/// The `ferrolb` binary next to this test's directory, when the workspace
/// build made one (`cargo test --workspace` does).
fn ferrolb_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("ferrolb");
    bin.is_file().then_some(bin)
}

/// `ferrolb plan -o json` over `dir`.
fn plan_with_binary(bin: &Path, dir: &Path, env: &Env) -> Planned {
    let out = Command::new(bin)
        .args(["plan", "-f"])
        .arg(dir)
        .args(["-o", "json", "--namespace", &env.system, "--lb-class", env.class.as_deref().unwrap()])
        .output()
        .expect("running ferrolb plan");
    assert!(out.status.success(), "ferrolb plan failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["namespace"] == env.apps.as_str())
        .map(|s| {
            let ips = s["ips"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect();
            (s["name"].as_str().unwrap().to_string(), (s["status"].as_str().unwrap().to_string(), ips))
        })
        .collect()
}

/// The same plan through the libraries (manifest reader, pool configuration
/// builder, Service view, pass order, converge), passes repeated while one
/// asks for it, as a freshly started controller does.
fn plan_with_libraries(dir: &Path, env: &Env) -> Planned {
    use ferrolb_allocator::{Allocator, ConvergeOptions, SyncResult, converge};
    use ferrolb_controller::order::{self, PassEntry};
    let opts = ferrolb_config::manifest::ReadOptions { namespace: env.system.clone(), ..Default::default() };
    let m = ferrolb_config::manifest::read_paths_with(&[dir.to_path_buf()], &opts).expect("reading the dump");
    let pools = ferrolb_config::assemble::build_pool_config(&m.pools, &m.communities, &m.namespaces).expect("valid pools");
    let mut alloc = Allocator::new();
    alloc.set_pools(pools);
    let mut entries: Vec<PassEntry<ferrolb_allocator::ServiceView>> = m
        .services
        .iter()
        .map(|s| {
            let v = ferrolb_config::view::service_view(s);
            PassEntry {
                namespace: v.namespace.clone(),
                name: v.name.clone(),
                ingress_count: v.ingress_ips.len(),
                created: v.creation_timestamp.clone(),
                key: v,
            }
        })
        .collect();
    order::sort(&mut entries);
    let copts = ConvergeOptions { lb_class: env.class.clone() };
    let mut out = Planned::new();
    for _pass in 0..4 {
        let mut again = false;
        for e in entries.iter_mut() {
            let c = converge(&mut alloc, &e.key, &copts);
            again |= c.result == SyncResult::ReprocessAll;
            e.key.ingress_ips = c.ingress.clone();
            match &c.pool {
                Some(p) => e.key.annotations.insert("metallb.io/ip-allocated-from-pool".into(), p.clone()),
                None => e.key.annotations.remove("metallb.io/ip-allocated-from-pool"),
            };
            let status = if c.ingress.is_empty() { "pending" } else { "assigned" };
            out.insert(e.name.clone(), (status.to_string(), c.ingress));
        }
        if !again {
            break;
        }
    }
    out
}

/// Every available offline path over `dir`.
fn plans(dir: &Path, env: &Env) -> Vec<(&'static str, Planned)> {
    let mut v = vec![("libraries", plan_with_libraries(dir, env))];
    match ferrolb_bin() {
        Some(bin) => v.push(("ferrolb plan", plan_with_binary(&bin, dir, env))),
        None => println!("target/<profile>/ferrolb not built: compared with the library plan only"),
    }
    v
}

fn write_yaml<T: serde::Serialize>(dir: &Path, file: &str, items: &[T]) {
    let text = items
        .iter()
        .map(|i| serde_saphyr::to_string(i).expect("yaml"))
        .collect::<Vec<_>>()
        .join("---\n");
    std::fs::write(dir.join(file), text).expect("write");
}

fn svc_yaml(env: &Env, name: &str, annotations: &[(&str, &str)], port: u16) -> String {
    let ann: String = annotations.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    let ann = if ann.is_empty() { String::new() } else { format!("  annotations:\n{ann}") };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {}\n{ann}spec:\n  type: LoadBalancer\n  loadBalancerClass: {}\n  ports:\n  - port: {port}\n",
        env.apps,
        env.class.as_deref().unwrap()
    )
}

#[tokio::test]
async fn live_controller_and_offline_plan_agree() {
    let env = env("agree", true).await;
    let sel = format!("  serviceAllocation:\n    priority: 1\n    namespaces: [{}]\n", env.apps);
    env.apply(&pool_yaml("gold", &["10.1.0.0/30"], &sel)).await;
    env.apply(&pool_yaml("silver", &["10.2.0.0/29"], "  serviceAllocation:\n    priority: 5\n")).await;
    env.apply(&pool_yaml("plain", &["10.3.0.0/30"], "")).await;
    env.apply(&pool_yaml("manual", &["10.4.0.0/30"], "  autoAssign: false\n")).await;
    let ctl = env.start(&[]).await;

    // Created one after another, names in creation order, so the live
    // arrival order is the plan's (creation time, namespace, name) order.
    type Spec<'a> = (String, Vec<(&'a str, &'a str)>, u16);
    let specs: Vec<Spec> = vec![
        ("s01".into(), vec![], 80),
        ("s02".into(), vec![], 80),
        ("s03".into(), vec![], 80),
        ("s04".into(), vec![], 80),
        ("s05".into(), vec![], 80),
        ("s06".into(), vec![("metallb.io/address-pool", "manual")], 80),
        ("s07".into(), vec![("metallb.io/loadBalancerIPs", "10.3.0.2")], 80),
        ("s08".into(), vec![("metallb.io/allow-shared-ip", "k")], 80),
        ("s09".into(), vec![("metallb.io/allow-shared-ip", "k")], 443),
        ("s10".into(), vec![("metallb.io/loadBalancerIPs", "10.9.9.9")], 80),
        ("s11".into(), vec![("metallb.io/address-pool", "nope")], 80),
    ];
    for (name, ann, port) in &specs {
        ferrolb_test_harness::apply_yaml_in(&env.client, &env.apps, &svc_yaml(&env, name, ann, *port))
            .await
            .expect("service");
        // Each one is handled before the next exists, as a plan processes them.
        env.wait_service(name, "processed", |s| condition(s).is_some()).await;
    }

    let svcs: Api<Service> = env.services();
    let live: BTreeMap<String, Vec<String>> = svcs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap(), ips(s)))
        .collect();
    assert_eq!(live["s01"], ["10.1.0.0"]);
    assert_eq!(live["s05"], ["10.2.0.0"]);
    assert_eq!(live["s06"], ["10.4.0.0"]);
    assert_eq!(live["s08"], live["s09"], "shared address");
    assert!(live["s10"].is_empty() && live["s11"].is_empty());

    // Dump what the API server returns.
    let dir = tempfile::tempdir().unwrap();
    let services = svcs.list(&ListParams::default()).await.unwrap().items;
    let pools = Api::<IPAddressPool>::namespaced(env.client.clone(), &env.system)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let nss: Vec<Namespace> = {
        let api: Api<Namespace> = Api::all(env.client.clone());
        vec![api.get(&env.apps).await.unwrap(), api.get(&env.system).await.unwrap()]
    };
    write_yaml(dir.path(), "pools.yaml", &pools);
    write_yaml(dir.path(), "namespaces.yaml", &nss);

    // 1. As a fresh cluster: Services without status. The plan must
    //    allocate exactly what the live controller allocated.
    let fresh: Vec<Service> = services.iter().cloned().map(|mut s| {
        s.status = None;
        s.metadata.annotations.as_mut().map(|a| a.remove("metallb.io/ip-allocated-from-pool"));
        s
    }).collect();
    write_yaml(dir.path(), "services.yaml", &fresh);
    for (how, offline) in plans(dir.path(), &env) {
        for (name, ips) in &live {
            let (status, planned) = &offline[name];
            assert_eq!(planned, ips, "{how}: {name}: live {ips:?}, plan {planned:?} ({status})");
            assert_eq!(status == "pending", ips.is_empty(), "{how}: {name}: {status}");
        }
    }

    // 2. As a restart: Services as stored, status included. Nothing moves.
    write_yaml(dir.path(), "services.yaml", &services);
    for (how, restarted) in plans(dir.path(), &env) {
        for (name, ips) in &live {
            assert_eq!(&restarted[name].1, ips, "{how}: {name} after restart");
        }
    }
    ctl.shutdown().await;
}
