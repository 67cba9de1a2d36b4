//! TLS certificates: the development CA kept in the data directory, loading operator-supplied
//! PEM files, and SNI-based certificate selection.
//!
//! The development CA exists so that SIP over TLS (RFC 3261 §26.2.1, RFC 5630) works out of
//! the box: on first start [`ensure_dev_certificates`] writes
//!
//! | file | content |
//! | --- | --- |
//! | `<data-dir>/tls/ca.pem` | self-signed CA certificate (trust this one in clients) |
//! | `<data-dir>/tls/ca.key` | CA private key, mode 0600 |
//! | `<data-dir>/tls/server.pem` | server certificate signed by the CA |
//! | `<data-dir>/tls/server.key` | server private key, mode 0600 |
//!
//! and later starts reuse them. The server certificate names `*.<sip-domain>` (one name per
//! voice connector, `<id>.<sip-domain>`), `<sip-domain>`, `localhost`, `127.0.0.1`, `::1`,
//! and the listen addresses; it is issued again when that name set changes (for example the
//! SIP domain was changed), when it expires within [`LEAF_RENEW_BEFORE`], or when it no
//! longer matches the CA or its key. Keys are ECDSA P-256 (RFC 5480) with SHA-256.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

/// A server certificate is issued again when it expires within this time.
pub const LEAF_RENEW_BEFORE: Duration = Duration::days(30);
/// Lifetime of a newly issued server certificate.
pub const LEAF_LIFETIME: Duration = Duration::days(365);
/// Lifetime of a newly created development CA.
pub const CA_LIFETIME: Duration = Duration::days(3650);

/// Errors while creating, reading or loading certificates. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Reading, writing or creating a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A PEM file holds no usable certificate or private key.
    #[error("{path}: no usable PEM {what} ({source})")]
    Pem {
        /// The file.
        path: PathBuf,
        /// `"certificate"` or `"private key"`.
        what: &'static str,
        /// What the PEM reader said.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate could not be parsed as X.509 (RFC 5280).
    #[error("{path}: not a valid X.509 certificate")]
    X509 {
        /// The file.
        path: PathBuf,
    },
    /// Only one of `ca.pem` / `ca.key` exists: refusing to replace a CA that clients may
    /// trust. Restore the missing file or delete both to create a new CA.
    #[error(
        "development CA is incomplete: {missing} is missing (restore it, or delete {present} to create a new CA)"
    )]
    IncompleteCa {
        /// The file that is missing.
        missing: PathBuf,
        /// The file that exists.
        present: PathBuf,
    },
    /// rcgen could not generate a key or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the key, or the key does not match the certificate.
    #[error("{path}: key not usable with the certificate: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The SIP domain cannot be a DNS name in a certificate.
    #[error("SIP domain {0:?} is not a valid DNS name for a certificate")]
    BadDomain(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the development server certificate must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevCertSpec {
    /// The data directory; certificates go to `<data_dir>/tls/`.
    pub data_dir: PathBuf,
    /// The SIP domain: the certificate names `<sip_domain>` and `*.<sip_domain>`.
    pub sip_domain: String,
    /// Addresses to name besides `127.0.0.1` and `::1` (the listen addresses; unspecified
    /// addresses such as `0.0.0.0` are skipped).
    pub ip_addresses: Vec<IpAddr>,
    /// Further DNS names (an operator's public host name, say).
    pub dns_names: Vec<String>,
}

/// Paths of the development CA and server certificate, and what this start created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevCertificates {
    /// `<data-dir>/tls/ca.pem`: the CA certificate clients should trust.
    pub ca_cert: PathBuf,
    /// `<data-dir>/tls/ca.key` (mode 0600).
    pub ca_key: PathBuf,
    /// `<data-dir>/tls/server.pem`: the server certificate.
    pub server_cert: PathBuf,
    /// `<data-dir>/tls/server.key` (mode 0600).
    pub server_key: PathBuf,
    /// True when this call created a new CA.
    pub created_ca: bool,
    /// True when this call issued a new server certificate.
    pub issued_server_cert: bool,
}

