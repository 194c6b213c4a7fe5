//! Speaker benchmarks (run through benches/speaker/run.sh; needs root).
//!
//! One node network namespace and a router on one bridge, the real API
//! server fixture relayed into the node, and one `ferrolb speaker` in the
//! node, run as the `metallb-system/speaker` ServiceAccount under the shipped
//! RBAC with its failure detector on (`--ml-bindaddr`, `--ml-labels`), as a
//! DaemonSet runs it. Before the speaker starts, the API server holds
//! SERVICES LoadBalancer Services whose status already carries one address
//! each from one pool (198.18.0.0/22, the RFC 2544 benchmarking range),
//! SLICES EndpointSlices per Service with ENDPOINTS endpoints each spread
//! over NODES Node objects, and the pool with an L2Advertisement.
//!
//! Figure 1 (memory): the speaker's peak RSS (VmHWM) and the time from its
//! start until its /metrics has a `metallb_speaker_announced` line for every
//! Service, then the time until every ServiceL2Status exists.
//!
//! Figure 2 (ARP): from the router's eth0, RATE ARP requests per second for
//! random announced addresses during SECONDS, each reply matched to its
//! request; reply latency percentiles, the share answered, and the
//! speaker's CPU (utime+stime from /proc/<pid>/stat) over the window, next
//! to an idle window of the same length just before.
//!
//! Configuration by environment (run.sh sets it):
//!   SPEAKER    path of the ferrolb binary (`<SPEAKER> speaker <flags>`)
//!   SERVICES   LoadBalancer Services (default 1000, at most 1022)
//!   SLICES     EndpointSlices per Service (default 10)
//!   ENDPOINTS  endpoints per EndpointSlice (default 3)
//!   NODES      Node objects the endpoints are spread over (default 10; node1 runs the speaker)
//!   RATE       ARP requests per second (default 10000)
//!   SECONDS    length of the ARP window (default 15; 0 skips figure 2)
//!   PREFIX     network namespace prefix (default sb)
//!   SPEAKER_EXE  when SPEAKER is a wrapper (heaptrack, perf): the real
//!              binary, so the figures are read from its process
//!   HOLD       seconds to keep everything running after the figures, for
//!              profiling the speaker by hand (default 0)
//!   OUT        directory for logs and results (created)
//!
//! Output: `key=value` lines on stdout; progress on stderr.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ferrolb_api::v1beta1::ServiceL2Status;
use ferrolb_test_harness::identity::{Identity, METALLB_NAMESPACE, apply_deploy_rbac};
use ferrolb_test_harness::kubelet::{
    EndpointOnNode, apply_endpoint_slice, create_ready_node, create_speaker_pod,
    speaker_label_selector,
};
use ferrolb_test_harness::netns::{Host, NsProcess, Topology, unique_prefix};
use ferrolb_test_harness::relay::{Relay, server_port};
use ferrolb_test_harness::{KubeFixture, apply_yaml_in, create_namespace, install_crds};
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const SERVICE_NS: &str = "bench";
/// The pool: RFC 2544's benchmarking range, one address per Service.
const POOL_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const POOL_PREFIX: u8 = 22;
/// Services created at once; the fixture shares two cores with the speaker.
const CREATE_CONCURRENCY: usize = 16;
const ANNOUNCE_LIMIT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(200);
/// At rest: under this share of one core over [`QUIET_WINDOW`]. The watch
/// events of the speaker's own ServiceL2Status writes keep it busy well
/// after the writes are done, so a fixed pause is not enough.
const QUIET_SHARE: f64 = 0.05;
const QUIET_WINDOW: Duration = Duration::from_secs(2);
const QUIET_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Config {
    speaker: PathBuf,
    services: usize,
    slices: usize,
    endpoints: usize,
    nodes: usize,
    rate: u64,
    seconds: u64,
    prefix: String,
    out: PathBuf,
}

fn env_num<T: std::str::FromStr>(key: &str, default: T) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(key) {
        Ok(v) => v.parse().with_context(|| format!("{key}={v:?}")),
        Err(_) => Ok(default),
    }
}

