//! Network namespaces for layer 2 tests: a router and N nodes plugged into
//! one bridge, as in test-peers.md §2. Nothing is created in the host
//! namespace; everything is deleted when the [`Topology`] is dropped.
//!
//! ```text
//!  <p>-router eth0 02:00:00:00:00:01 198.51.100.1/24  2001:db8::1/64  ─┐
//!  <p>-node1  eth0 02:00:00:00:00:11 198.51.100.11/24 2001:db8::11/64 ─┼─ br0 in <p>-lan
//!  <p>-nodeN  eth0 02:00:00:00:00:1N ...                              ─┘
//! ```

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::error::{Error, Result, io};

/// Host part of the router's addresses and MAC.
const ROUTER_HOST: u8 = 1;
/// Node `n` (1-based) gets host part `NODE_HOST_BASE + n`.
const NODE_HOST_BASE: u8 = 10;
/// The MAC is written with the host part's decimal digits (02:..:11 for
/// node1, as in test-peers.md), so two digits is the limit.
pub const MAX_NODES: usize = 89;

/// A prefix for [`Topology::new`] that no other test of this machine uses
/// at the same time: `<base>-<pid>-<n>`. Tests of one binary run in parallel
/// threads (same pid, different n) and binaries run one after another
/// (different pid).
///
/// Also removes what an earlier process that died without unwinding (a
/// SIGKILLed test binary) left under the same base: namespaces
/// `<base>-<pid>-...` whose pid is gone, and the processes still inside
/// them (a speaker in its own process group outlives the test that
/// started it).
pub fn unique_prefix(base: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    reap_stale(base);
    format!(
        "{base}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The pid in a namespace name made from [`unique_prefix`]`(base)`.
fn owner_pid(base: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(base)?.strip_prefix('-')?;
    let (pid, rest) = rest.split_once('-')?;
    let (counter, _role) = rest.split_once('-')?;
    counter.parse::<u64>().ok()?;
    pid.parse().ok()
}

fn reap_stale(base: &str) {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(base, &name) else {
            continue;
        };
        if pid == me || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let ns = NetNs::named(name);
        kill_inside(&ns);
        let _ = ip(&["netns", "del", ns.name()]);
    }
}

/// SIGKILLs every process in `ns` except this one.
fn kill_inside(ns: &NetNs) {
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    for pid in ns.pids().unwrap_or_default() {
        if pid != me && pid > 1 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// A named network namespace (`ip netns`, a file under /run/netns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Refers to an existing namespace; creates nothing.
    pub fn named(name: impl Into<String>) -> NetNs {
        NetNs { name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <ns> <program> <args>`, not yet run.
    pub fn command<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]).args(args);
        cmd
    }

    /// Runs a command inside the namespace and returns its output whatever
    /// its exit status (probes exit 1 for "no answer").
    pub fn output<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Result<Output> {
        self.command(program, args)
            .stdin(Stdio::null())
            .output()
            .map_err(io(format!("running {program} in netns {}", self.name)))
    }

    /// Runs a command inside the namespace; a non-zero exit is an error
    /// carrying its stderr.
    pub fn run<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Result<Output> {
        let out = self.output(program, args)?;
        check(&format!("{program} in netns {}", self.name), args, out)
    }

    /// Starts a long-running process inside the namespace, in its own
    /// process group, with stdout and stderr appended to `log`. Program,
    /// arguments, environment and working directory are taken from `cmd`.
    pub fn spawn(&self, cmd: &Command, log: &Path) -> Result<NsProcess> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut wrapped = Command::new("ip");
        // `ip netns exec` execs the program after setns, so the child's pid
        // is the program's and killing its group reaches everything it forks.
        wrapped
            .args(["netns", "exec", &self.name])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(v) => wrapped.env(key, v),
                None => wrapped.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            wrapped.current_dir(dir);
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io(format!("opening {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io("duplicating the log file handle"))?;
        let child = wrapped
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!("spawning {program} in netns {}", self.name)))?;
        Ok(NsProcess {
            child,
            label: format!("{program} in netns {}", self.name),
        })
    }

    /// Runs `f` on a thread that has joined this namespace. Sockets created
    /// there stay in the namespace wherever they are used later; the thread
    /// ends with `f`, so no thread of the caller is left in the namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(io(format!("opening {path}")))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: setns(2) on an fd we own; it only changes this
                    // thread's network namespace.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(Error::Io {
                            context: format!("setns into {path}"),
                            source: std::io::Error::last_os_error(),
                        });
                    }
                    Ok(f())
                })
                .join()
                .map_err(|_| {
                    Error::Command(format!("a thread inside netns {} panicked", self.name))
                })?
        })
    }

    /// `ip link set <dev> up|down`.
    pub fn set_link(&self, dev: &str, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.name, "link", "set", dev, state])
    }

    /// Adds `addr/prefix` to `dev` (IPv6 without duplicate address detection,
    /// so it is usable at once).
    pub fn add_address(&self, dev: &str, addr: IpAddr, prefix: u8) -> Result<()> {
        let cidr = format!("{addr}/{prefix}");
        let mut args = vec!["-n", &self.name, "addr", "add", &cidr, "dev", dev];
        if addr.is_ipv6() {
            args.push("nodad");
        }
        ip(&args)
    }

    pub fn del_address(&self, dev: &str, addr: IpAddr, prefix: u8) -> Result<()> {
        let cidr = format!("{addr}/{prefix}");
        ip(&["-n", &self.name, "addr", "del", &cidr, "dev", dev])
    }

    /// Puts a service address on `lo` as a host route (/32, /128): how
    /// kube-proxy's IPVS mode makes a node accept traffic for a VIP. This
    /// kernel has no dummy interfaces, so `lo` it is.
    pub fn add_lo_address(&self, addr: IpAddr) -> Result<()> {
        self.add_address("lo", addr, host_prefix(addr))
    }

    pub fn del_lo_address(&self, addr: IpAddr) -> Result<()> {
        self.del_address("lo", addr, host_prefix(addr))
    }

    /// Sets sysctls of this namespace, keys as `sysctl` writes them
    /// (`net.ipv4.conf.all.arp_ignore`). Written through /proc/sys from a
    /// thread inside the namespace: net sysctls belong to the writer's
    /// namespace, and this needs no `sysctl` binary.
    pub fn sysctl(&self, settings: &[(&str, &str)]) -> Result<()> {
        self.enter(|| {
            for (key, value) in settings {
                let path = format!("/proc/sys/{}", key.replace('.', "/"));
                std::fs::write(&path, value).map_err(io(format!(
                    "writing {value} to {path} in netns {}",
                    self.name
                )))?;
            }
            Ok(())
        })?
    }

    /// Reads one sysctl of this namespace.
    pub fn read_sysctl(&self, key: &str) -> Result<String> {
        self.enter(|| {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_owned())
                .map_err(io(format!("reading {path} in netns {}", self.name)))
        })?
    }

    /// Pids of the processes whose network namespace this is.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map_err(io(format!("listing pids of netns {}", self.name)))?;
        let out = check("ip netns pids", &[&self.name], out)?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }
}

fn host_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn check<S: AsRef<OsStr>>(what: &str, args: &[S], out: Output) -> Result<Output> {
    if out.status.success() {
        return Ok(out);
    }
    let args: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    Err(Error::Command(format!(
        "{what} {} exited with {}: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Runs `ip <args>` in the host namespace (most calls name their namespace
/// with `-n`).
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io("running ip (iproute2)"))?;
    check("ip", args, out).map(drop)
}

/// A process started with [`NetNs::spawn`]. It leads its own process group;
/// dropping the handle SIGKILLs the group.
#[derive(Debug)]
pub struct NsProcess {
    child: Child,
    label: String,
}

impl NsProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the process group and reaps the process. Returns the instant
    /// just before the signal was sent (failover is measured from there).
    pub fn kill(&mut self) -> Result<Instant> {
        let pid = libc::pid_t::try_from(self.child.id())
            .map_err(|_| Error::Command(format!("pid of {} out of range", self.label)))?;
        let at = Instant::now();
        // SAFETY: kill(2) has no memory-safety preconditions; the group is
        // ours (process_group(0) at spawn).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        self.child
            .wait()
            .map_err(io(format!("waiting for {}", self.label)))?;
        Ok(at)
    }

    /// The exit status once it has exited, `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .map_err(io(format!("checking {}", self.label)))
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.kill();
        }
    }
}

/// One end host of the topology: its namespace and the addresses of its
/// `eth0`.
#[derive(Debug, Clone)]
pub struct Host {
    /// `router`, `node1`, ... (also the Kubernetes node name a test may use,
    /// made unique by the caller).
    pub role: String,
    pub ns: NetNs,
    /// `02:00:00:00:00:11` (lower case, as `ip` and `arping` print it).
    pub mac: String,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
}

impl Host {
    fn new(prefix: &str, role: &str, host: u8) -> Host {
        Host {
            role: role.to_owned(),
            ns: NetNs::named(format!("{prefix}-{role}")),
            mac: format!("02:00:00:00:00:{host:02}"),
            ipv4: Ipv4Addr::new(198, 51, 100, host),
            // The same digits as the IPv4 host part, read as hex (2001:db8::11).
            ipv6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, hex_digits(host)),
        }
    }
}

/// 11 -> 0x11: the decimal digits read as hexadecimal.
fn hex_digits(n: u8) -> u16 {
    u16::from_str_radix(&n.to_string(), 16).unwrap_or(u16::from(n))
}

/// A router and N nodes on a bridge, each in its own namespace named
/// `<prefix>-router`, `<prefix>-node<i>`, the bridge in `<prefix>-lan`.
/// Deleted on drop (also while a test unwinds from a panic), after the
/// processes still inside are killed.
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    lan: NetNs,
    router: Host,
    nodes: Vec<Host>,
    /// Namespaces created so far, so a half-built topology is cleaned up too.
    created: Vec<NetNs>,
}

