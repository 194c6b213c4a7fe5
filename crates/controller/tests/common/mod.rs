//! Shared set-up for controller tests on the real API server: one fixture
//! per test binary, CRDs and deploy/'s RBAC installed once, and per test a
//! MetalLB namespace, a Service namespace and (for isolation from other
//! tests' controllers, since Services are watched cluster-wide) a
//! load-balancer class.
//!
//! Every controller runs as the ServiceAccount `metallb-system/controller`
//! (impersonated through the admin credentials) with exactly the
//! ClusterRole of deploy/manifests/rbac-controller.yaml, and that file's
//! namespaced Role bound in the test's own MetalLB namespace (rules
//! unchanged; only the namespace differs, as when MetalLB is installed in
//! another namespace). The test itself sets up and checks as admin.

#![allow(dead_code)]

pub mod metallb;
pub mod proxy;

use std::path::PathBuf;
use std::time::Duration;

use ferrolb_controller::metrics::Metrics;
use ferrolb_controller::{Controller, ControllerOptions};
use ferrolb_test_harness::identity::{DEPLOY_RBAC_MANIFESTS, Identity, apply_deploy_rbac};
use ferrolb_test_harness::{KubeFixture, apply_yaml_in, create_namespace, install_crds, shared, unique_name, wait_for};
use k8s_openapi::api::core::v1::{Event, Service};
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(60);

pub struct Env {
    pub fixture: &'static KubeFixture,
    pub client: Client,
    /// MetalLB namespace of this test's controller.
    pub system: String,
    /// Namespace of this test's Services.
    pub apps: String,
    /// Load-balancer class of this test (None: plain Services).
    pub class: Option<String>,
    /// Kubeconfig impersonating the controller's ServiceAccount.
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

/// Logs of the controllers under test, shown for failing tests
/// (`RUST_LOG` overrides the default filter).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("ferrolb_controller=debug,kube_runtime=info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// The fixture with CRDs and deploy/'s RBAC installed (once per binary).
pub async fn fixture() -> &'static KubeFixture {
    init_logs();
    let fixture = shared().await.expect("kube fixture");
    static SETUP: OnceCell<()> = OnceCell::const_new();
    SETUP
        .get_or_init(|| async {
            let client = fixture.client().expect("client");
            install_crds(&client, &ferrolb_api::crds::render_yaml()).await.expect("installing CRDs");
            apply_deploy_rbac(&client).await.expect("deploy/manifests RBAC");
        })
        .await;
    fixture
}

/// Binds deploy/'s controller Role (rules as shipped) in `namespace` to the
/// controller's ServiceAccount, as deploy/ binds it in metallb-system.
pub async fn grant_controller_role(admin: &Client, namespace: &str) {
    let (_, yaml) = DEPLOY_RBAC_MANIFESTS
        .iter()
        .find(|(name, _)| *name == "rbac-controller.yaml")
        .expect("deploy/manifests/rbac-controller.yaml");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).expect("rbac-controller.yaml parses");
    let mut bound = 0;
    for mut doc in docs {
        if !matches!(doc["kind"].as_str(), Some("Role" | "RoleBinding")) {
            continue;
        }
        doc["metadata"]["namespace"] = serde_json::Value::String(namespace.to_string());
        apply_yaml_in(admin, namespace, &doc.to_string()).await.expect("controller Role");
        bound += 1;
    }
    assert_eq!(bound, 2, "rbac-controller.yaml has one Role and one RoleBinding");
}

/// A client acting as the controller's ServiceAccount, with the Role granted
/// in `namespace`.
pub async fn controller_client(admin: &Client, namespace: &str) -> Client {
    let fixture = fixture().await;
    grant_controller_role(admin, namespace).await;
    Identity::controller().client(fixture, namespace).await.expect("impersonating client")
}

pub async fn env(prefix: &str, with_class: bool) -> Env {
    let fixture = fixture().await;
    let client = fixture.client().expect("client");
    let system = unique_name(&format!("{prefix}-sys"));
    let apps = unique_name(&format!("{prefix}-app"));
    create_namespace(&client, &system).await.expect("namespace");
    create_namespace(&client, &apps).await.expect("namespace");
    grant_controller_role(&client, &system).await;
    let class = with_class.then(|| format!("ferrolb.test/{}", unique_name(prefix)));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = Identity::controller()
        .write_kubeconfig(fixture, &dir.path().join("controller.kubeconfig"))
        .expect("controller kubeconfig");
    Env { fixture, client, system, apps, class, kubeconfig, _dir: dir }
}

pub struct Running {
    pub metrics: Metrics,
    pub health_addr: Option<std::net::SocketAddr>,
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Running {
    /// Clean stop (SIGTERM path): releases the lease.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.expect("controller task");
    }

    /// Crash: the task is dropped where it stands, nothing is released.
    pub fn kill(self) {
        self.task.abort();
    }
}

