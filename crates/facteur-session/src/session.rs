//! The session state machine.

use facteur_codec::{
    Disconnect, Encode, EncodeError, Packet, PacketType, Properties, ProtocolVersion, PubResponse,
    Publish, QoS, ReasonCode, Will,
};
use facteur_topic::{TopicError, TopicName};

use crate::props;
use crate::store::{
    Ack, AckKind, Alias, Fifo, Inflight, Message, OwnedBytes, Payload, Seq, Slot, Stage, Store,
    Window,
};
use crate::{Event, Instant, MessageId, PacketIds};

/// Which end of the connection the session is: the few behaviours that differ follow it.
///
/// * A client sends PINGREQ after `keep_alive` of silence; a server answers PINGREQ with
///   PINGRESP.
/// * A server in MQTT 5 sends DISCONNECT (Keep Alive timeout) when the client went silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The client end.
    Client,
    /// The server (broker) end.
    Server,
}

/// What a session keeps for its whole life, across connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Client or server.
    pub role: Role,
    /// How many incoming QoS 1 and 2 messages may be unacknowledged at once: the Receive
    /// Maximum this side announced (MQTT 5; also bounded by the store's capacity in every
    /// version). 0 is taken as 1.
    pub receive_maximum: u16,
    /// The highest incoming topic alias accepted: the Topic Alias Maximum this side announced
    /// (MQTT 5; also bounded by the store's alias capacity). 0 disables incoming aliases.
    pub topic_alias_maximum: u16,
    /// Bounds on the messages waiting to be sent.
    pub queue: QueueLimits,
    /// Whether each outgoing QoS 1/2 message completed is reported ([`Event::Acknowledged`]).
    /// A client waiting on its publishes wants it; a server that does not follow each
    /// delivery (a broker) turns it off and saves an event per message delivered.
    pub report_acknowledgements: bool,
}

impl Config {
    /// `role`, Receive Maximum 65,535 (the store's capacity decides), no incoming aliases,
    /// a queue bounded by the store only ([`QueueLimits::new`]), acknowledgements reported.
    pub const fn new(role: Role) -> Self {
        Self {
            role,
            receive_maximum: u16::MAX,
            topic_alias_maximum: 0,
            queue: QueueLimits::new(),
            report_acknowledgements: true,
        }
    }
}

/// Bounds on the messages a session holds unsent, applied by
/// [`Session::publish`](Session::publish) (and [`Session::publish_shared`]):
///
/// * past `messages` or `bytes`, a QoS 1/2 message takes the place of the oldest QoS 0 one
///   queued ([`Event::Dropped`]); a QoS 0 message, or a QoS 1/2 one with no QoS 0 message
///   to displace, is refused ([`PublishError::QueueFull`]);
/// * with `qos0_offline` false, QoS 0 messages are not kept for a peer that is not
///   connected: refused while disconnected ([`PublishError::Offline`]), and those queued
///   are dropped when the connection is lost ([`Event::Dropped`]).
///
/// ```
/// use facteur_codec::{ProtocolVersion, Publish, QoS};
/// use facteur_session::{
///     AllocStore, Config, Connection, Event, Instant, PublishError, QueueLimits, Role, Session,
/// };
/// let mut config = Config::new(Role::Server);
/// config.queue = QueueLimits { messages: 2, bytes: 0, qos0_offline: false };
/// let mut session = Session::<AllocStore>::new(config);
/// let now = Instant::from_millis(0);
/// session.on_connect(now, Connection::new(ProtocolVersion::V3_1_1, 0));
/// let qos = |qos| Publish { qos, ..Publish::new("t", b"x") };
/// let first = session.publish(&qos(QoS::AtMostOnce), now)?;
/// session.publish(&qos(QoS::AtMostOnce), now)?;
/// // Full: QoS 0 is refused, QoS 1 displaces the oldest QoS 0 message.
/// assert_eq!(session.publish(&qos(QoS::AtMostOnce), now), Err(PublishError::QueueFull));
/// session.publish(&qos(QoS::AtLeastOnce), now)?;
/// assert_eq!(session.poll_event(), Some(Event::Dropped { message: first }));
/// # Ok::<(), PublishError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most messages queued; 0: as many as the store holds.
    pub messages: u32,
    /// Most payload bytes queued; 0: no limit. One message larger than this is still taken
    /// into an empty queue, so that it cannot block the session for good.
    pub bytes: u32,
    /// Whether QoS 0 messages are kept while the peer is not connected.
    pub qos0_offline: bool,
}

impl QueueLimits {
    /// No bound but the store's, QoS 0 messages kept while disconnected.
    pub const fn new() -> Self {
        Self {
            messages: 0,
            bytes: 0,
            qos0_offline: true,
        }
    }
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self::new()
    }
}

/// What a session's queue takes now ([`Session::admission`]), counted down as messages are
/// admitted, so that a caller can take a batch of messages from elsewhere (a broker's
/// hand-off) in one go and hand them all to [`Session::publish`].
///
/// It also counts the room in flight, for a caller that takes only what goes out at once
/// ([`admit_to_send`](Self::admit_to_send)) and leaves the rest where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    messages_left: usize,
    bytes_left: Option<usize>,
    empty: bool,
    displaceable: usize,
    qos0: bool,
    /// QoS 1/2 messages that would still go out at once: see
    /// [`admit_to_send`](Self::admit_to_send).
    room_in_flight: usize,
}

impl Admission {
    /// The same, taking at most `more` messages beyond those that displace QoS 0 ones: a
    /// caller that keeps the queue shorter than its limits while the peer is connected (and
    /// leaves the rest where it is) bounds it so.
    pub fn at_most(mut self, more: usize) -> Self {
        self.messages_left = self.messages_left.min(more);
        self
    }

    /// True if the queue takes one more message of `qos` with `payload_len` bytes of
    /// payload, after those admitted before; it then counts as queued. Exact for the
    /// message limit; a QoS 1/2 message admitted by displacing a QoS 0 one counts one
    /// displaced (by bytes, [`Session::publish`] may need more, and refuses if there are
    /// none).
    pub fn admit(&mut self, qos: QoS, payload_len: usize) -> bool {
        if qos == QoS::AtMostOnce && !self.qos0 {
            return false;
        }
        let fits = self.messages_left > 0
            && (self.empty || self.bytes_left.map_or(true, |left| payload_len <= left));
        let admitted = if fits {
            self.messages_left -= 1;
            self.bytes_left = self.bytes_left.map(|left| left.saturating_sub(payload_len));
            self.empty = false;
            self.displaceable += usize::from(qos == QoS::AtMostOnce);
            true
        } else if qos != QoS::AtMostOnce && self.displaceable > 0 {
            self.displaceable -= 1;
            true
        } else {
            false
        };
        if admitted && qos != QoS::AtMostOnce {
            self.room_in_flight = self.room_in_flight.saturating_sub(1);
        }
        admitted
    }

    /// [`admit`](Self::admit), for a message that [`poll_transmit`](Session::poll_transmit)
    /// would send at once: a QoS 1/2 one only while there is room in flight for it beyond
    /// the QoS 1/2 messages queued and admitted before it (the peer's Receive Maximum, or
    /// [`limit_inflight`](Session::limit_inflight)), none while a resend waits or the peer
    /// is not connected. A caller that keeps its backlog elsewhere while the peer is
    /// connected (a broker's hand-off) takes only this much, and a QoS 1/2 message then goes
    /// from there straight into flight
    /// ([`publish_frame_now`](Session::publish_frame_now)), not through the queue.
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, Publish, QoS};
    /// use facteur_session::{AllocStore, Config, Connection, Instant, Role, Session};
    /// let now = Instant::from_millis(0);
    /// let mut session = Session::<AllocStore>::new(Config::new(Role::Server));
    /// session.on_connect(now, Connection::new(ProtocolVersion::V3_1_1, 0));
    /// session.limit_inflight(2);
    /// session.publish(&Publish { qos: QoS::AtLeastOnce, ..Publish::new("t", b"x") }, now)?;
    /// let mut admission = session.admission();
    /// // One more QoS 1 message goes out at once; QoS 0 ones do not count.
    /// assert!(admission.admit_to_send(QoS::AtLeastOnce, 1));
    /// assert!(!admission.admit_to_send(QoS::ExactlyOnce, 1));
    /// assert!(admission.admit_to_send(QoS::AtMostOnce, 1));
    /// // The queue would still take it.
    /// assert!(admission.admit(QoS::ExactlyOnce, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn admit_to_send(&mut self, qos: QoS, payload_len: usize) -> bool {
        if qos != QoS::AtMostOnce && self.room_in_flight == 0 {
            return false;
        }
        self.admit(qos, payload_len)
    }
}

/// What one connection agreed on (from CONNECT and CONNACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// The connection's protocol version.
    pub version: ProtocolVersion,
    /// Keep alive in seconds (the Server Keep Alive if the server sent one); 0 disables it.
    pub keep_alive: u16,
    /// Most outgoing QoS 1/2 messages unacknowledged at once: the peer's Receive Maximum
    /// (MQTT 5; 65,535 when absent). Before 5.0 the protocol has none, and a caller may set
    /// its own bound here (a broker's `max_inflight_messages`).
    pub peer_receive_maximum: u16,
    /// The peer's Topic Alias Maximum (MQTT 5; 0 when absent: no outgoing aliases).
    pub peer_topic_alias_maximum: u16,
    /// The peer's Maximum Packet Size in bytes (MQTT 5; no limit but the protocol's when
    /// absent). A queued message whose PUBLISH would be larger is dropped
    /// ([`Event::TooLarge`]).
    pub peer_maximum_packet_size: u32,
    /// Whether the peer wants reason strings on acknowledgements (MQTT 5 Request Problem
    /// Information; true when absent). DISCONNECT carries one regardless.
    pub peer_request_problem_information: bool,
}

impl Connection {
    /// A connection in `version` with `keep_alive` seconds and the peer's defaults: Receive
    /// Maximum 65,535, no topic aliases.
    pub const fn new(version: ProtocolVersion, keep_alive: u16) -> Self {
        Self {
            version,
            keep_alive,
            peer_receive_maximum: u16::MAX,
            peer_topic_alias_maximum: 0,
            peer_maximum_packet_size: facteur_codec::PROTOCOL_MAX_PACKET_SIZE,
            peer_request_problem_information: true,
        }
    }
}

/// What became of a frame given to [`Session::publish_frame_now`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameOut {
    /// Written into the caller's buffer (`len` bytes): sent, as far as the session goes
    /// (a QoS 1/2 one is in flight).
    Written {
        /// The message's identifier within the session.
        id: MessageId,
        /// The bytes written.
        len: usize,
    },
    /// Queued, to go out with a later [`Session::poll_transmit`].
    Queued(MessageId),
}

/// Why [`Session::publish`] refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// The topic is not a valid topic name (empty, wildcards, U+0000, too long).
    InvalidTopic(TopicError),
    /// Topic, properties and payload do not fit the store's message buffer.
    TooLarge,
    /// The MQTT 5 properties cannot be sent in a PUBLISH (one not allowed there, a value out
    /// of range, a field too long, one repeated that may not be).
    InvalidProperties,
    /// The queue of unsent messages is full (the store's capacity or the
    /// [`QueueLimits`]), even after dropping the expired ones and, for a QoS 1/2 message,
    /// the QoS 0 ones.
    QueueFull,
    /// A QoS 0 message for a peer that is not connected, and the session keeps none
    /// ([`QueueLimits::qos0_offline`]).
    Offline,
    /// A store is at its limits (a retained store made `with_limits`).
    StoreFull,
}