impl Config {
    fn from_env() -> Result<Config> {
        let speaker = PathBuf::from(std::env::var("SPEAKER").context("SPEAKER (ferrolb binary) not set")?);
        ensure!(speaker.is_file(), "SPEAKER={} is not a file", speaker.display());
        let out = PathBuf::from(std::env::var("OUT").context("OUT not set")?);
        std::fs::create_dir_all(&out)?;
        let cfg = Config {
            speaker,
            services: env_num("SERVICES", 1000)?,
            slices: env_num("SLICES", 10)?,
            endpoints: env_num("ENDPOINTS", 3)?,
            nodes: env_num("NODES", 10)?,
            rate: env_num("RATE", 10_000)?,
            seconds: env_num("SECONDS", 15)?,
            prefix: std::env::var("PREFIX").unwrap_or_else(|_| "sb".into()),
            out,
        };
        let pool_size = 1usize << (32 - POOL_PREFIX);
        ensure!((1..pool_size - 1).contains(&cfg.services), "SERVICES must be 1..{}", pool_size - 2);
        ensure!(cfg.slices >= 1 && cfg.endpoints >= 1 && cfg.nodes >= 1, "SLICES, ENDPOINTS, NODES must be positive");
        ensure!(cfg.services * cfg.slices * cfg.endpoints <= 1 << 16, "at most 65536 endpoints (10.244.0.0/16)");
        ensure!((2..=200).contains(&cfg.nodes), "NODES must be 2..200 (node2 holds the silent peer)");
        // Bounded traffic: the generator keeps one slot per request.
        ensure!(cfg.rate * cfg.seconds <= 1_000_000, "RATE*SECONDS must stay under 10^6 requests");
        ensure!(cfg.rate <= 100_000 && cfg.seconds <= 120, "RATE at most 100000/s, SECONDS at most 120");
        Ok(cfg)
    }
}

/// Service `i`'s address: the pool's (i+1)-th (the network address unused).
fn vip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(POOL_BASE) + i as u32 + 1)
}

fn node_name(n: usize) -> String {
    format!("node{n}")
}

/// The cluster as a DaemonSet's speaker would find it; no controller runs,
/// so Service status is written directly, as MetalLB's controller would.
mod objects {
    use super::*;

    pub async fn populate(admin: &Client, cfg: &Config, speaker_node: &Host) -> Result<()> {
        install_crds(admin, &ferrolb_api::crds::render_yaml()).await?;
        apply_deploy_rbac(admin).await?;
        create_namespace(admin, SERVICE_NS).await?;
        for n in 1..=cfg.nodes {
            // Only node1 exists; the others carry endpoints and are never live.
            // Addresses on the segment where no namespace answers (node1 is .11).
            let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10 + n as u8));
            let ip = if n == 1 { IpAddr::V4(speaker_node.ipv4) } else { ip };
            create_ready_node(admin, &node_name(n), &[], &[ip]).await?;
        }
        create_speaker_pod(admin, METALLB_NAMESPACE, &pod_name(), &node_name(1), &[IpAddr::V4(speaker_node.ipv4)]).await?;
        // A second speaker Pod, on node2, whose speaker never runs. Without
        // any peer Pod a lone speaker's failure detector never settles (the
        // empty peer list equals the initial one, so it is never handed
        // over) and it announces nothing; see docs/benchmarks-speaker.md.
        // With one silent peer it settles after its 2 s settle timeout and,
        // node2 never being live, node1 is the only candidate everywhere.
        let phantom = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 12));
        create_speaker_pod(admin, METALLB_NAMESPACE, &format!("speaker-{}", node_name(2)), &node_name(2), &[phantom]).await?;
        let config = format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: bench}}\n\
             spec: {{addresses: [{POOL_BASE}/{POOL_PREFIX}], autoAssign: false}}\n---\n\
             apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: bench}}\n\
             spec: {{ipAddressPools: [bench]}}\n"
        );
        apply_yaml_in(admin, METALLB_NAMESPACE, &config).await?;

        let started = Instant::now();
        let cfg = Arc::new((cfg.services, cfg.slices, cfg.endpoints, cfg.nodes));
        let limit = Arc::new(tokio::sync::Semaphore::new(CREATE_CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..cfg.0 {
            let permit = limit.clone().acquire_owned().await?;
            let (admin, cfg) = (admin.clone(), cfg.clone());
            tasks.spawn(async move {
                let _permit = permit;
                service_with_slices(&admin, i, cfg.1, cfg.2, cfg.3).await
            });
            while let Some(done) = tasks.try_join_next() {
                done??;
            }
            if (i + 1) % 100 == 0 {
                eprintln!("speaker-bench: {} Services issued ({:.0} s)", i + 1, started.elapsed().as_secs_f64());
            }
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        eprintln!(
            "speaker-bench: {} Services, {} EndpointSlices in {:.0} s",
            cfg.0,
            cfg.0 * cfg.1,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    async fn service_with_slices(admin: &Client, i: usize, slices: usize, endpoints: usize, nodes: usize) -> Result<()> {
        let name = format!("svc-{i:04}");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": SERVICE_NS},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                "externalTrafficPolicy": "Cluster",
            }
        }))?;
        let api: Api<Service> = Api::namespaced(admin.clone(), SERVICE_NS);
        api.create(&PostParams::default(), &svc).await.with_context(|| format!("creating Service {name}"))?;
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": vip(i).to_string(), "ipMode": "VIP"}]}}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .with_context(|| format!("writing the status of Service {name}"))?;
        for s in 0..slices {
            let eps: Vec<EndpointOnNode> = (0..endpoints)
                .map(|e| {
                    let idx = (i * slices + s) * endpoints + e;
                    let addr = Ipv4Addr::new(10, 244, (idx >> 8) as u8, idx as u8);
                    EndpointOnNode::ready(IpAddr::V4(addr), &node_name(idx % nodes + 1))
                })
                .collect();
            apply_endpoint_slice(admin, SERVICE_NS, &name, &format!("{name}-{s}"), &eps, 8080).await?;
        }
        Ok(())
    }

    pub fn pod_name() -> String {
        format!("speaker-{}", node_name(1))
    }

    pub async fn l2_statuses(admin: &Client) -> Result<usize> {
        let api: Api<ServiceL2Status> = Api::namespaced(admin.clone(), METALLB_NAMESPACE);
        Ok(api.list_metadata(&ListParams::default()).await?.items.len())
    }
}

