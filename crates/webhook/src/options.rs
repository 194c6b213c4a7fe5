//! Command-line options of the webhook server, with MetalLB's flag names
//! (observability.md §5.1). They are clap `Args` so the binary can flatten them
//! into `ferrolb controller` and `ferrolb webhook`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_config::assemble::BgpMode;

use crate::tls::TlsArgs;

/// Flags of the webhook server proper. The TLS flags live in [`TlsArgs`] because
/// the metrics server shares them; the namespace comes from the controller's own
/// `--namespace` flag.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct WebhookArgs {
    /// Address the HTTPS webhook server listens on (MetalLB hard-codes :9443).
    /// A bare `:PORT` means all IPv4 interfaces.
    #[arg(long = "webhook-bind-address", default_value = "0.0.0.0:9443", value_parser = parse_bind_address)]
    pub bind_address: SocketAddr,

    /// Do not generate/rotate the webhook certificate; read tls.crt/tls.key from --cert-dir.
    #[arg(long = "disable-cert-rotation", default_value_t = false)]
    pub disable_cert_rotation: bool,

    /// Directory holding tls.crt and tls.key when --disable-cert-rotation is set.
    #[arg(long = "cert-dir", default_value = "/tmp/k8s-webhook-server/serving-certs")]
    pub cert_dir: PathBuf,

    /// Service name put in the generated certificate (`<name>.<namespace>.svc`).
    #[arg(long = "cert-service-name", default_value = "metallb-webhook-service")]
    pub cert_service_name: String,

    /// Secret (in the MetalLB namespace) that stores the generated CA and certificate.
    #[arg(long = "webhook-secret", default_value = "metallb-webhook-cert")]
    pub webhook_secret: String,

    /// Allow HTTP/2 on the webhook server (HTTP/1.1 only otherwise).
    #[arg(long = "webhook-http2", default_value_t = false)]
    pub webhook_http2: bool,

    /// ValidatingWebhookConfiguration whose caBundle is kept in sync with the generated CA.
    #[arg(long = "webhook-configuration-name", default_value = "metallb-webhook-configuration")]
    pub webhook_configuration_name: String,

    /// CustomResourceDefinition whose conversion caBundle is kept in sync (BGPPeer conversion).
    #[arg(long = "conversion-crd-name", default_value = "bgppeers.metallb.io")]
    pub conversion_crd_name: String,

    /// Time a client has to send a complete HTTP/1.1 request header, counted
    /// from the moment the server waits for it (so it also ends idle keep-alive
    /// connections). Go duration syntax.
    #[arg(long = "webhook-header-read-timeout", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// A connection on which no byte arrives for this long while the server
    /// waits to read is closed (idle HTTP/2 connections, stalled bodies).
    #[arg(long = "webhook-idle-timeout", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Connections served at once; further clients wait in the listen backlog
    /// until one closes.
    #[arg(long = "webhook-max-connections", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

impl Default for WebhookArgs {
    fn default() -> Self {
        WebhookArgs {
            bind_address: SocketAddr::from(([0, 0, 0, 0], 9443)),
            disable_cert_rotation: false,
            cert_dir: PathBuf::from("/tmp/k8s-webhook-server/serving-certs"),
            cert_service_name: "metallb-webhook-service".into(),
            webhook_secret: "metallb-webhook-cert".into(),
            webhook_http2: false,
            webhook_configuration_name: "metallb-webhook-configuration".into(),
            conversion_crd_name: "bgppeers.metallb.io".into(),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 128,
        }
    }
}

/// Go duration syntax (`10s`, `1m30s`, `500ms`), as Kubernetes flags use;
/// zero and negative values are refused (they would disable the limit or
/// close every connection at once).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed: kube::core::Duration =
        text.parse().map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    let value = Duration::from(parsed);
    if parsed.is_negative() || value.is_zero() {
        return Err(format!("invalid duration {text:?}: must be positive"));
    }
    Ok(value)
}

/// Accepts `HOST:PORT`, `[V6]:PORT` and Go's `:PORT` shorthand.
pub fn parse_bind_address(text: &str) -> Result<SocketAddr, String> {
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_string() };
    full.parse::<SocketAddr>()
        .map_err(|e| format!("invalid bind address {text:?}: {e}"))
}

/// Everything [`crate::serve`] needs besides the client.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub args: WebhookArgs,
    pub tls: TlsArgs,
    /// The MetalLB namespace: creation elsewhere is refused, and the certificate
    /// Secret and Service name live here.
    pub namespace: String,
    /// From `METALLB_BGP_TYPE`; selects the mode-specific checks (crds.md §10.3).
    pub mode: BgpMode,
    /// Extra DNS names / IP addresses for the generated serving certificate
    /// (tests reach the server as 127.0.0.1).
    pub extra_sans: Vec<String>,
    /// Pace of the certificate upkeep; tests shorten it.
    pub cert_timing: CertTiming,
}

/// How often a replica re-reads the certificate Secret and re-injects its
/// caBundle, and how long it lets the API server pick up a new caBundle before
/// presenting a certificate signed by a new CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertTiming {
    pub sync_every: Duration,
    pub rotation_overlap: Duration,
}

impl Default for CertTiming {
    fn default() -> Self {
        // 30 s: a re-applied webhook configuration (empty caBundle) is fixed
        // within half a minute. 10 s: the API server's informer has long seen
        // the new caBundle by then.
        CertTiming { sync_every: Duration::from_secs(30), rotation_overlap: Duration::from_secs(10) }
    }
}

impl ServeOptions {
    pub fn new(namespace: impl Into<String>) -> Self {
        ServeOptions {
            args: WebhookArgs::default(),
            tls: TlsArgs::default(),
            namespace: namespace.into(),
            mode: BgpMode::Native,
            extra_sans: Vec::new(),
            cert_timing: CertTiming::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        webhook: WebhookArgs,
        #[command(flatten)]
        tls: TlsArgs,
    }

    #[test]
    fn defaults_match_metallb() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.webhook, WebhookArgs::default());
        assert_eq!(cli.tls, TlsArgs::default());
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "x",
            "--webhook-bind-address=:8443",
            "--disable-cert-rotation",
            "--cert-dir=/certs",
            "--webhook-http2",
            "--tls-min-version=VersionTLS12",
            "--webhook-header-read-timeout=1m30s",
            "--webhook-idle-timeout=500ms",
            "--webhook-max-connections=7",
        ])
        .unwrap();
        assert_eq!(cli.webhook.bind_address, "0.0.0.0:8443".parse().unwrap());
        assert!(cli.webhook.disable_cert_rotation);
        assert!(cli.webhook.webhook_http2);
        assert_eq!(cli.webhook.cert_dir, PathBuf::from("/certs"));
        assert_eq!(cli.tls.tls_min_version, "VersionTLS12");
        assert_eq!(cli.webhook.header_read_timeout, Duration::from_secs(90));
        assert_eq!(cli.webhook.idle_timeout, Duration::from_millis(500));
        assert_eq!(cli.webhook.max_connections, 7);
    }

    #[test]
    fn limits_refuse_nonsense() {
        for bad in [
            "--webhook-header-read-timeout=0s",
            "--webhook-idle-timeout=-5s",
            "--webhook-idle-timeout=10",
            "--webhook-max-connections=0",
        ] {
            assert!(Cli::try_parse_from(["x", bad]).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn bind_address_forms() {
        assert_eq!(parse_bind_address("[::1]:9443").unwrap(), "[::1]:9443".parse().unwrap());
        assert!(parse_bind_address("nonsense").unwrap_err().contains("nonsense"));
    }
}
