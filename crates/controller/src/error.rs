//! Errors that stop the controller. Only start-up problems end `run`: API
//! errors at runtime are logged, counted and retried.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("failed to initialize logging: {0}")]
    Logging(String),
    #[error("invalid option: {0}")]
    Options(String),
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("inferring Kubernetes client configuration: {0}")]
    InferConfig(#[from] kube::config::InferConfigError),
    #[error("building Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("binding {what} endpoint on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
