//! SUBACK (§3.9) and UNSUBACK (§3.11): one reason code per filter.

use super::{decode_id_and_properties, plan_id_and_properties, write_id_properties_list, Plan};
use crate::list::{Item, Sealed};
use crate::property::PropertyContext;
use crate::read::Reader;
use crate::write::Sink;
use crate::{
    DecodeError, DecodeErrorKind, EncodeError, List, PacketType, Properties, ProtocolVersion,
    ReasonCode,
};

impl Sealed for ReasonCode {}

/// A reason code in a SUBACK or UNSUBACK payload. In 3.x SUBACK, every failure is 0x80.
impl Item<'_> for ReasonCode {
    fn read(r: &mut Reader<'_>, _version: ProtocolVersion) -> Result<Self, DecodeError> {
        let at = r.offset();
        let code = r.u8()?;
        ReasonCode::from_u8(code)
            .ok_or_else(|| r.error_at(DecodeErrorKind::InvalidReasonCode(code), at))
    }

    fn wire_len(&self, _version: ProtocolVersion) -> usize {
        1
    }

    fn write<S: Sink + ?Sized>(&self, version: ProtocolVersion, out: &mut S) {
        out.put_u8(if !version.is_v5() && self.is_error() {
            ReasonCode::UnspecifiedError.as_u8()
        } else {
            self.as_u8()
        });
    }
}

fn valid_in(code: ReasonCode, kind: PacketType, version: ProtocolVersion) -> bool {
    if version.is_v5() {
        code.is_valid_for(kind)
    } else {
        matches!(
            code,
            ReasonCode::Success
                | ReasonCode::GrantedQoS1
                | ReasonCode::GrantedQoS2
                | ReasonCode::UnspecifiedError
        )
    }
}

fn decode_codes<'a>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
    kind: PacketType,
) -> Result<List<'a, ReasonCode>, DecodeError> {
    let bytes = r.clone().rest();
    while !r.is_empty() {
        let at = r.offset();
        let code = ReasonCode::read(r, version)?;
        if !valid_in(code, kind, version) {
            return Err(r.error_at(DecodeErrorKind::InvalidReasonCode(code.as_u8()), at));
        }
    }
    Ok(List::from_validated_wire(bytes, version))
}

fn plan_codes(codes: &List<'_, ReasonCode>, kind: PacketType) -> Result<usize, EncodeError> {
    let mut n = 0;
    for code in codes.iter() {
        if !code.is_valid_for(kind) {
            return Err(EncodeError::Invalid(DecodeErrorKind::InvalidReasonCode(
                code.as_u8(),
            )));
        }
        n += 1;
    }
    Ok(n)
}

/// The answer to SUBSCRIBE: one code per filter, in order (granted QoS or a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubAck<'a> {
    /// The SUBSCRIBE's packet identifier.
    pub packet_id: u16,
    /// SUBACK properties (5.0): reason string and user properties.
    pub properties: Properties<'a>,
    /// One code per requested filter.
    pub reason_codes: List<'a, ReasonCode>,
}

impl<'a> SubAck<'a> {
    /// A SUBACK with these codes.
    pub const fn new(packet_id: u16, reason_codes: &'a [ReasonCode]) -> Self {
        Self {
            packet_id,
            properties: Properties::EMPTY,
            reason_codes: List::from_slice(reason_codes),
        }
    }

    pub(crate) fn decode(
        r: &mut Reader<'a>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (packet_id, properties) =
            decode_id_and_properties(r, version, PropertyContext::SubAck)?;
        let reason_codes = decode_codes(r, version, PacketType::SubAck)?;
        Ok(Self {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub(crate) fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError> {
        let list_len = plan_codes(&self.reason_codes, PacketType::SubAck)?;
        plan_id_and_properties(
            self.packet_id,
            &self.properties,
            version,
            PropertyContext::SubAck,
            list_len,
        )
    }

    pub(crate) fn write<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        plan: &Plan,
        out: &mut S,
    ) {
        write_id_properties_list(
            self.packet_id,
            &self.properties,
            &self.reason_codes,
            version,
            plan,
            out,
        );
    }
}

/// The answer to UNSUBSCRIBE. Before 5.0 it carries only the packet identifier; the codes
/// and properties are not sent and decode as empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsubAck<'a> {
    /// The UNSUBSCRIBE's packet identifier.
    pub packet_id: u16,
    /// UNSUBACK properties (5.0).
    pub properties: Properties<'a>,
    /// One code per filter (5.0).
    pub reason_codes: List<'a, ReasonCode>,
}

impl<'a> UnsubAck<'a> {
    /// An UNSUBACK with these codes (pass `&[]` for 3.x).
    pub const fn new(packet_id: u16, reason_codes: &'a [ReasonCode]) -> Self {
        Self {
            packet_id,
            properties: Properties::EMPTY,
            reason_codes: List::from_slice(reason_codes),
        }
    }

    pub(crate) fn decode(
        r: &mut Reader<'a>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (packet_id, properties) =
            decode_id_and_properties(r, version, PropertyContext::UnsubAck)?;
        let reason_codes = if version.is_v5() {
            decode_codes(r, version, PacketType::UnsubAck)?
        } else {
            r.finish()?;
            List::EMPTY
        };
        Ok(Self {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub(crate) fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError> {
        let list_len = if version.is_v5() {
            plan_codes(&self.reason_codes, PacketType::UnsubAck)?
        } else {
            0
        };
        plan_id_and_properties(
            self.packet_id,
            &self.properties,
            version,
            PropertyContext::UnsubAck,
            list_len,
        )
    }

    pub(crate) fn write<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        plan: &Plan,
        out: &mut S,
    ) {
        let codes = if version.is_v5() {
            self.reason_codes
        } else {
            List::EMPTY
        };
        write_id_properties_list(self.packet_id, &self.properties, &codes, version, plan, out);
    }
}
