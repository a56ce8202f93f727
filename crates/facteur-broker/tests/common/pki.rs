//! Certificates made for a test (rcgen): a CA, a server certificate for `localhost` and
//! 127.0.0.1, client certificates (valid, expired, from another CA), written as PEM files,
//! and rustls client configurations that trust the CA.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

pub struct Pki {
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM files.
#[derive(Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

fn leaf(
    dir: &Path,
    name: &str,
    issuer: &CertifiedIssuer<'static, KeyPair>,
    params: CertificateParams,
) -> Pair {
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Pair {
        cert: write(dir, &format!("{name}.crt"), &cert.pem()),
        key: write(dir, &format!("{name}.key"), &key.serialize_pem()),
    }
}

fn client_params(common_name: Option<&str>, sans: Vec<String>) -> CertificateParams {
    let mut params = CertificateParams::new(sans).unwrap();
    // rcgen's default subject has a common name of its own.
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = common_name {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

impl Pki {
    pub fn new(dir: &Path) -> Self {
        let issuer = ca("facteur test CA");
        let ca = write(dir, "ca.crt", &issuer.pem());
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = leaf(dir, "server", &issuer, params);
        Self {
            dir: dir.to_owned(),
            ca,
            server_cert: server.cert,
            server_key: server.key,
            issuer,
        }
    }

    /// A client certificate from this CA with this common name.
    pub fn client(&self, common_name: &str) -> Pair {
        leaf(
            &self.dir,
            common_name,
            &self.issuer,
            client_params(Some(common_name), vec![]),
        )
    }

    /// A client certificate without a common name, with these SANs.
    pub fn client_with_sans(&self, name: &str, sans: &[&str]) -> Pair {
        let sans = sans.iter().map(|s| s.to_string()).collect();
        leaf(&self.dir, name, &self.issuer, client_params(None, sans))
    }

    /// A client certificate from this CA that expired in 2001.
    pub fn expired_client(&self, common_name: &str) -> Pair {
        let mut params = client_params(Some(common_name), vec![]);
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        leaf(
            &self.dir,
            &format!("{common_name}-expired"),
            &self.issuer,
            params,
        )
    }

    /// A client certificate from another CA.
    pub fn foreign_client(&self, common_name: &str) -> Pair {
        let other = ca("another CA");
        leaf(
            &self.dir,
            &format!("{common_name}-foreign"),
            &other,
            client_params(Some(common_name), vec![]),
        )
    }

    /// A rustls client configuration trusting this CA, presenting `pair` if given.
    pub fn client_config(&self, pair: Option<&Pair>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match pair {
            None => builder.with_no_client_auth(),
            Some(pair) => {
                let certs = CertificateDer::pem_file_iter(&pair.cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let key = PrivateKeyDer::from_pem_file(&pair.key).unwrap();
                builder.with_client_auth_cert(certs, key).unwrap()
            }
        };
        Arc::new(config)
    }
}

/// Opens TLS to `addr` as `localhost` with `config`.
pub async fn tls_connect(
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(config);
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}
