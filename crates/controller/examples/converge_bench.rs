//! Convergence benchmark on the real API server fixture.
//!
//! Creates N LoadBalancer Services (no controller running), then starts a
//! controller process and reports:
//! - seconds from the controller's start until every Service has its address
//!   (and until each also carries the pool annotation),
//! - the controller's peak RSS (VmHWM),
//! - API requests made by the controller, in total and per Service (from its
//!   `ferrolb_controller_api_requests_total` metric).
//!
//! Run through benches/controller/converge.sh, which builds the binaries.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use ferrolb_test_harness::{KubeFixture, create_namespace, install_crds, apply_yaml_in};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

#[derive(Parser)]
struct Args {
    /// The controller to run: path of the `ferrolb` binary.
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
    /// Extra flag for the controller (repeatable), e.g. `--controller-arg=--write-concurrency=32`.
    #[arg(long = "controller-arg", allow_hyphen_values = true)]
    controller_args: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let n = args.services;
    eprintln!("starting the kube fixture ...");
    let fixture = KubeFixture::start().await?;
    let client = fixture.client()?;
    install_crds(&client, &ferrolb_api::crds::render_yaml()).await?;
    let (system, apps) = ("metallb-system", "bench");
    create_namespace(&client, system).await?;
    create_namespace(&client, apps).await?;
    let pool = format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: bench\nspec:\n  addresses:\n  - {}\n",
        args.pool
    );
    apply_yaml_in(&client, system, &pool).await?;

    eprintln!("creating {n} LoadBalancer Services ...");
    let api: Api<Service> = Api::namespaced(client.clone(), apps);
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let svc: Service = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("svc-{i:05}")},
                    // Node ports would run out (2,768 in the default range).
                    "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                             "ports": [{"port": 80, "protocol": "TCP"}]}
                }))?;
                api.create(&Default::default(), &svc).await?;
                Ok::<_, Box<dyn std::error::Error>>(())
            }
        })
        .buffer_unordered(args.create_concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    eprintln!("created {n} Services in {:.1} s", t.elapsed().as_secs_f64());

    let metrics_port = free_port()?;
    let started = Instant::now();
    let mut child = spawn_controller(&args.ferrolb, &fixture, system, metrics_port, &args.controller_args)?;
    let (all_ips, all_annotated) = wait_converged(&api, n, &mut child, started).await?;
    let rss_kib = peak_rss_kib(child.id());
    let cpu = cpu_seconds(child.id());
    let requests = scrape_requests(metrics_port).await?;
    // Events are sent after the status writes; wait until the controller
    // goes quiet (no request for 2 s) to count everything it did.
    let mut requests_after = scrape_requests(metrics_port).await?;
    let mut quiet = 0;
    while quiet < 2 && started.elapsed() < Duration::from_secs(900) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = scrape_requests(metrics_port).await?;
        quiet = if now == requests_after { quiet + 1 } else { 0 };
        requests_after = now;
    }
    let idle = started.elapsed().saturating_sub(Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();

    let total: u64 = requests.values().sum();
    let of = |m: &BTreeMap<(String, String), u64>, method: &str, res: &str| {
        m.get(&(method.to_string(), res.to_string())).copied().unwrap_or(0)
    };
    println!("services:                     {n}");
    println!("seconds until all have an IP: {:.2}", all_ips.as_secs_f64());
    println!("seconds until all annotated:  {:.2}", all_annotated.as_secs_f64());
    println!("controller peak RSS:          {:.1} MiB", rss_kib as f64 / 1024.0);
    println!("controller CPU (user+sys):    {cpu:.2} s");
    println!("API requests (total):         {total}");
    println!("API requests per Service:     {:.3}", total as f64 / n as f64);
    println!("  services/status PATCH:      {}", of(&requests, "PATCH", "services/status"));
    println!("  events POST:                {}", of(&requests, "POST", "events"));
    println!("  other:");
    for ((method, res), count) in &requests {
        if !matches!((method.as_str(), res.as_str()), ("PATCH", "services/status") | ("POST", "events")) {
            println!("    {method:6} {res:28} {count}");
        }
    }
    let total_idle: u64 = requests_after.values().sum();
    println!("until idle (all events written): {:.2} s, {total_idle} requests, {:.3} per Service, events POST {}",
        idle.as_secs_f64(), total_idle as f64 / n as f64, of(&requests_after, "POST", "events"));
    Ok(())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn_controller(bin: &PathBuf, fixture: &KubeFixture, ns: &str, port: u16, extra: &[String]) -> std::io::Result<Child> {
    Command::new(bin)
        .arg("controller")
        .arg(format!("--kubeconfig={}", fixture.kubeconfig_path().display()))
        .arg(format!("--namespace={ns}"))
        .arg(format!("--port={port}"))
        .args(["--bind-address=127.0.0.1", "--health-probe-port=0", "--leader-elect=false"])
        .args(["--webhook-mode=disabled", "--log-level=warn"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
}

/// Watches the Services until all have an address, then all the annotation.
async fn wait_converged(
    api: &Api<Service>,
    n: usize,
    child: &mut Child,
    started: Instant,
) -> Result<(Duration, Duration), Box<dyn std::error::Error>> {
    let mut have_ip = std::collections::HashSet::new();
    let mut annotated = std::collections::HashSet::new();
    let mut all_ips = None;
    let stream = watcher(api.clone(), watcher::Config::default()).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let deadline = started + Duration::from_secs(900);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Err(format!("controller exited with {status}").into());
        }
        let next = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
        let Ok(Some(item)) = next else { continue };
        let svc = item?;
        let name = svc.metadata.name.clone().unwrap_or_default();
        let ips = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref()).is_some_and(|i| !i.is_empty());
        if ips {
            have_ip.insert(name.clone());
        }
        if svc.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("metallb.io/ip-allocated-from-pool")) {
            annotated.insert(name);
        }
        if all_ips.is_none() && have_ip.len() == n {
            all_ips = Some(started.elapsed());
        }
        if let Some(t) = all_ips
            && annotated.len() == n
        {
            return Ok((t, started.elapsed()));
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

/// `ferrolb_controller_api_requests_total{method,resource}` from /metrics.
async fn scrape_requests(port: u16) -> Result<BTreeMap<(String, String), u64>, Box<dyn std::error::Error>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    let mut body = String::new();
    s.read_to_string(&mut body).await?;
    let mut out = BTreeMap::new();
    for line in body.lines().filter(|l| l.starts_with("ferrolb_controller_api_requests_total{")) {
        let label = |key: &str| {
            line.split(&format!("{key}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string()
        };
        let value: u64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0);
        out.insert((label("method"), label("resource")), value);
    }
    Ok(out)
}
