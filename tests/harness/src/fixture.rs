use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::sync::OnceCell;

use crate::binary::{FixtureBinaries, fixture_binaries};
use crate::error::{Error, Result, io, kube};

/// Set to keep the data dir (etcd data, certificates, kubeconfig, logs) after
/// the fixture stops, for debugging a failed test.
pub const KEEP_ENV: &str = "FERROLB_KEEP_FIXTURE";
/// Seconds to wait for the apiserver to become ready (default 90: a loaded
/// two-core CI machine has taken over 20 s).
pub const START_TIMEOUT_ENV: &str = "FERROLB_FIXTURE_START_TIMEOUT";

/// Both families, so that dual-stack Services can be created.
pub const SERVICE_CIDRS: &str = "10.96.0.0/16,fd00:10:96::/112";

const START_ATTEMPTS: usize = 3;

/// Opt-in settings of a fixture; the default is what every test gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixtureOptions {
    /// Write an audit log (`<data-dir>/audit.log`, one JSON event per line,
    /// level Metadata for every request, stages ResponseStarted and
    /// ResponseComplete, written before the response: mode blocking), for
    /// tests that check what a component actually requests.
    pub audit: bool,
    /// Let etcd fsync as a production member does (off by default).
    pub etcd_fsync: bool,
}

/// The audit policy of [`FixtureOptions::audit`]: every request, once its
/// response has started (so open watches are seen) and once complete.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
";

static SHARED_OPTIONS: std::sync::OnceLock<FixtureOptions> = std::sync::OnceLock::new();

/// Sets the options of the [`shared`] fixture of this test binary. Must be
/// called before the first [`shared`]; returns the options already in force
/// when it was too late (or called twice with other options).
pub fn configure_shared(options: FixtureOptions) -> std::result::Result<(), FixtureOptions> {
    let set = SHARED_OPTIONS.get_or_init(|| options.clone());
    if *set == options { Ok(()) } else { Err(set.clone()) }
}

/// A running kube-apiserver + etcd (one `kube-fixture` process).
///
/// Dropping it kills the process group and removes the data dir; that also
/// happens when a test panics, since the fixture is dropped while unwinding.
/// If the test process dies without unwinding, the fixture notices its stdin
/// closing and removes itself.
#[derive(Debug)]
pub struct KubeFixture {
    child: Mutex<Option<Child>>,
    data_dir: PathBuf,
    kubeconfig: PathBuf,
    server_url: String,
    config: Config,
    binaries: FixtureBinaries,
    keep_data_dir: bool,
    audit_log: Option<PathBuf>,
}

/// One fixture shared by every test of the calling test binary. It is never
/// dropped; the process ends when the test binary exits (see [`KubeFixture`]).
/// Tests sharing it should each work in their own namespace.
pub async fn shared() -> Result<&'static KubeFixture> {
    static SHARED: OnceCell<KubeFixture> = OnceCell::const_new();
    SHARED
        .get_or_try_init(|| KubeFixture::start_with(SHARED_OPTIONS.get_or_init(FixtureOptions::default).clone()))
        .await
}

impl KubeFixture {
    /// Builds the fixture if needed, starts it on free loopback ports and
    /// waits until the apiserver is ready to serve Services.
    pub async fn start() -> Result<KubeFixture> {
        Self::start_with(FixtureOptions::default()).await
    }

