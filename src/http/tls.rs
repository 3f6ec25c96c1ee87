//! TLS for a listener: a PEM certificate chain and key, served with rustls (ring; no OpenSSL),
//! TLS 1.2 and 1.3 only, and swapped in place when the files change or on SIGHUP.
//!
//! Why a resolver rather than a fixed `ServerConfig`: rustls asks the resolver for the certificate
//! on every handshake, so replacing what it holds changes what new connections see while sockets
//! already open keep the session they negotiated. A renewal (certbot, cert-manager) therefore
//! needs no restart and drops nobody.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::ring::{default_provider, sign::any_supported_type};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{setting} {path}: {reason}")]
    File {
        setting: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{listener}.tls_key does not belong to {listener}.tls_cert ({reason})")]
    Mismatch { listener: String, reason: String },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// One listener's certificate files and what was last loaded from them.
pub struct Certificates {
    listener: &'static str,
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// What the files held when last looked at, so a check parses, and says something, only
    /// when that changed. Held while the files are read, so a signal and the timed check never
    /// put an older pair back over a newer one.
    seen: std::sync::Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    cert: Vec<u8>,
    key: Vec<u8>,
    /// The last reason a reload failed, so a renewal that stays broken is reported once.
    failure: Option<String>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("listener", &self.listener)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Loads `cert_path` / `key_path` for `listener` (`http` or `admin`, for messages).
    pub fn load(
        listener: &'static str,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Arc<Certificates>, TlsError> {
        let (cert, key) = read_pair(listener, cert_path, key_path)?;
        let certified = parse(listener, cert_path, key_path, &cert, &key)?;
        Ok(Arc::new(Certificates {
            listener,
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: ArcSwap::from_pointee(certified),
            seen: std::sync::Mutex::new(Seen {
                cert,
                key,
                failure: None,
            }),
        }))
    }

    /// Reads the files again and serves them from the next handshake on if they changed and
    /// parse. A pair that does not (a renewal half-written, a key that does not match) keeps the
    /// old certificate in service. Answers whether a new certificate is in service, and the
    /// reason it is not when that reason is new (`None` for one already reported).
    fn reload(&self) -> (bool, Option<TlsError>) {
        let Ok(mut seen) = self.seen.lock() else {
            return (
                false,
                Some(TlsError::Setup("certificate state poisoned".into())),
            );
        };
        let outcome =
            read_pair(self.listener, &self.cert_path, &self.key_path).and_then(|(cert, key)| {
                if seen.cert == cert && seen.key == key {
                    return Ok(false);
                }
                let parsed = parse(self.listener, &self.cert_path, &self.key_path, &cert, &key);
                seen.cert = cert;
                seen.key = key;
                self.current.store(Arc::new(parsed?));
                Ok(true)
            });
        match outcome {
            Ok(swapped) => {
                seen.failure = None;
                (swapped, None)
            }
            Err(e) => {
                let why = e.to_string();
                let new = seen.failure.as_deref() != Some(why.as_str());
                seen.failure = Some(why);
                (false, new.then_some(e))
            }
        }
    }

    /// `reload`, with the outcome in the log (for the signal handler and the file check).
    pub fn reload_logged(&self) {
        match self.reload() {
            (true, _) => {
                tracing::info!(listener = self.listener, cert = %self.cert_path.display(), "TLS certificate reloaded")
            }
            (false, Some(e)) => {
                tracing::warn!(listener = self.listener, error = %e, "TLS certificate not reloaded; the previous one stays in service")
            }
            (false, None) => tracing::debug!(listener = self.listener, "TLS certificate unchanged"),
        }
    }

    /// The acceptor for this listener's connections.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        // Only HTTP/1.1 is served (WebSocket upgrades are HTTP/1.1).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

#[derive(Debug)]
struct Resolver(Arc<Certificates>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

fn read_pair(
    listener: &str,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |setting: &str, path: &Path| {
        std::fs::read(path).map_err(|e| TlsError::File {
            setting: format!("{listener}.{setting}"),
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    Ok((read("tls_cert", cert_path)?, read("tls_key", key_path)?))
}

fn parse(
    listener: &str,
    cert_path: &Path,
    key_path: &Path,
    cert: &[u8],
    key: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let file = |setting: &str, path: &Path, reason: String| TlsError::File {
        setting: format!("{listener}.{setting}"),
        path: path.to_path_buf(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|e| file("tls_cert", cert_path, format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(file(
            "tls_cert",
            cert_path,
            "holds no PEM certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| file("tls_key", key_path, format!("not a PEM private key: {e}")))?;
    let signer = any_supported_type(&key)
        .map_err(|e| file("tls_key", key_path, format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| TlsError::Mismatch {
        listener: listener.to_string(),
        reason: e.to_string(),
    })?;
    Ok(certified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    #[test]
    fn a_reload_swaps_only_a_good_changed_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_a, key_a) = pair("a.test");
        let (c, k) = write(dir.path(), &cert_a, &key_a);
        let certs = Certificates::load("http", &c, &k).unwrap();
        let first = certs.current.load_full();
        assert!(
            matches!(certs.reload(), (false, None)),
            "unchanged files are not reloaded"
        );

        let (cert_b, key_b) = pair("b.test");
        // A renewal half-way: the new certificate with the old key.
        std::fs::write(&c, &cert_b).unwrap();
        let (swapped, err) = certs.reload();
        assert!(!swapped && matches!(err, Some(TlsError::Mismatch { .. })));
        assert!(
            Arc::ptr_eq(&first, &certs.current.load_full()),
            "old one stays"
        );
        assert!(matches!(certs.reload(), (false, None)), "reported once");
        // The key file gone for a moment: reported once too.
        std::fs::remove_file(&k).unwrap();
        assert!(matches!(
            certs.reload(),
            (false, Some(TlsError::File { .. }))
        ));
        assert!(matches!(certs.reload(), (false, None)));

        std::fs::write(&k, &key_b).unwrap();
        assert!(certs.reload().0);
        assert!(!Arc::ptr_eq(&first, &certs.current.load_full()));
    }

    #[test]
    fn bad_files_name_the_setting_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("a.test");
        let missing = Certificates::load("admin", &dir.path().join("nope.pem"), Path::new("/x"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("admin.tls_cert ") && missing.contains("nope.pem"),
            "{missing}"
        );
        let (c, k) = write(dir.path(), "not a certificate", &key);
        let e = Certificates::load("http", &c, &k).unwrap_err().to_string();
        assert!(e.starts_with("http.tls_cert"), "{e}");
        let (c, k) = write(dir.path(), &cert, "garbage");
        let e = Certificates::load("http", &c, &k).unwrap_err().to_string();
        assert!(e.starts_with("http.tls_key"), "{e}");
        // A key flattened onto one line (as environment variables tend to): the error must
        // not quote it.
        let flat = key.replace('\n', " ");
        let body: String = key.lines().nth(1).unwrap().to_string();
        let (c, k) = write(dir.path(), &cert, &flat);
        let e = Certificates::load("http", &c, &k).unwrap_err().to_string();
        assert!(
            e.starts_with("http.tls_key") && !e.contains(&body[..20]),
            "{e}"
        );
    }
}
