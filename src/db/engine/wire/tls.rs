//! TLS for Postgres sessions, as libpq's `sslmode` means it: rustls with ring (as the HTTP
//! clients). `disable` sends no TLS request; `allow` and `prefer` ask for TLS and go on in plain
//! text when the server has none; `require` insists on TLS but, as libpq, does not verify the
//! certificate (unless `sslrootcert` is given); `verify-ca` and `verify-full` check the chain
//! against the Mozilla roots (or `sslrootcert`) and the host name.
//!
//! Also the channel binding of SCRAM-SHA-256-PLUS (`tls-server-end-point`, RFC 5929): a hash of
//! the server's certificate that proves no one in between terminated the TLS session.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::error::PoolError;

/// Whether a session asks for TLS, and whether it must have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
}

/// The TLS settings of one pool: the mode and the rustls configuration.
#[derive(Clone)]
pub struct Tls {
    pub mode: SslMode,
    pub config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn invalid(message: String) -> PoolError {
    PoolError::InvalidConfig(message)
}

/// The TLS settings for `sslmode` (and `sslrootcert`, a PEM file of trusted roots).
pub fn tls_for(ssl_mode: &str, root_cert: Option<&str>) -> Result<Tls, PoolError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mode, verify) = match ssl_mode {
        "disable" => (SslMode::Disable, false),
        "allow" | "prefer" => (SslMode::Prefer, root_cert.is_some()),
        "require" => (SslMode::Require, root_cert.is_some()),
        "verify-ca" | "verify-full" => (SslMode::Require, true),
        other => {
            return Err(invalid(format!(
                "connectionString: sslmode '{other}' is not one of disable, allow, prefer, require, verify-ca, verify-full"
            )))
        }
    };
    let builder = rustls::ClientConfig::builder();
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match root_cert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    invalid(format!(
                        "connectionString: sslrootcert could not be read ({e})"
                    ))
                })?;
                for cert in pem_certs(&pem)? {
                    roots.add(cert).map_err(|e| {
                        invalid(format!(
                            "connectionString: sslrootcert holds a bad certificate ({e})"
                        ))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly::new()))
            .with_no_client_auth()
    };
    Ok(Tls {
        mode,
        config: Arc::new(config),
    })
}

fn pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PoolError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("connectionString: sslrootcert is not PEM ({e})")))
}

/// The name the server's certificate is checked against (and sent as SNI).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|e| format!("TLS: bad host name {host}: {e}"))
}

/// The `tls-server-end-point` channel binding data for the server's certificate: its hash with
/// the certificate's own signature hash (SHA-1 and MD5 raised to SHA-256, RFC 5929 §4.1), or
/// None when the certificate's algorithm is not one we know.
pub fn server_end_point(certificate: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::oid::db::rfc5912::{
        ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ID_SHA_1, ID_SHA_256, ID_SHA_384, ID_SHA_512,
        SHA_1_WITH_RSA_ENCRYPTION, SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION,
        SHA_512_WITH_RSA_ENCRYPTION,
    };
    use x509_cert::der::Decode;
    let parsed = x509_cert::Certificate::from_der(certificate).ok()?;
    let algorithm = match parsed.signature_algorithm.oid {
        ID_SHA_1
        | ID_SHA_256
        | SHA_1_WITH_RSA_ENCRYPTION
        | SHA_256_WITH_RSA_ENCRYPTION
        | ECDSA_WITH_SHA_256 => &ring::digest::SHA256,
        ID_SHA_384 | SHA_384_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_384 => &ring::digest::SHA384,
        ID_SHA_512 | SHA_512_WITH_RSA_ENCRYPTION => &ring::digest::SHA512,
        // Ed25519 and others define no hash for channel binding.
        _ => return None,
    };
    Some(
        ring::digest::digest(algorithm, certificate)
            .as_ref()
            .to_vec(),
    )
}

/// `sslmode=require` as libpq means it: the session is encrypted, the certificate is not checked
/// (the handshake signature still is, so the server must hold the key of the certificate it sent).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl EncryptOnly {
    fn new() -> Self {
        EncryptOnly(Arc::new(rustls::crypto::ring::default_provider()))
    }
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(tls_for("disable", None).unwrap().mode, SslMode::Disable);
        assert_eq!(tls_for("allow", None).unwrap().mode, SslMode::Prefer);
        assert_eq!(tls_for("prefer", None).unwrap().mode, SslMode::Prefer);
        assert_eq!(tls_for("require", None).unwrap().mode, SslMode::Require);
        assert_eq!(tls_for("verify-full", None).unwrap().mode, SslMode::Require);
        assert_eq!(
            tls_for("sometimes", None).unwrap_err().code(),
            "INVALID_CONFIG"
        );
        assert_eq!(
            tls_for("require", Some("/nonexistent/root.pem"))
                .unwrap_err()
                .code(),
            "INVALID_CONFIG"
        );
    }

    #[test]
    fn no_end_point_for_what_is_not_a_certificate() {
        assert_eq!(server_end_point(b"not a certificate"), None);
    }
}
