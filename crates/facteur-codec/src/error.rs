//! Decoding and encoding errors.

use crate::{PacketType, PropertyId, ReasonCode};
use facteur_topic::TopicError;

/// A packet that could not be decoded: what is wrong ([`DecodeErrorKind`]) and where (a byte
/// offset from the first byte of the packet's fixed header).
///
/// [`DecodeError::reason_code`] gives the MQTT 5 reason code a server sends in its DISCONNECT
/// (or CONNACK) before closing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {offset})")]
pub struct DecodeError {
    /// What is wrong.
    pub kind: DecodeErrorKind,
    /// Where, in bytes from the start of the packet.
    pub offset: usize,
}

impl DecodeError {
    pub(crate) const fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }

    /// The reason code that answers this error (MQTT 5.0 §4.13): 0x81 for a malformed packet,
    /// 0x82 for a protocol error, 0x84 for an unsupported version, 0x95 for a packet too large,
    /// 0x8F / 0x90 for invalid topic filters / names.
    pub const fn reason_code(&self) -> ReasonCode {
        self.kind.reason_code()
    }

    /// For [`DecodeErrorKind::PacketTooLarge`], the whole size of the refused packet: a caller
    /// that wants to go on can discard that many bytes from the start of its buffer.
    pub const fn skip_len(&self) -> Option<usize> {
        match self.kind {
            DecodeErrorKind::PacketTooLarge { size, .. } => Some(size),
            _ => None,
        }
    }
}

/// What is wrong with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Packet type 0, or 15 (AUTH) before MQTT 5.
    #[error("invalid packet type {0}")]
    InvalidPacketType(u8),
    /// The fixed header's flag bits are not the ones this packet type requires.
    #[error("invalid fixed header flags {flags:#06b} for {packet:?}")]
    InvalidFlags {
        /// The packet type.
        packet: PacketType,
        /// The four flag bits found.
        flags: u8,
    },
    /// A variable byte integer with more than four bytes.
    #[error("variable byte integer longer than 4 bytes")]
    VarIntTooLong,
    /// A variable byte integer not in its shortest form (such as `0x80 0x00` for 0).
    #[error("variable byte integer not in its shortest form")]
    VarIntNotMinimal,
    /// The packet is larger than the maximum packet size in force.
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// The whole packet's size, fixed header included.
        size: usize,
        /// The maximum in force.
        max: u32,
    },
    /// A field runs past the end of the packet (the remaining length is too short for the
    /// content).
    #[error("a field runs past the end of the packet")]
    Truncated,
    /// Bytes left after the last field (the remaining length is too long for the content).
    #[error("{0} unexpected bytes after the packet's content")]
    TrailingBytes(usize),
    /// A string that is not valid UTF-8 (this includes UTF-16 surrogates).
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A string containing U+0000.
    #[error("string contains U+0000")]
    NullCharacter,
    /// A QoS of 3.
    #[error("QoS 3 is reserved")]
    InvalidQoS,
    /// A bit the spec reserves is set.
    #[error("reserved bit set")]
    ReservedBitSet,
    /// CONNECT with a protocol name other than `MQTT` (or `MQIsdp` for 3.1).
    #[error("unknown protocol name")]
    InvalidProtocolName,
    /// CONNECT with a protocol level facteur does not speak.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT flags that contradict each other (will QoS or retain without a will, password
    /// without user name in 3.x) or CONNACK's session present with a failure.
    #[error("inconsistent flags")]
    InconsistentFlags,
    /// A property identifier the spec does not define.
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u8),
    /// A property the spec does not allow in this packet.
    #[error("property {0:?} is not allowed in this packet")]
    PropertyNotAllowed(PropertyId),
    /// A property that may appear once appears again.
    #[error("property {0:?} appears more than once")]
    DuplicateProperty(PropertyId),
    /// A property value outside its allowed range (such as Receive Maximum 0).
    #[error("property {0:?} has a value the spec does not allow")]
    InvalidPropertyValue(PropertyId),
    /// A reason code the spec does not define, or does not allow in this packet.
    #[error("reason code {0:#04x} is not valid in this packet")]
    InvalidReasonCode(u8),
    /// Packet identifier 0 where a non-zero one is required.
    #[error("packet identifier is 0")]
    ZeroPacketIdentifier,
    /// SUBSCRIBE or UNSUBSCRIBE without any topic filter.
    #[error("no topic filter")]
    NoTopicFilters,
    /// A PUBLISH with an empty topic and no topic alias.
    #[error("empty topic without a topic alias")]
    MissingTopic,
    /// A topic name that breaks the topic rules (a wildcard, for one).
    #[error("invalid topic name: {0}")]
    InvalidTopicName(TopicError),
    /// A topic filter that breaks the topic rules.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(TopicError),
    /// Subscription options with retain handling 3.
    #[error("retain handling 3 is reserved")]
    InvalidRetainHandling,
}

impl DecodeErrorKind {
    /// The reason code a server sends for this error; see [`DecodeError::reason_code`].
    pub const fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Self::UnsupportedProtocolVersion(_) => ReasonCode::UnsupportedProtocolVersion,
            Self::InvalidTopicName(_) => ReasonCode::TopicNameInvalid,
            Self::InvalidTopicFilter(_) => ReasonCode::TopicFilterInvalid,
            Self::DuplicateProperty(_)
            | Self::InvalidPropertyValue(_)
            | Self::ZeroPacketIdentifier
            | Self::NoTopicFilters
            | Self::MissingTopic
            | Self::InvalidRetainHandling => ReasonCode::ProtocolError,
            Self::InvalidPacketType(_)
            | Self::InvalidFlags { .. }
            | Self::VarIntTooLong
            | Self::VarIntNotMinimal
            | Self::Truncated
            | Self::TrailingBytes(_)
            | Self::InvalidUtf8
            | Self::NullCharacter
            | Self::InvalidQoS
            | Self::ReservedBitSet
            | Self::InvalidProtocolName
            | Self::InconsistentFlags
            | Self::UnknownProperty(_)
            | Self::PropertyNotAllowed(_)
            | Self::InvalidReasonCode(_) => ReasonCode::MalformedPacket,
        }
    }
}

/// A packet that could not be encoded. Nothing was written when this is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small; `required` bytes are needed.
    #[error("buffer too small: {required} bytes required, {available} available")]
    BufferTooSmall {
        /// The packet's encoded size.
        required: usize,
        /// The space the caller gave.
        available: usize,
    },
    /// The packet cannot be encoded as valid MQTT; the kind says why (the same kinds decoding
    /// reports, so a packet this encoder writes is one the decoder accepts).
    #[error("invalid packet: {0}")]
    Invalid(DecodeErrorKind),
    /// A string or binary field longer than 65,535 bytes.
    #[error("a string or binary field is longer than 65535 bytes")]
    FieldTooLong,
    /// A packet whose remaining length exceeds 268,435,455 bytes.
    #[error("packet too large for MQTT's remaining length")]
    PacketTooLarge,
    /// A PUBLISH whose packet identifier does not fit its QoS: QoS 0 has none, QoS 1 and 2
    /// need one.
    #[error("QoS 0 takes no packet identifier, QoS 1 and 2 need one")]
    PacketIdMismatch,
    /// A packet this protocol version does not have (AUTH before 5.0).
    #[error("{0:?} does not exist in this protocol version")]
    NotInVersion(PacketType),
}
