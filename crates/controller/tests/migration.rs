//! Migration between MetalLB's controller and ferrolb's, both ways, on the
//! real API server (docs/migration.md).
//!
//! MetalLB's controller (v0.16.2, built from its Go module by
//! benches/metallb/build.sh) assigns addresses to 1,000 Services spread over
//! seven IPAddressPools: automatic allocation (a namespace-pinned pool that
//! overflows into the others), address sharing (`metallb.io/allow-shared-ip`,
//! with and without a requested address), requested addresses (the
//! `metallb.io/loadBalancerIPs` annotation and `spec.loadBalancerIP`),
//! dual-stack Services (RequireDualStack and PreferDualStack, IPv4 or IPv6
//! first, automatic and requested), IPv6 single-stack and an `avoidBuggyIPs`
//! pool. It is stopped and ferrolb's controller takes over: every Service
//! keeps exactly its `status.loadBalancer.ingress` (checked on every watch
//! event while ferrolb starts, and after), and no address is held by two
//! Services that may not share it. ferrolb then deletes a tenth of the
//! Services and assigns 303 new ones; it is stopped and MetalLB's controller
//! takes over again (the rollback): again every address stays, and the
//! Services created under MetalLB get addresses no other Service holds.
//!
//! Each controller runs as its own ServiceAccount: ferrolb's as
//! `metallb-system/controller` with exactly deploy/'s RBAC, MetalLB's with
//! exactly the RBAC MetalLB ships for its controller (common/metallb.rs).
//! Own test binary: both controllers handle every classless Service of
//! their API server, and they must never run at the same time.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::metallb::{self, MetallbController};
use common::{fixture, pool_yaml};
use ferrolb_controller::ControllerOptions;
use ferrolb_controller::service_status::{CONDITION_TYPE, POOL_ANNOTATION};
use ferrolb_test_harness::identity::Identity;
use ferrolb_test_harness::{apply_yaml_in, create_namespace};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use tokio_util::sync::CancellationToken;

const SYSTEM: &str = metallb::NAMESPACE;
const APPS: [&str; 3] = ["mig-a", "mig-b", "mig-c"];
const LABEL: &str = "ferrolb.test/migration";
const POD: &str = "controller-migration";
const SHARE: &str = "metallb.io/allow-shared-ip";
const LB_IPS: &str = "metallb.io/loadBalancerIPs";
const POOL: &str = "metallb.io/address-pool";
/// Creates and deletes in flight at once.
const CONCURRENCY: usize = 16;
/// Bound on each wait for a controller (a loaded two-core CI machine).
const CONVERGE: Duration = Duration::from_secs(300);
/// MetalLB's controller counts as idle after this long without a log line.
const SETTLE: Duration = Duration::from_secs(2);

/// The pools, in `metallb-system`. Requested addresses come from
/// `reserved` (10.90.<4·set + 0|1|2>.x) and `dual` (10.70.<8 + set>.x,
/// fd00:70::<set>:x); automatic ones never reach those ranges.
fn pools() -> String {
    [
        pool_yaml("general-a", &["10.50.0.0/24", "10.50.1.0-10.50.1.99"], ""),
        pool_yaml("general-b", &["10.51.0.0/23"], ""),
        // 128 addresses for 150 + 45 automatic Services of mig-b: the rest
        // overflows into the pools without serviceAllocation.
        pool_yaml("team-b", &["10.60.0.0/25"], "  serviceAllocation:\n    priority: 10\n    namespaces: [mig-b]\n"),
        pool_yaml("dual", &["10.70.0.0/20", "fd00:70::/108"], ""),
        pool_yaml("v6", &["fd00:80::/116"], ""),
        pool_yaml("reserved", &["10.90.0.0/20"], "  autoAssign: false\n"),
        pool_yaml("buggy", &["10.91.0.0/24"], "  autoAssign: false\n  avoidBuggyIPs: true\n"),
    ]
    .join("---\n")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
    Dual,
}

