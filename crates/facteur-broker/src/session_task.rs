//! A session's task: it owns the client's [`Session`] for the session's whole life, takes
//! network connections as they come (first connect, reconnect, takeover), and waits on the
//! socket, the mailbox and the session's timer at once.

use crate::accept::{hand_over, parse_connect, refuse, Refusal};
use crate::buffers::{ReadBuf, Unsent};
use crate::delivery::TakesAll;
use crate::enhanced::ClientAuth;
use crate::filters::Filters;
use crate::link::{encode_into, linger, poll_read_link, read_now, End, Link, ReadAhead};
use crate::mailbox::{Mailbox, Next};
use crate::message::{Attach, Message};
use crate::router::{ConnId, Router, Waiting};
use crate::Config;
use facteur_codec::{Disconnect, Packet, ProtocolVersion, ReasonCode};
use facteur_session::{AllocStore, Event, Instant, QueueLimits, Role, Session, TakeOver};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use tokio::time::Sleep;

/// One client session and the task that runs it.
pub(crate) struct SessionTask {
    pub(crate) key: ConnId,
    /// Shared with the router's table of sessions (one allocation per client).
    pub(crate) client_id: Arc<str>,
    pub(crate) session: Session<AllocStore>,
    pub(crate) mailbox: Arc<Mailbox>,
    /// The session's subscription filters.
    pub(crate) filters: Filters,
    pub(crate) link: Option<Link>,
    /// A QoS 0 message from this client was dropped for a connected subscriber's full
    /// mailbox: let the subscribers' tasks run before reading more from this client.
    pub(crate) congested: bool,
    /// Messages this client published that were routed since one last had to wait for a
    /// full mailbox (saturating).
    pub(crate) calm: u16,
    /// Deliveries this session's publishes owe to connected subscribers with full mailboxes.
    pub(crate) waiting: Waitings,
    pub(crate) router: Arc<Router>,
    pub(crate) config: Arc<Config>,
    /// What the authentication of the connection that last attached settled (the username
    /// ACLs see, an enhanced authentication): a resumed session takes the new
    /// connection's.
    pub(crate) auth: Option<Box<ClientAuth>>,
    /// Something happened since the session last looked at whether to park
    /// ([`SessionTask::wants_to_park`]).
    pub(crate) active: bool,
    /// When the session parks if nothing happens until then.
    pub(crate) park_at: Option<tokio::time::Instant>,
    /// When to look for the client's answers to what went out before the reactor reports
    /// them (see `read_now`).
    pub(crate) read_ahead: ReadAhead,
}

/// How [`SessionTask::serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// The session is over.
    Over,
    /// The session is idle: it parks until its deadline (if any).
    Idle(Option<tokio::time::Instant>),
}

impl SessionTask {
    pub(crate) fn new(
        key: ConnId,
        client_id: Arc<str>,
        config: Arc<Config>,
        router: Arc<Router>,
        mailbox: Arc<Mailbox>,
    ) -> Self {
        // Counted until the task is dropped (see `Drop`).
        router.task_started();
        Self {
            key,
            client_id,
            session: Session::new(facteur_session::Config {
                role: Role::Server,
                receive_maximum: config.receive_maximum,
                topic_alias_maximum: config.max_topic_alias,
                queue: QueueLimits {
                    messages: u32::try_from(config.max_queued_messages).unwrap_or(u32::MAX),
                    bytes: u32::try_from(config.max_queued_bytes).unwrap_or(u32::MAX),
                    // MQTT allows it, and mosquitto does the same.
                    qos0_offline: false,
                },
                // The broker follows no delivery past its acknowledgement.
                report_acknowledgements: false,
            }),
            mailbox,
            filters: Filters::default(),
            link: None,
            congested: false,
            calm: 0,
            waiting: Waitings::default(),
            router,
            config,
            auth: None,
            active: false,
            park_at: None,
            read_ahead: ReadAhead::default(),
        }
    }

    /// The protocol version of the current (or last) connection, as the session negotiated.
    pub(crate) fn version(&self) -> ProtocolVersion {
        self.session.connection().version
    }

    pub(crate) fn now(&self) -> Instant {
        self.router.now()
    }

