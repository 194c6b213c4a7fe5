//! Command-line / environment options of `ferrolb controller`.
//!
//! Flag names follow MetalLB's controller (observability.md §5.1) where a flag
//! applies; the leader-election and logging-format flags are ferrolb additions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use ferrolb_runtime::logging::LogFormat;

/// Where the namespace comes from when neither `--namespace` nor
/// `METALLB_NAMESPACE` is given (MetalLB's own fallback).
const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Namespace used when nothing else names one.
pub const DEFAULT_NAMESPACE: &str = "metallb-system";

#[derive(Debug, Clone, Parser)]
#[command(name = "controller", about = "ferrolb controller: assigns LoadBalancer addresses", args_override_self = true)]
pub struct ControllerOptions {
    /// MetalLB namespace (pools, communities, ConfigurationState, Lease live here).
    #[arg(long, env = "METALLB_NAMESPACE")]
    pub namespace: Option<String>,

    /// Load-balancer class handled; empty = only Services without a class.
    #[arg(long = "lb-class", default_value = "")]
    pub lb_class: String,

    /// Metrics port (plain HTTP, path /metrics); 0 disables the endpoint.
    #[arg(long, default_value_t = 9120)]
    pub port: u16,

    /// Port of /healthz and /readyz; 0 disables the endpoint.
    #[arg(long = "health-probe-port", default_value_t = 17472)]
    pub health_probe_port: u16,

    /// Address the metrics and health endpoints bind to.
    #[arg(id = "controller_bind_address", long = "bind-address", default_value = "0.0.0.0")]
    pub bind_address: std::net::IpAddr,

    /// all, debug, info, warn, error or none.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,

    /// Log line format.
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Own Pod name: owner of ConfigurationState/controller and default
    /// leader-election identity.
    #[arg(long = "pod-name", env = "METALLB_POD_NAME")]
    pub pod_name: Option<String>,

    /// Name of the memberlist Secret to create in the MetalLB namespace when
    /// it does not exist (speakers read its `secretkey`); empty: none.
    #[arg(long = "ml-secret-name", env = "METALLB_ML_SECRET_NAME")]
    pub ml_secret_name: Option<String>,

    /// The controller's Deployment, owner of the memberlist Secret.
    #[arg(long = "deployment", env = "METALLB_DEPLOYMENT")]
    pub deployment: Option<String>,

    /// Kubeconfig file; default: in-cluster config, then $KUBECONFIG / ~/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Run leader election on a coordination.k8s.io/v1 Lease (only the leader writes).
    #[arg(long = "leader-elect", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,

    /// Name of the Lease in the MetalLB namespace.
    #[arg(long = "leader-election-lease-name", default_value = "ferrolb-controller")]
    pub lease_name: String,

    /// Identity written into the Lease; default: pod name, else hostname + pid.
    #[arg(long = "leader-election-identity")]
    pub leader_identity: Option<String>,

    /// How long a non-leader waits after the last observed renewal before taking over.
    #[arg(long = "leader-election-lease-duration", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// The leader gives up (stops writing) when it could not renew for this long.
    #[arg(long = "leader-election-renew-deadline", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,

    /// Interval between acquire / renew attempts.
    #[arg(long = "leader-election-retry-period", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,

    /// Service status writes in flight at once.
    #[arg(long = "write-concurrency", default_value_t = 64)]
    pub write_concurrency: usize,

    /// A repeated identical event (same object, reason and message) is counted
    /// in memory and its count written at most once per this interval.
    #[arg(long = "event-aggregation-interval", default_value = "30s", value_parser = parse_duration)]
    pub event_aggregation_interval: Duration,
}

impl ControllerOptions {
    /// Namespace by precedence: flag / env, service-account file, `metallb-system`.
    pub fn resolved_namespace(&self) -> String {
        if let Some(ns) = self.namespace.as_deref().filter(|s| !s.is_empty()) {
            return ns.to_string();
        }
        match std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE_FILE) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => DEFAULT_NAMESPACE.to_string(),
        }
    }

    /// `None` = Services without `spec.loadBalancerClass` (crds.md §11.2).
    pub fn lb_class(&self) -> Option<&str> {
        Some(self.lb_class.as_str()).filter(|s| !s.is_empty())
    }

    /// `--ml-secret-name` when set and not empty.
    pub fn ml_secret_name(&self) -> Option<&str> {
        self.ml_secret_name.as_deref().filter(|s| !s.is_empty())
    }

    /// Identity used in the Lease's holderIdentity.
    pub fn identity(&self) -> String {
        if let Some(id) = self.leader_identity.as_deref().filter(|s| !s.is_empty()) {
            return id.to_string();
        }
        if let Some(pod) = self.pod_name.as_deref().filter(|s| !s.is_empty()) {
            return pod.to_string();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown-host".to_string());
        format!("{host}_{}", std::process::id())
    }
}

/// Parses Go-style durations as used in Kubernetes flags: `15s`, `500ms`,
/// `1m`, `1m30s`, `2h`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".to_string());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return to_duration(secs, text);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {text:?}"))?;
        if num_len == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid number in duration {text:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    to_duration(total, text)
}

fn to_duration(secs: f64, text: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn defaults_match_metallb() {
        let o = ControllerOptions::parse_from(["controller"]);
        assert_eq!(o.port, 9120);
        assert_eq!(o.health_probe_port, 17472);
        assert_eq!(o.log_level, "info");
        assert!(o.leader_elect);
        assert_eq!(o.lease_duration, Duration::from_secs(15));
        assert_eq!(o.renew_deadline, Duration::from_secs(10));
        assert_eq!(o.retry_period, Duration::from_secs(2));
        assert_eq!(o.lb_class(), None);
        assert_eq!(o.ml_secret_name(), None);
    }

    #[test]
    fn memberlist_flags() {
        let o = ControllerOptions::parse_from(["controller", "--ml-secret-name=memberlist", "--deployment=controller"]);
        assert_eq!(o.ml_secret_name(), Some("memberlist"));
        assert_eq!(o.deployment.as_deref(), Some("controller"));
        let o = ControllerOptions::parse_from(["controller", "--ml-secret-name="]);
        assert_eq!(o.ml_secret_name(), None);
    }

    #[test]
    fn leader_elect_can_be_switched_off() {
        let o = ControllerOptions::parse_from(["controller", "--leader-elect=false", "--lb-class", "x"]);
        assert!(!o.leader_elect);
        assert_eq!(o.lb_class(), Some("x"));
    }

    #[test]
    fn command_definition_is_valid() {
        use clap::CommandFactory;
        ControllerOptions::command().debug_assert();
    }
}