impl Topology {
    /// Builds the topology. `prefix` must be unique among the topologies that
    /// exist at the same time on this machine (see [`unique_prefix`]); an
    /// existing namespace of the same name is an error, not reused.
    pub fn new(prefix: &str, nodes: usize) -> Result<Topology> {
        if nodes == 0 || nodes > MAX_NODES {
            return Err(Error::Command(format!(
                "a topology has 1 to {MAX_NODES} nodes, not {nodes}"
            )));
        }
        let mut topo = Topology {
            prefix: prefix.to_owned(),
            lan: NetNs::named(format!("{prefix}-lan")),
            router: Host::new(prefix, "router", ROUTER_HOST),
            nodes: (1..=nodes)
                .map(|n| {
                    // n <= MAX_NODES, so the sum fits in a u8.
                    let host = NODE_HOST_BASE + n as u8;
                    Host::new(prefix, &format!("node{n}"), host)
                })
                .collect(),
            created: Vec::new(),
        };
        topo.build()?;
        Ok(topo)
    }

    fn build(&mut self) -> Result<()> {
        let lan = self.lan.clone();
        self.add_namespace(&lan)?;
        ip(&["-n", lan.name(), "link", "add", "br0", "type", "bridge"])?;
        // No STP (ports forward at once); no multicast snooping, a precaution
        // for NDP with no MLD querier on the bridge (test-peers.md §2).
        ip(&[
            "-n",
            lan.name(),
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
            "stp_state",
            "0",
        ])?;
        lan.set_link("br0", true)?;
        let hosts: Vec<Host> = std::iter::once(self.router.clone())
            .chain(self.nodes.iter().cloned())
            .collect();
        for host in &hosts {
            self.add_host(host)?;
        }
        Ok(())
    }

