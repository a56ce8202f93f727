//! MQTT over WebSocket (RFC 6455, the `mqtt` subprotocol): the handshake, and the
//! WebSocket's messages seen as a byte stream, so that the session code reads MQTT packets
//! from it as from TCP. A packet may span several WebSocket messages and one message may
//! hold several packets: the byte stream does not care where messages end.

use bytes::Bytes;
use futures_util::{Sink, Stream as _};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// The subprotocol MQTT over WebSocket uses (MQTT 3.1.1 §6, 5.0 §6); `mqttv3.1` is what
/// MQTT 3.1 clients ask for.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Most bytes of one WebSocket message beyond the largest packet: room for the packets
/// sent with it.
const MESSAGE_SLACK: usize = 64 << 10;

/// The read buffer of one WebSocket connection. tungstenite's default (128 KiB) is held by
/// every connection and zero-filled before each read: 16 KiB takes a TCP read's worth and
/// brings a WebSocket client from about 135 KB to about 19 KB of broker memory (measured
/// with `WS=1 bash benches/load/run.sh`, docs/performance.md).
const READ_BUFFER: usize = 16 * 1024;

/// Answers a WebSocket upgrade on `stream` (any request path), agreeing on the `mqtt`
/// subprotocol; a request that does not offer it is refused (400). Messages are limited to
/// `packet_limit` plus a little, so a client cannot make the broker hold more than a
/// packet's worth per message.
// The handshake callback's error type is tungstenite's HTTP response.
#[allow(clippy::result_large_err)]
pub(crate) async fn accept<S>(stream: S, packet_limit: u32) -> Result<WsStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max_message = (packet_limit as usize).saturating_add(MESSAGE_SLACK);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
        .max_write_buffer_size(max_message.saturating_mul(2));
    let agree = |request: &Request, mut response: Response| {
        let offered = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .find(|offered| SUBPROTOCOLS.contains(offered))
            .map(str::to_owned);
        match offered {
            Some(protocol) => {
                let value = HeaderValue::from_str(&protocol).map_err(|_| refusal())?;
                response
                    .headers_mut()
                    .insert("sec-websocket-protocol", value);
                Ok(response)
            }
            None => Err(refusal()),
        }
    };
    let inner =
        tokio_tungstenite::accept_hdr_async_with_config(stream, agree, Some(config)).await?;
    Ok(WsStream {
        inner,
        read: Bytes::new(),
    })
}

fn refusal() -> ErrorResponse {
    let mut response =
        ErrorResponse::new(Some("the `mqtt` WebSocket subprotocol is required".into()));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

/// A WebSocket connection as a byte stream: binary messages' payloads read in order, each
/// write sent as one binary message.
pub(crate) struct WsStream<S> {
    inner: WebSocketStream<S>,
    /// What is left of the last message read.
    read: Bytes,
}

fn io_error(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.read.is_empty() {
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                // The end of the stream: a read of 0 bytes.
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => this.read = data,
                // Answered by tungstenite itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "MQTT over WebSocket is sent in binary messages, not text",
                    )))
                }
                Some(Err(error)) => return Poll::Ready(Err(io_error(error))),
            }
        }
        let n = this.read.len().min(buf.remaining());
        buf.put_slice(&this.read.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut sink = Pin::new(&mut this.inner);
        ready!(sink.as_mut().poll_ready(cx)).map_err(io_error)?;
        sink.as_mut()
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io_error)?;
        // Sent on the next flush (the session flushes after each batch of writes).
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner)
            .poll_flush(cx)
            .map_err(io_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().inner).poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(io_error(error))),
        }
    }
}
