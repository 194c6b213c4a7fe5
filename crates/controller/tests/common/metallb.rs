//! MetalLB's own controller on the fixture, for tests that put it next to
//! ferrolb's (crates/controller/tests/migration.rs).
//!
//! The binary is the one benches/metallb/build.sh builds from MetalLB's Go
//! module (cached under `~/.cache/ferrolb/metallb-<version>`; a fresh
//! machine builds it, which takes about ten minutes). It runs as its own
//! ServiceAccount, [`SERVICE_ACCOUNT`] in [`NAMESPACE`], impersonated through
//! the admin kubeconfig, with exactly the RBAC MetalLB ships for its
//! controller: every Role and ClusterRole that MetalLB's
//! `config/manifests/metallb-native.yaml` binds to `metallb-system/controller`,
//! rules unchanged, applied under `metallb-upstream` names and bound to that
//! ServiceAccount instead (ferrolb's deploy/ RBAC is bound to
//! `metallb-system/controller` on the same fixture, and one subject would
//! get the union of both).
//!
//! Flags as benches/metallb/converge.sh runs it: `--webhook-mode=disabled`,
//! no memberlist Secret (`METALLB_ML_SECRET_NAME` unset), a Pod of its own
//! that nothing runs (it reads it at start), metrics and health on free
//! ports.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferrolb_test_harness::identity::Identity;
use ferrolb_test_harness::{KubeFixture, apply_yaml};
use kube::Client;

/// The MetalLB release the benches measure; pinned so that a new upstream
/// release does not silently change what the tests compare against.
pub const VERSION: &str = "v0.16.2";
/// MetalLB's namespace; the migration test's fixture is its own, so the
/// real name is used.
pub const NAMESPACE: &str = "metallb-system";
/// The ServiceAccount MetalLB's controller runs as in these tests.
pub const SERVICE_ACCOUNT: &str = "metallb-upstream-controller";
/// Prefix of the names MetalLB's Roles, ClusterRoles and bindings get here.
const RBAC_PREFIX: &str = "metallb-upstream";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `benches/metallb/<script>` and returns the value of its
/// `<key>=<value>` line.
fn script_value(script: &str, key: &str) -> PathBuf {
    let path = repo_root().join("benches/metallb").join(script);
    let out = Command::new("bash")
        .arg(&path)
        .env("METALLB_VERSION", VERSION)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    assert!(out.status.success(), "{} failed ({})", path.display(), out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{key}=");
    let value = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{} printed no {key}= line:\n{stdout}", path.display()));
    PathBuf::from(value)
}

/// MetalLB's controller binary (built by benches/metallb/build.sh, or taken
/// from its cache).
pub fn controller_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = script_value("build.sh", "metallb-controller");
        assert!(bin.is_file(), "{} missing", bin.display());
        bin
    })
    .clone()
}

/// MetalLB's own install manifest of [`VERSION`] (benches/metallb/manifest.sh).
pub fn native_manifest() -> PathBuf {
    script_value("manifest.sh", "metallb-native")
}

/// Applies MetalLB's controller RBAC (see the module docs) and the
/// ServiceAccount. Returns the kinds and upstream names applied, e.g.
/// `ClusterRole/metallb-system:controller`.
pub async fn apply_controller_rbac(admin: &Client) -> Vec<String> {
    let path = native_manifest();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("metallb-native.yaml parses");
    let is_controller = |s: &serde_json::Value| {
        s["kind"] == "ServiceAccount" && s["name"] == "controller" && s["namespace"] == NAMESPACE
    };
    let bindings: Vec<&serde_json::Value> = docs
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("RoleBinding" | "ClusterRoleBinding")))
        .filter(|d| d["subjects"].as_array().is_some_and(|s| s.iter().any(is_controller)))
        .collect();
    let renamed = |name: &str| format!("{RBAC_PREFIX}-{}", name.replace("metallb-system:", ""));
    let mut objects = vec![serde_json::json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE},
    })];
    let mut applied = Vec::new();
    for binding in &bindings {
        let role_kind = binding["roleRef"]["kind"].as_str().expect("roleRef.kind");
        let role_name = binding["roleRef"]["name"].as_str().expect("roleRef.name");
        let role = docs
            .iter()
            .find(|d| d["kind"] == role_kind && d["metadata"]["name"] == role_name)
            .unwrap_or_else(|| panic!("{role_kind}/{role_name} bound in metallb-native.yaml but not defined"));
        let mut role = role.clone();
        role["metadata"]["name"] = renamed(role_name).into();
        let mut binding = (*binding).clone();
        binding["metadata"]["name"] = renamed(binding["metadata"]["name"].as_str().expect("binding name")).into();
        binding["roleRef"]["name"] = renamed(role_name).into();
        binding["subjects"] = serde_json::json!([
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
        ]);
        applied.push(format!("{role_kind}/{role_name}"));
        objects.push(role);
        objects.push(binding);
    }
    assert!(
        applied.iter().any(|a| a.starts_with("ClusterRole/")) && applied.iter().any(|a| a.starts_with("Role/")),
        "metallb-native.yaml binds a ClusterRole and a Role to the controller: {applied:?}"
    );
    for object in objects {
        apply_yaml(admin, &object.to_string()).await.expect("MetalLB's controller RBAC");
    }
    applied
}

