//! The one error type of the runtime crate. Only process start-up fails this
//! way (logging, client construction, binding endpoints); API errors while
//! running are the callers' to log and retry.

use std::net::SocketAddr;

/// A start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An unknown `--log-level`, or a subscriber that could not be built.
    #[error("failed to initialize logging: {0}")]
    Logging(String),
    /// The `--kubeconfig` file could not be read or used.
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither in-cluster nor `$KUBECONFIG` configuration was usable.
    #[error("inferring Kubernetes client configuration: {0}")]
    InferConfig(#[from] kube::config::InferConfigError),
    /// The client could not be built from its configuration (TLS, proxy).
    #[error("building Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// An HTTP endpoint could not listen (port in use, address absent).
    #[error("binding {what} endpoint on {addr}: {source}")]
    Bind {
        /// `metrics` or `health`.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Bounded label value for an error counter (as kube-rs' controller-rs
    /// example does): one per variant, never the message.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Logging(_) => "logging",
            Error::Kubeconfig { .. } => "kubeconfig",
            Error::InferConfig(_) => "infer_config",
            Error::Client(_) => "client",
            Error::Bind { .. } => "bind",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_per_variant() {
        let bind = Error::Bind {
            what: "health",
            addr: "127.0.0.1:1".parse().unwrap(),
            source: std::io::Error::other("in use"),
        };
        assert_eq!(bind.metric_label(), "bind");
        assert_eq!(Error::Logging("x".into()).metric_label(), "logging");
        assert_eq!(bind.to_string(), "binding health endpoint on 127.0.0.1:1: in use");
    }
}