/// One Service the test creates, and what it asks for.
#[derive(Clone, Debug)]
struct Want {
    namespace: &'static str,
    name: String,
    family: Family,
    /// `spec.ipFamilyPolicy` / `spec.ipFamilies` (None: the defaults).
    policy: Option<(&'static str, &'static [&'static str])>,
    annotations: BTreeMap<&'static str, String>,
    load_balancer_ip: Option<String>,
    port: u16,
    /// The exact addresses it must get (requested ones), as a set.
    requested: Option<BTreeSet<String>>,
}

impl Want {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn manifest(&self) -> Service {
        let mut spec = serde_json::json!({
            "type": "LoadBalancer",
            // Node ports mean nothing to either controller, and 1,300
            // Services would use half the default range.
            "allocateLoadBalancerNodePorts": false,
            "selector": {"app": self.name},
            "ports": [{"name": "p", "port": self.port, "protocol": "TCP", "targetPort": 8080}],
        });
        if let Some((policy, families)) = self.policy {
            spec["ipFamilyPolicy"] = policy.into();
            spec["ipFamilies"] = serde_json::json!(families);
        }
        if let Some(ip) = &self.load_balancer_ip {
            spec["loadBalancerIP"] = ip.clone().into();
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {LABEL: "true"},
                "annotations": self.annotations,
            },
            "spec": spec,
        }))
        .expect("a Service")
    }
}

/// How many Services of each kind a set has; sharing counts are multiples
/// of 3 (groups of three Services on ports 80, 81, 82).
struct Mix {
    plain_a: usize,
    plain_b: usize,
    shared: usize,
    shared_requested: usize,
    requested_annotation: usize,
    requested_spec: usize,
    dual_pool: usize,
    dual_prefer_v6: usize,
    dual_requested: usize,
    v6: usize,
    buggy: usize,
}

const METALLB_SET: Mix = Mix {
    plain_a: 200,
    plain_b: 150,
    shared: 150,
    shared_requested: 90,
    requested_annotation: 100,
    requested_spec: 60,
    dual_pool: 100,
    dual_prefer_v6: 50,
    dual_requested: 20,
    v6: 50,
    buggy: 30,
};

const FERROLB_SET: Mix = Mix {
    plain_a: 60,
    plain_b: 45,
    shared: 45,
    shared_requested: 30,
    requested_annotation: 30,
    requested_spec: 18,
    dual_pool: 30,
    dual_prefer_v6: 15,
    dual_requested: 6,
    v6: 15,
    buggy: 9,
};

/// Created under MetalLB after the rollback: a few of each kind.
const ROLLBACK_SET: Mix = Mix {
    plain_a: 3,
    plain_b: 3,
    shared: 3,
    shared_requested: 3,
    requested_annotation: 2,
    requested_spec: 2,
    dual_pool: 2,
    dual_prefer_v6: 2,
    dual_requested: 2,
    v6: 2,
    buggy: 2,
};

const DUAL: &[&str] = &["IPv4", "IPv6"];
const DUAL_V6_FIRST: &[&str] = &["IPv6", "IPv4"];
const V6_ONLY: &[&str] = &["IPv6"];

