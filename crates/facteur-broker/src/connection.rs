//! Client sessions. Each client identifier has one task that owns its [`Session`]; network
//! connections attach to it and detach from it. A session outlives its connection while its
//! expiry allows (persistent sessions: subscriptions kept, QoS 1/2 messages queued offline),
//! and its will is published when the session state machine says it is due.

use crate::mailbox::{Mailbox, Next};
use crate::router::{
    Attach, ConnId, Delivery, LinkSlot, Message, Router, SessionSlot, Subscribed, TaskGuard,
    Waiting,
};
use crate::Config;
use bytes::{Buf, BytesMut};
use facteur_codec::{
    decode, ConnAck, Connect, Disconnect, Encode, Packet, PacketType, Properties, Property,
    ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, Status, SubAck, Subscribe, UnsubAck,
    Unsubscribe,
};
use facteur_session::{
    client_identifier, AllocStore, ClientId, Event, Instant, Role, Session, TakeOver, Verdict,
};
use facteur_topic::TopicFilter;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Serves one accepted connection: reads its CONNECT, then hands it to its session's task
/// (starting one if the client has none).
pub(crate) async fn serve(mut stream: TcpStream, config: Arc<Config>, router: Arc<Router>) {
    let _task = router.track_task();
    let mut read = BytesMut::new();
    let frame = match Box::pin(read_connect(&mut stream, &mut read, &config)).await {
        Ok(Some(frame)) => frame,
        Ok(None) => return,
        Err(error) => {
            tracing::debug!(%error, "no valid CONNECT");
            return;
        }
    };
    let (client_id, assigned, slot) = match admit(&frame, &config, &router) {
        Ok(admitted) => admitted,
        Err(Some(refusal)) => {
            let _ = Box::pin(refuse(&mut stream, &refusal)).await;
            return;
        }
        Err(None) => return,
    };
    // Boxed: the session's channel then holds pointers, not whole sockets and buffers.
    let attach = Box::new(Attach {
        stream,
        read,
        frame,
        assigned,
        slot,
    });
    hand_over(client_id.into(), attach, config, router);
}

/// Gives a connection to its client's session: to the task running it, or to a new task.
/// The session task is a task of its own (not this connection's), so that what stays in
/// memory for an idle client is only what its session needs.
fn hand_over(
    client_id: Arc<str>,
    mut attach: Box<Attach>,
    config: Arc<Config>,
    router: Arc<Router>,
) {
    // At most twice: a session task that ended just now is replaced by a new one.
    for _ in 0..2 {
        match router.attach(&client_id) {
            SessionSlot::Existing(mailbox) => match mailbox.attach(attach) {
                Ok(()) => return,
                Err(returned) => attach = returned,
            },
            SessionSlot::New { key, mailbox } => {
                let task = SessionTask::new(key, client_id, config, router, mailbox);
                tokio::spawn(Box::new(task).run(attach));
                return;
            }
        }
    }
}

/// Whether a client may connect, and under which client identifier (and whether the
/// broker chose it). A refusal says with which CONNACK, if any.
fn admit(
    frame: &[u8],
    config: &Config,
    router: &Arc<Router>,
) -> Result<(String, bool, LinkSlot), Option<Refusal>> {
    let (connect, _) = parse_connect(frame).ok_or(None)?;
    let (id, assigned) = match client_identifier(&connect, &config.server_policy()) {
        Ok(ClientId::Given(id)) => (id.to_owned(), false),
        Ok(ClientId::Assign) => (format!("facteur-{:016x}", router.next_key()), true),
        Err(refused) => return Err(Some(Refusal::new(&connect, refused.reason, refused.why))),
    };
    // Counted at once (no check-then-act race between connections).
    let Some(slot) = router.reserve_link(config.max_connections) else {
        let why = "the broker has as many clients as max_connections allows";
        return Err(Some(Refusal::new(&connect, ReasonCode::ServerBusy, why)));
    };
    Ok((id, assigned, slot))
}

/// A CONNECT refused: the CONNACK that says so (5.0: with a reason string, if the client
/// takes a packet that large).
struct Refusal {
    version: ProtocolVersion,
    reason: ReasonCode,
    why: String,
    max_packet_size: u32,
}

impl Refusal {
    fn new(connect: &Connect<'_>, reason: ReasonCode, why: impl Into<String>) -> Self {
        Self {
            version: connect.protocol,
            reason,
            why: why.into(),
            max_packet_size: connect
                .properties
                .maximum_packet_size()
                .unwrap_or(facteur_codec::PROTOCOL_MAX_PACKET_SIZE),
        }
    }