/// What /proc and the speaker's /metrics say about the running process.
mod observe {
    use super::*;

    /// A `VmHWM:`-style line of /proc/<pid>/status, in KiB.
    pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {field} in /proc/{pid}/status"))
    }

    /// utime + stime of the whole process (every thread), in seconds.
    pub fn cpu_seconds(pid: u32) -> Result<f64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name, which may itself hold spaces or ')'.
        let rest = text.rsplit_once(')').map(|(_, r)| r).context("malformed /proc/pid/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
        let ticks: u64 = fields.get(11).zip(fields.get(12)).and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?)).context("utime/stime")?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        ensure!(hz > 0, "sysconf(_SC_CLK_TCK) failed");
        Ok(ticks as f64 / hz as f64)
    }

    pub fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
    }

    /// GET /metrics on port 7472 from inside the speaker's namespace.
    pub fn scrape(node: &Host) -> String {
        node.ns
            .enter(|| {
                let mut s = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], 7472)), Duration::from_secs(1)).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                s.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n").ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out)
            })
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Layer 2 announcements currently reported (`metallb_speaker_announced ... 1`).
    pub fn announced(metrics: &str) -> usize {
        metrics
            .lines()
            .filter(|l| l.starts_with("metallb_speaker_announced{") && l.contains("protocol=\"layer2\"") && l.ends_with(" 1"))
            .count()
    }

    /// Sum of every sample of `family` whose line contains `filter`.
    pub fn sum(metrics: &str, family: &str, filter: &str) -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.strip_prefix(family).is_some_and(|r| r.starts_with('{') || r.starts_with(' ')) && l.contains(filter)
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// The speaker's layer 2 counters, for the share the speaker itself saw.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct L2Counters {
        pub requests: f64,
        pub responses: f64,
        pub dropped_queue: f64,
        pub dropped_socket: f64,
    }

    pub fn l2_counters(node: &Host) -> L2Counters {
        let m = scrape(node);
        L2Counters {
            requests: sum(&m, "metallb_layer2_requests_received", ""),
            responses: sum(&m, "metallb_layer2_responses_sent", ""),
            dropped_queue: sum(&m, "ferrolb_layer2_frames_dropped_total", "reason=\"queue_full\""),
            dropped_socket: sum(&m, "ferrolb_layer2_frames_dropped_total", "reason=\"socket_buffer_full\""),
        }
    }

    impl std::ops::Sub for L2Counters {
        type Output = L2Counters;
        fn sub(self, o: L2Counters) -> L2Counters {
            L2Counters {
                requests: self.requests - o.requests,
                responses: self.responses - o.responses,
                dropped_queue: self.dropped_queue - o.dropped_queue,
                dropped_socket: self.dropped_socket - o.dropped_socket,
            }
        }
    }
}

