//! CONNECT and CONNACK: what the two ends settle when a connection opens, decided here once
//! for every server (the broker) and every client (tokio or embedded).
//!
//! Server side: [`client_identifier`] says which identifier a CONNECT goes by, then
//! [`Session::accept_connect`] negotiates the connection (keep alive capped and Server Keep
//! Alive, Receive Maximum both ways, Topic Alias Maximum, Maximum Packet Size, Request
//! Problem Information, Session Expiry for 3.x and 5.0, the will, session present) and
//! [`Accepted::connack`] writes the CONNACK that says so. A connection that replaces one
//! still up goes through [`Session::take_over`] first.
//!
//! Client side: [`Session::accept_connack`] reads the server's CONNACK against the CONNECT
//! that was sent.

use facteur_codec::{ConnAck, Connect, Properties, Property, ProtocolVersion, ReasonCode};

use crate::session::PublishError;
use crate::{Connection, Instant, Session, Store};

/// What a server allows and announces to its clients; the values a server without a
/// configuration of its own would pick are [`ServerPolicy::new`]'s.
///
/// Receive Maximum and Topic Alias Maximum in the other direction (what the server takes)
/// are the session's [`Config`](crate::Config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerPolicy {
    /// The largest keep alive accepted, in seconds: a longer one (or none, 0) is lowered to
    /// it, and a 5.0 client is told so with Server Keep Alive.
    pub max_keep_alive: u16,
    /// Most outgoing QoS 1/2 messages unacknowledged at once, in every version; a 5.0
    /// client's own Receive Maximum lowers it.
    pub max_inflight: u16,
    /// The Maximum Packet Size announced to 5.0 clients; 0 announces none.
    pub maximum_packet_size: u32,
    /// Whether retained messages are kept (a 5.0 client is told when not).
    pub retain_available: bool,
    /// Whether a client may connect with an empty identifier (one is assigned then).
    pub allow_empty_client_id: bool,
    /// The Session Expiry Interval given to a session that asks never to expire (5.0
    /// `0xFFFF_FFFF`, 3.x clean session 0); `None` keeps it forever.
    pub never_expires_cap: Option<u32>,
}

impl ServerPolicy {
    /// No keep alive cap, 65,535 in flight, no Maximum Packet Size announced, retained
    /// messages available, empty identifiers assigned, persistent sessions kept forever.
    pub const fn new() -> Self {
        Self {
            max_keep_alive: u16::MAX,
            max_inflight: u16::MAX,
            maximum_packet_size: 0,
            retain_available: true,
            allow_empty_client_id: true,
            never_expires_cap: None,
        }
    }
}

impl Default for ServerPolicy {
    fn default() -> Self {
        Self::new()
    }
}

/// Which identifier a CONNECT goes by (see [`client_identifier`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientId<'a> {
    /// The one the client gave.
    Given(&'a str),
    /// The client gave none and may have one chosen by the server (sent back in 5.0 as the
    /// Assigned Client Identifier).
    Assign,
}

/// Why a CONNECT is refused: the CONNACK reason code and, for 5.0, the reason string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The CONNACK's reason code (mapped to a 3.x return code when encoded for 3.x).
    pub reason: ReasonCode,
    /// Why, for the reason string.
    pub why: &'static str,
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.why, self.reason)
    }
}

impl core::error::Error for Refused {}

/// The client identifier rules of MQTT: an empty identifier is allowed in 5.0, and in
/// 3.1.1 with clean session only (never in 3.1), and only where the server assigns one.
///
/// ```
/// use facteur_codec::{Connect, ProtocolVersion, ReasonCode};
/// use facteur_session::{client_identifier, ClientId, ServerPolicy};
/// let policy = ServerPolicy::new();
/// let named = Connect::new(ProtocolVersion::V3_1_1, "sensor-1");
/// assert_eq!(client_identifier(&named, &policy), Ok(ClientId::Given("sensor-1")));
/// let anonymous = Connect { clean_start: false, ..Connect::new(ProtocolVersion::V3_1_1, "") };
/// let refused = client_identifier(&anonymous, &policy).unwrap_err();
/// assert_eq!(refused.reason, ReasonCode::ClientIdentifierNotValid);
/// ```
///
/// # Errors
/// [`ReasonCode::ClientIdentifierNotValid`] when the identifier is empty and may not be.
pub fn client_identifier<'a>(
    connect: &Connect<'a>,
    policy: &ServerPolicy,
) -> Result<ClientId<'a>, Refused> {
    if !connect.client_id.is_empty() {
        return Ok(ClientId::Given(connect.client_id));
    }
    let why = match connect.protocol {
        _ if !policy.allow_empty_client_id => {
            "this broker assigns no client identifier (allow_zero_length_clientid is off)"
        }
        ProtocolVersion::V3_1 => "MQTT 3.1 needs a client identifier",
        ProtocolVersion::V3_1_1 if !connect.clean_start => {
            "an empty client identifier needs clean session in MQTT 3.1.1"
        }
        _ => return Ok(ClientId::Assign),
    };
    Err(Refused {
        reason: ReasonCode::ClientIdentifierNotValid,
        why,
    })
}

