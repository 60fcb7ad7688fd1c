//! `tls_config` (prometheus/common's `TLSConfig`: `ca_file`, `cert_file`, `key_file`,
//! `server_name`, `insecure_skip_verify`, `min_version`) as a rustls client configuration
//! handed to reqwest: one implementation for remote-write targets and for receivers.
//!
//! The server's certificate is checked against `ca_file` when given, else against the
//! system's trust store (rustls-platform-verifier), for the name in `server_name` when given,
//! else the URL's host. One divergence from Go: the SNI extension still carries the URL's host
//! (reqwest gives no hook to change it); `server_name` only changes the name verified.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};
use serde::{Deserialize, Serialize};

/// `tls_config`, as in prometheus.yml and alertmanager.yml.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates that sign the receiver's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS, with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name the receiver's certificate must carry, instead of the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any server certificate (testing only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// `TLS12` or `TLS13` (rustls speaks no older version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A `tls_config` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{field} {path}: {message}")]
    File {
        field: &'static str,
        path: String,
        message: String,
    },
    #[error("server_name {0:?} is not a valid DNS name or IP address")]
    ServerName(String),
    #[error("cert_file and key_file must be given together")]
    Pair,
    #[error("min_version {0:?}: only TLS12 and TLS13 are supported")]
    MinVersion(String),
    #[error("{0}")]
    Tls(#[from] TlsError),
}

fn file_error(field: &'static str, path: &Path, message: impl ToString) -> TlsConfigError {
    TlsConfigError::File {
        field,
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

impl TlsConfig {
    /// Checks what can be checked without building a client: pairs and names. Files are read
    /// when the forwarder starts ([`TlsConfig::client_config`]).
    pub fn validate(&self) -> Result<(), TlsConfigError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(TlsConfigError::Pair);
        }
        if let Some(n) = &self.server_name {
            ServerName::try_from(n.as_str()).map_err(|_| TlsConfigError::ServerName(n.clone()))?;
        }
        self.versions()?;
        Ok(())
    }

    fn versions(
        &self,
    ) -> Result<&'static [&'static rustls::SupportedProtocolVersion], TlsConfigError> {
        match self.min_version.as_deref() {
            None | Some("" | "TLS12") => Ok(rustls::DEFAULT_VERSIONS),
            Some("TLS13") => Ok(TLS13_ONLY),
            Some(other) => Err(TlsConfigError::MinVersion(other.to_string())),
        }
    }

    /// The rustls configuration for this target.
    pub fn client_config(&self) -> Result<ClientConfig, TlsConfigError> {
        self.validate()?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let inner: Arc<dyn ServerCertVerifier> = if self.insecure_skip_verify {
            Arc::new(AcceptAny(provider.clone()))
        } else if let Some(ca) = &self.ca_file {
            let mut roots = RootCertStore::empty();
            let certs = read_certs("ca_file", ca)?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(file_error("ca_file", ca, "no usable certificate"));
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| file_error("ca_file", ca, e))?
        } else {
            Arc::new(rustls_platform_verifier::Verifier::new(provider.clone())?)
        };
        let verifier: Arc<dyn ServerCertVerifier> = match &self.server_name {
            Some(n) if !self.insecure_skip_verify => Arc::new(NameOverride {
                inner,
                name: ServerName::try_from(n.clone())
                    .map_err(|_| TlsConfigError::ServerName(n.clone()))?,
            }),
            _ => inner,
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(self.versions()?)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let chain = read_certs("cert_file", cert)?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| file_error("key_file", key, e))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| file_error("key_file", key, e))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(config)
    }
}

fn read_certs(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(field, path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(field, path, e))?;
    if certs.is_empty() {
        return Err(file_error(field, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// Verifies the certificate for `server_name` instead of the URL's host.
#[derive(Debug)]
struct NameOverride {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate is accepted; the handshake signatures are still
/// checked (they prove the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
