//! Every MQTT control packet, and the one entry point to decode and encode them.

mod ack;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod reason_string;
mod suback;
mod subscribe;

pub use ack::PubResponse;
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use disconnect::{Auth, Disconnect};
pub use publish::{PreparedPublish, Publish};
pub use suback::{SubAck, UnsubAck};
pub use subscribe::{RetainHandling, Subscribe, Subscription, SubscriptionOptions, Unsubscribe};

use crate::header::{frame, FixedHeader, Status};
use crate::read::Reader;
use crate::varint::{varint_len, VARINT_MAX};
use crate::write::{Sink, SinkExt, SliceWriter};
use crate::{DecodeError, DecodeErrorKind, EncodeError, PacketType, ProtocolVersion};

/// An MQTT control packet of any version, borrowing its strings and payloads from the bytes
/// it was decoded from (or from the caller, when built for encoding).
///
/// The same types serve 3.1, 3.1.1 and 5.0: fields a version does not have (properties,
/// 5.0 reason codes) decode as empty / `Success` and are not written when encoding for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the packet of the same name
pub enum Packet<'a> {
    Connect(Connect<'a>),
    ConnAck(ConnAck<'a>),
    Publish(Publish<'a>),
    PubAck(PubResponse<'a>),
    PubRec(PubResponse<'a>),
    PubRel(PubResponse<'a>),
    PubComp(PubResponse<'a>),
    Subscribe(Subscribe<'a>),
    SubAck(SubAck<'a>),
    Unsubscribe(Unsubscribe<'a>),
    UnsubAck(UnsubAck<'a>),
    PingReq,
    PingResp,
    Disconnect(Disconnect<'a>),
    Auth(Auth<'a>),
}

impl Packet<'_> {
    /// This packet's type.
    pub const fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }
}

/// A decoded packet and how many bytes of the input it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The packet.
    pub packet: Packet<'a>,
    /// Its size in bytes: drop this many from the front of the buffer before the next one.
    pub len: usize,
}

/// Decodes the first packet in `buf`, a stream that may hold less than one packet or more.
///
/// * `version` is the connection's version; a CONNECT is decoded with the version it carries.
/// * `max_packet_size` bounds the whole packet (fixed header included) and is checked before
///   the body is waited for; pass [`PROTOCOL_MAX_PACKET_SIZE`](crate::PROTOCOL_MAX_PACKET_SIZE)
///   for no limit of your own.
///
/// Returns [`Status::Incomplete`] with the number of bytes still needed (at least) when `buf`
/// ends early: that is not an error.
///
/// ```
/// use facteur_codec::{decode, Packet, ProtocolVersion, Status};
/// let bytes = [0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'];
/// let Status::Complete(decoded) = decode(&bytes, ProtocolVersion::V3_1_1, 1024)? else {
///     unreachable!()
/// };
/// let Packet::Publish(publish) = decoded.packet else { unreachable!() };
/// assert_eq!((publish.topic, publish.payload), ("a/b", &b"hi"[..]));
/// assert!(matches!(decode(&bytes[..4], ProtocolVersion::V3_1_1, 1024)?, Status::Incomplete(_)));
/// # Ok::<(), facteur_codec::DecodeError>(())
/// ```
#[inline]
pub fn decode(
    buf: &[u8],
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Status<Decoded<'_>>, DecodeError> {
    let header = match frame(buf, max_packet_size)? {
        Status::Complete(header) => header,
        Status::Incomplete(needed) => return Ok(Status::Incomplete(needed)),
    };
    let len = header.packet_len();
    let packet = decode_frame(&header, &buf[header.header_len..len], version)?;
    Ok(Status::Complete(Decoded { packet, len }))
}

/// Decodes one packet's body, given its fixed header (from [`frame`]) and exactly its
/// `remaining_len` bytes.
#[inline]
pub fn decode_frame<'a>(
    header: &FixedHeader,
    body: &'a [u8],
    version: ProtocolVersion,
) -> Result<Packet<'a>, DecodeError> {
    let r = &mut Reader::new(body, header.header_len);
    if body.len() != header.remaining_len as usize {
        return Err(r.error(DecodeErrorKind::Truncated));
    }
    let packet = match header.packet_type {
        PacketType::Connect => Packet::Connect(Connect::decode(r)?),
        PacketType::ConnAck => Packet::ConnAck(ConnAck::decode(r, version)?),
        PacketType::Publish => Packet::Publish(Publish::decode(header, r, version)?),
        PacketType::PubAck => Packet::PubAck(PubResponse::decode(r, version, PacketType::PubAck)?),
        PacketType::PubRec => Packet::PubRec(PubResponse::decode(r, version, PacketType::PubRec)?),
        PacketType::PubRel => Packet::PubRel(PubResponse::decode(r, version, PacketType::PubRel)?),
        PacketType::PubComp => {
            Packet::PubComp(PubResponse::decode(r, version, PacketType::PubComp)?)
        }
        PacketType::Subscribe => Packet::Subscribe(Subscribe::decode(r, version)?),
        PacketType::SubAck => Packet::SubAck(SubAck::decode(r, version)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(r, version)?),
        PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(r, version)?),
        PacketType::PingReq => {
            r.finish()?;
            Packet::PingReq
        }
        PacketType::PingResp => {
            r.finish()?;
            Packet::PingResp
        }
        PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(r, version)?),
        PacketType::Auth if version.is_v5() => Packet::Auth(Auth::decode(r, version)?),
        PacketType::Auth => {
            return Err(DecodeError::new(DecodeErrorKind::InvalidPacketType(15), 0))
        }
    };
    Ok(packet)
}

/// The sizes an encoder works out before writing anything.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Plan {
    /// The remaining length.
    pub(crate) body: usize,
    /// The packet's property content length.
    pub(crate) props: usize,
    /// The will's property content length (CONNECT).
    pub(crate) extra: usize,
}

impl Plan {
    pub(crate) const fn new(body: usize, props: usize) -> Self {
        Self {
            body,
            props,
            extra: 0,
        }
    }
}

/// The head that SUBSCRIBE, UNSUBSCRIBE, SUBACK and UNSUBACK share: a non-zero packet
/// identifier, then the properties; their list follows.
pub(crate) fn decode_id_and_properties<'a>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
    context: crate::property::PropertyContext,
) -> Result<(u16, crate::Properties<'a>), DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = crate::Properties::decode(r, version, context)?;
    Ok((packet_id, properties))
}

/// Sizes a packet of that shape whose list takes `list_len` bytes.
#[inline]
pub(crate) fn plan_id_and_properties(
    packet_id: u16,
    properties: &crate::Properties<'_>,
    version: ProtocolVersion,
    context: crate::property::PropertyContext,
    list_len: usize,
) -> Result<Plan, EncodeError> {
    if packet_id == 0 {
        return Err(EncodeError::Invalid(DecodeErrorKind::ZeroPacketIdentifier));
    }
    let props = properties.validate(context)?;
    Ok(Plan::new(
        2 + crate::Properties::section_len(version, props) + list_len,
        props,
    ))
}

/// Writes a packet of that shape.
#[inline]
pub(crate) fn write_id_properties_list<'a, T: crate::Item<'a>, S: Sink + ?Sized>(
    packet_id: u16,
    properties: &crate::Properties<'_>,
    list: &crate::List<'a, T>,
    version: ProtocolVersion,
    plan: &Plan,
    out: &mut S,
) {
    out.put_u16(packet_id);
    properties.write(version, plan.props, out);
    list.write(version, out);
}

/// Checks that a string or binary field fits its 16-bit length; returns its wire size.
#[inline]
pub(crate) fn check_field(len: usize) -> Result<usize, EncodeError> {
    if len > usize::from(u16::MAX) {
        return Err(EncodeError::FieldTooLong);
    }
    Ok(2 + len)
}

#[inline]
pub(crate) fn check_topic_name(topic: &str) -> Result<(), EncodeError> {
    // A valid name, eight bytes at a time; the reason why not, from the exact check.
    if facteur_topic::TopicName::is_valid(topic) {
        return Ok(());
    }
    facteur_topic::TopicName::new(topic)
        .map(|_| ())
        .map_err(|e| EncodeError::Invalid(DecodeErrorKind::InvalidTopicName(e)))
}

/// The whole packet size for a remaining length, or an error past MQTT's limit.
#[inline]
pub(crate) fn packet_len(body: usize) -> Result<usize, EncodeError> {
    if body > VARINT_MAX as usize {
        return Err(EncodeError::PacketTooLarge);
    }
    Ok(1 + varint_len(body as u32) + body)
}

#[inline]
pub(crate) fn write_fixed_header<S: Sink + ?Sized>(
    kind: PacketType,
    flags: u8,
    body: usize,
    out: &mut S,
) {
    out.put_u8((kind as u8) << 4 | flags);
    out.put_varint(body as u32);
}

/// [`EncodeError::BufferTooSmall`] unless `out` has room for `len` bytes.
#[inline]
pub(crate) fn check_room<S: Sink + ?Sized>(out: &S, len: usize) -> Result<(), EncodeError> {
    if out.room() < len {
        return Err(EncodeError::BufferTooSmall {
            required: len,
            available: out.room(),
        });
    }
    Ok(())
}

/// Encoding, shared by [`Packet`] and every packet type.
///
/// Encoding checks the packet first (the same rules decoding enforces, so what is written
/// decodes) and then writes it whole, or writes nothing and says why. Fields the version
/// lacks are left out: properties and 5.0 options before 5.0, for instance, so a broker can
/// forward a 5.0 message to a 3.1.1 subscriber as is.
pub trait Encode {
    /// The exact number of bytes [`Encode::encode`] writes.
    fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError>;

    /// Encodes into `buf` and returns the bytes written. If `buf` is too small,
    /// [`EncodeError::BufferTooSmall`] names the size required and nothing is written.
    fn encode(&self, version: ProtocolVersion, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let mut out = SliceWriter::new(buf);
        self.encode_to(version, &mut out)
    }

    /// Encodes into any [`Sink`] (with the `bytes` feature, any `BufMut`: a `BytesMut` grows
    /// as needed) and returns the bytes written; nothing is written if there is not room.
    fn encode_to<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        out: &mut S,
    ) -> Result<usize, EncodeError>;
}

/// What every packet type tells the one generic encoder.
trait Body {
    fn packet_type(&self) -> PacketType;
    fn flags(&self) -> u8 {
        self.packet_type().required_flags().unwrap_or(0)
    }
    /// The version the packet is written in: CONNECT's own, else the connection's.
    fn effective_version(&self, version: ProtocolVersion) -> ProtocolVersion {
        version
    }
    fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError>;
    fn write_body<S: Sink + ?Sized>(&self, version: ProtocolVersion, plan: &Plan, out: &mut S);
}

#[inline]
fn encoded_len_of<B: Body>(packet: &B, version: ProtocolVersion) -> Result<usize, EncodeError> {
    packet_len(packet.plan(packet.effective_version(version))?.body)
}

#[inline]
fn encode_body<B: Body, S: Sink + ?Sized>(
    packet: &B,
    version: ProtocolVersion,
    out: &mut S,
) -> Result<usize, EncodeError> {
    let version = packet.effective_version(version);
    let plan = packet.plan(version)?;
    let len = packet_len(plan.body)?;
    check_room(out, len)?;
    write_fixed_header(packet.packet_type(), packet.flags(), plan.body, out);
    packet.write_body(version, &plan, out);
    Ok(len)
}

/// [`encode_body`] into a slice: the writer is this function's own, not behind a `&mut`, so
/// with the packet's writers inlined its position stays in a register.
#[inline]
fn encode_body_slice<B: Body>(
    packet: &B,
    version: ProtocolVersion,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let version = packet.effective_version(version);
    let plan = packet.plan(version)?;
    let len = packet_len(plan.body)?;
    let available = buf.len();
    let Some(buf) = buf.get_mut(..len) else {
        return Err(EncodeError::BufferTooSmall {
            required: len,
            available,
        });
    };
    let mut out = SliceWriter::new(buf);
    write_fixed_header(packet.packet_type(), packet.flags(), plan.body, &mut out);
    packet.write_body(version, &plan, &mut out);
    Ok(len)
}

/// A PUBACK, PUBREC, PUBREL or PUBCOMP: the response and which of the four it is.
struct Ack<'r, 'a> {
    kind: PacketType,
    response: &'r PubResponse<'a>,
}

impl Body for Ack<'_, '_> {
    fn packet_type(&self) -> PacketType {
        self.kind
    }
    #[inline]
    fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError> {
        self.response.plan(version, self.kind)
    }
    #[inline]
    fn write_body<S: Sink + ?Sized>(&self, version: ProtocolVersion, plan: &Plan, out: &mut S) {
        self.response.write(version, plan, out)
    }
}

/// PINGREQ and PINGRESP: a fixed header and nothing else.
struct Bare(PacketType);

impl Body for Bare {
    fn packet_type(&self) -> PacketType {
        self.0
    }
    fn plan(&self, _version: ProtocolVersion) -> Result<Plan, EncodeError> {
        Ok(Plan::default())
    }
    fn write_body<S: Sink + ?Sized>(&self, _: ProtocolVersion, _: &Plan, _: &mut S) {}
}

impl Body for Publish<'_> {
    fn packet_type(&self) -> PacketType {
        PacketType::Publish
    }
    fn flags(&self) -> u8 {
        Publish::flags(self)
    }
    fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError> {
        Publish::plan(self, version)
    }
    fn write_body<S: Sink + ?Sized>(&self, version: ProtocolVersion, plan: &Plan, out: &mut S) {
        PreparedPublish::from_plan(self, version, plan).write_body(out)
    }
}

impl Body for Connect<'_> {
    fn packet_type(&self) -> PacketType {
        PacketType::Connect
    }
    fn effective_version(&self, _version: ProtocolVersion) -> ProtocolVersion {
        self.protocol
    }
    #[inline]
    fn plan(&self, _version: ProtocolVersion) -> Result<Plan, EncodeError> {
        Connect::plan(self)
    }
    #[inline]
    fn write_body<S: Sink + ?Sized>(&self, _: ProtocolVersion, plan: &Plan, out: &mut S) {
        Connect::write(self, plan, out)
    }
}

