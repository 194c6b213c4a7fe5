//! Proves that the kube-fixture behaves like the real API server the
//! controller and speaker will talk to: dual-stack Service allocation, the
//! status subresource, Leases, both Event APIs, CRDs with CEL validation.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Event as CoreEvent, Node, ObjectReference, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use ferrolb_test_harness::{
    KubeFixture, apply_yaml_in, create_namespace, create_node, install_crds, shared, unique_name,
    wait_for,
};

async fn namespaced_client(prefix: &str) -> Result<(Client, String)> {
    let fixture = shared().await?;
    let ns = unique_name(prefix);
    let client = fixture.client_in(&ns)?;
    create_namespace(&client, &ns).await?;
    Ok((client, ns))
}

fn lb_service(name: &str, policy: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ip_family_policy: Some(policy.into()),
            selector: Some(BTreeMap::from([("app".into(), name.to_owned())])),
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[tokio::test]
async fn dual_stack_load_balancer_services_get_cluster_ips_of_both_families() -> Result<()> {
    let (client, ns) = namespaced_client("dualstack").await?;
    let services: Api<Service> = Api::namespaced(client, &ns);
    for policy in ["PreferDualStack", "RequireDualStack"] {
        let name = policy.to_ascii_lowercase();
        let created = services
            .create(&PostParams::default(), &lb_service(&name, policy))
            .await
            .with_context(|| format!("creating {policy} Service"))?;
        let spec = created.spec.context("created Service has no spec")?;
        let ips = spec.cluster_ips.clone().unwrap_or_default();
        ensure!(ips.len() == 2, "{policy}: clusterIPs {ips:?}");
        let v4: std::net::IpAddr = ips[0].parse()?;
        let v6: std::net::IpAddr = ips[1].parse()?;
        ensure!(v4.is_ipv4() && v6.is_ipv6(), "{policy}: clusterIPs {ips:?}");
        ensure!(
            ips[0].starts_with("10.96."),
            "{policy}: {ips:?} not from 10.96.0.0/16"
        );
        ensure!(
            ips[1].starts_with("fd00:10:96::"),
            "{policy}: {ips:?} not from the v6 range"
        );
        ensure!(
            spec.ip_families == Some(vec!["IPv4".into(), "IPv6".into()]),
            "{policy}: ipFamilies {:?}",
            spec.ip_families
        );
        // A LoadBalancer Service gets node ports by default; a real
        // apiserver allocates them, a fake would not.
        let node_port = spec.ports.unwrap_or_default()[0].node_port;
        ensure!(node_port.is_some_and(|p| p > 0), "{policy}: no nodePort");
    }
    Ok(())
}

#[tokio::test]
async fn service_status_subresource_round_trips_load_balancer_ingress() -> Result<()> {
    let (client, ns) = namespaced_client("status").await?;
    let services: Api<Service> = Api::namespaced(client, &ns);
    services
        .create(&PostParams::default(), &lb_service("web", "SingleStack"))
        .await?;

    let status = json!({
        "status": {"loadBalancer": {"ingress": [
            {"ip": "192.0.2.10", "ipMode": "VIP"},
            {"ip": "2001:db8::10", "ipMode": "VIP"},
        ]}}
    });
    services
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .context("patching status")?;
    let read = services.get_status("web").await?;
    let ingress = read
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default();
    let ips: Vec<_> = ingress.iter().filter_map(|i| i.ip.clone()).collect();
    assert_eq!(ips, ["192.0.2.10", "2001:db8::10"]);

    // Writes to the main resource must not touch status: that is what makes
    // the subresource separate, and what the controller relies on.
    let spec_patch = json!({"metadata": {"labels": {"touched": "yes"}},
                            "status": {"loadBalancer": {"ingress": []}}});
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(&spec_patch))
        .await?;
    let read = services.get("web").await?;
    assert_eq!(
        read.labels().get("touched").map(String::as_str),
        Some("yes")
    );
    let still = read
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress);
    assert_eq!(still.map(|i| i.len()), Some(2));
    Ok(())
}

