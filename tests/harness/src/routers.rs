//! Routing daemons in a test's network namespace, as test-peers.md §4 and
//! §6 start them: FRR's `bgpd -Z` (no zebra: the test reads its RIB, not
//! the kernel's) and `bfdd` with static sessions (with `zebra` beside it
//! when the test needs echo mode: bfdd learns interfaces, and so the peer's
//! MAC for its echo packets, only from zebra), BIRD 2 and GoBGP 3, each
//! in a private directory holding its configuration, sockets, pid file and
//! log, and queried through its own client (vtysh, birdc, gobgp) as JSON or
//! text.
//!
//! A missing daemon fails the test (scripts/test.sh installs `frr`,
//! `bird2` and `gobgpd`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::netns::{NetNs, NsProcess};

pub const BGPD: &str = "/usr/lib/frr/bgpd";
pub const BFDD: &str = "/usr/lib/frr/bfdd";
pub const ZEBRA: &str = "/usr/lib/frr/zebra";
pub const BIRD: &str = "/usr/sbin/bird";
pub const GOBGPD: &str = "/usr/bin/gobgpd";
pub const RADVD: &str = "/usr/sbin/radvd";

/// One daemon; dropping it kills the daemon and removes its directory.
pub struct Daemon {
    pub dir: PathBuf,
    log_name: &'static str,
    process: Option<NsProcess>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        drop(self.process.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn private_dir(tag: &str) -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/ferrolb-frr-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn chown_frr(dir: &Path) {
    let chown = Command::new("chown").args(["-R", "frr:frr", path_str(dir)]).output().expect("chown");
    assert!(chown.status.success(), "chown frr: {chown:?}");
}

fn need(binary: &str) {
    assert!(Path::new(binary).exists(), "{binary} missing: install the Debian package frr (scripts/test.sh does)");
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Daemon {
    /// bgpd alone in `ns` with `conf`; returns once its vty socket exists.
    pub fn bgpd(ns: &NetNs, tag: &str, conf: &str) -> Daemon {
        need(BGPD);
        let dir = private_dir(tag);
        std::fs::write(dir.join("bgpd.conf"), conf).expect("bgpd.conf");
        let d = path_str(&dir).to_string();
        let mut cmd = Command::new(BGPD);
        cmd.args(["-Z", "-S", "-P", "0", "-f", &format!("{d}/bgpd.conf"), "-i", &format!("{d}/bgpd.pid"), "--vty_socket", &d]);
        Daemon::spawn(ns, dir, cmd, "bgpd.log", "bgpd.vty")
    }

    /// bfdd in `ns` with static sessions: `peers` are (peer, local address,
    /// extra lines such as `passive-mode`), at `interval_ms` both ways and a
    /// detect multiplier of 3. As user frr, in a directory it owns (§6).
    pub fn bfdd(ns: &NetNs, tag: &str, peers: &[(&str, &str, &str)], interval_ms: u32) -> Daemon {
        Daemon::bfdd_with(ns, tag, peers, interval_ms, None)
    }

    /// zebra alone in `ns` (it then reads the namespace's interfaces and
    /// neighbours, and changes nothing it is not told to); as user frr.
    pub fn zebra(ns: &NetNs, tag: &str) -> Daemon {
        need(ZEBRA);
        let dir = private_dir(tag);
        std::fs::write(dir.join("zebra.conf"), "log stdout informational\n!\n").expect("zebra.conf");
        chown_frr(&dir);
        let d = path_str(&dir).to_string();
        let mut cmd = Command::new(ZEBRA);
        cmd.args(["-P", "0", "-f", &format!("{d}/zebra.conf"), "-i", &format!("{d}/zebra.pid")])
            .args(["-z", &format!("{d}/zserv.api"), "--vty_socket", &d]);
        Daemon::spawn(ns, dir, cmd, "zebra.log", "zserv.api")
    }

    /// [`Daemon::bfdd`] talking to `zebra` (from [`Daemon::zebra`]), which
    /// bfdd's echo mode needs.
    pub fn bfdd_with_zebra(ns: &NetNs, tag: &str, peers: &[(&str, &str, &str)], interval_ms: u32, zebra: &Daemon) -> Daemon {
        Daemon::bfdd_with(ns, tag, peers, interval_ms, Some(&zebra.dir.join("zserv.api")))
    }

    fn bfdd_with(ns: &NetNs, tag: &str, peers: &[(&str, &str, &str)], interval_ms: u32, zserv: Option<&Path>) -> Daemon {
        need(BFDD);
        let dir = private_dir(tag);
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
        chown_frr(&dir);
        let d = path_str(&dir).to_string();
        // Without zebra, a socket path nobody serves: bfdd runs alone.
        let zserv = zserv.map_or_else(|| format!("{d}/zserv.api"), |p| path_str(p).to_string());
        let mut cmd = Command::new(BFDD);
        cmd.args(["-P", "0", "-f", &format!("{d}/bfdd.conf"), "-i", &format!("{d}/bfdd.pid")])
            .args(["-z", &zserv, "--bfdctl", &format!("{d}/bfdd.sock"), "--vty_socket", &d]);
        Daemon::spawn(ns, dir, cmd, "bfdd.log", "bfdd.vty")
    }

    /// BIRD 2 in `ns` with `conf`; returns once its control socket exists.
    pub fn bird(ns: &NetNs, tag: &str, conf: &str) -> Daemon {
        need(BIRD);
        let dir = private_dir(tag);
        std::fs::write(dir.join("bird.conf"), conf).expect("bird.conf");
        let d = path_str(&dir).to_string();
        let mut cmd = Command::new(BIRD);
        cmd.args(["-f", "-c", &format!("{d}/bird.conf"), "-s", &format!("{d}/bird.ctl"), "-P", &format!("{d}/bird.pid")]);
        Daemon::spawn(ns, dir, cmd, "bird.log", "bird.ctl")
    }

    /// GoBGP 3 in `ns` with a TOML `conf`; returns once its API socket exists.
    pub fn gobgpd(ns: &NetNs, tag: &str, conf: &str) -> Daemon {
        need(GOBGPD);
        let dir = private_dir(tag);
        std::fs::write(dir.join("gobgpd.toml"), conf).expect("gobgpd.toml");
        let d = path_str(&dir).to_string();
        let mut cmd = Command::new(GOBGPD);
        cmd.args(["-f", &format!("{d}/gobgpd.toml"), "-t", "toml", "--api-hosts", &format!("unix://{d}/gobgp.sock")])
            .args(["--pprof-disable", "-p", "-l", "info"]);
        Daemon::spawn(ns, dir, cmd, "gobgpd.log", "gobgp.sock")
    }

    /// radvd in `ns` sending Router Advertisements on `interface` every few
    /// seconds (hosts on the link then list this router in their neighbour
    /// tables, as BGP unnumbered needs). Turns IPv6 forwarding on in `ns`,
    /// which radvd requires.
    pub fn radvd(ns: &NetNs, tag: &str, interface: &str) -> Daemon {
        need(RADVD);
        ns.sysctl(&[("net.ipv6.conf.all.forwarding", "1")]).expect("IPv6 forwarding for radvd");
        let dir = private_dir(tag);
        let conf = format!("interface {interface} {{\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 4;\n}};\n");
        std::fs::write(dir.join("radvd.conf"), conf).expect("radvd.conf");
        let d = path_str(&dir).to_string();
        let mut cmd = Command::new(RADVD);
        cmd.args(["-n", "-m", "stderr", "-C", &format!("{d}/radvd.conf"), "-p", &format!("{d}/radvd.pid")]);
        Daemon::spawn(ns, dir, cmd, "radvd.log", "radvd.pid")
    }

    /// birdc's text answer to `command`.
    pub fn birdc(&self, command: &str) -> String {
        let out = Command::new("birdc")
            .args(["-s", &format!("{}/bird.ctl", path_str(&self.dir))])
            .args(command.split_whitespace())
            .output()
            .expect("birdc: install the Debian package bird2");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `gobgp -j <args>` as JSON (`Null` when it printed none).
    pub fn gobgp(&self, args: &str) -> serde_json::Value {
        let out = Command::new("gobgp")
            .args(["--target", &format!("unix://{}/gobgp.sock", path_str(&self.dir)), "-j"])
            .args(args.split_whitespace())
            .output()
            .expect("gobgp: install the Debian package gobgpd");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    fn spawn(ns: &NetNs, dir: PathBuf, cmd: Command, log_name: &'static str, vty: &str) -> Daemon {
        let process = ns.spawn(&cmd, &dir.join(log_name)).expect("spawn FRR daemon");
        let mut d = Daemon { dir, log_name, process: Some(process) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !d.dir.join(vty).exists() {
            let exited = d.process.as_mut().and_then(|p| p.try_wait().ok().flatten());
            assert!(exited.is_none() && Instant::now() < deadline, "{log_name}: the daemon did not start:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// FRR: vtysh with one `-c` per command.
    pub fn vtysh(&self, commands: &[&str]) -> String {
        let mut cmd = Command::new("vtysh");
        cmd.env("HOME", &self.dir).args(["--vty_socket", path_str(&self.dir)]);
        for c in commands {
            cmd.args(["-c", c]);
        }
        let out = cmd.output().expect("vtysh: install the Debian package frr");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One command's JSON output (`Null` when it printed none).
    pub fn json(&self, command: &str) -> serde_json::Value {
        serde_json::from_str(&self.vtysh(&[command])).unwrap_or(serde_json::Value::Null)
    }

    /// bgpd: whether the session with `neighbor` is Established.
    pub fn established(&self, neighbor: &str) -> bool {
        self.json(&format!("show bgp neighbors {neighbor} json"))[neighbor]["bgpState"] == "Established"
    }

    /// bgpd: how many times the session with `neighbor` was established.
    pub fn established_count(&self, neighbor: &str) -> u64 {
        self.json(&format!("show bgp neighbors {neighbor} json"))[neighbor]["connectionsEstablished"].as_u64().unwrap_or(0)
    }

    /// bgpd: the first path of `prefix` in the RIB, if any.
    pub fn path(&self, afi: &str, prefix: &str) -> Option<serde_json::Value> {
        self.paths(afi, prefix).into_iter().next()
    }

    /// bgpd: every path of `prefix` (`afi` = ipv4 or ipv6) in the RIB.
    pub fn paths(&self, afi: &str, prefix: &str) -> Vec<serde_json::Value> {
        self.json(&format!("show bgp {afi} unicast {prefix} json"))["paths"].as_array().cloned().unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(self.log_name)).unwrap_or_default()
    }

    /// SIGKILLs the daemon (a router crash).
    pub fn kill(&mut self) {
        drop(self.process.take());
    }
}
