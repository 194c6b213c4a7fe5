//! The API server going away and coming back: the controller keeps running,
//! its watches reconnect and relist, Services deleted during the outage are
//! released and the ones created meanwhile are served.
//!
//! The controller reaches the fixture through a TCP proxy in the test
//! (common/proxy.rs); taking the proxy down is what the controller sees of
//! an API server restart.

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::*;

#[tokio::test]
async fn survives_an_api_server_outage() {
    let env = env("outage", true).await;
    env.apply(&pool_yaml("two", &["192.0.2.100/31"], "")).await;
    let proxy = Proxy::to_server(env.fixture.server_url()).await;
    let path = env.kubeconfig_via(&proxy.url());

    let ctl = env.start(&[&format!("--kubeconfig={}", path.display())]).await;
    env.create_service("a", "").await;
    assert_eq!(env.wait_ips("a").await, ["192.0.2.100"]);

    proxy.down().await;
    // While the controller cannot reach the API server: a goes, b and c come.
    env.services().delete("a", &Default::default()).await.unwrap();
    env.create_service("b", "").await;
    env.create_service("c", "").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!ctl.task.is_finished(), "the controller must not exit on API errors");
    proxy.up().await;

    // a's address was released on relist, so both fit.
    let mut got = [env.wait_ips("b").await, env.wait_ips("c").await].concat();
    got.sort();
    assert_eq!(got, ["192.0.2.100", "192.0.2.101"]);
    assert!(!ctl.task.is_finished());
    ctl.shutdown().await;
}
