//! Convergence benchmark on the real API server fixture.
//!
//! On a fresh fixture: creates N LoadBalancer Services with no controller
//! running, then starts `ferrolb controller` as a process and reports
//! - seconds from its start until every Service has its address,
//! - seconds until it is idle (no API request for 2 s: events written too),
//! - its peak RSS (VmHWM) and CPU time,
//! - the API requests it made, counted by the API server
//!   (`apiserver_request_total` deltas taken after the benchmark's own
//!   watch has listed; WATCH requests are left out because the API server
//!   counts them only when they end), in total and per Service.
//!
//! - with `--react-samples K`, once idle: K times, a new Service is created
//!   and the time until a watch on it (opened before the create) delivers
//!   the controller's status with an address: its reaction to one change
//!   (also reported: the create request's own round trip, which the
//!   controller cannot shorten)
//!   while N Services exist.
//!
//! The controller runs as `metallb-system/controller` under deploy/'s RBAC
//! (impersonated), so RBAC and API Priority and Fairness apply as in a
//! cluster. `--etcd-fsync` lets etcd fsync as a production member does.
//!
//! Run through benches/controller/converge.sh, which builds the binaries.
//! The side-by-side run with MetalLB's own controller is
//! benches/metallb/compare.sh (docs/benchmarks-metallb.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use ferrolb_test_harness::identity::{Identity, apply_deploy_rbac};
use ferrolb_test_harness::{FixtureOptions, KubeFixture, apply_yaml_in, create_namespace, install_crds};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, ListParams, WatchParams};
use kube::core::WatchEvent;
use kube::runtime::{WatchStreamExt, watcher};

type Error = Box<dyn std::error::Error>;

#[derive(Parser)]
struct Args {
    /// Path of the `ferrolb` binary.
    #[arg(long)]
    ferrolb: PathBuf,
    #[arg(long, default_value_t = 5000)]
    services: usize,
    /// Pool the Services are served from (must hold `services` addresses).
    #[arg(long, default_value = "10.128.0.0/18")]
    pool: String,
    /// Concurrent create requests while setting up.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// Extra flag for ferrolb (repeatable), e.g. `--controller-arg=--write-concurrency=32`.
    #[arg(long = "controller-arg", allow_hyphen_values = true)]
    controller_args: Vec<String>,
    /// Let the fixture's etcd fsync, as a production member does.
    #[arg(long)]
    etcd_fsync: bool,
    /// Single-Service reaction samples once the controller is idle.
    #[arg(long, default_value_t = 0)]
    react_samples: usize,
    /// The controller's --log-level.
    #[arg(long, default_value = "warn")]
    log_level: String,
    /// Where the controller's output goes (default: discarded).
    #[arg(long)]
    controller_log: Option<PathBuf>,
}

struct Figures {
    all_ips: Duration,
    idle: Duration,
    rss_kib: u64,
    cpu: f64,
    requests: BTreeMap<(String, String), u64>,
    /// Milliseconds from a Service's create to its address in a watch.
    react_ms: Vec<f64>,
    /// Milliseconds the create request of those samples took.
    create_ms: Vec<f64>,
}

const SYSTEM: &str = "metallb-system";
const APPS: &str = "bench";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let figures = run(&args).await?;
    print(&args, &[("ferrolb", figures)]);
    Ok(())
}

