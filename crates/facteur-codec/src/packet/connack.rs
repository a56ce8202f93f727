//! CONNACK (§3.2): the server's answer to CONNECT.

use super::Plan;
use crate::property::PropertyContext;
use crate::read::Reader;
use crate::write::Sink;
use crate::{
    DecodeError, DecodeErrorKind, EncodeError, PacketType, Properties, ProtocolVersion, ReasonCode,
};

/// The server's answer to CONNECT.
///
/// 3.x return codes are carried as the equivalent [`ReasonCode`]: 1 is
/// `UnsupportedProtocolVersion`, 2 `ClientIdentifierNotValid`, 3 `ServerUnavailable`, 4
/// `BadUserNameOrPassword`, 5 `NotAuthorized`. Encoding for 3.x maps any other failure with
/// [`ReasonCode::to_v3_connack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck<'a> {
    /// The server holds a session for this client (never with a failure code).
    pub session_present: bool,
    /// Success or why the connection is refused.
    pub reason_code: ReasonCode,
    /// CONNACK properties (5.0).
    pub properties: Properties<'a>,
}

impl<'a> ConnAck<'a> {
    /// A CONNACK with this code, no session present and no properties.
    pub const fn new(reason_code: ReasonCode) -> Self {
        Self {
            session_present: false,
            reason_code,
            properties: Properties::EMPTY,
        }
    }

    pub(crate) fn decode(
        r: &mut Reader<'a>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let flags_at = r.offset();
        let flags = r.u8()?;
        if flags & 0xFE != 0 {
            return Err(r.error_at(DecodeErrorKind::ReservedBitSet, flags_at));
        }
        let code_at = r.offset();
        let code = r.u8()?;
        let reason_code = if version.is_v5() {
            ReasonCode::from_u8(code).filter(|c| c.is_valid_for(PacketType::ConnAck))
        } else {
            ReasonCode::from_v3_connack(code)
        }
        .ok_or_else(|| r.error_at(DecodeErrorKind::InvalidReasonCode(code), code_at))?;
        let session_present = flags & 0x01 != 0;
        if session_present && reason_code.is_error() {
            return Err(r.error_at(DecodeErrorKind::InconsistentFlags, flags_at));
        }
        let properties = Properties::decode(r, version, PropertyContext::ConnAck)?;
        r.finish()?;
        Ok(Self {
            session_present,
            reason_code,
            properties,
        })
    }

    pub(crate) fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError> {
        if !self.reason_code.is_valid_for(PacketType::ConnAck) {
            return Err(EncodeError::Invalid(DecodeErrorKind::InvalidReasonCode(
                self.reason_code.as_u8(),
            )));
        }
        if self.session_present && self.reason_code.is_error() {
            return Err(EncodeError::Invalid(DecodeErrorKind::InconsistentFlags));
        }
        let props = self.properties.validate(PropertyContext::ConnAck)?;
        Ok(Plan::new(
            2 + Properties::section_len(version, props),
            props,
        ))
    }

    pub(crate) fn write<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        plan: &Plan,
        out: &mut S,
    ) {
        out.put_u8(u8::from(self.session_present));
        out.put_u8(if version.is_v5() {
            self.reason_code.as_u8()
        } else {
            self.reason_code.to_v3_connack()
        });
        self.properties.write(version, plan.props, out);
    }
}
