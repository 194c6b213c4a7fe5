//! FRR bgpd alone (-Z, no zebra) in the router namespace, as in
//! test-peers.md §4.1, queried through vtysh's JSON.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::Topology;

pub const BGPD: &str = "/usr/lib/frr/bgpd";

pub struct Frr {
    child: Child,
    pub dir: std::path::PathBuf,
    pub ns: String,
}

impl Frr {
    /// Starts bgpd with `conf` and waits for its vty socket.
    pub fn start(topo: &Topology, name: &str, conf: &str) -> Frr {
        assert!(
            std::path::Path::new(BGPD).exists(),
            "{BGPD} missing: install Debian package frr"
        );
        let dir = topo.path(name);
        std::fs::create_dir_all(&dir).expect("frr dir");
        std::fs::write(dir.join("bgpd.conf"), conf).expect("bgpd.conf");
        let _ = std::fs::remove_file(dir.join("bgpd.vty"));
        let log = std::fs::File::create(dir.join("bgpd.log")).expect("log");
        let d = dir.to_str().expect("utf-8 path").to_string();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &topo.router,
                BGPD,
                "-Z",
                "-S",
                "-P",
                "0",
                "-f",
            ])
            .arg(format!("{d}/bgpd.conf"))
            .args(["-i", &format!("{d}/bgpd.pid"), "--vty_socket", &d])
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn bgpd");
        let f = Frr {
            child,
            dir,
            ns: topo.router.clone(),
        };
        for _ in 0..100 {
            if f.dir.join("bgpd.vty").exists() {
                return f;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "bgpd did not start: {}",
            std::fs::read_to_string(f.dir.join("bgpd.log")).unwrap_or_default()
        );
    }

    pub fn vtysh(&self, cmd: &str) -> String {
        let out = Command::new("vtysh")
            .env("HOME", &self.dir)
            .args(["--vty_socket", self.dir.to_str().expect("utf-8"), "-c", cmd])
            .output()
            .expect("vtysh: install Debian package frr");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, cmd: &str) -> serde_json::Value {
        let text = self.vtysh(cmd);
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    pub fn established(&self, neighbor: &str) -> bool {
        let v = self.json(&format!("show bgp neighbors {neighbor} json"));
        v[neighbor]["bgpState"] == "Established"
    }

    /// The first path of `prefix` in the router's RIB, if any.
    pub fn path(&self, afi: &str, prefix: &str) -> Option<serde_json::Value> {
        let v = self.json(&format!("show bgp {afi} unicast {prefix} json"));
        v["paths"].as_array().and_then(|p| p.first().cloned())
    }

    pub fn kill(&mut self) {
        // SIGKILL to the `ip netns exec` child, which exec'd bgpd.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.kill();
    }
}
