//! The memberlist Secret (controller.md §1 step 6) on the real API server:
//! created at start-up when missing, owned by the Deployment, never
//! overwritten; a missing owner stops start-up.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use common::env;
use ferrolb_controller::memberlist::SECRET_KEY;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

const ML_FLAGS: [&str; 2] = ["--ml-secret-name=memberlist", "--deployment=controller"];

fn deployment_yaml() -> &'static str {
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: controller\nspec:\n  selector:\n    matchLabels: {app: ferrolb}\n  template:\n    metadata:\n      labels: {app: ferrolb}\n    spec:\n      containers:\n      - name: controller\n        image: ferrolb\n"
}

fn key_of(s: &Secret) -> Vec<u8> {
    s.data.as_ref().and_then(|d| d.get(SECRET_KEY)).map(|b| b.0.clone()).expect("secretkey present")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_once_owned_by_the_deployment() {
    let env = env("ml-create", false).await;
    env.apply(deployment_yaml()).await;
    let deployment: Deployment = Api::namespaced(env.client.clone(), &env.system).get("controller").await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.system);
    assert!(secrets.get_opt("memberlist").await.unwrap().is_none());

    // Created before start() returns: the speakers' mount needs it.
    env.start(&ML_FLAGS).await.shutdown().await;
    let secret = secrets.get("memberlist").await.expect("Secret created");
    let key = key_of(&secret);
    assert_eq!(key.len(), 22, "{:?}", String::from_utf8_lossy(&key));
    assert_eq!(STANDARD_NO_PAD.decode(&key).expect("base64 without padding").len(), 16);
    assert_eq!(secret.data.as_ref().unwrap().len(), 1, "one key only");
    let owners = secret.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].api_version.as_str(), owners[0].kind.as_str(), owners[0].name.as_str()),
        ("apps/v1", "Deployment", "controller")
    );
    assert_eq!(Some(&owners[0].uid), deployment.metadata.uid.as_ref());

    // A restart keeps the key the speakers already use.
    env.start(&ML_FLAGS).await.shutdown().await;
    assert_eq!(key_of(&secrets.get("memberlist").await.unwrap()), key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_secret_is_never_overwritten() {
    let env = env("ml-keep", false).await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.system);
    let mine = Secret {
        metadata: kube::api::ObjectMeta { name: Some("memberlist".into()), ..Default::default() },
        data: Some([(SECRET_KEY.to_string(), ByteString(b"chosen-by-the-operator".to_vec()))].into()),
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &mine).await.unwrap();
    // No Deployment exists: an existing Secret is not even compared with one.
    env.start(&ML_FLAGS).await.shutdown().await;
    let after = secrets.get("memberlist").await.unwrap();
    assert_eq!(key_of(&after), b"chosen-by-the-operator");
    assert!(after.metadata.owner_references.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_owner_stops_start_up() {
    let env = env("ml-noowner", false).await;
    let err = ferrolb_controller::start(env.options(&ML_FLAGS), async {})
        .await
        .err()
        .expect("start-up fails without the Deployment");
    assert!(err.to_string().contains("reading Deployment controller"), "{err}");
    assert_eq!(err.metric_label(), "memberlist_secret");
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.system);
    assert!(secrets.get_opt("memberlist").await.unwrap().is_none(), "nothing half-made");

    let err = ferrolb_controller::start(env.options(&["--ml-secret-name=memberlist"]), async {})
        .await
        .err()
        .expect("start-up fails without --deployment");
    assert!(err.to_string().contains("--deployment"), "{err}");
}
