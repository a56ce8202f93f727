//! The fixed header and framing: finding where one packet ends in a stream of bytes.

use crate::varint::{read_varint, VarIntRead, VARINT_MAX};
use crate::{DecodeError, DecodeErrorKind};
use core::num::NonZeroUsize;

/// The fifteen MQTT control packet types (AUTH exists in 5.0 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// Client request to connect.
    Connect = 1,
    /// Connect acknowledgment.
    ConnAck = 2,
    /// Publish message.
    Publish = 3,
    /// QoS 1 publish acknowledgment.
    PubAck = 4,
    /// QoS 2 publish received.
    PubRec = 5,
    /// QoS 2 publish release.
    PubRel = 6,
    /// QoS 2 publish complete.
    PubComp = 7,
    /// Subscribe request.
    Subscribe = 8,
    /// Subscribe acknowledgment.
    SubAck = 9,
    /// Unsubscribe request.
    Unsubscribe = 10,
    /// Unsubscribe acknowledgment.
    UnsubAck = 11,
    /// Ping request.
    PingReq = 12,
    /// Ping response.
    PingResp = 13,
    /// Disconnect notification.
    Disconnect = 14,
    /// Authentication exchange (MQTT 5.0).
    Auth = 15,
}

impl PacketType {
    /// The packet type for the high nibble of a fixed header's first byte.
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 => Self::Auth,
            _ => return None,
        })
    }

    /// The flag bits every packet but PUBLISH must carry (MQTT 5.0 Table 2-2).
    pub const fn required_flags(self) -> Option<u8> {
        match self {
            Self::Publish => None,
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }
}

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The packet type.
    pub packet_type: PacketType,
    /// The low four bits of the first byte.
    pub flags: u8,
    /// The remaining length: the size of the variable header and payload.
    pub remaining_len: u32,
    /// The size of the fixed header itself (2 to 5 bytes).
    pub header_len: usize,
}

impl FixedHeader {
    /// The whole packet's size in bytes.
    pub const fn packet_len(&self) -> usize {
        self.header_len + self.remaining_len as usize
    }
}

/// The outcome of looking for a packet in a buffer that may hold only part of one.
///
/// Running out of input is not an error in a stream: it is [`Status::Incomplete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole packet was there.
    Complete(T),
    /// At least this many more bytes are needed before anything can be said.
    Incomplete(NonZeroUsize),
}

impl<T> Status<T> {
    /// The complete value, if there is one.
    pub fn complete(self) -> Option<T> {
        match self {
            Self::Complete(value) => Some(value),
            Self::Incomplete(_) => None,
        }
    }
}

/// No limit beyond the protocol's: the largest remaining length plus a 5-byte fixed header.
pub const PROTOCOL_MAX_PACKET_SIZE: u32 = VARINT_MAX + 5;

fn more(n: usize) -> Status<FixedHeader> {
    Status::Incomplete(NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN))
}

/// Finds the first packet in `buf`.
///
/// Returns its [`FixedHeader`] once the whole packet is in `buf`, or how many more bytes are
/// needed at least. The packet size is checked against `max_packet_size` (the whole packet,
/// fixed header included, as MQTT 5 counts it) as soon as the length is known, before its body
/// is waited for: an oversized packet is [`DecodeErrorKind::PacketTooLarge`], whose
/// [`DecodeError::skip_len`] tells how many bytes to drop to skip it.
///
/// The packet type and the flags are checked here too: a stream with a bad first byte can be
/// closed before its body arrives.
///
/// ```
/// use facteur_codec::{frame, Status};
/// // A PINGREQ, then the first byte of the next packet.
/// let Status::Complete(header) = frame(&[0xC0, 0x00, 0x30], u32::MAX)? else { panic!() };
/// assert_eq!(header.packet_len(), 2);
/// assert!(matches!(frame(&[0x30], u32::MAX)?, Status::Incomplete(_)));
/// # Ok::<(), facteur_codec::DecodeError>(())
/// ```
#[inline]
pub fn frame(buf: &[u8], max_packet_size: u32) -> Result<Status<FixedHeader>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(more(2));
    };
    let Some(packet_type) = PacketType::from_u8(first >> 4) else {
        return Err(DecodeError::new(
            DecodeErrorKind::InvalidPacketType(first >> 4),
            0,
        ));
    };
    let flags = first & 0x0F;
    if let Some(required) = packet_type.required_flags() {
        if flags != required {
            return Err(DecodeError::new(
                DecodeErrorKind::InvalidFlags {
                    packet: packet_type,
                    flags,
                },
                0,
            ));
        }
    }
    let (remaining_len, used) = match read_varint(&buf[1..]) {
        Ok(VarIntRead::Value(value, used)) => (value, used),
        Ok(VarIntRead::Incomplete) => return Ok(more(1)),
        Err(kind) => return Err(DecodeError::new(kind, 1)),
    };
    let header = FixedHeader {
        packet_type,
        flags,
        remaining_len,
        header_len: 1 + used,
    };
    let size = header.packet_len();
    if size > max_packet_size as usize {
        return Err(DecodeError::new(
            DecodeErrorKind::PacketTooLarge {
                size,
                max: max_packet_size,
            },
            1,
        ));
    }
    match size.checked_sub(buf.len()) {
        Some(missing) if missing > 0 => Ok(more(missing)),
        _ => Ok(Status::Complete(header)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_partial_length_ask_for_more() {
        assert!(matches!(frame(&[], 100), Ok(Status::Incomplete(_))));
        assert!(matches!(frame(&[0x30, 0x80], 1000), Ok(Status::Incomplete(n)) if n.get() == 1));
        assert!(
            matches!(frame(&[0x30, 0x05, 1, 2], 1000), Ok(Status::Incomplete(n)) if n.get() == 3)
        );
    }

    #[test]
    fn too_large_is_known_before_the_body() {
        // 0x30, remaining length 200 (0xC8 0x01): 203 bytes in all.
        let err = frame(&[0x30, 0xC8, 0x01], 100).unwrap_err();
        assert_eq!(
            err.kind,
            DecodeErrorKind::PacketTooLarge {
                size: 203,
                max: 100
            }
        );
        assert_eq!(err.skip_len(), Some(203));
        assert_eq!(err.reason_code(), crate::ReasonCode::PacketTooLarge);
    }

    #[test]
    fn bad_types_and_flags_fail_at_the_first_byte() {
        assert_eq!(
            frame(&[0x00, 0x00], 100).unwrap_err().kind,
            DecodeErrorKind::InvalidPacketType(0)
        );
        assert_eq!(
            frame(&[0x60, 0x02], 100).unwrap_err().kind,
            DecodeErrorKind::InvalidFlags {
                packet: PacketType::PubRel,
                flags: 0
            }
        );
        assert_eq!(
            frame(&[0xC1, 0x00], 100).unwrap_err().kind,
            DecodeErrorKind::InvalidFlags {
                packet: PacketType::PingReq,
                flags: 1
            }
        );
    }

    #[test]
    fn overlong_length_is_malformed() {
        assert_eq!(
            frame(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], u32::MAX)
                .unwrap_err()
                .kind,
            DecodeErrorKind::VarIntTooLong
        );
    }
}
