//! The permissions the components need, derived from what they actually
//! request (issue 8 item 1), not from a hand-written list.
//!
//! One API server with an audit log (every request, level Metadata). The
//! real `ferrolb controller` runs as `metallb-system/controller` and the
//! real `ferrolb speaker` (three of them, in network namespaces) as
//! `metallb-system/speaker`, each under deploy/manifests' RBAC as shipped,
//! through a realistic scenario: the controller with its webhook, leader
//! election, memberlist Secret and own Pod, assigning and failing to assign
//! addresses, writing events, pool status and its ConfigurationState,
//! answering admission reviews of every kind, then stopping (Lease
//! released); the speakers electing, announcing, writing ServiceL2Status and ServiceBGPStatus,
//! events and ConfigurationState, and withdrawing a deleted Service.
//!
//! From the audit log, for each ServiceAccount, every
//! (verb, apiGroup, resource, subresource, namespace, name) it requested is
//! collected, and the test checks
//! 1. no request was refused (a 403 is a gap in deploy/'s RBAC), and
//! 2. every grant of deploy/'s RBAC to that ServiceAccount (rule × verb ×
//!    resource × resourceName) was used by some allowed request, except
//!    those in [`UNEXERCISED`], each named with the reason the scenario
//!    cannot reach it; an entry there that the scenario did use fails too.
//!
//! Needs root, iproute2, arping, python3 and curl (scripts/test.sh installs
//! them).

mod speaker_env;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ferrolb_test_harness::identity::{DEPLOY_RBAC_MANIFESTS, METALLB_NAMESPACE, apply_deploy_rbac};
use ferrolb_test_harness::{FixtureOptions, apply_yaml, configure_shared, create_namespace, install_crds, shared, wait_for};
use k8s_openapi::api::core::v1::{Event, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};
use speaker_env::{Cluster, ServiceSpec};

const WAIT: Duration = Duration::from_secs(60);
const CONTROLLER_SA: &str = "system:serviceaccount:metallb-system:controller";
const SPEAKER_SA: &str = "system:serviceaccount:metallb-system:speaker";

/// Grants the scenario cannot exercise, with the reason. Each entry is
/// `(service account, grant)`, the grant written as [`Grant`]'s Display.
const UNEXERCISED: &[(&str, &str, &str)] = &[
    (
        CONTROLLER_SA,
        "update core/secrets in metallb-system",
        "the webhook certificate Secret is replaced when the certificate is renewed (crates/webhook/src/inject.rs \
         CertSecret::store with an existing Secret), a year after it was made; the first start creates it",
    ),
    (
        SPEAKER_SA,
        "patch core/events",
        "a repeat of the same event is aggregated into the existing one (crates/runtime/src/events.rs, the code \
         the controller's repeated AllocationFailed exercises here); the speakers' events do not repeat in the scenario",
    ),
];

// ---------------------------------------------------------------------------
// The scenario

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rbac_is_exactly_what_the_components_request() {
    configure_shared(FixtureOptions { audit: true, ..FixtureOptions::default() })
        .expect("this binary's fixture is configured before it starts");
    let fixture = shared().await.expect("API server fixture");
    let admin = fixture.client().expect("admin client");
    install_crds(&admin, &ferrolb_api::crds::render_yaml()).await.expect("CRDs");
    apply_deploy_rbac(&admin).await.expect("deploy/ RBAC");

    controller_scenario(fixture, &admin).await;
    speaker_scenario().await;

    let audit = std::fs::read_to_string(fixture.audit_log_path().expect("audit log enabled")).expect("audit log");
    let requests = requests_by_user(&audit);
    let roles = deploy_rules();
    let mut failures = Vec::new();
    for sa in [CONTROLLER_SA, SPEAKER_SA] {
        let made = requests.get(sa).cloned().unwrap_or_default();
        assert!(made.len() > 5, "{sa}: only {} distinct requests in the audit log: the scenario did not run", made.len());
        let report = check(sa, &made, &roles[sa], UNEXERCISED);
        let list: Vec<String> = made.iter().map(|r| format!("    {r}{}", if r.forbidden { " (403)" } else { "" })).collect();
        eprintln!("{sa}: {} distinct requests\n{}\n{}", made.len(), list.join("\n"), report.summary());
        failures.extend(report.failures());
    }
    assert!(failures.is_empty(), "deploy/ RBAC differs from what the components request:\n{}", failures.join("\n"));

    // Every request says which ferrolb component sent it.
    let agents = user_agents_by_user(&audit);
    for (sa, component) in [(CONTROLLER_SA, "controller"), (SPEAKER_SA, "speaker")] {
        let seen = agents.get(sa).cloned().unwrap_or_default();
        let expected = ferrolb_runtime::client::user_agent(component);
        assert_eq!(seen, BTreeSet::from([expected]), "{sa}: the User-Agent of its requests");
    }
}