impl core::fmt::Display for PublishError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::InvalidTopic(e) => write!(f, "invalid topic name: {e}"),
            Self::TooLarge => {
                f.write_str("topic, properties and payload do not fit the message buffer")
            }
            Self::InvalidProperties => f.write_str("the properties cannot be sent in a PUBLISH"),
            Self::QueueFull => f.write_str("the queue of unsent messages is full"),
            Self::Offline => f.write_str("no QoS 0 message is kept for a peer not connected"),
            Self::StoreFull => f.write_str("the store holds as much as its limits allow"),
        }
    }
}

impl core::error::Error for PublishError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// No connection: nothing is sent, nothing received.
    Down,
    /// Connected.
    Up,
    /// The connection is ending (protocol error, keep alive timeout, DISCONNECT): at most a
    /// DISCONNECT is still sent, nothing is received.
    Closing,
}

/// One MQTT session, one side of it: the QoS 1 and 2 flows in both directions, packet
/// identifiers, Receive Maximum, keep alive and topic aliases, with no I/O and no clock.
///
/// A session outlives connections: call [`on_connect`](Self::on_connect) when one is
/// established (after CONNECT/CONNACK, which the caller handles),
/// [`on_connection_lost`](Self::on_connection_lost) when it ends, and
/// [`on_reconnect`](Self::on_reconnect) (or `on_connect`) for the next one: unacknowledged
/// PUBLISH packets are then resent with DUP set and PUBREL packets are resent, in order.
///
/// ```
/// use facteur_codec::{decode, Packet, ProtocolVersion, Publish, QoS, Status};
/// use facteur_session::{Config, Connection, Event, HeaplessStore, Instant, Role, Session};
///
/// type Store = HeaplessStore<4, 4, 64>;
/// let now = Instant::from_millis(0);
/// let v = ProtocolVersion::V3_1_1;
/// let mut client = Session::<Store>::new(Config::new(Role::Client));
/// let mut server = Session::<Store>::new(Config::new(Role::Server));
/// client.on_connect(now, Connection::new(v, 60));
/// server.on_connect(now, Connection::new(v, 60));
///
/// let mut message = Publish::new("a/b", b"hi");
/// message.qos = QoS::AtLeastOnce;
/// let id = client.publish(&message, now)?;
///
/// let mut buf = [0u8; 64];
/// let n = client.poll_transmit(now, &mut buf)?.unwrap(); // the PUBLISH
/// let Status::Complete(d) = decode(&buf[..n], v, 1024)? else { unreachable!() };
/// let delivered = server.handle(d.packet, now).unwrap();
/// assert_eq!(delivered.payload, b"hi");
///
/// let n = server.poll_transmit(now, &mut buf)?.unwrap(); // the PUBACK
/// assert_eq!(&buf[..n], &[0x40, 0x02, 0x00, 0x01]);
/// let Status::Complete(d) = decode(&buf[..n], v, 1024)? else { unreachable!() };
/// assert!(client.handle(d.packet, now).is_none());
/// assert!(matches!(client.poll_event(), Some(Event::Acknowledged { message, .. }) if message == id));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Session<S: Store> {
    config: Config,
    connection: Connection,
    link: Link,
    ids: PacketIds,
    next_message: u32,
    queue: S::Queue,
    /// Payload bytes of the queued messages.
    queued_bytes: usize,
    /// QoS 0 messages among the queued ones.
    queued_qos0: u32,
    /// Queued messages with a Message Expiry Interval: without any, the timers need not
    /// look at the queue (a subscriber that fell behind may hold thousands).
    queued_expiring: u32,
    inflight: S::Inflight,
    /// How many of `inflight` wait to be sent again (their `resend` set): without any,
    /// sending needs no look through them (see [`Session::resend_waiting`]).
    resends: u16,
    /// Packet identifiers the caller took for its own packets (a client's SUBSCRIBE and
    /// UNSUBSCRIBE): never given to a PUBLISH until released.
    reserved: S::Received,
    received: S::Received,
    acks: S::Acks,
    out_aliases: S::Aliases,
    in_aliases: S::Aliases,
    events: S::Events,
    events_dropped: u32,
    last_sent: Instant,
    last_received: Instant,
    /// A client's PINGREQ was sent and nothing was received since.
    ping_outstanding: bool,
    send_pingresp: bool,
    /// The DISCONNECT to send (5.0): its reason code and reason string.
    disconnect: S::Rare<(ReasonCode, &'static str)>,
    /// Session Expiry Interval in seconds; `None`: not tracked (the caller ends the session).
    session_expiry: Option<u32>,
    /// When the last connection was lost, while no new one is up and the session has not
    /// expired: the session expiry and will delay count from there.
    lost_at: Option<Instant>,
    will: S::Rare<StoredWill<S::Bytes>>,
    /// The session has had a connection and has not ended since: a resuming peer finds its
    /// state here (session present).
    established: bool,
    /// The last PUBLISH [`handle`](Session::handle) delivered, waiting for the caller's
    /// [`Verdict`]: its acknowledgement is not queued before.
    undecided: Option<Undecided>,
    /// Incoming QoS 1/2 messages delivered whose acknowledgement the caller deferred
    /// ([`Session::defer`]).
    held: S::Acks,
    /// Counts connections, so that a deferred QoS 1 acknowledgement of an earlier
    /// connection is not sent on a later one.
    epoch: u32,
}

/// A delivered QoS 1/2 message whose acknowledgement waits for the application: see
/// [`Session::defer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    kind: AckKind,
    packet_id: u16,
    epoch: u32,
}

/// An incoming QoS 1/2 PUBLISH delivered and not yet accepted or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Undecided {
    kind: AckKind,
    packet_id: u16,
}

/// What the application decided about the PUBLISH [`Session::handle`] delivered: see
/// [`Session::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Taken: acknowledged with Success.
    Accept,
    /// Refused with this reason code (one valid in PUBACK and PUBREC: `UnspecifiedError`,
    /// `ImplementationSpecificError`, `NotAuthorized`, `TopicNameInvalid`,
    /// `QuotaExceeded`, `PayloadFormatInvalid`). MQTT 5 tells the peer with this code;
    /// MQTT 3.x has no negative acknowledgement, so the message is acknowledged and
    /// dropped.
    Reject(ReasonCode),
}

/// Where the will is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WillStage {
    /// Set for the current (or next) connection.
    Held,
    /// The connection ended without a normal DISCONNECT: due after the will delay.
    Armed,
    /// [`Event::WillDue`] was reported: the caller publishes it.
    Due,
}

/// A will: topic, properties (as wire bytes, Message Expiry Interval slot first) and
/// payload in one buffer.
struct StoredWill<B> {
    qos: QoS,
    retain: bool,
    /// Will Delay Interval in seconds.
    delay: u32,
    topic_len: usize,
    props_len: usize,
    bytes: B,
    stage: WillStage,
}

impl<S: Store> core::fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("config", &self.config)
            .field("connection", &self.connection)
            .field("link", &self.link)
            .field("queued", &self.queue.len())
            .field("inflight", &self.inflight.len())
            .field("received", &self.received.len())
            .field("acks", &self.acks.len())
            .field("session_expiry", &self.session_expiry)
            .field("lost_at", &self.lost_at)
            .field("will", &self.will.get().map(|w| w.stage))
            .finish_non_exhaustive()
    }
}