impl Env {
    pub fn options(&self, extra: &[&str]) -> ControllerOptions {
        let mut args: Vec<String> = vec![
            "controller".into(),
            format!("--namespace={}", self.system),
            format!("--kubeconfig={}", self.kubeconfig.display()),
            "--port=0".into(),
            "--health-probe-port=0".into(),
            "--leader-elect=false".into(),
            "--event-aggregation-interval=1s".into(),
        ];
        if let Some(c) = &self.class {
            args.push(format!("--lb-class={c}"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        use clap::Parser;
        ControllerOptions::parse_from(args)
    }

    pub async fn start(&self, extra: &[&str]) -> Running {
        self.start_with(self.options(extra)).await
    }

    pub async fn start_with(&self, opts: ControllerOptions) -> Running {
        let stop = CancellationToken::new();
        let s = stop.clone();
        let ctl: Controller = ferrolb_controller::start(opts, async move { s.cancelled().await })
            .await
            .expect("controller starts");
        let metrics = ctl.metrics.clone();
        let health_addr = ctl.health_addr;
        let task = tokio::spawn(ctl.wait());
        Running { metrics, health_addr, stop, task }
    }

    /// A kubeconfig as the controller's, reaching the API server at
    /// `server` (a proxy) instead.
    pub fn kubeconfig_via(&self, server: &str) -> PathBuf {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        assert!(text.contains(self.fixture.server_url()), "kubeconfig names the server");
        let path = self._dir.path().join(format!("via-{}.kubeconfig", server.replace([':', '/'], "_")));
        std::fs::write(&path, text.replace(self.fixture.server_url(), server)).expect("writing kubeconfig");
        path
    }

    pub async fn apply(&self, yaml: &str) {
        apply_yaml_in(&self.client, &self.system, yaml).await.expect("apply");
    }

    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.apps)
    }

    /// A LoadBalancer Service of this test's class, created in `apps`;
    /// `extra_yaml` is added to its metadata.
    pub async fn create_service(&self, name: &str, extra_yaml: &str) -> Service {
        self.create_service_with(name, extra_yaml, "").await
    }

    /// As [`Env::create_service`], with `spec_yaml` added to the spec.
    pub async fn create_service_with(&self, name: &str, extra_yaml: &str, spec_yaml: &str) -> Service {
        let class = self.class.as_ref().map(|c| format!("  loadBalancerClass: {c}\n")).unwrap_or_default();
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n{extra_yaml}spec:\n  type: LoadBalancer\n{class}{spec_yaml}  ports:\n  - port: 80\n",
            ns = self.apps
        );
        apply_yaml_in(&self.client, &self.apps, &yaml).await.expect("service");
        self.services().get(name).await.expect("service created")
    }

    pub async fn wait_ips(&self, name: &str) -> Vec<String> {
        let api = self.services();
        wait_for(&format!("service {name} to get an address"), WAIT, || async {
            let s = api.get(name).await.ok()?;
            let ips = ips(&s);
            (!ips.is_empty()).then_some(ips)
        })
        .await
        .expect("address assigned")
    }

    pub async fn wait_service<F: Fn(&Service) -> bool>(&self, name: &str, what: &str, f: F) -> Service {
        let api = self.services();
        wait_for(&format!("service {name}: {what}"), WAIT, || async {
            let s = api.get(name).await.ok()?;
            f(&s).then_some(s)
        })
        .await
        .expect(what)
    }

    pub async fn events_of(&self, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.apps);
        api.list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .expect("events")
            .items
    }

    pub async fn wait_event(&self, name: &str, reason: &str, contains: &str) -> Event {
        wait_for(&format!("event {reason} on {name}"), WAIT, || async {
            self.events_of(name).await.into_iter().find(|e| {
                e.reason.as_deref() == Some(reason) && e.message.as_deref().unwrap_or("").contains(contains)
            })
        })
        .await
        .expect("event")
    }
}

/// HTTP status of `GET path` on `addr`, None when the request fails.
pub async fn http_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    out.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Waits until `GET path` answers `status`.
pub async fn wait_status(addr: std::net::SocketAddr, path: &str, status: u16, limit: Duration) {
    wait_for(&format!("{path} to answer {status}"), limit, || async {
        (http_status(addr, path).await == Some(status)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

pub fn ips(s: &Service) -> Vec<String> {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|x| x.ip.clone()).collect())
        .unwrap_or_default()
}

pub fn annotation(s: &Service, key: &str) -> Option<String> {
    s.metadata.annotations.as_ref().and_then(|a| a.get(key)).cloned()
}

pub fn condition(s: &Service) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    s.status
        .as_ref()
        .and_then(|st| st.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == ferrolb_controller::service_status::CONDITION_TYPE))
        .cloned()
}

pub fn pool_yaml(name: &str, addresses: &[&str], extra: &str) -> String {
    let addrs: String = addresses.iter().map(|a| format!("  - {a}\n")).collect();
    format!("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\nspec:\n  addresses:\n{addrs}{extra}")
}
