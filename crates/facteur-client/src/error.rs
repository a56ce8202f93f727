//! What can go wrong.

use facteur_codec::ReasonCode;

/// An error of the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL given to [`Options::from_url`](crate::Options::from_url) is not one.
    #[error("invalid URL {0}")]
    InvalidUrl(String),
    /// The TLS settings cannot be used (a file missing, a PEM file without a certificate or
    /// key, a name that is not a DNS name).
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection failed (TCP, TLS, WebSocket), or ended.
    #[error("connection: {0}")]
    Io(String),
    /// The broker did not answer in time (CONNACK within the connect timeout).
    #[error("the broker did not answer within the connect timeout")]
    Timeout,
    /// The broker refused the connection (CONNACK reason code).
    #[error("connection refused: {reason}{}", why(.reason_string))]
    Refused {
        /// The CONNACK's reason code (3.1.1 return codes mapped to theirs).
        reason: ReasonCode,
        /// The 5.0 reason string, if any.
        reason_string: Option<String>,
    },
    /// The broker broke the protocol (a malformed packet, one a client never expects, one
    /// over the Maximum Packet Size); the connection was closed with this reason code.
    #[error("protocol error from the broker: {0}")]
    Protocol(ReasonCode),
    /// The broker refused this message (5.0 PUBACK or PUBREC reason code).
    #[error("publish refused: {reason}{}", why(.reason_string))]
    PublishRefused {
        /// Its reason code.
        reason: ReasonCode,
        /// Its reason string, if any.
        reason_string: Option<String>,
    },
    /// The message cannot be sent: invalid topic, properties, or larger than the broker's
    /// Maximum Packet Size.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// A topic filter is not one.
    #[error("invalid topic filter: {0}")]
    InvalidFilter(String),
    /// Not connected and the queue of messages waiting for the connection is full.
    #[error("offline and the queue of unsent messages is full")]
    QueueFull,
    /// The message expired (Message Expiry Interval) before it could be sent.
    #[error("the message expired before it could be sent")]
    Expired,
    /// The broker ended the connection with DISCONNECT (5.0 reason code; `Success` in
    /// 3.1.1, where a broker just closes).
    #[error("disconnected by the broker: {reason}{}", why(.reason_string))]
    ServerDisconnected {
        /// Its reason code.
        reason: ReasonCode,
        /// Its reason string, if any.
        reason_string: Option<String>,
    },
    /// Nothing was heard from the broker for 1.5 times the keep alive: the link is dead.
    #[error("nothing heard from the broker for 1.5 times the keep alive")]
    KeepAliveTimeout,
    /// The client was disconnected (by [`Client::disconnect`](crate::Client::disconnect),
    /// or for good: reconnection off) before the request completed.
    #[error("the client is disconnected")]
    Disconnected,
}

fn why(reason_string: &Option<String>) -> String {
    reason_string
        .as_ref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default()
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}