impl DevCertSpec {
    /// The subject alternative names the server certificate must carry, sorted.
    fn wanted_names(&self) -> Result<BTreeSet<Name>, CertError> {
        let domain = self.sip_domain.trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty()
            || domain.starts_with('.')
            || !domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(CertError::BadDomain(self.sip_domain.clone()));
        }
        let mut names = BTreeSet::new();
        names.insert(Name::Dns(format!("*.{domain}")));
        names.insert(Name::Dns(domain));
        names.insert(Name::Dns("localhost".to_owned()));
        for name in &self.dns_names {
            names.insert(Name::Dns(name.trim_end_matches('.').to_ascii_lowercase()));
        }
        names.insert(Name::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        names.insert(Name::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        for ip in &self.ip_addresses {
            if !ip.is_unspecified() {
                names.insert(Name::Ip(*ip));
            }
        }
        Ok(names)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Name {
    Dns(String),
    Ip(IpAddr),
}

/// Creates the development CA and server certificate under `<data_dir>/tls/` if needed and
/// returns their paths. `now` is the current time (a parameter so tests can move it).
///
/// Reuses what exists: the CA is never replaced while both its files are present (a
/// half-present CA is [`CertError::IncompleteCa`]); the server certificate is issued again
/// when missing, unreadable, not issued by this CA, not matching its key, naming a different
/// set of names than `spec` asks for, or expiring within [`LEAF_RENEW_BEFORE`].
pub fn ensure_dev_certificates(
    spec: &DevCertSpec,
    now: OffsetDateTime,
) -> Result<DevCertificates, CertError> {
    let wanted = spec.wanted_names()?;
    let dir = spec.data_dir.join("tls");
    create_private_dir(&dir)?;
    let mut out = DevCertificates {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        created_ca: false,
        issued_server_cert: false,
    };

    let (ca_der, ca_key) = match (out.ca_cert.exists(), out.ca_key.exists()) {
        (true, true) => {
            let der = read_cert(&out.ca_cert)?;
            let key = read_key_pair(&out.ca_key)?;
            (der, key)
        }
        (false, false) => {
            let (der, key) = create_ca(&out.ca_cert, &out.ca_key, now)?;
            out.created_ca = true;
            tracing::info!(path = %out.ca_cert.display(), "created development CA for SIP over TLS");
            (der, key)
        }
        (true, false) => {
            return Err(CertError::IncompleteCa {
                missing: out.ca_key.clone(),
                present: out.ca_cert.clone(),
            });
        }
        (false, true) => {
            return Err(CertError::IncompleteCa {
                missing: out.ca_cert.clone(),
                present: out.ca_key.clone(),
            });
        }
    };

    let reason = if out.created_ca {
        Some("new CA")
    } else {
        leaf_needs_renewal(&out, &ca_der, &wanted, now)
    };
    if let Some(reason) = reason {
        issue_leaf(&out, &ca_der, ca_key, &wanted, now)?;
        out.issued_server_cert = true;
        tracing::info!(
            path = %out.server_cert.display(),
            reason,
            "issued development server certificate"
        );
    }
    Ok(out)
}

/// Why the existing server certificate cannot be reused, `None` when it can.
fn leaf_needs_renewal(
    paths: &DevCertificates,
    ca_der: &CertificateDer<'static>,
    wanted: &BTreeSet<Name>,
    now: OffsetDateTime,
) -> Option<&'static str> {
    if !paths.server_cert.exists() || !paths.server_key.exists() {
        return Some("missing");
    }
    let Ok(leaf_der) = read_cert(&paths.server_cert) else {
        return Some("unreadable certificate");
    };
    let Ok(key) = read_key_pair(&paths.server_key) else {
        return Some("unreadable key");
    };
    let Ok((_, leaf)) = x509_parser::parse_x509_certificate(&leaf_der) else {
        return Some("unparsable certificate");
    };
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca_der) else {
        return Some("unparsable CA");
    };
    if leaf.issuer().as_raw() != ca.subject().as_raw() {
        return Some("issued by another CA");
    }
    if leaf.public_key().raw != key.subject_public_key_info().as_slice() {
        return Some("key does not match");
    }
    if leaf.validity().not_after.to_datetime() - now < LEAF_RENEW_BEFORE {
        return Some("expires soon");
    }
    if &cert_names(&leaf) != wanted {
        return Some("names changed");
    }
    None
}

fn cert_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> BTreeSet<Name> {
    use x509_parser::extensions::GeneralName;
    let mut names = BTreeSet::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => {
                    names.insert(Name::Dns(dns.to_ascii_lowercase()));
                }
                GeneralName::IPAddress(bytes) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                        names.insert(Name::Ip(IpAddr::from(v4)));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                        names.insert(Name::Ip(IpAddr::from(v6)));
                    }
                }
                _ => {}
            }
        }
    }
    names
}

