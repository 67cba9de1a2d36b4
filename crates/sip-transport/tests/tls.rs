//! SIP over TLS on real loopback sockets: rustls and `openssl s_client` clients, SNI,
//! certificate persistence, outbound TLS with connection reuse.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use sip_transport::{CertFiles, Outbound, TlsConfig, Transport, TransportConfig, Transports};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const DOMAIN: &str = "vc.example.test";

fn tls_config(data_dir: &Path, domain: &str) -> TransportConfig {
    let mut c = TransportConfig::new(loopback());
    c.tls = Some(TlsConfig::development(loopback(), data_dir, domain));
    c
}

fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn client(
    trust: &[CertificateDer<'static>],
    provider: CryptoProvider,
    versions: &[&'static SupportedProtocolVersion],
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for c in trust {
        roots.add(c.clone()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    connector: &TlsConnector,
    t: &Transports,
    name: ServerName<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(t.local_addr(Transport::Tls).unwrap())
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
}

fn all_versions() -> [&'static SupportedProtocolVersion; 2] {
    [&rustls::version::TLS13, &rustls::version::TLS12]
}

#[tokio::test]
async fn rustls_client_trusting_dev_ca_exchanges_sip() {
    let dir = tempfile::tempdir().unwrap();
    let (t, mut rx) = bind(tls_config(dir.path(), DOMAIN)).await;
    let ca = pem_certs(t.dev_ca_path().unwrap());
    let connector = client(&ca, ring::default_provider(), &all_versions());

    let name = ServerName::try_from("abc123.vc.example.test").unwrap();
    let mut tls = connect(&connector, &t, name).await.unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );

    // RFC 5626 ping over TLS gets a pong.
    tls.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(read_exact(&mut tls, 2).await, b"\r\n");

    let req = request("INVITE", 1, "v=0\r\n");
    tls.write_all(&req).await.unwrap();
    let got = recv(&mut rx).await;
    assert_eq!(got.transport, Transport::Tls);
    assert_eq!(&got.bytes[..], &req[..]);
    assert_eq!(got.remote, tls.get_ref().0.local_addr().unwrap());

    t.send(Outbound::reply_to(&got, Bytes::from(response(1))))
        .await
        .unwrap();
    assert_eq!(read_exact(&mut tls, response(1).len()).await, response(1));
}

#[tokio::test]
async fn tls12_ecdhe_p256_and_p384_gcm_for_pjsua2_style_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _rx) = bind(tls_config(dir.path(), DOMAIN)).await;
    let ca = pem_certs(t.dev_ca_path().unwrap());
    for (group, suite) in [
        (
            ring::kx_group::SECP256R1,
            ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            ring::kx_group::SECP384R1,
            ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
    ] {
        let provider = CryptoProvider {
            cipher_suites: vec![suite],
            kx_groups: vec![group],
            ..ring::default_provider()
        };
        let connector = client(&ca, provider, &[&rustls::version::TLS12]);
        let tls = connect(&connector, &t, ServerName::try_from(DOMAIN).unwrap())
            .await
            .unwrap();
        let session = tls.get_ref().1;
        assert_eq!(session.protocol_version(), Some(ProtocolVersion::TLSv1_2));
        assert_eq!(
            session.negotiated_cipher_suite().unwrap().suite(),
            suite.suite()
        );
        assert_eq!(
            session.negotiated_key_exchange_group().unwrap().name(),
            group.name()
        );
    }
}

/// Runs `openssl s_client` against the TLS port with extra arguments; returns (success,
/// combined output).
async fn s_client(t: &Transports, ca: &Path, extra: &[&str]) -> (bool, String) {
    let addr = t.local_addr(Transport::Tls).unwrap();
    let out = tokio::time::timeout(
        PATIENCE,
        tokio::process::Command::new("openssl")
            .arg("s_client")
            .arg("-connect")
            .arg(addr.to_string())
            .arg("-CAfile")
            .arg(ca)
            .args([
                "-servername",
                "x.vc.example.test",
                "-verify_return_error",
                "-brief",
            ])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("openssl in time")
    .expect("openssl s_client runs (Debian package openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn openssl_s_client_tls13_tls12_and_refused_tls10() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _rx) = bind(tls_config(dir.path(), DOMAIN)).await;
    let ca = t.dev_ca_path().unwrap().to_owned();

    let (ok, out) = s_client(&t, &ca, &["-tls1_3"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("Protocol version: TLSv1.3"), "{out}");
    assert!(out.contains("Verification: OK"), "{out}");

    // The development certificate is ECDSA P-256, so a TLS 1.2 client must list P-256 in
    // its supported groups (RFC 8422 §5.1.1 ties the certificate curve to that list);
    // OpenSSL, and so pjsua2, list X25519, P-256, X448, P-521 and P-384 by default.
    for groups in ["P-256", "P-384:P-256"] {
        let (ok, out) = s_client(&t, &ca, &["-tls1_2", "-groups", groups]).await;
        assert!(ok, "{out}");
        assert!(out.contains("Protocol version: TLSv1.2"), "{out}");
        assert!(out.contains("Ciphersuite: ECDHE-ECDSA-AES"), "{out}");
        assert!(out.contains("Verification: OK"), "{out}");
    }

    // TLS 1.0 (and a CBC suite) is refused; SECLEVEL=0 makes OpenSSL 3 even try.
    for version in ["-tls1", "-tls1_1"] {
        let (ok, out) = s_client(&t, &ca, &[version, "-cipher", "DEFAULT@SECLEVEL=0"]).await;
        assert!(!ok, "{version} must fail: {out}");
        assert!(!out.contains("CONNECTION ESTABLISHED"), "{out}");
        // The ClientHello reached the server, which answered with an alert.
        assert!(out.contains("alert"), "{out}");
    }

    // A TLS 1.2 client offering only CBC suites (old PBX firmware) is refused too.
    let (ok, out) = s_client(
        &t,
        &ca,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA256",
        ],
    )
    .await;
    assert!(!ok, "CBC-only must fail: {out}");
    assert!(out.contains("alert"), "{out}");
}

fn other_cert(dir: &Path, name: &str) -> (CertFiles, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let files = CertFiles {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    (files, cert.der().clone())
}

#[tokio::test]
async fn sni_selects_certificate_with_default_for_no_sni() {
    let dir = tempfile::tempdir().unwrap();
    let (files, other_der) = other_cert(dir.path(), "other.example.org");
    let mut config = tls_config(dir.path(), DOMAIN);
    config.tls.as_mut().unwrap().sni_certificates.push(files);
    let (t, _rx) = bind(config).await;
    let dev = t.dev_certificates().unwrap().clone();
    let dev_leaf = pem_certs(&dev.server_cert).remove(0);
    let mut trust = pem_certs(&dev.ca_cert);
    trust.push(other_der.clone());
    let connector = client(&trust, ring::default_provider(), &all_versions());

    let peer = |tls: &TlsStream<TcpStream>| tls.get_ref().1.peer_certificates().unwrap()[0].clone();

    let tls = connect(
        &connector,
        &t,
        ServerName::try_from("other.example.org").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(peer(&tls), other_der);

    let tls = connect(
        &connector,
        &t,
        ServerName::try_from("vc-1.vc.example.test").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(peer(&tls), dev_leaf);

    // An IP address as server name: rustls sends no SNI; the default certificate names
    // 127.0.0.1 and verifies.
    let tls = connect(&connector, &t, ServerName::try_from("127.0.0.1").unwrap())
        .await
        .unwrap();
    assert_eq!(peer(&tls), dev_leaf);

    // A name no certificate covers gets the default, which then fails verification.
    let err = connect(
        &connector,
        &t,
        ServerName::try_from("nope.example.net").unwrap(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn operator_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let (files, der) = other_cert(dir.path(), "sip.operator.example");
    let mut c = TransportConfig::new(loopback());
    c.tls = Some(TlsConfig::from_files(loopback(), &files.cert, &files.key));
    let (t, _rx) = bind(c).await;
    assert!(t.dev_ca_path().is_none());
    let connector = client(
        std::slice::from_ref(&der),
        ring::default_provider(),
        &all_versions(),
    );
    let tls = connect(
        &connector,
        &t,
        ServerName::try_from("sip.operator.example").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], der);

    // A key that does not belong to the certificate is refused at bind.
    let (wrong, _) = other_cert(dir.path(), "wrong.example");
    let mut c = TransportConfig::new(loopback());
    c.tls = Some(TlsConfig::from_files(loopback(), &files.cert, &wrong.key));
    let err = Transports::bind(c).await.unwrap_err();
    assert!(
        matches!(err, sip_transport::BindError::Certificates(_)),
        "{err}"
    );
}

#[tokio::test]
async fn certificates_persist_across_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (t1, _rx1) = bind(tls_config(dir.path(), DOMAIN)).await;
    let first = t1.dev_certificates().unwrap().clone();
    assert!(first.created_ca && first.issued_server_cert);
    assert_eq!(first.ca_cert, dir.path().join("tls/ca.pem"));
    assert_eq!(first.ca_key, dir.path().join("tls/ca.key"));
    let ca_pem = std::fs::read(&first.ca_cert).unwrap();
    let leaf_pem = std::fs::read(&first.server_cert).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [&first.ca_key, &first.server_key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
    }
    t1.shutdown();

    // Second start: same CA, same leaf.
    let (t2, _rx2) = bind(tls_config(dir.path(), DOMAIN)).await;
    let second = t2.dev_certificates().unwrap();
    assert!(!second.created_ca && !second.issued_server_cert);
    assert_eq!(std::fs::read(&second.ca_cert).unwrap(), ca_pem);
    assert_eq!(std::fs::read(&second.server_cert).unwrap(), leaf_pem);
    t2.shutdown();

    // The SIP domain changed: same CA, new leaf that names the new domain.
    let (t3, _rx3) = bind(tls_config(dir.path(), "other.example.test")).await;
    let third = t3.dev_certificates().unwrap();
    assert!(!third.created_ca && third.issued_server_cert);
    assert_eq!(std::fs::read(&third.ca_cert).unwrap(), ca_pem);
    assert_ne!(std::fs::read(&third.server_cert).unwrap(), leaf_pem);
    let connector = client(
        &pem_certs(&third.ca_cert),
        ring::default_provider(),
        &all_versions(),
    );
    connect(
        &connector,
        &t3,
        ServerName::try_from("x.other.example.test").unwrap(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn outbound_tls_connection_and_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let (a, mut a_rx) = bind(tls_config(dir.path(), DOMAIN)).await;
    let (b, mut b_rx) = bind(tls_config(dir.path(), DOMAIN)).await;
    let b_tls = b.local_addr(Transport::Tls).unwrap();

    let mut out = Outbound::to(
        Transport::Tls,
        b_tls,
        Bytes::from(request("OPTIONS", 1, "")),
    );
    out.server_name = Some("vc-9.vc.example.test".to_owned());
    let sent = a.send(out).await.unwrap();
    let req = recv(&mut b_rx).await;
    assert_eq!(req.transport, Transport::Tls);
    assert_eq!(req.remote, sent.local);

    b.send(Outbound::reply_to(&req, Bytes::from(response(1))))
        .await
        .unwrap();
    let resp = recv(&mut a_rx).await;
    assert_eq!(resp.conn, sent.conn);
    assert_eq!(resp.transport, Transport::Tls);

    // Reused by address; no server name needed for an open connection.
    let again = a
        .send(Outbound::to(
            Transport::Tls,
            b_tls,
            Bytes::from(request("OPTIONS", 2, "")),
        ))
        .await
        .unwrap();
    assert_eq!(again.conn, sent.conn);
    assert_eq!(recv(&mut b_rx).await.conn, req.conn);
    assert_eq!(a.connection_count(), 1);

    // Without a server name the certificate is verified against the IP address.
    let a_tls = a.local_addr(Transport::Tls).unwrap();
    let back = b
        .send(Outbound::to(
            Transport::Tls,
            a_tls,
            Bytes::from(request("OPTIONS", 3, "")),
        ))
        .await
        .unwrap();
    assert_ne!(back.conn, req.conn);
    assert_eq!(recv(&mut a_rx).await.remote, back.local);
}

#[tokio::test]
async fn outbound_tls_to_untrusted_server_fails() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let (a, _a_rx) = bind(tls_config(dir.path(), DOMAIN)).await;
    let (b, _b_rx) = bind(tls_config(other.path(), DOMAIN)).await;
    let err = a
        .send(Outbound::to(
            Transport::Tls,
            b.local_addr(Transport::Tls).unwrap(),
            Bytes::from(request("OPTIONS", 1, "")),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, sip_transport::SendError::TlsHandshake { .. }),
        "{err}"
    );
    assert_eq!(a.connection_count(), 0);
}

#[tokio::test]
async fn extra_names_are_in_the_dev_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = TransportConfig::new(loopback());
    c.tls = Some(TlsConfig {
        identity: sip_transport::TlsIdentity::Development {
            data_dir: dir.path().to_owned(),
            sip_domain: DOMAIN.to_owned(),
            extra_names: vec!["sip.public.example".to_owned(), "::2".to_owned()],
        },
        ..TlsConfig::development(loopback(), dir.path(), DOMAIN)
    });
    let (t, _rx) = bind(c).await;
    let connector = client(
        &pem_certs(t.dev_ca_path().unwrap()),
        ring::default_provider(),
        &all_versions(),
    );
    for name in ["sip.public.example", "localhost", "vc.example.test"] {
        connect(&connector, &t, ServerName::try_from(name).unwrap())
            .await
            .unwrap();
    }
    let leaf = std::fs::read_to_string(&t.dev_certificates().unwrap().server_cert).unwrap();
    let der = CertificateDer::from_pem_slice(leaf.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let ips: Vec<_> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::IPAddress(b) => Some(b.len()),
            _ => None,
        })
        .collect();
    // 127.0.0.1 (also the listen address), ::1 and ::2.
    assert_eq!(ips.len(), 3, "{ips:?}");
}
