//! What the session reports to the application.

use facteur_codec::{QoS, ReasonCode};

/// A local handle on a message accepted by [`publish`](crate::Session::publish), reported
/// back in [`Event`]s. Handles count up from 0 per session and wrap after 2³² messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub(crate) u32);

impl MessageId {
    /// The handle's number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Something the application should know, pulled with
/// [`poll_event`](crate::Session::poll_event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An outgoing QoS 1 or 2 message is done: PUBACK (QoS 1), PUBCOMP (QoS 2) or a PUBREC
    /// with an error reason (QoS 2, the peer refused it) was received. Its packet identifier
    /// is free again.
    Acknowledged {
        /// The handle [`publish`](crate::Session::publish) returned.
        message: MessageId,
        /// The packet identifier it was sent with.
        packet_id: u16,
        /// Its QoS.
        qos: QoS,
        /// The peer's reason code (always `Success` before MQTT 5).
        reason: ReasonCode,
    },
    /// A queued message's Message Expiry Interval ran out before it could be sent; it was
    /// dropped.
    Expired {
        /// The handle [`publish`](crate::Session::publish) returned.
        message: MessageId,
    },
    /// A queued message was dropped unsent by the [`QueueLimits`](crate::QueueLimits): a QoS
    /// 0 message displaced by a QoS 1/2 one while the queue was full, or a QoS 0 message
    /// queued when the connection was lost and the session keeps none offline.
    Dropped {
        /// The handle [`publish`](crate::Session::publish) returned.
        message: MessageId,
    },
    /// A queued message was dropped unsent: its PUBLISH would exceed the peer's Maximum
    /// Packet Size (or cannot be encoded at all).
    TooLarge {
        /// The handle [`publish`](crate::Session::publish) returned.
        message: MessageId,
    },
    /// The peer broke the protocol (unknown topic alias: `TopicAliasInvalid`; too many
    /// unacknowledged QoS 1/2 messages: `ReceiveMaximumExceeded`; ...). In MQTT 5 a
    /// DISCONNECT with this reason is queued; in every version the connection should be
    /// closed and [`on_connection_lost`](crate::Session::on_connection_lost) called.
    ProtocolError {
        /// Why.
        reason: ReasonCode,
    },
    /// Nothing was received for 1.5 times the keep alive: the peer is considered gone. Close
    /// the connection and call [`on_connection_lost`](crate::Session::on_connection_lost).
    KeepAliveTimeout,
    /// The will is due (server side: its connection was lost without a normal DISCONNECT,
    /// and the will delay or the session expiry passed): publish
    /// [`Session::will`](crate::Session::will) to its subscribers (and keep it as retained if
    /// its retain flag is set), then call [`clear_will`](crate::Session::clear_will).
    WillDue,
    /// The session expired: its connection was lost and the Session Expiry Interval
    /// passed with no new connection. Its state was discarded; a new connection of the same
    /// client starts a new session.
    SessionExpired,
    /// The peer sent DISCONNECT.
    Disconnected {
        /// Its reason (always `Success` before MQTT 5).
        reason: ReasonCode,
    },
}