/// The ARP load generator: one AF_PACKET socket on the router's eth0, a
/// sending thread paced to the rate and a receiving thread matching replies.
///
/// Hand-written on libc rather than through a packet crate: the frames are
/// 42 fixed bytes, and the measurement needs the kernel's receive timestamp
/// (SO_TIMESTAMPNS), which the harness's ARP watcher does not take.
///
/// Each request carries its sequence number in its sender IP
/// (10.200.0.0/16, seq mod 65536): the reply is addressed to that IP, so a
/// reply names its request exactly even when one address is asked twice.
/// The speaker answers any sender (docs/l2.md), so the tag costs it nothing.
mod arpload {
    use std::io;
    use std::net::Ipv4Addr;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    const ETH_P_ARP: u16 = 0x0806;
    const TAG_NET: u32 = u32::from_be_bytes([10, 200, 0, 0]);
    const TAGS: u64 = 1 << 16;
    /// Replies may arrive this long after the last request.
    const GRACE: Duration = Duration::from_secs(1);

    pub struct Load<'a> {
        pub mac: [u8; 6],
        /// The address asked for by each request, in sending order.
        pub plan: &'a [Ipv4Addr],
        pub rate: u64,
        /// Read at the first and right after the last request: the CPU
        /// window is the sending window exactly.
        pub cpu_seconds: &'a (dyn Fn() -> f64 + Sync),
    }

    /// `n` addresses drawn uniformly from `targets`, fixed seed: every run
    /// asks the same sequence.
    pub fn plan(targets: &[Ipv4Addr], n: u64) -> Vec<Ipv4Addr> {
        // xorshift64: uniform enough to pick addresses; not worth a dependency.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .filter_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                targets.get((state % targets.len().max(1) as u64) as usize).copied()
            })
            .collect()
    }

    #[derive(Debug, Default)]
    pub struct Outcome {
        pub sent: u64,
        pub send_errors: u64,
        pub send_seconds: f64,
        /// `cpu_seconds()` after the last request minus before the first.
        pub cpu_seconds: f64,
        pub answered: u64,
        pub duplicates: u64,
        /// Replies whose tag or sender IP matched no request.
        pub unmatched: u64,
        /// Replies without a kernel timestamp (latency taken in user space).
        pub user_timestamps: u64,
        /// Reply latency in nanoseconds, sorted.
        pub latencies: Vec<u64>,
    }

    fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
    }

    fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: value is a valid c_int of the length given.
        check(unsafe {
            libc::setsockopt(fd, level, name, (&value as *const libc::c_int).cast(), std::mem::size_of::<libc::c_int>() as libc::socklen_t)
        })
        .map(drop)
    }

    /// Opens and binds the socket; must run on a thread inside the
    /// router's namespace (the socket stays there).
    pub fn open(iface: &str) -> io::Result<(OwnedFd, libc::sockaddr_ll)> {
        let name = std::ffi::CString::new(iface).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: name is a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain socket(2); the fd is owned right after.
        let fd = check(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(ETH_P_ARP.to_be())) })?;
        // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // Our own 10^4 requests a second would otherwise come back to us.
        set_int(fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
        set_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
        // Room for a whole second of replies if the receiver is descheduled.
        set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20)?;
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ARP.to_be();
        addr.sll_ifindex = i32::try_from(ifindex).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: addr is a valid sockaddr_ll of the length given.
        check(unsafe {
            libc::bind(fd, (&addr as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t)
        })?;
        Ok((sock, addr))
    }

    fn request(mac: [u8; 6], tag: Ipv4Addr, target: Ipv4Addr) -> [u8; 42] {
        let mut f = [0u8; 42];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&mac);
        f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
        f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
        f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
        f[18] = 6;
        f[19] = 4;
        f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
        f[22..28].copy_from_slice(&mac);
        f[28..32].copy_from_slice(&tag.octets());
        f[38..42].copy_from_slice(&target.octets());
        f
    }

    /// `(tag, sender IP)` of an ARP reply addressed to `mac` with a tag IP.
    fn reply(frame: &[u8], mac: [u8; 6]) -> Option<(u64, Ipv4Addr)> {
        if frame.len() < 42 || frame[0..6] != mac || frame[12..14] != ETH_P_ARP.to_be_bytes() || frame[20..22] != 2u16.to_be_bytes() {
            return None;
        }
        let spa = Ipv4Addr::new(frame[28], frame[29], frame[30], frame[31]);
        let tpa = u32::from_be_bytes([frame[38], frame[39], frame[40], frame[41]]);
        (tpa >> 16 == TAG_NET >> 16 && frame[32..38] == mac).then_some((u64::from(tpa & 0xffff), spa))
    }

    fn realtime_ns() -> u64 {
        // SAFETY: timespec is plain data; clock_gettime fills it.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: a valid timespec pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// Sends the plan at `load.rate` requests a second and matches
    /// the replies until [`GRACE`] after the last request.
    pub fn run(sock: &OwnedFd, addr: &libc::sockaddr_ll, load: &Load) -> io::Result<Outcome> {
        let total = load.plan.len() as u64;
        if total == 0 || load.rate == 0 {
            return Ok(Outcome::default());
        }
        let duration = Duration::from_secs_f64(total as f64 / load.rate as f64);
        let sent_at: Vec<AtomicU64> = (0..total).map(|_| AtomicU64::new(0)).collect();
        let sent_count = AtomicU64::new(0);
        let start = Instant::now();
        let end = start + duration + GRACE;
        let fd = sock.as_raw_fd();
        std::thread::scope(|s| {
            let sender = s.spawn(|| send(fd, addr, load, total, start, &sent_at, &sent_count));
            let received = receive(fd, load, end, &sent_at, &sent_count);
            let (send_errors, send_seconds, cpu_seconds) = sender.join().map_err(|_| io::Error::other("the sending thread panicked"))??;
            let mut out = received?;
            out.sent = sent_count.load(Ordering::Acquire);
            out.send_errors = send_errors;
            out.send_seconds = send_seconds;
            out.cpu_seconds = cpu_seconds;
            out.latencies.sort_unstable();
            Ok(out)
        })
    }

    /// Paced in small bursts: every ~100 µs, whatever is due by now.
    fn send(
        fd: RawFd,
        addr: &libc::sockaddr_ll,
        load: &Load,
        total: u64,
        start: Instant,
        sent_at: &[AtomicU64],
        sent_count: &AtomicU64,
    ) -> io::Result<(u64, f64, f64)> {
        let cpu_before = (load.cpu_seconds)();
        let mut errors = 0;
        let mut seq = 0u64;
        while seq < total {
            let due = ((start.elapsed().as_nanos() * u128::from(load.rate)) / 1_000_000_000).min(u128::from(total)) as u64;
            while seq < due {
                let target = load.plan[seq as usize];
                let tag = Ipv4Addr::from(TAG_NET | (seq % TAGS) as u32);
                let frame = request(load.mac, tag, target);
                sent_at[seq as usize].store(realtime_ns(), Ordering::Release);
                // Published before the frame leaves: the reply can be read
                // before sendto returns to this thread.
                sent_count.store(seq + 1, Ordering::Release);
                // SAFETY: frame and addr are valid for the lengths given.
                let rc = unsafe {
                    libc::sendto(fd, frame.as_ptr().cast(), frame.len(), 0, (addr as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t)
                };
                if rc < 0 {
                    errors += 1;
                    sent_at[seq as usize].store(0, Ordering::Release);
                }
                seq += 1;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let elapsed = start.elapsed().as_secs_f64();
        Ok((errors, elapsed, (load.cpu_seconds)() - cpu_before))
    }

    fn receive(fd: RawFd, load: &Load, end: Instant, sent_at: &[AtomicU64], sent_count: &AtomicU64) -> io::Result<Outcome> {
        let mut out = Outcome::default();
        let mut answered = vec![false; sent_at.len()];
        let mut buf = [0u8; 256];
        let mut control = [0u64; 16];
        loop {
            let now = Instant::now();
            if now >= end {
                return Ok(out);
            }
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            let ms = (end - now).as_millis().clamp(1, 50) as libc::c_int;
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                continue;
            }
            loop {
                let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
                // SAFETY: msghdr is plain data; all-zero is valid.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of_val(&control) as _;
                // SAFETY: msg points at buffers valid for their lengths.
                let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
                        break;
                    }
                    return Err(e);
                }
                let user_ns = realtime_ns();
                let Some((tag, spa)) = reply(&buf[..n as usize], load.mac) else { continue };
                let kernel_ns = rx_timestamp(&msg);
                if kernel_ns.is_none() {
                    out.user_timestamps += 1;
                }
                // The newest request carrying this tag; 65536 requests back
                // is seconds at these rates, far beyond any reply.
                let sent = sent_count.load(Ordering::Acquire);
                if sent == 0 {
                    out.unmatched += 1;
                    continue;
                }
                let last = sent - 1;
                let back = (last % TAGS + TAGS - tag) % TAGS;
                let Some(seq) = last.checked_sub(back) else {
                    out.unmatched += 1;
                    continue;
                };
                let idx = seq as usize;
                let at = sent_at[idx].load(Ordering::Acquire);
                // The reply must name the address that request asked for.
                if at == 0 || load.plan[idx] != spa {
                    out.unmatched += 1;
                    continue;
                }
                if answered[idx] {
                    out.duplicates += 1;
                    continue;
                }
                answered[idx] = true;
                out.answered += 1;
                out.latencies.push(kernel_ns.unwrap_or(user_ns).saturating_sub(at));
            }
        }
    }

    fn rx_timestamp(msg: &libc::msghdr) -> Option<u64> {
        // SAFETY: msg was filled by recvmsg; the CMSG macros walk its control buffer.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                    return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                }
                cmsg = libc::CMSG_NXTHDR(msg, cmsg);
            }
        }
        None
    }

    pub fn percentile(sorted: &[u64], p: f64) -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1] as f64
    }
}

