//! TLS settings shared by the webhook and metrics servers (observability.md §1):
//! `--tls-min-version`, `--tls-cipher-suites`, `--tls-curve-preferences`, and a
//! certificate resolver whose key pair can be swapped while the server runs
//! (certificate rotation and `--cert-dir` reloads).

use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The TLS flags. Flatten once into a command and hand the value to every
/// HTTPS server of the process.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsArgs {
    /// Minimum TLS version: VersionTLS12 or VersionTLS13 (empty = VersionTLS13).
    #[arg(long = "tls-min-version", default_value = "")]
    pub tls_min_version: String,
    /// Comma-separated IANA cipher suite names (TLS 1.2 only).
    #[arg(long = "tls-cipher-suites", default_value = "")]
    pub tls_cipher_suites: String,
    /// Comma-separated numeric TLS CurveIDs, in preference order.
    #[arg(long = "tls-curve-preferences", default_value = "")]
    pub tls_curve_preferences: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsOptionsError {
    #[error("invalid --tls-min-version {0:?}: must be VersionTLS12 or VersionTLS13")]
    MinVersion(String),
    #[error("cipher suites cannot be configured with TLS 1.3")]
    CipherSuitesWithTls13,
    #[error("invalid --tls-cipher-suites: unsupported cipher suite {0:?}")]
    CipherSuite(String),
    #[error("invalid --tls-cipher-suites: no TLS 1.2 cipher suite left")]
    NoCipherSuite,
    #[error("invalid --tls-curve-preferences: {0}")]
    Curve(String),
}

/// The validated form of [`TlsArgs`].
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub min_tls12: bool,
    provider: Arc<CryptoProvider>,
}

impl TlsArgs {
    /// Validates the flags; the process should exit with the error at start.
    pub fn settings(&self) -> Result<TlsSettings, TlsOptionsError> {
        let min_tls12 = match self.tls_min_version.trim() {
            "" | "VersionTLS13" => false,
            "VersionTLS12" => true,
            other => return Err(TlsOptionsError::MinVersion(other.to_string())),
        };
        let mut provider = rustls::crypto::ring::default_provider();

        let suites: Vec<&str> = split_list(&self.tls_cipher_suites);
        if !suites.is_empty() {
            if !min_tls12 {
                return Err(TlsOptionsError::CipherSuitesWithTls13);
            }
            for name in &suites {
                let known = provider
                    .cipher_suites
                    .iter()
                    .any(|s| s.suite().as_str() == Some(name) && s.tls13().is_none());
                if !known {
                    return Err(TlsOptionsError::CipherSuite(name.to_string()));
                }
            }
            // As in Go, the list restricts TLS 1.2 suites; TLS 1.3 suites are not configurable.
            provider.cipher_suites.retain(|s| {
                s.tls13().is_some() || suites.iter().any(|n| s.suite().as_str() == Some(n))
            });
            if !provider.cipher_suites.iter().any(|s| s.tls13().is_none()) {
                return Err(TlsOptionsError::NoCipherSuite);
            }
        }

        let curves = split_list(&self.tls_curve_preferences);
        if !curves.is_empty() {
            let mut ordered = Vec::new();
            let mut seen = Vec::new();
            for text in curves {
                let id: u16 = match text.parse::<u32>() {
                    Ok(n) if (1..=65535).contains(&n) => n as u16,
                    _ => {
                        return Err(TlsOptionsError::Curve(format!(
                            "{text:?} is not a CurveID between 1 and 65535"
                        )));
                    }
                };
                if seen.contains(&id) {
                    return Err(TlsOptionsError::Curve(format!("duplicate CurveID {id}")));
                }
                seen.push(id);
                let group = provider
                    .kx_groups
                    .iter()
                    .find(|g| u16::from(g.name()) == id)
                    .ok_or_else(|| {
                        TlsOptionsError::Curve(format!("unknown or unsupported CurveID {id}"))
                    })?;
                ordered.push(*group);
            }
            provider.kx_groups = ordered;
        }
        Ok(TlsSettings { min_tls12, provider: Arc::new(provider) })
    }
}

fn split_list(text: &str) -> Vec<&str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

