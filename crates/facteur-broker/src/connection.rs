//! One client connection: CONNECT, then packets in and deliveries out until either side ends
//! it. The QoS flows and keep alive are facteur-session's; this task owns the socket.

use crate::router::{ConnId, Delivery, Message, Router};
use crate::Config;
use bytes::{Buf, BytesMut};
use facteur_codec::{
    decode, ConnAck, Connect, Disconnect, Encode, Packet, Properties, Property, ProtocolVersion,
    Publish, QoS, ReasonCode, RetainHandling, Status, SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use facteur_session::{AllocStore, Connection, Event, Instant, Role, Session};
use facteur_topic::TopicFilter;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};

/// Serves one accepted connection to its end.
pub(crate) async fn serve(
    mut stream: TcpStream,
    id: ConnId,
    config: Arc<Config>,
    router: Arc<Router>,
    stopped: watch::Receiver<bool>,
) {
    let mut read = BytesMut::with_capacity(4096);
    let connect = match read_connect(&mut stream, &mut read, &config).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return,
        Err(error) => {
            tracing::debug!(id, %error, "no valid CONNECT");
            return;
        }
    };
    let Ok(Status::Complete(decoded)) =
        decode(&connect, ProtocolVersion::V3_1_1, config.packet_limit())
    else {
        return;
    };
    let Packet::Connect(packet) = decoded.packet else {
        return;
    };
    let Some(mut client) = Client::accept(&packet, id, &config, &router) else {
        let _ = refuse(&mut stream, &packet, &config, &router).await;
        return;
    };
    if let Err(error) = client.run(&mut stream, read, stopped).await {
        tracing::debug!(id, %error, "connection ended with an error");
    }
    client.finish(&router);
}

/// Reads until a whole first packet is there (within the connect timeout). Returns its
/// bytes, or `None` if the client closed or timed out, after answering what must be
/// answered (an unsupported protocol version gets CONNACK 0x01 / 0x84).
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

/// Answers a CONNECT that [`Client::accept`] refused.
async fn refuse(
    stream: &mut TcpStream,
    connect: &Connect<'_>,
    config: &Config,
    router: &Router,
) -> std::io::Result<()> {
    let full = config.max_connections != 0 && router.connected() >= config.max_connections;
    let reason = if full {
        ReasonCode::ServerBusy
    } else {
        ReasonCode::ClientIdentifierNotValid
    };
    let mut buf = [0u8; 8];
    let n = ConnAck::new(reason)
        .encode(connect.protocol, &mut buf)
        .map_err(std::io::Error::other)?;
    stream.write_all(&buf[..n]).await?;
    stream.shutdown().await
}

/// A will, kept until the connection ends.
struct Will {
    message: Message,
}

/// How a connection ended, which decides the will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// DISCONNECT with reason 0x00: no will.
    Normal,
    /// Anything else: the will is published.
    Abnormal,
}

struct Client {
    id: ConnId,
    client_id: String,
    version: ProtocolVersion,
    session: Session<AllocStore>,
    mailbox: mpsc::Receiver<Delivery>,
    takeover: Arc<Notify>,
    filters: HashSet<String>,
    will: Option<Will>,
    router: Arc<Router>,
    config: Arc<Config>,
    started: tokio::time::Instant,
    out: Vec<u8>,
    end: Option<End>,
}

