//! Client sessions. Each client identifier has one task that owns its [`Session`]; network
//! connections attach to it and detach from it. A session outlives its connection while its
//! expiry allows (persistent sessions: subscriptions kept, QoS 1/2 messages queued offline),
//! and its will is published when the session state machine says it is due.

use crate::router::{Attach, ConnId, Delivery, Message, Router, SessionSlot, Subscribed, Waiting};
use crate::Config;
use bytes::{Buf, BytesMut};
use facteur_codec::{
    decode, ConnAck, Connect, Disconnect, Encode, Packet, PacketType, Properties, Property,
    ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, Status, SubAck, Subscribe, UnsubAck,
    Unsubscribe,
};
use facteur_session::{AllocStore, Connection, Event, Instant, Role, Session};
use facteur_topic::TopicFilter;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// Serves one accepted connection: reads its CONNECT, then hands it to its session's task
/// (starting one if the client has none).
pub(crate) async fn serve(
    mut stream: TcpStream,
    config: Arc<Config>,
    router: Arc<Router>,
    stopped: watch::Receiver<bool>,
) {
    let mut read = BytesMut::new();
    let frame = match read_connect(&mut stream, &mut read, &config).await {
        Ok(Some(frame)) => frame,
        Ok(None) => return,
        Err(error) => {
            tracing::debug!(%error, "no valid CONNECT");
            return;
        }
    };
    let Some((connect, _)) = parse_connect(&frame) else {
        return;
    };
    let full = config.max_connections != 0 && router.links() >= config.max_connections;
    let client_id = match client_id_for(&connect, &config, &router) {
        Some(id) if !full => id,
        _ => {
            let reason = if full {
                ReasonCode::ServerBusy
            } else {
                ReasonCode::ClientIdentifierNotValid
            };
            let _ = refuse(&mut stream, connect.protocol, reason).await;
            return;
        }
    };
    let assigned = connect.client_id.is_empty();
    // Boxed: the session's channel then holds pointers, not whole sockets and buffers.
    let mut attach = Box::new(Attach {
        stream,
        read,
        frame,
        assigned,
    });
    // At most twice: a session task that ended just now is replaced by a new one.
    for _ in 0..2 {
        match router.attach(&client_id) {
            SessionSlot::Existing(sender) => match sender.send(attach).await {
                Ok(()) => return,
                Err(returned) => attach = returned.0,
            },
            SessionSlot::New { key, resume } => {
                let task = SessionTask::new(key, client_id, &config, &router);
                task.run(attach, resume, stopped).await;
                return;
            }
        }
    }
}

fn parse_connect(frame: &[u8]) -> Option<(Connect<'_>, usize)> {
    match decode(
        frame,
        ProtocolVersion::V3_1_1,
        facteur_codec::PROTOCOL_MAX_PACKET_SIZE,
    ) {
        Ok(Status::Complete(decoded)) => match decoded.packet {
            Packet::Connect(connect) => Some((connect, decoded.len)),
            _ => None,
        },
        _ => None,
    }
}

/// The client identifier the session goes by, or `None` if the CONNECT must be refused.
fn client_id_for(connect: &Connect<'_>, config: &Config, router: &Router) -> Option<String> {
    if !connect.client_id.is_empty() {
        return Some(connect.client_id.to_owned());
    }
    // 3.1 has no empty identifier; 3.1.1 allows one only with clean session.
    let version = connect.protocol;
    if !config.allow_zero_length_clientid
        || version == ProtocolVersion::V3_1
        || (version == ProtocolVersion::V3_1_1 && !connect.clean_start)
    {
        return None;
    }
    Some(format!("facteur-{:016x}", router.next_key()))
}