impl TlsSettings {
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// A server configuration presenting whatever `resolver` currently holds.
    /// `alpn_h2` advertises HTTP/2 in addition to HTTP/1.1.
    pub fn server_config(
        &self,
        resolver: Arc<CertResolver>,
        alpn_h2: bool,
    ) -> Result<rustls::ServerConfig, rustls::Error> {
        let versions: &[&'static rustls::SupportedProtocolVersion] = if self.min_tls12 {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(versions)?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = if alpn_h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(config)
    }
}

/// A certificate and key in PEM form.
#[derive(Clone, PartialEq, Eq)]
pub struct PemPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for PemPair {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyPairError {
    #[error("no certificate found in tls.crt")]
    NoCertificate,
    #[error("tls.crt: {0}")]
    Cert(String),
    #[error("tls.key: {0}")]
    Key(String),
    #[error("tls.crt and tls.key do not form a usable key pair: {0}")]
    Mismatch(rustls::Error),
}

impl PemPair {
    /// Parses and checks the pair (the key must belong to the first certificate).
    pub fn certified_key(&self, provider: &CryptoProvider) -> Result<CertifiedKey, KeyPairError> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| KeyPairError::Cert(e.to_string()))?;
        if chain.is_empty() {
            return Err(KeyPairError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| KeyPairError::Key(e.to_string()))?;
        CertifiedKey::from_der(chain, key, provider).map_err(KeyPairError::Mismatch)
    }
}

/// Serves the current key pair; [`CertResolver::set`] swaps it for new connections.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl CertResolver {
    pub fn new() -> Self {
        CertResolver { current: RwLock::new(None) }
    }

    pub fn set(&self, key: CertifiedKey) {
        // A poisoned lock only means a writer panicked mid-assignment of an Arc,
        // which cannot leave a torn value: keep going.
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = Some(Arc::new(key));
    }

    pub fn is_ready(&self) -> bool {
        self.current.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

impl Default for CertResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(min: &str, suites: &str, curves: &str) -> TlsArgs {
        TlsArgs {
            tls_min_version: min.into(),
            tls_cipher_suites: suites.into(),
            tls_curve_preferences: curves.into(),
        }
    }

    #[test]
    fn default_is_tls13_only() {
        let s = args("", "", "").settings().unwrap();
        assert!(!s.min_tls12);
    }

    #[test]
    fn min_version_values() {
        assert!(args("VersionTLS12", "", "").settings().unwrap().min_tls12);
        assert!(!args("VersionTLS13", "", "").settings().unwrap().min_tls12);
        assert_eq!(
            args("VersionTLS10", "", "").settings().unwrap_err(),
            TlsOptionsError::MinVersion("VersionTLS10".into())
        );
    }

    #[test]
    fn cipher_suites_need_tls12() {
        let e = args("", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "").settings().unwrap_err();
        assert_eq!(e.to_string(), "cipher suites cannot be configured with TLS 1.3");
    }

    #[test]
    fn cipher_suites_restrict_tls12() {
        let s = args("VersionTLS12", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "")
            .settings()
            .unwrap();
        let tls12: Vec<_> = s
            .provider()
            .cipher_suites
            .iter()
            .filter(|c| c.tls13().is_none())
            .map(|c| c.suite().as_str().unwrap())
            .collect();
        assert_eq!(tls12, vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
        assert!(s.provider().cipher_suites.iter().any(|c| c.tls13().is_some()));
    }

    #[test]
    fn unknown_cipher_suite() {
        let e = args("VersionTLS12", "TLS_RSA_WITH_RC4_128_SHA", "").settings().unwrap_err();
        assert_eq!(e, TlsOptionsError::CipherSuite("TLS_RSA_WITH_RC4_128_SHA".into()));
    }

    #[test]
    fn curves() {
        // 29 = X25519, 23 = P-256 (Go's CurveID numbering = IANA's).
        let s = args("", "", "29, 23").settings().unwrap();
        let ids: Vec<u16> = s.provider().kx_groups.iter().map(|g| u16::from(g.name())).collect();
        assert_eq!(ids, vec![29, 23]);
        assert!(args("", "", "29,29").settings().unwrap_err().to_string().contains("duplicate"));
        assert!(args("", "", "0").settings().is_err());
        assert!(args("", "", "70000").settings().is_err());
        assert!(args("", "", "x").settings().is_err());
        assert!(args("", "", "4242").settings().unwrap_err().to_string().contains("4242"));
    }
}
