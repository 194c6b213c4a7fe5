//! Makes the API server fixture, which listens on the host's loopback,
//! reachable at the same address from inside a node namespace, so the
//! fixture's kubeconfig (`https://127.0.0.1:<port>`) works unchanged there.
//!
//! The listening socket is created by a thread that joined the namespace (a
//! socket keeps the namespace it was created in); connections are accepted
//! and the upstream ones opened by threads in the host namespace. Bytes are
//! copied as they are, so TLS passes through end to end.
//!
//! Plain threads rather than tokio: a relay must outlive the tokio runtime of
//! any single test or helper, and a handful of connections per node is no
//! load.

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result, io as io_err};
use crate::netns::NetNs;

/// A TCP relay from `127.0.0.1:<port>` inside a namespace to
/// `127.0.0.1:<port>` of the host. Dropping it closes the listener and every
/// relayed connection.
#[derive(Debug)]
pub struct Relay {
    namespace: String,
    listen: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    listener: TcpListener,
    upstream: SocketAddr,
    stopping: AtomicBool,
    accepted: AtomicU64,
    /// Both sides of every live connection, so drop can cut them.
    open: Mutex<Vec<TcpStream>>,
}

impl Relay {
    /// Relays `127.0.0.1:port` in `ns` to the same address on the host.
    pub fn start(ns: &NetNs, port: u16) -> Result<Relay> {
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        Relay::start_to(ns, addr, addr)
    }

    /// Relays `listen` in `ns` to `upstream` in the host namespace.
    pub fn start_to(ns: &NetNs, listen: SocketAddr, upstream: SocketAddr) -> Result<Relay> {
        let listener = ns
            .enter(|| TcpListener::bind(listen))?
            .map_err(io_err(format!(
                "listening on {listen} in netns {}",
                ns.name()
            )))?;
        let listen = listener
            .local_addr()
            .map_err(io_err("reading the relay's address"))?;
        let shared = Arc::new(Shared {
            listener,
            upstream,
            stopping: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            open: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("relay-{}", ns.name()))
                .spawn(move || accept_loop(&shared))
                .map_err(io_err("spawning the relay thread"))?
        };
        Ok(Relay {
            namespace: ns.name().to_owned(),
            listen,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address listened on inside the namespace.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // shutdown(2) on a listening socket wakes a thread blocked in
        // accept(2) on Linux (it returns EINVAL); std has no other way to
        // interrupt a blocking accept.
        // SAFETY: the fd is owned by the listener, alive in `shared`.
        unsafe {
            libc::shutdown(self.shared.listener.as_raw_fd(), libc::SHUT_RDWR);
        }
        if let Some(handle) = self.acceptor.take() {
            let _ = handle.join();
        }
        let open = std::mem::take(&mut *lock(&self.shared.open));
        for stream in open {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn lock(m: &Mutex<Vec<TcpStream>>) -> std::sync::MutexGuard<'_, Vec<TcpStream>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(shared: &Arc<Shared>) {
    loop {
        let accepted = shared.listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let shared = Arc::clone(shared);
                // A failed connection (upstream down, client killed) ends
                // only that connection; the listener keeps serving, so a
                // restarted speaker connects again.
                let _ = std::thread::Builder::new()
                    .name("relay-conn".into())
                    .spawn(move || {
                        let _ = relay_connection(&shared, client);
                    });
            }
            // Transient accept errors (a client that reset before accept,
            // out of fds) must not end the relay.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

fn relay_connection(shared: &Shared, client: TcpStream) -> io::Result<()> {
    let upstream = match TcpStream::connect(shared.upstream) {
        Ok(s) => s,
        Err(e) => {
            let _ = client.shutdown(Shutdown::Both);
            return Err(e);
        }
    };
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    {
        let mut open = lock(&shared.open);
        open.retain(|s| s.peer_addr().is_ok());
        open.push(client.try_clone()?);
        open.push(upstream.try_clone()?);
    }
    if shared.stopping.load(Ordering::SeqCst) {
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        return Ok(());
    }
    let (mut c_read, mut u_write) = (client.try_clone()?, upstream.try_clone()?);
    let back = std::thread::Builder::new()
        .name("relay-up".into())
        .spawn(move || {
            let _ = io::copy(&mut c_read, &mut u_write);
            // Half-close: the client finished sending.
            let _ = u_write.shutdown(Shutdown::Write);
        })?;
    let (mut u_read, mut c_write) = (upstream, client);
    let _ = io::copy(&mut u_read, &mut c_write);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = back.join();
    // Both directions are done: close fully so neither side hangs.
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = u_read.shutdown(Shutdown::Both);
    Ok(())
}

/// Port of a fixture URL such as `https://127.0.0.1:39301`.
pub fn server_port(server_url: &str) -> Result<u16> {
    server_url
        .rsplit_once(':')
        .and_then(|(_, port)| port.trim_end_matches('/').parse().ok())
        .ok_or_else(|| Error::Command(format!("no port in server URL {server_url:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_from_server_url() {
        assert_eq!(server_port("https://127.0.0.1:39301").ok(), Some(39301));
        assert_eq!(server_port("https://127.0.0.1:6443/").ok(), Some(6443));
        assert!(server_port("https://127.0.0.1").is_err());
    }
}
