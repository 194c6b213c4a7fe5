//! Layer 2 failover bench driver (run through benches/l2-failover/run.sh).
//!
//! Three node namespaces and a router on one bridge, the real API server
//! fixture relayed into each node, one speaker per node (MetalLB's or
//! ferrolb's, same flags), one LoadBalancer Service whose address the
//! speakers announce. Each run SIGKILLs the speaker of the node that answers
//! ARP for the address and measures the time from the kill to the first ARP
//! answer (reply or gratuitous) from another node, asking every 20 ms.
//!
//! Configuration by environment (run.sh sets it):
//!   IMPL          metallb | ferrolb (ferrolb: `<SPEAKER> speaker <flags>`)
//!   SPEAKER       path of the speaker binary
//!   SPEAKER_ARGS  extra arguments, space-separated (optional)
//!   RUNS          number of kills (default 20)
//!   STABLE_SECS   one owner for this long counts as settled (default 5)
//!   PREFIX        namespace name prefix (default l2f)
//!   OUT           directory for logs and results (created)

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use ferrolb_test_harness::identity::{Identity, METALLB_NAMESPACE, apply_deploy_rbac};
use ferrolb_test_harness::kubelet::{
    EndpointOnNode, apply_endpoint_slice, create_ready_node, create_speaker_pod,
    speaker_label_selector,
};
use ferrolb_test_harness::netns::{Host, NsProcess, Topology, unique_prefix};
use ferrolb_test_harness::probe::{arp_answers, watch_first_answer};
use ferrolb_test_harness::relay::{Relay, server_port};
use ferrolb_test_harness::{KubeFixture, apply_yaml_in, install_crds};

const CRDS: &str = include_str!("../../deploy/crds/metallb.io.yaml");
const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
const SERVICE_NS: &str = "default";
const SERVICE: &str = "bench";
/// How long a kill may go unanswered before the run counts as failed.
const FAILOVER_LIMIT: Duration = Duration::from_secs(60);
/// How long the speakers may take to settle on one owner.
const SETTLE_LIMIT: Duration = Duration::from_secs(180);

#[derive(Debug)]
struct Config {
    ferrolb: bool,
    speaker: PathBuf,
    extra_args: Vec<String>,
    runs: usize,
    stable: Duration,
    prefix: String,
    out: PathBuf,
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

impl Config {
    fn from_env() -> Result<Config> {
        let ferrolb = match env_or("IMPL", "metallb").as_str() {
            "metallb" => false,
            "ferrolb" => true,
            other => bail!("IMPL must be metallb or ferrolb, not {other:?}"),
        };
        let speaker =
            PathBuf::from(std::env::var("SPEAKER").context("SPEAKER (binary path) not set")?);
        ensure!(
            speaker.is_file(),
            "SPEAKER={} is not a file",
            speaker.display()
        );
        let out = PathBuf::from(std::env::var("OUT").context("OUT not set")?);
        std::fs::create_dir_all(&out)?;
        Ok(Config {
            ferrolb,
            speaker,
            extra_args: env_or("SPEAKER_ARGS", "")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            runs: env_or("RUNS", "20").parse().context("RUNS")?,
            stable: Duration::from_secs(env_or("STABLE_SECS", "5").parse().context("STABLE_SECS")?),
            prefix: env_or("PREFIX", "l2f"),
            out,
        })
    }
}

/// The objects a cluster would have: CRDs, the shipped RBAC, the memberlist
/// Secret, Nodes and speaker Pods as kubelets write them, a pool with an
/// L2Advertisement, and a Service with endpoints on every node whose status
/// already carries the address (as MetalLB's controller would write it; no
/// controller runs).
async fn populate(admin: &Client, topo: &Topology, secret: &str) -> Result<()> {
    install_crds(admin, CRDS).await?;
    apply_deploy_rbac(admin).await?;
    let memberlist = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "memberlist", "namespace": METALLB_NAMESPACE},
        "stringData": {"secretkey": secret},
    });
    apply_yaml_in(admin, METALLB_NAMESPACE, &memberlist.to_string()).await?;
    for node in topo.nodes() {
        let ips = [IpAddr::V4(node.ipv4)];
        create_ready_node(admin, &node.role, &[], &ips).await?;
        create_speaker_pod(admin, METALLB_NAMESPACE, &pod_name(node), &node.role, &ips).await?;
    }
    let config = format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: bench\n\
         spec:\n  addresses: [{VIP}/32]\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: bench\n\
         spec:\n  ipAddressPools: [bench]\n"
    );
    apply_yaml_in(admin, METALLB_NAMESPACE, &config).await?;
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {SERVICE}\n\
         spec:\n  type: LoadBalancer\n  selector: {{app: {SERVICE}}}\n  ports: [{{port: 80, targetPort: 8080}}]\n"
    );
    apply_yaml_in(admin, SERVICE_NS, &service).await?;
    let endpoints: Vec<EndpointOnNode> = topo
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| {
            EndpointOnNode::ready(IpAddr::V4(Ipv4Addr::new(10, 244, i as u8 + 1, 5)), &n.role)
        })
        .collect();
    apply_endpoint_slice(
        admin,
        SERVICE_NS,
        SERVICE,
        &format!("{SERVICE}-1"),
        &endpoints,
        8080,
    )
    .await?;
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": VIP.to_string(), "ipMode": "VIP"}]}}});
    Api::<Service>::namespaced(admin.clone(), SERVICE_NS)
        .patch_status(SERVICE, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .context("writing the Service's status")?;
    Ok(())
}