/// The distinct `userAgent`s of each impersonated user's requests.
fn user_agents_by_user(audit: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in audit.lines().filter(|l| !l.trim().is_empty()) {
        let ev: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {line}"));
        let Some(user) = ev.pointer("/impersonatedUser/username").and_then(Value::as_str) else { continue };
        let agent = ev.get("userAgent").and_then(Value::as_str).unwrap_or_default();
        out.entry(user.to_string()).or_default().insert(agent.to_string());
    }
    out
}

async fn controller_scenario(fixture: &ferrolb_test_harness::KubeFixture, admin: &Client) {
    let ms = METALLB_NAMESPACE;
    let apps = "rbac-apps";
    create_namespace(admin, apps).await.expect("namespace");
    // What a cluster has around a deployed controller: its Deployment (owner
    // of the memberlist Secret), its Pod (owner of its ConfigurationState),
    // the webhook configuration (failurePolicy Ignore here: the API server
    // cannot reach the webhook Service without a cluster network), a pool,
    // an advertisement and a Node.
    apply_yaml(
        admin,
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: controller, namespace: {ms}}}\n\
             spec:\n  selector: {{matchLabels: {{app: metallb, component: controller}}}}\n  template:\n    metadata: {{labels: {{app: metallb, component: controller}}}}\n    spec: {{containers: [{{name: controller, image: ferrolb.invalid/ferrolb:test}}]}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {{name: controller-rbac, namespace: {ms}, labels: {{app: metallb, component: controller}}}}\n\
             spec: {{serviceAccountName: controller, containers: [{{name: controller, image: ferrolb.invalid/ferrolb:test}}]}}\n---\n\
             apiVersion: v1\nkind: Node\nmetadata: {{name: rbac-node, labels: {{kubernetes.io/hostname: rbac-node}}}}\n---\n\
             apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: rbac-pool, namespace: {ms}}}\nspec: {{addresses: [192.0.2.0/29]}}\n---\n\
             apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: rbac-l2, namespace: {ms}}}\nspec: {{ipAddressPools: [rbac-pool]}}\n"
        ),
    )
    .await
    .expect("controller's surroundings");
    let webhooks = include_str!("../../../deploy/manifests/webhook.yaml").replace("failurePolicy: Fail", "failurePolicy: Ignore");
    apply_yaml(admin, &webhooks).await.expect("webhook configuration");
    // deploy/kustomization.yaml's patch: BGPPeer conversion through the
    // controller's /convert (its caBundle is the controller's to inject).
    let conversion = json!([{"op": "add", "path": "/spec/conversion", "value": {
        "strategy": "Webhook",
        "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {"service": {
            "name": "metallb-webhook-service", "namespace": ms, "path": "/convert"}}}
    }}]);
    let out = fixture
        .kubectl()
        .args(["patch", "crd", "bgppeers.metallb.io", "--type=json", "-p", &conversion.to_string()])
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "patching the BGPPeer CRD: {}", String::from_utf8_lossy(&out.stderr));

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = ferrolb_test_harness::identity::Identity::controller()
        .write_kubeconfig(fixture, &dir.path().join("controller.kubeconfig"))
        .expect("kubeconfig");
    let webhook_port = free_port();
    let log_path = dir.path().join("controller.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut controller = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("controller")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--namespace={ms}"))
        .args(["--port=0", "--health-probe-port=0", "--bind-address=127.0.0.1", "--log-format=text", "--log-level=debug"])
        .args(["--webhook-mode=enabled", &format!("--webhook-bind-address=127.0.0.1:{webhook_port}")])
        .arg(format!("--cert-dir={}", dir.path().join("certs").display()))
        .args(["--leader-election-lease-duration=3s", "--leader-election-renew-deadline=2s", "--leader-election-retry-period=500ms"])
        .args(["--event-aggregation-interval=1s"])
        .env("METALLB_POD_NAME", "controller-rbac")
        .env("METALLB_ML_SECRET_NAME", "memberlist")
        .env("METALLB_DEPLOYMENT", "controller")
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .expect("ferrolb controller starts");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Services: one gets an address, one asks for an address no pool has
    // (a warning event), one shares the first one's key and port-free.
    let services: Api<Service> = Api::namespaced(admin.clone(), apps);
    for (name, meta, spec) in [
        ("ok", "  annotations: {metallb.io/allow-shared-ip: k}\n", ""),
        ("shared", "  annotations: {metallb.io/allow-shared-ip: k}\n", ""),
        ("unassignable", "  annotations: {metallb.io/loadBalancerIPs: 203.0.113.9}\n", ""),
    ] {
        let port = if name == "shared" { 81 } else { 80 };
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {apps}\n{meta}spec:\n  type: LoadBalancer\n{spec}  ports:\n  - port: {port}\n"
        );
        apply_yaml(admin, &yaml).await.expect("service");
    }
    let ip_of = |s: &Service| {
        s.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?.first()?.ip.clone()
    };
    for name in ["ok", "shared"] {
        wait_for(&format!("{name} to get an address"), WAIT, || async { services.get(name).await.ok().and_then(|s| ip_of(&s)) })
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    }
    let events: Api<Event> = Api::namespaced(admin.clone(), apps);
    wait_for("a Warning event on unassignable", WAIT, || async {
        let list = events.list(&ListParams::default().fields("involvedObject.name=unassignable")).await.ok()?;
        list.items.iter().any(|e| e.type_.as_deref() == Some("Warning")).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));

    // The controller's own objects: pool status, ConfigurationState, the
    // memberlist Secret, the webhook certificate and its injected caBundle.
    let get = |path: String| async move { get_json(&path).await };
    wait_for("pool status", WAIT, || async {
        let p = get(format!("/apis/metallb.io/v1beta1/namespaces/{ms}/ipaddresspools/rbac-pool")).await?;
        (p.pointer("/status/assignedIPv4").and_then(Value::as_u64) == Some(1)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    for (what, path, pointer) in [
        ("ConfigurationState", format!("/apis/metallb.io/v1beta1/namespaces/{ms}/configurationstates"), "/items/0/status"),
        ("memberlist Secret", format!("/api/v1/namespaces/{ms}/secrets/memberlist"), "/data/secretkey"),
        (
            "conversion caBundle",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/bgppeers.metallb.io".to_string(),
            "/spec/conversion/webhook/clientConfig/caBundle",
        ),
        (
            "webhook caBundle",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/metallb-webhook-configuration".to_string(),
            "/webhooks/0/clientConfig/caBundle",
        ),
    ] {
        wait_for(what, WAIT, || async { get(path.clone()).await?.pointer(pointer).map(|_| ()) })
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    }

    // Admission reviews of every kind, as the API server would send them:
    // the webhook reads the cluster (as the controller) to decide.
    for kind in ferrolb_webhook::endpoints::Kind::ALL {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": format!("rbac-{}", kind.plural()),
                "kind": {"group": "metallb.io", "version": kind.version(), "kind": kind.name()},
                "resource": {"group": "metallb.io", "version": kind.version(), "resource": kind.plural()},
                "name": "rbac-review",
                "namespace": ms,
                "operation": "CREATE",
                "userInfo": {"username": "someone"},
                "object": {
                    "apiVersion": format!("metallb.io/{}", kind.version()),
                    "kind": kind.name(),
                    "metadata": {"name": "rbac-review", "namespace": ms},
                    "spec": {}
                }
            }
        });
        let out = Command::new("curl")
            .args(["-sS", "-k", "--max-time", "10", "-H", "Content-Type: application/json", "--data-binary"])
            .arg(review.to_string())
            .arg(format!("https://127.0.0.1:{webhook_port}{}", kind.path()))
            .output()
            .expect("curl runs");
        let answer: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: not an AdmissionReview ({e}): {}\n{}", kind.path(), String::from_utf8_lossy(&out.stderr), log()));
        assert_eq!(answer.pointer("/response/uid"), Some(&json!(format!("rbac-{}", kind.plural()))), "{answer}");
    }

    // A Service goes away; the pool status follows.
    services.delete("shared", &DeleteParams::default()).await.expect("delete service");
    wait_for("pool status after a delete", WAIT, || async {
        let p = get(format!("/apis/metallb.io/v1beta1/namespaces/{ms}/ipaddresspools/rbac-pool")).await?;
        // "ok" keeps its address; the shared key no longer needs a second Service.
        (p.pointer("/status/assignedIPv4").and_then(Value::as_u64) == Some(1)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    stop(&mut controller, &log);
    // Back to the CRD as generated, which the speaker set-up applies again.
    let out = fixture
        .kubectl()
        .args(["patch", "crd", "bgppeers.metallb.io", "--type=json", "-p", r#"[{"op": "replace", "path": "/spec/conversion", "value": {"strategy": "None"}}]"#])
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "restoring the BGPPeer CRD: {}", String::from_utf8_lossy(&out.stderr));
}

/// SIGTERM (the Lease is released on the way out), then waits for the exit.
fn stop(child: &mut Child, log: &dyn Fn() -> String) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "controller exited with {status}\n{}", log());
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("controller did not stop within 20 s of SIGTERM\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn speaker_scenario() {
    let _serial = speaker_env::serial().await;
    let c = Cluster::start("rbac", 3, 0).await;
    let ip = IpAddr::V4(c.vip(0));
    c.create_service(&ServiceSpec::new("web", &[ip]).endpoints_on(&[1, 2, 3])).await;
    let owner = c.expected_owner("web", ip);
    c.wait_l2_status("web", Some(owner)).await;
    c.wait_event("web", "nodeAssigned", "").await.expect("nodeAssigned event");
    let ip_b = IpAddr::V4(c.vip(1));
    c.create_service(&ServiceSpec::new("gone", &[ip_b]).endpoints_on(&[1])).await;
    c.wait_l2_status("gone", Some(c.expected_owner("gone", ip_b))).await;
    let services: Api<Service> = Api::namespaced(c.admin.clone(), &c.ns);
    services.delete("gone", &DeleteParams::default()).await.expect("delete service");
    c.wait_l2_status("gone", None).await;
    // BGP: every node keeps a ServiceBGPStatus naming the peer (whatever the
    // session's state: no router answers here), and deletes it with the Service.
    c.bgp_pool("bgp", 1, 2, false, "aggregationLength: 32").await;
    c.bgp_peer("router", &format!("myASN: 64513, peerASN: 64512, peerAddress: {}", c.topo.router().ipv4)).await;
    let bgp_ip = IpAddr::V4(c.bgp_vip(1));
    c.create_service(&ServiceSpec::new("routed", &[bgp_ip]).endpoints_on(&[1])).await;
    c.wait_bgp_status("routed", &[(1, &["router"]), (2, &["router"]), (3, &["router"])]).await;
    services.delete("routed", &DeleteParams::default()).await.expect("delete service");
    c.wait_bgp_status("routed", &[]).await;
    c.shutdown().await;
}

/// GET `path` as admin (kubectl get --raw), as JSON; None when it fails
/// (e.g. 404).
async fn get_json(path: &str) -> Option<Value> {
    let fixture = shared().await.ok()?;
    let out = fixture.kubectl().args(["get", "--raw", path]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

// ---------------------------------------------------------------------------
// The audit log and the rules

/// One distinct request as the authorizer saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    verb: String,
    group: String,
    /// `resource` or `resource/subresource`; a non-resource URL's path.
    resource: String,
    namespace: String,
    name: String,
    forbidden: bool,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        write!(f, "{} {group}/{}", self.verb, self.resource)?;
        if !self.namespace.is_empty() {
            write!(f, " in {}", self.namespace)?;
        }
        if !self.name.is_empty() {
            write!(f, " name {}", self.name)?;
        }
        Ok(())
    }
}

/// Distinct requests per impersonated user, from audit events (JSON lines).
fn requests_by_user(audit: &str) -> BTreeMap<String, BTreeSet<Request>> {
    let mut out: BTreeMap<String, BTreeSet<Request>> = BTreeMap::new();
    for line in audit.lines().filter(|l| !l.trim().is_empty()) {
        let ev: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {line}"));
        let Some(user) = ev.pointer("/impersonatedUser/username").and_then(Value::as_str) else { continue };
        let s = |p: &str| ev.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
        let (group, resource) = match ev.get("objectRef") {
            Some(_) => {
                let sub = s("/objectRef/subresource");
                let res = s("/objectRef/resource");
                (s("/objectRef/apiGroup"), if sub.is_empty() { res } else { format!("{res}/{sub}") })
            }
            None => (String::new(), s("/requestURI").split('?').next().unwrap_or_default().to_string()),
        };
        let code = ev.pointer("/responseStatus/code").and_then(Value::as_u64);
        let decision = s("/annotations/authorization.k8s.io~1decision");
        let req = Request {
            verb: s("/verb"),
            group,
            resource,
            namespace: s("/objectRef/namespace"),
            name: s("/objectRef/name"),
            forbidden: code == Some(403) || decision == "forbid",
        };
        let requests = out.entry(user.to_string()).or_default();
        // A patch that creates (server-side apply of a missing object,
        // answered 201) is authorised a second time, as a create, inside the
        // handler; the audit log has only the patch.
        if req.verb == "patch" && code == Some(201) {
            requests.insert(Request { verb: "create".into(), ..req.clone() });
        }
        requests.insert(req);
    }
    out
}

/// One RBAC rule, with the namespace its binding limits it to (None: a
/// ClusterRole bound cluster-wide).
#[derive(Debug, Clone)]
struct Rule {
    source: String,
    namespace: Option<String>,
    groups: Vec<String>,
    resources: Vec<String>,
    names: Vec<String>,
    verbs: Vec<String>,
}

/// The smallest unit of a grant: one verb on one resource (and name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    verb: String,
    group: String,
    resource: String,
    name: Option<String>,
    namespace: Option<String>,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        write!(f, "{} {group}/{}", self.verb, self.resource)?;
        if let Some(n) = &self.name {
            write!(f, " name {n}")?;
        }
        if let Some(ns) = &self.namespace {
            write!(f, " in {ns}")?;
        }
        Ok(())
    }
}

