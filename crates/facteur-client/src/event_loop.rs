//! The connection's task: it owns the connection and the [`Session`], and does what the
//! handles ask. Every protocol rule (QoS flows, packet identifiers, Receive Maximum, keep
//! alive, topic aliases, CONNACK negotiation) is the session's; this task moves bytes,
//! keeps the application's futures and reconnects.
//!
//! Here: the task's state, its life (connect, serve, reconnect, stop) and the requests it
//! takes. `handshake`: CONNECT and CONNACK. `outbound`: messages to the session and its
//! packets to the socket. `inbound`: packets from the socket to the session and messages
//! to the application. `requests`: SUBSCRIBE and UNSUBSCRIBE.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use facteur_codec::{ProtocolVersion, QoS, ReasonCode, SubscriptionOptions};
use facteur_session::{
    AllocStore, Config, Deferred, Instant, MessageId, QueueLimits, Role, Session, Verdict,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::sleep_until;

use crate::client::{Event, Granted, Published};
use crate::message::{Message, PublishProperties};
use crate::transport::Conn;
use crate::{Error, Options};

mod handshake;
mod inbound;
mod outbound;
mod requests;

/// A message a handle publishes.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) properties: PublishProperties,
}

/// What a handle asks of the task.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        message: Outgoing,
        done: oneshot::Sender<Result<Published, Error>>,
    },
    Subscribe {
        filters: Vec<(String, SubscriptionOptions)>,
        done: oneshot::Sender<Result<Vec<Granted>, Error>>,
    },
    Unsubscribe {
        filters: Vec<String>,
        done: oneshot::Sender<Result<Vec<Result<(), ReasonCode>>, Error>>,
    },
    /// A manually acknowledged message was processed.
    Ack(Deferred, Verdict),
    Disconnect {
        reason: ReasonCode,
        session_expiry: Option<u32>,
        done: oneshot::Sender<()>,
    },
}

/// A SUBSCRIBE or UNSUBSCRIBE waiting for its answer, by packet identifier.
enum Request {
    Subscribe {
        filters: Vec<(String, SubscriptionOptions)>,
        /// `None` for the client's own re-subscription after a lost session.
        done: Option<oneshot::Sender<Result<Vec<Granted>, Error>>>,
    },
    Unsubscribe {
        filters: Vec<String>,
        done: oneshot::Sender<Result<Vec<Result<(), ReasonCode>>, Error>>,
    },
}

/// A publish future waiting for its message.
struct Pending {
    qos: QoS,
    done: oneshot::Sender<Result<Published, Error>>,
}

/// What the broker said it takes (5.0 CONNACK): a message beyond it is refused here, as
/// the broker would end the connection for it (0x9B, 0x9A) and the client would send it
/// again on every reconnection.
#[derive(Debug, Clone, Copy)]
struct ServerLimits {
    maximum_qos: QoS,
    retain_available: bool,
}

/// Why a connection ended, and whether the client goes on.
enum End {
    /// Lost (I/O, protocol, keep alive, the broker's DISCONNECT): reconnect if allowed.
    Lost(Error),
    /// The application asked (or dropped every handle): stop.
    Stop,
}

/// A graceful disconnection under way.
struct Closing {
    reason: ReasonCode,
    session_expiry: Option<u32>,
    done: Option<oneshot::Sender<()>>,
    deadline: tokio::time::Instant,
}

pub(crate) struct EventLoop {
    options: Options,
    session: Session<AllocStore>,
    commands: mpsc::Receiver<Command>,
    /// For the acknowledgements of manually acknowledged messages (weak: the handles keep
    /// the channel open, not the task).
    ack_sender: mpsc::WeakSender<Command>,
    messages: mpsc::Sender<Message>,
    events: broadcast::Sender<Event>,
    /// The session's clock starts here.
    origin: tokio::time::Instant,
    /// Publish futures by message.
    publishes: HashMap<MessageId, Pending>,
    /// Messages in the session's queue, in order (to tell when a QoS 0 one is written).
    queued: VecDeque<MessageId>,
    /// Reason strings of PUBACK/PUBREC/PUBCOMP by packet identifier, until the session
    /// reports the message complete.
    reason_strings: HashMap<u16, String>,
    /// SUBSCRIBE/UNSUBSCRIBE requests by packet identifier.
    requests: HashMap<u16, Request>,
    /// The subscriptions granted, to subscribe again when the broker lost the session.
    subscriptions: Vec<(String, SubscriptionOptions)>,
    /// The last DISCONNECT the broker sent: reason string.
    server_reason_string: Option<String>,
    closing: Option<Closing>,
    /// Why the current connection is ending, once the session or a check said so.
    pending_loss: Option<Error>,
    /// What the broker's last CONNACK allows (5.0 Maximum QoS, Retain Available).
    server_limits: ServerLimits,
    connections: u64,
    read_buf: BytesMut,
    write_buf: Vec<u8>,
}