    fn add_namespace(&mut self, ns: &NetNs) -> Result<()> {
        ip(&["netns", "add", ns.name()])?;
        self.created.push(ns.clone());
        ns.set_link("lo", true)
    }

    fn add_host(&mut self, host: &Host) -> Result<()> {
        let ns = &host.ns;
        self.add_namespace(ns)?;
        let port = format!("p-{}", host.role);
        // Both ends are created directly in their namespaces, so no interface
        // ever appears in the host namespace.
        ip(&[
            "link",
            "add",
            "eth0",
            "netns",
            ns.name(),
            "address",
            &host.mac,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            self.lan.name(),
        ])?;
        ip(&["-n", self.lan.name(), "link", "set", &port, "master", "br0"])?;
        self.lan.set_link(&port, true)?;
        // No DAD, so addresses are usable at once; keep IPv6 addresses across
        // link down/up, which failure tests do.
        ns.sysctl(&[
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.eth0.accept_dad", "0"),
            ("net.ipv6.conf.all.keep_addr_on_down", "1"),
            ("net.ipv6.conf.eth0.keep_addr_on_down", "1"),
        ])?;
        ns.add_address("eth0", IpAddr::V4(host.ipv4), 24)?;
        ns.add_address("eth0", IpAddr::V6(host.ipv6), 64)?;
        ns.set_link("eth0", true)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace holding the bridge `br0` and the ports `p-<role>`.
    pub fn lan(&self) -> &NetNs {
        &self.lan
    }

    pub fn router(&self) -> &Host {
        &self.router
    }

    /// node1 first.
    pub fn nodes(&self) -> &[Host] {
        &self.nodes
    }

    /// Node `n`, counted from 1 like the namespace names. Panics when there
    /// is no such node: a bug in the calling test.
    pub fn node(&self, n: usize) -> &Host {
        match n.checked_sub(1).and_then(|i| self.nodes.get(i)) {
            Some(host) => host,
            None => panic!("topology {} has no node{n}", self.prefix),
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            // A namespace lives on while a process is inside it; kill
            // stragglers (speakers a test forgot) so nothing outlives it.
            kill_inside(ns);
            let _ = ip(&["netns", "del", ns.name()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_follow_the_test_peers_numbering() {
        let router = Host::new("p", "router", ROUTER_HOST);
        assert_eq!(router.mac, "02:00:00:00:00:01");
        assert_eq!(router.ipv4, Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(router.ipv6.to_string(), "2001:db8::1");
        let node = Host::new("p", "node2", NODE_HOST_BASE + 2);
        assert_eq!(node.ns.name(), "p-node2");
        assert_eq!(node.mac, "02:00:00:00:00:12");
        assert_eq!(node.ipv4.to_string(), "198.51.100.12");
        assert_eq!(node.ipv6.to_string(), "2001:db8::12");
    }

    #[test]
    fn stale_namespaces_are_recognised_by_base_and_pid() {
        assert_eq!(owner_pid("hn", "hn-8125-0-lan"), Some(8125));
        assert_eq!(owner_pid("hn", "hn-8125-12-node3"), Some(8125));
        // another base that merely starts the same way
        assert_eq!(owner_pid("hn", "hn-l2f-8125-0-lan"), None);
        assert_eq!(owner_pid("hn-l2f", "hn-l2f-8125-0-lan"), Some(8125));
        assert_eq!(owner_pid("l2", "l2f-8125-0-lan"), None);
        // not made by unique_prefix
        assert_eq!(owner_pid("hn", "hn-t1"), None);
        assert_eq!(owner_pid("hn", "hn-8125-lan"), None);
    }

    #[test]
    fn unique_prefixes_differ() {
        assert_ne!(unique_prefix("hn"), unique_prefix("hn"));
    }

    #[test]
    fn node_counts_out_of_range_are_refused() {
        for n in [0, MAX_NODES + 1] {
            let err = Topology::new("hn-never-created", n).unwrap_err();
            assert!(err.to_string().contains("1 to 89"), "{err}");
        }
    }
}
