//! A TCP proxy between a controller and the API server that a test can take
//! down: every open connection is cut and new ones are refused, which is
//! what a client sees of an API server restart or a network partition.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

pub struct Proxy {
    pub listen: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    /// A proxy to the fixture's API server (`https://host:port`), up.
    pub async fn to_server(server_url: &str) -> Proxy {
        let upstream: SocketAddr = server_url.trim_start_matches("https://").parse().expect("server address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let listen = listener.local_addr().expect("proxy address");
        let p = Proxy { listen, upstream, tasks: Arc::new(Mutex::new(JoinSet::new())) };
        p.serve(listener).await;
        p
    }

    /// The URL to put in a kubeconfig.
    pub fn url(&self) -> String {
        format!("https://{}", self.listen)
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
    pub async fn down(&self) {
        self.tasks.lock().await.abort_all();
        // Let the aborted tasks drop their sockets.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    pub async fn up(&self) {
        let listener = TcpListener::bind(self.listen).await.expect("rebinding the proxy port");
        self.serve(listener).await;
    }
}