/// A kubeconfig acting as MetalLB's controller ServiceAccount.
pub fn write_kubeconfig(fixture: &KubeFixture, path: &Path) -> PathBuf {
    Identity::service_account(NAMESPACE, SERVICE_ACCOUNT)
        .write_kubeconfig(fixture, path)
        .expect("MetalLB controller kubeconfig")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running MetalLB controller process. Dropped while running, it is
/// killed.
pub struct MetallbController {
    child: Child,
    log: PathBuf,
}

impl MetallbController {
    /// Starts MetalLB's controller as [`SERVICE_ACCOUNT`] (`kubeconfig` from
    /// [`write_kubeconfig`]), watching pools in [`NAMESPACE`]; `pod` must
    /// exist there. Output goes to `log`.
    pub fn start(kubeconfig: &Path, pod: &str, log: &Path) -> MetallbController {
        let bin = controller_binary();
        let out = File::create(log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = out.try_clone().expect("log handle");
        let child = Command::new(&bin)
            .arg(format!("--namespace={NAMESPACE}"))
            .arg(format!("--pod-name={pod}"))
            .arg("--webhook-mode=disabled")
            .arg(format!("--port={}", free_port()))
            .arg(format!("--health-probe-port={}", free_port()))
            .arg("--log-level=info")
            .env("KUBECONFIG", kubeconfig)
            .env_remove("METALLB_ML_SECRET_NAME")
            .env_remove("METALLB_DEPLOYMENT")
            .env_remove("METALLB_BGP_TYPE")
            .env_remove("METALLB_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        MetallbController { child, log: log.to_owned() }
    }

    /// Panics (with the log's tail) when the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("MetalLB's controller exited ({status}); log tail:\n{}", self.log_tail(40));
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The log's lines at level error, and those of them (or of any
    /// level) that report a request refused by RBAC (`forbidden`).
    ///
    /// MetalLB logs errors in its normal operation, so their number is
    /// only reported: optimistic-concurrency conflicts (409: its status
    /// writes carry the resourceVersion of a cache that lags behind its own
    /// writes in a burst), the retries that follow them, `event handling
    /// failed, retrying` of the full reprocess on every restart with shared
    /// Services (each one's allocation key changes from "" in the fresh
    /// allocator to its sharing key, which asks for another full pass:
    /// controller/main.go `SetBalancer`), and at start a pool condition
    /// written before its ConfigurationState exists. What the address
    /// checks cannot see is a refusal.
    pub fn errors_and_refusals(&self) -> (usize, Vec<String>) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let errors = text.lines().filter(|l| l.contains("\"level\":\"error\"")).count();
        let refused = text.lines().filter(|l| l.contains("forbidden")).map(str::to_owned).collect();
        (errors, refused)
    }

    /// True once a full reprocess of all Services has ended without asking
    /// for another: MetalLB's `initialLoadPerformed`
    /// (internal/k8s/controllers/service_controller_reload.go logs `force
    /// service reload` before `end reconcile` when it will retry).
    pub fn initial_load_done(&self) -> bool {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut previous_retry = false;
        for line in text.lines().filter(|l| l.contains("\"controller\":\"ServiceReconciler - reprocessAll\"")) {
            if line.contains("\"end reconcile\"") && !previous_retry {
                return true;
            }
            previous_retry = line.contains("\"event\":\"force service reload\"");
        }
        false
    }

    /// Waits until [`Self::initial_load_done`] and the log has not grown
    /// for `quiet` (MetalLB logs every Service it processes at level info),
    /// so that a stop does not land in the middle of a pass.
    pub async fn wait_settled(&mut self, quiet: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut last = (0, Instant::now());
        loop {
            self.assert_running();
            let size = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
            if size != last.0 {
                last = (size, Instant::now());
            } else if last.1.elapsed() >= quiet && self.initial_load_done() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "MetalLB's controller did not settle within {limit:?} (initial load done: {}); log tail:\n{}",
                self.initial_load_done(),
                self.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, as the kubelet stops a container, and waits for the exit
    /// (SIGKILL after 30 s, the default grace period).
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for MetalLB's controller") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().expect("waiting for MetalLB's controller");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for MetallbController {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
