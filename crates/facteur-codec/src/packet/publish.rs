//! PUBLISH (§3.3): a message, in either direction.

use super::{check_field, check_room, check_topic_name, packet_len, write_fixed_header, Plan};
use crate::property::PropertyContext;
use crate::read::Reader;
use crate::write::{Sink, SinkExt, SliceWriter};
use crate::{
    DecodeError, DecodeErrorKind, EncodeError, FixedHeader, PacketType, Properties,
    ProtocolVersion, QoS,
};
use core::num::NonZeroU16;

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

    /// Checks the packet once for `version` and sizes it: the result encodes with no further
    /// check but the buffer's length, as often as needed, and its packet identifier, DUP and
    /// RETAIN can change in between without a second check. The errors are the ones
    /// [`Encode::encode`](crate::Encode::encode) reports for this packet.
    ///
    /// This is the recommended way to send a PUBLISH more than once: a broker prepares a
    /// message once per protocol version and QoS, then writes it to every subscriber with
    /// that subscriber's packet identifier.
    ///
    /// ```
    /// use core::num::NonZeroU16;
    /// use facteur_codec::{EncodeError, ProtocolVersion, Publish, QoS};
    /// let publish = Publish {
    ///     qos: QoS::AtLeastOnce,
    ///     packet_id: Some(1),
    ///     ..Publish::new("maison/etage1/temperature", b"21.5")
    /// };
    /// let mut prepared = publish.prepare(ProtocolVersion::V3_1_1)?;
    /// let mut buf = [0u8; 64];
    /// for id in [7, 8] {
    ///     prepared.set_packet_id(NonZeroU16::new(id).unwrap())?;
    ///     let n = prepared.encode(&mut buf)?;
    ///     assert_eq!(n, 35);
    ///     assert_eq!(&buf[..2], &[0x32, 33]);
    ///     assert_eq!(&buf[29..31], &[0, id as u8]); // after the 2 + 25 topic bytes
    /// }
    /// // What encoding would refuse, preparing refuses.
    /// let wildcard = Publish::new("maison/+/temperature", b"");
    /// assert!(matches!(wildcard.prepare(ProtocolVersion::V3_1_1), Err(EncodeError::Invalid(_))));
    /// # Ok::<(), EncodeError>(())
    /// ```
    #[inline]
    pub fn prepare(&self, version: ProtocolVersion) -> Result<PreparedPublish<'a>, EncodeError> {
        let plan = self.plan(version)?;
        Ok(PreparedPublish::from_plan(self, version, &plan))
    }

    /// Every check of [`Publish::prepare`], and the sizes. The one-shot encoders build the
    /// prepared form from these in place (a `Result` holding the whole prepared form would
    /// be copied around for nothing).
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
        let body = check_field(self.topic.len())?
            + if self.packet_id.is_some() { 2 } else { 0 }
            + Properties::section_len(version, props)
            + self.payload.len();
        packet_len(body)?;
        Ok(Plan::new(body, props))
    }

    /// Encodes everything but the payload into `buf` and returns the bytes written: the fixed
    /// header (whose remaining length counts the payload) and the variable header. Send those
    /// bytes, then `self.payload`, with a vectored write and the payload is never copied.
    /// [`PreparedPublish::encode_header`] does the same without checking the packet again.
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
        PreparedPublish::from_plan(self, version, &plan).encode_header(buf)
    }
}

