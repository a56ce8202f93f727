//! The connections `facteur bench` opens: plain TCP, or TLS (`--cafile`) for measuring a
//! broker's TLS listener, and either of them carrying a WebSocket (`--ws`, the `mqtt`
//! subprotocol) for measuring a `websockets` listener. The two halves are enums rather than
//! boxed streams, so that the plain TCP load costs the generator what it did before; the
//! scenarios see one reading half and one writing half whatever the transport.

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

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

/// The stream under a WebSocket: TCP, or TLS over TCP (`wss`).
pub(crate) enum Wire {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A WebSocket connection to the broker.
type Ws = WebSocketStream<Wire>;

/// The reading half of a connection.
pub(crate) enum ReadSide {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
    /// The binary messages' payloads, read as one byte stream: `left` is what is still to
    /// be read of the last message.
    Ws {
        messages: SplitStream<Ws>,
        left: Bytes,
    },
}

/// The writing half of a connection.
pub(crate) enum WriteSide {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
    Ws(SplitSink<Ws, Message>),
}

impl WriteSide {
    /// Sends all of `bytes` now: for TLS, written then flushed (rustls may hold the last
    /// record until asked: a publisher waiting for acknowledgements would wait for ever);
    /// over WebSocket, as one binary message, flushed. Nothing is sent for no bytes.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        match self {
            Self::Tcp(write) => write.write_all(bytes).await,
            Self::Tls(write) => {
                write.write_all(bytes).await?;
                write.flush().await
            }
            Self::Ws(sink) => sink
                .send(Message::Binary(Bytes::copy_from_slice(bytes)))
                .await
                .map_err(io_error),
        }
    }
}

/// Where the broker is: its address, how to speak TLS to it (`--cafile`), and whether
/// MQTT goes over a WebSocket (`--ws`).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Option<Tls>,
    /// The request path of the WebSocket upgrade (`/mqtt`); `None` for MQTT straight on
    /// the TCP or TLS stream.
    pub(crate) ws_path: Option<String>,
}

impl Endpoint {
    /// The URL the WebSocket upgrade asks for: `ws://` or, with TLS, `wss://` and the
    /// server's name.
    fn ws_url(&self, path: &str) -> String {
        match &self.tls {
            None => format!("ws://{}{path}", self.addr),
            Some(tls) => format!("wss://{}:{}{path}", tls.name.to_str(), self.addr.port()),
        }
    }
}

/// Checks a `--ws` request path: it must start with `/`.
pub(crate) fn check_ws_path(path: &str) -> Result<(), Error> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(format!("--ws {path:?}: a request path starts with `/` (e.g. /mqtt)").into())
    }
}

/// Connects to `addr` (through TLS when `tls` is given, then over a WebSocket when
/// `ws_path` is), without delay on small writes.
pub(crate) async fn connect(endpoint: &Endpoint) -> Result<(ReadSide, WriteSide), Error> {
    let stream = TcpStream::connect(endpoint.addr).await?;
    stream.set_nodelay(true)?;
    let wire = match (&endpoint.tls, &endpoint.ws_path) {
        (None, None) => {
            let (read, write) = stream.into_split();
            return Ok((ReadSide::Tcp(read), WriteSide::Tcp(write)));
        }
        (Some(tls), None) => {
            let stream = tls.connector.connect(tls.name.clone(), stream).await?;
            let (read, write) = tokio::io::split(stream);
            return Ok((ReadSide::Tls(read), WriteSide::Tls(write)));
        }
        (None, Some(_)) => Wire::Tcp(stream),
        (Some(tls), Some(_)) => Wire::Tls(Box::new(
            tls.connector.connect(tls.name.clone(), stream).await?,
        )),
    };
    let path = endpoint.ws_path.as_deref().unwrap_or("/");
    let mut request = endpoint.ws_url(path).into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
    // tungstenite refuses an answer that does not agree on the subprotocol asked for.
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(request, wire, Some(ws_config())).await?;
    let (sink, messages) = ws.split();
    Ok((
        ReadSide::Ws {
            messages,
            left: Bytes::new(),
        },
        WriteSide::Ws(sink),
    ))
}

/// The load generator's WebSocket settings: tungstenite zero-fills its whole read buffer
/// before every read (128 KiB by default), which would cost the generator a 128 KiB memset
/// per read and 128 KiB of memory per idle connection; 16 KiB still takes many messages
/// per read.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// Bytes a WebSocket connection of the load generator reads at most at once.
const READ_BUFFER: usize = 16 << 10;

fn io_error(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
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
            Self::Ws { messages, left } => {
                while left.is_empty() {
                    match ready!(Pin::new(&mut *messages).poll_next(cx)) {
                        // The end of the stream: a read of no bytes.
                        None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                        Some(Ok(Message::Binary(data))) => *left = data,
                        // Pings are answered by tungstenite itself.
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Ok(Message::Text(_))) => {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "a text WebSocket message (MQTT is sent in binary ones)",
                            )))
                        }
                        Some(Err(error)) => return Poll::Ready(Err(io_error(error))),
                    }
                }
                let n = left.len().min(buf.remaining());
                buf.put_slice(&left.split_to(n));
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
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

    #[test]
    fn the_websocket_url_names_the_server_as_tls_expects_it() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let plain = Endpoint {
            addr,
            tls: None,
            ws_path: Some("/mqtt".into()),
        };
        assert_eq!(plain.ws_url("/mqtt"), "ws://127.0.0.1:8080/mqtt");
        let connector = TlsConnector::from(Arc::new(
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        ));
        let tls = Endpoint {
            tls: Some(Tls {
                connector,
                name: ServerName::try_from("localhost").unwrap(),
            }),
            ..plain
        };
        assert_eq!(tls.ws_url("/"), "wss://localhost:8080/");
        assert!(check_ws_path("/mqtt").is_ok());
        assert!(check_ws_path("mqtt").is_err());
    }
}