fn create_ca(
    cert_path: &Path,
    key_path: &Path,
    now: OffsetDateTime,
) -> Result<(CertificateDer<'static>, KeyPair), CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Voice Connector");
    dn.push(
        DnType::CommonName,
        format!("Voice Connector Development CA {}", now.unix_timestamp()),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::days(1);
    params.not_after = now + CA_LIFETIME;
    let cert = params.self_signed(&key)?;
    write_file(key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(cert_path, cert.pem().as_bytes(), false)?;
    Ok((cert.der().clone(), key))
}

fn issue_leaf(
    paths: &DevCertificates,
    ca_der: &CertificateDer<'static>,
    ca_key: KeyPair,
    names: &BTreeSet<Name>,
    now: OffsetDateTime,
) -> Result<(), CertError> {
    let issuer = Issuer::from_ca_cert_der(ca_der, ca_key).map_err(|_| CertError::X509 {
        path: paths.ca_cert.clone(),
    })?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Voice Connector");
    let common = names
        .iter()
        .find_map(|n| match n {
            Name::Dns(d) if !d.starts_with('*') && d != "localhost" => Some(d.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "localhost".to_owned());
    dn.push(DnType::CommonName, common);
    params.distinguished_name = dn;
    params.subject_alt_names = names
        .iter()
        .map(|n| match n {
            Name::Dns(d) => Ok(SanType::DnsName(d.clone().try_into()?)),
            Name::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        })
        .collect::<Result<Vec<_>, rcgen::Error>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::days(1);
    params.not_after = now + LEAF_LIFETIME;
    let cert = params.signed_by(&key, &issuer)?;
    write_file(&paths.server_key, key.serialize_pem().as_bytes(), true)?;
    write_file(&paths.server_cert, cert.pem().as_bytes(), false)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), CertError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err(dir))
}

/// Writes `data` to a temporary file next to `path` and renames it into place, so a crash
/// never leaves half a key. Private files are created with mode 0600.
fn write_file(path: &Path, data: &[u8], private: bool) -> Result<(), CertError> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(io_err(&tmp))?;
    file.write_all(data).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, CertError> {
    read_chain(path)?
        .into_iter()
        .next()
        .ok_or_else(|| CertError::Pem {
            path: path.to_owned(),
            what: "certificate",
            source: rustls::pki_types::pem::Error::NoItemsFound,
        })
}

/// Reads every certificate of a PEM file (a chain, end-entity first; or a CA bundle).
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let data = fs::read(path).map_err(io_err(path))?;
    let chain = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CertError::Pem {
            path: path.to_owned(),
            what: "certificate",
            source,
        })?;
    if chain.is_empty() {
        return Err(CertError::Pem {
            path: path.to_owned(),
            what: "certificate",
            source: rustls::pki_types::pem::Error::NoItemsFound,
        });
    }
    Ok(chain)
}

fn read_key_pair(path: &Path) -> Result<KeyPair, CertError> {
    let pem = fs::read_to_string(path).map_err(io_err(path))?;
    Ok(KeyPair::from_pem(&pem)?)
}

