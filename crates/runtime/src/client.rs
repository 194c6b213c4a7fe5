//! The Kubernetes client: configuration from `--kubeconfig` or kube's
//! inference, and a tower layer that reports every request by method and
//! resource (the controller counts them as
//! `ferrolb_controller_api_requests_total`, which is how the benchmark
//! reports API requests per Service).

use std::path::Path;

use http::Request;
use kube::client::{Body, ClientBuilder};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tower::util::MapRequestLayer;

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
    Ok(ClientBuilder::try_from(config)
        .map_err(Error::Client)?
        .with_layer(&layer)
        .build())
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
