//! PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4 to §3.7), and the reason-code-only shape that
//! DISCONNECT and AUTH share.

use super::{check_room, Plan};
use crate::property::PropertyContext;
use crate::read::Reader;
use crate::write::{Sink, SinkExt, SliceWriter};
use crate::{
    DecodeError, DecodeErrorKind, EncodeError, PacketType, Properties, ProtocolVersion, ReasonCode,
};

/// The answer to a QoS 1/2 PUBLISH step: PUBACK, PUBREC, PUBREL or PUBCOMP (the
/// [`Packet`](crate::Packet) variant says which).
///
/// In 5.0 the short forms are used when they say the same: no reason code when it is
/// `Success` with no properties, no property length when there are none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PubResponse<'a> {
    /// The identifier of the PUBLISH (or PUBREL) answered.
    pub packet_id: u16,
    /// Success, or why not (5.0; always `Success` in 3.x).
    pub reason_code: ReasonCode,
    /// Properties (5.0): reason string and user properties.
    pub properties: Properties<'a>,
}

impl<'a> PubResponse<'a> {
    /// A successful response for `packet_id`.
    pub const fn new(packet_id: u16) -> Self {
        Self {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: Properties::EMPTY,
        }
    }

    // Inlined: the packet a QoS 1 flow reads most, decoded in a few instructions.
    #[inline]
    pub(crate) fn decode(
        r: &mut Reader<'a>,
        version: ProtocolVersion,
        kind: PacketType,
    ) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let (reason_code, properties) =
            decode_reason_tail(r, version, kind, PropertyContext::PubResponse)?;
        Ok(Self {
            packet_id,
            reason_code,
            properties,
        })
    }

    pub(crate) fn plan(
        &self,
        version: ProtocolVersion,
        kind: PacketType,
    ) -> Result<Plan, EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::Invalid(DecodeErrorKind::ZeroPacketIdentifier));
        }
        let (tail, props) = plan_reason_tail(
            self.reason_code,
            &self.properties,
            version,
            kind,
            PropertyContext::PubResponse,
        )?;
        Ok(Plan::new(2 + tail, props))
    }

    /// True when this response takes the short form in every version: `Success` and no
    /// properties, four bytes (the fixed header, remaining length 2, the packet identifier).
    /// It is what a broker writes for every QoS 1 message.
    #[inline]
    fn is_short(&self) -> bool {
        self.reason_code == ReasonCode::Success && self.properties.is_empty()
    }

    /// The short form's four bytes, after the check the general path makes first.
    #[inline]
    fn short_form(&self, kind: PacketType) -> Result<[u8; 4], EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::Invalid(DecodeErrorKind::ZeroPacketIdentifier));
        }
        let [high, low] = self.packet_id.to_be_bytes();
        let flags = kind.required_flags().unwrap_or(0);
        Ok([(kind as u8) << 4 | flags, 2, high, low])
    }

    /// Encodes this response as a `kind` packet into `out`: the short form when it applies,
    /// else the general path. The checks and errors are the same either way, in the same
    /// order (a zero packet identifier, then the buffer's room).
    #[inline]
    pub(crate) fn encode_as<S: Sink + ?Sized>(
        &self,
        kind: PacketType,
        version: ProtocolVersion,
        out: &mut S,
    ) -> Result<usize, EncodeError> {
        if !self.is_short() {
            return self.encode_long(kind, version, out);
        }
        let bytes = self.short_form(kind)?;
        check_room(out, bytes.len())?;
        out.put_slice(&bytes);
        Ok(bytes.len())
    }

    /// [`Self::encode_as`] into a slice: the short form is one bounds check and one store.
    #[inline]
    pub(crate) fn encode_slice_as(
        &self,
        kind: PacketType,
        version: ProtocolVersion,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        if !self.is_short() {
            return self.encode_long(kind, version, &mut SliceWriter::new(buf));
        }
        let bytes = self.short_form(kind)?;
        let available = buf.len();
        let Some(to) = buf.first_chunk_mut::<4>() else {
            return Err(EncodeError::BufferTooSmall {
                required: bytes.len(),
                available,
            });
        };
        *to = bytes;
        Ok(bytes.len())
    }

    /// Reason codes and properties: the generic encoder, out of the short form's way.
    #[inline(never)]
    fn encode_long<S: Sink + ?Sized>(
        &self,
        kind: PacketType,
        version: ProtocolVersion,
        out: &mut S,
    ) -> Result<usize, EncodeError> {
        super::encode_body(
            &super::Ack {
                kind,
                response: self,
            },
            version,
            out,
        )
    }

    pub(crate) fn write<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        plan: &Plan,
        out: &mut S,
    ) {
        out.put_u16(self.packet_id);
        write_reason_tail(self.reason_code, &self.properties, version, plan, 2, out);
    }
}

/// Reads the optional reason code and properties that end PUBACK-family packets, DISCONNECT
/// and AUTH in 5.0 (absent means `Success`), and checks that nothing follows. Before 5.0 the
/// packet must end here.
#[inline]
pub(crate) fn decode_reason_tail<'a>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
    kind: PacketType,
    context: PropertyContext,
) -> Result<(ReasonCode, Properties<'a>), DecodeError> {
    let mut reason_code = ReasonCode::Success;
    let mut properties = Properties::EMPTY;
    if version.is_v5() && !r.is_empty() {
        let at = r.offset();
        let code = r.u8()?;
        reason_code = ReasonCode::from_u8(code)
            .filter(|c| c.is_valid_for(kind))
            .ok_or_else(|| r.error_at(DecodeErrorKind::InvalidReasonCode(code), at))?;
        if !r.is_empty() {
            properties = Properties::decode(r, version, context)?;
        }
    }
    r.finish()?;
    Ok((reason_code, properties))
}

/// Sizes the reason tail: returns (tail length, property content length).
pub(crate) fn plan_reason_tail(
    reason_code: ReasonCode,
    properties: &Properties<'_>,
    version: ProtocolVersion,
    kind: PacketType,
    context: PropertyContext,
) -> Result<(usize, usize), EncodeError> {
    if !reason_code.is_valid_for(kind) {
        return Err(EncodeError::Invalid(DecodeErrorKind::InvalidReasonCode(
            reason_code.as_u8(),
        )));
    }
    if !version.is_v5() {
        return Ok((0, 0));
    }
    let props = properties.validate(context)?;
    let tail = if props > 0 {
        1 + Properties::section_len(version, props)
    } else if reason_code != ReasonCode::Success {
        1
    } else {
        0
    };
    Ok((tail, props))
}

/// Writes the tail sized by [`plan_reason_tail`]; `fixed` is the body length before it.
pub(crate) fn write_reason_tail<S: Sink + ?Sized>(
    reason_code: ReasonCode,
    properties: &Properties<'_>,
    version: ProtocolVersion,
    plan: &Plan,
    fixed: usize,
    out: &mut S,
) {
    if plan.body > fixed {
        out.put_u8(reason_code.as_u8());
    }
    if plan.body > fixed + 1 {
        properties.write(version, plan.props, out);
    }
}
