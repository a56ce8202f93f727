//! An MQTT 3.1 / 3.1.1 / 5.0 broker assembled from the facteur crates: the codec decodes and
//! encodes, facteur-topic matches subscriptions and keeps retained messages, facteur-session
//! runs each client's QoS 1/2 flows and keep alive. This crate only adds the sockets, the
//! routing between clients and the configuration.
//!
//! It runs on the caller's tokio runtime (no thread or runtime of its own) and uses every
//! worker the runtime has: one task per busy session, no global lock on the publish path.
//! An idle client's session parks, with no task, timer or reactor registration of its own
//! (about 0.8 KB per idle client; [`StatsSnapshot::sessions_parked`]), until its client
//! speaks, a message or a reconnection arrives for it, or its keep alive or expiry comes.
//!
//! The crate does not choose a global allocator. A message is allocated by its publisher's
//! worker thread and freed by its subscriber's; glibc's allocator takes the first thread's
//! arena lock for such a free of a block above 128 bytes, so with payloads of a few hundred
//! bytes and more, busy threads wait on each other. The `facteur` program uses jemalloc
//! (`tikv-jemallocator`) for that reason; an embedder can do the same.
//!
//! ```no_run
//! use facteur_broker::{Broker, Config};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = Config::default();
//! config.listeners[0].port = 0; // any free port
//! let broker = Broker::start(config).await?;
//! println!("listening on {:?}", broker.local_addrs());
//! // ... later:
//! broker.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Status: CONNECT/CONNACK for all three versions (negotiated by facteur-session: assigned
//! client identifiers, server keep alive), QoS 0/1/2 both ways, persistent sessions (3.x
//! clean session 0, 5.0 Session Expiry Interval) with subscriptions kept and QoS 1/2
//! messages queued while offline, session takeover (5.0: 0x8E to the old connection; the
//! session carries over or ends as its expiry and the new clean start say), wildcard and
//! shared subscriptions (one delivery per client at the highest granted QoS), retained
//! messages with retain handling and retain-as-published, no local, wills on abnormal loss
//! with 5.0 Will Delay, message expiry counted from receipt, keep alive at 1.5×, a connect
//! timeout, malformed packets closing only their connection (5.0: with the reason code, and
//! a lingering close so that the client reads it), bounded per-client queues (QoS 0 dropped
//! first, `max_queued_bytes`), limits on connections, sessions, retained messages and the
//! packet before CONNECT, subscription identifiers on delivery, reason strings on refusals,
//! `$SYS` topics every `sys_interval`, any `AsyncRead + AsyncWrite` stream served
//! ([`BrokerHandle::serve_stream`]); TLS and mutual TLS (rustls) and WebSocket listeners,
//! password files (mosquitto's formats), `allow_anonymous`, ACL files in mosquitto's
//! syntax, and the [`auth`] traits for an embedder's own authentication and authorization
//! ([`Broker::start_with`]), MQTT 5 enhanced authentication and re-authentication
//! through an embedder's [`auth::Conversation`]; files re-read by
//! [`BrokerHandle::reload_security_files`].
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod accept;
mod access;
pub mod auth;
mod buffers;
mod config;
mod delivery;
mod enhanced;
mod filters;
mod handlers;
mod link;
mod listen;
mod local;
mod mailbox;
mod message;
mod park;
mod router;
mod session_task;
mod sys;
mod tls;
mod transport;
mod websocket;

pub use auth::Security;
pub use config::{Config, ConfigError, Expiration, Listener, Protocol};
pub use local::{LocalMessage, LocalSubscription};
pub use transport::ClientStream;

use router::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Counters the broker keeps (all since start).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// PUBLISH packets received from clients.
    pub messages_received: AtomicU64,
    /// Messages handed to subscribers' sessions.
    pub messages_sent: AtomicU64,
    /// Messages dropped because a subscriber's queue was full (or, offline, QoS 0).
    pub dropped: AtomicU64,
    /// Bytes read from clients.
    pub bytes_received: AtomicU64,
    /// Bytes written to clients.
    pub bytes_sent: AtomicU64,
    /// Retained messages delivered but not kept: `max_retained_messages` or
    /// `max_retained_bytes` reached.
    pub retained_refused: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Clients connected now.
    pub clients_connected: usize,
    /// Sessions held now, connected or not (persistent sessions outlive connections).
    pub sessions: usize,
    /// Sessions parked now: idle, held without a task of their own until their client
    /// sends something, a message or a reconnection arrives for them, or their deadline
    /// comes (a client whose connection is a TCP socket parks once it has nothing to do).
    pub sessions_parked: usize,
    /// Subscriptions held now.
    pub subscriptions: usize,
    /// Connections accepted since start.
    pub connections: u64,
    /// PUBLISH packets received from clients.
    pub messages_received: u64,
    /// Messages handed to subscribers' sessions.
    pub messages_sent: u64,
    /// Messages dropped because a subscriber's queue was full.
    pub dropped: u64,
    /// Retained messages delivered but not kept (retained limits reached).
    pub retained_refused: u64,
}