fn pod_name(node: &Host) -> String {
    format!("speaker-{}", node.role)
}

/// 16 random bytes as hex: the memberlist key material (any length works;
/// MetalLB's controller makes a random string).
fn random_secret() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

struct Speakers<'a> {
    cfg: &'a Config,
    topo: &'a Topology,
    kubeconfig: PathBuf,
    key_dir: PathBuf,
    running: Vec<Option<NsProcess>>,
}

impl Speakers<'_> {
    fn start(&mut self, index: usize, note: &str) -> Result<()> {
        let node = &self.topo.nodes()[index];
        let mut cmd = Command::new(&self.cfg.speaker);
        if self.cfg.ferrolb {
            cmd.arg("speaker");
        }
        cmd.arg(format!("--node-name={}", node.role))
            .arg(format!("--ml-bindaddr={}", node.ipv4))
            .arg(format!("--ml-labels={}", speaker_label_selector()))
            .arg(format!("--namespace={METALLB_NAMESPACE}"))
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(&self.cfg.extra_args)
            .env("METALLB_ML_SECRET_KEY_PATH", &self.key_dir)
            .env("METALLB_NODE_NAME", &node.role)
            .env("METALLB_POD_NAME", pod_name(node))
            .env("METALLB_NAMESPACE", METALLB_NAMESPACE);
        let log = self.log_path(node);
        append(&log, &format!("==== bench: {note}\n"))?;
        self.running[index] = Some(node.ns.spawn(&cmd, &log)?);
        Ok(())
    }

    fn log_path(&self, node: &Host) -> PathBuf {
        self.cfg.out.join(format!("speaker-{}.log", node.role))
    }

    fn kill(&mut self, index: usize) -> Result<Instant> {
        let proc = self.running[index]
            .as_mut()
            .with_context(|| format!("speaker {index} is not running"))?;
        Ok(proc.kill()?)
    }

    /// Fails when a speaker exited by itself (a crash would otherwise look
    /// like a failover).
    fn check_alive(&mut self) -> Result<()> {
        for (i, proc) in self.running.iter_mut().enumerate() {
            let exited = match proc {
                Some(p) => p.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                bail!(
                    "the speaker of {} exited by itself ({status}); see {}",
                    self.topo.nodes()[i].role,
                    self.log_path(&self.topo.nodes()[i]).display()
                );
            }
        }
        Ok(())
    }
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Waits until exactly one node answers ARP for the VIP, the same one for
/// `stable`; returns its index.
fn wait_single_owner(topo: &Topology, speakers: &mut Speakers, stable: Duration) -> Result<usize> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut current: Option<(String, Instant)> = None;
    let mut last_seen = Vec::new();
    loop {
        speakers.check_alive()?;
        let macs = arp_answers(&topo.router().ns, VIP, 2)?;
        match (macs.as_slice(), &current) {
            ([mac], Some((owner, since))) if mac == owner => {
                if since.elapsed() >= stable {
                    return topo
                        .nodes()
                        .iter()
                        .position(|n| &n.mac == mac)
                        .with_context(|| format!("{mac} is no node's MAC"));
                }
            }
            ([mac], _) => current = Some((mac.clone(), Instant::now())),
            _ => current = None,
        }
        if Instant::now() > deadline {
            bail!(
                "no single stable owner of {VIP} after {SETTLE_LIMIT:?}; last answers {last_seen:?}"
            );
        }
        last_seen = macs;
    }
}

struct Sample {
    killed: String,
    taken_by: String,
    failover: Duration,
    gratuitous: bool,
}

