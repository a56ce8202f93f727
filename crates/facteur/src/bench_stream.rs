//! The connections `facteur bench` opens: plain TCP, or TLS (`--cafile`) for measuring a
//! broker's TLS listener. The two halves are enums rather than boxed streams, so that the
//! plain TCP load costs the generator what it did before.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How to reach a TLS listener: the authorities to trust and the server's name.
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish()
    }
}

impl Tls {
    /// Trusts the certificates of `cafile` (PEM) and expects the server to be `name`.
    pub(crate) fn load(cafile: &Path, name: &str) -> Result<Self, Error> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cafile)
            .map_err(|e| format!("{}: {e}", cafile.display()))?
        {
            roots.add(cert.map_err(|e| format!("{}: {e}", cafile.display()))?)?;
        }
        if roots.is_empty() {
            return Err(
                format!("{}: no certificate in it (PEM expected)", cafile.display()).into(),
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from(name.to_owned())?,
        })
    }
}

/// The reading half of a connection.
pub(crate) enum ReadSide {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
}

/// The writing half of a connection.
pub(crate) enum WriteSide {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
}

impl WriteSide {
    /// Writes all of `bytes` and, for TLS, flushes them (rustls may hold the last record
    /// until asked: a publisher waiting for acknowledgements would wait for ever).
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.write_all(bytes).await?;
        if let Self::Tls(write) = self {
            write.flush().await?;
        }
        Ok(())
    }
}

/// Where the broker is: its address, and how to speak TLS to it (`--cafile`).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Option<Tls>,
}

/// Connects to `addr` (through TLS when `tls` is given), without delay on small writes.
pub(crate) async fn connect(endpoint: &Endpoint) -> Result<(ReadSide, WriteSide), Error> {
    let stream = TcpStream::connect(endpoint.addr).await?;
    stream.set_nodelay(true)?;
    Ok(match &endpoint.tls {
        None => {
            let (read, write) = stream.into_split();
            (ReadSide::Tcp(read), WriteSide::Tcp(write))
        }
        Some(tls) => {
            let stream = tls.connector.connect(tls.name.clone(), stream).await?;
            let (read, write) = tokio::io::split(stream);
            (ReadSide::Tls(read), WriteSide::Tls(write))
        }
    })
}

impl AsyncRead for ReadSide {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(read) => Pin::new(read).poll_read(cx, buf),
            Self::Tls(read) => Pin::new(read).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteSide {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(write) => Pin::new(write).poll_write(cx, buf),
            Self::Tls(write) => Pin::new(write).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(write) => Pin::new(write).poll_flush(cx),
            Self::Tls(write) => Pin::new(write).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(write) => Pin::new(write).poll_shutdown(cx),
            Self::Tls(write) => Pin::new(write).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_cafile_is_an_error_naming_it() {
        let missing = Path::new("/nonexistent/ca.crt");
        let error = Tls::load(missing, "localhost").unwrap_err().to_string();
        assert!(error.contains("/nonexistent/ca.crt"), "{error}");
        let dir = std::env::temp_dir().join(format!("facteur-bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        // No certificate at all: nothing to trust.
        let error = Tls::load(&empty, "localhost").unwrap_err().to_string();
        assert!(error.contains("no certificate"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
