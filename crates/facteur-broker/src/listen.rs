//! Listeners: one TCP socket per configured listener, and what a connection accepted there
//! goes through before its CONNECT is read: the TLS handshake and the WebSocket upgrade,
//! within `connect_timeout`. TLS and WebSocket connections are then served as any other
//! stream (`Stream::Other`), by the same code as TCP.

use crate::accept::{self, Origin};
use crate::auth::FileError;
use crate::config::{Config, Listener, Protocol};
use crate::router::Router;
use crate::transport::{ClientStream, Stream};
use crate::{tls, websocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// What a listener does with the connections it accepts.
pub(crate) struct Kind {
    index: usize,
    tls: Option<TlsAcceptor>,
    websocket: bool,
    anonymous_allowed: bool,
    identity_as_username: bool,
}

impl Kind {
    /// Reads the listener's certificate and key, if it has them.
    ///
    /// # Errors
    /// A TLS file cannot be used (the error names it).
    pub(crate) fn new(
        index: usize,
        listener: &Listener,
        config: &Config,
    ) -> Result<Self, FileError> {
        Ok(Self {
            index,
            tls: tls::acceptor(listener)?,
            websocket: listener.protocol == Protocol::Websockets,
            anonymous_allowed: listener.anonymous_allowed(config),
            identity_as_username: listener.use_identity_as_username,
        })
    }

    fn origin(&self, certificate_identity: Option<String>) -> Origin {
        Origin {
            listener: Some(self.index),
            anonymous_allowed: self.anonymous_allowed,
            certificate_identity,
            identity_as_username: self.identity_as_username,
        }
    }
}

/// Accepts connections until the broker stops.
pub(crate) async fn accept_loop(
    socket: TcpListener,
    kind: Arc<Kind>,
    config: Arc<Config>,
    router: Arc<Router>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    router.stats.connections.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "accepted");
                    // Detached: the router counts the task (no handle kept per client).
                    if kind.tls.is_none() && !kind.websocket {
                        tokio::spawn(accept::serve(
                            Stream::Tcp(stream),
                            kind.origin(None),
                            config.clone(),
                            router.clone(),
                        ));
                    } else {
                        tokio::spawn(upgrade(stream, kind.clone(), config.clone(), router.clone()));
                    }
                }
                Err(error) => tracing::warn!(%error, "accept failed"),
            },
            _ = stopped.changed() => break,
        }
    }
}

/// The TLS handshake and WebSocket upgrade of a connection, within `connect_timeout`;
/// then the connection is served.
async fn upgrade(tcp: TcpStream, kind: Arc<Kind>, config: Arc<Config>, router: Arc<Router>) {
    // Counted until the connection is served (serve counts it too: the count never drops
    // to zero in between, which shutdown could take for the end of every task).
    let _task = router.track_task();
    let upgraded = tokio::time::timeout(
        config.connect_timeout(),
        handshakes(tcp, &kind, config.packet_limit()),
    )
    .await;
    match upgraded {
        Ok(Ok((stream, identity))) => {
            accept::serve(stream, kind.origin(identity), config, router).await;
        }
        Ok(Err(error)) => tracing::debug!(%error, "handshake failed"),
        Err(_) => tracing::debug!("handshake not done within connect_timeout"),
    }
}

async fn handshakes(
    tcp: TcpStream,
    kind: &Kind,
    packet_limit: u32,
) -> std::io::Result<(Stream, Option<String>)> {
    let Some(acceptor) = &kind.tls else {
        return Ok((websocket_on(tcp, packet_limit).await?, None));
    };
    let tls = acceptor.accept(tcp).await?;
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(tls::identity);
    let stream = match kind.websocket {
        true => websocket_on(tls, packet_limit).await?,
        false => Stream::Other(Box::new(tls)),
    };
    Ok((stream, identity))
}

async fn websocket_on<S: ClientStream>(stream: S, packet_limit: u32) -> std::io::Result<Stream> {
    let ws = websocket::accept(stream, packet_limit)
        .await
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(Stream::Other(Box::new(ws)))
}