fn measure(topo: &Topology, speakers: &mut Speakers, owner: usize) -> Result<Sample> {
    let old = &topo.nodes()[owner];
    let deadline = Instant::now() + FAILOVER_LIMIT;
    let (killed_at, answer) = std::thread::scope(|s| -> Result<_> {
        let watcher = s.spawn(|| watch_first_answer(topo.router(), VIP, &old.mac, deadline));
        // Let the watcher's first requests go out (and catch a second owner,
        // should there be one) before the kill.
        std::thread::sleep(Duration::from_millis(200));
        let killed_at = speakers.kill(owner);
        let answer = watcher
            .join()
            .map_err(|_| anyhow::anyhow!("the ARP watcher panicked"))?;
        Ok((killed_at?, answer?))
    })?;
    let answer =
        answer.with_context(|| format!("nobody took {VIP} over within {FAILOVER_LIMIT:?}"))?;
    ensure!(
        answer.at >= killed_at,
        "{} answered for {VIP} before {}'s speaker was killed (two owners)",
        answer.mac,
        old.role
    );
    let taken_by = topo
        .nodes()
        .iter()
        .find(|n| n.mac == answer.mac)
        .map_or_else(|| answer.mac.clone(), |n| n.role.clone());
    Ok(Sample {
        killed: old.role.clone(),
        taken_by,
        failover: answer.at - killed_at,
        gratuitous: answer.gratuitous,
    })
}

fn summary(cfg: &Config, samples: &[Sample], failures: usize) -> String {
    let mut secs: Vec<f64> = samples.iter().map(|s| s.failover.as_secs_f64()).collect();
    secs.sort_by(f64::total_cmp);
    let median = match secs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => secs[n / 2],
        n => (secs[n / 2 - 1] + secs[n / 2]) / 2.0,
    };
    let worst = secs.last().copied().unwrap_or(f64::NAN);
    let best = secs.first().copied().unwrap_or(f64::NAN);
    let impl_name = if cfg.ferrolb { "ferrolb" } else { "metallb" };
    format!(
        "impl={impl_name} speaker={} runs={} measured={} failed={failures}\n\
         failover_median_seconds={median:.3}\nfailover_worst_seconds={worst:.3}\n\
         failover_best_seconds={best:.3}\n",
        cfg.speaker.display(),
        cfg.runs,
        secs.len(),
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let cfg = Config::from_env()?;
    eprintln!("l2-failover: starting the API server fixture");
    let fixture = KubeFixture::start().await?;
    let topo = Topology::new(&unique_prefix(&cfg.prefix), 3)?;
    eprintln!("l2-failover: topology {} (router + 3 nodes)", topo.prefix());
    let port = server_port(fixture.server_url())?;
    let _relays = topo
        .nodes()
        .iter()
        .map(|n| Relay::start(&n.ns, port))
        .collect::<Result<Vec<_>, _>>()?;
    let admin = fixture.client()?;
    let secret = random_secret()?;
    populate(&admin, &topo, &secret).await?;
    let key_dir = cfg.out.join("memberlist");
    std::fs::create_dir_all(&key_dir)?;
    std::fs::write(key_dir.join("secretkey"), &secret)?;
    let kubeconfig =
        Identity::speaker().write_kubeconfig(&fixture, &cfg.out.join("speaker.kubeconfig"))?;

    let mut speakers = Speakers {
        cfg: &cfg,
        topo: &topo,
        kubeconfig,
        key_dir,
        running: topo.nodes().iter().map(|_| None).collect(),
    };
    for i in 0..topo.nodes().len() {
        speakers.start(i, "start")?;
    }
    let started = Instant::now();
    let mut owner = wait_single_owner(&topo, &mut speakers, cfg.stable)?;
    eprintln!(
        "l2-failover: {} owns {VIP} ({:.1} s after start, stable {:?})",
        topo.nodes()[owner].role,
        started.elapsed().as_secs_f64(),
        cfg.stable
    );

    let results = cfg.out.join("runs.txt");
    let mut samples = Vec::new();
    let mut failures = 0;
    for run in 1..=cfg.runs {
        match measure(&topo, &mut speakers, owner) {
            Ok(sample) => {
                let line = format!(
                    "run {run:>2}: killed {} -> {} answered after {:.3} s ({})",
                    sample.killed,
                    sample.taken_by,
                    sample.failover.as_secs_f64(),
                    if sample.gratuitous {
                        "gratuitous ARP"
                    } else {
                        "ARP reply"
                    }
                );
                println!("{line}");
                append(&results, &format!("{line}\n"))?;
                samples.push(sample);
            }
            Err(e) => {
                failures += 1;
                let line = format!("run {run:>2}: FAILED: {e:#}");
                println!("{line}");
                append(&results, &format!("{line}\n"))?;
            }
        }
        speakers.start(owner, &format!("restart after run {run}"))?;
        owner = wait_single_owner(&topo, &mut speakers, cfg.stable)?;
    }
    let text = summary(&cfg, &samples, failures);
    print!("{text}");
    std::fs::write(cfg.out.join("result.env"), &text)?;
    ensure!(failures == 0, "{failures} of {} runs failed", cfg.runs);
    Ok(())
}
