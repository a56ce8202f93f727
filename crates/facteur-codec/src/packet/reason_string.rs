//! Reason strings (MQTT 5): the human-readable "why" a packet may carry, left out when the
//! receiver would not take a packet that large.

use super::Packet;
use crate::{Encode, Properties, Property, ProtocolVersion};

impl<'a> Packet<'a> {
    /// Hands `with` this packet carrying the reason string `why`, or unchanged when `why` is
    /// empty, the version is before 5.0, the packet has no place for one (only CONNACK, the
    /// PUBLISH acknowledgements, SUBACK, UNSUBACK, DISCONNECT and AUTH do), or the string
    /// would make the packet larger than `max_packet_size`, the receiver's Maximum Packet
    /// Size (a reason string must never make a packet exceed it). The packet's own
    /// properties, if it had any, are replaced by the reason string.
    ///
    /// ```
    /// use facteur_codec::{Disconnect, Encode, Packet, ProtocolVersion, ReasonCode};
    /// let v5 = ProtocolVersion::V5;
    /// let busy = Packet::Disconnect(Disconnect::new(ReasonCode::ServerBusy));
    /// let mut buf = [0u8; 32];
    /// let n = busy.with_reason_string("full", 100, v5, |p| p.encode(v5, &mut buf))?;
    /// assert_eq!(&buf[..n], &[0xE0, 0x09, 0x89, 0x07, 0x1F, 0x00, 0x04, b'f', b'u', b'l', b'l']);
    /// // The receiver takes at most 8 bytes: the reason string is left out.
    /// let n = busy.with_reason_string("full", 8, v5, |p| p.encode(v5, &mut buf))?;
    /// assert_eq!(&buf[..n], &[0xE0, 0x01, 0x89]);
    /// # Ok::<(), facteur_codec::EncodeError>(())
    /// ```
    pub fn with_reason_string<R>(
        self,
        why: &str,
        max_packet_size: u32,
        version: ProtocolVersion,
        with: impl FnOnce(&Packet<'_>) -> R,
    ) -> R {
        let reason_string = [Property::ReasonString(why)];
        let mut packet: Packet<'_> = self;
        if version.is_v5() && !why.is_empty() {
            if let Some(properties) = packet.diagnostic_properties() {
                *properties = Properties::from_slice(&reason_string);
                let fits = packet
                    .encoded_len(version)
                    .is_ok_and(|len| len <= max_packet_size as usize);
                if !fits {
                    // Cannot fail: the same variant as above.
                    if let Some(properties) = packet.diagnostic_properties() {
                        *properties = Properties::EMPTY;
                    }
                }
            }
        }
        with(&packet)
    }

    /// The properties of a packet that may carry a reason string.
    fn diagnostic_properties(&mut self) -> Option<&mut Properties<'a>> {
        match self {
            Self::ConnAck(p) => Some(&mut p.properties),
            Self::PubAck(p) | Self::PubRec(p) | Self::PubRel(p) | Self::PubComp(p) => {
                Some(&mut p.properties)
            }
            Self::SubAck(p) => Some(&mut p.properties),
            Self::UnsubAck(p) => Some(&mut p.properties),
            Self::Disconnect(p) => Some(&mut p.properties),
            Self::Auth(p) => Some(&mut p.properties),
            Self::Connect(_)
            | Self::Publish(_)
            | Self::Subscribe(_)
            | Self::Unsubscribe(_)
            | Self::PingReq
            | Self::PingResp => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{decode, Encode, Packet, ProtocolVersion, PubResponse, ReasonCode, Status, SubAck};

    #[test]
    fn acknowledgements_carry_it_in_5_0_only() {
        let codes = [ReasonCode::TopicFilterInvalid];
        let suback = Packet::SubAck(SubAck::new(7, &codes));
        let mut buf = [0u8; 64];
        let v5 = ProtocolVersion::V5;
        let n = suback.with_reason_string("no", 64, v5, |p| p.encode(v5, &mut buf).unwrap());
        assert_eq!(
            &buf[..n],
            &[0x90, 0x09, 0x00, 0x07, 0x05, 0x1F, 0x00, 0x02, b'n', b'o', 0x8F]
        );
        let Ok(Status::Complete(d)) = decode(&buf[..n], v5, 64) else {
            panic!("decodes");
        };
        let Packet::SubAck(back) = d.packet else {
            panic!("a SUBACK");
        };
        assert_eq!(back.properties.reason_string(), Some("no"));

        let v3 = ProtocolVersion::V3_1_1;
        let pubcomp = Packet::PubComp(PubResponse {
            reason_code: ReasonCode::PacketIdentifierNotFound,
            ..PubResponse::new(1)
        });
        let n = pubcomp.with_reason_string("gone", 64, v3, |p| p.encode(v3, &mut buf).unwrap());
        assert_eq!(&buf[..n], &[0x70, 0x02, 0x00, 0x01]);
        // No place for one in PINGRESP: unchanged.
        let n =
            Packet::PingResp.with_reason_string("x", 64, v5, |p| p.encode(v5, &mut buf).unwrap());
        assert_eq!(&buf[..n], &[0xD0, 0x00]);
    }
}