impl EventLoop {
    pub(crate) fn new(
        options: Options,
        commands: mpsc::Receiver<Command>,
        ack_sender: mpsc::WeakSender<Command>,
        messages: mpsc::Sender<Message>,
        events: broadcast::Sender<Event>,
    ) -> Self {
        let mut config = Config::new(Role::Client);
        config.receive_maximum = options.receive_maximum.max(1);
        config.topic_alias_maximum = options.topic_alias_maximum;
        config.queue = QueueLimits {
            messages: options.max_queued.max(1),
            bytes: 0,
            qos0_offline: true,
        };
        let mut session = Session::new(config);
        if options.adopt_session && !options.clean_start {
            session.adopt_server_session();
        }
        Self {
            options,
            session,
            commands,
            ack_sender,
            messages,
            events,
            origin: tokio::time::Instant::now(),
            publishes: HashMap::new(),
            queued: VecDeque::new(),
            reason_strings: HashMap::new(),
            requests: HashMap::new(),
            subscriptions: Vec::new(),
            server_reason_string: None,
            closing: None,
            pending_loss: None,
            server_limits: ServerLimits {
                maximum_qos: QoS::ExactlyOnce,
                retain_available: true,
            },
            connections: 0,
            read_buf: BytesMut::new(),
            write_buf: Vec::new(),
        }
    }

    fn now(&self) -> Instant {
        let ms = tokio::time::Instant::now()
            .duration_since(self.origin)
            .as_millis();
        Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    fn at(&self, instant: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_millis(instant.as_millis())
    }

    fn version(&self) -> ProtocolVersion {
        self.options.protocol
    }

    /// The task: connect, serve, reconnect, until stopped.
    pub(crate) async fn run(mut self, first: oneshot::Sender<Result<(), Error>>) {
        let mut first = Some(first);
        let mut attempt = 0;
        loop {
            let end = match self.connect_once().await {
                Ok((conn, session_present)) => {
                    attempt = 0;
                    // Before the first answer: a handle's `events()` sees what follows it.
                    let _ = self.events.send(Event::Connected { session_present });
                    if let Some(first) = first.take() {
                        if first.send(Ok(())).is_err() {
                            return; // nobody waits for this client any more
                        }
                    }
                    let end = self.serve(conn, session_present).await;
                    let now = self.now();
                    self.session.on_connection_lost(now);
                    self.after_session_events();
                    end
                }
                Err(error) => {
                    if let Some(first) = first.take() {
                        let _ = first.send(Err(error));
                        return;
                    }
                    End::Lost(error)
                }
            };
            match end {
                End::Stop => break,
                End::Lost(error) => {
                    tracing::debug!("connection lost: {error}");
                    let _ = self.events.send(Event::Disconnected { reason: error });
                }
            }
            if !self.options.reconnect.enabled {
                break;
            }
            let delay = self.options.reconnect.delay(attempt);
            attempt = attempt.saturating_add(1);
            if !self.wait_offline(delay).await {
                break;
            }
        }
        self.fail_everything();
    }

    /// Every future still waiting fails: the client has ended.
    fn fail_everything(&mut self) {
        for (_, pending) in self.publishes.drain() {
            let _ = pending.done.send(Err(Error::Disconnected));
        }
        for (_, request) in self.requests.drain() {
            match request {
                Request::Subscribe {
                    done: Some(done), ..
                } => {
                    let _ = done.send(Err(Error::Disconnected));
                }
                Request::Subscribe { done: None, .. } => {}
                Request::Unsubscribe { done, .. } => {
                    let _ = done.send(Err(Error::Disconnected));
                }
            }
        }
        if let Some(done) = self.closing.take().and_then(|c| c.done) {
            let _ = done.send(());
        }
        let _ = self.events.send(Event::Disconnected {
            reason: Error::Disconnected,
        });
    }

    /// Offline for `delay`: requests are taken (messages queue, up to the bound); false if
    /// the client is to stop.
    async fn wait_offline(&mut self, delay: Duration) -> bool {
        let until = tokio::time::Instant::now() + delay;
        loop {
            let timer = self.session.poll_timeout().map(|at| self.at(at));
            tokio::select! {
                () = sleep_until(until) => return true,
                () = sleep_until(timer.unwrap_or(until)), if timer.is_some() => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                    self.after_session_events();
                }
                command = self.commands.recv() => {
                    let Some(command) = command else { return false };
                    if let Command::Disconnect { done, .. } = command {
                        let _ = done.send(());
                        return false;
                    }
                    self.command(command);
                }
            }
        }
    }

