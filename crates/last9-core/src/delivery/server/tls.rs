//! TLS for the metrics server: a rustls configuration read from PEM files, with optional
//! client certificates.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::{self, pki_types};
use tokio_rustls::TlsAcceptor;

/// A TLS server configuration read from PEM files.
#[derive(Clone)]
pub struct Tls {
    pub(super) acceptor: TlsAcceptor,
}

/// TLS files that cannot serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

impl Tls {
    /// Reads the certificate chain and key (PEM) and, with `client_ca_file`, requires every client
    /// to present a certificate signed by one of its CAs.
    ///
    /// `setting` prefixes error messages so they name what the user set (`LAST9_METRICS` gives
    /// `LAST9_METRICS_TLS_CERT_FILE`, ...).
    pub fn from_files(
        cert_file: &Path,
        key_file: &Path,
        client_ca_file: Option<&Path>,
        setting: &str,
    ) -> Result<Tls, TlsError> {
        use pki_types::pem::PemObject;
        use pki_types::{CertificateDer, PrivateKeyDer};

        let read = |path: &Path, name: &str| {
            std::fs::read(path)
                .map_err(|e| TlsError(format!("{setting}_{name}: cannot read {}: {e}", path.display())))
        };
        let certs = |path: &Path, name: &str| -> Result<Vec<CertificateDer<'static>>, TlsError> {
            let pem = read(path, name)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError(format!("{setting}_{name}: bad PEM in {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(TlsError(format!(
                    "{setting}_{name}: no certificate in {}",
                    path.display()
                )));
            }
            Ok(certs)
        };

        let chain = certs(cert_file, "TLS_CERT_FILE")?;
        let key = PrivateKeyDer::from_pem_slice(&read(key_file, "TLS_KEY_FILE")?).map_err(|e| {
            TlsError(format!(
                "{setting}_TLS_KEY_FILE: no usable private key in {}: {e}",
                key_file.display()
            ))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("{setting}_TLS: {e}")))?;
        let builder = match client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs(path, "TLS_CLIENT_CA_FILE")? {
                    roots.add(cert).map_err(|e| {
                        TlsError(format!(
                            "{setting}_TLS_CLIENT_CA_FILE: unusable CA in {}: {e}",
                            path.display()
                        ))
                    })?;
                }
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError(format!("{setting}_TLS_CLIENT_CA_FILE: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            TlsError(format!(
                "{setting}_TLS_CERT_FILE and {setting}_TLS_KEY_FILE do not make a usable pair ({}, {}): {e}",
                cert_file.display(),
                key_file.display()
            ))
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}