/// Reads until a whole first packet is there (within the connect timeout). Returns its
/// bytes, or `None` if the client closed or timed out or sent something else, after answering
/// what must be answered (an unsupported protocol version gets CONNACK 0x01).
async fn read_connect(
    stream: &mut TcpStream,
    read: &mut BytesMut,
    config: &Config,
) -> std::io::Result<Option<BytesMut>> {
    let deadline = tokio::time::Instant::now() + config.connect_timeout();
    loop {
        match decode(read, ProtocolVersion::V3_1_1, config.packet_limit()) {
            Ok(Status::Complete(decoded)) => {
                if !matches!(decoded.packet, Packet::Connect(_)) {
                    return Ok(None);
                }
                let len = decoded.len;
                return Ok(Some(read.split_to(len)));
            }
            Ok(Status::Incomplete(_)) => {}
            Err(error) => {
                if error.reason_code() == ReasonCode::UnsupportedProtocolVersion {
                    // The client's version is unknown: the 3.x answer is the one all read.
                    stream.write_all(&[0x20, 0x02, 0x00, 0x01]).await?;
                }
                return Ok(None);
            }
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(read)).await {
            Ok(Ok(0)) | Err(_) => return Ok(None),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
        }
    }
}

async fn refuse(
    stream: &mut TcpStream,
    version: ProtocolVersion,
    reason: ReasonCode,
) -> std::io::Result<()> {
    let mut buf = [0u8; 8];
    let n = ConnAck::new(reason)
        .encode(version, &mut buf)
        .map_err(std::io::Error::other)?;
    stream.write_all(&buf[..n]).await?;
    stream.shutdown().await
}

/// How a network connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client sent DISCONNECT.
    Disconnected,
    /// Anything else: closed socket, error, keep alive, takeover, shutdown.
    Lost,
}

/// The network side of a session while a client is connected.
struct Link {
    stream: TcpStream,
    read: BytesMut,
    out: Vec<u8>,
    end: Option<End>,
}

/// One client session and the task that runs it.
struct SessionTask {
    key: ConnId,
    client_id: String,
    version: ProtocolVersion,
    session: Session<AllocStore>,
    mailbox: mpsc::Receiver<Delivery>,
    filters: HashSet<String>,
    link: Option<Link>,
    /// Whether a client is connected (read by publishers deciding to wait or drop).
    online: Arc<AtomicBool>,
    /// Deliveries this session's publishes owe to connected subscribers with full mailboxes.
    waiting: Vec<Waiting>,
    router: Arc<Router>,
    config: Arc<Config>,
}

impl SessionTask {
    fn new(key: ConnId, client_id: String, config: &Arc<Config>, router: &Arc<Router>) -> Self {
        let (sender, mailbox) = mpsc::channel(config.max_queued_messages);
        let online = Arc::new(AtomicBool::new(false));
        router.open_mailbox(key, sender, online.clone());
        Self {
            key,
            client_id,
            version: ProtocolVersion::V3_1_1,
            session: Self::fresh_session(config, ProtocolVersion::V3_1_1),
            mailbox,
            filters: HashSet::new(),
            link: None,
            online,
            waiting: Vec::new(),
            router: router.clone(),
            config: config.clone(),
        }
    }

    fn fresh_session(config: &Config, version: ProtocolVersion) -> Session<AllocStore> {
        Session::new(facteur_session::Config {
            role: Role::Server,
            receive_maximum: config.max_inflight_messages,
            topic_alias_maximum: if version.is_v5() {
                config.max_topic_alias
            } else {
                0
            },
        })
    }

    fn now(&self) -> Instant {
        self.router.now()
    }

