//! Errors that stop the controller. Only start-up problems end `run`: API
//! errors at runtime are logged, counted and retried.

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Logging, client or endpoint set-up (shared with the speaker).
    #[error(transparent)]
    Runtime(#[from] ferrolb_runtime::Error),
    #[error("invalid option: {0}")]
    Options(String),
    #[error("memberlist Secret {namespace}/{name}: {message}")]
    MemberlistSecret { namespace: String, name: String, message: String },
}

impl ControllerError {
    /// Bounded label value for an error counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ControllerError::Runtime(e) => e.metric_label(),
            ControllerError::Options(_) => "options",
            ControllerError::MemberlistSecret { .. } => "memberlist_secret",
        }
    }
}