    /// The CONNACK's bytes.
    fn connack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let version = self.version;
        Packet::ConnAck(ConnAck::new(self.reason)).with_reason_string(
            &self.why,
            self.max_packet_size,
            version,
            |connack| encode_into(&mut out, version, connack),
        );
        out
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

async fn refuse(stream: &mut TcpStream, refusal: &Refusal) -> std::io::Result<()> {
    stream.write_all(&refusal.connack()).await?;
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
    /// Counts this client among the connected ones (`max_connections`).
    _slot: LinkSlot,
}

impl Link {
    /// Writes the bytes waiting in `out`, then releases the buffer.
    async fn write_out(&mut self, stats: &crate::Stats) -> std::io::Result<()> {
        self.stream.write_all(&self.out).await?;
        stats
            .bytes_sent
            .fetch_add(self.out.len() as u64, Ordering::Relaxed);
        // An idle connection keeps no buffer.
        self.out = Vec::new();
        Ok(())
    }
}

/// One client session and the task that runs it.
struct SessionTask {
    key: ConnId,
    /// Shared with the router's table of sessions (one allocation per client).
    client_id: Arc<str>,
    version: ProtocolVersion,
    /// The client wants reason strings on acknowledgements (5.0 Request Problem
    /// Information; CONNACK and DISCONNECT carry them regardless).
    problem_information: bool,
    session: Session<AllocStore>,
    mailbox: Arc<Mailbox>,
    /// The session's subscription filters (few per client: a list, not a set).
    filters: Vec<Box<str>>,
    link: Option<Link>,
    /// A QoS 0 message from this client was dropped for a connected subscriber's full
    /// mailbox: let the subscribers' tasks run before reading more from this client.
    congested: bool,
    /// Deliveries this session's publishes owe to connected subscribers with full mailboxes.
    waiting: Vec<Waiting>,
    router: Arc<Router>,
    config: Arc<Config>,
    /// Counts this task among the broker's running ones.
    _task: TaskGuard,
}

impl SessionTask {
    fn new(
        key: ConnId,
        client_id: Arc<str>,
        config: Arc<Config>,
        router: Arc<Router>,
        mailbox: Arc<Mailbox>,
    ) -> Self {
        Self {
            key,
            client_id,
            version: ProtocolVersion::V3_1_1,
            problem_information: true,
            session: Session::new(facteur_session::Config {
                role: Role::Server,
                receive_maximum: config.receive_maximum,
                topic_alias_maximum: config.max_topic_alias,
            }),
            mailbox,
            filters: Vec::new(),
            link: None,
            congested: false,
            waiting: Vec::new(),
            _task: router.track_task(),
            router,
            config,
        }
    }

    fn now(&self) -> Instant {
        self.router.now()
    }

    /// Runs the session until it ends, starting with the connection `first`. Every await
    /// that is not the idle wait is boxed, so that what an idle client costs is this task
    /// (the session, its timer, the wait) and nothing more.
    ///
    /// Boxed: the task's future then holds a pointer to the session, not a copy of it
    /// (async functions keep their arguments apart from their locals).
    async fn run(mut self: Box<Self>, first: Box<Attach>) {
        // The session's next deadline (keep alive, retries, expiry), reused.
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        Box::pin(self.attach(first)).await;
        self.serve(timer).await;
    }