/// A PUBLISH that [`Publish::prepare`] checked and sized for one protocol version: encoding
/// it checks only that the buffer is large enough, then writes. Only `prepare` makes one, and
/// its fields are private, so whatever it holds passed the same checks as
/// [`Encode::encode`](crate::Encode::encode); the setters change only what needs no check
/// beyond their own (packet identifier, DUP, RETAIN).
///
/// ```
/// use facteur_codec::{Encode, ProtocolVersion, Publish};
/// let publish = Publish::new("a/b", b"hi");
/// let prepared = publish.prepare(ProtocolVersion::V3_1_1)?;
/// let mut fast = [0u8; 16];
/// let mut checked = [0u8; 16];
/// assert_eq!(prepared.encoded_len(), 9);
/// assert_eq!(prepared.encode(&mut fast)?, 9);
/// assert_eq!(publish.encode(ProtocolVersion::V3_1_1, &mut checked)?, 9);
/// assert_eq!(fast, checked);
/// assert_eq!(prepared.publish(), publish);
/// # Ok::<(), facteur_codec::EncodeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreparedPublish<'a> {
    topic: &'a str,
    payload: &'a [u8],
    properties: Properties<'a>,
    version: ProtocolVersion,
    /// The low nibble of the first byte: DUP, QoS, RETAIN.
    flags: u8,
    /// 0 at QoS 0, never 0 otherwise.
    packet_id: u16,
    /// The remaining length.
    body: u32,
    /// The property contents' length (5.0; 0 before).
    props: u32,
    /// The fixed header then the topic's length, as written: `head_len` bytes, 4 to 7.
    head: [u8; 8],
    head_len: u8,
}