/// The broker: build it from a [`Config`] with [`Broker::start`].
#[derive(Debug)]
pub struct Broker;

/// Why [`Broker::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration has a value out of its range (the error names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A password, ACL, certificate or key file cannot be used (the error names the file
    /// and, for a line that does not parse, the line).
    #[error(transparent)]
    Security(#[from] auth::FileError),
    /// A listener could not be bound (the address is in use, not local, or needs rights).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The system's error.
        source: std::io::Error,
    },
}

impl Broker {
    /// Binds every listener and starts accepting on the current tokio runtime, with the
    /// password file, `allow_anonymous` and the ACL file of the configuration.
    ///
    /// # Errors
    /// [`StartError::Config`] for a value out of its range, [`StartError::Security`] when a
    /// password, ACL, certificate or key file cannot be used, [`StartError::Bind`] when a
    /// listener cannot be bound.
    pub async fn start(config: Config) -> Result<BrokerHandle, StartError> {
        Self::start_with(config, Security::new()).await
    }

    /// As [`Broker::start`], with the embedder's own authentication or authorization in
    /// place of the files' (the configuration's `password_file` or `acl_file` is then not
    /// read for the part replaced).
    ///
    /// # Errors
    /// As [`Broker::start`].
    pub async fn start_with(
        config: Config,
        security: Security,
    ) -> Result<BrokerHandle, StartError> {
        config.check()?;
        let config = Arc::new(config);
        // Every file is read before anything listens: a bad one never leaves a broker open.
        let mut files = AuthFiles::default();
        let authenticator: Arc<dyn auth::Authenticator> = match security.authenticator {
            Some(authenticator) => authenticator,
            None => {
                let path = config.password_file.as_deref();
                let file = Arc::new(auth::FileAuthenticator::load(path)?);
                files.authenticator = Some(file.clone());
                file
            }
        };
        let authorizer: Option<Arc<dyn auth::Authorizer>> =
            match (security.authorizer, &config.acl_file) {
                (Some(authorizer), _) => Some(authorizer),
                (None, Some(path)) => {
                    let file = Arc::new(auth::FileAuthorizer::load(path)?);
                    files.authorizer = Some(file.clone());
                    Some(file)
                }
                (None, None) => None,
            };
        let mut kinds = Vec::new();
        for (index, listener) in config.listeners.iter().enumerate() {
            kinds.push(Arc::new(listen::Kind::new(index, listener, &config)?));
        }
        let (stop, stopped) = watch::channel(false);
        let router = Arc::new(Router::new(&config, authenticator, authorizer));
        let mut tasks = JoinSet::new();
        let mut addrs = Vec::new();
        for (listener, kind) in config.listeners.iter().zip(kinds) {
            let addr = listener.socket_addr()?;
            let bind = |source| StartError::Bind { addr, source };
            let socket = TcpListener::bind(addr).await.map_err(bind)?;
            let bound = socket.local_addr().map_err(bind)?;
            addrs.push(bound);
            tracing::info!(addr = %bound, tls = listener.is_tls(), protocol = ?listener.protocol, "listening");
            tasks.spawn(listen::accept_loop(
                socket,
                kind,
                config.clone(),
                router.clone(),
                stopped.clone(),
            ));
        }
        if config.sys_interval > 0 {
            tasks.spawn(sys::run(
                router.clone(),
                std::time::Duration::from_secs(config.sys_interval),
                stopped.clone(),
            ));
        }
        Ok(BrokerHandle {
            addrs,
            config,
            router,
            stop,
            tasks,
            files,
        })
    }
}

