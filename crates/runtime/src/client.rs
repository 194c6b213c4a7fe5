//! The Kubernetes client: configuration from `--kubeconfig` or kube's
//! inference, and a tower layer that reports every request by method and
//! resource (the controller counts them as
//! `ferrolb_controller_api_requests_total`, which is how the benchmark
//! reports API requests per Service).

use std::path::Path;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use http_body_util::BodyExt;
use kube::client::{Body, ClientBuilder, ConfigExt, DynBody};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tower::retry::RetryLayer;
use tower::util::{BoxService, MapRequestLayer};
use tower::{BoxError, ServiceBuilder, ServiceExt};

use crate::error::Error;

/// Loads the client configuration: `kubeconfig` if given, else in-cluster
/// then `$KUBECONFIG`/`~/.kube/config` (kube's inference order).
pub async fn load_config(kubeconfig: Option<&Path>) -> Result<Config, Error> {
    match kubeconfig {
        Some(path) => {
            let wrap = |source| Error::Kubeconfig { path: path.display().to_string(), source };
            let kc = Kubeconfig::read_from(path).map_err(wrap)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(wrap)
        }
        None => Ok(Config::infer().await?),
    }
}

/// The component name of `ferrolb webhook`'s requests (the controller and
/// the speaker use `ferrolb_api::labels::COMPONENT_*`).
pub const WEBHOOK_COMPONENT: &str = "webhook";

/// The `User-Agent` of a component's requests, in client-go's shape
/// (`<program>/<version> (<os>/<arch>) <component>`): kube-rs sends none, and
/// an audit log or `kubectl get --raw /metrics` should tell ferrolb's
/// controller, speaker and webhook apart.
pub fn user_agent(component: &str) -> String {
    format!("ferrolb/{} ({}/{}) {component}", env!("CARGO_PKG_VERSION"), std::env::consts::OS, std::env::consts::ARCH)
}

/// Builds a client for `component` (its [`user_agent`]) that calls
/// `observe(method, resource)` (see [`classify`]) before sending each request.
pub fn build<F>(config: Config, component: &str, observe: F) -> Result<Client, Error>
where
    F: Fn(&'static str, &str) + Clone + Send + Sync + 'static,
{
    // A component name is ASCII without control characters; should one not
    // be, the requests go out without the header rather than not at all.
    let agent = http::HeaderValue::from_str(&user_agent(component)).ok();
    let layer = MapRequestLayer::new(move |mut req: Request<Body>| {
        let (method, resource) = classify(&req);
        observe(method, &resource);
        if let Some(agent) = &agent {
            req.headers_mut().entry(http::header::USER_AGENT).or_insert_with(|| agent.clone());
        }
        req
    });
    Ok(builder(config).map_err(Error::Client)?.with_layer(&layer).build())
}

/// A client with kube's request stack and `TCP_NODELAY` (see
/// [`connection_stack`]), without [`build`]'s User-Agent and request
/// reporting: for tools and test drivers, whose own requests should not
/// wait on Nagle's algorithm either when they measure ferrolb.
pub fn connect(config: Config) -> Result<Client, kube::Error> {
    Ok(builder(config)?.build())
}

fn builder(config: Config) -> Result<ClientBuilder<GenericService>, kube::Error> {
    if config.proxy_url.is_some() {
        // kube's own stack is the one that speaks to SOCKS and HTTP proxies;
        // behind one, the first hop is the proxy and Nagle matters less.
        return ClientBuilder::try_from(config);
    }
    let namespace = config.default_namespace.clone();
    Ok(ClientBuilder::new(connection_stack(&config)?, namespace))
}

/// kube's request stack, boxed as kube boxes its own.
type GenericService = BoxService<Request<Body>, Response<Box<DynBody>>, BoxError>;

/// kube's default request stack (kube-client 5's `make_generic_builder`:
/// TLS, timeouts, base URI, retry, authentication, extra headers) with
/// `TCP_NODELAY` on its connections, which kube leaves off. With Nagle's
/// algorithm on, a request written in two pieces (headers, then the body of
/// a status PATCH) waits for the API server's delayed ACK, up to 40 ms on
/// Linux, and that showed as 51 ms outliers from Service creation to status
/// in the BGP benchmark. client-go's connections, Go's default, have
/// `TCP_NODELAY` on. (Rebuilt here because kube offers no way to reach the
/// connector it builds; its request tracing layer is left out.)
fn connection_stack(config: &Config) -> Result<GenericService, kube::Error> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let tls = config.rustls_https_connector_with_connector(tcp)?;
    let mut connector = TimeoutConnector::new(tls);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Builder::new(TokioExecutor::new()).build(connector);
    let retry = config.default_retry.then(|| RetryLayer::new(RetryPolicy::server_retry()));
    let stack = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .map_response(|response: Response<Incoming>| response.map(|body| Box::new(body.map_err(BoxError::from)) as Box<DynBody>))
        .service(http);
    Ok(stack.boxed())
}

