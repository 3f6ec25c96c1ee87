//! Native TLS: HTTPS and `wss://` on both listeners from a PEM pair made here, a live certificate
//! swap (SIGHUP, and the file check) that keeps open sockets, and exit 64 for bad certificates.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::harness::{client_config, roots, Server, Ws};

/// A test CA, and leaf certificates for 127.0.0.1 it signs.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// (certificate PEM, key PEM, certificate DER) for 127.0.0.1 and localhost.
    fn leaf(&self) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

fn write_pair(dir: &Path, cert: &str, key: &str) {
    // Written beside and renamed over, as a renewal tool does: a reload never sees half a file.
    for (name, text) in [("cert.pem", cert), ("key.pem", key)] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

fn tls_env(dir: &Path) -> Vec<(String, String)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    vec![
        ("SWITCHBOARD_HTTP__TLS_CERT".into(), cert.clone()),
        ("SWITCHBOARD_HTTP__TLS_KEY".into(), key.clone()),
        ("SWITCHBOARD_ADMIN__TLS_CERT".into(), cert),
        ("SWITCHBOARD_ADMIN__TLS_KEY".into(), key),
    ]
}

/// A server on TLS with a fresh leaf from `ca` written to `dir`, the file check every
/// `check_secs` (None: the default). Answers the server and the leaf's DER.
async fn tls_server(dir: &Path, ca: &Ca, check_secs: Option<&str>) -> (Server, Vec<u8>) {
    let (cert, key, der) = ca.leaf();
    write_pair(dir, &cert, &key);
    let mut env = tls_env(dir);
    if let Some(secs) = check_secs {
        env.push((
            "SWITCHBOARD_HTTP__TLS_RELOAD_CHECK_SECS".into(),
            secs.into(),
        ));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    (Server::start_tls(&env, &ca.pem()).await, der)
}

/// Whether new connections to every one of `addrs` are served `der` within about `secs`.
async fn serves_within(addrs: &[&str], root_pem: &str, der: &[u8], secs: u64) -> bool {
    for _ in 0..secs * 10 {
        let mut all = true;
        for addr in addrs {
            all &= served_certificate(addr, root_pem).await == der;
        }
        if all {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The certificate a new TLS connection to `addr` is served, trusting `root_pem`.
async fn served_certificate(addr: &str, root_pem: &str) -> Vec<u8> {
    let connector = TlsConnector::from(Arc::new(client_config(root_pem)));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let (_, session) = tls.get_ref();
    session.peer_certificates().expect("a certificate")[0].to_vec()
}

/// Sends one message on `ws` and waits for its ack: the socket is alive and serving.
async fn round_trip(ws: &mut Ws, conversation: &str, tag: &str) {
    ws.send(
        json!({"type": "chat_message", "conversation_id": conversation, "text": tag, "ref": tag}),
    )
    .await;
    let ack = ws.next_of("ack").await;
    assert_eq!(ack["message"]["text"], tag, "{ack}");
}

#[tokio::test]
async fn https_and_wss_serve_the_public_and_admin_apis() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (server, _) = tls_server(dir.path(), &ca, None).await;

    // Over HTTPS: admin (service), dev token, conversation; then a socket over wss://.
    let (customer, provider, conversation) = server.conversation("tls").await;
    let mut p = Ws::connect(&server, &provider).await;
    let mut c = Ws::connect(&server, &customer).await;
    round_trip(&mut c, &conversation, "over-wss").await;
    assert_eq!(
        p.next_of("chat_message").await["message"]["text"],
        "over-wss"
    );

    // Plain HTTP on a TLS listener is not served.
    let plain = reqwest::get(format!("http://{}/healthz", server.http)).await;
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP must not be answered as usual on a TLS listener"
    );
    // TLS 1.2 is accepted (1.3 is what the clients above negotiated).
    let v12 = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots(&ca.pem()))
    .with_no_client_auth();
    let tcp = TcpStream::connect(&server.admin).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = TlsConnector::from(Arc::new(v12))
        .connect(name, tcp)
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn sighup_swaps_the_certificate_and_open_sockets_stay() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    // No file check: only the signal can reload.
    let (server, der_a) = tls_server(dir.path(), &ca, Some("0")).await;
    let (customer, _, conversation) = server.conversation("hup").await;
    let mut c = Ws::connect(&server, &customer).await;
    assert_eq!(served_certificate(&server.http, &ca.pem()).await, der_a);

    let (cert_b, key_b, der_b) = ca.leaf();
    write_pair(dir.path(), &cert_b, &key_b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        served_certificate(&server.http, &ca.pem()).await,
        der_a,
        "nothing reloads before the signal"
    );
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        serves_within(&[&server.http, &server.admin], &ca.pem(), &der_b, 5).await,
        "both listeners serve the new certificate after SIGHUP"
    );
    // The socket opened under the old certificate carries on.
    round_trip(&mut c, &conversation, "after-hup").await;
    // A new socket gets the new certificate and works too.
    let mut again = Ws::connect(&server, &customer).await;
    round_trip(&mut again, &conversation, "new-socket").await;
}

