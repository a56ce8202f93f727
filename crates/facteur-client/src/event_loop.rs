//! The connection's task: it owns the connection and the [`Session`], and does what the
//! handles ask. Every protocol rule (QoS flows, packet identifiers, Receive Maximum, keep
//! alive, topic aliases, CONNACK negotiation) is the session's; this task moves bytes,
//! keeps the application's futures and reconnects.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use facteur_codec::{
    decode, shared_slice, split_frame, ConnAck, Connect, Disconnect, Encode, EncodeError, Packet,
    Properties, Property, ProtocolVersion, Publish as WirePublish, QoS, ReasonCode, Status,
    Subscribe, Subscription, SubscriptionOptions, Unsubscribe, Will as WireWill,
};
use facteur_session::{
    AllocStore, Config, Deferred, Event as SessionEvent, Instant, MessageId, PublishError,
    QueueLimits, Role, Session, Verdict,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{sleep_until, timeout};

use crate::client::{Event, Granted, Published};
use crate::message::{Message, PendingAck, PublishProperties};
use crate::transport::{self, Conn};
use crate::{Error, Options};

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
    Ack(Deferred),
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
    /// Requests written on the current connection.
    requests_sent: Vec<u16>,
    /// The subscriptions granted, to subscribe again when the broker lost the session.
    subscriptions: Vec<(String, SubscriptionOptions)>,
    /// The last DISCONNECT the broker sent: reason string.
    server_reason_string: Option<String>,
    closing: Option<Closing>,
    /// Why the current connection is ending, once the session or a check said so.
    pending_loss: Option<Error>,
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
        Self {
            options,
            session: Session::new(config),
            commands,
            ack_sender,
            messages,
            events,
            origin: tokio::time::Instant::now(),
            publishes: HashMap::new(),
            queued: VecDeque::new(),
            reason_strings: HashMap::new(),
            requests: HashMap::new(),
            requests_sent: Vec::new(),
            subscriptions: Vec::new(),
            server_reason_string: None,
            closing: None,
            pending_loss: None,
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
                    self.requests_sent.clear();
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

    /// One connection up to its CONNACK: the session negotiates.
    async fn connect_once(&mut self) -> Result<(Conn, bool), Error> {
        let limit = self.options.connect_timeout;
        let max = self.options.max_packet_size;
        let mut conn = timeout(limit, transport::connect(&self.options, max as usize))
            .await
            .map_err(|_| Error::Timeout)??;
        let deadline = tokio::time::Instant::now() + limit;
        let version = self.version();
        // 3.1.1: clean session as configured each time; 5.0: clean start once, then resume.
        let clean_start = self.options.clean_start && (self.connections == 0 || !version.is_v5());
        let will_props_list;
        let will_props;
        let will = match &self.options.will {
            Some(will) => {
                let mut list = will.properties.to_list();
                if let Some(delay) = will.delay {
                    list.push(Property::WillDelayInterval(delay));
                }
                will_props_list = list;
                will_props = Properties::from_slice(&will_props_list);
                Some(WireWill {
                    topic: &will.topic,
                    payload: &will.payload,
                    qos: will.qos,
                    retain: will.retain,
                    properties: will_props,
                })
            }
            None => None,
        };
        let mut props = Vec::new();
        if let Some(secs) = self.options.session_expiry {
            props.push(Property::SessionExpiryInterval(secs));
        }
        props.push(Property::ReceiveMaximum(self.session.receive_maximum()));
        props.push(Property::MaximumPacketSize(max));
        if self.session.topic_alias_maximum() > 0 {
            props.push(Property::TopicAliasMaximum(
                self.session.topic_alias_maximum(),
            ));
        }
        if !self.options.request_problem_information {
            props.push(Property::RequestProblemInformation(false));
        }
        for (k, v) in &self.options.user_properties {
            props.push(Property::UserProperty(k, v));
        }
        let connect = Connect {
            protocol: version,
            clean_start,
            keep_alive: self.options.keep_alive_secs(),
            client_id: &self.options.client_id,
            will,
            username: self.options.username.as_deref(),
            password: self.options.password.as_deref(),
            properties: if version.is_v5() {
                Properties::from_slice(&props)
            } else {
                Properties::EMPTY
            },
        };
        let packet = Packet::Connect(connect);
        let len = packet
            .encoded_len(version)
            .map_err(|e| Error::InvalidMessage(format!("CONNECT: {e}")))?;
        let mut out = vec![0; len];
        packet
            .encode(version, &mut out)
            .map_err(|e| Error::InvalidMessage(format!("CONNECT: {e}")))?;
        timeout(limit, conn.write_all(&out))
            .await
            .map_err(|_| Error::Timeout)??;
        self.read_buf.clear();
        let frame = loop {
            match split_frame(&mut self.read_buf, max) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(e) => return Err(Error::Protocol(e.reason_code())),
            }
            let n = tokio::time::timeout_at(deadline, conn.read(&mut self.read_buf))
                .await
                .map_err(|_| Error::Timeout)??;
            if n == 0 {
                return Err(Error::Io(
                    "the broker closed the connection before CONNACK".into(),
                ));
            }
        };
        let connack: ConnAck<'_> = match decode(&frame, version, max) {
            Ok(Status::Complete(d)) => match d.packet {
                Packet::ConnAck(connack) => connack,
                _ => return Err(Error::Protocol(ReasonCode::ProtocolError)),
            },
            Ok(Status::Incomplete(_)) => return Err(Error::Protocol(ReasonCode::MalformedPacket)),
            Err(e) => return Err(Error::Protocol(e.reason_code())),
        };
        let now = self.now();
        let connected = self
            .session
            .accept_connack(now, &connect, &connack)
            .map_err(|reason| {
                if connack.reason_code.is_error() {
                    Error::Refused {
                        reason,
                        reason_string: connack.properties.reason_string().map(str::to_owned),
                    }
                } else {
                    Error::Protocol(reason)
                }
            })?;
        self.session.limit_inflight(self.options.max_inflight);
        self.connections += 1;
        self.pending_loss = None;
        self.after_session_events();
        Ok((conn, connected.session_present))
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
            Command::Ack(token) => self.session.acknowledge(token, Verdict::Accept),
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

    /// Hands a message to the session, which queues it (connected or not).
    fn publish(&mut self, message: Outgoing, done: oneshot::Sender<Result<Published, Error>>) {
        let list = message.properties.to_list();
        let publish = WirePublish {
            qos: message.qos,
            retain: message.retain,
            properties: if self.version().is_v5() {
                Properties::from_slice(&list)
            } else {
                Properties::EMPTY
            },
            ..WirePublish::new(&message.topic, &message.payload)
        };
        let now = self.now();
        match self
            .session
            .publish_shared(&publish, message.payload.clone(), now)
        {
            Ok(id) => {
                self.publishes.insert(
                    id,
                    Pending {
                        qos: message.qos,
                        done,
                    },
                );
                self.queued.push_back(id);
            }
            Err(error) => {
                let error = match error {
                    PublishError::QueueFull | PublishError::Offline => Error::QueueFull,
                    other => Error::InvalidMessage(other.to_string()),
                };
                let _ = done.send(Err(error));
            }
        }
        self.after_session_events();
    }

    fn take_subscribe(
        &mut self,
        filters: Vec<(String, SubscriptionOptions)>,
        done: oneshot::Sender<Result<Vec<Granted>, Error>>,
    ) -> Option<u16> {
        let Some(id) = self.session.reserve_packet_id() else {
            let _ = done.send(Err(Error::QueueFull));
            return None;
        };
        self.requests.insert(
            id,
            Request::Subscribe {
                filters,
                done: Some(done),
            },
        );
        Some(id)
    }

    fn take_unsubscribe(
        &mut self,
        filters: Vec<String>,
        done: oneshot::Sender<Result<Vec<Result<(), ReasonCode>>, Error>>,
    ) -> Option<u16> {
        let Some(id) = self.session.reserve_packet_id() else {
            let _ = done.send(Err(Error::QueueFull));
            return None;
        };
        self.requests
            .insert(id, Request::Unsubscribe { filters, done });
        Some(id)
    }

    /// Writes the SUBSCRIBE or UNSUBSCRIBE of request `id`; one that cannot be encoded
    /// (a filter too long, larger than the broker takes) fails.
    async fn write_request(&mut self, conn: &mut Conn, id: u16) -> Result<(), End> {
        let version = self.version();
        let max = self.session.connection().peer_maximum_packet_size as usize;
        let encoded = match self.requests.get(&id) {
            None => return Ok(()),
            Some(Request::Subscribe { filters, .. }) => {
                let subs: Vec<Subscription<'_>> = filters
                    .iter()
                    .map(|(filter, options)| Subscription {
                        filter,
                        options: *options,
                    })
                    .collect();
                encode(&Packet::Subscribe(Subscribe::new(id, &subs)), version, max)
            }
            Some(Request::Unsubscribe { filters, .. }) => {
                let list: Vec<&str> = filters.iter().map(String::as_str).collect();
                encode(
                    &Packet::Unsubscribe(Unsubscribe::new(id, &list)),
                    version,
                    max,
                )
            }
        };
        let bytes = match encoded {
            Ok(bytes) => bytes,
            Err(why) => {
                self.session.release_packet_id(id);
                match self.requests.remove(&id) {
                    Some(Request::Subscribe {
                        done: Some(done), ..
                    }) => {
                        let _ = done.send(Err(Error::InvalidFilter(why)));
                    }
                    Some(Request::Unsubscribe { done, .. }) => {
                        let _ = done.send(Err(Error::InvalidFilter(why)));
                    }
                    _ => {}
                }
                return Ok(());
            }
        };
        self.write(conn, &bytes).await
    }

    fn write_timeout(&self) -> Option<Duration> {
        let ka = self.session.connection().keep_alive;
        (ka > 0).then(|| Duration::from_millis(u64::from(ka) * 1500))
    }

    /// Writes `bytes`; a write that cannot finish within 1.5 keep alive is a dead link.
    async fn write(&mut self, conn: &mut Conn, bytes: &[u8]) -> Result<(), End> {
        let result = match self.write_timeout() {
            Some(limit) => timeout(limit, conn.write_all(bytes))
                .await
                .unwrap_or(Err(Error::KeepAliveTimeout)),
            None => conn.write_all(bytes).await,
        };
        result.map_err(End::Lost)
    }

    /// Writes everything the session has to send, in batches of up to 64 KiB.
    async fn flush(&mut self, conn: &mut Conn) -> Result<(), End> {
        loop {
            let mut buf = std::mem::take(&mut self.write_buf);
            buf.clear();
            let now = self.now();
            let mut room = 4096;
            while buf.len() < 64 * 1024 {
                let len = buf.len();
                buf.resize(len + room, 0);
                match self.session.poll_transmit(now, &mut buf[len..]) {
                    Ok(Some(n)) => buf.truncate(len + n),
                    Ok(None) => {
                        buf.truncate(len);
                        break;
                    }
                    Err(EncodeError::BufferTooSmall { required, .. }) => {
                        buf.truncate(len);
                        room = required;
                        if len > 0 {
                            break; // write what is there, then the large one
                        }
                    }
                    Err(error) => {
                        // The session checked what it queued: this is a bug, not the network.
                        buf.truncate(len);
                        tracing::error!("cannot encode a packet: {error}");
                        self.session.abort(
                            ReasonCode::ImplementationSpecificError,
                            "the client cannot encode a packet",
                        );
                        self.pending_loss = Some(Error::InvalidMessage(error.to_string()));
                        break;
                    }
                }
            }
            self.after_session_events();
            if buf.is_empty() {
                self.write_buf = buf;
                return Ok(());
            }
            let written = self.write(conn, &buf).await;
            self.write_buf = buf;
            written?;
            self.complete_written();
        }
    }

    /// QoS 0 messages that left the session's queue were written: their futures complete.
    fn complete_written(&mut self) {
        let sent = self.queued.len().saturating_sub(self.session.queued());
        for _ in 0..sent {
            let Some(id) = self.queued.pop_front() else {
                return;
            };
            if self
                .publishes
                .get(&id)
                .is_some_and(|p| p.qos == QoS::AtMostOnce)
            {
                if let Some(p) = self.publishes.remove(&id) {
                    let _ = p.done.send(Ok(Published {
                        reason: ReasonCode::Success,
                        reason_string: None,
                    }));
                }
            }
        }
    }

    /// A message's future fails, and it leaves the queue's record.
    fn fail(&mut self, message: MessageId, error: Error) {
        self.queued.retain(|&m| m != message);
        if let Some(p) = self.publishes.remove(&message) {
            let _ = p.done.send(Err(error));
        }
    }

    /// Acts on what the session reports.
    fn after_session_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::Acknowledged {
                    message,
                    packet_id,
                    reason,
                    ..
                } => {
                    let reason_string = self.reason_strings.remove(&packet_id);
                    if let Some(p) = self.publishes.remove(&message) {
                        // PUBCOMP 0x92 answers a PUBREL resent after the broker had
                        // completed the flow (its PUBCOMP was lost): the PUBREC had
                        // already said it took the message. PUBREC cannot carry 0x92.
                        let done = p.qos == QoS::ExactlyOnce
                            && reason == ReasonCode::PacketIdentifierNotFound;
                        let _ = p.done.send(if reason.is_error() && !done {
                            Err(Error::PublishRefused {
                                reason,
                                reason_string,
                            })
                        } else {
                            Ok(Published {
                                reason,
                                reason_string,
                            })
                        });
                    }
                }
                SessionEvent::Expired { message } => self.fail(message, Error::Expired),
                SessionEvent::Dropped { message } => self.fail(message, Error::QueueFull),
                SessionEvent::TooLarge { message } => self.fail(
                    message,
                    Error::InvalidMessage("larger than the broker's Maximum Packet Size".into()),
                ),
                SessionEvent::ProtocolError { reason } => {
                    self.pending_loss = Some(Error::Protocol(reason));
                }
                SessionEvent::KeepAliveTimeout => {
                    self.pending_loss = Some(Error::KeepAliveTimeout);
                }
                SessionEvent::Disconnected { reason } => {
                    self.pending_loss = Some(Error::ServerDisconnected {
                        reason,
                        reason_string: self.server_reason_string.take(),
                    });
                }
                _ => {}
            }
        }
    }

    /// The connection ends because of the broker's bytes: DISCONNECT with `reason` (5.0).
    fn protocol_failure(&mut self, reason: ReasonCode, why: &'static str) -> End {
        self.session.abort(reason, why);
        self.pending_loss = Some(Error::Protocol(reason));
        End::Lost(Error::Protocol(reason))
    }

    /// Takes every whole packet read.
    async fn on_bytes(&mut self) -> Result<(), End> {
        let version = self.version();
        let max = self.options.max_packet_size;
        loop {
            let frame = match split_frame(&mut self.read_buf, max) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let why = if e.skip_len().is_some() {
                        "packet larger than the client's Maximum Packet Size"
                    } else {
                        "malformed packet"
                    };
                    return Err(self.protocol_failure(e.reason_code(), why));
                }
            };
            let packet = match decode(&frame, version, max) {
                Ok(Status::Complete(d)) => d.packet,
                Ok(Status::Incomplete(_)) => {
                    return Err(
                        self.protocol_failure(ReasonCode::MalformedPacket, "malformed packet")
                    )
                }
                Err(e) => return Err(self.protocol_failure(e.reason_code(), "malformed packet")),
            };
            self.before_handle(&packet)?;
            let now = self.now();
            let delivered = self
                .session
                .handle(packet, now)
                .map(|p| Message::from_publish(&p, shared_slice(&frame, p.payload)));
            if let Some(mut message) = delivered {
                if self.options.manual_acks && message.qos != QoS::AtMostOnce {
                    if let Some(token) = self.session.defer() {
                        match self.ack_sender.upgrade() {
                            Some(commands) => {
                                message.ack = Some(PendingAck {
                                    token,
                                    commands,
                                    sent: false,
                                });
                            }
                            None => self.session.acknowledge(token, Verdict::Accept),
                        }
                    }
                }
                self.session.decide(Verdict::Accept);
                // Waits while the application has not read enough: backpressure to the
                // broker. A closed stream drops the message (acknowledged).
                let _ = self.messages.send(message).await;
            }
            self.after_session_events();
            if !self.session.is_connected() {
                return Ok(());
            }
        }
    }

    /// What the client itself takes from a packet before the session sees it: answers to
    /// its requests, reason strings.
    fn before_handle(&mut self, packet: &Packet<'_>) -> Result<(), End> {
        match packet {
            Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubComp(r) => {
                if let Some(why) = r.properties.reason_string() {
                    // Bounded: at most one per identifier in flight, and never many.
                    if self.reason_strings.len() < 1024 {
                        self.reason_strings.insert(r.packet_id, why.to_owned());
                    }
                }
            }
            Packet::Disconnect(d) => {
                self.server_reason_string = d.properties.reason_string().map(str::to_owned);
            }
            Packet::SubAck(ack) => {
                let Some(Request::Subscribe { filters, done }) =
                    self.take_request(ack.packet_id, true)
                else {
                    return Ok(()); // the session says what is wrong
                };
                let codes: Vec<ReasonCode> = ack.reason_codes.iter().collect();
                if codes.len() != filters.len() {
                    if let Some(done) = done {
                        let _ = done.send(Err(Error::Protocol(ReasonCode::ProtocolError)));
                    }
                    return Err(self.protocol_failure(
                        ReasonCode::ProtocolError,
                        "SUBACK with another number of codes than filters",
                    ));
                }
                let mut results = Vec::with_capacity(codes.len());
                for ((filter, options), code) in filters.into_iter().zip(codes) {
                    let granted = match code {
                        ReasonCode::Success => Ok(QoS::AtMostOnce),
                        ReasonCode::GrantedQoS1 => Ok(QoS::AtLeastOnce),
                        ReasonCode::GrantedQoS2 => Ok(QoS::ExactlyOnce),
                        other => Err(other),
                    };
                    if granted.is_ok() {
                        self.subscriptions.retain(|(f, _)| *f != filter);
                        self.subscriptions.push((filter, options));
                    }
                    results.push(granted);
                }
                if let Some(done) = done {
                    let _ = done.send(Ok(results));
                }
            }
            Packet::UnsubAck(ack) => {
                let Some(Request::Unsubscribe { filters, done }) =
                    self.take_request(ack.packet_id, false)
                else {
                    return Ok(());
                };
                let codes: Vec<ReasonCode> = ack.reason_codes.iter().collect();
                let results: Vec<Result<(), ReasonCode>> = if self.version().is_v5() {
                    if codes.len() != filters.len() {
                        let _ = done.send(Err(Error::Protocol(ReasonCode::ProtocolError)));
                        return Err(self.protocol_failure(
                            ReasonCode::ProtocolError,
                            "UNSUBACK with another number of codes than filters",
                        ));
                    }
                    codes
                        .into_iter()
                        .map(|c| if c.is_error() { Err(c) } else { Ok(()) })
                        .collect()
                } else {
                    filters.iter().map(|_| Ok(())).collect()
                };
                for filter in &filters {
                    self.subscriptions.retain(|(f, _)| f != filter);
                }
                let _ = done.send(Ok(results));
            }
            _ => {}
        }
        Ok(())
    }

    /// The request `id` if it is of the kind answered (SUBSCRIBE when `subscribe`).
    fn take_request(&mut self, id: u16, subscribe: bool) -> Option<Request> {
        let matches = match self.requests.get(&id)? {
            Request::Subscribe { .. } => subscribe,
            Request::Unsubscribe { .. } => !subscribe,
        };
        if !matches {
            return None;
        }
        self.requests_sent.retain(|&r| r != id);
        self.requests.remove(&id)
    }

    /// The graceful end: DISCONNECT with the application's reason (and Session Expiry).
    async fn say_goodbye(&mut self, conn: &mut Conn) -> End {
        let Some(closing) = self.closing.take() else {
            return End::Stop;
        };
        let version = self.version();
        let props = closing
            .session_expiry
            .map(Property::SessionExpiryInterval)
            .into_iter()
            .collect::<Vec<_>>();
        let disconnect = Disconnect {
            reason_code: closing.reason,
            properties: if version.is_v5() {
                Properties::from_slice(&props)
            } else {
                Properties::EMPTY
            },
        };
        let max = self.session.connection().peer_maximum_packet_size as usize;
        if let Ok(bytes) = encode(&Packet::Disconnect(disconnect), version, max) {
            let _ = self.write(conn, &bytes).await;
        }
        // The will is deleted by a normal DISCONNECT: the session is told it is over.
        self.closing = Some(Closing {
            done: closing.done,
            ..closing
        });
        End::Stop
    }
}

/// `packet` encoded, if it is at most `max` bytes.
fn encode(packet: &Packet<'_>, version: ProtocolVersion, max: usize) -> Result<Vec<u8>, String> {
    let len = packet.encoded_len(version).map_err(|e| e.to_string())?;
    if len > max {
        return Err(format!(
            "{len} bytes, more than the broker's Maximum Packet Size ({max})"
        ));
    }
    let mut out = vec![0; len];
    packet
        .encode(version, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}