/// `(method, resource)` of an API request: LIST and WATCH are told apart from
/// GET; resource is `plural` or `plural/subresource`. Label values stay
/// bounded: names and namespaces never appear.
pub fn classify<B>(req: &Request<B>) -> (&'static str, String) {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segs.first() {
        Some(&"api") => segs.get(2..).unwrap_or(&[]),
        Some(&"apis") => segs.get(3..).unwrap_or(&[]),
        _ => &[],
    };
    let rest = if rest.len() >= 3 && rest[0] == "namespaces" { &rest[2..] } else { rest };
    let resource = match rest {
        [] => "other".to_string(),
        [r] | [r, _] => r.to_string(),
        [r, _, sub, ..] => format!("{r}/{sub}"),
    };
    let has_name = rest.len() >= 2;
    let watching = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let method = match *req.method() {
        http::Method::GET if watching => "WATCH",
        http::Method::GET if !has_name => "LIST",
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        _ => "OTHER",
    };
    (method, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_program_version_platform_and_component() {
        let ua = user_agent("speaker");
        assert!(ua.starts_with(&format!("ferrolb/{} (", env!("CARGO_PKG_VERSION"))), "{ua}");
        assert!(ua.ends_with(") speaker"), "{ua}");
        assert!(http::HeaderValue::from_str(&ua).is_ok(), "a valid header value: {ua}");
    }

    /// Whether this process's TCP connection to `server` has `TCP_NODELAY`
    /// (found among the process's own descriptors: kube hides its sockets).
    fn nodelay_towards(server: std::net::SocketAddr) -> Option<bool> {
        let std::net::SocketAddr::V4(server) = server else { return None };
        for entry in std::fs::read_dir("/proc/self/fd").ok()? {
            let Ok(fd) = entry.ok()?.file_name().to_string_lossy().parse::<libc::c_int>() else { continue };
            // SAFETY: plain getsockopt/getpeername calls on a descriptor
            // this process holds, with buffers of the sizes passed.
            unsafe {
                let mut peer: libc::sockaddr_in = std::mem::zeroed();
                let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                if libc::getpeername(fd, (&raw mut peer).cast(), &mut len) != 0
                    || peer.sin_family != libc::AF_INET as libc::sa_family_t
                    || u16::from_be(peer.sin_port) != server.port()
                    || u32::from_be(peer.sin_addr.s_addr) != u32::from(*server.ip())
                {
                    continue;
                }
                let mut on: libc::c_int = 0;
                let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                if libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, (&raw mut on).cast(), &mut len) == 0 {
                    return Some(on != 0);
                }
            }
        }
        None
    }

    #[tokio::test]
    async fn connections_to_the_api_server_have_nodelay() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let (done, wait) = tokio::sync::oneshot::channel::<()>();
        // Answers one request and keeps the connection open until the
        // check below has looked at the client's end.
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before sending a request");
                request.extend_from_slice(&buf[..n]);
            }
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
            let _ = wait.await;
        });
        let config = Config::new(format!("http://{server}").parse().unwrap());
        let client = build(config, "test", |_, _| {}).unwrap();
        let text = client.request_text(Request::get("/version").body(Vec::new()).unwrap()).await.unwrap();
        assert_eq!(text, "ok");
        assert_eq!(nodelay_towards(server), Some(true), "the pooled connection to {server}");
        let _ = done.send(());
    }

    fn c(method: &str, uri: &str) -> (&'static str, String) {
        let req = Request::builder().method(method).uri(uri).body(()).unwrap();
        classify(&req)
    }

    #[test]
    fn classifies_requests() {
        assert_eq!(c("GET", "/api/v1/services?watch=true&resourceVersion=1"), ("WATCH", "services".into()));
        assert_eq!(c("GET", "/api/v1/services?limit=500"), ("LIST", "services".into()));
        assert_eq!(
            c("PATCH", "/api/v1/namespaces/default/services/web/status"),
            ("PATCH", "services/status".into())
        );
        assert_eq!(c("GET", "/api/v1/namespaces/default"), ("GET", "namespaces".into()));
        assert_eq!(c("GET", "/api/v1/namespaces"), ("LIST", "namespaces".into()));
        assert_eq!(
            c("PUT", "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/p/status"),
            ("PUT", "ipaddresspools/status".into())
        );
        assert_eq!(
            c("PUT", "/apis/coordination.k8s.io/v1/namespaces/metallb-system/leases/l"),
            ("PUT", "leases".into())
        );
        assert_eq!(c("POST", "/api/v1/namespaces/default/events"), ("POST", "events".into()));
        assert_eq!(
            c("DELETE", "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses/l2-x"),
            ("DELETE", "servicel2statuses".into())
        );
        assert_eq!(c("GET", "/version"), ("LIST", "other".into()));
    }
}