impl Body for Auth<'_> {
    fn packet_type(&self) -> PacketType {
        PacketType::Auth
    }
    fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError> {
        if !version.is_v5() {
            return Err(EncodeError::NotInVersion(PacketType::Auth));
        }
        Auth::plan(self, version)
    }
    fn write_body<S: Sink + ?Sized>(&self, version: ProtocolVersion, plan: &Plan, out: &mut S) {
        Auth::write(self, version, plan, out)
    }
}

/// Runs `$then` with `$body` bound to the packet's [`Body`] (one match, then the packet's own
/// code, rather than a match in every step of the generic encoder).
macro_rules! with_body {
    ($packet:expr, |$body:ident| $then:expr) => {
        match $packet {
            Packet::Connect(p) => {
                let $body = p;
                $then
            }
            Packet::ConnAck(p) => {
                let $body = p;
                $then
            }
            Packet::Publish(p) => {
                let $body = p;
                $then
            }
            Packet::PubAck(p) => {
                let $body = &Ack {
                    kind: PacketType::PubAck,
                    response: p,
                };
                $then
            }
            Packet::PubRec(p) => {
                let $body = &Ack {
                    kind: PacketType::PubRec,
                    response: p,
                };
                $then
            }
            Packet::PubRel(p) => {
                let $body = &Ack {
                    kind: PacketType::PubRel,
                    response: p,
                };
                $then
            }
            Packet::PubComp(p) => {
                let $body = &Ack {
                    kind: PacketType::PubComp,
                    response: p,
                };
                $then
            }
            Packet::Subscribe(p) => {
                let $body = p;
                $then
            }
            Packet::SubAck(p) => {
                let $body = p;
                $then
            }
            Packet::Unsubscribe(p) => {
                let $body = p;
                $then
            }
            Packet::UnsubAck(p) => {
                let $body = p;
                $then
            }
            Packet::PingReq => {
                let $body = &Bare(PacketType::PingReq);
                $then
            }
            Packet::PingResp => {
                let $body = &Bare(PacketType::PingResp);
                $then
            }
            Packet::Disconnect(p) => {
                let $body = p;
                $then
            }
            Packet::Auth(p) => {
                let $body = p;
                $then
            }
        }
    };
}

