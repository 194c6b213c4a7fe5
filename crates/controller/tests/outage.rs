//! The API server going away and coming back: the controller keeps running,
//! its watches reconnect and relist, Services deleted during the outage are
//! released and the ones created meanwhile are served.
//!
//! The controller reaches the fixture through a TCP proxy in the test; taking
//! the proxy down cuts every connection and refuses new ones, which is what
//! the controller sees of an API server restart.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

struct Proxy {
    listen: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let p = Proxy { listen, upstream, tasks: Arc::new(Mutex::new(JoinSet::new())) };
        p.serve(listener).await;
        p
    }

    async fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let conns = self.tasks.clone();
        self.tasks.lock().await.spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                conns.lock().await.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }

    /// Closes the listener and every open connection.
    async fn down(&self) {
        self.tasks.lock().await.abort_all();
        // Let the aborted tasks drop their sockets.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    async fn up(&self) {
        let listener = TcpListener::bind(self.listen).await.expect("rebinding the proxy port");
        self.serve(listener).await;
    }
}

#[tokio::test]
async fn survives_an_api_server_outage() {
    let env = env("outage", true).await;
    env.apply(&pool_yaml("two", &["192.0.2.100/31"], "")).await;
    let upstream: SocketAddr = env.fixture.server_url().trim_start_matches("https://").parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let kubeconfig = std::fs::read_to_string(env.fixture.kubeconfig_path())
        .unwrap()
        .replace(env.fixture.server_url(), &format!("https://{}", proxy.listen));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig).unwrap();

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
