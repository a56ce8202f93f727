//! TLS listeners (rustls): the server configuration made from a listener's `certfile`,
//! `keyfile`, `cafile` and `require_certificate`, and the identity of a client's verified
//! certificate.

use crate::auth::{read_bytes, FileError};
use crate::config::Listener;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The TLS acceptor of a listener with `certfile` and `keyfile`; `None` for a plain one.
///
/// # Errors
/// A file cannot be read, holds no certificate or key, the key does not go with the
/// certificate, or an authority in `cafile` is not usable: the error names the file.
pub(crate) fn acceptor(listener: &Listener) -> Result<Option<TlsAcceptor>, FileError> {
    let (Some(certfile), Some(keyfile)) = (&listener.certfile, &listener.keyfile) else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(certfile)?;
    let key = private_key(keyfile)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| FileError::whole(certfile, e.to_string()))?;
    let builder = match &listener.cafile {
        None => builder.with_no_client_auth(),
        Some(cafile) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(cafile)? {
                roots
                    .add(cert)
                    .map_err(|e| FileError::whole(cafile, format!("not a usable CA: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match listener.require_certificate {
                true => verifier.build(),
                false => verifier.allow_unauthenticated().build(),
            }
            .map_err(|e| FileError::whole(cafile, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        FileError::whole(
            keyfile,
            format!("cannot be used with {}: {e}", certfile.display()),
        )
    })?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let pem = read_bytes(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::whole(path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(FileError::whole(
            path,
            "no certificate in it (PEM expected)",
        ));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, FileError> {
    let pem = read_bytes(path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| FileError::whole(path, format!("no usable private key (PEM): {e}")))
}

/// The identity of a client's certificate: its subject's common name, else its first DNS
/// name or email address among the subject alternative names.
pub(crate) fn identity(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty());
    if let Some(cn) = common_name {
        return Some(cn.to_owned());
    }
    let names = cert.subject_alternative_name().ok()??;
    names
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(n)
            | x509_parser::extensions::GeneralName::RFC822Name(n) => Some((*n).to_owned()),
            _ => None,
        })
}
