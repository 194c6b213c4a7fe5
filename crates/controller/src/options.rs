//! Command-line / environment options of `ferrolb controller`.
//!
//! Flag names follow MetalLB's controller (observability.md §5.1) where a flag
//! applies; the leader-election and logging-format flags are ferrolb additions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use ferrolb_runtime::http_server::Check;
use ferrolb_runtime::leader::LeaderConfig;
use ferrolb_runtime::logging::LogFormat;

use crate::error::ControllerError;

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

    /// /healthz fails when Service writes have been pending this long
    /// without one completing (the reconcile loop is stuck).
    #[arg(long = "healthz-stall-timeout", default_value = "2m", value_parser = parse_duration)]
    pub healthz_stall_timeout: Duration,

    /// Service status writes in flight at once.
    #[arg(long = "write-concurrency", default_value_t = 64)]
    pub write_concurrency: usize,

    /// A repeated identical event (same object, reason and message) is counted
    /// in memory and its count written at most once per this interval.
    #[arg(long = "event-aggregation-interval", default_value = "30s", value_parser = parse_duration)]
    pub event_aggregation_interval: Duration,

    /// Set by whoever runs a webhook in the same process: `/readyz` also
    /// waits for it (serving with a valid certificate). Not a flag.
    #[arg(skip)]
    pub readiness_gate: ReadinessGate,
}

/// An extra condition of `/readyz`, asked on every probe (must not block).
#[derive(Clone, Default)]
pub struct ReadinessGate(Option<Check>);

impl ReadinessGate {
    /// `/readyz` answers 503 while `check` returns false.
    pub fn new(check: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        ReadinessGate(Some(std::sync::Arc::new(check)))
    }

    /// Whether the gate is open (always, when none was set).
    pub fn open(&self) -> bool {
        self.0.as_ref().is_none_or(|c| c())
    }
}

impl std::fmt::Debug for ReadinessGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "ReadinessGate(set)" } else { "ReadinessGate(none)" })
    }
}

impl ControllerOptions {
    /// Checks what clap cannot: the leader-election timings (client-go's
    /// rules, when election is on), and bounds that must not be zero.
    /// Called before anything starts, so a bad setting stops start-up.
    pub fn validate(&self) -> Result<(), ControllerError> {
        if self.leader_elect {
            self.leader_config().validate().map_err(|e| {
                ControllerError::Options(format!(
                    "--leader-election-lease-duration={}, --leader-election-renew-deadline={}, --leader-election-retry-period={}: {e}",
                    go_duration(self.lease_duration),
                    go_duration(self.renew_deadline),
                    go_duration(self.retry_period),
                ))
            })?;
        }
        if self.healthz_stall_timeout.is_zero() {
            return Err(ControllerError::Options("--healthz-stall-timeout must be greater than zero".into()));
        }
        if self.write_concurrency == 0 {
            return Err(ControllerError::Options("--write-concurrency must be greater than zero".into()));
        }
        Ok(())
    }

    /// The elector's settings from the flags.
    pub fn leader_config(&self) -> LeaderConfig {
        LeaderConfig {
            lease_name: self.lease_name.clone(),
            identity: self.identity(),
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        }
    }

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

/// `d` as a Go duration as the flags take it (`1.5s`, `500ms`), for messages.
fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) && d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
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
        assert_eq!(o.healthz_stall_timeout, Duration::from_secs(120));
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
    fn leader_timings_are_validated_naming_the_flags() {
        let ok = ControllerOptions::parse_from(["controller"]);
        assert!(ok.validate().is_ok());
        let sub = ControllerOptions::parse_from([
            "controller",
            "--leader-election-lease-duration=1500ms",
            "--leader-election-renew-deadline=1.2s",
            "--leader-election-retry-period=500ms",
        ]);
        assert!(sub.validate().is_ok(), "sub-second timings keep their precision");
        assert_eq!(sub.lease_duration, Duration::from_millis(1500));

        let bad = ControllerOptions::parse_from(["controller", "--leader-election-renew-deadline=15s"]);
        let msg = bad.validate().unwrap_err().to_string();
        assert_eq!(
            msg,
            "invalid option: --leader-election-lease-duration=15s, --leader-election-renew-deadline=15s, \
             --leader-election-retry-period=2s: lease duration (15s) must be greater than renew deadline (15s)"
        );
        let bad = ControllerOptions::parse_from(["controller", "--leader-election-retry-period=9s"]);
        let msg = bad.validate().unwrap_err().to_string();
        assert!(msg.contains("--leader-election-retry-period=9s") && msg.contains("1.2 × retry period"), "{msg}");
        let bad = ControllerOptions::parse_from(["controller", "--leader-election-retry-period=500ms", "--leader-election-renew-deadline=600ms"]);
        let msg = bad.validate().unwrap_err().to_string();
        assert!(msg.contains("--leader-election-renew-deadline=600ms, --leader-election-retry-period=500ms"), "{msg}");

        // Without election the timings are not used.
        let off = ControllerOptions::parse_from(["controller", "--leader-elect=false", "--leader-election-renew-deadline=15s"]);
        assert!(off.validate().is_ok());
        let zero = ControllerOptions::parse_from(["controller", "--healthz-stall-timeout=0s"]);
        assert!(zero.validate().unwrap_err().to_string().contains("--healthz-stall-timeout"));
    }

    #[test]
    fn command_definition_is_valid() {
        use clap::CommandFactory;
        ControllerOptions::command().debug_assert();
    }
}