    async fn serve(&mut self, mut timer: Pin<&mut Sleep>) {
        // Which of socket and mailbox is looked at first, alternating, so that neither a
        // client that keeps sending nor a busy mailbox starves the other.
        let mut socket_first = true;
        loop {
            let mut over = self.process_events();
            if let Err(error) = self.flush().await {
                tracing::debug!(client = %self.client_id, %error, "write failed");
                self.end_link(End::Lost);
            }
            if self.link.as_ref().is_some_and(|l| l.end.is_some()) {
                Box::pin(self.detach()).await;
                over |= self.process_events();
            }
            if over {
                break;
            }
            if !self.waiting.is_empty() {
                Box::pin(self.wait_for_room()).await;
                // Packets that were read but held back while waiting.
                self.on_bytes();
                continue;
            }
            let deadline = self
                .session
                .poll_timeout()
                .map(|at| self.router.deadline(at));
            if let Some(at) = deadline {
                if at != timer.deadline() {
                    timer.as_mut().reset(at);
                }
            }
            if std::mem::take(&mut self.congested) {
                // Fairness, not a wait: subscribers that fell behind get their turn first.
                tokio::task::yield_now().await;
            }
            let has_room = self.has_room();
            socket_first = !socket_first;
            // The idle wait: polled by hand (socket readiness, the mailbox's waker slot, the
            // timer), so an idle session keeps no future and no buffer for it.
            let woken = std::future::poll_fn(|cx| {
                if socket_first {
                    if let Poll::Ready(read) = poll_read_link(&mut self.link, cx) {
                        return Poll::Ready(Woken::Read(read));
                    }
                }
                if let Poll::Ready(next) = self.mailbox.poll_next(cx, has_room) {
                    return Poll::Ready(Woken::Mailbox(next));
                }
                if !socket_first {
                    if let Poll::Ready(read) = poll_read_link(&mut self.link, cx) {
                        return Poll::Ready(Woken::Read(read));
                    }
                }
                if deadline.is_some() && timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Woken::Timer);
                }
                Poll::Pending
            })
            .await;
            let next = match woken {
                Woken::Read(read) => {
                    self.on_read(read);
                    continue;
                }
                Woken::Timer => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                    continue;
                }
                Woken::Mailbox(next) => next,
            };
            match next {
                Next::Deliver(delivery) => self.deliver(delivery),
                Next::Attach(attach) if self.link.is_some() => {
                    Box::pin(self.take_over(attach)).await;
                }
                Next::Attach(attach) => Box::pin(self.attach(attach)).await,
                Next::Stop => {
                    self.close_with(ReasonCode::ServerShuttingDown, "the broker is stopping");
                    let _ = Box::pin(self.flush()).await;
                    Box::pin(self.detach()).await;
                    // The broker is going: a will still waiting for its delay goes now.
                    self.publish_will();
                    break;
                }
                Next::Closed => break,
            }
        }
        self.end();
    }

    /// Takes a new network connection: answers its CONNECT, resuming this session or
    /// starting it afresh as the client asks (facteur-session negotiates).
    async fn attach(&mut self, attach: Box<Attach>) {
        let Attach {
            mut stream,
            read,
            frame,
            assigned,
            slot,
        } = *attach;
        let Some((connect, _)) = parse_connect(&frame) else {
            return;
        };
        let now = self.now();
        let policy = self.config.server_policy();
        let accepted = match self.session.accept_connect(now, &connect, &policy) {
            Ok(accepted) => accepted,
            Err(refused) => {
                tracing::debug!(client = %self.client_id, %refused, "CONNECT refused");
                let refusal = Refusal::new(&connect, refused.reason, refused.why);
                let _ = refuse(&mut stream, &refusal).await;
                return;
            }
        };
        if !accepted.session_present {
            // A new session: nothing of an earlier one is kept.
            self.router
                .unsubscribe_all(self.key, self.filters.drain(..));
            self.mailbox.clear();
        }
        let version = connect.protocol;
        self.version = version;
        self.problem_information = self.session.connection().peer_request_problem_information;
        let assigned_id = assigned.then_some(&*self.client_id);
        let props = accepted.connack_properties(assigned_id);
        let mut link = Link {
            stream,
            read,
            out: Vec::new(),
            end: None,
            _slot: slot,
        };
        encode_into(
            &mut link.out,
            version,
            &Packet::ConnAck(accepted.connack(&props)),
        );
        self.mailbox.set_online(true);
        self.link = Some(link);
        let present = accepted.session_present;
        tracing::debug!(client = %self.client_id, %version, present, "connected");
        // Bytes that came after CONNECT in the same read.
        self.on_bytes();
    }

    /// A new connection takes the session over from the one still up: the old one is told
    /// (5.0: DISCONNECT 0x8E) and closed, the session decides what carries over
    /// ([`Session::take_over`]), and the old connection's will, if due, is published before
    /// the new connection sets its own.
    async fn take_over(&mut self, attach: Box<Attach>) {
        let clean_start = parse_connect(&attach.frame).is_some_and(|(c, _)| c.clean_start);
        tracing::debug!(client = %self.client_id, "session taken over");
        let why = "another connection took this session over";
        self.close_with(ReasonCode::SessionTakenOver, why);
        let _ = Box::pin(self.flush()).await;
        self.close_link();
        let now = self.now();
        if self.session.take_over(now, clean_start) == TakeOver::Ended {
            self.router
                .unsubscribe_all(self.key, self.filters.drain(..));
            self.mailbox.clear();
        }
        // The old connection's will; no event of it outlives this point.
        self.process_events();
        Box::pin(self.attach(attach)).await;
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

    /// Closes the network connection, if any (lingering: see [`linger`]); the session
    /// stays.
    fn close_link(&mut self) -> Option<End> {
        let link = self.link.take()?;
        // QoS 0 messages are not kept for an offline client.
        let dropped = self.mailbox.set_online(false);
        self.router
            .stats
            .dropped
            .fetch_add(dropped as u64, Ordering::Relaxed);
        tracing::debug!(client = %self.client_id, end = ?link.end, "connection closed");
        let end = link.end;
        tokio::spawn(linger(link.stream));
        end
    }

    /// Ends the current network connection as lost or disconnected; the session stays,
    /// for as long as its expiry allows.
    async fn detach(&mut self) {
        if self.close_link().is_none() {
            return;
        }
        let now = self.now();
        self.session.on_connection_lost(now);
        // A will without delay, or a session ending now, is due at once.
        self.session.handle_timeout(now);
    }

    /// Writes what is waiting for the connected client: at once if the socket takes it,
    /// else waiting until it does (boxed: rarely needed, and not part of an idle client's
    /// footprint).
    async fn flush(&mut self) -> std::io::Result<()> {
        self.drain_session();
        match &mut self.link {
            Some(link) if !link.out.is_empty() => {
                Box::pin(link.write_out(&self.router.stats)).await
            }
            _ => Ok(()),
        }
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
        let now = self.now();
        let message = self
            .session
            .will()
            .map(|w| Message::new(w.topic, w.payload, w.qos, w.retain, &w.properties, now));
        if let Some(message) = message {
            tracing::debug!(client = %self.client_id, topic = %message.topic, "publishing will");
            self.session.clear_will();
            let waiting = self.router.publish(self.key, message).waiting;
            self.router.drop_waiting(waiting);
        }
    }

    /// Ends the task: subscriptions and mailbox go; connections that arrived meanwhile get a
    /// session task of their own.
    fn end(&mut self) {
        self.router.detach(&self.client_id, self.key);
        self.router
            .unsubscribe_all(self.key, self.filters.drain(..));
        for attach in self.router.close_mailbox(self.key) {
            let (config, router) = (self.config.clone(), self.router.clone());
            hand_over(self.client_id.clone(), Box::new(attach), config, router);
        }
        tracing::debug!(client = %self.client_id, "session ended");
    }

    /// Ends the connection from the broker's side: 5.0 clients are told why, with the
    /// reason code and the reason string `why`.
    fn close_with(&mut self, reason: ReasonCode, why: &str) {
        let version = self.version;
        let max = self.session.connection().peer_maximum_packet_size;
        if let Some(link) = &mut self.link {
            if version.is_v5() && link.end.is_none() {
                Packet::Disconnect(Disconnect::new(reason)).with_reason_string(
                    why,
                    max,
                    version,
                    |disconnect| encode_into(&mut link.out, version, disconnect),
                );
            }
            link.end.get_or_insert(End::Lost);
        }
    }

    /// Acts on what a read from the client gave.
    fn on_read(&mut self, read: std::io::Result<usize>) {
        let Some(link) = &mut self.link else {
            return;
        };
        match read {
            Ok(0) | Err(_) => {
                link.end.get_or_insert(End::Lost);
            }
            Ok(n) => {
                self.router
                    .stats
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
                self.on_bytes();
            }
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
                    self.close_with(reason, &error.to_string());
                    break;
                }
            }
        }
        if let Some(link) = &mut self.link {
            link.read = read;
        }
    }

    /// Queues a 5.0 answer with the reason string `why`, left out when the client takes no
    /// packet that large (a reason string must not make a packet exceed the client's
    /// Maximum Packet Size).
    fn answer(&mut self, packet: Packet<'_>, why: &str) {
        let max = self.session.connection().peer_maximum_packet_size;
        let version = self.version;
        if let Some(link) = &mut self.link {
            packet.with_reason_string(why, max, version, |answer| {
                encode_into(&mut link.out, version, answer)
            });
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
            Packet::Connect(_) => self.close_with(ReasonCode::ProtocolError, "a second CONNECT"),
            Packet::Subscribe(subscribe) => self.on_subscribe(&subscribe),
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(&unsubscribe),
            Packet::Auth(_) => self.close_with(
                ReasonCode::BadAuthenticationMethod,
                "this broker has no extended authentication",
            ),
            Packet::Publish(_) => {
                self.router
                    .stats
                    .messages_received
                    .fetch_add(1, Ordering::Relaxed);
                let limit = self.config.message_size_limit as usize;
                // The session delivers it; the broker decides what the client is told.
                let message = match self.session.handle(packet, now) {
                    None => return,
                    Some(p) if limit != 0 && p.payload.len() > limit => Err(p.payload.len()),
                    Some(p) => Ok(Message::new(
                        p.topic,
                        p.payload,
                        p.qos,
                        p.retain,
                        &p.properties,
                        now,
                    )),
                };
                match message {
                    Ok(message) => {
                        self.session.decide(Verdict::Accept);
                        let routed = self.router.publish(self.key, message);
                        self.waiting.extend(routed.waiting);
                        self.congested |= routed.congested;
                    }
                    Err(size) => {
                        tracing::debug!(client = %self.client_id, size, "payload over message_size_limit");
                        self.session
                            .decide(Verdict::Reject(ReasonCode::ImplementationSpecificError));
                        self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            other => {
                self.session.handle(other, now);
            }
        }
    }

    fn on_subscribe(&mut self, subscribe: &Subscribe<'_>) {
        let mut codes = Vec::new();
        let mut retained = Vec::new();
        // The reason string of the SUBACK (5.0): why the first refused filter was refused.
        let mut why = None;
        for subscription in subscribe.subscriptions.iter() {
            let Ok(filter) = TopicFilter::new(subscription.filter) else {
                codes.push(ReasonCode::TopicFilterInvalid);
                why.get_or_insert("invalid topic filter");
                continue;
            };
            let shared = filter.shared().is_some();
            if shared && subscription.options.no_local && self.version.is_v5() {
                // A protocol error (MQTT-3.8.3-4): the connection ends, nothing is granted.
                let why = "no local is not allowed on a shared subscription";
                self.close_with(ReasonCode::ProtocolError, why);
                return;
            }
            if shared && !self.version.is_v5() {
                // Before 5.0 `$share/` is an ordinary filter, which facteur does not take.
                codes.push(ReasonCode::TopicFilterInvalid);
                why.get_or_insert("shared subscriptions need MQTT 5.0");
                continue;
            }
            let options = subscription.options;
            let subscribed = Subscribed {
                options,
                id: subscribe.properties.subscription_identifier(),
            };
            let new = self.router.subscribe(self.key, filter, subscribed);
            if !self.filters.iter().any(|f| **f == *subscription.filter) {
                self.filters.push(subscription.filter.into());
            }
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
        let suback = Packet::SubAck(SubAck::new(subscribe.packet_id, &codes));
        match why.filter(|_| self.problem_information) {
            Some(why) => self.answer(suback, why),
            None => self.queue(&suback),
        }
        for delivery in retained {
            self.publish_to_session(&delivery);
        }
    }

    fn on_unsubscribe(&mut self, unsubscribe: &Unsubscribe<'_>) {
        let mut codes = Vec::new();
        for filter in unsubscribe.filters.iter() {
            let existed = TopicFilter::new(filter)
                .map(|f| self.router.unsubscribe(self.key, f))
                .unwrap_or(false);
            self.filters.retain(|f| **f != *filter);
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        let unsuback = Packet::UnsubAck(UnsubAck::new(unsubscribe.packet_id, &codes));
        let none = codes.contains(&ReasonCode::NoSubscriptionExisted);
        match self.problem_information && none {
            true => self.answer(unsuback, "no subscription with this filter"),
            false => self.queue(&unsuback),
        }
    }

    /// True while a client is connected and the session's queue (what goes out in the next
    /// writes) has room. Otherwise deliveries stay in the mailbox, which is bounded: when it
    /// fills, QoS 0 messages are dropped first and publishers of QoS 1/2 wait (connected
    /// client) or their messages are dropped (offline).
    fn has_room(&self) -> bool {
        self.room() > 0
    }

    /// How many more messages the session's queue takes now.
    fn room(&self) -> usize {
        match self.link {
            Some(_) => STAGED
                .min(self.config.max_queued_messages)
                .saturating_sub(self.session.queued()),
            None => 0,
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        self.publish_to_session(&delivery);
        drop(delivery);
        // Take whatever else is already waiting (a batch per lock), so it goes out in the
        // same write.
        BATCH.with(|cell| {
            let mut batch = cell.take();
            loop {
                let room = self.room();
                if room == 0 {
                    break;
                }
                self.mailbox.take_up_to(room, &mut batch);
                if batch.is_empty() {
                    break;
                }
                for delivery in batch.drain(..) {
                    self.publish_to_session(&delivery);
                }
            }
            cell.replace(batch);
        });
    }

    fn publish_to_session(&mut self, delivery: &Delivery) {
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
        let properties = if !self.version.is_v5() {
            // Not sent before 5.0: not even read.
            Properties::EMPTY
        } else if delivery.subscription_ids.is_empty() {
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
        // The payload is shared with every other subscriber, not copied; its expiry counts
        // from when the broker received it.
        match self
            .session
            .publish_shared(&publish, message.payload.clone(), message.received_at)
        {
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

    /// Sends everything the session has to send: encoded into a per-thread scratch buffer
    /// and written at once if the socket takes it, so a connection only keeps a buffer of
    /// its own for what the socket could not take yet.
    fn drain_session(&mut self) {
        let now = self.now();
        let Some(link) = &mut self.link else {
            return;
        };
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut used = 0;
            loop {
                match self.session.poll_transmit(now, &mut scratch[used..]) {
                    Ok(Some(n)) => used += n,
                    Ok(None) => break,
                    Err(facteur_codec::EncodeError::BufferTooSmall { .. }) if used > 0 => {
                        // The scratch is full: what is in it goes first.
                        link.out.extend_from_slice(&scratch[..used]);
                        used = 0;
                    }
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
            let bytes = &scratch[..used];
            if bytes.is_empty() {
                return;
            }
            if !link.out.is_empty() {
                // Earlier bytes are still waiting: these go after them.
                link.out.extend_from_slice(bytes);
                return;
            }
            match link.stream.try_write(bytes) {
                Ok(n) => {
                    self.router
                        .stats
                        .bytes_sent
                        .fetch_add(n as u64, Ordering::Relaxed);
                    link.out.extend_from_slice(&bytes[n..]);
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    link.out.extend_from_slice(bytes);
                }
                Err(error) => {
                    tracing::debug!(client = %self.client_id, %error, "write failed");
                    link.end.get_or_insert(End::Lost);
                }
            }
        });
    }
}

/// How long a publishing connection waits for room in a connected subscriber's full mailbox
/// before the QoS 1/2 delivery is dropped (and counted): long enough for a subscriber that is
/// merely slower, short enough that a stuck one cannot stall publishers.
const BACKPRESSURE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Messages moved from the mailbox into the session's own queue ahead of the writes (beyond
/// those in flight). The rest wait in the mailbox, where the payload is shared, not copied.
const STAGED: usize = 64;

/// Room made in a connection's read buffer before each read.
const READ_CHUNK: usize = 8192;

thread_local! {
    /// Deliveries taken from a mailbox in one go (per thread, reused).
    static BATCH: std::cell::Cell<Vec<Delivery>> = const { std::cell::Cell::new(Vec::new()) };
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

/// Reads from the connected client once its socket is readable, taking a read buffer only
/// then (an idle client holds none). A read that does not fill the buffer tells tokio the
/// socket is drained, so the next wait needs no read that would block.
fn poll_read_link(link: &mut Option<Link>, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
    let Some(link) = link.as_mut().filter(|l| l.end.is_none()) else {
        return Poll::Pending;
    };
    let ready = link.stream.poll_read_ready(cx);
    if ready.is_ready() {
        link.read.reserve(READ_CHUNK);
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut link.stream), cx, &mut link.read);
        if read.is_ready() {
            return read;
        }
    }
    if link.read.is_empty() {
        // Nothing to read now: an idle client keeps no buffer.
        link.read = BytesMut::new();
    }
    match ready {
        Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        _ => Poll::Pending,
    }
}

/// What woke a session's task.
enum Woken {
    /// A read from the client: bytes (0 when it closed) or the error.
    Read(std::io::Result<usize>),
    /// The mailbox has something.
    Mailbox(Next),
    /// The session's deadline passed.
    Timer,
}

/// How long a closed connection is still read (and what it sends discarded) after the
/// broker's last bytes, and how much of it at most.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 64 * 1024;

/// Closes a connection gracefully: the write side is shut down (the client reads what was
/// sent, a DISCONNECT with its reason code included, then the end), and what the client
/// still sends meanwhile is read and discarded for a bounded time and size, so that closing
/// does not turn into a reset that destroys the unread DISCONNECT (a lingering close, as
/// HTTP servers do).
async fn linger(mut stream: TcpStream) {
    let _ = tokio::time::timeout(LINGER_TIME, stream.shutdown()).await;
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut discarded = 0;
    let mut sink = [0u8; 1024];
    while discarded < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => break,
        }
    }
}