impl<S: Store> Session<S> {
    /// A session with no connection yet and empty state.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            connection: Connection::new(ProtocolVersion::V5, 0),
            link: Link::Down,
            ids: PacketIds::new(),
            next_message: 0,
            queue: Default::default(),
            queued_bytes: 0,
            queued_qos0: 0,
            queued_expiring: 0,
            inflight: Default::default(),
            resends: 0,
            reserved: Default::default(),
            received: Default::default(),
            acks: Default::default(),
            out_aliases: Default::default(),
            in_aliases: Default::default(),
            events: Default::default(),
            events_dropped: 0,
            last_sent: Instant::default(),
            last_received: Instant::default(),
            ping_outstanding: false,
            send_pingresp: false,
            disconnect: Default::default(),
            session_expiry: None,
            lost_at: None,
            will: Default::default(),
            established: false,
            undecided: None,
            held: Default::default(),
            epoch: 0,
        }
    }

    /// True if the session holds state from an earlier connection: it had one and has not
    /// ended since (expired, taken over with a clean start). A server answers session
    /// present with it; a client checks the server's answer against it.
    pub fn has_state(&self) -> bool {
        self.established
    }

    /// Client side: takes whatever session the server holds for this client as this
    /// session's, so that [`accept_connack`](Self::accept_connack) accepts session present
    /// without state of our own (which it otherwise refuses, MQTT-3.2.2-4). For a client
    /// process restarted without its session state that resumes a persistent session on
    /// purpose (mosquitto_sub's `-c`): the messages the server queued for it are
    /// delivered. The risk the rule guards against stays the caller's: a QoS 2 message of
    /// the earlier process that the server received and whose PUBREL never came holds its
    /// packet identifier there, and a new QoS 2 PUBLISH with that identifier would be taken
    /// as its duplicate. A subscriber that publishes nothing at QoS 2 runs no such risk.
    ///
    /// ```
    /// use facteur_codec::{ConnAck, Connect, ProtocolVersion, ReasonCode};
    /// use facteur_session::{AllocStore, Config, Instant, Role, Session};
    /// let connect = Connect { clean_start: false, ..Connect::new(ProtocolVersion::V5, "sub") };
    /// let present = ConnAck { session_present: true, ..ConnAck::new(ReasonCode::Success) };
    /// let now = Instant::from_millis(0);
    /// let mut fresh = Session::<AllocStore>::new(Config::new(Role::Client));
    /// assert_eq!(fresh.accept_connack(now, &connect, &present), Err(ReasonCode::ProtocolError));
    /// let mut adopting = Session::<AllocStore>::new(Config::new(Role::Client));
    /// adopting.adopt_server_session();
    /// assert!(adopting.accept_connack(now, &connect, &present)?.session_present);
    /// # Ok::<(), ReasonCode>(())
    /// ```
    pub fn adopt_server_session(&mut self) {
        self.established = true;
    }

    /// The session's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current (or last) connection's parameters.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// True between [`on_connect`](Self::on_connect) and the end of the connection (a
    /// protocol error, a keep alive timeout, the peer's DISCONNECT or
    /// [`on_connection_lost`](Self::on_connection_lost)).
    pub fn is_connected(&self) -> bool {
        self.link == Link::Up
    }

    /// The Receive Maximum to announce in CONNECT or CONNACK (MQTT 5): the configured one,
    /// lowered to what the store can hold.
    pub fn receive_maximum(&self) -> u16 {
        let cap = self.received.max_len().min(self.acks.max_len());
        self.config
            .receive_maximum
            .max(1)
            .min(u16::try_from(cap).unwrap_or(u16::MAX))
    }

    /// The Topic Alias Maximum to announce in CONNECT or CONNACK (MQTT 5): the configured
    /// one, lowered to what the store's alias table holds.
    pub fn topic_alias_maximum(&self) -> u16 {
        let cap = u16::try_from(self.in_aliases.max_len()).unwrap_or(u16::MAX);
        self.config.topic_alias_maximum.min(cap)
    }

    /// Messages accepted and not yet sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Outgoing QoS 1 and 2 messages sent and not yet completed.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Incoming QoS 2 identifiers received and not yet released.
    pub fn received(&self) -> usize {
        self.received.len()
    }

    /// Events dropped because the store's event queue was full (see
    /// [`HeaplessStore`](crate::HeaplessStore)).
    pub fn events_dropped(&self) -> u32 {
        self.events_dropped
    }

    /// Gives back the memory of the containers that are empty now (queue, messages in
    /// flight, received identifiers, acknowledgements, topic aliases, events), for a session
    /// gone idle: a broker can call it when a client has been quiet for a while or its
    /// connection is lost, so that its idle sessions cost their `size_of` and little more.
    /// With [`AllocStore`](crate::AllocStore) an empty container then takes one pointer and
    /// no allocation, and the next message allocates again; until this is called, a container
    /// keeps its allocation once used, so that a busy session does not allocate for every
    /// message (do not call it after each one). Nothing to give back with a fixed-capacity
    /// store ([`HeaplessStore`](crate::HeaplessStore)). The session works on as before.
    ///
    /// ```
    /// use facteur_codec::{Packet, ProtocolVersion, PubResponse, Publish, QoS};
    /// use facteur_session::{AllocStore, Config, Connection, Instant, Role, Session};
    /// let now = Instant::from_millis(0);
    /// let mut session = Session::<AllocStore>::new(Config::new(Role::Server));
    /// session.on_connect(now, Connection::new(ProtocolVersion::V3_1_1, 60));
    /// let message = Publish { qos: QoS::AtLeastOnce, ..Publish::new("t", b"x") };
    /// let mut out = [0u8; 64];
    /// for packet_id in [1, 2] {
    ///     session.publish(&message, now)?;
    ///     session.poll_transmit(now, &mut out)?.unwrap(); // the PUBLISH
    ///     session.handle(Packet::PubAck(PubResponse::new(packet_id)), now);
    ///     while session.poll_event().is_some() {}
    ///     assert_eq!(session.inflight(), 0);
    ///     // The client is idle: the empty containers give their memory back.
    ///     session.release_idle_memory();
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release_idle_memory(&mut self) {
        self.queue.release_if_empty();
        self.inflight.release_if_empty();
        self.reserved.release_if_empty();
        self.received.release_if_empty();
        self.acks.release_if_empty();
        self.held.release_if_empty();
        self.out_aliases.release_if_empty();
        self.in_aliases.release_if_empty();
        self.events.release_if_empty();
    }

    /// A connection is established with the parameters `connection`: sending and receiving
    /// start, and unacknowledged PUBLISH (DUP set) and PUBREL packets are resent first, in
    /// their original order (PUBLISH packets within the peer's Receive Maximum, which starts
    /// afresh with each connection).
    ///
    /// The session expiry timer stops, and a will left by a lost connection (armed, or
    /// reported with [`Event::WillDue`]) is discarded: set the new connection's will with
    /// [`set_will`](Self::set_will).
    pub fn on_connect(&mut self, now: Instant, connection: Connection) {
        if self.link != Link::Down {
            self.on_connection_lost(now);
        }
        self.lost_at = None;
        if self.will.get().is_some_and(|w| w.stage != WillStage::Held) {
            self.will.clear();
        }
        self.connection = connection;
        self.epoch = self.epoch.wrapping_add(1);
        self.link = Link::Up;
        self.established = true;
        self.last_sent = now;
        self.last_received = now;
        self.ping_outstanding = false;
    }

    /// A new connection with the same parameters as the last one: see
    /// [`on_connect`](Self::on_connect).
    pub fn on_reconnect(&mut self, now: Instant) {
        self.on_connect(now, self.connection);
    }

    /// The connection is gone, at `now`. Everything in flight is resent on the next
    /// connection (PUBLISH with DUP set, PUBREL); topic aliases, which belong to a connection,
    /// are forgotten. Queued messages are kept.
    ///
    /// Acknowledgements not yet written are dropped: the peer resends what they answer
    /// (PUBLISH, PUBREL) on the next connection and gets exactly one answer then. Keeping
    /// them would risk a stale PUBACK reaching the peer after it reused the identifier.
    ///
    /// From `now` the session expiry runs (if [`set_session_expiry`](Self::set_session_expiry)
    /// was called) and the will, if one is held (a normal DISCONNECT deleted it), is due
    /// after its delay: see [`poll_timeout`](Self::poll_timeout). Calling this again while
    /// disconnected changes nothing.
    pub fn on_connection_lost(&mut self, now: Instant) {
        if self.link == Link::Down {
            return;
        }
        self.lost_at = Some(now);
        if let Some(will) = self.will.get_mut().filter(|w| w.stage == WillStage::Held) {
            will.stage = WillStage::Armed;
        }
        self.link = Link::Down;
        let (first, second) = self.inflight.as_mut_slices();
        for f in first.iter_mut().chain(second) {
            f.resend = true;
            f.counted = false;
        }
        self.resends = u16::try_from(self.inflight.len()).unwrap_or(u16::MAX);
        self.acks = Default::default();
        self.out_aliases = Default::default();
        self.in_aliases = Default::default();
        self.send_pingresp = false;
        self.disconnect.clear();
        self.undecided = None;
        // A deferred PUBACK is not owed any more: the peer resends the PUBLISH. A deferred
        // PUBREC still is: the identifier stays received, and the resend is not delivered.
        while let Some(i) = self.held.iter().position(|h| h.kind == AckKind::Ack) {
            self.held.remove_at(i);
        }
        if !self.config.queue.qos0_offline && self.queued_qos0 > 0 {
            self.retain_queued(
                |m| m.qos != QoS::AtMostOnce,
                |message| Event::Dropped { message },
            );
        }
    }

    /// Discards the session state (the peer has none: clean start, or CONNACK said no session
    /// present): queued and in-flight messages, received identifiers and pending
    /// acknowledgements go, without events. Configuration and connection stay.
    pub fn clear_session_state(&mut self) {
        self.queue = Default::default();
        self.queued_bytes = 0;
        self.queued_qos0 = 0;
        self.queued_expiring = 0;
        self.inflight = Default::default();
        self.resends = 0;
        self.received = Default::default();
        self.acks = Default::default();
        self.undecided = None;
        self.held = Default::default();
    }

    /// The session ends (expired, or replaced by a clean start): its state goes and its
    /// timers stop.
    pub(crate) fn end_session(&mut self) {
        self.lost_at = None;
        self.clear_session_state();
        self.established = false;
    }

    /// A client's session state the server does not hold (CONNACK session present 0):
    /// QoS 2 messages the server already received (PUBREC) are complete, and the received
    /// identifiers go; PUBLISH packets the server never acknowledged stay in flight, to be
    /// sent again on the new connection.
    pub(crate) fn forget_server_state(&mut self) {
        loop {
            let released = self.in_flight().position(|f| f.stage == Stage::Released);
            let Some(i) = released else { break };
            self.complete(i, ReasonCode::Success);
        }
        self.received = Default::default();
        self.acks = Default::default();
        self.undecided = None;
        self.held = Default::default();
    }

    /// The will, if one is armed by a lost connection, is due now ([`Event::WillDue`]).
    pub(crate) fn will_due_now(&mut self) {
        if let Some(will) = self.will.get_mut().filter(|w| w.stage == WillStage::Armed) {
            will.stage = WillStage::Due;
            self.event(Event::WillDue);
        }
    }

    /// The Session Expiry Interval in seconds, if the session tracks it.
    pub fn session_expiry(&self) -> Option<u32> {
        self.session_expiry
    }

    /// Sets the Session Expiry Interval in seconds (server side, from CONNECT: 0 when absent
    /// in MQTT 5; for 3.1.1 the caller picks 0 for a clean session and `u32::MAX` for a
    /// persistent one): after the connection is lost the session lasts this long, 0 meaning
    /// it ends with the connection and `0xFFFF_FFFF` that it never expires. When it runs
    /// out, [`handle_timeout`](Self::handle_timeout) reports [`Event::SessionExpired`] and
    /// discards the session state. Until this is called the session does not expire. A
    /// client's DISCONNECT carrying a Session Expiry Interval changes it (a server session
    /// only; from 0 to anything else is a protocol error).
    pub fn set_session_expiry(&mut self, secs: u32) {
        self.session_expiry = Some(secs);
    }

    /// Stores the will of the current connection (server side, from CONNECT): topic, payload,
    /// QoS, retain flag and properties (as wire bytes), and the Will Delay Interval from its
    /// properties (0 when absent). Replaces the one before. Set it after
    /// [`on_connect`](Self::on_connect), which discards the will of a lost connection.
    ///
    /// The will is due when the connection is lost ([`on_connection_lost`]) without a normal
    /// DISCONNECT (reason 0x00 deletes it; 0x04, Disconnect with Will Message, and every other
    /// reason keep it), once the will delay or the session expiry, whichever is shorter, has
    /// passed: [`handle_timeout`](Self::handle_timeout) then reports [`Event::WillDue`]. A
    /// new connection before that discards it.
    ///
    /// [`on_connection_lost`]: Self::on_connection_lost
    ///
    /// # Errors
    /// As [`publish`](Self::publish): the topic is not a topic name, the properties cannot be
    /// sent in a PUBLISH, or the will does not fit the store's message buffer. The will
    /// before is kept then.
    pub fn set_will(&mut self, will: &Will<'_>) -> Result<(), PublishError> {
        self.will.set(Self::stored_will(will)?);
        Ok(())
    }

    /// Whether [`set_will`](Self::set_will) would take `will`.
    pub(crate) fn check_will(&self, will: &Will<'_>) -> Result<(), PublishError> {
        Self::stored_will(will).map(drop)
    }

    fn stored_will(will: &Will<'_>) -> Result<StoredWill<S::Bytes>, PublishError> {
        TopicName::new(will.topic).map_err(PublishError::InvalidTopic)?;
        let props = &will.properties;
        let layout = props::layout(props, props.message_expiry_interval(), false)
            .ok_or(PublishError::InvalidProperties)?;
        let topic_len = will.topic.len();
        let len = topic_len + layout.len() + will.payload.len();
        let bytes = S::Bytes::filled(len, |out| {
            out[..topic_len].copy_from_slice(will.topic.as_bytes());
            let (stored, payload) = out[topic_len..].split_at_mut(layout.len());
            props::write(stored, props, layout);
            payload.copy_from_slice(will.payload);
        })
        .ok_or(PublishError::TooLarge)?;
        if !props::valid(&bytes.as_ref()[topic_len..topic_len + layout.len()]) {
            return Err(PublishError::InvalidProperties);
        }
        Ok(StoredWill {
            qos: will.qos,
            retain: will.retain,
            delay: props.will_delay_interval().unwrap_or(0),
            topic_len,
            props_len: layout.len(),
            bytes,
            stage: WillStage::Held,
        })
    }

    /// The will held, as the PUBLISH to send to its subscribers (no packet identifier; its
    /// properties as given, Will Delay Interval excepted). After [`Event::WillDue`], publish
    /// it and call [`clear_will`](Self::clear_will).
    pub fn will(&self) -> Option<Publish<'_>> {
        let w = self.will.get()?;
        let bytes = w.bytes.as_ref();
        let (topic, rest) = bytes.split_at(w.topic_len);
        let (stored, payload) = rest.split_at(w.props_len);
        Some(Publish {
            qos: w.qos,
            retain: w.retain,
            properties: props::rebuild(stored),
            // The bytes were copied from a `&str`.
            ..Publish::new(core::str::from_utf8(topic).unwrap_or_default(), payload)
        })
    }

    /// The Will Delay Interval of the will held, in seconds.
    pub fn will_delay(&self) -> Option<u32> {
        self.will.get().map(|w| w.delay)
    }

    /// Forgets the will (published, or the connection ended normally).
    pub fn clear_will(&mut self) {
        self.will.clear();
    }

    /// Accepts a message to send: its topic, payload, QoS, retain flag and MQTT 5 properties
    /// are copied into the store (the DUP flag, the packet identifier and any Topic Alias are
    /// not: the session assigns identifiers and aliases when it sends). Messages are sent in
    /// the order accepted, QoS 1 and 2 ones only while the peer's Receive Maximum allows. The
    /// Message Expiry Interval is sent as the time left (see [`Event::Expired`]); the other
    /// properties (user properties, content type, response topic, correlation data, payload
    /// format, subscription identifiers) are sent as given, resends included.
    ///
    /// Accepted while disconnected too: it is sent on the next connection.
    ///
    /// `now` is when the message was received (a broker passes the instant the PUBLISH
    /// reached it, however long it waited since): its Message Expiry Interval counts from
    /// there, so a message that waited past it is not sent and the interval forwarded is
    /// the time left (MQTT-3.3.2-5, -6).
    pub fn publish(
        &mut self,
        message: &Publish<'_>,
        now: Instant,
    ) -> Result<MessageId, PublishError> {
        let payload = S::Payload::copy_of(message.payload).ok_or(PublishError::TooLarge)?;
        self.publish_shared(message, payload, now)
    }

    /// [`publish`](Self::publish) with the payload already in the store's own form, so that
    /// one payload given to many sessions is kept once. With [`AllocStore`](crate::AllocStore)
    /// that is a `bytes::Bytes` (cloning it shares it); `message.payload` is then only read
    /// by an inline store ([`HeaplessStore`](crate::HeaplessStore), which copies it), so pass
    /// the same bytes in both.
    ///
    /// ```
    /// # #[cfg(feature = "alloc")] {
    /// use facteur_codec::{ProtocolVersion, Publish};
    /// use facteur_session::{AllocStore, Config, Connection, Instant, Role, Session};
    /// let payload = bytes::Bytes::from_static(b"21.5");
    /// let now = Instant::from_millis(0);
    /// let message = Publish::new("maison/salon/temperature", &payload);
    /// for _ in 0..3 {
    ///     let mut session = Session::<AllocStore>::new(Config::new(Role::Server));
    ///     session.on_connect(now, Connection::new(ProtocolVersion::V3_1_1, 60));
    ///     // Each session holds a reference to the same payload, not a copy.
    ///     session.publish_shared(&message, payload.clone(), now)?;
    /// }
    /// # }
    /// # Ok::<(), facteur_session::PublishError>(())
    /// ```
    pub fn publish_shared(
        &mut self,
        message: &Publish<'_>,
        payload: S::Payload,
        now: Instant,
    ) -> Result<MessageId, PublishError> {
        let size = message.payload.len();
        self.refuse_early(message.qos, size, now)?;
        TopicName::new(message.topic).map_err(PublishError::InvalidTopic)?;
        let props = &message.properties;
        let expiry = props.message_expiry_interval();
        let layout = props::layout(props, expiry, true).ok_or(PublishError::InvalidProperties)?;
        let topic_len = message.topic.len();
        let inline = if S::Payload::INLINE {
            message.payload
        } else {
            &[]
        };
        let len = topic_len + layout.len() + inline.len();
        let bytes = S::Bytes::filled(len, |out| {
            out[..topic_len].copy_from_slice(message.topic.as_bytes());
            let (stored, rest) = out[topic_len..].split_at_mut(layout.len());
            props::write(stored, props, layout);
            rest.copy_from_slice(inline);
        })
        .ok_or(PublishError::TooLarge)?;
        if !props::valid(&bytes.as_ref()[topic_len + props::ALIAS_SLOT..topic_len + layout.len()]) {
            return Err(PublishError::InvalidProperties);
        }
        let id = MessageId(self.next_message);
        let queued = Message {
            id,
            qos: message.qos,
            retain: message.retain,
            expiry,
            queued_at: now,
            topic_len,
            props_len: layout.len(),
            bytes,
            payload,
            frame: None,
        };
        self.enqueue(queued, size, now)
    }

    /// A QoS 0 message the queue would refuse is refused before anything is copied.
    fn refuse_early(&mut self, qos: QoS, size: usize, now: Instant) -> Result<(), PublishError> {
        if qos != QoS::AtMostOnce {
            return Ok(());
        }
        if !self.config.queue.qos0_offline && self.link == Link::Down {
            return Err(PublishError::Offline);
        }
        if !self.room_for(size) {
            self.drop_expired(now);
            if !self.room_for(size) {
                return Err(PublishError::QueueFull);
            }
        }
        Ok(())
    }

    /// Queues `queued` (with `size` bytes of payload) within the [`QueueLimits`].
    fn enqueue(
        &mut self,
        queued: Message<S::Bytes, S::Payload>,
        size: usize,
        now: Instant,
    ) -> Result<MessageId, PublishError> {
        let (id, qos) = (queued.id, queued.qos);
        if !self.room_for(size) {
            self.drop_expired(now);
        }
        // A QoS 1/2 message displaces QoS 0 ones while the limits say full.
        while !self.room_for(size) && self.evict_oldest_qos0() {}
        if !self.room_for(size) {
            return Err(PublishError::QueueFull);
        }
        let expiring = u32::from(queued.expiry.is_some());
        let (mut queued, mut expired_dropped) = (queued, false);
        // The store itself may be full: what expired goes first, then QoS 0 for QoS 1/2.
        while let Err(back) = self.queue.push_back(queued) {
            queued = back;
            if !expired_dropped {
                expired_dropped = true;
                self.drop_expired(now);
            } else if queued.qos == QoS::AtMostOnce || !self.evict_oldest_qos0() {
                return Err(PublishError::QueueFull);
            }
        }
        self.queued_bytes += size;
        self.queued_qos0 += u32::from(qos == QoS::AtMostOnce);
        self.queued_expiring += expiring;
        self.next_message = self.next_message.wrapping_add(1);
        Ok(id)
    }

    /// [`publish_shared`](Self::publish_shared) for a message already encoded once for
    /// many sessions ([`Frame`](crate::Frame), feature `alloc`): nothing is checked or
    /// copied again, and each send copies the frame and patches in this session's packet
    /// identifier (a resend sets DUP). A frame is never sent with a topic alias; if the
    /// session is resumed in another protocol version, it is read back and encoded for
    /// that one. `now` is when the message was received.
    ///
    /// # Errors
    /// As [`publish_shared`](Self::publish_shared): the queue's limits.
    #[cfg(feature = "alloc")]
    pub fn publish_frame(
        &mut self,
        frame: &crate::Frame,
        now: Instant,
    ) -> Result<MessageId, PublishError>
    where
        S: Store<Payload = bytes::Bytes>,
    {
        let (qos, size) = (frame.qos(), frame.bytes.len());
        self.refuse_early(qos, size, now)?;
        let queued = self.frame_message(frame, now)?;
        self.enqueue(queued, size, now)
    }

    /// [`publish_frame`](Self::publish_frame), then, if the frame is the next thing
    /// [`poll_transmit`](Self::poll_transmit) would send (connected, nothing queued before
    /// it and no resend waiting, room in flight for QoS 1/2, the connection in the frame's
    /// version and within the peer's Maximum Packet Size), written into `buf` at once: the
    /// same bytes and the same state, without the trip through the queue. A QoS 0 frame
    /// sent this way is not even kept. Otherwise (`buf` too small included) it is queued
    /// as [`publish_frame`](Self::publish_frame) queues it.
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, Publish, QoS};
    /// use facteur_session::{AllocStore, Config, Connection, Frame, FrameOut, Instant, Role, Session};
    /// let frame = Frame::new(&Publish::new("maison/salon", b"21.5"), ProtocolVersion::V3_1_1)
    ///     .expect("no properties");
    /// let now = Instant::from_millis(0);
    /// let mut session = Session::<AllocStore>::new(Config::new(Role::Server));
    /// session.on_connect(now, Connection::new(ProtocolVersion::V3_1_1, 0));
    /// let mut out = [0u8; 32];
    /// let FrameOut::Written { len, .. } = session.publish_frame_now(&frame, now, &mut out)? else {
    ///     unreachable!("nothing was queued before it")
    /// };
    /// assert_eq!(&out[..len], b"\x30\x12\x00\x0cmaison/salon21.5");
    /// assert_eq!(session.queued(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`publish_frame`](Self::publish_frame): the queue's limits.
    #[cfg(feature = "alloc")]
    pub fn publish_frame_now(
        &mut self,
        frame: &crate::Frame,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<FrameOut, PublishError>
    where
        S: Store<Payload = bytes::Bytes>,
    {
        let (version, qos) = (self.connection.version, frame.qos());
        // Nothing queued before it: then a QoS 1/2 frame goes out at once exactly when
        // there is room in flight (connected, no resend waiting, under the quota), the rule
        // `Admission::admit_to_send` counts with.
        let goes_next = self.queue.is_empty()
            && frame.meta.version == version
            && frame.bytes.len() <= self.connection.peer_maximum_packet_size as usize
            && frame.bytes.len() <= buf.len()
            && match qos {
                QoS::AtMostOnce => self.link == Link::Up && !self.resend_waiting(),
                _ => self.room_in_flight() > 0,
            };
        let next = goes_next.then(|| self.next_packet_id(qos)).flatten();
        let Some((ids, packet_id)) = next else {
            return self.publish_frame(frame, now).map(FrameOut::Queued);
        };
        let len = frame
            .meta
            .write(&frame.bytes, version, packet_id, false, buf)
            .map_err(|_| PublishError::TooLarge)?;
        let id = MessageId(self.next_message);
        if packet_id.is_some() {
            let message = self.frame_message(frame, now)?;
            self.track_sent(message, packet_id);
        }
        self.ids = ids;
        self.next_message = self.next_message.wrapping_add(1);
        Ok(FrameOut::Written {
            id,
            len: self.sent(now, len),
        })
    }

    /// A frame as the session keeps it (queued or in flight): its bytes shared, nothing of
    /// its own but the header's bookkeeping.
    #[cfg(feature = "alloc")]
    fn frame_message(
        &self,
        frame: &crate::Frame,
        now: Instant,
    ) -> Result<Message<S::Bytes, S::Payload>, PublishError>
    where
        S: Store<Payload = bytes::Bytes>,
    {
        Ok(Message {
            id: MessageId(self.next_message),
            qos: frame.qos(),
            retain: frame.retain(),
            expiry: None,
            queued_at: now,
            topic_len: 0,
            props_len: 0,
            bytes: S::Bytes::filled(0, |_| {}).ok_or(PublishError::TooLarge)?,
            payload: frame.bytes.clone(),
            frame: Some(frame.meta),
        })
    }

    /// Whether [`publish`](Self::publish) would take a message of `qos` with `payload_len`
    /// bytes of payload now, as far as the [`QueueLimits`] go (a QoS 1/2 message is taken
    /// while a QoS 0 one can make room for it). Lets a caller leave messages where they are
    /// (a broker's hand-off) rather than offer them to be refused.
    pub fn accepts(&self, qos: QoS, payload_len: usize) -> bool {
        self.admission().admit(qos, payload_len)
    }

    /// What the queue takes now, for a caller deciding on several messages at once before
    /// publishing them: see [`Admission::admit`], and [`Admission::admit_to_send`] for
    /// what goes out at once.
    pub fn admission(&self) -> Admission {
        let limits = &self.config.queue;
        let len = self.queue.len();
        Admission {
            messages_left: match limits.messages {
                0 => usize::MAX,
                max => (max as usize).saturating_sub(len),
            },
            bytes_left: (limits.bytes > 0)
                .then(|| (limits.bytes as usize).saturating_sub(self.queued_bytes)),
            empty: len == 0,
            displaceable: self.queued_qos0 as usize,
            qos0: limits.qos0_offline || self.link != Link::Down,
            room_in_flight: self.room_in_flight(),
        }
    }

    /// How many more QoS 1/2 messages [`poll_transmit`](Self::poll_transmit) would send at
    /// once, after those queued: see [`Admission::admit_to_send`].
    fn room_in_flight(&self) -> usize {
        if self.link != Link::Up || self.resend_waiting() {
            return 0;
        }
        let queued = self.queue.len() - self.queued_qos0 as usize;
        self.send_quota()
            .saturating_sub(self.inflight.len() + queued)
    }

    /// True if the limits leave room for one more message with `size` bytes of payload.
    fn room_for(&self, size: usize) -> bool {
        let limits = &self.config.queue;
        let len = self.queue.len();
        (limits.messages == 0 || len < limits.messages as usize)
            && (limits.bytes == 0 || len == 0 || self.queued_bytes + size <= limits.bytes as usize)
    }

    /// Drops the oldest queued QoS 0 message ([`Event::Dropped`]); false if there is none.
    fn evict_oldest_qos0(&mut self) -> bool {
        if self.queued_qos0 == 0 {
            return false;
        }
        let mut evicted = None;
        self.queue.retain_in_order(|m| {
            if evicted.is_none() && m.qos == QoS::AtMostOnce {
                evicted = Some((m.id, m.payload().len(), m.expiry.is_some()));
                return false;
            }
            true
        });
        let Some((id, size, expiring)) = evicted else {
            return false;
        };
        self.queued_bytes -= size;
        self.queued_qos0 -= 1;
        self.queued_expiring -= u32::from(expiring);
        self.event(Event::Dropped { message: id });
        true
    }

    /// Takes the first queued message out.
    fn pop_queued(&mut self) -> Option<Message<S::Bytes, S::Payload>> {
        let m = self.queue.pop_front()?;
        self.queued_bytes -= m.payload().len();
        self.queued_qos0 -= u32::from(m.qos == QoS::AtMostOnce);
        self.queued_expiring -= u32::from(m.expiry.is_some());
        Some(m)
    }

    /// Keeps the queued messages `keep` says to keep; reports each other one with `event`.
    fn retain_queued(
        &mut self,
        mut keep: impl FnMut(&Message<S::Bytes, S::Payload>) -> bool,
        event: fn(MessageId) -> Event,
    ) {
        let events = &mut self.events;
        let (mut bytes, mut qos0, mut expiring, mut lost) = (0, 0, 0, 0u32);
        self.queue.retain_in_order(|m| {
            if keep(m) {
                return true;
            }
            bytes += m.payload().len();
            qos0 += u32::from(m.qos == QoS::AtMostOnce);
            expiring += u32::from(m.expiry.is_some());
            if events.push_back(event(m.id)).is_err() {
                lost += 1;
            }
            false
        });
        self.queued_bytes -= bytes;
        self.queued_qos0 -= qos0;
        self.queued_expiring -= expiring;
        self.events_dropped = self.events_dropped.wrapping_add(lost);
    }

    /// Takes a packet received on the connection at `now`, and returns the message to deliver
    /// to the application, if this packet carries one (its topic resolved if it came as a
    /// topic alias). A QoS 2 message is returned once: the PUBLISH again before its PUBREL is
    /// acknowledged and not returned.
    ///
    /// CONNECT, CONNACK, SUBSCRIBE and the other packets that are not the session's are
    /// ignored; so is everything while not connected. Afterwards, poll for packets to send
    /// and events.
    ///
    /// The acknowledgement of a delivered QoS 1/2 message waits for the caller's
    /// [`decide`](Self::decide) (or is Success at the next `handle` or `poll_transmit`).
    pub fn handle<'p>(&'p mut self, packet: Packet<'p>, now: Instant) -> Option<Publish<'p>> {
        self.decide(Verdict::Accept);
        if self.link != Link::Up {
            return None;
        }
        self.last_received = now;
        self.ping_outstanding = false;
        if self.config.role == Role::Client && !self.client_expects(&packet) {
            return None;
        }
        match packet {
            Packet::Publish(publish) => return self.on_publish(publish),
            Packet::PubAck(r) => self.on_outgoing_ack(r, Stage::Qos1Sent),
            Packet::PubRec(r) => self.on_pubrec(r),
            Packet::PubRel(r) => self.on_pubrel(r),
            Packet::PubComp(r) => self.on_outgoing_ack(r, Stage::Released),
            Packet::PingReq => self.send_pingresp = self.config.role == Role::Server,
            Packet::Disconnect(d) => {
                if let (Some(new), Role::Server) =
                    (d.properties.session_expiry_interval(), self.config.role)
                {
                    if self.session_expiry == Some(0) && new != 0 {
                        self.protocol_error(
                            ReasonCode::ProtocolError,
                            "Session Expiry Interval set on DISCONNECT after 0 on CONNECT",
                        );
                        return None;
                    }
                    self.session_expiry = Some(new);
                }
                // A normal disconnection deletes the will; any other reason keeps it.
                if d.reason_code == ReasonCode::Success {
                    self.will.clear();
                }
                self.link = Link::Closing;
                self.event(Event::Disconnected {
                    reason: d.reason_code,
                });
            }
            _ => {}
        }
        None
    }

    /// Accepts or rejects the QoS 1/2 PUBLISH that the last [`handle`](Self::handle)
    /// delivered: its PUBACK or PUBREC is queued only now, so the application (a broker's
    /// size limit or access control) decides what the peer is told. A PUBLISH left
    /// undecided is accepted by the next `handle` or [`poll_transmit`](Self::poll_transmit).
    /// Nothing happens when there is nothing to decide (QoS 0, a replay, already decided).
    ///
    /// A rejected QoS 2 message ends its flow with the PUBREC (its identifier is free
    /// again). Before MQTT 5, which has no negative acknowledgement, a rejected message is
    /// acknowledged all the same: the caller drops it. A reason code not valid in a PUBACK
    /// is sent as `UnspecifiedError`.
    ///
    /// ```
    /// use facteur_codec::{decode, ProtocolVersion, ReasonCode, Status};
    /// use facteur_session::{Config, Connection, HeaplessStore, Instant, Role, Session, Verdict};
    /// let mut server = Session::<HeaplessStore<4, 4, 64>>::new(Config::new(Role::Server));
    /// let now = Instant::from_millis(0);
    /// server.on_connect(now, Connection::new(ProtocolVersion::V5, 60));
    /// // QoS 1 PUBLISH "t" (packet id 7), no properties, payload "x".
    /// let bytes = [0x32, 0x07, 0x00, 0x01, b't', 0x00, 0x07, 0x00, b'x'];
    /// let Status::Complete(d) = decode(&bytes, ProtocolVersion::V5, 1024)? else { unreachable!() };
    /// assert!(server.handle(d.packet, now).is_some());
    /// server.decide(Verdict::Reject(ReasonCode::NotAuthorized));
    /// let mut out = [0u8; 16];
    /// let n = server.poll_transmit(now, &mut out)?.unwrap();
    /// assert_eq!(&out[..n], [0x40, 0x03, 0x00, 0x07, 0x87]); // PUBACK 0x87
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decide(&mut self, verdict: Verdict) {
        let Some(undecided) = self.undecided.take() else {
            return;
        };
        self.answer(undecided, verdict);
    }

    /// Defers the acknowledgement of the QoS 1/2 PUBLISH that the last
    /// [`handle`](Self::handle) delivered (a client's manual acknowledgement: PUBACK or
    /// PUBREC only once the application has processed the message). Give the token to
    /// [`acknowledge`](Self::acknowledge) later, in any order. Until then the message counts
    /// against the Receive Maximum this side announced. `None` when there is nothing to
    /// defer (QoS 0, a replay, already decided) or no room to hold it (it is accepted now).
    ///
    /// A deferred QoS 1 acknowledgement ends with its connection (the peer resends the
    /// PUBLISH on the next one, and it is delivered again); a deferred QoS 2 one does not:
    /// the resend is not delivered again, and its PUBREC waits for `acknowledge`.
    ///
    /// ```
    /// use facteur_codec::{decode, ProtocolVersion, Status};
    /// use facteur_session::{AllocStore, Config, Connection, Instant, Role, Session, Verdict};
    /// let mut client = Session::<AllocStore>::new(Config::new(Role::Client));
    /// let now = Instant::from_millis(0);
    /// client.on_connect(now, Connection::new(ProtocolVersion::V3_1_1, 0));
    /// let bytes = [0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x07, b'x']; // QoS 1, id 7
    /// let Status::Complete(d) = decode(&bytes, ProtocolVersion::V3_1_1, 64)? else { unreachable!() };
    /// assert!(client.handle(d.packet, now).is_some());
    /// let token = client.defer().unwrap();
    /// let mut out = [0u8; 16];
    /// assert_eq!(client.poll_transmit(now, &mut out)?, None, "not acknowledged yet");
    /// client.acknowledge(token, Verdict::Accept);
    /// let n = client.poll_transmit(now, &mut out)?.unwrap();
    /// assert_eq!(&out[..n], [0x40, 0x02, 0x00, 0x07]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn defer(&mut self) -> Option<Deferred> {
        let undecided = self.undecided?;
        let token = Deferred {
            kind: undecided.kind,
            packet_id: undecided.packet_id,
            epoch: self.epoch,
        };
        let entry = Ack {
            kind: undecided.kind,
            packet_id: undecided.packet_id,
            reason: ReasonCode::Success,
        };
        if self.held.try_push(entry).is_err() {
            return None;
        }
        self.undecided = None;
        Some(token)
    }

    /// The application's verdict on a message whose acknowledgement was deferred
    /// ([`defer`](Self::defer)): its PUBACK or PUBREC is queued now (or on the next
    /// connection, for a QoS 2 message). Nothing happens for a token no longer owed (a
    /// QoS 1 message of a connection that ended, one already acknowledged).
    pub fn acknowledge(&mut self, token: Deferred, verdict: Verdict) {
        let Some(i) = self.held.iter().position(|h| {
            h.kind == token.kind
                && h.packet_id == token.packet_id
                && (token.kind == AckKind::Rec || token.epoch == self.epoch)
        }) else {
            return;
        };
        self.held.remove_at(i);
        self.answer(
            Undecided {
                kind: token.kind,
                packet_id: token.packet_id,
            },
            verdict,
        );
    }

    /// Queues the acknowledgement of a delivered message with `verdict`.
    fn answer(&mut self, undecided: Undecided, verdict: Verdict) {
        let reason = match verdict {
            Verdict::Accept => ReasonCode::Success,
            Verdict::Reject(_) if !self.connection.version.is_v5() => ReasonCode::Success,
            Verdict::Reject(reason)
                if reason.is_error() && reason.is_valid_for(PacketType::PubAck) =>
            {
                reason
            }
            Verdict::Reject(_) => ReasonCode::UnspecifiedError,
        };
        if undecided.kind == AckKind::Rec && reason.is_error() {
            if let Some(i) = self
                .received
                .iter()
                .position(|&id| id == undecided.packet_id)
            {
                self.received.remove_at(i);
            }
        }
        // Cannot fail: room was checked when the PUBLISH was taken.
        self.queue_ack(undecided.kind, undecided.packet_id, reason);
    }

    /// Encodes the next packet to send into `buf` and returns its length, or `None` when
    /// there is nothing to send now. Call until `None`.
    ///
    /// Order: a DISCONNECT the session decided on, acknowledgements, resent PUBLISH/PUBREL,
    /// PINGRESP, PINGREQ, then queued messages (QoS 1 and 2 within the peer's Receive
    /// Maximum). Expired queued messages are dropped here ([`Event::Expired`]).
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] if `buf` cannot hold the packet: nothing is written and
    /// the packet stays first in line, to retry with a larger buffer.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<Option<usize>, EncodeError> {
        self.decide(Verdict::Accept);
        let version = self.connection.version;
        match self.link {
            Link::Down => return Ok(None),
            Link::Closing => {
                let Some(&(reason, why)) = self.disconnect.get() else {
                    return Ok(None);
                };
                let n = Disconnect::encode_with_reason_string(
                    reason,
                    why,
                    self.connection.peer_maximum_packet_size,
                    version,
                    buf,
                )?;
                self.disconnect.clear();
                return Ok(Some(self.sent(now, n)));
            }
            Link::Up => {}
        }
        if let Some(ack) = self.acks.first() {
            let r = PubResponse {
                packet_id: ack.packet_id,
                reason_code: ack.reason,
                properties: Properties::EMPTY,
            };
            let packet = match ack.kind {
                AckKind::Ack => Packet::PubAck(r),
                AckKind::Rec => Packet::PubRec(r),
                AckKind::Comp => Packet::PubComp(r),
            };
            let why = match ack.reason {
                _ if !self.connection.peer_request_problem_information => "",
                ReasonCode::PacketIdentifierNotFound => "no QoS 2 message with this identifier",
                _ => "",
            };
            let max = self.connection.peer_maximum_packet_size;
            let n = packet.with_reason_string(why, max, version, |ack| ack.encode(version, buf))?;
            self.acks.remove_at(0);
            return Ok(Some(self.sent(now, n)));
        }
        // Resends first, in order; a PUBLISH only within the peer's Receive Maximum, and
        // nothing new while one waits.
        let mut resend_waits = false;
        let resend = self
            .resend_waiting()
            .then(|| self.in_flight().position(|f| f.resend))
            .flatten();
        if let Some(f) = resend.and_then(|i| self.inflight.get(i)) {
            let is_publish = f.stage != Stage::Released;
            resend_waits = is_publish && !self.publish_allowed();
        }
        if let Some(i) = resend.filter(|_| !resend_waits) {
            let Some(f) = self.inflight.get_mut(i) else {
                return Ok(None);
            };
            let n = if f.stage == Stage::Released {
                Packet::PubRel(PubResponse::new(f.packet_id)).encode(version, buf)?
            } else if let Some(frame) = f.message.frame {
                frame.write(f.message.payload(), version, Some(f.packet_id), true, buf)?
            } else {
                // The expiry left now; never an alias (it belongs to the old connection).
                f.message.stamp(now, None);
                let publish = Publish {
                    dup: true,
                    qos: f.message.qos,
                    retain: f.message.retain,
                    topic: f.message.topic(),
                    packet_id: Some(f.packet_id),
                    properties: f.message.properties(false),
                    payload: f.message.payload(),
                };
                publish.encode(version, buf)?
            };
            let Some(f) = self.inflight.get_mut(i) else {
                return Ok(None);
            };
            f.resend = false;
            if f.stage != Stage::Released {
                f.counted = true;
            }
            self.resends -= 1;
            return Ok(Some(self.sent(now, n)));
        }
        if self.send_pingresp {
            let n = Packet::PingResp.encode(version, buf)?;
            self.send_pingresp = false;
            return Ok(Some(self.sent(now, n)));
        }
        if let Some(due) = self.ping_due() {
            if now >= due {
                let n = Packet::PingReq.encode(version, buf)?;
                self.ping_outstanding = true;
                return Ok(Some(self.sent(now, n)));
            }
        }
        if resend_waits {
            return Ok(None);
        }
        self.transmit_queued(now, buf)
    }

    /// Sends the first queued message that has not expired, if the Receive Maximum allows.
    fn transmit_queued(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<Option<usize>, EncodeError> {
        let version = self.connection.version;
        loop {
            let Some(m) = self.queue.front() else {
                return Ok(None);
            };
            if m.expired(now) {
                let id = m.id;
                self.pop_queued();
                self.event(Event::Expired { message: id });
                continue;
            }
            let Some((ids, packet_id)) = self.next_packet_id(m.qos) else {
                return Ok(None);
            };
            if let Some(frame) = m.frame {
                // Encoded once for many sessions: copied, this session's identifier in it.
                let max = self.connection.peer_maximum_packet_size as usize;
                if frame
                    .len_for(m.payload(), version)
                    .map_or(true, |len| len > max)
                {
                    let id = m.id;
                    self.pop_queued();
                    self.event(Event::TooLarge { message: id });
                    continue;
                }
                let n = frame.write(m.payload(), version, packet_id, false, buf)?;
                self.ids = ids;
                if let Some(message) = self.pop_queued() {
                    self.track_sent(message, packet_id);
                }
                return Ok(Some(self.sent(now, n)));
            }
            // Topic alias: reuse the topic's, or set up the next one while there is room.
            let (mut alias, mut new_alias) = (None, false);
            let alias_max = usize::from(self.connection.peer_topic_alias_maximum)
                .min(self.out_aliases.max_len());
            if version.is_v5() && alias_max > 0 {
                alias = self
                    .out_aliases
                    .iter()
                    .find(|a| a.topic() == m.topic())
                    .map(|a| a.alias);
                if alias.is_none() && self.out_aliases.len() < alias_max {
                    alias = u16::try_from(self.out_aliases.len() + 1).ok();
                    new_alias = true;
                }
            }
            // The expiry left now and the alias, written into their slots.
            let Some(m) = self.queue.front_mut() else {
                return Ok(None);
            };
            m.stamp(now, alias);
            let m = &*m;
            let publish = Publish {
                dup: false,
                qos: m.qos,
                retain: m.retain,
                topic: if alias.is_some() && !new_alias {
                    ""
                } else {
                    m.topic()
                },
                packet_id,
                properties: m.properties(alias.is_some()),
                payload: m.payload(),
            };
            let too_large = publish.encoded_len(version).map_or(true, |len| {
                len > self.connection.peer_maximum_packet_size as usize
            });
            if too_large {
                let id = m.id;
                self.pop_queued();
                self.event(Event::TooLarge { message: id });
                continue;
            }
            let n = publish.encode(version, buf)?;
            self.ids = ids;
            let Some(message) = self.pop_queued() else {
                return Ok(None);
            };
            if let (Some(alias), true) = (alias, new_alias) {
                if let Some(topic) = S::Bytes::from_parts(message.topic().as_bytes(), &[]) {
                    // Cannot fail: there was room.
                    let _ = self.out_aliases.try_push(Alias { alias, topic });
                }
            }
            self.track_sent(message, packet_id);
            return Ok(Some(self.sent(now, n)));
        }
    }

    /// The packet identifier a new message at `qos` goes out with (`None` for QoS 0), and
    /// the allocator after it (to keep once the packet is written: an identifier is only
    /// used up then); `None` when the message must wait: the quota in flight is used, or no
    /// identifier is free. Everything in flight counts, whichever connection it was sent
    /// on, so a peer that bounds its unreleased QoS 2 identifiers across connections (as
    /// this crate does) is never overrun.
    fn next_packet_id(&self, qos: QoS) -> Option<(PacketIds, Option<u16>)> {
        let mut ids = self.ids.clone();
        if qos == QoS::AtMostOnce {
            return Some((ids, None));
        }
        if self.inflight.len() >= self.send_quota() {
            return None;
        }
        let id = ids.allocate(|id| self.packet_id_in_use(id))?;
        Some((ids, Some(id)))
    }

    /// A queued message was written: a QoS 1/2 one is in flight from now on (a QoS 0 one is
    /// done).
    fn track_sent(&mut self, message: Message<S::Bytes, S::Payload>, packet_id: Option<u16>) {
        if let Some(packet_id) = packet_id {
            let stage = if message.qos == QoS::AtLeastOnce {
                Stage::Qos1Sent
            } else {
                Stage::Qos2Sent
            };
            // Cannot fail: the quota is at most the capacity.
            let _ = self.inflight.push_back(Inflight {
                packet_id,
                stage,
                resend: false,
                counted: true,
                message,
            });
        }
    }

    /// Lowers the number of outgoing QoS 1/2 messages in flight on this connection to at
    /// most `max` (at least 1), below the peer's Receive Maximum: a client's own bound,
    /// for 3.1.1, which has no Receive Maximum, or below a large one. Call it after each
    /// [`accept_connack`](Self::accept_connack).
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, Publish, QoS};
    /// use facteur_session::{AllocStore, Config, Connection, Instant, Role, Session};
    /// let mut client = Session::<AllocStore>::new(Config::new(Role::Client));
    /// let now = Instant::from_millis(0);
    /// client.on_connect(now, Connection::new(ProtocolVersion::V3_1_1, 0));
    /// client.limit_inflight(1);
    /// for _ in 0..2 {
    ///     client.publish(&Publish { qos: QoS::AtLeastOnce, ..Publish::new("t", b"x") }, now)?;
    /// }
    /// let mut out = [0u8; 16];
    /// while client.poll_transmit(now, &mut out)?.is_some() {}
    /// assert_eq!((client.inflight(), client.queued()), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limit_inflight(&mut self, max: u16) {
        let max = max.max(1);
        let peer = &mut self.connection.peer_receive_maximum;
        *peer = (*peer).min(max);
    }

    /// Takes a packet identifier for a packet of the caller's own (a client's SUBSCRIBE or
    /// UNSUBSCRIBE): one no QoS 1/2 PUBLISH in flight uses and no other reserved one, from
    /// the same allocator as PUBLISH identifiers (MQTT-2.2.1-3). It stays reserved, across
    /// connections, until [`release_packet_id`](Self::release_packet_id); a client's
    /// SUBACK or UNSUBACK given to [`handle`](Self::handle) releases it. `None` when every
    /// identifier is taken or the store holds no more reservations.
    ///
    /// ```
    /// use facteur_session::{AllocStore, Config, Role, Session};
    /// let mut client = Session::<AllocStore>::new(Config::new(Role::Client));
    /// let a = client.reserve_packet_id().unwrap();
    /// let b = client.reserve_packet_id().unwrap();
    /// assert_ne!(a, b);
    /// assert!(client.release_packet_id(a));
    /// assert!(!client.release_packet_id(a), "released once");
    /// ```
    pub fn reserve_packet_id(&mut self) -> Option<u16> {
        if self.reserved.len() >= self.reserved.max_len() {
            return None;
        }
        let mut ids = self.ids.clone();
        let id = ids.allocate(|id| self.packet_id_in_use(id))?;
        self.ids = ids;
        self.reserved.try_push(id).ok()?;
        Some(id)
    }

    /// Gives back an identifier from [`reserve_packet_id`](Self::reserve_packet_id); false
    /// if it was not reserved.
    pub fn release_packet_id(&mut self, id: u16) -> bool {
        match self.reserved.iter().position(|&r| r == id) {
            Some(i) => {
                self.reserved.remove_at(i);
                true
            }
            None => false,
        }
    }

    /// Gives back every identifier from [`reserve_packet_id`](Self::reserve_packet_id): for
    /// a client that does not send its unanswered SUBSCRIBE / UNSUBSCRIBE packets again on
    /// its next connection (they are not part of the session state MQTT resends, so their
    /// identifiers are free once the connection that carried them is gone).
    ///
    /// ```
    /// use facteur_session::{AllocStore, Config, Role, Session};
    /// let mut client = Session::<AllocStore>::new(Config::new(Role::Client));
    /// let a = client.reserve_packet_id().unwrap();
    /// client.release_packet_ids();
    /// assert!(!client.release_packet_id(a), "already released");
    /// ```
    pub fn release_packet_ids(&mut self) {
        self.reserved = Default::default();
    }

    /// The caller ends the connection for `reason` (a malformed packet it could not decode,
    /// a packet too large, its own protocol check): the link stops and, in MQTT 5, a
    /// DISCONNECT with `reason` and the reason string `why` is the last packet
    /// [`poll_transmit`](Self::poll_transmit) gives (3.x has no DISCONNECT for an error: a
    /// client's would delete its will). Then close the connection and call
    /// [`on_connection_lost`](Self::on_connection_lost). Does nothing when not connected.
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, ReasonCode};
    /// use facteur_session::{AllocStore, Config, Connection, Instant, Role, Session};
    /// let mut client = Session::<AllocStore>::new(Config::new(Role::Client));
    /// let now = Instant::from_millis(0);
    /// client.on_connect(now, Connection::new(ProtocolVersion::V5, 0));
    /// client.abort(ReasonCode::MalformedPacket, "bad bytes");
    /// let mut out = [0u8; 64];
    /// let n = client.poll_transmit(now, &mut out).unwrap().unwrap();
    /// assert_eq!(&out[..3], [0xE0, 0x0E, 0x81]); // DISCONNECT 0x81 and its reason string
    /// assert!(!client.is_connected());
    /// ```
    pub fn abort(&mut self, reason: ReasonCode, why: &'static str) {
        if self.link != Link::Up {
            return;
        }
        self.link = Link::Closing;
        if self.connection.version.is_v5() {
            self.disconnect.set((reason, why));
        }
    }

    /// Client side: whether `packet` may come from a server now. A CONNECT, CONNACK (the
    /// connection's one was read before [`accept_connack`](Self::accept_connack)),
    /// SUBSCRIBE, UNSUBSCRIBE, PINGREQ or AUTH (no enhanced authentication is asked for),
    /// or a SUBACK / UNSUBACK for no identifier reserved, is a protocol error (0x82); a
    /// SUBACK or UNSUBACK releases its identifier.
    fn client_expects(&mut self, packet: &Packet<'_>) -> bool {
        let why = match packet {
            Packet::SubAck(a) if self.release_packet_id(a.packet_id) => return true,
            Packet::UnsubAck(a) if self.release_packet_id(a.packet_id) => return true,
            Packet::SubAck(_) | Packet::UnsubAck(_) => "SUBACK or UNSUBACK for no request",
            Packet::Connect(_) => "CONNECT sent to a client",
            Packet::ConnAck(_) => "a second CONNACK",
            Packet::Subscribe(_) | Packet::Unsubscribe(_) => {
                "SUBSCRIBE or UNSUBSCRIBE sent to a client"
            }
            Packet::PingReq => "PINGREQ sent to a client",
            Packet::Auth(_) => "AUTH without enhanced authentication",
            _ => return true,
        };
        self.protocol_error(ReasonCode::ProtocolError, why);
        false
    }

    /// The next event, if any. Call until `None`.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) (and then
    /// [`poll_transmit`](Self::poll_transmit)) should next be called: the earliest of the
    /// client's next PINGREQ, the keep alive deadline for hearing from the peer and the
    /// earliest Message Expiry Interval of a queued message (connected or not), and while
    /// disconnected the session expiry and the will's due time. `None` when no timer runs.
    /// O(queued messages) when some of them have a Message Expiry Interval, O(1) otherwise.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut earliest = None;
        if self.queued_expiring > 0 {
            self.queue
                .for_each_item(|m| earliest = min_opt(earliest, m.expires_at()));
        }
        [
            self.dead_at(),
            self.ping_due(),
            self.will_due_at(),
            self.session_expires_at(),
        ]
        .into_iter()
        .fold(earliest, min_opt)
    }

    /// Runs the timers at `now`: queued messages whose Message Expiry Interval ran out are
    /// dropped ([`Event::Expired`], in queue order); if nothing was received for 1.5 times the
    /// keep alive, the peer is considered gone ([`Event::KeepAliveTimeout`]; a server in MQTT
    /// 5 also queues DISCONNECT with reason Keep Alive timeout). A due PINGREQ is sent by the
    /// next [`poll_transmit`](Self::poll_transmit).
    ///
    /// While disconnected: once the will is due, [`Event::WillDue`] (fetch it with
    /// [`will`](Self::will)); once the session expiry has passed, [`Event::SessionExpired`],
    /// and the session state (queued and in-flight messages, received identifiers) is
    /// discarded as by [`clear_session_state`](Self::clear_session_state). When both are due
    /// the will comes first.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.drop_expired(now);
        if self.will_due_at().is_some_and(|at| now >= at) {
            if let Some(will) = self.will.get_mut() {
                will.stage = WillStage::Due;
            }
            self.event(Event::WillDue);
        }
        if self.session_expires_at().is_some_and(|at| now >= at) {
            self.end_session();
            self.event(Event::SessionExpired);
        }
        if let Some(dead) = self.dead_at() {
            if now >= dead {
                self.link = Link::Closing;
                if self.connection.version.is_v5() && self.config.role == Role::Server {
                    self.disconnect.set((
                        ReasonCode::KeepAliveTimeout,
                        "nothing received for 1.5 times the keep alive",
                    ));
                }
                self.event(Event::KeepAliveTimeout);
            }
        }
    }

    /// Drops the queued messages whose Message Expiry Interval ran out ([`Event::Expired`]).
    fn drop_expired(&mut self, now: Instant) {
        if self.queued_expiring == 0 {
            return;
        }
        self.retain_queued(|m| !m.expired(now), |message| Event::Expired { message });
    }

    /// When the session expires: its expiry after the connection was lost, unless it never
    /// expires.
    fn session_expires_at(&self) -> Option<Instant> {
        let lost = self.lost_at.filter(|_| self.link == Link::Down)?;
        match self.session_expiry? {
            u32::MAX => None,
            secs => Some(lost.add_millis(u64::from(secs) * 1000)),
        }
    }

    /// When the armed will is due: the will delay after the loss, or the session expiry if
    /// shorter.
    fn will_due_at(&self) -> Option<Instant> {
        let will = self.will.get().filter(|w| w.stage == WillStage::Armed)?;
        let lost = self.lost_at.filter(|_| self.link == Link::Down)?;
        let secs = will.delay.min(self.session_expiry.unwrap_or(u32::MAX));
        Some(lost.add_millis(u64::from(secs) * 1000))
    }

    fn keep_alive_ms(&self) -> Option<u64> {
        match (self.link, self.connection.keep_alive) {
            (Link::Up, ka) if ka > 0 => Some(u64::from(ka) * 1000),
            _ => None,
        }
    }

    fn dead_at(&self) -> Option<Instant> {
        self.keep_alive_ms()
            .map(|ka| self.last_received.add_millis(ka + ka / 2))
    }

    /// A client's next PINGREQ: after a keep alive of sending nothing, or, with no PINGREQ
    /// unanswered, after 1.25 keep alive of hearing nothing (a client that only publishes
    /// QoS 0 hears nothing back: its ping comes before the 1.5 keep alive deadline, so a
    /// live server answers in time).
    fn ping_due(&self) -> Option<Instant> {
        match self.config.role {
            Role::Client => self.keep_alive_ms().map(|ka| {
                let idle = self.last_sent.add_millis(ka);
                if self.ping_outstanding {
                    idle
                } else {
                    idle.min(self.last_received.add_millis(ka + ka / 4))
                }
            }),
            Role::Server => None,
        }
    }

    fn sent(&mut self, now: Instant, n: usize) -> usize {
        self.last_sent = now;
        n
    }

    fn event(&mut self, event: Event) {
        if self.events.push_back(event).is_err() {
            self.events_dropped = self.events_dropped.wrapping_add(1);
        }
    }

    /// The peer broke the protocol: report it, say so (and why) in MQTT 5, stop the
    /// connection.
    fn protocol_error(&mut self, reason: ReasonCode, why: &'static str) {
        self.link = Link::Closing;
        if self.connection.version.is_v5() {
            self.disconnect.set((reason, why));
        }
        self.event(Event::ProtocolError { reason });
    }

    /// The messages in flight, in the order first sent.
    fn in_flight(&self) -> impl Iterator<Item = &Inflight<S::Bytes, S::Payload>> {
        let (first, second) = self.inflight.as_slices();
        first.iter().chain(second)
    }

    /// True if `id` identifies a message in flight or is reserved.
    fn packet_id_in_use(&self, id: u16) -> bool {
        self.in_flight().any(|f| f.packet_id == id) || self.reserved.contains(&id)
    }

    /// True if a message in flight waits to be sent again (a PUBLISH after a reconnect, a
    /// PUBREL): those go before anything new.
    fn resend_waiting(&self) -> bool {
        debug_assert_eq!(
            usize::from(self.resends),
            self.in_flight().filter(|f| f.resend).count(),
            "the count of resends waiting is kept with every change of `resend`"
        );
        self.resends > 0
    }

    /// How many outgoing QoS 1/2 messages may be in flight, across connections.
    fn send_quota(&self) -> usize {
        let peer = self.connection.peer_receive_maximum;
        usize::from(peer.max(1)).min(self.inflight.max_len())
    }

    /// True if one more QoS 1/2 PUBLISH may be resent on this connection: fewer than the
    /// peer's Receive Maximum are unacknowledged on it.
    fn publish_allowed(&self) -> bool {
        let counted = self.in_flight().filter(|f| f.counted).count();
        counted < usize::from(self.connection.peer_receive_maximum.max(1))
    }

    /// How many incoming QoS 1/2 messages may be unacknowledged.
    fn receive_quota(&self) -> usize {
        let ours = if self.connection.version.is_v5() {
            self.config.receive_maximum
        } else {
            u16::MAX
        };
        usize::from(ours.max(1))
            .min(self.received.max_len())
            .min(self.acks.max_len())
    }

    /// Incoming QoS 1/2 messages the peer still counts against our Receive Maximum: QoS 2
    /// ones not released, and those whose PUBACK or PUBCOMP is not sent yet.
    fn unacknowledged(&self) -> usize {
        let undecided = self
            .undecided
            .filter(|u| u.kind == AckKind::Ack)
            .map_or(0, |_| 1);
        self.received.len()
            + undecided
            + self.held.iter().filter(|h| h.kind == AckKind::Ack).count()
            + self.acks.iter().filter(|a| a.kind != AckKind::Rec).count()
    }

    /// Queues an acknowledgement unless the same one is already queued; false if full.
    fn queue_ack(&mut self, kind: AckKind, packet_id: u16, reason: ReasonCode) -> bool {
        if self
            .acks
            .iter()
            .any(|a| a.kind == kind && a.packet_id == packet_id)
        {
            return true;
        }
        self.acks
            .try_push(Ack {
                kind,
                packet_id,
                reason,
            })
            .is_ok()
    }

    fn on_publish<'p>(&'p mut self, publish: Publish<'p>) -> Option<Publish<'p>> {
        let mut aliased = None;
        if self.connection.version.is_v5() {
            if let Some(alias) = publish.properties.topic_alias() {
                let max =
                    usize::from(self.config.topic_alias_maximum).min(self.in_aliases.max_len());
                if usize::from(alias) > max {
                    self.protocol_error(
                        ReasonCode::TopicAliasInvalid,
                        "topic alias above the Topic Alias Maximum",
                    );
                    return None;
                }
                let known = self.in_aliases.iter().position(|a| a.alias == alias);
                if publish.topic.is_empty() {
                    if known.is_none() {
                        self.protocol_error(
                            ReasonCode::TopicAliasInvalid,
                            "empty topic with a topic alias not set before",
                        );
                        return None;
                    }
                    aliased = known;
                } else {
                    let Some(topic) = S::Bytes::from_parts(publish.topic.as_bytes(), &[]) else {
                        self.protocol_error(
                            ReasonCode::ImplementationSpecificError,
                            "no room to store the topic alias",
                        );
                        return None;
                    };
                    match known {
                        Some(i) => self.in_aliases[i].topic = topic,
                        None => {
                            if self.in_aliases.try_push(Alias { alias, topic }).is_err() {
                                self.protocol_error(
                                    ReasonCode::TopicAliasInvalid,
                                    "more topic aliases than can be stored",
                                );
                                return None;
                            }
                        }
                    }
                }
            }
        }
        let deliver = match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => true,
            (QoS::AtLeastOnce, Some(id)) => {
                if self
                    .acks
                    .iter()
                    .any(|a| a.kind == AckKind::Ack && a.packet_id == id)
                {
                    false // a resend of one whose PUBACK is not even sent yet
                } else if self.unacknowledged() >= self.receive_quota()
                    || self.acks.len() >= self.acks.max_len()
                {
                    self.protocol_error(
                        ReasonCode::ReceiveMaximumExceeded,
                        "more QoS 1/2 messages unacknowledged than the Receive Maximum",
                    );
                    return None;
                } else {
                    self.undecided = Some(Undecided {
                        kind: AckKind::Ack,
                        packet_id: id,
                    });
                    true
                }
            }
            (QoS::ExactlyOnce, Some(id)) => {
                if self.received.contains(&id) {
                    // Already delivered: acknowledge again (unless the application has not
                    // yet: its deferred PUBREC answers), deliver not.
                    let deferred = self
                        .held
                        .iter()
                        .any(|h| h.kind == AckKind::Rec && h.packet_id == id);
                    if !deferred {
                        self.queue_ack(AckKind::Rec, id, ReasonCode::Success);
                    }
                    false
                } else if self.unacknowledged() >= self.receive_quota()
                    || self.acks.len() >= self.acks.max_len()
                    || self.received.try_push(id).is_err()
                {
                    self.protocol_error(
                        ReasonCode::ReceiveMaximumExceeded,
                        "more QoS 1/2 messages unacknowledged than the Receive Maximum",
                    );
                    return None;
                } else {
                    self.undecided = Some(Undecided {
                        kind: AckKind::Rec,
                        packet_id: id,
                    });
                    true
                }
            }
        };
        if !deliver {
            return None;
        }
        let topic = match aliased {
            Some(i) => self.in_aliases[i].topic(),
            None => publish.topic,
        };
        Some(Publish { topic, ..publish })
    }

    /// PUBACK (for a message at `Qos1Sent`) or PUBCOMP (at `Released`): the message is done.
    fn on_outgoing_ack(&mut self, r: PubResponse<'_>, stage: Stage) {
        let Some(i) = self
            .in_flight()
            .position(|f| f.packet_id == r.packet_id && f.stage == stage)
        else {
            return;
        };
        self.complete(i, r.reason_code);
    }

    fn complete(&mut self, i: usize, reason: ReasonCode) {
        let Some(f) = self.inflight.remove_at(i) else {
            return;
        };
        self.resends -= u16::from(f.resend);
        if !self.config.report_acknowledgements {
            return;
        }
        self.event(Event::Acknowledged {
            message: f.message.id,
            packet_id: f.packet_id,
            qos: f.message.qos,
            reason,
        });
    }

    fn on_pubrec(&mut self, r: PubResponse<'_>) {
        let Some(i) = self
            .in_flight()
            .position(|f| f.packet_id == r.packet_id && f.stage != Stage::Qos1Sent)
        else {
            return;
        };
        let Some(f) = self.inflight.get_mut(i) else {
            return;
        };
        if f.stage == Stage::Qos2Sent && r.reason_code.is_error() {
            self.complete(i, r.reason_code);
            return;
        }
        f.stage = Stage::Released;
        if !f.resend {
            f.resend = true;
            self.resends += 1;
        }
    }

    fn on_pubrel(&mut self, r: PubResponse<'_>) {
        let id = r.packet_id;
        let found = self.received.iter().position(|&x| x == id);
        if let Some(i) = found {
            self.received.remove_at(i);
        }
        if let Some(i) = self
            .acks
            .iter()
            .position(|a| a.kind == AckKind::Rec && a.packet_id == id)
        {
            self.acks.remove_at(i);
        }
        let reason = if found.is_none() && self.connection.version.is_v5() {
            ReasonCode::PacketIdentifierNotFound
        } else {
            ReasonCode::Success
        };
        // If there is no room the peer resends PUBREL on the next connection.
        self.queue_ack(AckKind::Comp, id, reason);
    }
}

