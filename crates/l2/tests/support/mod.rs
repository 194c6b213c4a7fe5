//! Network-namespace fixtures for the real-kernel tests (root only; CI runs
//! as root). Topology as in test-peers.md §2, reduced to one veth pair:
//!
//! ```text
//! netns l2t-r-TAG  eth0 02:00:00:00:00:01 198.51.100.1/24 2001:db8::1/64
//!        |  veth
//! netns l2t-n-TAG  eth0 02:00:00:00:00:11 198.51.100.11/24 2001:db8::11/64
//!                  lo   198.51.100.200/32 2001:db8::200/128 (the VIPs, as kube-ipvs0 holds them)
//! ```
//!
//! The node has arp_ignore=1 / arp_announce=2 (strictARP), so its kernel
//! accepts traffic to the VIPs but never answers ARP/NDP for them: any answer
//! the router sees comes from the responder under test.

#![allow(dead_code)] // each test binary uses a part

use std::collections::BTreeMap;
use std::ffi::CString;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrolb_l2::{InterfaceInfo, InterfaceScope, L2Report, Responder, ResponderConfig};
use prometheus_client::registry::Registry;

pub const ROUTER_MAC: &str = "02:00:00:00:00:01";
pub const NODE_MAC: &str = "02:00:00:00:00:11";
pub const VIP4: &str = "198.51.100.200";
pub const VIP6: &str = "2001:db8::200";

