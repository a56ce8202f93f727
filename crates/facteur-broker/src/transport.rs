//! The byte streams a client connects over. A TCP socket is used directly (an idle client
//! then waits for readiness without holding a read buffer, and writes are tried at once);
//! any other stream (an in-process pipe, and TLS or WebSocket streams) goes through the
//! same session code as a boxed `AsyncRead + AsyncWrite`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Any stream a client can speak MQTT over: implemented for every `AsyncRead + AsyncWrite`
/// that can move between tasks.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientStream for T {}

/// A client's connection.
pub(crate) enum Stream {
    /// A TCP socket, used directly.
    Tcp(TcpStream),
    /// Any other stream.
    Other(Box<dyn ClientStream>),
    /// A TCP socket while its session is parked ([`crate::park`]): out of tokio's reactor,
    /// watched by the parking lot. Never read or written in this state.
    Parked(std::net::TcpStream),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(tcp) => tcp.fmt(f),
            Self::Other(_) => f.write_str("Stream::Other"),
            Self::Parked(tcp) => tcp.fmt(f),
        }
    }
}

impl Stream {
    /// Ready when a read would not wait: a TCP socket says so without a buffer; any other
    /// stream is read straight away (its read waits, with a buffer).
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(tcp) => tcp.poll_read_ready(cx),
            Self::Other(_) => Poll::Ready(Ok(())),
            Self::Parked(_) => Poll::Ready(Err(parked())),
        }
    }

    /// Writes what the stream takes now, without waiting (`WouldBlock` when it takes
    /// nothing; other streams always wait for [`AsyncWrite`]).
    pub(crate) fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(tcp) => tcp.try_write(bytes),
            Self::Other(_) => Err(io::ErrorKind::WouldBlock.into()),
            Self::Parked(_) => Err(parked()),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Other(other) => Pin::new(other).poll_read(cx, buf),
            Self::Parked(_) => Poll::Ready(Err(parked())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Other(other) => Pin::new(other).poll_write(cx, buf),
            Self::Parked(_) => Poll::Ready(Err(parked())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Other(other) => Pin::new(other).poll_flush(cx),
            Self::Parked(_) => Poll::Ready(Err(parked())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Other(other) => Pin::new(other).poll_shutdown(cx),
            Self::Parked(_) => Poll::Ready(Err(parked())),
        }
    }
}

/// The error of a parked stream's reads and writes (none is made: a parked session's task
/// does not run).
fn parked() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the session is parked")
}
