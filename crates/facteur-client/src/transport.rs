//! The byte stream to the broker: TCP, TLS, WebSocket or WebSocket over TLS, behind one
//! read and one write.

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use crate::options::{Options, TlsOptions, Transport};
use crate::{tls, Error};

/// A stream of bytes both ways.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection to the broker.
pub(crate) enum Conn {
    /// TCP or TLS.
    Stream(Box<dyn Io>),
    /// WebSocket (over TCP or TLS): MQTT packets in binary messages.
    Ws(Box<WebSocketStream<Box<dyn Io>>>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Stream(_) => "Conn::Stream",
            Self::Ws(_) => "Conn::Ws",
        })
    }
}

async fn tls_over(tcp: TcpStream, tls: &TlsOptions, host: &str) -> Result<Box<dyn Io>, Error> {
    let config = tls::client_config(tls)?;
    let name = tls::server_name(tls, host)?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok(Box::new(stream))
}

/// Opens the connection `options` describe, up to the MQTT bytes (no CONNECT yet).
/// `max_message` bounds a WebSocket message (the client's Maximum Packet Size).
pub(crate) async fn connect(options: &Options, max_message: usize) -> Result<Conn, Error> {
    let host = options.host.as_str();
    let tcp = TcpStream::connect((host, options.port)).await?;
    tcp.set_nodelay(true)?;
    match &options.transport {
        Transport::Tcp => Ok(Conn::Stream(Box::new(tcp))),
        Transport::Tls(tls) => Ok(Conn::Stream(tls_over(tcp, tls, host).await?)),
        Transport::Ws { path } => websocket(Box::new(tcp), "ws", options, path, max_message).await,
        Transport::Wss { path, tls } => {
            let stream = tls_over(tcp, tls, host).await?;
            websocket(stream, "wss", options, path, max_message).await
        }
    }
}

async fn websocket(
    stream: Box<dyn Io>,
    scheme: &str,
    options: &Options,
    path: &str,
    max_message: usize,
) -> Result<Conn, Error> {
    let host = if options.host.contains(':') {
        format!("[{}]", options.host)
    } else {
        options.host.clone()
    };
    let url = format!("{scheme}://{host}:{}{path}", options.port);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::Io(format!("WebSocket request {url}: {e}")))?;
    // MQTT over WebSocket: the `mqtt` subprotocol (MQTT 5.0 §6).
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    let mut config = WebSocketConfig::default();
    // One MQTT packet may span messages, but no message is larger than a packet + slack.
    config.max_message_size = Some(max_message.saturating_add(16));
    config.max_frame_size = Some(max_message.saturating_add(16));
    let (ws, response) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| Error::Io(format!("WebSocket handshake: {e}")))?;
    let protocol = response.headers().get("Sec-WebSocket-Protocol");
    if protocol.is_some_and(|p| p != "mqtt") {
        return Err(Error::Io(format!(
            "WebSocket: the server chose subprotocol {protocol:?}, not mqtt"
        )));
    }
    Ok(Conn::Ws(Box::new(ws)))
}

impl Conn {
    /// Reads what is there into `buf` (cancel-safe); 0 at the end of the stream.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> Result<usize, Error> {
        match self {
            Self::Stream(s) => {
                buf.reserve(8 * 1024);
                Ok(s.read_buf(buf).await?)
            }
            Self::Ws(ws) => loop {
                match ws.next().await {
                    None => return Ok(0),
                    Some(Err(e)) => return Err(Error::Io(format!("WebSocket: {e}"))),
                    Some(Ok(WsMessage::Binary(data))) => {
                        if data.is_empty() {
                            continue;
                        }
                        buf.extend_from_slice(&data);
                        return Ok(data.len());
                    }
                    Some(Ok(WsMessage::Close(_))) => return Ok(0),
                    Some(Ok(WsMessage::Text(_))) => {
                        return Err(Error::Io(
                            "WebSocket: a text message (MQTT travels in binary ones)".into(),
                        ))
                    }
                    // Pings are answered by tungstenite itself.
                    Some(Ok(_)) => continue,
                }
            },
        }
    }

    /// Writes all of `bytes`.
    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match self {
            Self::Stream(s) => {
                s.write_all(bytes).await?;
                Ok(s.flush().await?)
            }
            Self::Ws(ws) => ws
                .send(WsMessage::binary(bytes.to_vec()))
                .await
                .map_err(|e| Error::Io(format!("WebSocket: {e}"))),
        }
    }

    /// Ends the connection politely (TLS close_notify, WebSocket close); errors ignored.
    pub(crate) async fn shutdown(&mut self) {
        match self {
            Self::Stream(s) => {
                let _ = s.shutdown().await;
            }
            Self::Ws(ws) => {
                let _ = SinkExt::close(&mut **ws).await;
            }
        }
    }
}