pub fn run(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Runs a command that must succeed.
pub fn must(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Installs a Debian package if its command is missing (scripts/test.sh
/// installs them up front; this keeps a bare `cargo test` working too).
/// Serialised: tests run in parallel and apt-get takes a lock.
pub fn need(command: &str, package: &str) {
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = APT.lock().unwrap_or_else(|e| e.into_inner());
    let found = Command::new("sh").args(["-c", &format!("command -v {command}")]).output();
    if found.is_ok_and(|o| o.status.success()) {
        return;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        // A fresh machine may have no package lists yet.
        must(&["apt-get", "update", "-qq"]);
        assert!(install(), "apt-get install {package} failed");
    }
}

pub struct Topology {
    pub router: String,
    pub node: String,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.router, &self.node] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Topology {
    pub fn new(tag: &str) -> Topology {
        need("arping", "arping");
        need("ping", "iputils-ping");
        let t = Topology { router: format!("l2t-r-{tag}"), node: format!("l2t-n-{tag}") };
        for ns in [&t.router, &t.node] {
            // A namespace left over by a killed run.
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            must(&["ip", "netns", "add", ns]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            // No duplicate address detection: addresses usable at once.
            t.sysctl(ns, &["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]);
        }
        must(&["ip", "link", "add", "eth0", "netns", &t.router, "type", "veth", "peer", "name", "eth0", "netns", &t.node]);
        for (ns, mac, host) in [(&t.router, ROUTER_MAC, "1"), (&t.node, NODE_MAC, "11")] {
            must(&["ip", "-n", ns, "link", "set", "eth0", "address", mac]);
            must(&["ip", "-n", ns, "addr", "add", &format!("198.51.100.{host}/24"), "dev", "eth0"]);
            must(&["ip", "-n", ns, "addr", "add", &format!("2001:db8::{host}/64"), "dev", "eth0", "nodad"]);
        }
        t.sysctl(&t.node, &["net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"]);
        must(&["ip", "-n", &t.node, "addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
        must(&["ip", "-n", &t.node, "addr", "add", &format!("{VIP6}/128"), "dev", "lo"]);
        for ns in [&t.router, &t.node] {
            must(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        }
        t.wait_for("node link-local address", Duration::from_secs(5), || {
            let out = must(&["ip", "-n", &t.node, "-6", "addr", "show", "dev", "eth0", "scope", "link"]);
            out.contains("fe80::") && !out.contains("tentative")
        });
        t
    }

    pub fn sysctl(&self, ns: &str, settings: &[&str]) {
        let mut args = vec!["ip", "netns", "exec", ns, "sysctl", "-qw"];
        args.extend_from_slice(settings);
        must(&args);
    }

    /// Runs a command in the router namespace.
    pub fn router(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", self.router.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }

    /// `arping` from the router: the MACs that answered (empty if none).
    pub fn arping(&self, ip: &str) -> Vec<String> {
        let out = self.router(&["timeout", "10", "arping", "-r", "-c", "1", "-i", "eth0", ip]);
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    }

    /// The router's neighbour entry for `ip`: (lladdr, state) if any.
    pub fn neighbour(&self, ip: &str) -> Option<(Option<String>, String)> {
        let out = must(&["ip", "-n", &self.router, "neigh", "show", ip]);
        let line = out.lines().next()?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let lladdr = words.iter().position(|w| *w == "lladdr").and_then(|i| words.get(i + 1)).map(|s| s.to_string());
        let state = words.last().map(|s| s.to_string()).unwrap_or_default();
        Some((lladdr, state))
    }

    pub fn ping(&self, ip: &str) -> bool {
        self.router(&["ping", "-c", "1", "-W", "2", ip]).status.success()
    }

    pub fn flush_neighbours(&self) {
        must(&["ip", "-n", &self.router, "neigh", "flush", "dev", "eth0"]);
    }

    pub fn wait_for(&self, what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ok() {
            assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Moves the calling thread into a named network namespace; sockets it
/// creates afterwards (and threads it spawns) live there.
pub fn enter_netns(name: &str) -> std::io::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: a valid namespace descriptor; affects only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

pub fn if_index(name: &str) -> u32 {
    let c = CString::new(name).expect("name");
    // SAFETY: a NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

enum Cmd {
    Announce(BTreeMap<IpAddr, InterfaceScope>),
    Metrics(std_mpsc::Sender<String>),
    Interfaces(std_mpsc::Sender<Vec<InterfaceInfo>>),
    Reports(std_mpsc::Sender<Vec<L2Report>>),
}

/// A Responder running on its own thread inside a namespace, on a
/// current-thread runtime (so every socket is created in that namespace).
pub struct NodeResponder {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Cmd>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for NodeResponder {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl NodeResponder {
    pub fn start(netns: &str, cfg: ResponderConfig) -> NodeResponder {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Cmd>();
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), String>>();
        let netns = netns.to_string();
        let thread = std::thread::spawn(move || {
            if let Err(e) = enter_netns(&netns) {
                let _ = ready_tx.send(Err(format!("setns {netns}: {e}")));
                return;
            }
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let mut registry = Registry::default();
                let mut responder = match Responder::start(cfg, &mut registry).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("Responder::start: {e}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut reports = responder.reports();
                let mut seen = Vec::new();
                loop {
                    tokio::select! {
                        cmd = rx.recv() => match cmd {
                            None => return,
                            Some(Cmd::Announce(set)) => responder.set_announced(set),
                            Some(Cmd::Metrics(reply)) => {
                                let mut text = String::new();
                                let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                                let _ = reply.send(text);
                            }
                            Some(Cmd::Interfaces(reply)) => {
                                let _ = reply.send(responder.interfaces().borrow().clone());
                            }
                            Some(Cmd::Reports(reply)) => {
                                let _ = reply.send(seen.clone());
                            }
                        },
                        Some(report) = reports.recv() => seen.push(report),
                    }
                }
            });
        });
        match ready_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("responder did not start: {e}"),
            Err(e) => panic!("responder did not start: {e}"),
        }
        NodeResponder { tx: Some(tx), thread: Some(thread) }
    }

    fn send(&self, cmd: Cmd) {
        self.tx.as_ref().expect("running").send(cmd).unwrap_or_else(|_| panic!("responder thread ended"));
    }

    pub fn announce(&self, ips: &[&str]) {
        let set = ips.iter().map(|s| (s.parse().expect("ip"), InterfaceScope::All)).collect();
        self.send(Cmd::Announce(set));
    }

    pub fn metrics(&self) -> String {
        let (tx, rx) = std_mpsc::channel();
        self.send(Cmd::Metrics(tx));
        rx.recv_timeout(Duration::from_secs(5)).expect("metrics")
    }

    /// The value of `name{label="value"}` (0 if the series does not exist).
    pub fn metric(&self, name: &str, label: &str) -> u64 {
        let prefix = format!("{name}{{{label}}} ");
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0)
    }

    pub fn interfaces(&self) -> Vec<InterfaceInfo> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Cmd::Interfaces(tx));
        rx.recv_timeout(Duration::from_secs(5)).expect("interfaces")
    }

    pub fn reports(&self) -> Vec<L2Report> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Cmd::Reports(tx));
        rx.recv_timeout(Duration::from_secs(5)).expect("reports")
    }
}