    /// Runs the session until it ends, starting with the connection `first`. Every await
    /// that is not the idle wait is boxed, so that what an idle client costs is this task
    /// (the session, its timer, the wait) and nothing more.
    ///
    /// Boxed: the task's future then holds a pointer to the session, not a copy of it
    /// (async functions keep their arguments apart from their locals).
    pub(crate) async fn run(mut self: Box<Self>, first: Box<Attach>) {
        Box::pin(self.attach(first)).await;
        self.live().await;
    }

    /// Runs a parked session again ([`crate::park`]): its socket goes back into tokio's
    /// reactor, and it is served until it ends or parks again.
    pub(crate) async fn resume(mut self: Box<Self>) {
        self.unpark_link();
        // It was woken for something: it parks again only after a quiet while.
        self.active = true;
        self.park_at = None;
        self.live().await;
    }

    /// Serves the session until it ends or parks.
    async fn live(mut self: Box<Self>) {
        // The session's next deadline (keep alive, retries, expiry), reused.
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        loop {
            let Served::Idle(deadline) = self.serve(timer.as_mut()).await else {
                return;
            };
            match self.park(deadline) {
                Ok(()) => return,
                Err(back) => {
                    self = back;
                    self.active = true;
                }
            }
        }
    }

    /// Serves the session until it ends ([`Served::Over`]) or has nothing to do and wants to
    /// park ([`Served::Idle`]).
    pub(crate) async fn serve(&mut self, mut timer: Pin<&mut Sleep>) -> Served {
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
            if self.reauth_due() {
                Box::pin(self.reauth_step()).await;
                // Packets that were read but held back meanwhile.
                self.on_bytes();
                continue;
            }
            let deadline = self
                .session
                .poll_timeout()
                .map(|at| self.router.deadline(at));
            if self.wants_to_park() {
                return Served::Idle(deadline);
            }
            let deadline = match (deadline, self.park_at) {
                (Some(at), Some(park)) => Some(at.min(park)),
                (at, park) => at.or(park),
            };
            if let Some(at) = deadline {
                if at != timer.deadline() {
                    timer.as_mut().reset(at);
                }
            }
            if std::mem::take(&mut self.congested) {
                // Fairness, not a wait: subscribers that fell behind get their turn first.
                tokio::task::yield_now().await;
            }
            let mut intake = self.intake();
            socket_first = !socket_first;
            // The idle wait: polled by hand (socket readiness, the mailbox's waker slot, the
            // timer), so an idle session keeps no future and no buffer for it.
            let woken = std::future::poll_fn(|cx| {
                if socket_first {
                    if let Poll::Ready(read) = poll_read_link(&mut self.link, cx) {
                        return Poll::Ready(Woken::Read(read));
                    }
                }
                if let Poll::Ready(next) =
                    self.mailbox.poll_next(cx, |d, full| intake.takes(d, full))
                {
                    return Poll::Ready(Woken::Mailbox(next));
                }
                if self.mailbox.holds_messages() && self.read_ahead.look() {
                    // The session cannot take them until its client acknowledges what
                    // went out: look for the acknowledgements now (see `read_now` and
                    // `ReadAhead`).
                    let read = read_now(&mut self.link);
                    self.read_ahead.found(read.is_some());
                    if let Some(read) = read {
                        return Poll::Ready(Woken::Read(read));
                    }
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
                    self.active = true;
                    self.on_read(read);
                    continue;
                }
                Woken::Timer => {
                    if self
                        .park_at
                        .is_some_and(|at| at <= tokio::time::Instant::now())
                    {
                        // Quiet since `park_at` was set, unless `active` says otherwise.
                        self.park_at = None;
                    }
                    let now = self.now();
                    self.session.handle_timeout(now);
                    continue;
                }
                Woken::Mailbox(next) => {
                    self.active = true;
                    next
                }
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
        Served::Over
    }

    /// Takes a new network connection: answers its CONNECT, resuming this session or
    /// starting it afresh as the client asks (facteur-session negotiates).
    pub(crate) async fn attach(&mut self, attach: Box<Attach>) {
        let Attach {
            mut stream,
            read,
            frame,
            assigned,
            slot,
            auth,
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
        // Rights go with the connection: what this session receives from now on is checked
        // against the client that just connected.
        self.auth = auth;
        if !accepted.session_present {
            // A new session: nothing of an earlier one is kept.
            self.router
                .unsubscribe_all(self.key, self.filters.take_all());
            self.drop_waiting_messages();
        }
        let version = connect.protocol;
        let assigned_id = assigned.then_some(&*self.client_id);
        let props = accepted.connack_properties(assigned_id);
        // Enhanced authentication: the method, and the server's last data, if any.
        let data = self.auth.as_deref_mut().and_then(|a| a.connack_data.take());
        let method = self.auth.as_deref().and_then(|a| a.method.as_deref());
        let mut with_auth: Vec<facteur_codec::Property<'_>> = Vec::new();
        if let Some(method) = method {
            with_auth.extend(props.as_properties().iter());
            with_auth.push(facteur_codec::Property::AuthenticationMethod(method));
            if let Some(data) = &data {
                with_auth.push(facteur_codec::Property::AuthenticationData(data));
            }
        }
        // Counted until the link is closed (`close_link`, or the task's end).
        slot.hand_to_session();
        let mut link = Link {
            stream,
            read: ReadBuf::from_bytes(read),
            out: Unsent::default(),
            end: None,
        };
        let mut connack = accepted.connack(&props);
        if !with_auth.is_empty() {
            connack.properties = facteur_codec::Properties::from_slice(&with_auth);
        }
        encode_into(link.out.bytes_mut(), version, &Packet::ConnAck(connack));
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
    pub(crate) async fn take_over(&mut self, attach: Box<Attach>) {
        let clean_start = parse_connect(&attach.frame).is_some_and(|(c, _)| c.clean_start);
        tracing::debug!(client = %self.client_id, "session taken over");
        let why = "another connection took this session over";
        self.close_with(ReasonCode::SessionTakenOver, why);
        let _ = Box::pin(self.flush()).await;
        self.close_link();
        let now = self.now();
        if self.session.take_over(now, clean_start) == TakeOver::Ended {
            self.router
                .unsubscribe_all(self.key, self.filters.take_all());
            self.drop_waiting_messages();
        }
        // The old connection's will; no event of it outlives this point.
        self.process_events();
        Box::pin(self.attach(attach)).await;
    }

    /// Waits (bounded) until the full mailboxes this session's publishes are owed to have
    /// room. Meanwhile nothing more is read from this client: TCP slows its publishing down.
    pub(crate) async fn wait_for_room(&mut self) {
        for (mailbox, delivery) in self.waiting.take() {
            let sent = tokio::time::timeout(BACKPRESSURE_WAIT, mailbox.send(delivery)).await;
            if !matches!(sent, Ok(Ok(()))) {
                self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A new session starts: what was waiting in the mailbox for the old one goes
    /// (counted).
    fn drop_waiting_messages(&mut self) {
        let dropped = self.mailbox.clear();
        self.router
            .stats
            .dropped
            .fetch_add(dropped as u64, Ordering::Relaxed);
    }

    /// Closes the network connection, if any (lingering: see [`linger`]); the session
    /// stays.
    pub(crate) fn close_link(&mut self) -> Option<End> {
        let link = self.link.take()?;
        self.router.link_down();
        tracing::debug!(client = %self.client_id, end = ?link.end, "connection closed");
        let end = link.end;
        tokio::spawn(linger(link.stream));
        end
    }

    /// Ends the current network connection as lost or disconnected; the session stays,
    /// for as long as its expiry allows.
    pub(crate) async fn detach(&mut self) {
        if self.close_link().is_none() {
            return;
        }
        self.connection_lost();
    }

    /// Tells the session its connection is gone (already closed and uncounted).
    pub(crate) fn connection_lost(&mut self) {
        let now = self.now();
        self.session.on_connection_lost(now);
        // A will without delay, or a session ending now, is due at once.
        self.session.handle_timeout(now);
    }

    /// Writes what is waiting for the connected client: at once if the socket takes it,
    /// else waiting until it does (boxed: rarely needed, and not part of an idle client's
    /// footprint).
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        self.drain_session();
        match &mut self.link {
            Some(link) if !link.out.is_empty() => {
                Box::pin(link.write_out(&self.router.stats)).await
            }
            _ => Ok(()),
        }
    }

    /// Acts on the session's events; true when the session is over.
    pub(crate) fn process_events(&mut self) -> bool {
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
                Event::Dropped { .. } => {
                    self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        false
    }

    pub(crate) fn end_link(&mut self, end: End) {
        if let Some(link) = &mut self.link {
            link.end.get_or_insert(end);
        }
    }

    pub(crate) fn publish_will(&mut self) {
        let now = self.now();
        let message = self
            .session
            .will()
            .map(|w| Message::new(w.topic, w.payload, w.qos, w.retain, &w.properties, now));
        if let Some(message) = message {
            self.session.clear_will();
            if !self.may_publish(&message.topic) {
                // Checked when it is due, against the rules in force then.
                tracing::debug!(client = %self.client_id, topic = %message.topic, "will not authorized");
                self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            tracing::debug!(client = %self.client_id, topic = %message.topic, "publishing will");
            let waiting = self.router.publish(self.key, message).waiting;
            self.router.drop_waiting(waiting);
        }
    }

    /// Ends the task: subscriptions and mailbox go; connections that arrived meanwhile get a
    /// session task of their own.
    pub(crate) fn end(&mut self) {
        self.router.detach(&self.client_id, self.key);
        self.router
            .unsubscribe_all(self.key, self.filters.take_all());
        for attach in self.router.close_mailbox(self.key) {
            let (config, router) = (self.config.clone(), self.router.clone());
            hand_over(self.client_id.clone(), Box::new(attach), config, router);
        }
        tracing::debug!(client = %self.client_id, "session ended");
    }

    /// Ends the connection from the broker's side: 5.0 clients are told why, with the
    /// reason code and the reason string `why`.
    pub(crate) fn close_with(&mut self, reason: ReasonCode, why: &str) {
        let version = self.version();
        let max = self.session.connection().peer_maximum_packet_size;
        if let Some(link) = &mut self.link {
            if version.is_v5() && link.end.is_none() {
                Packet::Disconnect(Disconnect::new(reason)).with_reason_string(
                    why,
                    max,
                    version,
                    |disconnect| encode_into(link.out.bytes_mut(), version, disconnect),
                );
            }
            link.end.get_or_insert(End::Lost);
        }
    }
}

/// How long a publishing connection waits for room in a connected subscriber's full mailbox
/// before the QoS 1/2 delivery is dropped (and counted): long enough for a subscriber that is
/// merely slower, short enough that a stuck one cannot stall publishers.
pub(crate) const BACKPRESSURE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What woke a session's task.
pub(crate) enum Woken {
    /// A read from the client: bytes (0 when it closed) or the error.
    Read(std::io::Result<usize>),
    /// The mailbox has something.
    Mailbox(Next),
    /// The session's deadline passed.
    Timer,
}

impl Drop for SessionTask {
    fn drop(&mut self) {
        if self.link.is_some() {
            self.router.link_down();
        }
        self.router.task_ended();
    }
}

/// The deliveries a session's publishes owe to connected subscribers whose mailboxes are
/// full: none most of the time, so an idle session pays one pointer for them.
#[derive(Default)]
#[allow(clippy::box_collection)]
pub(crate) struct Waitings(Option<Box<Vec<Waiting>>>);

impl Waitings {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().map_or(true, |waiting| waiting.is_empty())
    }

    pub(crate) fn extend(&mut self, more: Vec<Waiting>) {
        if more.is_empty() {
            return;
        }
        match &mut self.0 {
            Some(waiting) => waiting.extend(more),
            None => self.0 = Some(Box::new(more)),
        }
    }

    pub(crate) fn take(&mut self) -> Vec<Waiting> {
        self.0.take().map(|waiting| *waiting).unwrap_or_default()
    }
}
/// What a parked client costs is mostly its boxed session task and its mailbox. jemalloc,
/// the program's allocator, rounds a block up to its size class (256, 320, 384, 448 bytes
/// here), so one field more can cost every idle client 64 bytes.
#[cfg(all(test, target_pointer_width = "64"))]
mod size {
    #[test]
    fn a_session_task_fits_a_384_byte_block() {
        let size = std::mem::size_of::<super::SessionTask>();
        assert!(size <= 384, "SessionTask is {size} bytes");
    }
}