/// PUBLISH goes through [`PreparedPublish`] (its own encoder); every other packet through
/// the generic body encoder, with the acknowledgements' short form first.
impl Encode for Packet<'_> {
    fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        with_body!(self, |body| encoded_len_of(body, version))
    }

    #[inline]
    fn encode(&self, version: ProtocolVersion, buf: &mut [u8]) -> Result<usize, EncodeError> {
        match self {
            Self::Publish(p) => p.encode(version, buf),
            Self::PubAck(p) => p.encode_slice_as(PacketType::PubAck, version, buf),
            Self::PubRec(p) => p.encode_slice_as(PacketType::PubRec, version, buf),
            Self::PubRel(p) => p.encode_slice_as(PacketType::PubRel, version, buf),
            Self::PubComp(p) => p.encode_slice_as(PacketType::PubComp, version, buf),
            _ => with_body!(self, |body| encode_body_slice(body, version, buf)),
        }
    }

    #[inline]
    fn encode_to<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        out: &mut S,
    ) -> Result<usize, EncodeError> {
        match self {
            Self::Publish(p) => p.encode_to(version, out),
            Self::PubAck(p) => p.encode_as(PacketType::PubAck, version, out),
            Self::PubRec(p) => p.encode_as(PacketType::PubRec, version, out),
            Self::PubRel(p) => p.encode_as(PacketType::PubRel, version, out),
            Self::PubComp(p) => p.encode_as(PacketType::PubComp, version, out),
            _ => with_body!(self, |body| encode_body(body, version, out)),
        }
    }
}

