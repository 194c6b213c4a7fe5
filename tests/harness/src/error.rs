use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Sources are boxed to keep `Result<T>` small.
///
/// Every variant names what the harness was doing when it failed, so that a
/// failing integration test says more than "connection refused".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}")]
    Kube {
        context: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{context}")]
    Kubeconfig {
        context: String,
        #[source]
        source: Box<kube::config::KubeconfigError>,
    },
    #[error("{context}")]
    Yaml {
        context: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("{context}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("building the kube-fixture binary failed: {0}")]
    Build(String),
    #[error("kube-fixture failed to start: {0}")]
    Start(String),
    #[error("invalid manifest: {0}")]
    Manifest(String),
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { what: String, timeout: Duration },
    /// An external command (`ip`, `arping`, `python3`, ...) failed; the text
    /// has the command line, its exit status and its stderr.
    #[error("{0}")]
    Command(String),
}

impl Error {
    /// The API server's answer, when the failure was one (for example a 422
    /// from a validation rule or a 409 conflict).
    pub fn api_status(&self) -> Option<&kube::core::Status> {
        match self {
            Error::Kube { source, .. } => match source.as_ref() {
                kube::Error::Api(status) => Some(status),
                _ => None,
            },
            _ => None,
        }
    }
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

pub(crate) fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let context = context.into();
    move |source| Error::Kube {
        context,
        source: Box::new(source),
    }
}
