//! The leader elector under RBAC that forbids watching Leases (issue 8):
//! election still works by polling, and the refused watch is logged with
//! its context instead of being dropped.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolb_runtime::leader::{LeaderConfig, LeaderElector};
use ferrolb_test_harness::{create_namespace, shared, unique_name};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const USER: &str = "ferrolb-test:lease-no-watch";

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// Lets `USER` get, create and update Leases in `ns`, but not watch them.
async fn grant_without_watch(admin: &Client, ns: &str) {
    let role = Role {
        metadata: ObjectMeta { name: Some("leases".into()), ..Default::default() },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["coordination.k8s.io".into()]),
            resources: Some(vec!["leases".into()]),
            verbs: vec!["get".into(), "create".into(), "update".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), ns).create(&PostParams::default(), &role).await.unwrap();
    let binding = RoleBinding {
        metadata: ObjectMeta { name: Some("leases".into()), ..Default::default() },
        role_ref: RoleRef { api_group: "rbac.authorization.k8s.io".into(), kind: "Role".into(), name: "leases".into() },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: USER.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), ns).create(&PostParams::default(), &binding).await.unwrap();
}

// current_thread: the elector runs on this thread, so the thread-local
// subscriber below sees its log lines.
#[tokio::test(flavor = "current_thread")]
async fn a_forbidden_watch_is_logged_and_polling_still_elects() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fixture = shared().await.expect("fixture");
    let admin = fixture.client().unwrap();
    let ns = unique_name("lease-nowatch");
    create_namespace(&admin, &ns).await.unwrap();
    grant_without_watch(&admin, &ns).await;
    let mut config = fixture.config().clone();
    config.auth_info.impersonate = Some(USER.into());
    config.auth_info.impersonate_groups = Some(vec!["system:authenticated".into()]);
    let client = Client::try_from(config).unwrap();

    let leases: Api<Lease> = Api::namespaced(client, &ns);
    let cfg = LeaderConfig {
        lease_name: "ferrolb-test".into(),
        identity: "only".into(),
        lease_duration: Duration::from_secs(6),
        renew_deadline: Duration::from_secs(4),
        retry_period: Duration::from_millis(500),
    };
    let (tx, mut rx) = watch::channel(false);
    let stop = CancellationToken::new();
    let elector = tokio::spawn(LeaderElector::new(leases, cfg).run(tx, stop.clone()));

    let led = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|l| *l)).await.is_ok();
    assert!(led, "polling alone must elect; logs:\n{}", logs.text());
    let logged = tokio::time::timeout(Duration::from_secs(20), async {
        while !logs.text().contains("watching the leader Lease failed") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();
    let text = logs.text();
    assert!(logged, "the refused watch was not logged:\n{text}");
    let line = text.lines().find(|l| l.contains("watching the leader Lease failed")).unwrap_or_default();
    assert!(line.contains("ferrolb-test") && line.contains("forbidden"), "context missing: {line}");
    assert!(*rx.borrow(), "still leading while the watch fails");

    stop.cancel();
    elector.await.unwrap();
}