/// The speaker process in node1, with the flags a DaemonSet gives it.
fn start_speaker(cfg: &Config, fixture: &KubeFixture, node: &Host) -> Result<NsProcess> {
    let kubeconfig = Identity::speaker().write_kubeconfig(fixture, &cfg.out.join("speaker.kubeconfig"))?;
    let key_dir = cfg.out.join("memberlist");
    std::fs::create_dir_all(&key_dir)?;
    std::fs::write(key_dir.join("secretkey"), b"ferrolb-bench-key-22ch")?;
    let mut cmd = Command::new(&cfg.speaker);
    cmd.arg("speaker")
        .args(["--node-name", &node_name(1), "--pod-name", &objects::pod_name()])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--ml-bindaddr", &node.ipv4.to_string(), "--ml-labels", &speaker_label_selector()])
        .arg("--ml-secret-key-path")
        .arg(&key_dir)
        .arg("--excludel2-path")
        .arg(cfg.out.join("no-excludel2.yaml"))
        .args(["--health-probe-port", "0", "--log-format", "text", "--log-level", "info"])
        .env("METALLB_NAMESPACE", METALLB_NAMESPACE);
    Ok(node.ns.spawn(&cmd, &cfg.out.join("speaker.log"))?)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn report(key: &str, value: impl std::fmt::Display) {
    println!("{key}={value}");
}

/// Figure 1: waits until every Service is announced, then every
/// ServiceL2Status written, then until the speaker is at rest; reports
/// times and VmHWM.
async fn until_announced(cfg: &Config, admin: &Client, node: &Host, speaker: &mut NsProcess, started: Instant) -> Result<()> {
    let pid = speaker.pid();
    let mut last_print = Instant::now();
    loop {
        if let Some(status) = speaker.try_wait()? {
            bail!("the speaker exited ({status}); see {}", cfg.out.join("speaker.log").display());
        }
        let n = observe::announced(&observe::scrape(node));
        if n >= cfg.services {
            break;
        }
        ensure!(started.elapsed() < ANNOUNCE_LIMIT, "only {n} of {} announced after {ANNOUNCE_LIMIT:?}", cfg.services);
        if last_print.elapsed() > Duration::from_secs(5) {
            eprintln!("speaker-bench: {n} announced after {:.1} s, VmRSS {} MiB", started.elapsed().as_secs_f64(), mib(observe::status_kib(pid, "VmRSS")?));
            last_print = Instant::now();
        }
        tokio::time::sleep(POLL).await;
    }
    let announced = started.elapsed();
    report("all_announced_seconds", format!("{:.2}", announced.as_secs_f64()));
    report("vmhwm_at_all_announced_mib", mib(observe::status_kib(pid, "VmHWM")?));
    report("rss_anon_at_all_announced_mib", mib(observe::status_kib(pid, "RssAnon")?));
    loop {
        let n = objects::l2_statuses(admin).await?;
        if n >= cfg.services {
            break;
        }
        ensure!(started.elapsed() < ANNOUNCE_LIMIT, "only {n} ServiceL2Status after {ANNOUNCE_LIMIT:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    report("all_l2status_seconds", format!("{:.1}", started.elapsed().as_secs_f64()));
    loop {
        let before = observe::cpu_seconds(pid)?;
        tokio::time::sleep(QUIET_WINDOW).await;
        let share = (observe::cpu_seconds(pid)? - before) / QUIET_WINDOW.as_secs_f64();
        if share < QUIET_SHARE {
            break;
        }
        ensure!(started.elapsed() < QUIET_LIMIT, "the speaker still uses {:.0} % of a core after {QUIET_LIMIT:?}", share * 100.0);
    }
    report("quiet_seconds", format!("{:.0}", started.elapsed().as_secs_f64()));
    report("cpu_seconds_until_quiet", format!("{:.1}", observe::cpu_seconds(pid)?));
    report("vmhwm_settled_mib", mib(observe::status_kib(pid, "VmHWM")?));
    report("vmrss_settled_mib", mib(observe::status_kib(pid, "VmRSS")?));
    // Heap and stacks versus pages of the binary itself.
    report("rss_anon_settled_mib", mib(observe::status_kib(pid, "RssAnon")?));
    report("rss_file_settled_mib", mib(observe::status_kib(pid, "RssFile")?));
    Ok(())
}

/// Figure 2: an idle window, then the load window; CPU over each.
fn arp_load(cfg: &Config, topo: &Topology, pid: u32) -> Result<()> {
    let node = topo.node(1);
    let router = topo.router();
    let window = Duration::from_secs(cfg.seconds);

    let idle_cpu = observe::cpu_seconds(pid)?;
    let idle_start = Instant::now();
    std::thread::sleep(window);
    let idle = (observe::cpu_seconds(pid)? - idle_cpu) / idle_start.elapsed().as_secs_f64();
    report("idle_cpu_percent_of_one_core", format!("{:.1}", idle * 100.0));

    let mac = parse_mac(&router.mac)?;
    let targets: Vec<Ipv4Addr> = (0..cfg.services).map(vip).collect();
    let plan = arpload::plan(&targets, cfg.rate * cfg.seconds);
    let (sock, addr) = router.ns.enter(|| arpload::open("eth0"))?.context("opening the ARP socket in the router")?;
    let before = observe::l2_counters(node);
    // A vanished process reads as NaN, which the report then shows.
    let cpu_seconds = move || observe::cpu_seconds(pid).unwrap_or(f64::NAN);
    let load = arpload::Load { mac, plan: &plan, rate: cfg.rate, cpu_seconds: &cpu_seconds };
    let out = arpload::run(&sock, &addr, &load)?;
    let seen = observe::l2_counters(node) - before;
    let ms = |ns: f64| format!("{:.3}", ns / 1e6);
    let sent = out.sent - out.send_errors;
    report("arp_requests_sent", sent);
    report("arp_send_errors", out.send_errors);
    report("arp_send_rate_per_second", format!("{:.0}", out.sent as f64 / out.send_seconds.max(f64::EPSILON)));
    report("arp_answered", out.answered);
    report("arp_answered_percent", format!("{:.3}", 100.0 * out.answered as f64 / sent.max(1) as f64));
    report("arp_duplicate_replies", out.duplicates);
    report("arp_unmatched_replies", out.unmatched);
    report("arp_replies_without_kernel_timestamp", out.user_timestamps);
    report("arp_latency_p50_ms", ms(arpload::percentile(&out.latencies, 50.0)));
    report("arp_latency_p99_ms", ms(arpload::percentile(&out.latencies, 99.0)));
    report("arp_latency_p999_ms", ms(arpload::percentile(&out.latencies, 99.9)));
    report("arp_latency_max_ms", ms(out.latencies.last().copied().unwrap_or(0) as f64));
    report("speaker_cpu_percent_of_one_core", format!("{:.1}", 100.0 * out.cpu_seconds / out.send_seconds.max(f64::EPSILON)));
    report("speaker_requests_received", seen.requests);
    report("speaker_responses_sent", seen.responses);
    report("speaker_dropped_queue_full", seen.dropped_queue);
    report("speaker_dropped_socket_buffer_full", seen.dropped_socket);
    report("vmhwm_after_arp_mib", mib(observe::status_kib(pid, "VmHWM")?));
    report("loadavg_after_arp", observe::loadavg());
    Ok(())
}

fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let bytes: Vec<u8> = text.split(':').map(|b| u8::from_str_radix(b, 16)).collect::<Result<_, _>>()?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("{text} is not a MAC address"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let cfg = Config::from_env()?;
    report("services", cfg.services);
    report("endpointslices", cfg.services * cfg.slices);
    report("endpoints_per_slice", cfg.endpoints);
    report("node_objects", cfg.nodes);
    report("membership", "on");
    eprintln!("speaker-bench: starting the API server fixture");
    let fixture = KubeFixture::start().await?;
    let topo = Topology::new(&unique_prefix(&cfg.prefix), 1)?;
    let node = topo.node(1).clone();
    // The kernel must not answer ARP for anything but its own addresses (as
    // on a node with strictARP); the Service addresses are not on the node.
    node.ns.sysctl(&[("net.ipv4.conf.all.arp_ignore", "1"), ("net.ipv4.conf.all.arp_announce", "2")])?;
    let _relay = Relay::start(&node.ns, server_port(fixture.server_url())?)?;
    let admin = fixture.client()?;
    objects::populate(&admin, &cfg, &node).await?;

    report("loadavg_at_start", observe::loadavg());
    let started = Instant::now();
    let mut speaker = start_speaker(&cfg, &fixture, &node)?;
    let pid = match std::env::var_os("SPEAKER_EXE") {
        Some(exe) => find_process(&node, &PathBuf::from(exe)).await?,
        None => speaker.pid(),
    };
    eprintln!("speaker-bench: speaker pid {pid} in {}", node.ns.name());
    until_announced(&cfg, &admin, &node, &mut speaker, started).await?;
    if cfg.seconds > 0 {
        tokio::task::block_in_place(|| arp_load(&cfg, &topo, pid))?;
    }
    let hold: u64 = env_num("HOLD", 0)?;
    if hold > 0 {
        eprintln!("speaker-bench: holding {hold} s; speaker pid {pid}, metrics: ip netns exec {} curl -s localhost:7472/metrics", node.ns.name());
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    if let Some(status) = speaker.try_wait()? {
        bail!("the speaker exited during the run ({status})");
    }
    stop(&mut speaker, pid)
}

/// The process in `node`'s namespace running `exe` (a wrapper's child).
async fn find_process(node: &Host, exe: &std::path::Path) -> Result<u32> {
    let exe = std::fs::canonicalize(exe)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for pid in node.ns.pids()? {
            if std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe) {
                return Ok(u32::try_from(pid)?);
            }
        }
        ensure!(Instant::now() < deadline, "no process running {} in {}", exe.display(), node.ns.name());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM to the speaker itself, so a wrapper around it (a profiler) can
/// finish writing; SIGKILL to the group if it is not gone in a minute.
fn stop(speaker: &mut NsProcess, pid: u32) -> Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::pid_t::try_from(pid)?, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while speaker.try_wait()?.is_none() {
        if Instant::now() > deadline {
            speaker.kill()?;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
