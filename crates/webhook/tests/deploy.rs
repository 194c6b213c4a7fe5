//! The deployment manifests (deploy/) against a real kube-apiserver: the
//! bundle is up to date with its kustomization, every document passes a
//! server-side dry run, the RBAC grants what controller and speaker need and
//! no more, and the Helm chart lints and renders into objects the API server
//! accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrolb_test_harness::{KubeFixture, shared};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn documents(yaml: &str) -> Vec<Value> {
    let docs: Vec<Option<Value>> = serde_saphyr::from_str_multiple(yaml).expect("valid YAML");
    docs.into_iter().flatten().filter(|d| !d.is_null()).collect()
}

fn helm() -> PathBuf {
    let out = run(Command::new("bash").arg(deploy_dir().join("helm/build-helm.sh")));
    let path = out.lines().find_map(|l| l.strip_prefix("helm=")).expect("helm= line");
    PathBuf::from(path.trim())
}

async fn namespace(client: &Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    match Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// `kubectl apply --dry-run=server` of a file; returns kubectl's report.
fn dry_run(fixture: &KubeFixture, file: &Path) -> String {
    run(fixture.kubectl().args(["apply", "--dry-run=server", "-f"]).arg(file))
}

#[test]
fn bundle_is_the_rendered_kustomization() {
    let dir = deploy_dir();
    let bundle = std::fs::read_to_string(dir.join("ferrolb.yaml")).unwrap();
    let header = std::fs::read_to_string(dir.join("bundle-header.txt")).unwrap();
    let body = bundle.strip_prefix(header.as_str()).expect("bundle starts with bundle-header.txt");
    let binaries = ferrolb_test_harness::fixture_binaries().expect("fixture kubectl");
    let rendered = run(Command::new(&binaries.kubectl).arg("kustomize").arg(&dir));
    assert!(body == rendered, "deploy/ferrolb.yaml is stale: run deploy/render.sh");
    let crds = std::fs::read_to_string(dir.join("crds/metallb.io.yaml")).unwrap();
    let chart_crds = std::fs::read_to_string(dir.join("helm/ferrolb/files/metallb.io.yaml")).unwrap();
    assert!(crds == chart_crds, "the Helm chart's CRD copy is stale: run deploy/render.sh");
}

#[test]
fn bundle_contents() {
    let bundle = std::fs::read_to_string(deploy_dir().join("ferrolb.yaml")).unwrap();
    let docs = documents(&bundle);
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} missing from the bundle"))
    };
    for d in &docs {
        let cluster_scoped = ["Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"];
        if !cluster_scoped.contains(&d["kind"].as_str().unwrap()) {
            assert_eq!(d["metadata"]["namespace"], "metallb-system", "{}", d["metadata"]["name"]);
        }
    }
    let speaker = find("DaemonSet", "speaker");
    assert_eq!(speaker["spec"]["template"]["spec"]["hostNetwork"], true);
    let c = &speaker["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"][0], "speaker");
    assert_eq!(c["securityContext"]["capabilities"]["add"], serde_json::json!(["NET_RAW", "NET_ADMIN"]));
    let controller = find("Deployment", "controller");
    let c = &controller["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"][0], "controller");
    assert!(c["image"].as_str().unwrap().starts_with("ghcr.io/ferrolb/ferrolb:"));
    let vwc = find("ValidatingWebhookConfiguration", "metallb-webhook-configuration");
    let paths: Vec<&str> = vwc["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["clientConfig"]["service"]["path"].as_str().unwrap())
        .collect();
    for kind in ferrolb_webhook::endpoints::Kind::ALL {
        assert!(paths.contains(&kind.path().as_str()), "no webhook for {}", kind.path());
    }
    let svc = find("Service", "metallb-webhook-service");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    let crd = find("CustomResourceDefinition", "bgppeers.metallb.io");
    assert_eq!(crd["spec"]["conversion"]["strategy"], "Webhook");
    assert_eq!(crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["path"], "/convert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_dry_runs_applies_and_rbac_is_least_privilege() {
    let fixture = shared().await.expect("kube fixture");
    let client = fixture.client().unwrap();
    // Namespaced objects can only be dry-run into an existing namespace.
    namespace(&client, "metallb-system").await;
    let bundle = deploy_dir().join("ferrolb.yaml");
    let report = dry_run(fixture, &bundle);
    let expected = documents(&std::fs::read_to_string(&bundle).unwrap()).len();
    assert_eq!(report.lines().filter(|l| l.contains("(server dry run)")).count(), expected, "{report}");

    // Now for real (nothing runs: the fixture has no kubelet), to ask the
    // API server's authorizer what the service accounts may do.
    run(fixture.kubectl().args(["apply", "--server-side", "-f"]).arg(&bundle));
    let controller = "system:serviceaccount:metallb-system:controller";
    let speaker = "system:serviceaccount:metallb-system:speaker";
    let ms = Some("metallb-system");
    let allowed = [
        (controller, "list", "", "services", None, None, None),
        (controller, "patch", "", "services", Some("status"), Some("default"), None),
        (controller, "patch", "metallb.io", "ipaddresspools", Some("status"), ms, None),
        (controller, "watch", "metallb.io", "communities", None, ms, None),
        (controller, "create", "", "secrets", None, ms, None),
        (controller, "update", "coordination.k8s.io", "leases", None, ms, Some("ferrolb-controller")),
        (controller, "list", "", "nodes", None, None, None),
        (controller, "update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", None, None, Some("metallb-webhook-configuration")),
        (controller, "update", "apiextensions.k8s.io", "customresourcedefinitions", None, None, Some("bgppeers.metallb.io")),
        (controller, "create", "", "events", None, Some("default"), None),
        (controller, "get", "apps", "deployments", None, ms, Some("controller")),
        (speaker, "list", "discovery.k8s.io", "endpointslices", None, None, None),
        (speaker, "create", "metallb.io", "servicel2statuses", None, ms, None),
        (speaker, "patch", "metallb.io", "servicel2statuses", Some("status"), ms, None),
        (speaker, "list", "", "pods", None, ms, None),
        (speaker, "watch", "", "secrets", None, ms, None),
        (controller, "create", "metallb.io", "configurationstates", None, ms, None),
        (speaker, "watch", "metallb.io", "bgppeers", None, ms, None),
    ];
    let denied = [
        (controller, "get", "", "secrets", None, Some("kube-system"), None),
        (controller, "delete", "", "services", None, Some("default"), None),
        (controller, "update", "", "services", None, Some("default"), None),
        (controller, "update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", None, None, Some("someone-elses")),
        (controller, "update", "apiextensions.k8s.io", "customresourcedefinitions", None, None, Some("widgets.example.com")),
        (controller, "create", "metallb.io", "ipaddresspools", None, ms, None),
        (controller, "get", "apps", "deployments", None, ms, Some("speaker")),
        (controller, "create", "", "pods", None, ms, None),
        // Grants MetalLB's manifests have and ferrolb never uses
        // (crates/ferrolb/tests/rbac_audit.rs derives the RBAC from requests).
        (controller, "update", "", "services", Some("status"), Some("default"), None),
        (controller, "get", "", "configmaps", None, ms, None),
        (controller, "create", "authentication.k8s.io", "tokenreviews", None, None, None),
        (speaker, "update", "metallb.io", "servicebgpstatuses", Some("status"), ms, None),
        (speaker, "list", "", "endpoints", None, None, None),
        (speaker, "create", "metallb.io", "servicel2statuses", None, Some("default"), None),
        (speaker, "get", "", "secrets", None, Some("default"), None),
        (speaker, "update", "", "services", Some("status"), Some("default"), None),
        (speaker, "create", "metallb.io", "ipaddresspools", None, ms, None),
        (speaker, "create", "metallb.io", "servicebgpstatuses", None, Some("default"), None),
        (speaker, "patch", "", "nodes", None, None, None),
    ];
    let sars: Api<SubjectAccessReview> = Api::all(client.clone());
    let ask = |user: &str, verb: &str, group: &str, resource: &str, sub: Option<&str>, ns: Option<&str>, name: Option<&str>| {
        SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.into()),
                groups: Some(vec!["system:serviceaccounts".into(), "system:serviceaccounts:metallb-system".into(), "system:authenticated".into()]),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    subresource: sub.map(Into::into),
                    namespace: ns.map(Into::into),
                    name: name.map(Into::into),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        }
    };
    for (want, cases) in [(true, &allowed[..]), (false, &denied[..])] {
        for &(user, verb, group, resource, sub, ns, name) in cases {
            let review = sars
                .create(&PostParams::default(), &ask(user, verb, group, resource, sub, ns, name))
                .await
                .expect("SubjectAccessReview");
            let got = review.status.map(|s| s.allowed).unwrap_or(false);
            assert_eq!(got, want, "{user} {verb} {group}/{resource} sub={sub:?} ns={ns:?} name={name:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_chart_lints_renders_and_dry_runs() {
    let helm = helm();
    let chart = deploy_dir().join("helm/ferrolb");
    run(Command::new(&helm).arg("lint").arg("--strict").arg(&chart));

    // A fixture of its own: the bundle test really applies the same
    // cluster-scoped objects (webhook configuration, ClusterRoles), after
    // which kubectl's dry-run create of the chart's copies is refused with
    // AlreadyExists on the shared server.
    let own = KubeFixture::start().await.expect("kube fixture");
    let fixture = &own;
    let client = fixture.client().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let crds = documents(&std::fs::read_to_string(deploy_dir().join("crds/metallb.io.yaml")).unwrap());
    for (i, (ns, sets)) in [
        ("metallb-system", ""),
        ("lb-helm", "webhook.enabled=false,speaker.enabled=false,loadBalancerClass=example.com/lb,logLevel=debug"),
        ("lb-helm2", "crds.enabled=false,speaker.memberlist.enabled=false,image.tag=dev,speaker.capabilities={NET_RAW}"),
    ]
    .into_iter()
    .enumerate()
    {
        namespace(&client, ns).await;
        let mut cmd = Command::new(&helm);
        cmd.args(["template", "ferrolb"]).arg(&chart).args(["-n", ns, "--kube-version", "1.34.0"]);
        if !sets.is_empty() {
            cmd.args(["--set", sets]);
        }
        let rendered = run(&mut cmd);
        let docs = documents(&rendered);
        let kinds = |k: &str| docs.iter().filter(|d| d["kind"] == k).count();
        // The templated CRDs are deploy/crds/ with only the BGPPeer conversion changed.
        let rendered_crds: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "CustomResourceDefinition").collect();
        match i {
            0 => {
                assert_eq!(rendered_crds.len(), crds.len());
                for (a, b) in rendered_crds.iter().zip(&crds) {
                    let (mut a, mut b) = ((*a).clone(), b.clone());
                    if a["metadata"]["name"] == "bgppeers.metallb.io" {
                        assert_eq!(a["spec"]["conversion"]["strategy"], "Webhook");
                        assert_eq!(a["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["namespace"], ns);
                        a["spec"]["conversion"] = Value::Null;
                        b["spec"]["conversion"] = Value::Null;
                    }
                    assert_eq!(a, b, "CRD {} differs from deploy/crds", b["metadata"]["name"]);
                }
                assert_eq!(kinds("DaemonSet"), 1);
                assert_eq!(kinds("ValidatingWebhookConfiguration"), 1);
            }
            1 => {
                assert_eq!(kinds("DaemonSet"), 0);
                assert_eq!(kinds("ValidatingWebhookConfiguration"), 0);
                let bgppeers = rendered_crds.iter().find(|d| d["metadata"]["name"] == "bgppeers.metallb.io").unwrap();
                assert_eq!(bgppeers["spec"]["conversion"]["strategy"], "None");
                assert!(rendered.contains("--webhook-mode=disabled"));
                assert!(rendered.contains("--lb-class=example.com/lb"));
            }
            _ => {
                assert!(rendered_crds.is_empty());
                assert!(rendered.contains("ghcr.io/ferrolb/ferrolb:dev"));
                assert!(!rendered.contains("METALLB_ML_LABELS"));
            }
        }
        // Several releases share cluster-scoped CRDs and webhook names; a
        // server-side dry run checks each rendering on its own.
        let file = tmp.path().join(format!("render-{i}.yaml"));
        std::fs::write(&file, &rendered).unwrap();
        let report = dry_run(fixture, &file);
        assert_eq!(report.lines().filter(|l| l.contains("(server dry run)")).count(), docs.len(), "{report}");
    }
}
