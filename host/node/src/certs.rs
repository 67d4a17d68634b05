//! A development certificate authority, so a newcomer can try mTLS in one command:
//! `jobhost certs init DIR` writes a CA, a server certificate, and an admin and a viewer
//! client certificate (subject `CN=<name>, OU=<role>, O=jobhost`, as the Job Worker's).
//!
//! For production, use certificates from your own PKI: the server only needs a chain and key
//! (`tls.cert_file`, `tls.key_file`) and the CA of its clients (`tls.client_ca_file`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Errors creating certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the parameters.
    #[error("creating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file would be overwritten.
    #[error("{0} exists; pass --force to replace the certificates in that folder")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// How long `certs init` certificates are valid: the CA ten years, the others one.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Backdating, so a clock slightly behind still accepts a fresh certificate.
const BACKDATE: Duration = Duration::from_secs(3600);

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"(redacted)")
            .finish()
    }
}

/// A certificate authority that signs server and client certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    issued: Issued,
}

impl Authority {
    /// A new self-signed CA named `common_name`, valid for ten years.
    pub fn new(common_name: &str) -> Result<Authority, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = SystemTime::now();
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + CA_VALIDITY).into();
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let issued = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Authority {
            issuer: Issuer::new(params, key),
            issued,
        })
    }

    /// An existing CA, from its certificate and private key (PEM).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Authority, CertError> {
        let issuer = Issuer::from_ca_cert_pem(cert_pem, KeyPair::from_pem(key_pem)?)?;
        let issued = Issued {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        };
        Ok(Authority { issuer, issued })
    }

    /// The CA's own certificate and key.
    pub fn certificate(&self) -> &Issued {
        &self.issued
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid for a year.
    pub fn issue_server(&self, names: &[String]) -> Result<Issued, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for name in names {
            params.subject_alt_names.push(match name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.clone().try_into()?),
            });
        }
        let common_name = names.first().map_or("jobhost", String::as_str);
        params.distinguished_name = subject(common_name, None);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = SystemTime::now();
        self.sign(params, now - BACKDATE, now + LEAF_VALIDITY)
    }

    /// A client certificate `CN=<name>, OU=<role>, O=jobhost`, valid for a year.
    pub fn issue_client(&self, name: &str, role: &str) -> Result<Issued, CertError> {
        let now = SystemTime::now();
        self.issue_client_valid(name, role, now - BACKDATE, now + LEAF_VALIDITY)
    }

    /// Like [`Authority::issue_client`], valid from `not_before` to `not_after` (tests use
    /// this for expired certificates).
    pub fn issue_client_valid(
        &self,
        name: &str,
        role: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Issued, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(name, Some(role));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, not_before, not_after)
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Issued, CertError> {
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn subject(common_name: &str, unit: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    if let Some(unit) = unit {
        name.push(DnType::OrganizationalUnitName, unit);
    }
    name.push(DnType::OrganizationName, "jobhost");
    name
}

/// The files `certs init` writes, in the Job Worker's naming.
pub mod files {
    /// The CA certificate: `tls.client_ca_file`, and `jobctl --ca`.
    pub const CA_CERT: &str = "ca-cert.pem";
    /// The CA key: keep it off servers; it signs new clients.
    pub const CA_KEY: &str = "ca-key.pem";
    /// `tls.cert_file`.
    pub const SERVER_CERT: &str = "server-cert.pem";
    /// `tls.key_file`.
    pub const SERVER_KEY: &str = "server-key.pem";
    /// `jobctl --cert` for an admin.
    pub const ADMIN_CERT: &str = "admin-client-cert.pem";
    /// `jobctl --key` for an admin.
    pub const ADMIN_KEY: &str = "admin-client-key.pem";
    /// `jobctl --cert` for a viewer.
    pub const VIEWER_CERT: &str = "viewer-client-cert.pem";
    /// `jobctl --key` for a viewer.
    pub const VIEWER_KEY: &str = "viewer-client-key.pem";
}

/// Writes a development CA, a server certificate for `server_names` (plus localhost,
/// 127.0.0.1 and ::1), and admin and viewer client certificates into `dir`; returns the
/// files written. Keys are readable by their owner only. Refuses to overwrite unless
/// `force`.
pub fn init_dir(
    dir: &Path,
    server_names: &[String],
    force: bool,
) -> Result<Vec<PathBuf>, CertError> {
    use files::*;
    let all = [
        CA_CERT,
        CA_KEY,
        SERVER_CERT,
        SERVER_KEY,
        ADMIN_CERT,
        ADMIN_KEY,
        VIEWER_CERT,
        VIEWER_KEY,
    ];
    if !force && let Some(existing) = all.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
        return Err(CertError::Exists(existing));
    }
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let ca = Authority::new("jobhost development CA")?;
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    for name in server_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let server = ca.issue_server(&names)?;
    let admin = ca.issue_client("admin", "admin")?;
    let viewer = ca.issue_client("viewer", "viewer")?;
    let mut written = Vec::new();
    for (file, content, secret) in [
        (CA_CERT, &ca.certificate().cert_pem, false),
        (CA_KEY, &ca.certificate().key_pem, true),
        (SERVER_CERT, &server.cert_pem, false),
        (SERVER_KEY, &server.key_pem, true),
        (ADMIN_CERT, &admin.cert_pem, false),
        (ADMIN_KEY, &admin.key_pem, true),
        (VIEWER_CERT, &viewer.cert_pem, false),
        (VIEWER_KEY, &viewer.key_pem, true),
    ] {
        let path = dir.join(file);
        write_file(&path, content, secret).map_err(|source| CertError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

fn write_file(path: &Path, content: &str, secret: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)?;
    file.write_all(content.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_every_file_once_and_keys_privately() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let written = init_dir(dir.path(), &["node-1.internal".into()], false).unwrap();
        assert_eq!(written.len(), 8);
        let mode = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(files::SERVER_KEY), 0o600);
        assert_eq!(mode(files::CA_CERT), 0o644);
        let err = init_dir(dir.path(), &[], false).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        init_dir(dir.path(), &[], true).unwrap();
        // The client certificate carries its role as OU.
        let pem = std::fs::read(dir.path().join(files::VIEWER_CERT)).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        let ou: Vec<_> = cert
            .subject()
            .iter_organizational_unit()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ou, ["viewer"]);
    }
}
