//! Network-namespace fixtures for the real-kernel tests (root only; CI runs
//! as root):
//!
//! the harness's topology (tests/harness/src/netns.rs), router and node1:
//!
//! ```text
//! <p>-router eth0 198.51.100.1/24  2001:db8::1/64   (FRR bfdd, or a second engine)
//! <p>-node1  eth0 198.51.100.11/24 2001:db8::11/64  (the engine under test)
//! ```

#![allow(dead_code)] // each test binary uses a part

use std::net::IpAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ferrolb_test_harness::{netns, routers};

use ferrolb_bfd::{Bfd, BfdError, Hop, Profile, SessionConfig, SessionStatus};
use tokio::sync::watch;

pub const ROUTER4: &str = "198.51.100.1";
pub const NODE4: &str = "198.51.100.11";
pub const ROUTER6: &str = "2001:db8::1";
pub const NODE6: &str = "2001:db8::11";
pub use routers::BFDD;

fn run(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// FRR's bfdd must be there: installed here if missing (scripts/test.sh
/// installs it up front), and the test fails if it still is not.
pub fn need_bfdd() {
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = APT.lock().unwrap_or_else(|e| e.into_inner());
    let apt = |args: &[&str]| {
        Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status().is_ok_and(|s| s.success())
    };
    if !std::path::Path::new(BFDD).exists() && !apt(&["install", "-y", "-qq", "frr"]) {
        // A fresh machine may have no package lists yet.
        apt(&["update", "-qq"]);
        apt(&["install", "-y", "-qq", "frr"]);
    }
    assert!(std::path::Path::new(BFDD).exists(), "{BFDD} missing after installing frr");
}

/// The harness's router + node1 on a bridge, with IPv6 addresses kept
/// across the link-down tests (the default flushes them).
pub struct Topology {
    topo: netns::Topology,
    pub router: String,
    pub node: String,
}

impl Topology {
    pub fn new(tag: &str) -> Topology {
        let topo = netns::Topology::new(&netns::unique_prefix(&format!("bfd{tag}")), 1).expect("topology");
        let router = topo.router().ns.name().to_string();
        let node = topo.node(1).ns.name().to_string();
        for host in [topo.router(), topo.node(1)] {
            host.ns.sysctl(&[("net.ipv6.conf.eth0.keep_addr_on_down", "1")]).expect("sysctl");
        }
        Topology { topo, router, node }
    }

    fn ns(&self, name: &str) -> &netns::NetNs {
        if name == self.router { &self.topo.router().ns } else { &self.topo.node(1).ns }
    }

    pub fn link(&self, ns: &str, up: bool) {
        self.ns(ns).set_link("eth0", up).expect("ip link set");
    }

    pub fn sysctl(&self, ns: &str, settings: &[(&str, &str)]) {
        self.ns(ns).sysctl(settings).expect("sysctl");
    }
}

/// Runs `f` on a thread inside namespace `ns` (sockets it opens live there)
/// within the runtime's context (tasks it spawns run on the runtime).
pub fn in_netns<T: Send>(ns: &str, rt: &tokio::runtime::Runtime, f: impl FnOnce() -> T + Send) -> T {
    netns::NetNs::named(ns)
        .enter(|| {
            let _guard = rt.enter();
            f()
        })
        .expect("netns thread")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

pub fn config(peer: &str, local: &str, profile: Profile) -> SessionConfig {
    SessionConfig {
        peer: peer.parse().expect("peer"),
        local: Some(local.parse().expect("local")),
        interface: Some("eth0".into()),
        hop: Hop::Single,
        profile,
        vrf: String::new(),
    }
}

pub fn add(ns: &str, rt: &tokio::runtime::Runtime, bfd: &Bfd, c: SessionConfig) -> Result<watch::Receiver<SessionStatus>, BfdError> {
    in_netns(ns, rt, || bfd.add(c))
}

pub fn fast() -> Profile {
    Profile { receive_interval: Duration::from_millis(100), transmit_interval: Duration::from_millis(100), ..Profile::default() }
}

/// Waits until the session's status satisfies `ok`; panics naming `what`
/// after `limit` (a bound for a hung test, not a timing assertion).
pub fn wait_status(
    rt: &tokio::runtime::Runtime,
    rx: &mut watch::Receiver<SessionStatus>,
    what: &str,
    limit: Duration,
    ok: impl FnMut(&SessionStatus) -> bool,
) -> SessionStatus {
    rt.block_on(async {
        let got = match tokio::time::timeout(limit, rx.wait_for(ok)).await {
            Ok(Ok(s)) => Some(s.clone()),
            Ok(Err(_)) => panic!("session removed while waiting for {what}"),
            Err(_) => None,
        };
        got.unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}; last {:?}", *rx.borrow()))
    })
}

pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// FRR's bfdd in the router namespace with static sessions (the harness's
/// `routers::Daemon::bfdd`), alone or with zebra (echo mode).
pub struct Bfdd {
    // Declared first: dropped (killed) before zebra.
    bfdd: routers::Daemon,
    _zebra: Option<routers::Daemon>,
}

impl Bfdd {
    /// `peers`: (peer, local-address, extra lines such as `passive-mode`).
    pub fn start(ns: &str, tag: &str, peers: &[(&str, &str, &str)], interval_ms: u32) -> Bfdd {
        need_bfdd();
        Bfdd { bfdd: routers::Daemon::bfdd(&netns::NetNs::named(ns), &format!("bfdd-{tag}"), peers, interval_ms), _zebra: None }
    }

    /// With zebra first: bfdd's echo mode needs the interfaces it learns
    /// from zebra.
    pub fn start_with_zebra(ns: &str, tag: &str, peers: &[(&str, &str, &str)], interval_ms: u32) -> Bfdd {
        need_bfdd();
        let ns = netns::NetNs::named(ns);
        let zebra = routers::Daemon::zebra(&ns, &format!("zebra-{tag}"));
        let bfdd = routers::Daemon::bfdd_with_zebra(&ns, &format!("bfdd-{tag}"), peers, interval_ms, &zebra);
        Bfdd { bfdd, _zebra: Some(zebra) }
    }

    pub fn vtysh(&self, commands: &[&str]) -> String {
        self.bfdd.vtysh(commands)
    }

    /// `show bfd peer X json` as text (the JSON is flat; fields are read by
    /// substring, as test-peers.md's recipes do).
    pub fn peer(&self, peer: &str, local: &str) -> String {
        self.vtysh(&[&format!("show bfd peer {peer} local-address {local} json")])
    }

    pub fn log(&self) -> String {
        self.bfdd.log()
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}