fn population(set: u8, mix: &Mix) -> Vec<Want> {
    let mut out = Vec::new();
    type Policy = Option<(&'static str, &'static [&'static str])>;
    let base = |namespace: &'static str, kind: &str, i: usize, family: Family, policy: Policy| Want {
        namespace,
        name: format!("s{set}-{kind}-{i:04}"),
        family,
        policy,
        annotations: BTreeMap::new(),
        load_balancer_ip: None,
        port: 80,
        requested: None,
    };
    let requested = |ips: &[String]| Some(ips.iter().cloned().collect::<BTreeSet<_>>());
    let s = usize::from(set);
    for i in 0..mix.plain_a {
        out.push(base("mig-a", "plain", i, Family::V4, None));
    }
    for i in 0..mix.plain_b {
        out.push(base("mig-b", "plain", i, Family::V4, None));
    }
    for i in 0..mix.shared {
        let mut w = base("mig-c", "shared", i, Family::V4, None);
        w.annotations.insert(SHARE, format!("s{set}-share-{}", i / 3));
        w.port = 80 + (i % 3) as u16;
        out.push(w);
    }
    for i in 0..mix.shared_requested {
        let ip = format!("10.90.{}.{}", 4 * s + 2, i / 3 + 1);
        let mut w = base("mig-c", "sharedreq", i, Family::V4, None);
        w.annotations.insert(SHARE, format!("s{set}-req-{}", i / 3));
        w.annotations.insert(LB_IPS, ip.clone());
        w.port = 80 + (i % 3) as u16;
        w.requested = requested(&[ip]);
        out.push(w);
    }
    for i in 0..mix.requested_annotation {
        let ip = format!("10.90.{}.{}", 4 * s, i + 1);
        let mut w = base("mig-a", "reqannot", i, Family::V4, None);
        w.annotations.insert(LB_IPS, ip.clone());
        w.requested = requested(&[ip]);
        out.push(w);
    }
    for i in 0..mix.requested_spec {
        let ip = format!("10.90.{}.{}", 4 * s + 1, i + 1);
        let mut w = base("mig-b", "reqspec", i, Family::V4, None);
        w.load_balancer_ip = Some(ip.clone());
        w.requested = requested(&[ip]);
        out.push(w);
    }
    for i in 0..mix.dual_pool {
        let mut w = base("mig-a", "dual", i, Family::Dual, Some(("RequireDualStack", DUAL)));
        w.annotations.insert(POOL, "dual".into());
        out.push(w);
    }
    for i in 0..mix.dual_prefer_v6 {
        out.push(base("mig-c", "dual6", i, Family::Dual, Some(("PreferDualStack", DUAL_V6_FIRST))));
    }
    for i in 0..mix.dual_requested {
        let ips = [format!("10.70.{}.{}", 8 + s, i + 1), format!("fd00:70::{s}:{:x}", i + 1)];
        let mut w = base("mig-b", "dualreq", i, Family::Dual, Some(("RequireDualStack", DUAL)));
        w.annotations.insert(LB_IPS, ips.join(","));
        w.requested = requested(&ips);
        out.push(w);
    }
    for i in 0..mix.v6 {
        out.push(base("mig-a", "v6", i, Family::V6, Some(("SingleStack", V6_ONLY))));
    }
    for i in 0..mix.buggy {
        let mut w = base("mig-c", "buggy", i, Family::V4, None);
        w.annotations.insert(POOL, "buggy".into());
        out.push(w);
    }
    out
}

/// What the test reads back of one Service.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    ips: Vec<String>,
    /// `metallb.io/ip-allocated-from-pool`, which both controllers write.
    pool: Option<String>,
    share: Option<String>,
    ports: BTreeSet<(String, i32)>,
    /// Status of ferrolb's condition, when it has written one.
    ferrolb: Option<String>,
}

fn seen(s: &Service) -> Seen {
    Seen {
        ips: common::ips(s),
        pool: common::annotation(s, POOL_ANNOTATION),
        share: common::annotation(s, SHARE),
        ports: s
            .spec
            .as_ref()
            .and_then(|sp| sp.ports.as_ref())
            .map(|ps| ps.iter().map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.port)).collect())
            .unwrap_or_default(),
        ferrolb: s
            .status
            .as_ref()
            .and_then(|st| st.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == CONDITION_TYPE))
            .map(|c| c.status.clone()),
    }
}

fn key_of(s: &Service) -> String {
    format!("{}/{}", s.metadata.namespace.as_deref().unwrap_or(""), s.metadata.name.as_deref().unwrap_or(""))
}

/// Every Service of the test, by `namespace/name`, and the list's
/// resourceVersion (where a watch for later changes starts).
async fn snapshot(admin: &Client) -> (BTreeMap<String, Seen>, String) {
    let api: Api<Service> = Api::all(admin.clone());
    let list = api.list(&ListParams::default().labels(&format!("{LABEL}=true"))).await.expect("listing Services");
    let rv = list.metadata.resource_version.clone().expect("list resourceVersion");
    (list.items.iter().map(|s| (key_of(s), seen(s))).collect(), rv)
}

