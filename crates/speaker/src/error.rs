//! Why the speaker could not start. Everything after start-up is retried
//! and logged, never fatal.

use crate::options::OptionsError;

#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error("METALLB_BGP_TYPE: {0}")]
    BgpType(String),
    #[error(transparent)]
    Runtime(#[from] ferrolb_runtime::Error),
    #[error("layer 2 responder: {0}")]
    Layer2(#[from] ferrolb_l2::L2Error),
    #[error("failure detector: {0}")]
    Membership(#[from] ferrolb_membership::MembershipError),
    #[error("{0}")]
    Startup(String),
}

impl SpeakerError {
    /// A bounded label for the error kind (metrics, log fields).
    pub fn metric_label(&self) -> &'static str {
        match self {
            SpeakerError::Options(_) => "options",
            SpeakerError::BgpType(_) => "bgp_type",
            SpeakerError::Runtime(_) => "runtime",
            SpeakerError::Layer2(_) => "layer2",
            SpeakerError::Membership(_) => "membership",
            SpeakerError::Startup(_) => "startup",
        }
    }
}