/// The file-based authenticator and authorizer the broker uses and can re-read.
#[derive(Debug, Default)]
struct AuthFiles {
    authenticator: Option<Arc<auth::FileAuthenticator>>,
    authorizer: Option<Arc<auth::FileAuthorizer>>,
}

/// A running broker: its addresses, its statistics, and the way to stop it.
#[derive(Debug)]
pub struct BrokerHandle {
    addrs: Vec<SocketAddr>,
    config: Arc<Config>,
    router: Arc<Router>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    files: AuthFiles,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").finish_non_exhaustive()
    }
}

impl BrokerHandle {
    /// The bound address of each listener, in configuration order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The counters now.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.router.stats;
        StatsSnapshot {
            clients_connected: self.router.links(),
            sessions: self.router.sessions(),
            sessions_parked: self.router.parked(),
            subscriptions: self.router.subscription_count(),
            connections: s.connections.load(Ordering::Relaxed),
            messages_received: s.messages_received.load(Ordering::Relaxed),
            messages_sent: s.messages_sent.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            retained_refused: s.retained_refused.load(Ordering::Relaxed),
        }
    }

    /// Serves one client connected over `stream`, any byte stream (an in-process pipe,
    /// a TLS or WebSocket stream accepted by the caller) exactly as a TCP connection
    /// accepted by a listener: CONNECT within `connect_timeout`, then its session.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// let mut config = facteur_broker::Config::default();
    /// config.listeners.clear(); // no socket at all
    /// let broker = facteur_broker::Broker::start(config).await?;
    /// let (mut client, server) = tokio::io::duplex(4096);
    /// broker.serve_stream(server);
    /// // CONNECT (3.1.1, client "a", clean session, keep alive 60).
    /// client.write_all(&[0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'a']).await?;
    /// let mut connack = [0u8; 4];
    /// client.read_exact(&mut connack).await?;
    /// assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    /// broker.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn serve_stream<S: ClientStream>(&self, stream: S) {
        self.router
            .stats
            .connections
            .fetch_add(1, Ordering::Relaxed);
        let origin = accept::Origin {
            anonymous_allowed: self.config.allow_anonymous.unwrap_or(true),
            ..accept::Origin::default()
        };
        tokio::spawn(accept::serve(
            transport::Stream::Other(Box::new(stream)),
            origin,
            self.config.clone(),
            self.router.clone(),
        ));
    }

    /// Reads the password file and the ACL file again (what the `facteur` program does on
    /// SIGHUP) and puts them in force for every later check, connected clients included.
    /// Both files are read before either is put in force: when one fails, the rules in
    /// force stay exactly as they were.
    ///
    /// # Errors
    /// A file cannot be read or a line does not parse (the error names the file and line).
    pub fn reload_security_files(&self) -> Result<(), auth::FileError> {
        let passwords = match &self.files.authenticator {
            Some(authenticator) => Some(authenticator.read_again()?),
            None => None,
        };
        let acl = match &self.files.authorizer {
            Some(authorizer) => Some(authorizer.read_again()?),
            None => None,
        };
        if let (Some(authenticator), Some(passwords)) = (&self.files.authenticator, passwords) {
            authenticator.put_in_force(passwords);
        }
        if let (Some(authorizer), Some(acl)) = (&self.files.authorizer, acl) {
            authorizer.put_in_force(acl);
        }
        Ok(())
    }

    /// Publishes a message from inside the process to every matching subscriber, as a
    /// client's PUBLISH would be (stored first if `retain`; an empty retained payload clears
    /// the topic).
    pub fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: facteur_codec::QoS,
        retain: bool,
    ) -> Result<(), facteur_topic::TopicError> {
        local::publish(&self.router, topic, payload, qos, retain)
    }

    /// Subscribes from inside the process: matching messages (retained ones first) arrive
    /// on the returned [`LocalSubscription`], up to `max_queued_messages` waiting.
    pub fn subscribe(
        &self,
        filter: &str,
        qos: facteur_codec::QoS,
    ) -> Result<LocalSubscription, facteur_topic::TopicError> {
        LocalSubscription::new(&self.router, filter, qos)
    }

    /// Stops accepting, tells every client (5.0: DISCONNECT 0x8B, server shutting down),
    /// publishes their wills, and waits for every connection to close.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Every session is told; wait for them to close.
        self.router.stop_all();
        self.router.all_tasks_ended().await;
        // In-process subscriptions see the end of their stream.
        self.router.close_all_mailboxes();
    }
}