impl<'a> PreparedPublish<'a> {
    /// The protocol version this was prepared for.
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, Publish};
    /// let prepared = Publish::new("a/b", b"").prepare(ProtocolVersion::V5)?;
    /// assert_eq!(prepared.version(), ProtocolVersion::V5);
    /// # Ok::<(), facteur_codec::EncodeError>(())
    /// ```
    pub const fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The packet as a [`Publish`], with the current packet identifier and flags.
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, Publish};
    /// let publish = Publish::new("a/b", b"hi");
    /// let mut prepared = publish.prepare(ProtocolVersion::V3_1_1)?;
    /// prepared.set_retain(true);
    /// assert_eq!(prepared.publish(), Publish { retain: true, ..publish });
    /// # Ok::<(), facteur_codec::EncodeError>(())
    /// ```
    pub fn publish(&self) -> Publish<'a> {
        let qos = self.qos();
        Publish {
            dup: self.flags & 0x08 != 0,
            qos,
            retain: self.flags & 0x01 != 0,
            topic: self.topic,
            packet_id: (qos != QoS::AtMostOnce).then_some(self.packet_id),
            properties: self.properties,
            payload: self.payload,
        }
    }

    /// The packet's QoS.
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, Publish, QoS};
    /// let prepared = Publish::new("a/b", b"").prepare(ProtocolVersion::V3_1_1)?;
    /// assert_eq!(prepared.qos(), QoS::AtMostOnce);
    /// # Ok::<(), facteur_codec::EncodeError>(())
    /// ```
    pub const fn qos(&self) -> QoS {
        match (self.flags >> 1) & 0x03 {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        }
    }

    /// The exact number of bytes [`PreparedPublish::encode`] writes.
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, Publish};
    /// let prepared = Publish::new("a/b", b"hi").prepare(ProtocolVersion::V5)?;
    /// assert_eq!(prepared.encoded_len(), 10); // 2 + (2 + 3) + 1 (no properties) + 2
    /// # Ok::<(), facteur_codec::EncodeError>(())
    /// ```
    #[inline]
    pub const fn encoded_len(&self) -> usize {
        self.head_len as usize - 2 + self.body as usize
    }

    /// Sets the packet identifier of a QoS 1 or 2 message (a resend keeps its own; each
    /// subscriber of a broker gets one of its session's). At QoS 0 there is none to set:
    /// [`EncodeError::PacketIdMismatch`], and nothing changes.
    ///
    /// ```
    /// use core::num::NonZeroU16;
    /// use facteur_codec::{EncodeError, ProtocolVersion, Publish, QoS};
    /// let qos1 = Publish { qos: QoS::AtLeastOnce, packet_id: Some(1), ..Publish::new("a", b"") };
    /// let mut prepared = qos1.prepare(ProtocolVersion::V3_1_1)?;
    /// prepared.set_packet_id(NonZeroU16::new(300).unwrap())?;
    /// assert_eq!(prepared.publish().packet_id, Some(300));
    /// let mut qos0 = Publish::new("a", b"").prepare(ProtocolVersion::V3_1_1)?;
    /// assert_eq!(
    ///     qos0.set_packet_id(NonZeroU16::new(1).unwrap()),
    ///     Err(EncodeError::PacketIdMismatch)
    /// );
    /// # Ok::<(), EncodeError>(())
    /// ```
    #[inline]
    pub fn set_packet_id(&mut self, id: NonZeroU16) -> Result<(), EncodeError> {
        if self.qos() == QoS::AtMostOnce {
            return Err(EncodeError::PacketIdMismatch);
        }
        self.packet_id = id.get();
        Ok(())
    }

    /// Sets or clears DUP (a resend). DUP on a QoS 0 message is refused with the error
    /// encoding gives it, and nothing changes.
    ///
    /// ```
    /// use facteur_codec::{EncodeError, ProtocolVersion, Publish, QoS};
    /// let qos1 = Publish { qos: QoS::AtLeastOnce, packet_id: Some(1), ..Publish::new("a", b"") };
    /// let mut prepared = qos1.prepare(ProtocolVersion::V3_1_1)?;
    /// prepared.set_dup(true)?;
    /// let mut buf = [0u8; 8];
    /// prepared.encode(&mut buf)?;
    /// assert_eq!(buf[0], 0x3A);
    /// let mut qos0 = Publish::new("a", b"").prepare(ProtocolVersion::V3_1_1)?;
    /// assert!(matches!(qos0.set_dup(true), Err(EncodeError::Invalid(_))));
    /// # Ok::<(), EncodeError>(())
    /// ```
    #[inline]
    pub fn set_dup(&mut self, dup: bool) -> Result<(), EncodeError> {
        let flags = (self.flags & !0x08) | u8::from(dup) << 3;
        if dup && self.qos() == QoS::AtMostOnce {
            return Err(EncodeError::Invalid(DecodeErrorKind::InvalidFlags {
                packet: PacketType::Publish,
                flags,
            }));
        }
        self.set_flags(flags);
        Ok(())
    }

    /// Sets or clears RETAIN (a broker clears it when forwarding to a subscription without
    /// Retain As Published).
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, Publish};
    /// let mut prepared = Publish::new("a", b"").prepare(ProtocolVersion::V3_1_1)?;
    /// prepared.set_retain(true);
    /// let mut buf = [0u8; 8];
    /// prepared.encode(&mut buf)?;
    /// assert_eq!(buf[0], 0x31);
    /// # Ok::<(), facteur_codec::EncodeError>(())
    /// ```
    #[inline]
    pub fn set_retain(&mut self, retain: bool) {
        self.set_flags((self.flags & !0x01) | u8::from(retain));
    }

    #[inline]
    fn set_flags(&mut self, flags: u8) {
        self.flags = flags;
        self.head[0] = (PacketType::Publish as u8) << 4 | flags;
    }

    /// Encodes into `buf` and returns the bytes written ([`PreparedPublish::encoded_len`]).
    /// The only possible error is [`EncodeError::BufferTooSmall`], and then nothing is
    /// written.
    ///
    /// ```
    /// use facteur_codec::{EncodeError, ProtocolVersion, Publish};
    /// let prepared = Publish::new("a/b", b"hi").prepare(ProtocolVersion::V3_1_1)?;
    /// let mut buf = [0u8; 16];
    /// let n = prepared.encode(&mut buf)?;
    /// assert_eq!(&buf[..n], &[0x30, 7, 0, 3, b'a', b'/', b'b', b'h', b'i']);
    /// assert_eq!(
    ///     prepared.encode(&mut buf[..8]),
    ///     Err(EncodeError::BufferTooSmall { required: 9, available: 8 })
    /// );
    /// # Ok::<(), EncodeError>(())
    /// ```
    #[inline]
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let len = self.encoded_len();
        let Some(buf) = buf.get_mut(..len) else {
            return Err(EncodeError::BufferTooSmall {
                required: len,
                available: buf.len(),
            });
        };
        // A writer of its own (not `encode_to`'s `&mut`), so its position stays in a register.
        let mut out = SliceWriter::new(buf);
        out.put_slice(self.head());
        self.write_after_head(&mut out);
        out.put_slice(self.payload);
        Ok(len)
    }

    /// Encodes into any [`Sink`] (with the `bytes` feature, any `BufMut`) and returns the
    /// bytes written; if there is not room, [`EncodeError::BufferTooSmall`] and nothing is
    /// written.
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, Publish, SliceWriter};
    /// let prepared = Publish::new("a/b", b"hi").prepare(ProtocolVersion::V3_1_1)?;
    /// let mut buf = [0u8; 16];
    /// let mut out = SliceWriter::new(&mut buf);
    /// assert_eq!(prepared.encode_to(&mut out)?, 9);
    /// assert_eq!(out.written(), 9);
    /// # Ok::<(), facteur_codec::EncodeError>(())
    /// ```
    #[inline]
    pub fn encode_to<S: Sink + ?Sized>(&self, out: &mut S) -> Result<usize, EncodeError> {
        let len = self.encoded_len();
        check_room(out, len)?;
        out.put_slice(self.head());
        self.write_after_head(out);
        out.put_slice(self.payload);
        Ok(len)
    }

    /// Encodes everything but the payload into `buf` and returns the bytes written; send
    /// them, then the payload, with a vectored write (see [`Publish::encode_header`]).
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, Publish};
    /// let publish = Publish::new("a/b", b"hello");
    /// let prepared = publish.prepare(ProtocolVersion::V3_1_1)?;
    /// let mut head = [0u8; 8];
    /// let n = prepared.encode_header(&mut head)?;
    /// assert_eq!(&head[..n], &[0x30, 10, 0, 3, b'a', b'/', b'b']);
    /// assert_eq!(n + publish.payload.len(), prepared.encoded_len());
    /// # Ok::<(), facteur_codec::EncodeError>(())
    /// ```
    pub fn encode_header(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let len = self.encoded_len() - self.payload.len();
        let mut out = SliceWriter::new(buf);
        check_room(&out, len)?;
        out.put_slice(self.head());
        self.write_after_head(&mut out);
        Ok(len)
    }

    /// The prepared form of `publish`, given the [`Plan`] that `publish.plan(version)`
    /// returned: every check passed, and the plan's body is at most `VARINT_MAX`, so the
    /// sizes fit their fields.
    #[inline]
    pub(crate) fn from_plan(publish: &Publish<'a>, version: ProtocolVersion, plan: &Plan) -> Self {
        let mut head = [0u8; 8];
        let mut w = SliceWriter::new(&mut head);
        write_fixed_header(PacketType::Publish, publish.flags(), plan.body, &mut w);
        w.put_u16(publish.topic.len() as u16);
        let head_len = w.written() as u8;
        Self {
            topic: publish.topic,
            payload: publish.payload,
            properties: publish.properties,
            version,
            flags: publish.flags(),
            packet_id: publish.packet_id.unwrap_or(0),
            body: plan.body as u32,
            props: plan.props as u32,
            head,
            head_len,
        }
    }

    /// The fixed header and the topic's length, written once by `from_plan`.
    #[inline]
    fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    /// Writes the rest of the variable header (topic, packet id, properties) after the head;
    /// the payload follows.
    #[inline]
    fn write_after_head<S: Sink + ?Sized>(&self, out: &mut S) {
        out.put_slice(self.topic.as_bytes());
        if self.flags & 0x06 != 0 {
            out.put_u16(self.packet_id);
        }
        self.properties
            .write(self.version, self.props as usize, out);
    }

    /// Writes everything after the fixed header (for the generic encoder, which wrote it).
    #[inline]
    pub(crate) fn write_body<S: Sink + ?Sized>(&self, out: &mut S) {
        let head = self.head();
        out.put_slice(&head[head.len() - 2..]); // the topic's length

        self.write_after_head(out);
        out.put_slice(self.payload);
    }
}
