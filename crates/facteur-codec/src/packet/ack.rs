//! PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4 to §3.7), and the reason-code-only shape that
//! DISCONNECT and AUTH share.

use super::Plan;
use crate::property::PropertyContext;
use crate::read::Reader;
use crate::write::{Sink, SinkExt};
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