#[tokio::test]
async fn leases_are_stored_with_resource_version_preconditions() -> Result<()> {
    let (client, ns) = namespaced_client("lease").await?;
    let leases: Api<Lease> = Api::namespaced(client, &ns);
    let now = MicroTime(Timestamp::now());
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("ferrolb-controller".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("pod-a".into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..LeaseSpec::default()
        }),
    };
    let created = leases.create(&PostParams::default(), &lease).await?;
    let read = leases.get("ferrolb-controller").await?;
    assert_eq!(
        read.spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref()),
        Some("pod-a")
    );

    // Leader election rests on optimistic concurrency: a replace carrying a
    // stale resourceVersion must fail with 409.
    let mut taken = read.clone();
    taken.spec.as_mut().expect("spec").holder_identity = Some("pod-b".into());
    leases
        .replace("ferrolb-controller", &PostParams::default(), &taken)
        .await?;
    let mut stale = created;
    stale.spec.as_mut().expect("spec").holder_identity = Some("pod-c".into());
    match leases
        .replace("ferrolb-controller", &PostParams::default(), &stale)
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        other => anyhow::bail!("stale lease update: expected 409 conflict, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn events_of_both_apis_can_be_created_and_read() -> Result<()> {
    let (client, ns) = namespaced_client("events").await?;
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: Some("web".into()),
        namespace: Some(ns.clone()),
        ..ObjectReference::default()
    };

    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let event = Event {
        metadata: ObjectMeta {
            name: Some("web.ipallocated".into()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(Timestamp::now())),
        action: Some("Allocate".into()),
        reason: Some("IPAllocated".into()),
        note: Some("Assigned IP [\"192.0.2.10\"]".into()),
        type_: Some("Normal".into()),
        reporting_controller: Some("metallb.io/controller".into()),
        reporting_instance: Some("controller-0".into()),
        regarding: Some(regarding.clone()),
        ..Event::default()
    };
    events.create(&PostParams::default(), &event).await?;
    let read = events.get("web.ipallocated").await?;
    assert_eq!(read.reason.as_deref(), Some("IPAllocated"));
    assert_eq!(read.regarding.and_then(|r| r.name).as_deref(), Some("web"));

    // The events.k8s.io Event is the same object as the core one, which is
    // what `kubectl describe` shows.
    let core: Api<CoreEvent> = Api::namespaced(client, &ns);
    let via_core = core.get("web.ipallocated").await?;
    assert_eq!(
        via_core.message.as_deref(),
        Some("Assigned IP [\"192.0.2.10\"]")
    );

    let core_event = CoreEvent {
        metadata: ObjectMeta {
            name: Some("web.core".into()),
            ..ObjectMeta::default()
        },
        involved_object: regarding,
        reason: Some("AllocationFailed".into()),
        message: Some("no available IPs".into()),
        type_: Some("Warning".into()),
        ..CoreEvent::default()
    };
    core.create(&PostParams::default(), &core_event).await?;
    let listed = core.list(&Default::default()).await?;
    let reasons: Vec<_> = listed
        .items
        .iter()
        .filter_map(|e| e.reason.clone())
        .collect();
    ensure!(
        reasons.contains(&"AllocationFailed".to_owned()),
        "{reasons:?}"
    );
    Ok(())
}

const CRD_GROUP: &str = "fixture.ferrolb.test";

/// A tiny CRD with a CEL rule, unique per call because CRDs are cluster
/// scoped and tests share one apiserver.
fn widget_crd(plural: &str) -> String {
    format!(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{CRD_GROUP}
spec:
  group: {CRD_GROUP}
  scope: Namespaced
  names:
    plural: {plural}
    singular: {plural}
    kind: {plural}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.minReplicas <= self.maxReplicas"
              message: "minReplicas must not exceed maxReplicas"
            properties:
              minReplicas: {{type: integer}}
              maxReplicas: {{type: integer}}
"#
    )
}

#[tokio::test]
async fn crd_becomes_established_and_its_cel_rule_rejects_bad_objects() -> Result<()> {
    let (client, ns) = namespaced_client("crd").await?;
    // Kind names must start with a letter; unique_name() gives a valid one.
    let plural = unique_name("widgets").replace('-', "");
    let installed = install_crds(&client, &widget_crd(&plural)).await?;
    assert_eq!(installed.len(), 1);

    let good = format!(
        "apiVersion: {CRD_GROUP}/v1\nkind: {plural}\nmetadata:\n  name: good\nspec:\n  minReplicas: 1\n  maxReplicas: 3\n"
    );
    let applied = apply_yaml_in(&client, &ns, &good).await?;
    assert_eq!(applied[0].namespace().as_deref(), Some(ns.as_str()));

    let bad = good
        .replace("name: good", "name: bad")
        .replace("minReplicas: 1", "minReplicas: 5");
    let err = match apply_yaml_in(&client, &ns, &bad).await {
        Err(e) => e,
        Ok(stored) => anyhow::bail!("object violating the CEL rule was stored: {stored:?}"),
    };
    let status = err
        .api_status()
        .with_context(|| format!("not an API error: {err:?}"))?;
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status
            .message
            .contains("minReplicas must not exceed maxReplicas"),
        "{status:?}"
    );
    Ok(())
}

