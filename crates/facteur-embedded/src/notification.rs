//! What [`poll`](crate::blocking::Client::poll) reports.

use facteur_codec::{List, Publish, QoS, ReasonCode};
use facteur_session::MessageId;

/// Something that happened on the connection, as `poll` returns it. A message borrows the
/// client's receive buffer: nothing is copied, and it is valid until the next call on the
/// client.
///
/// ```
/// use facteur_embedded::{Notification, QoS};
/// fn handle(notification: Notification<'_>) {
///     match notification {
///         Notification::Message(m) if m.topic == "maison/led" => {
///             let _on = m.payload == b"on"; // read in place: copy what must outlive the call
///         }
///         Notification::Published { message, reason, .. } if reason.is_error() => {
///             let _ = message; // MQTT 5: the broker refused this message
///         }
///         Notification::Subscribed { results, .. } => {
///             assert!(results.granted().all(|r| r.is_ok()));
///         }
///         _ => {}
///     }
/// }
/// # let _ = handle;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification<'a> {
    /// A message from a subscription: topic, payload, QoS, retain flag and (5.0) properties,
    /// borrowed from the receive buffer. A QoS 1 or 2 message is acknowledged by the next
    /// call on the client, once the application had it; a QoS 2 one is delivered once.
    Message(Publish<'a>),
    /// An outgoing QoS 1 or 2 message is done: the broker acknowledged it (PUBACK, PUBCOMP)
    /// or, in 5.0, refused it (`reason` is then an error code).
    Published {
        /// The handle `publish` returned.
        message: MessageId,
        /// Its QoS.
        qos: QoS,
        /// The broker's reason code (`Success` before 5.0).
        reason: ReasonCode,
    },
    /// The SUBACK of a SUBSCRIBE: one result per filter, in order.
    Subscribed {
        /// The packet identifier `subscribe` returned.
        packet_id: u16,
        /// The results.
        results: AckResults<'a>,
    },
    /// The UNSUBACK of an UNSUBSCRIBE: one result per filter in 5.0, none before.
    Unsubscribed {
        /// The packet identifier `unsubscribe` returned.
        packet_id: u16,
        /// The results.
        results: AckResults<'a>,
    },
    /// A message given to `publish` was dropped unsent.
    Dropped {
        /// The handle `publish` returned.
        message: MessageId,
        /// Why.
        why: DropReason,
    },
}

/// Why a message was dropped unsent ([`Notification::Dropped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Its MQTT 5 Message Expiry Interval ran out while it waited.
    Expired,
    /// A QoS 1/2 message took its place in the full queue (QoS 0 messages go first).
    Displaced,
    /// It is larger than the broker's Maximum Packet Size.
    TooLarge,
}

/// The per-filter results of a SUBACK or UNSUBACK, read in place from the receive buffer.
///
/// ```
/// use facteur_embedded::{AckResults, QoS, ReasonCode};
/// let codes = [ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized];
/// let results = AckResults::from_codes(&codes);
/// let granted: Vec<_> = results.granted().collect();
/// assert_eq!(granted, [Ok(QoS::AtLeastOnce), Err(ReasonCode::NotAuthorized)]);
/// assert!(!results.all_succeeded());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckResults<'a> {
    codes: List<'a, ReasonCode>,
}

impl<'a> AckResults<'a> {
    /// Results from a decoded SUBACK's or UNSUBACK's list.
    pub(crate) const fn new(codes: List<'a, ReasonCode>) -> Self {
        Self { codes }
    }

    /// Results with these codes (for tests and examples).
    pub const fn from_codes(codes: &'a [ReasonCode]) -> Self {
        Self {
            codes: List::from_slice(codes),
        }
    }

    /// The reason codes, one per filter, in order.
    pub fn reason_codes(&self) -> impl Iterator<Item = ReasonCode> + 'a {
        self.codes.iter()
    }

    /// For a SUBACK: per filter, the QoS granted, or the refusal's reason code.
    pub fn granted(&self) -> impl Iterator<Item = Result<QoS, ReasonCode>> + 'a {
        self.codes.iter().map(|code| match code {
            ReasonCode::Success => Ok(QoS::AtMostOnce),
            ReasonCode::GrantedQoS1 => Ok(QoS::AtLeastOnce),
            ReasonCode::GrantedQoS2 => Ok(QoS::ExactlyOnce),
            refused => Err(refused),
        })
    }

    /// How many results there are.
    pub fn len(&self) -> usize {
        self.codes.iter().count()
    }

    /// True if there are none (an MQTT 3.1.1 UNSUBACK).
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// True if no result is an error code.
    pub fn all_succeeded(&self) -> bool {
        self.codes.iter().all(|code| !code.is_error())
    }
}