/// The earlier of two optional instants.
fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    extern crate std;

    use core::mem::size_of;

    use facteur_codec::{Packet, ProtocolVersion, PubResponse, Publish, QoS};

    use super::{Config, Connection, Role, Session};
    use crate::{AllocStore, Fifo, Instant, Slot};

    /// An idle session is what a broker pays per connected client: 416 bytes before the
    /// containers of `AllocStore`, the will and the DISCONNECT slot were one pointer each,
    /// 200 after (x86_64).
    #[test]
    fn an_idle_alloc_session_is_small() {
        let size = size_of::<Session<AllocStore>>();
        std::println!("size_of::<Session<AllocStore>>() = {size}");
        assert!(size <= 200, "Session<AllocStore> is {size} bytes");
        for container in [
            size_of::<<AllocStore as crate::Store>::Queue>(),
            size_of::<<AllocStore as crate::Store>::Inflight>(),
            size_of::<<AllocStore as crate::Store>::Received>(),
            size_of::<<AllocStore as crate::Store>::Acks>(),
            size_of::<<AllocStore as crate::Store>::Aliases>(),
            size_of::<<AllocStore as crate::Store>::Events>(),
            size_of::<<AllocStore as crate::Store>::Rare<[u64; 8]>>(),
        ] {
            assert_eq!(container, size_of::<usize>());
        }
    }

    fn connected() -> Session<AllocStore> {
        let mut session = Session::<AllocStore>::new(Config::new(Role::Server));
        let now = Instant::from_millis(0);
        session.on_connect(now, Connection::new(ProtocolVersion::V3_1_1, 60));
        session
    }

    /// Publishes one QoS 1 message, sends it and takes its PUBACK.
    fn round_trip(session: &mut Session<AllocStore>, packet_id: u16) {
        let now = Instant::from_millis(0);
        let message = Publish {
            qos: QoS::AtLeastOnce,
            ..Publish::new("t", b"x")
        };
        session.publish(&message, now).unwrap();
        let mut out = [0u8; 64];
        assert!(session.poll_transmit(now, &mut out).unwrap().is_some());
        assert_eq!(session.inflight(), 1);
        session.handle(Packet::PubAck(PubResponse::new(packet_id)), now);
        assert!(session.poll_event().is_some());
        assert_eq!(session.inflight(), 0);
    }

    #[test]
    fn a_busy_session_keeps_its_allocations() {
        let mut session = connected();
        assert_eq!(session.inflight.capacity(), 0);
        round_trip(&mut session, 1);
        let (inflight, queue) = (session.inflight.capacity(), session.queue.capacity());
        assert!(inflight > 0 && queue > 0 && session.events.capacity() > 0);
        // Empty again, the allocations stay for the next message.
        for packet_id in 2..10 {
            round_trip(&mut session, packet_id);
            assert_eq!(session.inflight.capacity(), inflight);
            assert_eq!(session.queue.capacity(), queue);
        }
    }

    #[test]
    fn release_idle_memory_frees_the_empty_containers_only() {
        let mut session = connected();
        round_trip(&mut session, 1);
        let now = Instant::from_millis(0);
        // One message left queued (the session is disconnected): its queue stays.
        session.on_connection_lost(now);
        session.publish(&Publish::new("t", b"x"), now).unwrap();
        session.release_idle_memory();
        assert_eq!(session.inflight.capacity(), 0);
        assert_eq!(session.events.capacity(), 0);
        assert!(session.queue.capacity() > 0);
        assert_eq!(session.queue.len(), 1);
        session.on_connect(now, Connection::new(ProtocolVersion::V3_1_1, 60));
        let mut out = [0u8; 64];
        assert!(session.poll_transmit(now, &mut out).unwrap().is_some());
        session.release_idle_memory();
        assert_eq!(session.queue.capacity(), 0);
        for c in [
            session.reserved.capacity(),
            session.received.capacity(),
            session.acks.capacity(),
            session.held.capacity(),
            session.out_aliases.capacity(),
            session.in_aliases.capacity(),
        ] {
            assert_eq!(c, 0);
        }
        assert!(!session.will.is_some() && !session.disconnect.is_some());
        // And it works on: the next message allocates again.
        round_trip(&mut session, 2);
    }
}