impl Rule {
    fn grants(&self) -> Vec<Grant> {
        let mut out = Vec::new();
        for verb in &self.verbs {
            for group in &self.groups {
                for resource in &self.resources {
                    let names: Vec<Option<String>> =
                        if self.names.is_empty() { vec![None] } else { self.names.iter().cloned().map(Some).collect() };
                    for name in names {
                        out.push(Grant {
                            verb: verb.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            name,
                            namespace: self.namespace.clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

impl Grant {
    /// Whether this grant alone authorises `r`, as the RBAC authorizer
    /// decides: a name-restricted grant needs the request to carry that name
    /// (a create never does; a list or watch only through a
    /// `metadata.name` field selector).
    fn covers(&self, r: &Request) -> bool {
        let any = |v: &str, want: &str| v == "*" || v == want;
        any(&self.verb, &r.verb)
            && any(&self.group, &r.group)
            && any(&self.resource, &r.resource)
            && self.name.as_ref().is_none_or(|n| *n == r.name)
            && self.namespace.as_ref().is_none_or(|ns| *ns == r.namespace)
    }
}

/// deploy/manifests' rules per ServiceAccount user name.
fn deploy_rules() -> BTreeMap<String, Vec<Rule>> {
    let mut docs: Vec<(String, Value)> = Vec::new();
    for (file, yaml) in DEPLOY_RBAC_MANIFESTS {
        let parsed: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
        docs.extend(parsed.into_iter().map(|d| (file.to_string(), d)));
    }
    let role = |kind: &str, name: &str, ns: Option<&str>| {
        docs.iter()
            .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name && d["metadata"]["namespace"].as_str() == ns)
            .unwrap_or_else(|| panic!("{kind} {name} not in deploy/manifests"))
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
    };
    let mut out: BTreeMap<String, Vec<Rule>> = BTreeMap::new();
    for (_, binding) in docs.iter().filter(|(_, d)| matches!(d["kind"].as_str(), Some("RoleBinding" | "ClusterRoleBinding"))) {
        let binding_ns = binding["metadata"]["namespace"].as_str();
        let role_kind = binding["roleRef"]["kind"].as_str().expect("roleRef.kind");
        let role_name = binding["roleRef"]["name"].as_str().expect("roleRef.name");
        let role_ns = if role_kind == "Role" { binding_ns } else { None };
        let (file, r) = role(role_kind, role_name, role_ns);
        for subject in binding["subjects"].as_array().into_iter().flatten() {
            assert_eq!(subject["kind"], "ServiceAccount", "{file}: only ServiceAccounts are bound");
            let user = format!(
                "system:serviceaccount:{}:{}",
                subject["namespace"].as_str().expect("subject namespace"),
                subject["name"].as_str().expect("subject name")
            );
            for (i, rule) in r["rules"].as_array().into_iter().flatten().enumerate() {
                assert!(rule.get("nonResourceURLs").is_none(), "{file}: nonResourceURLs are not expected");
                out.entry(user.clone()).or_default().push(Rule {
                    source: format!("{file} {role_kind}/{role_name} rule {}", i + 1),
                    namespace: binding_ns.map(str::to_string),
                    groups: strings(&rule["apiGroups"]),
                    resources: strings(&rule["resources"]),
                    names: strings(&rule["resourceNames"]),
                    verbs: strings(&rule["verbs"]),
                });
            }
        }
    }
    out
}

struct Report {
    sa: String,
    forbidden: Vec<Request>,
    unused: Vec<(String, Grant)>,
    stale_exemptions: Vec<String>,
    used: usize,
    exempt: usize,
}

impl Report {
    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.forbidden {
            out.push(format!("{}: refused (403), missing from deploy/: {r}", self.sa));
        }
        for (source, g) in &self.unused {
            out.push(format!("{}: granted but never requested: {g} ({source})", self.sa));
        }
        for g in &self.stale_exemptions {
            out.push(format!("{}: listed in UNEXERCISED but the scenario used it: {g}", self.sa));
        }
        out
    }

    fn summary(&self) -> String {
        format!(
            "  grants used: {}, unexercised by design: {}, unused: {}, refused requests: {}",
            self.used,
            self.exempt,
            self.unused.len(),
            self.forbidden.len()
        )
    }
}

fn check(sa: &str, made: &BTreeSet<Request>, rules: &[Rule], exempt: &[(&str, &str, &str)]) -> Report {
    let exempt: BTreeSet<&str> = exempt.iter().filter(|(who, _, _)| *who == sa).map(|(_, g, _)| *g).collect();
    let mut report = Report { sa: sa.into(), forbidden: vec![], unused: vec![], stale_exemptions: vec![], used: 0, exempt: 0 };
    report.forbidden = made.iter().filter(|r| r.forbidden).cloned().collect();
    let allowed: Vec<&Request> = made.iter().filter(|r| !r.forbidden).collect();
    let mut seen = BTreeSet::new();
    for rule in rules {
        for g in rule.grants() {
            if !seen.insert(g.clone()) {
                continue;
            }
            let used = allowed.iter().any(|r| g.covers(r));
            let name = g.to_string();
            match (used, exempt.contains(name.as_str())) {
                (true, false) => report.used += 1,
                (true, true) => report.stale_exemptions.push(name),
                (false, true) => report.exempt += 1,
                (false, false) => report.unused.push((rule.source.clone(), g)),
            }
        }
    }
    for name in exempt {
        if !seen.iter().any(|g| g.to_string() == name) {
            report.stale_exemptions.push(format!("{name} (no such grant in deploy/)"));
        }
    }
    report
}

// ---------------------------------------------------------------------------
// The matcher itself, offline

#[test]
fn grants_cover_requests_as_the_rbac_authorizer_does() {
    let req = |verb: &str, group: &str, resource: &str, ns: &str, name: &str| Request {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        namespace: ns.into(),
        name: name.into(),
        forbidden: false,
    };
    let rule = Rule {
        source: "test".into(),
        namespace: Some("metallb-system".into()),
        groups: vec!["coordination.k8s.io".into()],
        resources: vec!["leases".into()],
        names: vec!["ferrolb-controller".into()],
        verbs: vec!["get".into(), "create".into()],
    };
    let grants = rule.grants();
    assert_eq!(grants.len(), 2);
    let get = &grants[0];
    assert!(get.covers(&req("get", "coordination.k8s.io", "leases", "metallb-system", "ferrolb-controller")));
    assert!(!get.covers(&req("get", "coordination.k8s.io", "leases", "metallb-system", "other")));
    assert!(!get.covers(&req("get", "coordination.k8s.io", "leases", "default", "ferrolb-controller")));
    assert!(!get.covers(&req("get", "coordination.k8s.io", "leases/status", "metallb-system", "ferrolb-controller")));
    // A create carries no name at authorisation time: a name-restricted
    // create grant is never used.
    assert!(!grants[1].covers(&req("create", "coordination.k8s.io", "leases", "metallb-system", "")));

    let made: BTreeSet<Request> = [
        req("get", "coordination.k8s.io", "leases", "metallb-system", "ferrolb-controller"),
        Request { forbidden: true, ..req("watch", "coordination.k8s.io", "leases", "metallb-system", "") },
    ]
    .into();
    let report = check("sa", &made, std::slice::from_ref(&rule), &[("sa", "create coordination.k8s.io/leases name ferrolb-controller in metallb-system", "why")]);
    assert_eq!(report.used, 1);
    assert_eq!(report.exempt, 1);
    assert_eq!(report.forbidden.len(), 1);
    assert!(report.failures()[0].contains("refused (403)"), "{:?}", report.failures());
    let report = check("sa", &made, &[rule], &[]);
    assert_eq!(report.unused.len(), 1);
    assert!(report.failures().iter().any(|f| f.contains("never requested: create coordination.k8s.io/leases")));
}

#[test]
fn audit_events_become_requests_per_impersonated_user() {
    let audit = [
        r#"{"verb":"watch","user":{"username":"admin"},"impersonatedUser":{"username":"system:serviceaccount:metallb-system:speaker"},"objectRef":{"resource":"endpointslices","apiGroup":"discovery.k8s.io"},"responseStatus":{"code":200},"stage":"ResponseStarted"}"#,
        r#"{"verb":"patch","user":{"username":"admin"},"impersonatedUser":{"username":"system:serviceaccount:metallb-system:controller"},"objectRef":{"resource":"services","subresource":"status","namespace":"a","name":"s"},"responseStatus":{"code":403},"annotations":{"authorization.k8s.io/decision":"forbid"},"stage":"ResponseComplete"}"#,
        r#"{"verb":"get","user":{"username":"admin"},"objectRef":{"resource":"pods"},"responseStatus":{"code":200}}"#,
        r#"{"verb":"patch","user":{"username":"admin"},"impersonatedUser":{"username":"system:serviceaccount:metallb-system:speaker"},"objectRef":{"resource":"configurationstates","apiGroup":"metallb.io","namespace":"m","name":"c"},"responseStatus":{"code":201},"stage":"ResponseComplete"}"#,
    ]
    .join("\n");
    let by = requests_by_user(&audit);
    assert_eq!(by.len(), 2, "the admin's own request is not counted");
    let c: Vec<String> = by[CONTROLLER_SA].iter().map(|r| format!("{r} {}", r.forbidden)).collect();
    assert_eq!(c, vec!["patch core/services/status in a name s true"]);
    let s: Vec<String> = by[SPEAKER_SA].iter().map(ToString::to_string).collect();
    assert_eq!(
        s,
        vec![
            "create metallb.io/configurationstates in m name c",
            "patch metallb.io/configurationstates in m name c",
            "watch discovery.k8s.io/endpointslices",
        ],
        "a patch answered 201 created the object, so it needed create too"
    );
}