#[tokio::test]
async fn apply_yaml_handles_a_crd_and_its_objects_in_one_stream() -> Result<()> {
    let (client, ns) = namespaced_client("stream").await?;
    let plural = unique_name("gadgets").replace('-', "");
    let node = unique_name("node");
    let yaml = format!(
        "{}---\napiVersion: {CRD_GROUP}/v1\nkind: {plural}\nmetadata:\n  name: g1\nspec:\n  minReplicas: 1\n  maxReplicas: 1\n\
         ---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n\
         ---\napiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\n",
        widget_crd(&plural)
    );
    let applied = apply_yaml_in(&client, &ns, &yaml).await?;
    let kinds: Vec<_> = applied
        .iter()
        .map(|o| o.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        [
            "CustomResourceDefinition",
            plural.as_str(),
            "ConfigMap",
            "Node"
        ]
    );
    // Namespaced objects land in the given namespace, cluster ones in none.
    assert_eq!(applied[2].namespace().as_deref(), Some(ns.as_str()));
    assert_eq!(applied[3].namespace(), None);

    // Applying the same stream again is a no-op update, not a conflict.
    apply_yaml_in(&client, &ns, &yaml).await?;
    let gvk = kube::api::GroupVersionKind::gvk(CRD_GROUP, "v1", &plural);
    // The kind is its own plural here, so the plural must be given.
    let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, &plural);
    let gadgets: Api<DynamicObject> = Api::namespaced_with(client, &ns, &ar);
    let listed = gadgets
        .list(&Default::default())
        .await
        .context("listing gadgets")?;
    assert_eq!(listed.items.len(), 1);
    Ok(())
}

#[tokio::test]
async fn nodes_can_be_created_with_labels() -> Result<()> {
    let fixture = shared().await?;
    let client = fixture.client()?;
    let name = unique_name("worker");
    create_node(&client, &name, &[("kubernetes.io/hostname", &name)]).await?;
    let nodes: Api<Node> = Api::all(client);
    let found = wait_for("node to be listed", Duration::from_secs(10), || async {
        nodes.get_opt(&name).await.ok().flatten()
    })
    .await?;
    assert_eq!(found.labels().get("kubernetes.io/hostname"), Some(&name));
    Ok(())
}

#[tokio::test]
async fn kubectl_talks_to_the_fixture() -> Result<()> {
    let fixture = shared().await?;
    let ns = unique_name("kubectl");
    create_namespace(&fixture.client()?, &ns).await?;

    let out = fixture
        .kubectl()
        .args(["get", "namespace", &ns, "-o", "yaml"])
        .output()
        .context("running kubectl get")?;
    ensure!(
        out.status.success(),
        "kubectl get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout)?;
    ensure!(yaml.contains(&format!("name: {ns}")), "{yaml}");

    // Server-side dry run: validated and defaulted by the apiserver, not stored.
    let mut child = fixture
        .kubectl()
        .args(["apply", "--dry-run=server", "-n", &ns, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl apply")?;
    child
        .stdin
        .take()
        .context("kubectl stdin")?
        .write_all(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n")?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("(server dry run)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(fixture.client()?, &ns);
    ensure!(
        cms.get_opt("dry").await?.is_none(),
        "dry run stored the object"
    );
    Ok(())
}

/// Processes of process group `pgid` that are not zombies, from /proc: the
/// fixture is a supervisor plus a server child, and both must be gone.
fn live_group_members(pgid: u32) -> Vec<u32> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            live.push(pid);
        }
    }
    live
}

/// Own fixture (not the shared one): a test that panics must still leave no
/// apiserver process and no data dir behind.
#[test]
fn a_panicking_test_tears_its_fixture_down() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let fixture = KubeFixture::start().await.expect("fixture starts");
            let pid = fixture.pid().expect("running");
            *seen.lock().unwrap() = Some((pid, fixture.data_dir().to_owned()));
            let members = live_group_members(pid);
            assert!(
                members.len() >= 2,
                "supervisor and server expected: {members:?}"
            );
            assert!(fixture.kubeconfig_path().is_file());
            panic!("deliberate panic with a live fixture");
        })
    }));
    assert!(result.is_err(), "the closure panics");
    let (pid, dir) = seen.lock().unwrap().take().expect("fixture had started");
    // SIGKILL is delivered asynchronously to the server child.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !live_group_members(pid).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "kube-fixture processes {:?} survived the panic",
            live_group_members(pid)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "{} survived the panic", dir.display());
}

/// When the test process dies without unwinding (SIGKILL, abort), Drop never
/// runs; the fixture must notice its stdin closing and clean up itself.
#[test]
fn the_fixture_exits_and_cleans_up_when_its_parent_goes_away() {
    let bins = ferrolb_test_harness::fixture_binaries().expect("fixture builds");
    let dir = std::env::temp_dir().join(unique_name("orphan"));
    let mut child = std::process::Command::new(&bins.kube_fixture)
        .arg(format!("--data-dir={}", dir.display()))
        .arg("--exit-on-stdin-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kube-fixture");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !dir.join("kubeconfig").is_file() {
        assert!(
            std::time::Instant::now() < deadline,
            "no kubeconfig written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(child.stdin.take());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("kube-fixture still running 20s after stdin closed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "{} not removed", dir.display());
}