/// Packet types that encode on their own (not through a copy into [`Packet`]).
macro_rules! standalone_body {
    ($($ty:ident => $kind:ident;)*) => {$(
        impl Body for $ty<'_> {
            fn packet_type(&self) -> PacketType {
                PacketType::$kind
            }
            #[inline]
            fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError> {
                $ty::plan(self, version)
            }
            #[inline]
            fn write_body<S: Sink + ?Sized>(&self, version: ProtocolVersion, plan: &Plan, out: &mut S) {
                $ty::write(self, version, plan, out)
            }
        }
    )*};
}

standalone_body! {
    ConnAck => ConnAck;
    Subscribe => Subscribe;
    SubAck => SubAck;
    Unsubscribe => Unsubscribe;
    UnsubAck => UnsubAck;
    Disconnect => Disconnect;
}

/// PUBLISH encodes through [`PreparedPublish`]: checked and sized once, then written.
impl Encode for Publish<'_> {
    #[inline]
    fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        packet_len(self.plan(version)?.body)
    }

    #[inline]
    fn encode(&self, version: ProtocolVersion, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let plan = self.plan(version)?;
        PreparedPublish::from_plan(self, version, &plan).encode(buf)
    }

    #[inline]
    fn encode_to<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        out: &mut S,
    ) -> Result<usize, EncodeError> {
        let plan = self.plan(version)?;
        PreparedPublish::from_plan(self, version, &plan).encode_to(out)
    }
}

impl<'a> From<Publish<'a>> for Packet<'a> {
    fn from(packet: Publish<'a>) -> Self {
        Packet::Publish(packet)
    }
}

macro_rules! encode_impls {
    ($($ty:ident;)*) => {$(
        impl Encode for $ty<'_> {
            fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
                encoded_len_of(self, version)
            }

            fn encode_to<S: Sink + ?Sized>(
                &self,
                version: ProtocolVersion,
                out: &mut S,
            ) -> Result<usize, EncodeError> {
                encode_body(self, version, out)
            }
        }

        impl<'a> From<$ty<'a>> for Packet<'a> {
            fn from(packet: $ty<'a>) -> Self {
                Packet::$ty(packet)
            }
        }
    )*};
}

encode_impls! {
    Connect;
    ConnAck;
    Subscribe;
    SubAck;
    Unsubscribe;
    UnsubAck;
    Disconnect;
    Auth;
}
