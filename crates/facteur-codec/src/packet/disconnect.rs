//! DISCONNECT (§3.14) and AUTH (§3.15): a reason code and properties, both optional on the wire.

use super::ack::{decode_reason_tail, plan_reason_tail, write_reason_tail};
use super::Plan;
use crate::property::PropertyContext;
use crate::read::Reader;
use crate::write::Sink;
use crate::{DecodeError, EncodeError, PacketType, Properties, ProtocolVersion, ReasonCode};

macro_rules! reason_packet {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $context:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<'a> {
            /// Why (5.0; `Success` when absent and always in 3.x).
            pub reason_code: ReasonCode,
            /// Properties (5.0).
            pub properties: Properties<'a>,
        }

        impl<'a> $name<'a> {
            /// A packet with this code and no properties.
            pub const fn new(reason_code: ReasonCode) -> Self {
                Self {
                    reason_code,
                    properties: Properties::EMPTY,
                }
            }

            pub(crate) fn decode(
                r: &mut Reader<'a>,
                version: ProtocolVersion,
            ) -> Result<Self, DecodeError> {
                let (reason_code, properties) = decode_reason_tail(r, version, $kind, $context)?;
                Ok(Self {
                    reason_code,
                    properties,
                })
            }

            pub(crate) fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError> {
                let (tail, props) =
                    plan_reason_tail(self.reason_code, &self.properties, version, $kind, $context)?;
                Ok(Plan::new(tail, props))
            }

            pub(crate) fn write<S: Sink + ?Sized>(
                &self,
                version: ProtocolVersion,
                plan: &Plan,
                out: &mut S,
            ) {
                write_reason_tail(self.reason_code, &self.properties, version, plan, 0, out);
            }
        }
    };
}

reason_packet!(
    /// The end of a connection, from either side. In 3.x it has no content and is sent by the
    /// client only; encoding for 3.x drops the code and properties.
    Disconnect,
    PacketType::Disconnect,
    PropertyContext::Disconnect
);

reason_packet!(
    /// An extended authentication step (5.0 only).
    Auth,
    PacketType::Auth,
    PropertyContext::Auth
);

impl Disconnect<'_> {
    /// Encodes a DISCONNECT with `reason_code` and, in 5.0, the reason string `why`, which is
    /// left out when it is empty or would make the packet larger than `max_packet_size` (the
    /// receiver's Maximum Packet Size: MQTT 5.0 §3.14.2.2.3). Returns the bytes written.
    ///
    /// ```
    /// use facteur_codec::{Disconnect, ProtocolVersion, ReasonCode};
    /// let mut buf = [0u8; 32];
    /// let v5 = ProtocolVersion::V5;
    /// let n = Disconnect::encode_with_reason_string(ReasonCode::ServerBusy, "full", 100, v5, &mut buf)?;
    /// assert_eq!(&buf[..n], &[0xE0, 0x09, 0x89, 0x07, 0x1F, 0x00, 0x04, b'f', b'u', b'l', b'l']);
    /// // The receiver takes at most 8 bytes: the reason string is left out.
    /// let n = Disconnect::encode_with_reason_string(ReasonCode::ServerBusy, "full", 8, v5, &mut buf)?;
    /// assert_eq!(&buf[..n], &[0xE0, 0x01, 0x89]);
    /// # Ok::<(), facteur_codec::EncodeError>(())
    /// ```
    pub fn encode_with_reason_string(
        reason_code: ReasonCode,
        why: &str,
        max_packet_size: u32,
        version: ProtocolVersion,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        use crate::Encode;
        crate::Packet::Disconnect(Disconnect::new(reason_code)).with_reason_string(
            why,
            max_packet_size,
            version,
            |packet| packet.encode(version, buf),
        )
    }
}
