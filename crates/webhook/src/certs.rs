//! Certificate material for the webhook server: a generated CA plus a serving
//! certificate (what MetalLB's cert rotation produces, observability.md §6.1),
//! or a key pair read from `--cert-dir`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::tls::PemPair;

/// Both certificates are valid this long; the rotation loop renews them
/// [`RENEW_BEFORE`] ahead of expiry.
pub const VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// A stored bundle expiring within this window is replaced.
pub const RENEW_BEFORE: Duration = Duration::from_secs(90 * 24 * 3600);
/// Tolerated clock skew between this process and the API server.
const BACKDATE: Duration = Duration::from_secs(3600);

/// A CA and the serving certificate it signed, all in PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertBundle {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub serving: PemPair,
}

impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("serving", &self.serving)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0}")]
    KeyPair(#[from] crate::tls::KeyPairError),
}

/// DNS names a Service `name` in `namespace` is reached by from the API server.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_string(),
    ]
}

/// Generates a fresh CA (CN `cert`, O `metallb`, as MetalLB's) and a serving
/// certificate for `sans` (DNS names or IP addresses) signed by it.
pub fn generate(sans: &[String], now: SystemTime) -> Result<CertBundle, CertError> {
    // rcgen's timestamps are `time::OffsetDateTime`; build them from the epoch so
    // the `time` crate need not be named here.
    let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let not_before = epoch + since_epoch(now.checked_sub(BACKDATE).unwrap_or(now));
    let not_after = epoch + since_epoch(now + VALIDITY);

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params.distinguished_name.push(DnType::CommonName, "cert");
    ca_params.distinguished_name.push(DnType::OrganizationName, "metallb");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(sans.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        sans.first().cloned().unwrap_or_else(|| "metallb-webhook".into()),
    );
    params.distinguished_name.push(DnType::OrganizationName, "metallb");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer)?;

    Ok(CertBundle {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        serving: PemPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() },
    })
}

/// Why a stored bundle cannot be reused.
pub fn check_bundle(
    bundle: &CertBundle,
    sans: &[String],
    at: SystemTime,
    provider: &Arc<CryptoProvider>,
) -> Result<(), String> {
    bundle.serving.certified_key(provider).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(bundle.ca_cert_pem.as_bytes()) {
        let ca = ca.map_err(|e| format!("ca.crt: {e}"))?;
        roots.add(ca).map_err(|e| format!("ca.crt: {e}"))?;
    }
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("ca.crt: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(bundle.serving.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    let (leaf, intermediates) = chain.split_first().ok_or("tls.crt: no certificate")?;
    let when = UnixTime::since_unix_epoch(at.duration_since(UNIX_EPOCH).unwrap_or_default());
    for san in sans {
        let name = ServerName::try_from(san.as_str()).map_err(|e| format!("{san}: {e}"))?;
        verifier
            .verify_server_cert(leaf, intermediates, &name, &[], when)
            .map_err(|e| format!("certificate not valid for {san}: {e}"))?;
    }
    Ok(())
}

/// The first certificate of a PEM bundle, with its trailing newline.
// String slicing rather than a PEM re-encode: the block is copied verbatim
// into another bundle, and rustls' PEM support only decodes.
pub fn first_pem_certificate(pem: &str) -> Option<&str> {
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find("-----BEGIN CERTIFICATE-----")?;
    let end = start + pem[start..].find(END)? + END.len();
    let end = if pem[end..].starts_with('\n') { end + 1 } else { end };
    Some(&pem[start..end])
}

/// Reads `tls.crt` / `tls.key` from a directory (the `--disable-cert-rotation` mode).
pub fn read_dir(dir: &Path) -> Result<PemPair, CertError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path)
            .map_err(|source| CertError::Read { path: path.display().to_string(), source })
    };
    Ok(PemPair { cert_pem: read("tls.crt")?, key_pem: read("tls.key")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    #[test]
    fn generated_bundle_verifies_for_its_names() {
        let sans = vec!["svc.ns.svc".to_string(), "127.0.0.1".to_string()];
        let now = SystemTime::now();
        let b = generate(&sans, now).unwrap();
        assert!(b.ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        check_bundle(&b, &sans, now, &provider()).unwrap();
        // Still fine just before the renewal window, stale inside it.
        check_bundle(&b, &sans, now + VALIDITY - RENEW_BEFORE, &provider()).unwrap();
        assert!(check_bundle(&b, &sans, now + VALIDITY + Duration::from_secs(60), &provider()).is_err());
    }

    #[test]
    fn bundle_rejected_for_other_names_or_ca() {
        let now = SystemTime::now();
        let a = generate(&["a.ns.svc".to_string()], now).unwrap();
        let b = generate(&["a.ns.svc".to_string()], now).unwrap();
        let err = check_bundle(&a, &["other.ns.svc".to_string()], now, &provider()).unwrap_err();
        assert!(err.contains("other.ns.svc"), "{err}");
        let mixed = CertBundle { ca_cert_pem: b.ca_cert_pem.clone(), ..a.clone() };
        assert!(check_bundle(&mixed, &["a.ns.svc".to_string()], now, &provider()).is_err());
        let wrong_key = CertBundle {
            serving: PemPair { cert_pem: a.serving.cert_pem.clone(), key_pem: b.serving.key_pem.clone() },
            ..a.clone()
        };
        assert!(check_bundle(&wrong_key, &["a.ns.svc".to_string()], now, &provider()).is_err());
    }

    #[test]
    fn read_dir_names_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tls.crt"), "{err}");
        let b = generate(&["x".to_string()], SystemTime::now()).unwrap();
        std::fs::write(dir.path().join("tls.crt"), &b.serving.cert_pem).unwrap();
        std::fs::write(dir.path().join("tls.key"), &b.serving.key_pem).unwrap();
        assert_eq!(read_dir(dir.path()).unwrap(), b.serving);
    }

    #[test]
    fn first_certificate_of_a_bundle() {
        let now = SystemTime::now();
        let a = generate(&["a".to_string()], now).unwrap().ca_cert_pem;
        let b = generate(&["b".to_string()], now).unwrap().ca_cert_pem;
        assert_eq!(first_pem_certificate(&format!("{a}{b}")), Some(a.as_str()));
        assert_eq!(first_pem_certificate(&a), Some(a.as_str()));
        assert_eq!(first_pem_certificate("no PEM here"), None);
    }

    #[test]
    fn dns_names() {
        assert_eq!(service_dns_names("s", "n")[0], "s.n.svc");
    }
}