async fn run(args: &Args) -> Result<Figures, Error> {
    let n = args.services;
    eprintln!("starting a kube fixture ...");
    let fixture = KubeFixture::start_with(FixtureOptions { etcd_fsync: args.etcd_fsync, ..FixtureOptions::default() }).await?;
    let client = fixture.client()?;
    install_crds(&client, &ferrolb_api::crds::render_yaml()).await?;
    // As deployed: the controller runs as metallb-system/controller under
    // deploy/'s RBAC (which also creates the namespace), so RBAC and API
    // Priority and Fairness apply to it as in a cluster (an admin client is
    // exempt from APF).
    apply_deploy_rbac(&client).await?;
    create_namespace(&client, APPS).await?;
    let kubeconfig = fixture.data_dir().join("controller.kubeconfig");
    Identity::controller().write_kubeconfig(&fixture, &kubeconfig)?;
    let pool = format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: bench\nspec:\n  addresses:\n  - {}\n",
        args.pool
    );
    apply_yaml_in(&client, SYSTEM, &pool).await?;
    // The controller's own Pod, owner of ConfigurationState/controller.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: controller-bench\nspec:\n  containers:\n  - name: c\n    image: none\n";
    apply_yaml_in(&client, SYSTEM, pod).await?;
    create_services(&client, n, args.create_concurrency).await?;

    // The benchmark's own watch lists before the count starts.
    let api: Api<Service> = Api::namespaced(client.clone(), APPS);
    let stream = watcher(api.clone(), watcher::Config::default());
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        if matches!(ev?, watcher::Event::InitDone) {
            break;
        }
    }
    let before = apiserver_requests(&client).await?;
    let started = Instant::now();
    let mut child = spawn_ferrolb(args, &kubeconfig)?;
    let all_ips = wait_all_assigned(stream.applied_objects(), n, &mut child, started).await?;
    let rss_kib = peak_rss_kib(child.id());
    // Idle: the API server counted no new request for 2 s.
    let mut last = apiserver_requests(&client).await?;
    let mut quiet = 0;
    while quiet < 2 && started.elapsed() < Duration::from_secs(900) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = apiserver_requests(&client).await?;
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
    let idle = started.elapsed().saturating_sub(Duration::from_secs(2));
    let cpu = cpu_seconds(child.id());
    let (mut react_ms, mut create_ms) = (Vec::new(), Vec::new());
    for j in 0..args.react_samples {
        if let Some(status) = child.try_wait()? {
            return Err(format!("controller exited with {status}").into());
        }
        let (create, address) = react(&api, &format!("react-{j:03}")).await?;
        create_ms.push(create);
        react_ms.push(address);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut requests = BTreeMap::new();
    for (k, v) in &last {
        let d = v - before.get(k).copied().unwrap_or(0);
        if d > 0 {
            requests.insert(k.clone(), d);
        }
    }
    // The API server counts a WATCH when it ends; the controller's are still
    // open, so watches are left out of the comparison.
    requests.retain(|(verb, _), v| *v > 0 && verb != "WATCH");
    Ok(Figures { all_ips, idle, rss_kib, cpu, requests, react_ms, create_ms })
}

/// Creates Service `name` and returns the milliseconds its create request
/// took and those until a watch on it, opened before the create, delivers
/// it with an address.
async fn react(api: &Api<Service>, name: &str) -> Result<(f64, f64), Error> {
    let fields = format!("metadata.name={name}");
    // From the list's version, so nothing written after it is missed.
    let list = api.list_metadata(&ListParams::default().fields(&fields)).await?;
    let version = list.metadata.resource_version.ok_or("Service list without resourceVersion")?;
    let stream = api.watch(&WatchParams::default().fields(&fields).timeout(60), &version).await?;
    let mut stream = std::pin::pin!(stream);
    let started = Instant::now();
    api.create(&Default::default(), &service(name)?).await?;
    let created = started.elapsed().as_secs_f64() * 1000.0;
    while let Some(event) = stream.try_next().await? {
        match event {
            WatchEvent::Added(svc) | WatchEvent::Modified(svc) if has_address(&svc) => {
                return Ok((created, started.elapsed().as_secs_f64() * 1000.0));
            }
            WatchEvent::Error(e) => return Err(format!("watch on {name}: {e:?}").into()),
            _ => {}
        }
    }
    Err(format!("the watch on {name} ended before it had an address").into())
}

fn has_address(svc: &Service) -> bool {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .is_some_and(|i| i.iter().any(|e| e.ip.is_some()))
}

fn service(name: &str) -> Result<Service, Error> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        // Node ports would run out (2,768 in the default range).
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                 "ports": [{"port": 80, "protocol": "TCP"}]}
    }))?)
}

