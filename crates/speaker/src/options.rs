//! Command-line / environment options of `ferrolb speaker`.
//!
//! Every flag and variable of MetalLB's speaker (observability.md §5.2, and
//! older releases' `--disable-epslices`, `--enable-pprof`) is accepted, so
//! MetalLB's own DaemonSet runs with only the image swapped. Flags that
//! ferrolb's design makes meaningless are accepted and logged once as ignored
//! ([`SpeakerOptions::ignored`]), never refused.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

/// MetalLB's exclusion list location (speaker.md §3.4).
pub const EXCLUDE_L2_PATH: &str = "/etc/metallb/excludel2.yaml";
/// MetalLB's memberlist tuning file (observability.md §4).
pub const MEMBERLIST_CONFIG_PATH: &str = "/etc/metallb/memberlist/config.json";
/// File name of the key inside `--ml-secret-key-path` (speaker.md §3.8).
pub const ML_SECRET_KEY_FILE: &str = "secretkey";
/// Namespace fallback (MetalLB's).
const SERVICE_ACCOUNT_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Debug, Clone, Parser)]
#[command(name = "speaker", about = "ferrolb speaker: announces the assigned addresses from this node", args_override_self = true)]
pub struct SpeakerOptions {
    /// This node's name (spec.nodeName of the speaker Pod).
    #[arg(long = "node-name", env = "METALLB_NODE_NAME")]
    pub node_name: Option<String>,

    /// Own Pod name: owner of the status objects this speaker writes.
    #[arg(long = "pod-name", env = "METALLB_POD_NAME")]
    pub pod_name: Option<String>,

    /// MetalLB namespace (configuration, Secrets, speaker Pods).
    #[arg(long, env = "METALLB_NAMESPACE")]
    pub namespace: Option<String>,

    /// Metrics port (plain HTTP, path /metrics); 0 disables the endpoint.
    #[arg(long, default_value_t = 7472)]
    pub port: u16,

    /// Address the metrics endpoint binds to.
    #[arg(id = "speaker_metrics_bind_address", long = "metrics-bind-address", default_value = "0.0.0.0")]
    pub metrics_bind_address: IpAddr,

    /// Port of /healthz and /readyz, bound on 127.0.0.1 (the speaker shares the
    /// host's network); 0 disables the endpoint.
    #[arg(long = "health-probe-port", default_value_t = 17472)]
    pub health_probe_port: u16,

    /// all, debug, info, warn, error or none.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,

    /// Log line format: json or text.
    #[arg(long = "log-format", default_value = "json")]
    pub log_format: String,

    /// Load-balancer class handled; empty = only Services without a class.
    #[arg(long = "lb-class", default_value = "")]
    pub lb_class: String,

    /// Ignore the node.kubernetes.io/exclude-from-external-load-balancers label.
    #[arg(long = "ignore-exclude-lb", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub ignore_exclude_lb: bool,

    /// Address the failure detector binds to (normally the Pod IP). With
    /// --ml-labels, turns fast failure detection on.
    #[arg(long = "ml-bindaddr", env = "METALLB_ML_BIND_ADDR")]
    pub ml_bind_addr: Option<String>,

    /// UDP port of the failure detector.
    #[arg(long = "ml-bindport", env = "METALLB_ML_BIND_PORT", default_value = "7946")]
    pub ml_bind_port: String,

    /// Label selector of the speaker Pods (peers of the failure detector).
    #[arg(long = "ml-labels", env = "METALLB_ML_LABELS")]
    pub ml_labels: Option<String>,

    /// Directory holding `secretkey`, the key authenticating detector messages.
    #[arg(long = "ml-secret-key-path", env = "METALLB_ML_SECRET_KEY_PATH")]
    pub ml_secret_key_path: Option<PathBuf>,

    /// MetalLB: memberlist's WAN profile. ferrolb's detector has its own timers.
    #[arg(long = "ml-wan-config", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub ml_wan_config: bool,

    /// How often each speaker sends a heartbeat to the speakers watching it.
    #[arg(long = "heartbeat-interval", default_value = "100ms", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// Interfaces never announced on (speaker.md §3.4).
    #[arg(long = "excludel2-path", default_value = EXCLUDE_L2_PATH)]
    pub excludel2_path: PathBuf,

