//! Test helpers: a router namespace and a node namespace joined by a veth
//! pair, router daemons started in the router namespace, and a way to run
//! the engine inside the node namespace. Everything is removed on drop,
//! also when a test fails. A missing daemon fails the test.
#![allow(dead_code)]


use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ferrolb_bgp::session::PeerAsn;
use ferrolb_bgp::speaker::{PeerConfig, Speaker};
use ferrolb_test_harness::netns::NetNs;
pub use ferrolb_test_harness::routers::Daemon;

pub const ROUTER_V4: &str = "198.51.100.1";
pub const NODE_V4: &str = "198.51.100.11";
pub const ROUTER_V6: &str = "2001:db8::1";
pub const NODE_V6: &str = "2001:db8::11";

pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} cannot run: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two namespaces, `router` and `node`, on one veth link (router eth0
/// 198.51.100.1 / 2001:db8::1, node eth0 198.51.100.11 / 2001:db8::11).
pub struct Topology {
    pub router: String,
    pub node: String,
    pub dir: tempfile::TempDir,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Topology {
    pub fn new() -> Topology {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let t = Topology {
            router: format!("flbbgp-r-{id}"),
            node: format!("flbbgp-n-{id}"),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        run("ip", &["netns", "add", &t.router]);
        run("ip", &["netns", "add", &t.node]);
        run(
            "ip",
            &[
                "link", "add", "flbr0", "netns", &t.router, "type", "veth", "peer", "name",
                "flbn0", "netns", &t.node,
            ],
        );
        for (ns, ifname, v4, v6) in [
            (&t.router, "flbr0", ROUTER_V4, ROUTER_V6),
            (&t.node, "flbn0", NODE_V4, NODE_V6),
        ] {
            run("ip", &["-n", ns, "link", "set", ifname, "name", "eth0"]);
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", "eth0"],
            );
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    "eth0",
                    "nodad",
                ],
            );
            run("ip", &["-n", ns, "link", "set", "eth0", "up"]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        t
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A routing daemon's tag, unique to this topology.
    fn tag(&self, name: &str) -> String {
        format!("{}-{name}", self.router)
    }

    /// FRR bgpd in the router namespace (the harness's recipe).
    pub fn bgpd(&self, name: &str, conf: &str) -> Daemon {
        Daemon::bgpd(&NetNs::named(&self.router), &self.tag(name), conf)
    }

    pub fn bird(&self, conf: &str) -> Daemon {
        Daemon::bird(&NetNs::named(&self.router), &self.tag("bird"), conf)
    }

    pub fn gobgpd(&self, conf: &str) -> Daemon {
        Daemon::gobgpd(&NetNs::named(&self.router), &self.tag("gobgp"), conf)
    }

    pub fn router_link(&self, up: bool) {
        run(
            "ip",
            &[
                "-n",
                &self.router,
                "link",
                "set",
                "eth0",
                if up { "up" } else { "down" },
            ],
        );
    }

    /// Runs `f` on a thread inside namespace `ns` with its own
    /// current-thread runtime, so that every socket the engine opens (and
    /// every task it spawns) lives in that namespace.
    pub fn in_netns<T: Send + 'static>(
        ns: &str,
        f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
    ) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("netns file");
            use std::os::fd::AsRawFd;
            // SAFETY: a valid namespace fd; affects this thread only.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(f())
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.router, &self.node] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

/// Polls `f` every 100 ms until it returns Some, or panics after `limit`.
pub async fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The engine's side of a test session: router id 198.51.100.11, hold time
/// 3 s and a connect retry of 1 s, so failures show within seconds.
pub fn peer(my_asn: u32, peer_asn: u32, addr: &str) -> PeerConfig {
    let mut p = PeerConfig::new(
        my_asn,
        PeerAsn::Exact(peer_asn),
        addr.parse().expect("ip"),
        std::net::Ipv4Addr::new(198, 51, 100, 11),
    );
    p.hold_time = 3;
    p.connect_time = Some(1);
    p
}

/// Waits until session `name` is up, or panics after `limit` with its status.
pub async fn wait_up(speaker: &Speaker, name: &str, limit: Duration) {
    let mut rx = speaker.status();
    tokio::time::timeout(limit, rx.wait_for(|m| m.get(name).is_some_and(|s| s.session_up)))
        .await
        .unwrap_or_else(|_| panic!("session {name} not up within {limit:?}: {:?}", speaker.status().borrow().get(name)))
        .expect("status channel");
}