async fn create_services(client: &Client, n: usize, concurrency: usize) -> Result<(), Error> {
    eprintln!("creating {n} LoadBalancer Services ...");
    let api: Api<Service> = Api::namespaced(client.clone(), APPS);
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&Default::default(), &service(&format!("svc-{i:05}"))?).await?;
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    eprintln!("created {n} Services in {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

fn print(args: &Args, results: &[(&str, Figures)]) {
    let n = args.services as f64;
    println!("services: {}", args.services);
    let header: String = results.iter().map(|(name, _)| format!("{name:>12}")).collect();
    println!("{:44}{header}", "");
    let row = |label: &str, f: &dyn Fn(&Figures) -> String| {
        let cells: String = results.iter().map(|(_, r)| format!("{:>12}", f(r))).collect();
        println!("{label:44}{cells}");
    };
    row("seconds until every Service has its IP", &|r| format!("{:.2}", r.all_ips.as_secs_f64()));
    row("seconds until idle (events written too)", &|r| format!("{:.2}", r.idle.as_secs_f64()));
    row("peak RSS (MiB)", &|r| format!("{:.1}", r.rss_kib as f64 / 1024.0));
    row("CPU user+sys (s)", &|r| format!("{:.2}", r.cpu));
    row("API requests (total)", &|r| r.requests.values().sum::<u64>().to_string());
    row("API requests per Service", &|r| format!("{:.3}", r.requests.values().sum::<u64>() as f64 / n));
    if args.react_samples > 0 {
        let samples = |v: &[f64]| v.iter().map(|m| format!("{m:.1}")).collect::<Vec<_>>().join(",");
        let median = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).map_or_else(|| "-".into(), |m| format!("{m:.1}"))
        };
        row("one new Service: create -> address (ms)", &|r| samples(&r.react_ms));
        row("  median (ms)", &|r| median(&r.react_ms));
        row("  its create request alone (ms)", &|r| samples(&r.create_ms));
        row("  median (ms)", &|r| median(&r.create_ms));
    }
    let mut keys: Vec<&(String, String)> = results.iter().flat_map(|(_, r)| r.requests.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        row(&format!("  {} {}", k.0, k.1), &|r| r.requests.get(k).copied().unwrap_or(0).to_string());
    }
}

fn spawn_ferrolb(args: &Args, kubeconfig: &Path) -> Result<Child, Error> {
    let stdout = match &args.controller_log {
        Some(path) => Stdio::from(std::fs::File::create(path)?),
        None => Stdio::null(),
    };
    Ok(Command::new(&args.ferrolb)
        .arg("controller")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--namespace={SYSTEM}"))
        .args(["--port=0", "--health-probe-port=0", "--leader-elect=false", "--pod-name=controller-bench"])
        .arg("--webhook-mode=disabled")
        .arg(format!("--log-level={}", args.log_level))
        .args(&args.controller_args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .spawn()?)
}

/// Follows the Services until all have an address.
async fn wait_all_assigned<S>(stream: S, n: usize, child: &mut Child, started: Instant) -> Result<Duration, Error>
where
    S: futures::Stream<Item = Result<Service, watcher::Error>>,
{
    let mut have_ip = std::collections::HashSet::new();
    let mut stream = std::pin::pin!(stream);
    let deadline = started + Duration::from_secs(900);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Err(format!("controller exited with {status}").into());
        }
        let next = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
        let Ok(Some(item)) = next else { continue };
        let svc = item?;
        let assigned = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .is_some_and(|i| !i.is_empty());
        if assigned {
            have_ip.insert(svc.metadata.name.clone().unwrap_or_default());
            if have_ip.len() == n {
                return Ok(started.elapsed());
            }
        }
    }
    Err(format!("not converged after 900 s ({} with an IP)", have_ip.len()).into())
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of a process, in seconds (USER_HZ = 100 on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// `apiserver_request_total` summed by (verb, resource[/subresource]),
/// resource requests only.
async fn apiserver_requests(client: &Client) -> Result<BTreeMap<(String, String), u64>, Error> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let label = |key: &str| {
            line.split(&format!(",{key}=\""))
                .nth(1)
                .or_else(|| line.split(&format!("{{{key}=\"")).nth(1))
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let resource = label("resource");
        if resource.is_empty() {
            continue;
        }
        let sub = label("subresource");
        let resource = if sub.is_empty() { resource } else { format!("{resource}/{sub}") };
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *out.entry((label("verb"), resource)).or_insert(0) += value as u64;
    }
    Ok(out)
}
