//! Certificates of the Kubernetes API endpoint: a cluster CA, a server
//! certificate for 127.0.0.1/localhost and an admin client certificate
//! (`O=system:masters`, as kubeadm's admin.conf), made once per cluster in
//! `/var/lib/lab/<cluster>/pki/` and reused by every later daemon.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The PEM files of a cluster's PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: String,
    pub server_cert: String,
    pub server_key: String,
    pub admin_cert: String,
    pub admin_key: String,
}

/// Why the PKI could not be made, saved or loaded into rustls.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("making certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Pem {
        what: &'static str,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what}: {source}")]
    Rustls {
        what: &'static str,
        source: rustls::Error,
    },
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

impl TlsError {
    fn file(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
        move |source| TlsError::File {
            path: path.to_path_buf(),
            source,
        }
    }

    fn pem(what: &'static str) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsError {
        move |source| TlsError::Pem { what, source }
    }

    fn rustls(what: &'static str) -> impl FnOnce(rustls::Error) -> TlsError {
        move |source| TlsError::Rustls { what, source }
    }
}

const FILES: [&str; 5] = [
    "ca.crt",
    "server.crt",
    "server.key",
    "admin.crt",
    "admin.key",
];

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("pki")
}

/// Make a fresh CA and the two leaf certificates signed by it.
pub fn generate(cluster: &str) -> Result<Pki, rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("lab-{cluster}-ca"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "lab-apiserver");
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin
        .distinguished_name
        .push(DnType::CommonName, "kubernetes-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &issuer)?;

    Ok(Pki {
        ca_cert: ca_cert.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        admin_cert: admin_cert.pem(),
        admin_key: admin_key.serialize_pem(),
    })
}

/// Load the cluster's PKI, making it first if any file is missing. Keys are
/// written 0600 in a 0700 directory.
pub fn load_or_create(state_dir: &Path, cluster: &str) -> Result<Pki, TlsError> {
    let d = dir(state_dir);
    let read = |f: &str| std::fs::read_to_string(d.join(f));
    if let (Ok(ca), Ok(sc), Ok(sk), Ok(ac), Ok(ak)) = (
        read(FILES[0]),
        read(FILES[1]),
        read(FILES[2]),
        read(FILES[3]),
        read(FILES[4]),
    ) {
        return Ok(Pki {
            ca_cert: ca,
            server_cert: sc,
            server_key: sk,
            admin_cert: ac,
            admin_key: ak,
        });
    }
    let pki = generate(cluster)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&d).map_err(TlsError::file(&d))?;
    // The directory holds the admin key: refuse to go on if it cannot be
    // made private.
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
        .map_err(TlsError::file(&d))?;
    for (f, text) in FILES.iter().zip([
        &pki.ca_cert,
        &pki.server_cert,
        &pki.server_key,
        &pki.admin_cert,
        &pki.admin_key,
    ]) {
        write_private(&d.join(f), text.as_bytes())?;
    }
    Ok(pki)
}

/// Write a file readable by root only (created 0600, then renamed in place).
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err()
        && let Err(e) = std::fs::remove_file(&tmp)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %tmp.display(), error = %e, "removing a partly written file");
    }
    res.map_err(TlsError::file(path))
}

/// The rustls server configuration: our certificate, client certificates
/// verified against the cluster CA but optional, so that a request without
/// one gets an HTTP 401 `Status` (as from the API server) instead of a TLS
/// alert. HTTP/1.1 only (ALPN), which every Kubernetes client speaks.
pub fn server_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = CertificateDer::from_pem_slice(pki.ca_cert.as_bytes())
        .map_err(TlsError::pem("CA certificate"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).map_err(TlsError::rustls("CA certificate"))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let cert = CertificateDer::from_pem_slice(pki.server_cert.as_bytes())
        .map_err(TlsError::pem("server certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes())
        .map_err(TlsError::pem("server key"))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::rustls("TLS protocol versions"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .map_err(TlsError::rustls("server certificate"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pki_loads_into_rustls() {
        let pki = generate("t").unwrap();
        assert!(pki.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.admin_key.contains("PRIVATE KEY"));
        server_config(&pki).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), "t").unwrap();
        let b = load_or_create(dir.path(), "t").unwrap();
        assert_eq!(a.ca_cert, b.ca_cert, "the second load reuses the files");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("pki/admin.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