/// A CONNECT accepted by [`Session::accept_connect`]: what was settled, and the CONNACK to
/// send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The server holds state from before for this client (clean start 0 and a session
    /// that had not ended).
    pub session_present: bool,
    /// The keep alive in force, in seconds.
    pub keep_alive: u16,
    /// The client asked for another keep alive (5.0: sent as Server Keep Alive).
    pub keep_alive_changed: bool,
    /// The Session Expiry Interval in force, in seconds.
    pub session_expiry: u32,
    version: ProtocolVersion,
    receive_maximum: u16,
    topic_alias_maximum: u16,
    maximum_packet_size: u32,
    retain_available: bool,
}

/// The CONNACK properties of an [`Accepted`] connection (5.0), held for the CONNACK that
/// borrows them: see [`Accepted::connack_properties`].
#[derive(Debug, Clone, Copy)]
pub struct ConnAckProperties<'a> {
    list: [Property<'a>; 6],
    len: usize,
}

impl<'a> ConnAckProperties<'a> {
    /// As [`Properties`], for a [`ConnAck`].
    pub fn as_properties(&self) -> Properties<'_> {
        Properties::from_slice(&self.list[..self.len])
    }
}

impl Accepted {
    /// The CONNACK properties the client must know (5.0; none before): Receive Maximum,
    /// Topic Alias Maximum, Retain Available when not, Maximum Packet Size, Server Keep
    /// Alive when changed, and the Assigned Client Identifier if one was chosen.
    pub fn connack_properties<'a>(
        &self,
        assigned_client_id: Option<&'a str>,
    ) -> ConnAckProperties<'a> {
        let mut props = ConnAckProperties {
            list: [Property::ReceiveMaximum(0); 6],
            len: 0,
        };
        let mut add = |p: Property<'a>| {
            props.list[props.len] = p;
            props.len += 1;
        };
        if self.version.is_v5() {
            add(Property::ReceiveMaximum(self.receive_maximum));
            if self.topic_alias_maximum > 0 {
                add(Property::TopicAliasMaximum(self.topic_alias_maximum));
            }
            if !self.retain_available {
                add(Property::RetainAvailable(false));
            }
            if self.maximum_packet_size > 0 {
                add(Property::MaximumPacketSize(self.maximum_packet_size));
            }
            if self.keep_alive_changed {
                add(Property::ServerKeepAlive(self.keep_alive));
            }
            if let Some(id) = assigned_client_id {
                add(Property::AssignedClientIdentifier(id));
            }
        }
        props
    }

    /// The CONNACK: success, session present, and `properties` (from
    /// [`connack_properties`](Self::connack_properties)).
    pub fn connack<'a>(&self, properties: &'a ConnAckProperties<'_>) -> ConnAck<'a> {
        ConnAck {
            session_present: self.session_present,
            properties: properties.as_properties(),
            ..ConnAck::new(ReasonCode::Success)
        }
    }
}

/// A CONNACK accepted by [`Session::accept_connack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connected {
    /// The server resumed the session (its state, and ours, carry on).
    pub session_present: bool,
    /// The keep alive in force (the server's, if it sent Server Keep Alive).
    pub keep_alive: u16,
}

/// What [`Session::take_over`] did with the session the old connection had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeOver {
    /// The session carries on into the new connection.
    Resumed,
    /// The session ended with the old connection (its Session Expiry Interval was 0, or
    /// the new connection asked for a clean start): its state is gone.
    Ended,
}

