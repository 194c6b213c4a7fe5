//! BIRD 2 and GoBGP 3 as routers in the router namespace (test-peers.md
//! §4.7 and §4.8), each with its own directory, socket and pid.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::Topology;

pub struct Daemon {
    child: Child,
    pub dir: std::path::PathBuf,
    kind: &'static str,
}

fn spawn(topo: &Topology, dir: &std::path::Path, argv: &[String]) -> Child {
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log");
    Command::new("ip")
        .args(["netns", "exec", &topo.router])
        .args(argv)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

fn wait_socket(d: &Daemon, name: &str) {
    for _ in 0..100 {
        if d.dir.join(name).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{} did not start: {}",
        d.kind,
        std::fs::read_to_string(d.dir.join("daemon.log")).unwrap_or_default()
    );
}

impl Daemon {
    pub fn bird(topo: &Topology, conf: &str) -> Daemon {
        assert!(
            std::path::Path::new("/usr/sbin/bird").exists(),
            "bird missing: install Debian package bird2"
        );
        let dir = topo.path("bird");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("bird.conf"), conf).expect("conf");
        let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let argv: Vec<String> = [
            "/usr/sbin/bird",
            "-f",
            "-c",
            &p("bird.conf"),
            "-s",
            &p("bird.ctl"),
            "-P",
            &p("bird.pid"),
        ]
        .map(String::from)
        .to_vec();
        let d = Daemon {
            child: spawn(topo, &dir, &argv),
            dir,
            kind: "bird",
        };
        wait_socket(&d, "bird.ctl");
        d
    }

    pub fn gobgp(topo: &Topology, conf: &str) -> Daemon {
        assert!(
            std::path::Path::new("/usr/bin/gobgpd").exists(),
            "gobgpd missing: install Debian package gobgpd"
        );
        let dir = topo.path("gobgp");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("gobgpd.toml"), conf).expect("conf");
        let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let argv: Vec<String> = [
            "/usr/bin/gobgpd",
            "-f",
            &p("gobgpd.toml"),
            "-t",
            "toml",
            "--api-hosts",
            &format!("unix://{}", p("gobgp.sock")),
            "--pprof-disable",
            "-p",
            "-l",
            "info",
        ]
        .map(String::from)
        .to_vec();
        let d = Daemon {
            child: spawn(topo, &dir, &argv),
            dir,
            kind: "gobgpd",
        };
        wait_socket(&d, "gobgp.sock");
        d
    }

    pub fn birdc(&self, cmd: &str) -> String {
        let out = Command::new("birdc")
            .args(["-s", &self.dir.join("bird.ctl").to_string_lossy()])
            .args(cmd.split_whitespace())
            .output()
            .expect("birdc: install Debian package bird2");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn gobgp_json(&self, args: &str) -> serde_json::Value {
        let out = Command::new("gobgp")
            .args([
                "--target",
                &format!("unix://{}", self.dir.join("gobgp.sock").to_string_lossy()),
                "-j",
            ])
            .args(args.split_whitespace())
            .output()
            .expect("gobgp: install Debian package gobgpd");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