    /// Kubeconfig file; default: in-cluster config, then $KUBECONFIG / ~/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// FRR-mode reload debounce (ms). ferrolb reloads nothing; validated as MetalLB does.
    #[arg(long = "bgp-debounce-timeout", env = "METALLB_BGP_DEBOUNCE_TIMEOUT", default_value = "3000")]
    pub bgp_debounce_timeout: String,

    #[arg(long = "frrk8s-namespace", env = "FRRK8S_NAMESPACE")]
    pub frrk8s_namespace: Option<String>,

    #[arg(long = "frrk8s-secret-passthrough", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub frrk8s_secret_passthrough: bool,

    /// Deprecated in MetalLB, ignored.
    #[arg(long, env = "METALLB_HOST")]
    pub host: Option<String>,

    #[arg(long = "pprof-bind-address")]
    pub pprof_bind_address: Option<String>,

    #[arg(long = "enable-pprof", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_pprof: bool,

    #[arg(long = "disable-epslices", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub disable_epslices: bool,

    #[arg(long = "tls-min-version")]
    pub tls_min_version: Option<String>,

    #[arg(long = "tls-cipher-suites")]
    pub tls_cipher_suites: Option<String>,

    #[arg(long = "tls-curve-preferences")]
    pub tls_curve_preferences: Option<String>,

    #[arg(long = "metrics-cert-dir")]
    pub metrics_cert_dir: Option<PathBuf>,
}

/// A start-up setting that cannot be honoured; the process exits with it.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("must specify --node-name or METALLB_NODE_NAME")]
    MissingNodeName,
    #[error("unable to get namespace from pod service account data, please specify --namespace or METALLB_NAMESPACE: {0}")]
    MissingNamespace(std::io::Error),
    #[error("--ml-bindport {0:?}: not a port number")]
    BadBindPort(String),
    #[error("--ml-bindaddr {0:?}: not an IP address")]
    BadBindAddr(String),
    #[error("--bgp-debounce-timeout {0:?}: must be a positive integer")]
    BadDebounce(String),
    #[error("--frrk8s-secret-passthrough requires METALLB_BGP_TYPE=frr-k8s and --frrk8s-namespace")]
    PassthroughWithoutFrrK8s,
}

/// Where the failure detector listens, when it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipSettings {
    pub bind: std::net::SocketAddr,
    pub labels: String,
    pub secret_key_path: Option<PathBuf>,
}

impl SpeakerOptions {
    pub fn node(&self) -> Result<String, OptionsError> {
        self.node_name.clone().filter(|n| !n.is_empty()).ok_or(OptionsError::MissingNodeName)
    }