impl<S: Store> Session<S> {
    /// Server side: negotiates the connection a CONNECT opens and starts it at `now`
    /// (see [`on_connect`](Self::on_connect)). A clean start, or a session that never had
    /// a connection, starts with no state; otherwise the session is resumed (session
    /// present) and what is unacknowledged is resent.
    ///
    /// Settled here: the keep alive (capped by [`ServerPolicy::max_keep_alive`]; 0 is
    /// capped too when there is a cap), the outgoing Receive Maximum (the client's, lowered to
    /// [`ServerPolicy::max_inflight`]), the client's Topic Alias Maximum, Maximum Packet
    /// Size and Request Problem Information, the Session Expiry Interval (5.0: the
    /// property, 0 when absent; 3.x: 0 for clean session, forever otherwise; forever is
    /// [`ServerPolicy::never_expires_cap`]), and the will.
    ///
    /// A session whose connection is still up must go through
    /// [`take_over`](Self::take_over) first.
    ///
    /// ```
    /// use facteur_codec::{Connect, Encode, Packet, ProtocolVersion};
    /// use facteur_session::{AllocStore, Config, Instant, Role, ServerPolicy, Session};
    /// let mut session = Session::<AllocStore>::new(Config::new(Role::Server));
    /// let mut policy = ServerPolicy::new();
    /// policy.max_keep_alive = 60;
    /// let connect = Connect { keep_alive: 600, ..Connect::new(ProtocolVersion::V5, "a") };
    /// let accepted = session.accept_connect(Instant::from_millis(0), &connect, &policy)?;
    /// assert_eq!(accepted.keep_alive, 60);
    /// let props = accepted.connack_properties(None);
    /// let connack = Packet::ConnAck(accepted.connack(&props));
    /// let mut out = [0u8; 32];
    /// let n = connack.encode(ProtocolVersion::V5, &mut out)?;
    /// // Receive Maximum 65,535, Server Keep Alive 60.
    /// assert_eq!(&out[..n], [0x20, 0x09, 0x00, 0x00, 0x06, 0x21, 0xFF, 0xFF, 0x13, 0x00, 0x3C]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The will cannot be kept (invalid topic or properties, too large for the store):
    /// refused with 0x99 (Payload format invalid) or 0x95 (Packet too large); the session
    /// is left as it was, without a connection.
    pub fn accept_connect(
        &mut self,
        now: Instant,
        connect: &Connect<'_>,
        policy: &ServerPolicy,
    ) -> Result<Accepted, Refused> {
        let version = connect.protocol;
        let props = &connect.properties;
        let asked = connect.keep_alive;
        let keep_alive = match asked {
            0 if policy.max_keep_alive < u16::MAX => policy.max_keep_alive,
            k => k.min(policy.max_keep_alive),
        };
        let mut connection = Connection::new(version, keep_alive);
        if version.is_v5() {
            connection.peer_receive_maximum = props.receive_maximum().unwrap_or(u16::MAX);
            connection.peer_topic_alias_maximum = props.topic_alias_maximum().unwrap_or(0);
            if let Some(max) = props.maximum_packet_size() {
                connection.peer_maximum_packet_size = max;
            }
            connection.peer_request_problem_information =
                props.request_problem_information().unwrap_or(true);
        }
        connection.peer_receive_maximum = connection
            .peer_receive_maximum
            .min(policy.max_inflight.max(1));
        let asked_expiry = if version.is_v5() {
            props.session_expiry_interval().unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            u32::MAX
        };
        let session_expiry = match (asked_expiry, policy.never_expires_cap) {
            (u32::MAX, Some(cap)) => cap,
            (asked, _) => asked,
        };
        let session_present = self.has_state() && !connect.clean_start;
        // The will is checked before anything changes, so a refusal leaves the session as it
        // was.
        if let Some(will) = &connect.will {
            self.check_will(will).map_err(|error| Refused {
                reason: match error {
                    PublishError::TooLarge => ReasonCode::PacketTooLarge,
                    _ => ReasonCode::PayloadFormatInvalid,
                },
                why: match error {
                    PublishError::TooLarge => "the will is larger than this server keeps",
                    PublishError::InvalidTopic(_) => "the will topic is not a topic name",
                    _ => "the will properties cannot be sent in a PUBLISH",
                },
            })?;
        }
        if !session_present {
            self.clear_session_state();
        }
        self.on_connect(now, connection);
        self.set_session_expiry(session_expiry);
        match &connect.will {
            // Checked above: cannot fail.
            Some(will) => {
                let _ = self.set_will(will);
            }
            None => self.clear_will(),
        }
        Ok(Accepted {
            session_present,
            keep_alive,
            keep_alive_changed: keep_alive != asked,
            session_expiry,
            version,
            receive_maximum: self.receive_maximum(),
            topic_alias_maximum: self.topic_alias_maximum(),
            maximum_packet_size: policy.maximum_packet_size,
            retain_available: policy.retain_available,
        })
    }

