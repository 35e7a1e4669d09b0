//! Files that change while the server runs: the serving certificate and key given by
//! `--tls-cert-file`/`--tls-private-key-file` (cert-manager rotates the mounted Secret) and CA
//! bundles given by `--client-ca-file`/`--requestheader-client-ca-file`.
//!
//! [`watch_files`] polls a set of files and reports their contents whenever any of them changes.
//! It compares contents rather than modification times, so a kubelet's atomic `..data` symlink
//! swap, a coarse-grained mtime or a file replaced with identical bytes all behave. A change is
//! reported only when every file could be read; a half-written pair (new certificate, old key) is
//! refused by [`ServingCertificate::replace_pem`] and picked up on the poll after the second
//! file lands.
//!
//! [`ServingCertificate`] is the rustls certificate resolver: each new handshake presents the
//! certificate in effect at that moment; established connections keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often [`watch_files`] looks at the files by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Errors loading a serving certificate.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The PEM text did not parse.
    #[error("{what}: invalid PEM: {source}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// The parse error.
        #[source]
        source: std::io::Error,
    },
    /// The PEM text holds no certificate or no key.
    #[error("{0}: no PEM item found")]
    Empty(&'static str),
    /// rustls refused the key, or the key does not match the certificate.
    #[error("serving certificate: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The serving certificate, replaceable while the server runs.
#[derive(Debug)]
pub struct ServingCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServingCertificate {
    /// A certificate from PEM text: a chain (leaf first) and its private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<Self>, ReloadError> {
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(certified_key(cert_pem, key_pem)?)),
        }))
    }

    /// A certificate read from files.
    pub fn from_files(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, ReloadError> {
        Self::from_pem(&read_file(cert_path)?, &read_file(key_path)?)
    }

    /// Replaces the certificate. On error (a key that does not match, a truncated file) the
    /// previous certificate stays in effect.
    pub fn replace_pem(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), ReloadError> {
        let key = Arc::new(certified_key(cert_pem, key_pem)?);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        Ok(())
    }

    /// The leaf certificate in effect.
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.current().cert[0].clone()
    }

    /// Polls `cert_path` and `key_path` every `interval` until `shutdown`, replacing the
    /// certificate when they change.
    pub fn watch(
        self: &Arc<Self>,
        cert_path: PathBuf,
        key_path: PathBuf,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let this = self.clone();
        watch_files(
            vec![cert_path, key_path],
            interval,
            shutdown,
            move |contents| match this.replace_pem(&contents[0], &contents[1]) {
                Ok(()) => tracing::info!("serving certificate reloaded"),
                Err(e) => {
                    tracing::warn!(error = %e, "serving certificate files changed but do not load; keeping the previous certificate")
                }
            },
        )
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for ServingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, ReloadError> {
    let chain = rustls_pemfile::certs(&mut &*cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ReloadError::Pem {
            what: "serving certificate",
            source,
        })?;
    if chain.is_empty() {
        return Err(ReloadError::Empty("serving certificate"));
    }
    let key = rustls_pemfile::private_key(&mut &*key_pem)
        .map_err(|source| ReloadError::Pem {
            what: "serving key",
            source,
        })?
        .ok_or(ReloadError::Empty("serving key"))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)?;
    // `from_der` lets an unknown consistency pass; ring keys always expose their public key,
    // so insist on a definite match.
    certified.keys_match()?;
    Ok(certified)
}

fn read_file(path: &Path) -> Result<Vec<u8>, ReloadError> {
    std::fs::read(path).map_err(|source| ReloadError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Polls `paths` every `interval` until `shutdown` and calls `on_change` with the contents of
/// all of them (in order) whenever any differs from the last time all could be read. The
/// contents at the time of the call are the baseline: `on_change` is not called for them.
pub fn watch_files<F>(
    paths: Vec<PathBuf>,
    interval: Duration,
    shutdown: CancellationToken,
    mut on_change: F,
) -> JoinHandle<()>
where
    F: FnMut(&[Vec<u8>]) + Send + 'static,
{
    let mut last = read_all(&paths).ok();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match read_all(&paths) {
                Ok(contents) if last.as_ref() != Some(&contents) => {
                    on_change(&contents);
                    last = Some(contents);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "watched file unreadable; retrying"),
            }
        }
    })
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, ReloadError> {
    paths.iter().map(|p| read_file(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn pair(name: &str) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn refuses_mismatched_or_empty_inputs_and_keeps_the_previous_certificate() {
        let (cert_a, key_a) = pair("a");
        let (cert_b, key_b) = pair("b");
        let serving = ServingCertificate::from_pem(cert_a.as_bytes(), key_a.as_bytes()).expect("a loads");
        let leaf_a = serving.leaf();
        assert!(matches!(
            serving.replace_pem(cert_b.as_bytes(), key_a.as_bytes()),
            Err(ReloadError::Rustls(_))
        ));
        assert!(matches!(
            serving.replace_pem(b"", key_b.as_bytes()),
            Err(ReloadError::Empty("serving certificate"))
        ));
        assert!(matches!(
            serving.replace_pem(cert_b.as_bytes(), b""),
            Err(ReloadError::Empty("serving key"))
        ));
        assert_eq!(serving.leaf(), leaf_a);
        serving
            .replace_pem(cert_b.as_bytes(), key_b.as_bytes())
            .expect("b loads");
        assert_ne!(serving.leaf(), leaf_a);
    }

    #[tokio::test]
    async fn watch_files_reports_changes_once_all_files_are_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "1").expect("write");
        std::fs::write(&b, "1").expect("write");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let task = watch_files(
            vec![a.clone(), b.clone()],
            Duration::from_millis(20),
            shutdown.clone(),
            move |c| {
                let _ = tx.send(c.to_vec());
            },
        );
        std::fs::remove_file(&b).expect("remove");
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(&a, "2").expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "nothing while a file is missing");
        std::fs::write(&b, "2").expect("write");
        let change = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a change is reported")
            .expect("channel open");
        assert_eq!(change, [b"2".to_vec(), b"2".to_vec()]);
        std::fs::write(&b, "2").expect("same bytes");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "identical contents are no change");
        shutdown.cancel();
        task.await.expect("watcher ends on shutdown");
    }
}
