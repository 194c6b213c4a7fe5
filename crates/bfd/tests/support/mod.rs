//! Network-namespace fixtures for the real-kernel tests (root only; CI runs
//! as root):
//!
//! ```text
//! netns bfd-r-TAG  eth0 198.51.100.1/24 2001:db8::1/64   (FRR bfdd, or a second engine)
//!        |  veth
//! netns bfd-n-TAG  eth0 198.51.100.11/24 2001:db8::11/64 (the engine under test)
//! ```

#![allow(dead_code)] // each test binary uses a part

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferrolb_bfd::{Bfd, BfdError, Hop, Profile, SessionConfig, SessionStatus};
use tokio::sync::watch;

pub const ROUTER4: &str = "198.51.100.1";
pub const NODE4: &str = "198.51.100.11";
pub const ROUTER6: &str = "2001:db8::1";
pub const NODE6: &str = "2001:db8::11";
pub const BFDD: &str = "/usr/lib/frr/bfdd";

pub fn run(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

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

/// FRR's bfdd must be there: installed here if missing (scripts/test.sh
/// installs it up front), and the test fails if it still is not.
pub fn need_bfdd() {
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = APT.lock().unwrap_or_else(|e| e.into_inner());
    if std::path::Path::new(BFDD).exists() {
        return;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "frr"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        must(&["apt-get", "update", "-qq"]);
        assert!(install(), "apt-get install frr failed");
    }
    assert!(std::path::Path::new(BFDD).exists(), "{BFDD} missing after installing frr");
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
        let pid = std::process::id();
        let t = Topology { router: format!("bfd-r-{tag}-{pid}"), node: format!("bfd-n-{tag}-{pid}") };
        for ns in [&t.router, &t.node] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            must(&["ip", "netns", "add", ns]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            must(&["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]);
            // IPv6 addresses survive the link-down tests (the default flushes them).
            must(&["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1"]);
        }
        must(&["ip", "link", "add", "eth0", "netns", &t.router, "type", "veth", "peer", "name", "eth0", "netns", &t.node]);
        for (ns, v4, v6) in [(&t.router, ROUTER4, ROUTER6), (&t.node, NODE4, NODE6)] {
            must(&["ip", "-n", ns, "addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
            must(&["ip", "-n", ns, "addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
            must(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        }
        t
    }

    pub fn link(&self, ns: &str, up: bool) {
        must(&["ip", "-n", ns, "link", "set", "eth0", if up { "up" } else { "down" }]);
    }
}

/// Moves the calling thread into a named network namespace.
pub fn enter_netns(name: &str) -> std::io::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: a valid namespace descriptor; affects only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Runs `f` on a thread inside namespace `ns` (sockets it opens live there)
/// within the runtime's context (tasks it spawns run on the runtime).
pub fn in_netns<T: Send>(ns: &str, rt: &tokio::runtime::Runtime, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(ns).expect("setns");
            let _guard = rt.enter();
            f()
        })
        .join()
        .expect("netns thread")
    })
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

/// FRR's bfdd alone in the router namespace with static sessions
/// (test-peers.md §6: as user frr, in a directory it owns).
pub struct Bfdd {
    pub dir: PathBuf,
    child: Child,
}

impl Drop for Bfdd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Bfdd {
    /// `peers`: (peer, local-address, extra lines such as `passive-mode`).
    pub fn start(ns: &str, tag: &str, peers: &[(&str, &str, &str)], interval_ms: u32) -> Bfdd {
        need_bfdd();
        let dir = PathBuf::from(format!("/tmp/ferrolb-bfdd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bfdd dir");
        let mut conf = String::from("log stdout informational\n!\nbfd\n");
        for (peer, local, extra) in peers {
            conf.push_str(&format!(
                " peer {peer} local-address {local}\n  receive-interval {interval_ms}\n  transmit-interval {interval_ms}\n  detect-multiplier 3\n"
            ));
            for line in extra.lines() {
                conf.push_str(&format!("  {line}\n"));
            }
            conf.push_str(" !\n");
        }
        conf.push_str("!\n");
        std::fs::write(dir.join("bfdd.conf"), conf).expect("bfdd.conf");
        must(&["chown", "-R", "frr:frr", dir.to_str().expect("utf-8")]);
        let d = dir.to_str().expect("utf-8").to_string();
        let log = std::fs::File::create(dir.join("bfdd.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, BFDD, "-P", "0", "-f", &format!("{d}/bfdd.conf"), "-i", &format!("{d}/bfdd.pid")])
            .args(["-z", &format!("{d}/zserv.api"), "--bfdctl", &format!("{d}/bfdd.sock"), "--vty_socket", &d])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn bfdd");
        let b = Bfdd { dir, child };
        wait_for("bfdd vty socket", Duration::from_secs(10), || b.dir.join("bfdd.vty").exists());
        b
    }

    pub fn vtysh(&self, commands: &[&str]) -> String {
        let mut args = vec!["vtysh", "--vty_socket", self.dir.to_str().expect("utf-8")];
        for c in commands {
            args.push("-c");
            args.push(c);
        }
        String::from_utf8_lossy(&run(&args).stdout).into_owned()
    }

    /// `show bfd peer X json` as text (the JSON is flat; fields are read by
    /// substring, as test-peers.md's recipes do).
    pub fn peer(&self, peer: &str, local: &str) -> String {
        self.vtysh(&[&format!("show bfd peer {peer} local-address {local} json")])
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bfdd.log")).unwrap_or_default()
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}
