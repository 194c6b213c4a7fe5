//! A TCP proxy between a controller and the API server that a test can take
//! down: every open connection is cut and new ones are refused, which is
//! what a client sees of an API server restart or a network partition.
//!
//! It can also *hold* traffic: while held, what clients send is kept in the
//! proxy (connections stay open, answers already on their way still reach
//! the client) and [`Proxy::release`] delivers it later, in order, even on
//! connections the client has closed meanwhile: a network that delays
//! requests rather than losing them. The TLS handshake of a new connection
//! passes (the client's records up to its first application-data record,
//! which in TLS 1.3, what rustls and the fixture negotiate, is its
//! Finished), so a request on a connection opened during the hold is held
//! as a request, not stalled before it is sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;

/// What the proxy held and delivered.
#[derive(Default, Debug)]
pub struct HoldStats {
    /// Bytes clients sent while traffic was held.
    pub held_bytes: AtomicUsize,
    /// Connections on which something was held.
    pub held_connections: AtomicUsize,
    /// Of those, connections whose held bytes were delivered and answered
    /// by the server.
    pub answered_connections: AtomicUsize,
}

pub struct Proxy {
    pub listen: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<JoinSet<()>>>,
    holding: watch::Sender<bool>,
    pub stats: Arc<HoldStats>,
}

impl Proxy {
    /// A proxy to the fixture's API server (`https://host:port`), up.
    pub async fn to_server(server_url: &str) -> Proxy {
        let upstream: SocketAddr = server_url.trim_start_matches("https://").parse().expect("server address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let listen = listener.local_addr().expect("proxy address");
        let p = Proxy {
            listen,
            upstream,
            tasks: Arc::new(Mutex::new(JoinSet::new())),
            holding: watch::channel(false).0,
            stats: Arc::default(),
        };
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
        let holding = self.holding.clone();
        let stats = self.stats.clone();
        self.tasks.lock().await.spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { continue };
                let (holding, stats) = (holding.subscribe(), stats.clone());
                conns.lock().await.spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(upstream).await {
                        pump(inbound, outbound, holding, stats).await;
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

    /// From now on, keeps what clients send instead of forwarding it.
    pub fn hold(&self) {
        self.holding.send_replace(true);
    }

    /// Delivers everything held, in order, and forwards again.
    pub fn release(&self) {
        self.holding.send_replace(false);
    }
}

/// How many bytes of `scan` are complete TLS records of the client's
/// handshake, and whether they end it (the first application-data record,
/// type 23, is included).
fn handshake_records(scan: &[u8]) -> (usize, bool) {
    let mut at = 0;
    while scan.len() >= at + 5 {
        let len = usize::from(u16::from_be_bytes([scan[at + 3], scan[at + 4]]));
        if scan.len() < at + 5 + len {
            break;
        }
        let kind = scan[at];
        at += 5 + len;
        if kind == 23 {
            return (at, true);
        }
    }
    (at, false)
}

/// Server to client always flows; client to server is kept while held.
async fn pump(inbound: TcpStream, outbound: TcpStream, mut holding: watch::Receiver<bool>, stats: Arc<HoldStats>) {
    let (mut in_r, mut in_w) = inbound.into_split();
    let (mut out_r, mut out_w) = outbound.into_split();
    // Set once held bytes of this connection were delivered.
    let (delivered_tx, delivered) = watch::channel(false);
    let down = {
        let stats = stats.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut client_gone = false;
            let mut answered = false;
            loop {
                let n = match out_r.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if !answered && *delivered.borrow() {
                    answered = true;
                    stats.answered_connections.fetch_add(1, Ordering::SeqCst);
                }
                // A client that went away: keep draining the server's answers.
                if !client_gone && in_w.write_all(&buf[..n]).await.is_err() {
                    client_gone = true;
                }
            }
        }
    };
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut held: Vec<u8> = Vec::new();
        let mut counted = false;
        let mut client_open = true;
        // The client's bytes of its TLS handshake not yet forwarded.
        let mut handshake: Option<Vec<u8>> = Some(Vec::new());
        loop {
            tokio::select! {
                r = in_r.read(&mut buf), if client_open => {
                    let n = match r {
                        Ok(0) | Err(_) => { client_open = false; 0 }
                        Ok(n) => n,
                    };
                    if n == 0 {
                        if held.is_empty() {
                            return;
                        }
                        continue;
                    }
                    let mut data = &buf[..n];
                    let scanned;
                    if let Some(scan) = handshake.as_mut() {
                        scan.extend_from_slice(data);
                        let (through, done) = handshake_records(scan);
                        if out_w.write_all(&scan[..through]).await.is_err() {
                            return;
                        }
                        if !done {
                            scan.drain(..through);
                            continue;
                        }
                        scanned = scan.split_off(through);
                        handshake = None;
                        data = &scanned;
                        if data.is_empty() {
                            continue;
                        }
                    }
                    if *holding.borrow() {
                        if !counted {
                            counted = true;
                            stats.held_connections.fetch_add(1, Ordering::SeqCst);
                        }
                        stats.held_bytes.fetch_add(data.len(), Ordering::SeqCst);
                        held.extend_from_slice(data);
                    } else if out_w.write_all(data).await.is_err() {
                        return;
                    }
                }
                changed = holding.changed(), if !held.is_empty() => {
                    if changed.is_err() {
                        return;
                    }
                    if !*holding.borrow() {
                        if out_w.write_all(&held).await.is_err() {
                            return;
                        }
                        held.clear();
                        delivered_tx.send_replace(true);
                        if !client_open {
                            // Keep the server side open so it answers the
                            // delivered requests, as a delayed network would.
                            std::future::pending::<()>().await;
                        }
                    }
                }
            }
        }
    };
    tokio::join!(down, up);
}
