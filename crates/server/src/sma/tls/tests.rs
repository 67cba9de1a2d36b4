use std::path::Path;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;

#[test]
fn origins() {
    let (o, rest) = Origin::parse("https://Lambda.Example:8443/hooks/ivr?x=1").expect("valid");
    assert_eq!(
        o,
        Origin {
            connect: "Lambda.Example:8443".into(),
            authority: "Lambda.Example:8443".into(),
            tls_name: Some("lambda.example".into()),
        }
    );
    assert_eq!(rest, "/hooks/ivr?x=1");
    let (o, rest) = Origin::parse("https://s3.example.com").expect("valid");
    assert_eq!((o.connect.as_str(), rest), ("s3.example.com:443", ""));
    let (o, _) = Origin::parse("http://127.0.0.1:9000/").expect("valid");
    assert_eq!((o.connect.as_str(), o.tls_name), ("127.0.0.1:9000", None));
    let (o, _) = Origin::parse("https://[::1]/x").expect("valid");
    assert_eq!(o.connect, "[::1]:443");
    assert_eq!(o.tls_name.as_deref(), Some("::1"));
    for bad in [
        "ftp://x",
        "https://",
        "https://:443",
        "https://u:p@x/",
        "https://x:0",
        "https://x:99999",
        "x",
    ] {
        assert!(Origin::parse(bad).is_err(), "{bad}");
    }
}

fn wrapped(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[test]
fn failures_read_plainly() {
    let e = TlsFailure::of(
        "hook.example",
        &wrapped(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        )),
    );
    assert!(e.is_certificate());
    assert!(
        e.to_string()
            .starts_with("TLS: certificate not trusted: the certificate of hook.example"),
        "{e}"
    );
    let e = TlsFailure::of(
        "hook.example",
        &wrapped(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("hook.example").expect("name"),
                presented: vec![
                    "DnsName(\"other.example\")".into(),
                    "IpAddress(192.0.2.1)".into(),
                ],
            },
        )),
    );
    assert_eq!(
        e.to_string(),
        "TLS: certificate name mismatch: the certificate of hook.example names \
         other.example, 192.0.2.1"
    );
    let e = TlsFailure::of(
        "h",
        &wrapped(rustls::Error::InvalidCertificate(CertificateError::Expired)),
    );
    assert_eq!(e.to_string(), "TLS: certificate of h invalid: expired");
    let e = TlsFailure::of("h", &io::Error::from(io::ErrorKind::UnexpectedEof));
    assert!(!e.is_certificate());
    assert_eq!(
        e.to_string(),
        "TLS handshake with h failed: the server closed the connection"
    );
}

/// A development CA and a server certificate for localhost and 127.0.0.1 in `dir`.
pub(crate) fn dev_certs(dir: &Path) -> sip_transport::DevCertificates {
    sip_transport::certs::ensure_dev_certificates(
        &sip_transport::DevCertSpec {
            data_dir: dir.to_path_buf(),
            sip_domain: "vc.test".into(),
            ip_addresses: vec![],
            dns_names: vec![],
        },
        time::OffsetDateTime::now_utc(),
    )
    .expect("dev certificates")
}

/// A TLS server on 127.0.0.1 answering `hi` on each of up to 8 connections; its port and
/// the count of TCP connections it accepted.
pub(crate) async fn tls_server(
    certs: &sip_transport::DevCertificates,
) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let chain: Vec<CertificateDer<'static>> =
        sip_transport::certs::read_chain(&certs.server_cert).expect("chain");
    let key = PrivateKeyDer::from_pem_file(&certs.server_key).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Ok(mut s) = acceptor.accept(tcp).await {
                let _ = s.write_all(b"hi").await;
                let _ = s.shutdown().await;
            }
        }
    });
    (port, accepted)
}

fn origin(port: u16, name: &str) -> Origin {
    Origin {
        connect: format!("127.0.0.1:{port}"),
        authority: format!("127.0.0.1:{port}"),
        tls_name: Some(name.into()),
    }
}

#[tokio::test]
async fn handshakes_verify_the_chain_and_the_name() {
    let ours = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    let certs = dev_certs(ours.path());
    let foreign = dev_certs(other.path());
    let (port, _) = tls_server(&certs).await;

    let trusting = TlsClient::new(Some(&certs.ca_cert)).expect("client");
    assert!(trusting.trust.contains("ca.pem"), "{}", trusting.trust);
    for name in ["127.0.0.1", "localhost"] {
        let mut s = trusting.open(&origin(port, name)).await.expect(name);
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"hi");
    }
    let e = trusting
        .open(&origin(port, "hook.elsewhere.example"))
        .await
        .err()
        .expect("name mismatch");
    let ConnectError::Tls(f) = &e else {
        panic!("{e}")
    };
    assert!(matches!(f, TlsFailure::NameMismatch { .. }), "{f}");
    let text = f.to_string();
    assert!(
        text.starts_with(
            "TLS: certificate name mismatch: the certificate of hook.elsewhere.example names "
        ) && text.contains("localhost")
            && !text.contains("DnsName"),
        "{text}"
    );

    let stranger = TlsClient::new(Some(&foreign.ca_cert)).expect("client");
    let e = stranger
        .open(&origin(port, "127.0.0.1"))
        .await
        .err()
        .expect("untrusted");
    assert!(
        e.to_string().starts_with(
            "TLS: certificate not trusted: the certificate of 127.0.0.1 is not signed"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_plain_http_server_is_named_as_such() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        if let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 512];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let client = TlsClient::with_roots(RootCertStore::empty(), "none".into());
    let e = client
        .open(&origin(port, "localhost"))
        .await
        .err()
        .expect("not TLS");
    assert!(e.to_string().contains("did not answer in TLS"), "{e}");
}

#[test]
fn a_ca_file_that_is_not_pem_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("ca.pem");
    std::fs::write(&f, "not a certificate").expect("write");
    let e = TlsClient::new(Some(&f)).expect_err("refused").to_string();
    assert!(e.starts_with("--sma-ca-file: "), "{e}");
    let e = TlsClient::new(Some(&dir.path().join("missing.pem")))
        .expect_err("refused")
        .to_string();
    assert!(e.contains("missing.pem"), "{e}");
}