impl Client {
    /// Checks the CONNECT, registers the client and queues its CONNACK; `None` if refused.
    fn accept(
        connect: &Connect<'_>,
        id: ConnId,
        config: &Arc<Config>,
        router: &Arc<Router>,
    ) -> Option<Self> {
        let version = connect.protocol;
        if config.max_connections != 0 && router.connected() >= config.max_connections {
            return None;
        }
        let mut assigned = None;
        let client_id = if connect.client_id.is_empty() {
            // 3.1.1 requires clean session for an empty identifier; 3.1 has none.
            if !config.allow_zero_length_clientid
                || version == ProtocolVersion::V3_1
                || (version == ProtocolVersion::V3_1_1 && !connect.clean_start)
            {
                return None;
            }
            let name = format!("facteur-{id:016x}");
            assigned = Some(name.clone());
            name
        } else {
            connect.client_id.to_owned()
        };
        let max_keepalive = config.max_keepalive;
        let keep_alive = match connect.keep_alive {
            0 if max_keepalive < u16::MAX => max_keepalive,
            k if k > max_keepalive => max_keepalive,
            k => k,
        };
        let props = &connect.properties;
        let mut session = Session::new(facteur_session::Config {
            role: Role::Server,
            receive_maximum: config.max_inflight_messages,
            topic_alias_maximum: if version.is_v5() {
                config.max_topic_alias
            } else {
                0
            },
        });
        let started = tokio::time::Instant::now();
        let mut connection = Connection::new(version, keep_alive);
        connection.peer_receive_maximum = props.receive_maximum().unwrap_or(u16::MAX);
        connection.peer_topic_alias_maximum = props.topic_alias_maximum().unwrap_or(0);
        if let Some(max) = props.maximum_packet_size() {
            connection.peer_maximum_packet_size = max;
        }
        session.on_connect(Instant::from_millis(0), connection);

        let will = connect.will.map(|w| Will {
            message: Message::new(w.topic, w.payload, w.qos, w.retain, &w.properties),
        });
        let (sender, mailbox) = mpsc::channel(config.max_queued_messages);
        let takeover = Arc::new(Notify::new());
        router.register(&client_id, id, sender, takeover.clone());

        let mut client = Self {
            id,
            client_id,
            version,
            session,
            mailbox,
            takeover,
            filters: HashSet::new(),
            will,
            router: router.clone(),
            config: config.clone(),
            started,
            out: Vec::with_capacity(4096),
            end: None,
        };
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
        }
        if let (Some(name), true) = (&assigned, version.is_v5()) {
            connack_props.push(Property::AssignedClientIdentifier(name));
        }
        let connack = ConnAck {
            properties: Properties::from_slice(&connack_props),
            ..ConnAck::new(ReasonCode::Success)
        };
        client.queue(&Packet::ConnAck(connack));
        tracing::debug!(id, client = %client.client_id, %version, "connected");
        Some(client)
    }

    fn now(&self) -> Instant {
        Instant::from_millis(self.started.elapsed().as_millis() as u64)
    }

    /// Appends an encoded packet to the output buffer.
    fn queue(&mut self, packet: &Packet<'_>) {
        match packet.encoded_len(self.version) {
            Ok(len) => {
                let at = self.out.len();
                self.out.resize(at + len, 0);
                if packet.encode(self.version, &mut self.out[at..]).is_err() {
                    self.out.truncate(at);
                }
            }
            Err(error) => tracing::warn!(id = self.id, %error, "cannot encode"),
        }
    }

    async fn run(
        &mut self,
        stream: &mut TcpStream,
        mut read: BytesMut,
        mut stopped: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        loop {
            self.drain_session();
            if !self.out.is_empty() {
                stream.write_all(&self.out).await?;
                self.out.clear();
            }
            if self.end.is_some() {
                return Ok(());
            }
            let deadline = self
                .session
                .poll_timeout()
                .map(|at| self.started + std::time::Duration::from_millis(at.as_millis()));
            tokio::select! {
                n = stream.read_buf(&mut read) => {
                    if n? == 0 {
                        self.end = Some(End::Abnormal);
                        return Ok(());
                    }
                    self.on_bytes(&mut read);
                }
                Some(delivery) = self.mailbox.recv() => self.deliver(delivery),
                _ = sleep_until(deadline) => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                }
                _ = self.takeover.notified() => {
                    tracing::debug!(id = self.id, "session taken over");
                    self.close_with(ReasonCode::SessionTakenOver);
                }
                _ = stopped.changed() => self.close_with(ReasonCode::ServerShuttingDown),
            }
        }
    }

    /// Ends the connection from the broker's side: 5.0 clients are told why.
    fn close_with(&mut self, reason: ReasonCode) {
        if self.version.is_v5() {
            self.queue(&Packet::Disconnect(Disconnect::new(reason)));
        }
        self.end = Some(End::Abnormal);
    }

    fn on_bytes(&mut self, read: &mut BytesMut) {
        while self.end.is_none() {
            match decode(read, self.version, self.config.packet_limit()) {
                Ok(Status::Complete(decoded)) => {
                    let len = decoded.len;
                    self.on_packet(decoded.packet);
                    read.advance(len);
                }
                Ok(Status::Incomplete(_)) => return,
                Err(error) => {
                    tracing::debug!(id = self.id, %error, "malformed packet");
                    let reason = error.reason_code();
                    let reason = if reason.is_valid_for(facteur_codec::PacketType::Disconnect) {
                        reason
                    } else {
                        ReasonCode::ProtocolError
                    };
                    self.close_with(reason);
                    return;
                }
            }
        }
    }

    fn on_packet(&mut self, packet: Packet<'_>) {
        let now = self.now();
        match packet {
            Packet::Connect(_) => self.close_with(ReasonCode::ProtocolError),
            Packet::Subscribe(subscribe) => self.on_subscribe(&subscribe, now),
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(&unsubscribe),
            Packet::Auth(_) => self.close_with(ReasonCode::BadAuthenticationMethod),
            Packet::Disconnect(disconnect) => {
                self.end = Some(match disconnect.reason_code {
                    ReasonCode::DisconnectWithWillMessage => End::Abnormal,
                    _ => End::Normal,
                });
            }
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
                    self.router.publish(self.id, message);
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
            let new = self.router.subscribe(self.id, filter, options);
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
                .map(|f| self.router.unsubscribe(self.id, f))
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

    fn deliver(&mut self, delivery: Delivery) {
        let now = self.now();
        self.publish_to_session(&delivery, now);
        // Take whatever else is already waiting, so it goes out in the same write.
        while let Ok(delivery) = self.mailbox.try_recv() {
            self.publish_to_session(&delivery, now);
        }
    }

    fn publish_to_session(&mut self, delivery: &Delivery, now: Instant) {
        // The session's queue is bounded like the mailbox in front of it: a subscriber that
        // does not keep up loses new messages (counted) instead of growing memory.
        if self.session.queued() >= self.config.max_queued_messages {
            self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let message = &delivery.message;
        let publish = Publish {
            qos: delivery.qos,
            retain: delivery.retain,
            properties: message.properties(),
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
                tracing::debug!(id = self.id, %error, "message not queued");
                self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Moves everything the session has to send into the output buffer and acts on its
    /// events.
    fn drain_session(&mut self) {
        let now = self.now();
        let mut scratch = vec![0u8; 0];
        loop {
            let at = self.out.len();
            let room = 16 * 1024;
            self.out.resize(at + room, 0);
            match self.session.poll_transmit(now, &mut self.out[at..]) {
                Ok(Some(n)) => self.out.truncate(at + n),
                Ok(None) => {
                    self.out.truncate(at);
                    break;
                }
                Err(facteur_codec::EncodeError::BufferTooSmall { required, .. }) => {
                    self.out.truncate(at);
                    scratch.resize(required, 0);
                    match self.session.poll_transmit(now, &mut scratch) {
                        Ok(Some(n)) => self.out.extend_from_slice(&scratch[..n]),
                        _ => break,
                    }
                }
                Err(error) => {
                    self.out.truncate(at);
                    tracing::warn!(id = self.id, %error, "cannot encode");
                    break;
                }
            }
        }
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::ProtocolError { reason } => {
                    tracing::debug!(id = self.id, %reason, "protocol error");
                    self.end = Some(End::Abnormal);
                }
                Event::KeepAliveTimeout => {
                    tracing::debug!(id = self.id, "keep alive expired");
                    if self.version.is_v5() && self.end.is_none() {
                        self.queue(&Packet::Disconnect(Disconnect::new(
                            ReasonCode::KeepAliveTimeout,
                        )));
                    }
                    self.end = Some(End::Abnormal);
                }
                _ => {}
            }
        }
    }

    /// Unregisters the client and publishes its will if the end was not a normal DISCONNECT.
    fn finish(mut self, router: &Router) {
        router.unregister(
            &self.client_id,
            self.id,
            self.filters.iter().map(String::as_str),
        );
        let end = self.end.unwrap_or(End::Abnormal);
        if let (End::Abnormal, Some(will)) = (end, self.will.take()) {
            tracing::debug!(id = self.id, topic = %will.message.topic, "publishing will");
            router.publish(self.id, will.message);
        }
        tracing::debug!(id = self.id, client = %self.client_id, ?end, "disconnected");
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