async fn create_all(admin: &Client, wants: &[Want]) {
    futures::stream::iter(wants.iter().map(|w| {
        let api: Api<Service> = Api::namespaced(admin.clone(), w.namespace);
        async move {
            api.create(&PostParams::default(), &w.manifest())
                .await
                .unwrap_or_else(|e| panic!("creating {}: {e}", w.key()));
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect::<Vec<()>>()
    .await;
}

async fn delete_all(admin: &Client, keys: &[String]) {
    futures::stream::iter(keys.iter().map(|key| {
        let (ns, name) = key.split_once('/').expect("namespace/name");
        let api: Api<Service> = Api::namespaced(admin.clone(), ns);
        async move {
            api.delete(name, &DeleteParams::default()).await.unwrap_or_else(|e| panic!("deleting {key}: {e}"));
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect::<Vec<()>>()
    .await;
}

/// Polls until `done` holds for the snapshot; `alive` is asked each round
/// (a controller that died fails the wait at once).
async fn wait_until(
    admin: &Client,
    what: &str,
    mut alive: impl FnMut(),
    done: impl Fn(&BTreeMap<String, Seen>) -> Result<(), String>,
) -> BTreeMap<String, Seen> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        alive();
        let (snap, _) = snapshot(admin).await;
        match done(&snap) {
            Ok(()) => return snap,
            Err(why) if Instant::now() > deadline => panic!("{what}: not after {CONVERGE:?}: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Ok when every one of `wants` has addresses.
fn all_assigned(wants: &[Want]) -> impl Fn(&BTreeMap<String, Seen>) -> Result<(), String> + '_ {
    move |snap| {
        let missing: Vec<String> = wants
            .iter()
            .map(Want::key)
            .filter(|k| snap.get(k).is_none_or(|s| s.ips.is_empty()))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{} without an address, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]))
        }
    }
}

/// Checks every wanted Service against what it asked for, and that no
/// address is held by two Services that may not share it (MetalLB's rule:
/// same `allow-shared-ip` key and no (protocol, port) in common). Returns
/// how many addresses are shared.
fn check(snap: &BTreeMap<String, Seen>, wants: &[Want]) -> usize {
    let mut problems = Vec::new();
    for w in wants {
        let key = w.key();
        let Some(s) = snap.get(&key) else {
            problems.push(format!("{key}: missing"));
            continue;
        };
        let parsed: Vec<IpAddr> = s.ips.iter().filter_map(|ip| ip.parse().ok()).collect();
        let v4 = parsed.iter().filter(|ip| ip.is_ipv4()).count();
        let v6 = parsed.iter().filter(|ip| ip.is_ipv6()).count();
        let family_ok = parsed.len() == s.ips.len()
            && match w.family {
                Family::V4 => (v4, v6) == (1, 0),
                Family::V6 => (v4, v6) == (0, 1),
                Family::Dual => (v4, v6) == (1, 1),
            };
        if !family_ok {
            problems.push(format!("{key}: {:?} for a {:?} Service", s.ips, w.family));
        }
        if s.pool.is_none() {
            problems.push(format!("{key}: no {POOL_ANNOTATION} annotation"));
        }
        if let Some(req) = &w.requested {
            let got: BTreeSet<String> = s.ips.iter().cloned().collect();
            if &got != req {
                problems.push(format!("{key}: {:?}, requested {req:?}", s.ips));
            }
        }
        if w.annotations.get(POOL).is_some_and(|p| p == "buggy") {
            let bad = parsed.iter().any(|ip| matches!(ip, IpAddr::V4(v) if matches!(v.octets()[3], 0 | 255)));
            if bad || !s.ips.iter().all(|ip| ip.starts_with("10.91.0.")) {
                problems.push(format!("{key}: {:?} from the avoidBuggyIPs pool", s.ips));
            }
        }
    }
    let mut holders: BTreeMap<&str, Vec<(&String, &Seen)>> = BTreeMap::new();
    for (key, s) in snap {
        for ip in &s.ips {
            holders.entry(ip).or_default().push((key, s));
        }
    }
    let mut shared = 0;
    for (ip, hs) in &holders {
        if hs.len() < 2 {
            continue;
        }
        shared += 1;
        for (i, (ka, a)) in hs.iter().enumerate() {
            for (kb, b) in &hs[i + 1..] {
                let same_key = a.share.is_some() && a.share == b.share;
                let disjoint = a.ports.is_disjoint(&b.ports);
                if !same_key || !disjoint {
                    problems.push(format!(
                        "{ip} held by {ka} (key {:?}, ports {:?}) and {kb} (key {:?}, ports {:?})",
                        a.share, a.ports, b.share, b.ports
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems, e.g.:\n{}",
        problems.len(),
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    shared
}

/// Addresses that differ from `before`, in any watch event after `rv`
/// (so a change undone before the end still counts).
struct MoveWatch {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl MoveWatch {
    fn start(admin: &Client, before: &BTreeMap<String, Seen>, rv: String) -> MoveWatch {
        let api: Api<Service> = Api::all(admin.clone());
        let before: BTreeMap<String, Vec<String>> =
            before.iter().map(|(k, s)| (k.clone(), s.ips.clone())).collect();
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        let task = tokio::spawn(async move {
            let mut moves = Vec::new();
            let mut rv = rv;
            let wp = WatchParams::default().labels(&format!("{LABEL}=true")).timeout(60);
            loop {
                let mut stream = match api.watch(&wp, &rv).await {
                    Ok(s) => s.boxed(),
                    Err(e) => {
                        moves.push(format!("watch failed from {rv}: {e}"));
                        return moves;
                    }
                };
                loop {
                    let event = tokio::select! {
                        _ = cancelled.cancelled() => return moves,
                        e = stream.try_next() => e,
                    };
                    let svc = match event {
                        Ok(Some(WatchEvent::Added(s) | WatchEvent::Modified(s) | WatchEvent::Deleted(s))) => s,
                        Ok(Some(WatchEvent::Bookmark(b))) => {
                            rv = b.metadata.resource_version;
                            continue;
                        }
                        Ok(Some(WatchEvent::Error(e))) => {
                            moves.push(format!("watch error after {rv}: {e:?}"));
                            return moves;
                        }
                        // Timed out: go on from the last version seen.
                        Ok(None) => break,
                        Err(e) => {
                            moves.push(format!("watch stream failed after {rv}: {e}"));
                            return moves;
                        }
                    };
                    if let Some(v) = &svc.metadata.resource_version {
                        rv = v.clone();
                    }
                    let key = key_of(&svc);
                    if let Some(old) = before.get(&key) {
                        let now = common::ips(&svc);
                        if &now != old {
                            moves.push(format!("{key}: {old:?} -> {now:?} (resourceVersion {rv})"));
                        }
                    }
                }
            }
        });
        MoveWatch { stop, task }
    }

    /// Stops after the watch has had a moment to deliver the last events.
    async fn finish(self) -> Vec<String> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.stop.cancel();
        self.task.await.expect("watch task")
    }
}

/// ferrolb's controller, in-process, as deployed (leader election on, no
/// webhook in this process), as `metallb-system/controller`.
async fn start_ferrolb(kubeconfig: &std::path::Path) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    use clap::Parser;
    let opts = ControllerOptions::parse_from([
        "controller".to_string(),
        format!("--namespace={SYSTEM}"),
        format!("--pod-name={POD}"),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--port=0".into(),
        "--health-probe-port=0".into(),
        "--bind-address=127.0.0.1".into(),
    ]);
    let stop = CancellationToken::new();
    let s = stop.clone();
    let ctl = ferrolb_controller::start(opts, async move { s.cancelled().await }).await.expect("ferrolb starts");
    (stop, tokio::spawn(ctl.wait()))
}

fn ips_only(snap: &BTreeMap<String, Seen>) -> BTreeMap<String, Vec<String>> {
    snap.iter().map(|(k, s)| (k.clone(), s.ips.clone())).collect()
}

/// The entries of `before` whose addresses or allocated-from-pool
/// annotation differ in `after` (or that are gone).
fn differences(before: &BTreeMap<String, Seen>, after: &BTreeMap<String, Seen>) -> Vec<String> {
    before
        .iter()
        .filter(|(k, s)| after.get(*k).map(|a| (&a.ips, &a.pool)) != Some((&s.ips, &s.pool)))
        .map(|(k, s)| format!("{k}: {:?} -> {:?}", (&s.ips, &s.pool), after.get(k).map(|a| (&a.ips, &a.pool))))
        .collect()
}

fn log(msg: &str) {
    eprintln!("[migration {:>7.1}s] {msg}", START.get_or_init(Instant::now).elapsed().as_secs_f64());
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_stay_when_swapping_metallb_and_ferrolb_both_ways() {
    log("building or reusing MetalLB's controller (benches/metallb/build.sh)");
    tokio::task::spawn_blocking(metallb::controller_binary).await.expect("build task");
    let fixture = fixture().await;
    let admin = fixture.client().expect("admin client");
    for ns in APPS {
        create_namespace(&admin, ns).await.expect("namespace");
    }
    apply_yaml_in(&admin, SYSTEM, &pools()).await.expect("pools");
    // The Pod both controllers are told they run in; nothing runs it.
    apply_yaml_in(
        &admin,
        SYSTEM,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {POD}\n  labels: {{app: metallb, component: controller}}\nspec:\n  containers:\n  - name: controller\n    image: test.invalid/controller:none\n"
        ),
    )
    .await
    .expect("controller Pod");
    let upstream_rbac = metallb::apply_controller_rbac(&admin).await;
    log(&format!("MetalLB's controller runs with MetalLB's own RBAC: {upstream_rbac:?}"));
    // MetalLB's logs (metallb-1.log, metallb-2.log) and the kubeconfigs;
    // kept for a post-mortem when FERROLB_KEEP_MIGRATION_LOGS is set.
    let mut guard = Some(tempfile::Builder::new().prefix("ferrolb-migration.").tempdir().expect("tempdir"));
    let dir = guard.as_ref().expect("just made").path().to_owned();
    if std::env::var_os("FERROLB_KEEP_MIGRATION_LOGS").is_some() {
        guard.take().map(tempfile::TempDir::keep);
        log(&format!("keeping {}", dir.display()));
    }
    let metallb_kc = metallb::write_kubeconfig(fixture, &dir.join("metallb.kubeconfig"));
    let ferrolb_kc = Identity::controller()
        .write_kubeconfig(fixture, &dir.join("ferrolb.kubeconfig"))
        .expect("ferrolb kubeconfig");
    let metallb_log = |n: u32| dir.join(format!("metallb-{n}.log"));

    // 1. MetalLB assigns.
    let set1 = population(1, &METALLB_SET);
    assert_eq!(set1.len(), 1000);
    let mut upstream = MetallbController::start(&metallb_kc, POD, &metallb_log(1));
    log("MetalLB's controller started; creating 1,000 Services");
    create_all(&admin, &set1).await;
    log("created; waiting for MetalLB to assign them all");
    wait_until(&admin, "MetalLB assigns 1,000 Services", || upstream.assert_running(), all_assigned(&set1)).await;
    upstream.wait_settled(SETTLE, CONVERGE).await;
    let (errors, refused) = upstream.errors_and_refusals();
    let status = tokio::task::block_in_place(|| upstream.stop());
    log(&format!("MetalLB stopped ({status}); {errors} error lines (see MetallbController::errors_and_refusals)"));
    assert!(refused.is_empty(), "MetalLB's own RBAC refused its requests:\n{}", refused.join("\n"));
    let (by_metallb, rv) = snapshot(&admin).await;
    let shared = check(&by_metallb, &set1);
    log(&format!("MetalLB's assignment checked: {} Services, {shared} shared addresses", by_metallb.len()));

    // 2. ferrolb takes over: nothing moves.
    let watch = MoveWatch::start(&admin, &by_metallb, rv);
    let (stop, task) = start_ferrolb(&ferrolb_kc).await;
    log("ferrolb's controller started; waiting until it has written its condition on every Service");
    let taken = wait_until(&admin, "ferrolb takes over", || assert!(!task.is_finished(), "ferrolb exited"), |snap| {
        let pending = snap.values().filter(|s| s.ferrolb.as_deref() != Some("True")).count();
        if pending == 0 { Ok(()) } else { Err(format!("{pending} Services without ferrolb's condition True")) }
    })
    .await;
    let moves = watch.finish().await;
    assert!(moves.is_empty(), "addresses changed while ferrolb took over:\n{}", moves.join("\n"));
    let diff = differences(&by_metallb, &taken);
    assert!(diff.is_empty(), "ferrolb changed {} Services' addresses:\n{}", diff.len(), diff.join("\n"));
    assert_eq!(ips_only(&taken), ips_only(&by_metallb));
    log("ferrolb kept all 1,000 Services' addresses");

    // 3. ferrolb assigns: a tenth of the Services go, 303 new ones come.
    let gone: Vec<String> = set1.iter().step_by(10).map(Want::key).collect();
    delete_all(&admin, &gone).await;
    let set2 = population(2, &FERROLB_SET);
    create_all(&admin, &set2).await;
    log(&format!("deleted {} Services, created {}; waiting for ferrolb", gone.len(), set2.len()));
    wait_until(&admin, "ferrolb assigns the new Services", || assert!(!task.is_finished(), "ferrolb exited"), |snap| {
        all_assigned(&set2)(snap)?;
        match gone.iter().filter(|k| snap.contains_key(*k)).count() {
            0 => Ok(()),
            n => Err(format!("{n} deleted Services still listed")),
        }
    })
    .await;
    stop.cancel();
    task.await.expect("ferrolb task");
    let (by_ferrolb, rv) = snapshot(&admin).await;
    let kept: Vec<Want> = set1.iter().filter(|w| !gone.contains(&w.key())).cloned().chain(set2.iter().cloned()).collect();
    assert_eq!(by_ferrolb.len(), kept.len());
    let shared = check(&by_ferrolb, &kept);
    let unchanged = differences(&taken, &by_ferrolb).into_iter().filter(|d| !gone.iter().any(|g| d.starts_with(&format!("{g}:")))).collect::<Vec<_>>();
    assert!(unchanged.is_empty(), "ferrolb moved addresses of Services it kept:\n{}", unchanged.join("\n"));
    log(&format!("ferrolb stopped; {} Services checked, {shared} shared addresses", by_ferrolb.len()));

    // 4. Rollback: MetalLB takes over again; nothing moves, and what it
    // assigns next collides with nothing ferrolb assigned.
    let watch = MoveWatch::start(&admin, &by_ferrolb, rv);
    let mut upstream = MetallbController::start(&metallb_kc, POD, &metallb_log(2));
    let set3 = population(3, &ROLLBACK_SET);
    create_all(&admin, &set3).await;
    log(&format!("MetalLB's controller restarted; created {} Services; waiting for them", set3.len()));
    wait_until(&admin, "MetalLB assigns after the rollback", || upstream.assert_running(), all_assigned(&set3)).await;
    // A complete pass over every Service, and nothing left to do.
    upstream.wait_settled(SETTLE, CONVERGE).await;
    let (errors, refused) = upstream.errors_and_refusals();
    let status = tokio::task::block_in_place(|| upstream.stop());
    let moves = watch.finish().await;
    log(&format!("MetalLB stopped ({status}); {errors} error lines (see MetallbController::errors_and_refusals)"));
    assert!(moves.is_empty(), "addresses changed while MetalLB took over:\n{}", moves.join("\n"));
    assert!(refused.is_empty(), "MetalLB's own RBAC refused its requests:\n{}", refused.join("\n"));
    let (after_rollback, _) = snapshot(&admin).await;
    let diff = differences(&by_ferrolb, &after_rollback);
    assert!(diff.is_empty(), "MetalLB changed {} Services' addresses:\n{}", diff.len(), diff.join("\n"));
    let all: Vec<Want> = kept.iter().cloned().chain(set3.iter().cloned()).collect();
    let shared = check(&after_rollback, &all);
    log(&format!("rollback checked: {} Services, {shared} shared addresses", after_rollback.len()));
}

/// The duplicate check itself, on hand-made snapshots (no API server).
mod check_itself {
    use super::*;

    fn held(ip: &str, share: Option<&str>, port: i32) -> Seen {
        Seen {
            ips: vec![ip.into()],
            pool: Some("general-a".into()),
            share: share.map(str::to_owned),
            ports: [("TCP".to_string(), port)].into(),
            ferrolb: None,
        }
    }

    fn snap(entries: [(&str, Seen); 2]) -> BTreeMap<String, Seen> {
        entries.into_iter().map(|(k, s)| (k.to_string(), s)).collect()
    }

    #[test]
    fn two_services_with_one_key_and_distinct_ports_may_share() {
        let s = snap([("a/x", held("10.50.0.1", Some("k"), 80)), ("a/y", held("10.50.0.1", Some("k"), 81))]);
        assert_eq!(check(&s, &[]), 1);
    }

    #[test]
    #[should_panic(expected = "10.50.0.1 held by a/x")]
    fn an_address_held_without_a_sharing_key_is_a_duplicate() {
        let s = snap([("a/x", held("10.50.0.1", None, 80)), ("a/y", held("10.50.0.1", None, 81))]);
        check(&s, &[]);
    }

    #[test]
    #[should_panic(expected = "10.50.0.1 held by a/x")]
    fn different_keys_are_a_duplicate() {
        let s = snap([("a/x", held("10.50.0.1", Some("k"), 80)), ("a/y", held("10.50.0.1", Some("l"), 81))]);
        check(&s, &[]);
    }

    #[test]
    #[should_panic(expected = "10.50.0.1 held by a/x")]
    fn one_key_on_the_same_port_is_a_duplicate() {
        let s = snap([("a/x", held("10.50.0.1", Some("k"), 80)), ("a/y", held("10.50.0.1", Some("k"), 80))]);
        check(&s, &[]);
    }
}