    /// Server side: a new connection takes this session over from the one still up, at
    /// `now`. The old connection counts as lost (the caller closes it; 5.0: DISCONNECT 0x8E,
    /// Session taken over). If its Session Expiry Interval was 0, or the new connection
    /// asks for a clean start, the session ends here: its will is due at once
    /// ([`Event::WillDue`](crate::Event::WillDue)) and its state is discarded
    /// ([`TakeOver::Ended`]; no [`Event::SessionExpired`](crate::Event::SessionExpired), as
    /// the client is back). Otherwise it carries on ([`TakeOver::Resumed`]): a will without
    /// delay is due at once, one with a delay is cancelled by the new connection.
    ///
    /// Act on the events (publish the will) before
    /// [`accept_connect`](Self::accept_connect), which sets the new connection's will.
    pub fn take_over(&mut self, now: Instant, clean_start: bool) -> TakeOver {
        self.on_connection_lost(now);
        let ends = clean_start || self.session_expiry() == Some(0);
        if ends || self.will_delay() == Some(0) {
            self.will_due_now();
        }
        if ends {
            self.end_session();
            TakeOver::Ended
        } else {
            TakeOver::Resumed
        }
    }

    /// Client side: the server's CONNACK to `connect`, received at `now`. On success the
    /// connection starts with what the server announced (Server Keep Alive, Receive Maximum,
    /// Topic Alias Maximum, Maximum Packet Size); if the server holds no session for us,
    /// our session state is discarded (messages in flight go back, first, to the queue of
    /// messages to send, as new messages; QoS 2 ones the server already received are
    /// complete).
    ///
    /// ```
    /// use facteur_codec::{ConnAck, Connect, Property, Properties, ProtocolVersion, ReasonCode};
    /// use facteur_session::{Config, HeaplessStore, Instant, Role, Session};
    /// let mut client = Session::<HeaplessStore<4, 4, 64>>::new(Config::new(Role::Client));
    /// let connect = Connect::new(ProtocolVersion::V5, "c");
    /// let props = [Property::ServerKeepAlive(30), Property::ReceiveMaximum(2)];
    /// let connack = ConnAck { properties: Properties::from_slice(&props), ..ConnAck::new(ReasonCode::Success) };
    /// let connected = client.accept_connack(Instant::from_millis(0), &connect, &connack)?;
    /// assert_eq!(connected.keep_alive, 30);
    /// assert_eq!(client.connection().peer_receive_maximum, 2);
    /// # Ok::<(), ReasonCode>(())
    /// ```
    ///
    /// # Errors
    /// The CONNACK's reason code when the server refused; `ProtocolError` when it claims a
    /// session present that this client never had (the connection must be closed).
    pub fn accept_connack(
        &mut self,
        now: Instant,
        connect: &Connect<'_>,
        connack: &ConnAck<'_>,
    ) -> Result<Connected, ReasonCode> {
        if connack.reason_code.is_error() {
            return Err(connack.reason_code);
        }
        if connack.session_present && !self.has_state() {
            return Err(ReasonCode::ProtocolError);
        }
        let version = connect.protocol;
        let props = &connack.properties;
        let mut keep_alive = connect.keep_alive;
        let mut connection = Connection::new(version, keep_alive);
        if version.is_v5() {
            keep_alive = props.server_keep_alive().unwrap_or(keep_alive);
            connection.keep_alive = keep_alive;
            connection.peer_receive_maximum = props.receive_maximum().unwrap_or(u16::MAX);
            connection.peer_topic_alias_maximum = props.topic_alias_maximum().unwrap_or(0);
            if let Some(max) = props.maximum_packet_size() {
                connection.peer_maximum_packet_size = max;
            }
        }
        if !connack.session_present {
            self.forget_server_state();
        }
        self.on_connect(now, connection);
        Ok(Connected {
            session_present: connack.session_present,
            keep_alive,
        })
    }
}