    /// As [`KubeFixture::start`], with opt-in settings.
    pub async fn start_with(options: FixtureOptions) -> Result<KubeFixture> {
        let binaries = tokio::task::spawn_blocking(fixture_binaries)
            .await
            .map_err(|e| Error::Build(format!("build task panicked: {e}")))??;
        let timeout = std::env::var(START_TIMEOUT_ENV)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(90));
        let mut failures = Vec::new();
        // A port picked free can be taken by someone else before the fixture
        // binds it; such a start fails fast, and fresh ports usually succeed.
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&binaries, timeout, &options).await {
                Ok(f) => return Ok(f),
                Err(e @ Error::Timeout { .. }) => return Err(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(Error::Start(failures.join("\n---\n")))
    }

    async fn start_once(binaries: &FixtureBinaries, timeout: Duration, options: &FixtureOptions) -> Result<KubeFixture> {
        let data_dir = new_data_dir()?;
        let ports = [free_port()?, free_port()?, free_port()?];
        let log_path = data_dir.join("fixture.log");
        let log =
            File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(io("duplicating the log file handle"))?;
        let keep_data_dir = std::env::var_os(KEEP_ENV).is_some();
        let mut cmd = Command::new(&binaries.kube_fixture);
        cmd.arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--secure-port={}", ports[0]))
            .arg(format!("--etcd-client-port={}", ports[1]))
            .arg(format!("--etcd-peer-port={}", ports[2]))
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDRS}"))
            .arg("--exit-on-stdin-eof")
            // The process is killed by group on drop, so it must not share
            // the test runner's group (a Ctrl-C still stops it via stdin EOF).
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log2);
        if keep_data_dir {
            cmd.arg("--keep-data-dir");
        }
        if options.etcd_fsync {
            cmd.arg("--etcd-fsync");
        }
        let audit_log = if options.audit {
            let policy = data_dir.join("audit-policy.yaml");
            std::fs::write(&policy, AUDIT_POLICY).map_err(io(format!("writing {}", policy.display())))?;
            let log = data_dir.join("audit.log");
            // Arguments after `--` go to the apiserver; the log backend's
            // default mode (blocking) writes each event before the response.
            cmd.arg("--")
                .arg(format!("--audit-policy-file={}", policy.display()))
                .arg(format!("--audit-log-path={}", log.display()))
                .arg("--audit-log-maxsize=0");
            Some(log)
        } else {
            None
        };
        let child = cmd
            .spawn()
            .map_err(io(format!("spawning {}", binaries.kube_fixture.display())))?;
        let kubeconfig = data_dir.join("kubeconfig");
        // Owning the child from here on means every early return below tears
        // the process down through Drop.
        let mut fixture = KubeFixture {
            child: Mutex::new(Some(child)),
            data_dir,
            kubeconfig,
            server_url: format!("https://127.0.0.1:{}", ports[0]),
            config: Config::new("https://127.0.0.1".parse().expect("static URL parses")),
            binaries: binaries.clone(),
            keep_data_dir,
            audit_log,
        };
        let deadline = Instant::now() + timeout;
        fixture.config = fixture.wait_for_kubeconfig(deadline).await?;
        fixture.wait_ready(deadline, timeout).await?;
        Ok(fixture)
    }

    fn exited(&self) -> Option<String> {
        let mut guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let child = guard.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "kube-fixture exited with {status}; log tail:\n{}",
                self.log_tail()
            )),
            Ok(None) => None,
            Err(e) => Some(format!("checking the kube-fixture process: {e}")),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.data_dir.join("fixture.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn wait_for_kubeconfig(&self, deadline: Instant) -> Result<Config> {
        // The fixture writes the kubeconfig before starting etcd, so it
        // appears within milliseconds unless the process died.
        loop {
            if let Some(why) = self.exited() {
                return Err(Error::Start(why));
            }
            if self.kubeconfig.is_file() {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Start(format!(
                    "no kubeconfig at {}; log tail:\n{}",
                    self.kubeconfig.display(),
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let kc = Kubeconfig::read_from(&self.kubeconfig).map_err(|source| Error::Kubeconfig {
            context: format!("reading {}", self.kubeconfig.display()),
            source: Box::new(source),
        })?;
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|source| Error::Kubeconfig {
                context: format!("loading {}", self.kubeconfig.display()),
                source: Box::new(source),
            })
    }

    /// Ready means: /readyz is ok, the `default` namespace exists and the
    /// default ServiceCIDR is Ready (/readyz does not cover it, and until then
    /// clusterIP allocation for a new Service may fail).
    async fn wait_ready(&self, deadline: Instant, timeout: Duration) -> Result<()> {
        let client = self.client()?;
        let mut last;
        loop {
            if let Some(why) = self.exited() {
                return Err(Error::Start(why));
            }
            match self.ready_step(&client).await {
                Ok(None) => return Ok(()),
                Ok(Some(waiting)) => last = waiting,
                Err(e) => last = format!("{e}: {:?}", std::error::Error::source(&e)),
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "kube-fixture at {} to become ready (last: {last}); log tail:\n{}",
                        self.server_url,
                        self.log_tail()
                    ),
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn ready_step(&self, client: &Client) -> Result<Option<String>> {
        let req = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("static request builds");
        let body = client
            .request_text(req)
            .await
            .map_err(kube("GET /readyz"))?;
        if body.trim() != "ok" {
            return Ok(Some(format!("/readyz said {body:?}")));
        }
        let namespaces: Api<Namespace> = Api::all(client.clone());
        if namespaces
            .get_opt("default")
            .await
            .map_err(kube("getting namespace default"))?
            .is_none()
        {
            return Ok(Some("namespace default not created yet".into()));
        }
        let cidrs: Api<ServiceCIDR> = Api::all(client.clone());
        let cidr = cidrs
            .get_opt("kubernetes")
            .await
            .map_err(kube("getting ServiceCIDR kubernetes"))?;
        let ready = cidr
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready {
            return Ok(Some("default ServiceCIDR not Ready yet".into()));
        }
        Ok(None)
    }

    /// A new client for the calling test's runtime (see the crate docs for
    /// why clients are not shared). Its default namespace is `default`.
    pub fn client(&self) -> Result<Client> {
        ferrolb_runtime::client::connect(self.config.clone()).map_err(kube("building a client for kube-fixture"))
    }

    /// A new client whose default namespace is `namespace`, for helpers such
    /// as [`crate::apply_yaml`] that fill in a missing namespace.
    pub fn client_in(&self, namespace: &str) -> Result<Client> {
        let mut config = self.config.clone();
        config.default_namespace = namespace.to_owned();
        ferrolb_runtime::client::connect(config).map_err(kube("building a client for kube-fixture"))
    }

    /// The client configuration (server URL, CA, admin token).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Path of a kubeconfig for this fixture (admin, `system:masters`), for
    /// processes under test (`KUBECONFIG=...`) and for kubectl.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// Directory holding etcd data, certificates, the kubeconfig and
    /// `fixture.log` (apiserver output).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Process id of the kube-fixture process (also its process group id);
    /// `None` once it has been stopped.
    pub fn pid(&self) -> Option<u32> {
        let guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(Child::id)
    }

    /// The audit log (one JSON `audit.k8s.io/v1` Event per line), when
    /// started with [`FixtureOptions::audit`].
    pub fn audit_log_path(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// kubectl of the same Kubernetes release as the fixture.
    pub fn kubectl_path(&self) -> &Path {
        &self.binaries.kubectl
    }

    /// A kubectl command already pointed at this fixture.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.binaries.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }
}

impl Drop for KubeFixture {
    fn drop(&mut self) {
        let mut guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut child) = guard.take() {
            // The fixture leads its own process group (process_group(0)), so
            // its pid is the group id. SIGKILL: the store is thrown away, and
            // a graceful apiserver shutdown waits for watches to drain.
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.wait();
        }
        if !self.keep_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

fn new_data_dir() -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "ferrolb-kube-fixture-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    Ok(l.local_addr().map_err(io("reading a bound port"))?.port())
}