    /// Serves one connection until it ends.
    async fn serve(&mut self, mut conn: Conn, session_present: bool) -> End {
        // Requests not answered on the last connection go again; lost subscriptions too.
        let mut again: Vec<u16> = self.requests.keys().copied().collect();
        again.sort_unstable();
        if !session_present && !self.subscriptions.is_empty() {
            if let Some(id) = self.session.reserve_packet_id() {
                let filters = self.subscriptions.clone();
                self.requests.insert(
                    id,
                    Request::Subscribe {
                        filters,
                        done: None,
                    },
                );
                again.push(id);
            }
        }
        for id in again {
            if let Err(end) = self.write_request(&mut conn, id).await {
                return end;
            }
        }
        // What came with the CONNACK, in the same read.
        let end = match self.on_bytes().await {
            Ok(()) => self.serve_loop(&mut conn).await,
            Err(end) => {
                let _ = self.flush(&mut conn).await;
                end
            }
        };
        conn.shutdown().await;
        end
    }

    async fn serve_loop(&mut self, conn: &mut Conn) -> End {
        loop {
            if let Err(end) = self.flush(conn).await {
                return end;
            }
            if !self.session.is_connected() {
                return End::Lost(self.lost_reason());
            }
            if let Some(closing) = &self.closing {
                let drained = self.session.inflight() == 0 && self.session.queued() == 0;
                if drained || tokio::time::Instant::now() >= closing.deadline {
                    return self.say_goodbye(conn).await;
                }
            }
            let timer = self.session.poll_timeout().map(|at| self.at(at));
            let closing_deadline = self.closing.as_ref().map(|c| c.deadline);
            let wake = match (timer, closing_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let room = self.closing.is_none()
                && self.session.queued() < self.options.max_queued.max(1) as usize;
            tokio::select! {
                read = conn.read(&mut self.read_buf) => match read {
                    Ok(0) => return End::Lost(Error::Io("the broker closed the connection".into())),
                    Ok(_) => {
                        if let Err(end) = self.on_bytes().await {
                            // A DISCONNECT with the reason may be due first.
                            let _ = self.flush(conn).await;
                            return end;
                        }
                    }
                    Err(e) => return End::Lost(e),
                },
                command = self.commands.recv(), if room => match command {
                    Some(Command::Subscribe { filters, done }) => {
                        if let Some(id) = self.take_subscribe(filters, done) {
                            if let Err(end) = self.write_request(conn, id).await {
                                return end;
                            }
                        }
                    }
                    Some(Command::Unsubscribe { filters, done }) => {
                        if let Some(id) = self.take_unsubscribe(filters, done) {
                            if let Err(end) = self.write_request(conn, id).await {
                                return end;
                            }
                        }
                    }
                    Some(command) => self.command(command),
                    None => {
                        // Every handle is gone: a normal disconnection.
                        self.closing = Some(Closing {
                            reason: ReasonCode::Success,
                            session_expiry: None,
                            done: None,
                            deadline: tokio::time::Instant::now() + self.options.connect_timeout,
                        });
                    }
                },
                () = sleep_until(wake.unwrap_or_else(far_future)), if wake.is_some() => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                    self.after_session_events();
                }
            }
        }
    }

    /// Why the session ended the connection.
    fn lost_reason(&mut self) -> Error {
        self.after_session_events();
        self.pending_loss
            .take()
            .unwrap_or_else(|| Error::Io("connection ended".into()))
    }
}

impl EventLoop {
    /// A request taken from a handle while connected or not.
    fn command(&mut self, command: Command) {
        match command {
            Command::Publish { message, done } => self.publish(message, done),
            Command::Subscribe { filters, done } => {
                self.take_subscribe(filters, done);
            }
            Command::Unsubscribe { filters, done } => {
                self.take_unsubscribe(filters, done);
            }
            Command::Ack(token, verdict) => self.session.acknowledge(token, verdict),
            Command::Disconnect {
                reason,
                session_expiry,
                done,
            } => {
                self.closing = Some(Closing {
                    reason,
                    session_expiry,
                    done: Some(done),
                    deadline: tokio::time::Instant::now() + self.options.connect_timeout,
                });
            }
        }
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}