/// Loads a certificate chain and its private key (PKCS#8, PKCS#1 or SEC1 PEM) for rustls,
/// checking that the key matches the certificate.
pub fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertError> {
    let chain = read_chain(cert_path)?;
    let data = fs::read(key_path).map_err(io_err(key_path))?;
    let key = PrivateKeyDer::from_pem_slice(&data).map_err(|source| CertError::Pem {
        path: key_path.to_owned(),
        what: "private key",
        source,
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| CertError::Key {
        path: key_path.to_owned(),
        source,
    })
}

/// Picks the server certificate from the TLS `server_name` extension (SNI, RFC 6066 §3).
///
/// Each certificate answers for the DNS names in its subject alternative names: an exact
/// name wins over a wildcard, and a wildcard `*.example.com` covers exactly one label
/// (RFC 6125 §6.4.3). Clients that send no SNI, an IP address, or a name no certificate
/// covers get the default certificate.
pub struct SniResolver {
    exact: Vec<(String, Arc<CertifiedKey>)>,
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field(
                "exact",
                &self.exact.iter().map(|e| &e.0).collect::<Vec<_>>(),
            )
            .field(
                "wildcard",
                &self.wildcard.iter().map(|e| &e.0).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl SniResolver {
    /// A resolver answering with `default` unless one of `others` (or `default` itself)
    /// names the requested host. Earlier certificates win when two name the same host.
    pub fn new(default: Arc<CertifiedKey>, others: Vec<Arc<CertifiedKey>>) -> Self {
        let mut exact = Vec::new();
        let mut wildcard = Vec::new();
        for key in others.iter().chain(std::iter::once(&default)) {
            let Some(der) = key.cert.first() else {
                continue;
            };
            let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
                continue;
            };
            for name in cert_names(&cert) {
                if let Name::Dns(dns) = name {
                    match dns.strip_prefix("*.") {
                        Some(suffix) => wildcard.push((suffix.to_owned(), Arc::clone(key))),
                        None => exact.push((dns, Arc::clone(key))),
                    }
                }
            }
        }
        Self {
            exact,
            wildcard,
            default,
        }
    }

    /// The certificate for a requested server name (`None`: no SNI).
    pub fn select(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return Arc::clone(&self.default);
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some((_, key)) = self.exact.iter().find(|(n, _)| *n == name) {
            return Arc::clone(key);
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some((_, key)) = self.wildcard.iter().find(|(s, _)| s == parent)
        {
            return Arc::clone(key);
        }
        Arc::clone(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.select(client_hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, domain: &str) -> DevCertSpec {
        DevCertSpec {
            data_dir: dir.to_owned(),
            sip_domain: domain.to_owned(),
            ip_addresses: vec!["0.0.0.0".parse().unwrap(), "192.0.2.7".parse().unwrap()],
            dns_names: vec![],
        }
    }

    #[test]
    fn names_include_domain_wildcard_and_addresses() {
        let names = spec(Path::new("/x"), "Example.COM.")
            .wanted_names()
            .unwrap();
        let want: BTreeSet<Name> = [
            Name::Dns("*.example.com".into()),
            Name::Dns("example.com".into()),
            Name::Dns("localhost".into()),
            Name::Ip("127.0.0.1".parse().unwrap()),
            Name::Ip("::1".parse().unwrap()),
            Name::Ip("192.0.2.7".parse().unwrap()),
        ]
        .into_iter()
        .collect();
        assert_eq!(names, want);
        assert!(matches!(
            spec(Path::new("/x"), "bad domain").wanted_names(),
            Err(CertError::BadDomain(_))
        ));
    }

    #[test]
    fn renewal_rules() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let first = ensure_dev_certificates(&spec(dir.path(), "a.test"), now).unwrap();
        assert!(first.created_ca && first.issued_server_cert);

        let again = ensure_dev_certificates(&spec(dir.path(), "a.test"), now).unwrap();
        assert!(!again.created_ca && !again.issued_server_cert);

        let changed = ensure_dev_certificates(&spec(dir.path(), "b.test"), now).unwrap();
        assert!(!changed.created_ca && changed.issued_server_cert);

        let later = now + LEAF_LIFETIME - LEAF_RENEW_BEFORE + Duration::days(1);
        let renewed = ensure_dev_certificates(&spec(dir.path(), "b.test"), later).unwrap();
        assert!(!renewed.created_ca && renewed.issued_server_cert);

        fs::remove_file(&first.ca_key).unwrap();
        assert!(matches!(
            ensure_dev_certificates(&spec(dir.path(), "b.test"), later),
            Err(CertError::IncompleteCa { .. })
        ));
    }
}
