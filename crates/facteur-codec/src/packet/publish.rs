//! PUBLISH (§3.3): a message, in either direction.

use super::{check_field, check_topic_name, Plan};
use crate::property::PropertyContext;
use crate::read::Reader;
use crate::write::{Sink, SinkExt};
use crate::{
    DecodeError, DecodeErrorKind, EncodeError, FixedHeader, PacketType, Properties,
    ProtocolVersion, QoS,
};

/// A message, borrowed from the bytes it was decoded from: the topic is a `&str` and the
/// payload a `&[u8]` into the input buffer, never copied.
///
/// ```
/// use facteur_codec::{Encode, ProtocolVersion, Publish, QoS};
/// let mut publish = Publish::new("maison/etage1/temperature", b"21.5");
/// publish.qos = QoS::AtLeastOnce;
/// publish.packet_id = Some(7);
/// let mut buf = [0u8; 64];
/// let n = publish.encode(ProtocolVersion::V3_1_1, &mut buf)?;
/// assert_eq!(&buf[..3], &[0x32, 33, 0]);
/// assert_eq!(n, 35);
/// # Ok::<(), facteur_codec::EncodeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish<'a> {
    /// A resend of a QoS 1/2 message (never set at QoS 0).
    pub dup: bool,
    /// Delivery guarantee.
    pub qos: QoS,
    /// Retain flag: the server keeps it as the topic's last value.
    pub retain: bool,
    /// Topic name (empty in 5.0 when a topic alias stands in for it).
    pub topic: &'a str,
    /// Packet identifier: `Some` exactly when `qos` is 1 or 2.
    pub packet_id: Option<u16>,
    /// PUBLISH properties (5.0).
    pub properties: Properties<'a>,
    /// The application message.
    pub payload: &'a [u8],
}

impl<'a> Publish<'a> {
    /// A QoS 0, non-retained message with no properties.
    pub const fn new(topic: &'a str, payload: &'a [u8]) -> Self {
        Self {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            properties: Properties::EMPTY,
            payload,
        }
    }

    #[inline]
    pub(crate) fn decode(
        header: &FixedHeader,
        r: &mut Reader<'a>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let flags = header.flags;
        let qos = QoS::from_u8((flags >> 1) & 0x03)
            .ok_or_else(|| r.error_at(DecodeErrorKind::InvalidQoS, 0))?;
        let dup = flags & 0x08 != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(r.error_at(
                DecodeErrorKind::InvalidFlags {
                    packet: PacketType::Publish,
                    flags,
                },
                0,
            ));
        }
        let topic_at = r.offset();
        let topic = r.utf8_without_nul_check()?;
        let packet_id = if qos == QoS::AtMostOnce {
            None
        } else {
            Some(r.packet_id()?)
        };
        let properties = Properties::decode(r, version, PropertyContext::Publish)?;
        if topic.is_empty() {
            if !version.is_v5() || properties.topic_alias().is_none() {
                return Err(r.error_at(DecodeErrorKind::MissingTopic, topic_at));
            }
        } else if let Err(e) = facteur_topic::TopicName::new(topic) {
            // U+0000 is a string error wherever it is; the rest are topic rules.
            return Err(match e {
                facteur_topic::TopicError::NullCharacter { at } => {
                    r.error_at(DecodeErrorKind::NullCharacter, topic_at + 2 + at)
                }
                e => r.error_at(DecodeErrorKind::InvalidTopicName(e), topic_at),
            });
        }
        Ok(Self {
            dup,
            qos,
            retain: flags & 0x01 != 0,
            topic,
            packet_id,
            properties,
            payload: r.rest(),
        })
    }

    pub(crate) fn flags(&self) -> u8 {
        u8::from(self.dup) << 3 | (self.qos as u8) << 1 | u8::from(self.retain)
    }

    /// Checks the packet and sizes everything but the payload.
    #[inline]
    pub(crate) fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError> {
        let invalid = |kind| Err(EncodeError::Invalid(kind));
        match (self.qos, self.packet_id) {
            (QoS::AtMostOnce, None) => {
                if self.dup {
                    return invalid(DecodeErrorKind::InvalidFlags {
                        packet: PacketType::Publish,
                        flags: self.flags(),
                    });
                }
            }
            (QoS::AtMostOnce, Some(_)) | (_, None) => return Err(EncodeError::PacketIdMismatch),
            (_, Some(0)) => return invalid(DecodeErrorKind::ZeroPacketIdentifier),
            (_, Some(_)) => {}
        }
        // Properties are not written before 5.0, so only 5.0 checks them.
        let props = if version.is_v5() {
            self.properties.validate(PropertyContext::Publish)?
        } else {
            0
        };
        if self.topic.is_empty() {
            if !version.is_v5() || self.properties.topic_alias().is_none() {
                return invalid(DecodeErrorKind::MissingTopic);
            }
        } else {
            check_topic_name(self.topic)?;
        }
        let header = check_field(self.topic.len())?
            + if self.packet_id.is_some() { 2 } else { 0 }
            + Properties::section_len(version, props);
        Ok(Plan::new(header + self.payload.len(), props))
    }

    /// Writes the variable header (topic, packet id, properties); the payload follows.
    #[inline]
    pub(crate) fn write_variable_header<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        plan: &Plan,
        out: &mut S,
    ) {
        out.put_str(self.topic);
        if let Some(id) = self.packet_id {
            out.put_u16(id);
        }
        self.properties.write(version, plan.props, out);
    }

    #[inline]
    pub(crate) fn write<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        plan: &Plan,
        out: &mut S,
    ) {
        self.write_variable_header(version, plan, out);
        out.put_slice(self.payload);
    }

    /// Encodes everything but the payload into `buf` and returns the bytes written: the fixed
    /// header (whose remaining length counts the payload) and the variable header. Send those
    /// bytes, then `self.payload`, with a vectored write and the payload is never copied.
    ///
    /// ```
    /// use facteur_codec::{Encode, ProtocolVersion, Publish};
    /// let publish = Publish::new("a/b", b"hello");
    /// let mut head = [0u8; 16];
    /// let n = publish.encode_header(ProtocolVersion::V3_1_1, &mut head)?;
    /// let mut whole = [0u8; 16];
    /// let m = publish.encode(ProtocolVersion::V3_1_1, &mut whole)?;
    /// assert_eq!([&head[..n], publish.payload].concat(), &whole[..m]);
    /// # Ok::<(), facteur_codec::EncodeError>(())
    /// ```
    pub fn encode_header(
        &self,
        version: ProtocolVersion,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let plan = self.plan(version)?;
        let total = super::packet_len(plan.body)?;
        let len = total - self.payload.len();
        if buf.len() < len {
            return Err(EncodeError::BufferTooSmall {
                required: len,
                available: buf.len(),
            });
        }
        let mut out = crate::SliceWriter::new(buf);
        super::write_fixed_header(PacketType::Publish, self.flags(), plan.body, &mut out);
        self.write_variable_header(version, &plan, &mut out);
        Ok(out.written())
    }
}