    pub fn resolved_namespace(&self) -> Result<String, OptionsError> {
        if let Some(ns) = self.namespace.as_ref().filter(|n| !n.is_empty()) {
            return Ok(ns.clone());
        }
        std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE_FILE)
            .map(|s| s.trim().to_string())
            .map_err(OptionsError::MissingNamespace)
    }

    /// The failure detector is on when both the bind address and the Pod
    /// labels are given, as memberlist is in MetalLB (speaker.md §3.1).
    pub fn membership(&self) -> Result<Option<MembershipSettings>, OptionsError> {
        let (Some(addr), Some(labels)) = (
            self.ml_bind_addr.as_ref().filter(|s| !s.is_empty()),
            self.ml_labels.as_ref().filter(|s| !s.is_empty()),
        ) else {
            return Ok(None);
        };
        let ip: IpAddr = addr.parse().map_err(|_| OptionsError::BadBindAddr(addr.clone()))?;
        let port: u16 = self.ml_bind_port.parse().map_err(|_| OptionsError::BadBindPort(self.ml_bind_port.clone()))?;
        Ok(Some(MembershipSettings {
            bind: std::net::SocketAddr::new(ip, port),
            labels: labels.clone(),
            secret_key_path: self.ml_secret_key_path.clone().filter(|p| !p.as_os_str().is_empty()),
        }))
    }

    /// The checks MetalLB makes at start on flags ferrolb otherwise ignores,
    /// so a DaemonSet that MetalLB refuses is refused here too.
    pub fn check(&self, bgp_type: Option<&str>) -> Result<(), OptionsError> {
        match self.bgp_debounce_timeout.parse::<i64>() {
            Ok(ms) if ms > 0 => {}
            _ => return Err(OptionsError::BadDebounce(self.bgp_debounce_timeout.clone())),
        }
        if self.frrk8s_secret_passthrough && (bgp_type != Some("frr-k8s") || self.frrk8s_namespace.is_none()) {
            return Err(OptionsError::PassthroughWithoutFrrK8s);
        }
        Ok(())
    }

    /// Flags that were set but have no effect in ferrolb, each with why.
    pub fn ignored(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if self.host.is_some() {
            out.push(("--host", "deprecated in MetalLB"));
        }
        if self.ml_wan_config {
            out.push(("--ml-wan-config", "ferrolb's failure detector has its own timers (--heartbeat-interval)"));
        }
        if self.pprof_bind_address.as_ref().is_some_and(|s| !s.is_empty()) || self.enable_pprof {
            out.push(("--pprof-bind-address/--enable-pprof", "Go profiling has no Rust equivalent here"));
        }
        if self.disable_epslices {
            out.push(("--disable-epslices", "EndpointSlices are always used (Endpoints are deprecated)"));
        }
        if self.tls_min_version.is_some() || self.tls_cipher_suites.is_some() || self.tls_curve_preferences.is_some() || self.metrics_cert_dir.is_some() {
            out.push(("--tls-*/--metrics-cert-dir", "the metrics endpoint is plain HTTP, as the controller's (docs/speaker.md)"));
        }
        if std::path::Path::new(MEMBERLIST_CONFIG_PATH).exists() {
            out.push((MEMBERLIST_CONFIG_PATH, "memberlist tuning does not apply to ferrolb's failure detector"));
        }
        out
    }
}

/// `100ms`, `1s`, `1.5s`, `2m`: Go-style durations for the ferrolb timers.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(|| format!("{text:?}: missing unit (ms, s, m)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?}: not a number"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m)")),
    };
    let seconds = value * scale;
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("{text:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> SpeakerOptions {
        SpeakerOptions::try_parse_from(std::iter::once("speaker").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn metallb_daemonset_arguments_are_accepted() {
        let o = parse(&[
            "--port=7472",
            "--log-level=info",
            "--node-name=n1",
            "--host=10.0.0.1",
            "--ml-bindaddr=10.0.0.1",
            "--ml-labels=app=metallb,component=speaker",
            "--ml-secret-key-path=/etc/ml_secret_key",
            "--enable-pprof",
            "--disable-epslices",
        ]);
        assert_eq!(o.node().unwrap(), "n1");
        let ml = o.membership().unwrap().unwrap();
        assert_eq!(ml.bind, "10.0.0.1:7946".parse().unwrap());
        let ignored: Vec<&str> = o.ignored().iter().map(|(flag, _)| *flag).collect();
        assert!(ignored.contains(&"--host"));
        assert!(ignored.contains(&"--disable-epslices"));
    }

    #[test]
    fn membership_needs_both_address_and_labels() {
        assert_eq!(parse(&["--ml-bindaddr=10.0.0.1"]).membership().unwrap(), None);
        assert!(matches!(
            parse(&["--ml-bindaddr=x", "--ml-labels=a=b"]).membership(),
            Err(OptionsError::BadBindAddr(_))
        ));
    }

    #[test]
    fn metallb_start_checks_are_kept() {
        assert!(matches!(parse(&["--bgp-debounce-timeout=0"]).check(None), Err(OptionsError::BadDebounce(_))));
        assert!(matches!(
            parse(&["--frrk8s-secret-passthrough"]).check(Some("native")),
            Err(OptionsError::PassthroughWithoutFrrK8s)
        ));
        assert!(parse(&[]).check(None).is_ok());
        assert!(matches!(parse(&[]).node(), Err(OptionsError::MissingNodeName)));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5").is_err());
    }
}
