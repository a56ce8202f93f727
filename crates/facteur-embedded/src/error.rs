//! What can go wrong, as values a firmware can act on.

use facteur_codec::{DecodeError, EncodeError, PacketType, ReasonCode};
use facteur_session::PublishError;

/// An error of the client. `E` is the transport's error.
///
/// After [`Transport`](Self::Transport), [`Closed`](Self::Closed),
/// [`CannotSend`](Self::CannotSend),
/// [`RxBufferTooSmall`](Self::RxBufferTooSmall), [`Malformed`](Self::Malformed),
/// [`Protocol`](Self::Protocol), [`KeepAliveTimeout`](Self::KeepAliveTimeout),
/// [`Disconnected`](Self::Disconnected), [`Refused`](Self::Refused) and
/// [`Timeout`](Self::Timeout) the connection is over ([`is_fatal`](Self::is_fatal)): open a
/// new stream and call `connect` again; the session carries on (messages in flight are sent
/// again). The others leave the connection as it was.
///
/// ```
/// use facteur_embedded::{Error, ReasonCode};
/// fn next_step<E>(error: &Error<E>) -> &'static str {
///     match error {
///         Error::Refused(ReasonCode::BadUserNameOrPassword) => "check the credentials",
///         Error::RxBufferTooSmall { .. } => "a larger receive buffer, or MQTT 5",
///         e if e.is_fatal() => "open a new socket and connect again",
///         _ => "carry on",
///     }
/// }
/// assert_eq!(next_step::<()>(&Error::Closed), "open a new socket and connect again");
/// assert_eq!(next_step::<()>(&Error::TxBufferTooSmall { needed: 300 }), "carry on");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The stream failed.
    Transport(E),
    /// The broker closed the stream (a read returned 0 bytes).
    Closed,
    /// The broker sent a packet larger than the receive buffer: `needed` bytes. MQTT 5
    /// brokers are told the buffer's size (Maximum Packet Size) and do not send such packets.
    RxBufferTooSmall {
        /// The whole packet's size.
        needed: usize,
    },
    /// A packet to send does not fit the transmit buffer: `needed` bytes (at least). It was
    /// not taken; the connection goes on.
    TxBufferTooSmall {
        /// The size it needs.
        needed: usize,
    },
    /// A packet the session must send (an MQTT 5 acknowledgement with a reason string, a
    /// resend) is larger than the whole transmit buffer, so the connection cannot go on.
    /// A transmit buffer of [`MIN_BUFFER`](crate::MIN_BUFFER) bytes or more holds every
    /// packet the client sends but the user's own PUBLISH and SUBSCRIBE packets.
    CannotSend {
        /// The size it needs.
        needed: usize,
    },
    /// The broker refused the connection; the CONNACK's reason code (a 3.1.1 return code is
    /// given as its 5.0 equivalent: `UnsupportedProtocolVersion`, `ClientIdentifierNotValid`,
    /// `ServerUnavailable`, `BadUserNameOrPassword`, `NotAuthorized`).
    Refused(ReasonCode),
    /// The broker sent bytes that are not a valid MQTT packet.
    Malformed(DecodeError),
    /// The broker broke the protocol.
    Protocol(Violation),
    /// Nothing was heard from the broker for 1.5 times the keep alive.
    KeepAliveTimeout,
    /// The broker sent DISCONNECT, with this reason (`Success` before 5.0).
    Disconnected(ReasonCode),
    /// No CONNACK within [`connect_timeout_ms`](crate::ConnectOptions::connect_timeout_ms).
    Timeout,
    /// The call needs a connection and there is none (or `connect` was called on one that
    /// is up).
    NotConnected,
    /// The message was not taken: invalid topic or properties, larger than the session's
    /// store holds, or the queue is full.
    Publish(PublishError),
    /// A SUBSCRIBE or UNSUBSCRIBE that cannot be sent (no filter, an invalid filter, a
    /// field too long).
    Invalid(EncodeError),
    /// As many SUBSCRIBE / UNSUBSCRIBE packets as the session tracks
    /// (the store's in-flight capacity, `INFLIGHT` of
    /// [`HeaplessStore`](facteur_session::HeaplessStore)) await their acknowledgement.
    TooManyPending,
}

/// How the broker broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A packet a broker does not send, or not now (anything before CONNACK, a second
    /// CONNACK, PINGREQ, SUBSCRIBE, AUTH...).
    UnexpectedPacket(PacketType),
    /// A SUBACK or UNSUBACK for no SUBSCRIBE or UNSUBSCRIBE of ours.
    UnknownPacketId(u16),
    /// What the session found: the reason code it names (`ReceiveMaximumExceeded`,
    /// `TopicAliasInvalid`, `ProtocolError` for a session present we never had...).
    Session(ReasonCode),
}

impl<E> Error<E> {
    /// True if the connection is over: see [`Error`].
    ///
    /// ```
    /// use facteur_embedded::Error;
    /// assert!(Error::<()>::KeepAliveTimeout.is_fatal());
    /// assert!(!Error::<()>::NotConnected.is_fatal());
    /// ```
    pub const fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Self::TxBufferTooSmall { .. }
                | Self::NotConnected
                | Self::Publish(_)
                | Self::Invalid(_)
                | Self::TooManyPending
        )
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for Error<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "transport error: {e:?}"),
            Self::Closed => f.write_str("the broker closed the connection"),
            Self::RxBufferTooSmall { needed } => {
                write!(
                    f,
                    "the broker sent a {needed}-byte packet, larger than the receive buffer"
                )
            }
            Self::TxBufferTooSmall { needed } => {
                write!(f, "the packet needs a transmit buffer of {needed} bytes")
            }
            Self::CannotSend { needed } => {
                write!(
                    f,
                    "a {needed}-byte packet the session must send exceeds the transmit buffer"
                )
            }
            Self::Refused(r) => write!(f, "the broker refused the connection: {r}"),
            Self::Malformed(e) => write!(f, "malformed packet from the broker: {e}"),
            Self::Protocol(v) => write!(f, "the broker broke the protocol: {v:?}"),
            Self::KeepAliveTimeout => f.write_str("nothing heard for 1.5 times the keep alive"),
            Self::Disconnected(r) => write!(f, "the broker disconnected: {r}"),
            Self::Timeout => f.write_str("no CONNACK in time"),
            Self::NotConnected => f.write_str("not connected"),
            Self::Publish(e) => write!(f, "message refused: {e}"),
            Self::Invalid(e) => write!(f, "cannot send: {e}"),
            Self::TooManyPending => {
                f.write_str("too many SUBSCRIBE / UNSUBSCRIBE packets await their acknowledgement")
            }
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for Error<E> {}

impl<E> From<PublishError> for Error<E> {
    fn from(e: PublishError) -> Self {
        Self::Publish(e)
    }
}

impl<E> From<DecodeError> for Error<E> {
    fn from(e: DecodeError) -> Self {
        match e.skip_len() {
            Some(needed) => Self::RxBufferTooSmall { needed },
            None => Self::Malformed(e),
        }
    }
}