#[tokio::test]
async fn a_changed_file_is_picked_up_without_a_signal_and_a_bad_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (server, der_a) = tls_server(dir.path(), &ca, Some("1")).await;
    let key_a = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();

    // A key that does not belong to the certificate: the old pair stays in service.
    let (cert_b, key_b, der_b) = ca.leaf();
    write_pair(dir.path(), &cert_b, &key_a);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(served_certificate(&server.http, &ca.pem()).await, der_a);

    write_pair(dir.path(), &cert_b, &key_b);
    assert!(
        serves_within(&[&server.http], &ca.pem(), &der_b, 6).await,
        "the renewed pair is served within the check interval"
    );
}

/// Runs `serve` with `env` and answers (exit code, stderr).
fn serve_fails(env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.arg("serve")
        .env("SWITCHBOARD_AUTH__JWT_SECRET", crate::harness::SECRET)
        .env("SWITCHBOARD_HTTP__ADDR", "127.0.0.1:0")
        .env("SWITCHBOARD_ADMIN__ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "off");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_bad_or_missing_certificate_is_one_line_and_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let ca = Ca::new("test CA");
    let (cert, key, _) = ca.leaf();
    let (_, other_key, _) = ca.leaf();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    std::fs::write(dir.path().join("other.pem"), &other_key).unwrap();
    std::fs::write(dir.path().join("junk.pem"), "not PEM at all").unwrap();
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![
                ("SWITCHBOARD_HTTP__TLS_CERT", path("missing.pem")),
                ("SWITCHBOARD_HTTP__TLS_KEY", path("key.pem")),
            ],
            "http.tls_cert",
        ),
        (
            vec![
                ("SWITCHBOARD_ADMIN__TLS_CERT", path("cert.pem")),
                ("SWITCHBOARD_ADMIN__TLS_KEY", path("junk.pem")),
            ],
            "admin.tls_key",
        ),
        (
            vec![
                ("SWITCHBOARD_HTTP__TLS_CERT", path("cert.pem")),
                ("SWITCHBOARD_HTTP__TLS_KEY", path("other.pem")),
            ],
            "does not belong",
        ),
        (
            vec![("SWITCHBOARD_HTTP__TLS_CERT", path("cert.pem"))],
            "go together",
        ),
    ];
    for (mut env, says) in cases {
        env.push(("SWITCHBOARD_STORE__PATH", store.clone()));
        let (code, err) = serve_fails(&env);
        assert_eq!(code, Some(64), "{env:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
        assert!(err.contains(says), "{env:?}: expected {says:?} in {err}");
    }
    assert!(
        !dir.path().join("store").exists(),
        "a bad certificate is reported before the store is created"
    );
}