    async fn run(
        mut self,
        first: Box<Attach>,
        mut resume: mpsc::Receiver<Box<Attach>>,
        mut stopped: watch::Receiver<bool>,
    ) {
        self.attach(first, false).await;
        loop {
            let mut over = self.process_events();
            if let Err(error) = self.flush().await {
                tracing::debug!(client = %self.client_id, %error, "write failed");
                self.end_link(End::Lost);
            }
            if self.link.as_ref().is_some_and(|l| l.end.is_some()) {
                self.detach().await;
                over |= self.process_events();
            }
            if over {
                break;
            }
            if !self.waiting.is_empty() {
                self.wait_for_room().await;
                // Packets that were read but held back while waiting.
                self.on_bytes();
                continue;
            }
            let deadline = self
                .session
                .poll_timeout()
                .map(|at| self.router.deadline(at));
            tokio::select! {
                n = read_link(&mut self.link) => match n {
                    Ok(0) | Err(_) => {
                        if let Some(link) = &mut self.link {
                            link.end.get_or_insert(End::Lost);
                        }
                    }
                    Ok(n) => {
                        self.router.stats.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                        self.on_bytes();
                    }
                },
                Some(attach) = resume.recv() => {
                    if self.link.is_some() {
                        tracing::debug!(client = %self.client_id, "session taken over");
                        self.close_with(ReasonCode::SessionTakenOver);
                        let _ = self.flush().await;
                        self.detach().await;
                    }
                    self.attach(attach, true).await;
                }
                Some(delivery) = self.mailbox.recv(), if self.has_room() => self.deliver(delivery),
                _ = sleep_until(deadline) => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                }
                _ = stopped.changed() => {
                    self.close_with(ReasonCode::ServerShuttingDown);
                    let _ = self.flush().await;
                    self.detach().await;
                    // The broker is going: a will still waiting for its delay goes now.
                    self.publish_will();
                    break;
                }
            }
        }
        self.end(resume);
    }

    /// Takes a new network connection: answers its CONNECT, resuming this session or
    /// starting it afresh as the client asks.
    async fn attach(&mut self, attach: Box<Attach>, had_state: bool) {
        let Attach {
            mut stream,
            read,
            frame,
            assigned,
        } = *attach;
        let Some((connect, _)) = parse_connect(&frame) else {
            return;
        };
        let version = connect.protocol;
        let present = had_state && !connect.clean_start;
        if !present {
            self.reset(version);
        }
        self.version = version;
        let max_keepalive = self.config.max_keepalive;
        let keep_alive = match connect.keep_alive {
            0 if max_keepalive < u16::MAX => max_keepalive,
            k if k > max_keepalive => max_keepalive,
            k => k,
        };
        let props = &connect.properties;
        let mut connection = Connection::new(version, keep_alive);
        connection.peer_receive_maximum = props.receive_maximum().unwrap_or(u16::MAX);
        connection.peer_topic_alias_maximum = props.topic_alias_maximum().unwrap_or(0);
        if let Some(max) = props.maximum_packet_size() {
            connection.peer_maximum_packet_size = max;
        }
        let now = self.now();
        self.session.on_connect(now, connection);
        // 3.x: clean session ends the session with the connection, otherwise it stays
        // (mosquitto's default, no expiry). 5.0: the Session Expiry Interval, 0 by default.
        let expiry = if version.is_v5() {
            props.session_expiry_interval().unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            u32::MAX
        };
        self.session.set_session_expiry(expiry);
        match &connect.will {
            Some(will) => {
                if let Err(error) = self.session.set_will(will) {
                    tracing::debug!(client = %self.client_id, %error, "will refused");
                    let _ = refuse(&mut stream, version, ReasonCode::PayloadFormatInvalid).await;
                    self.session.on_connection_lost(now);
                    return;
                }
            }
            None => self.session.clear_will(),
        }

        let config = &self.config;
        let mut connack_props = Vec::new();
        if version.is_v5() {
            connack_props.push(Property::ReceiveMaximum(config.max_inflight_messages));
            if config.max_topic_alias > 0 {
                connack_props.push(Property::TopicAliasMaximum(config.max_topic_alias));
            }
            if !config.retain_available {
                connack_props.push(Property::RetainAvailable(false));
            }
            if config.max_packet_size > 0 {
                connack_props.push(Property::MaximumPacketSize(config.max_packet_size));
            }
            if keep_alive != connect.keep_alive {
                connack_props.push(Property::ServerKeepAlive(keep_alive));
            }
            if assigned {
                connack_props.push(Property::AssignedClientIdentifier(&self.client_id));
            }
        }
        let connack = ConnAck {
            session_present: present,
            properties: Properties::from_slice(&connack_props),
            ..ConnAck::new(ReasonCode::Success)
        };
        let mut link = Link {
            stream,
            read,
            out: Vec::new(),
            end: None,
        };
        encode_into(&mut link.out, version, &Packet::ConnAck(connack));
        self.router.link_up();
        self.online.store(true, Ordering::Relaxed);
        self.link = Some(link);
        tracing::debug!(client = %self.client_id, %version, present, "connected");
        // Bytes that came after CONNECT in the same read.
        self.on_bytes();
    }

    /// Waits (bounded) until the full mailboxes this session's publishes are owed to have
    /// room. Meanwhile nothing more is read from this client: TCP slows its publishing down.
    async fn wait_for_room(&mut self) {
        for (mailbox, delivery) in std::mem::take(&mut self.waiting) {
            let sent = tokio::time::timeout(BACKPRESSURE_WAIT, mailbox.send(delivery)).await;
            if !matches!(sent, Ok(Ok(()))) {
                self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Starts the session afresh: no subscriptions, nothing queued or in flight.
    fn reset(&mut self, version: ProtocolVersion) {
        self.router.unsubscribe_all(self.key, self.filters.drain());
        while self.mailbox.try_recv().is_ok() {}
        self.session = Self::fresh_session(&self.config, version);
    }

    /// Ends the current network connection; the session stays.
    async fn detach(&mut self) {
        let Some(mut link) = self.link.take() else {
            return;
        };
        let _ = link.stream.shutdown().await;
        self.router.link_down();
        self.online.store(false, Ordering::Relaxed);
        let now = self.now();
        self.session.on_connection_lost(now);
        // A will without delay, or a session ending now, is due at once.
        self.session.handle_timeout(now);
        tracing::debug!(client = %self.client_id, end = ?link.end, "connection closed");
    }

    /// Writes what is waiting for the connected client.
    async fn flush(&mut self) -> std::io::Result<()> {
        self.drain_session();
        if let Some(link) = &mut self.link {
            if !link.out.is_empty() {
                link.stream.write_all(&link.out).await?;
                self.router
                    .stats
                    .bytes_sent
                    .fetch_add(link.out.len() as u64, Ordering::Relaxed);
                link.out.clear();
                // An idle connection keeps no large buffer.
                if link.out.capacity() > IDLE_BUFFER {
                    link.out = Vec::new();
                }
            }
        }
        Ok(())
    }

    /// Acts on the session's events; true when the session is over.
    fn process_events(&mut self) -> bool {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::ProtocolError { reason } => {
                    tracing::debug!(client = %self.client_id, %reason, "protocol error");
                    self.end_link(End::Lost);
                }
                Event::KeepAliveTimeout => {
                    tracing::debug!(client = %self.client_id, "keep alive expired");
                    self.end_link(End::Lost);
                }
                Event::Disconnected { .. } => self.end_link(End::Disconnected),
                Event::WillDue => self.publish_will(),
                Event::SessionExpired => return true,
                _ => {}
            }
        }
        false
    }

    fn end_link(&mut self, end: End) {
        if let Some(link) = &mut self.link {
            link.end.get_or_insert(end);
        }
    }

    fn publish_will(&mut self) {
        let message = self
            .session
            .will()
            .map(|w| Message::new(w.topic, w.payload, w.qos, w.retain, &w.properties));
        if let Some(message) = message {
            tracing::debug!(client = %self.client_id, topic = %message.topic, "publishing will");
            self.session.clear_will();
            let waiting = self.router.publish(self.key, message);
            self.router.drop_waiting(waiting);
        }
    }

    /// Ends the task: subscriptions and mailbox go; connections that arrived meanwhile get a
    /// session task of their own.
    fn end(mut self, mut resume: mpsc::Receiver<Box<Attach>>) {
        self.router.detach(&self.client_id, self.key);
        self.router.unsubscribe_all(self.key, self.filters.drain());
        self.router.close_mailbox(self.key);
        resume.close();
        while let Ok(attach) = resume.try_recv() {
            let (config, router) = (self.config.clone(), self.router.clone());
            let stopped = self.router.stop_signal();
            let client_id = self.client_id.clone();
            tokio::spawn(async move {
                if let SessionSlot::New { key, resume } = router.attach(&client_id) {
                    SessionTask::new(key, client_id, &config, &router)
                        .run(attach, resume, stopped)
                        .await;
                }
            });
        }
        tracing::debug!(client = %self.client_id, "session ended");
    }

    /// Ends the connection from the broker's side: 5.0 clients are told why.
    fn close_with(&mut self, reason: ReasonCode) {
        let version = self.version;
        if let Some(link) = &mut self.link {
            if version.is_v5() && link.end.is_none() {
                encode_into(
                    &mut link.out,
                    version,
                    &Packet::Disconnect(Disconnect::new(reason)),
                );
            }
            link.end.get_or_insert(End::Lost);
        }
    }

    fn on_bytes(&mut self) {
        let Some(mut read) = self.link.as_mut().map(|l| std::mem::take(&mut l.read)) else {
            return;
        };
        while self.link.as_ref().is_some_and(|l| l.end.is_none()) && self.waiting.is_empty() {
            match decode(&read, self.version, self.config.packet_limit()) {
                Ok(Status::Complete(decoded)) => {
                    let len = decoded.len;
                    self.on_packet(decoded.packet);
                    read.advance(len);
                }
                Ok(Status::Incomplete(_)) => break,
                Err(error) => {
                    tracing::debug!(client = %self.client_id, %error, "malformed packet");
                    let reason = error.reason_code();
                    let reason = if reason.is_valid_for(PacketType::Disconnect) {
                        reason
                    } else {
                        ReasonCode::ProtocolError
                    };
                    self.close_with(reason);
                    break;
                }
            }
        }
        if let Some(link) = &mut self.link {
            if read.is_empty() && read.capacity() > IDLE_BUFFER {
                read = BytesMut::new();
            }
            link.read = read;
        }
    }

    fn queue(&mut self, packet: &Packet<'_>) {
        let version = self.version;
        if let Some(link) = &mut self.link {
            encode_into(&mut link.out, version, packet);
        }
    }

    fn on_packet(&mut self, packet: Packet<'_>) {
        let now = self.now();
        match packet {
            Packet::Connect(_) => self.close_with(ReasonCode::ProtocolError),
            Packet::Subscribe(subscribe) => self.on_subscribe(&subscribe, now),
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(&unsubscribe),
            Packet::Auth(_) => self.close_with(ReasonCode::BadAuthenticationMethod),
            Packet::Publish(_) => {
                self.router
                    .stats
                    .messages_received
                    .fetch_add(1, Ordering::Relaxed);
                let limit = self.config.message_size_limit as usize;
                let message = self
                    .session
                    .handle(packet, now)
                    .filter(|p| limit == 0 || p.payload.len() <= limit)
                    .map(|p| Message::new(p.topic, p.payload, p.qos, p.retain, &p.properties));
                if let Some(message) = message {
                    let waiting = self.router.publish(self.key, message);
                    self.waiting.extend(waiting);
                }
            }
            other => {
                self.session.handle(other, now);
            }
        }
    }

    fn on_subscribe(&mut self, subscribe: &Subscribe<'_>, now: Instant) {
        let mut codes = Vec::new();
        let mut retained = Vec::new();
        for subscription in subscribe.subscriptions.iter() {
            let Ok(filter) = TopicFilter::new(subscription.filter) else {
                codes.push(ReasonCode::TopicFilterInvalid);
                continue;
            };
            let shared = filter.shared().is_some();
            if shared && (!self.version.is_v5() || subscription.options.no_local) {
                // No local on a shared subscription is a protocol error (MQTT 5.0 §3.8.3.1);
                // before 5.0 `$share/` is an ordinary filter, which facteur does not take.
                codes.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            let options = subscription.options;
            let subscribed = Subscribed {
                options,
                id: subscribe.properties.subscription_identifier(),
            };
            let new = self.router.subscribe(self.key, filter, subscribed);
            self.filters.insert(subscription.filter.to_owned());
            codes.push(match options.qos {
                QoS::AtMostOnce => ReasonCode::Success,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            let send_retained = match options.retain_handling {
                RetainHandling::SendOnSubscribe => true,
                RetainHandling::SendIfNew => new,
                RetainHandling::DoNotSend => false,
            };
            if send_retained && !shared {
                for message in self.router.retained_for(filter) {
                    let qos = message.qos.min(options.qos);
                    retained.push(Delivery {
                        message,
                        qos,
                        retain: true,
                        subscription_ids: subscribed.id.into_iter().collect(),
                    });
                }
            }
        }
        self.queue(&Packet::SubAck(SubAck::new(subscribe.packet_id, &codes)));
        for delivery in retained {
            self.publish_to_session(&delivery, now);
        }
    }

    fn on_unsubscribe(&mut self, unsubscribe: &Unsubscribe<'_>) {
        let mut codes = Vec::new();
        for filter in unsubscribe.filters.iter() {
            let existed = TopicFilter::new(filter)
                .map(|f| self.router.unsubscribe(self.key, f))
                .unwrap_or(false);
            self.filters.remove(filter);
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        self.queue(&Packet::UnsubAck(UnsubAck::new(
            unsubscribe.packet_id,
            &codes,
        )));
    }

    /// True while the session's queue can take more: otherwise deliveries stay in the
    /// mailbox, which fills, and publishers wait (QoS 1/2) or drop (QoS 0).
    fn has_room(&self) -> bool {
        self.link.is_none() || self.session.queued() < self.config.max_queued_messages
    }

    fn deliver(&mut self, delivery: Delivery) {
        let now = self.now();
        self.publish_to_session(&delivery, now);
        // Take whatever else is already waiting, so it goes out in the same write.
        while self.has_room() {
            let Ok(delivery) = self.mailbox.try_recv() else {
                break;
            };
            self.publish_to_session(&delivery, now);
        }
    }

    fn publish_to_session(&mut self, delivery: &Delivery, now: Instant) {
        // Offline, QoS 0 messages are not kept (MQTT allows it; mosquitto does the same).
        let offline = self.link.is_none();
        // The session's queue is bounded like the mailbox in front of it: a subscriber that
        // does not keep up loses new messages (counted) instead of growing memory.
        if (offline && delivery.qos == QoS::AtMostOnce)
            || self.session.queued() >= self.config.max_queued_messages
        {
            self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let message = &delivery.message;
        // The subscriber's subscription identifiers join the message's own properties.
        let with_ids: Vec<Property<'_>>;
        let properties = if delivery.subscription_ids.is_empty() || !self.version.is_v5() {
            message.properties()
        } else {
            with_ids = message
                .properties()
                .iter()
                .chain(
                    delivery
                        .subscription_ids
                        .iter()
                        .map(|&id| Property::SubscriptionIdentifier(id)),
                )
                .collect();
            Properties::from_slice(&with_ids)
        };
        let publish = Publish {
            qos: delivery.qos,
            retain: delivery.retain,
            properties,
            ..Publish::new(&message.topic, &message.payload)
        };
        match self.session.publish(&publish, now) {
            Ok(_) => {
                self.router
                    .stats
                    .messages_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::debug!(client = %self.client_id, %error, "message not queued");
                self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Moves everything the session has to send into the connection's output buffer.
    fn drain_session(&mut self) {
        let now = self.now();
        let Some(link) = &mut self.link else {
            return;
        };
        // The session encodes into a per-thread scratch buffer (no await in between), so a
        // connection's own buffer only grows to what it actually sends.
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            loop {
                match self.session.poll_transmit(now, &mut scratch) {
                    Ok(Some(n)) => link.out.extend_from_slice(&scratch[..n]),
                    Ok(None) => break,
                    Err(facteur_codec::EncodeError::BufferTooSmall { required, .. }) => {
                        let mut big = vec![0u8; required];
                        match self.session.poll_transmit(now, &mut big) {
                            Ok(Some(n)) => link.out.extend_from_slice(&big[..n]),
                            _ => break,
                        }
                    }
                    Err(error) => {
                        tracing::warn!(client = %self.client_id, %error, "cannot encode");
                        break;
                    }
                }
            }
        });
    }
}

/// How long a publishing connection waits for room in a connected subscriber's full mailbox
/// before the QoS 1/2 delivery is dropped (and counted): long enough for a subscriber that is
/// merely slower, short enough that a stuck one cannot stall publishers.
const BACKPRESSURE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Buffers larger than this are released when a connection goes idle.
const IDLE_BUFFER: usize = 16 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
}

fn encode_into(out: &mut Vec<u8>, version: ProtocolVersion, packet: &Packet<'_>) {
    match packet.encoded_len(version) {
        Ok(len) => {
            let at = out.len();
            out.resize(at + len, 0);
            if packet.encode(version, &mut out[at..]).is_err() {
                out.truncate(at);
            }
        }
        Err(error) => tracing::warn!(%error, "cannot encode"),
    }
}

/// Reads from the connected client, or waits forever when there is none.
async fn read_link(link: &mut Option<Link>) -> std::io::Result<usize> {
    match link {
        Some(link) if link.end.is_none() => link.stream.read_buf(&mut link.read).await,
        _ => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
