//! `METALLB_BGP_TYPE`, read the same way by every command: it selects the
//! BGP-implementation checks (crds.md §10.3), and an unknown value is an
//! error rather than a silent fall-back to native.

use ferrolb_config::assemble::BgpMode;

pub const ENV: &str = "METALLB_BGP_TYPE";

pub fn from_env() -> Result<BgpMode, String> {
    BgpMode::from_env_value(std::env::var(ENV).ok().as_deref()).map_err(|e| format!("{ENV}: {e}"))
}
