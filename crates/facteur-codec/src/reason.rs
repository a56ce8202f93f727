//! Reason codes (MQTT 5.0 §2.4) and their MQTT 3.x equivalents.

use crate::PacketType;

macro_rules! reason_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal ),* $(,)?) => {
        /// An MQTT 5.0 reason code, with the spec's value.
        ///
        /// Value 0x00 is `Success`; its other names in the spec are the associated constants
        /// [`ReasonCode::NORMAL_DISCONNECTION`] and [`ReasonCode::GRANTED_QOS_0`]. Which codes a
        /// packet may carry is checked when it is decoded or encoded
        /// ([`ReasonCode::is_valid_for`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum ReasonCode {
            $( $(#[$doc])* $name = $value, )*
        }

        impl ReasonCode {
            /// The reason code for a byte, if the spec defines one.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $( $value => Some(Self::$name), )*
                    _ => None,
                }
            }
        }
    };
}

reason_codes! {
    /// Success, normal disconnection, granted QoS 0.
    Success = 0x00,
    /// Granted QoS 1 (SUBACK).
    GrantedQoS1 = 0x01,
    /// Granted QoS 2 (SUBACK).
    GrantedQoS2 = 0x02,
    /// Disconnect with will message (DISCONNECT).
    DisconnectWithWillMessage = 0x04,
    /// No matching subscribers (PUBACK, PUBREC).
    NoMatchingSubscribers = 0x10,
    /// No subscription existed (UNSUBACK).
    NoSubscriptionExisted = 0x11,
    /// Continue authentication (AUTH).
    ContinueAuthentication = 0x18,
    /// Re-authenticate (AUTH).
    ReAuthenticate = 0x19,
    /// Unspecified error.
    UnspecifiedError = 0x80,
    /// Malformed packet.
    MalformedPacket = 0x81,
    /// Protocol error.
    ProtocolError = 0x82,
    /// Implementation specific error.
    ImplementationSpecificError = 0x83,
    /// Unsupported protocol version (CONNACK).
    UnsupportedProtocolVersion = 0x84,
    /// Client identifier not valid (CONNACK).
    ClientIdentifierNotValid = 0x85,
    /// Bad user name or password (CONNACK).
    BadUserNameOrPassword = 0x86,
    /// Not authorized.
    NotAuthorized = 0x87,
    /// Server unavailable (CONNACK).
    ServerUnavailable = 0x88,
    /// Server busy.
    ServerBusy = 0x89,
    /// Banned (CONNACK).
    Banned = 0x8A,
    /// Server shutting down (DISCONNECT).
    ServerShuttingDown = 0x8B,
    /// Bad authentication method.
    BadAuthenticationMethod = 0x8C,
    /// Keep alive timeout (DISCONNECT).
    KeepAliveTimeout = 0x8D,
    /// Session taken over (DISCONNECT).
    SessionTakenOver = 0x8E,
    /// Topic filter invalid.
    TopicFilterInvalid = 0x8F,
    /// Topic name invalid.
    TopicNameInvalid = 0x90,
    /// Packet identifier in use.
    PacketIdentifierInUse = 0x91,
    /// Packet identifier not found.
    PacketIdentifierNotFound = 0x92,
    /// Receive maximum exceeded (DISCONNECT).
    ReceiveMaximumExceeded = 0x93,
    /// Topic alias invalid (DISCONNECT).
    TopicAliasInvalid = 0x94,
    /// Packet too large.
    PacketTooLarge = 0x95,
    /// Message rate too high (DISCONNECT).
    MessageRateTooHigh = 0x96,
    /// Quota exceeded.
    QuotaExceeded = 0x97,
    /// Administrative action (DISCONNECT).
    AdministrativeAction = 0x98,
    /// Payload format invalid.
    PayloadFormatInvalid = 0x99,
    /// Retain not supported.
    RetainNotSupported = 0x9A,
    /// QoS not supported.
    QoSNotSupported = 0x9B,
    /// Use another server.
    UseAnotherServer = 0x9C,
    /// Server moved.
    ServerMoved = 0x9D,
    /// Shared subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9E,
    /// Connection rate exceeded.
    ConnectionRateExceeded = 0x9F,
    /// Maximum connect time (DISCONNECT).
    MaximumConnectTime = 0xA0,
    /// Subscription identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xA1,
    /// Wildcard subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xA2,
}

impl ReasonCode {
    /// 0x00 under its DISCONNECT name.
    pub const NORMAL_DISCONNECTION: Self = Self::Success;
    /// 0x00 under its SUBACK name.
    pub const GRANTED_QOS_0: Self = Self::Success;

    /// The byte on the wire.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// True for codes 0x80 and above, which report a failure.
    pub const fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// True if the spec allows this code in a packet of type `packet` (MQTT 5.0 Table 2-6).
    ///
    /// ```
    /// use facteur_codec::{PacketType, ReasonCode};
    /// assert!(ReasonCode::ReceiveMaximumExceeded.is_valid_for(PacketType::Disconnect));
    /// assert!(!ReasonCode::ReceiveMaximumExceeded.is_valid_for(PacketType::ConnAck));
    /// ```
    pub const fn is_valid_for(self, packet: PacketType) -> bool {
        use PacketType as P;
        use ReasonCode as R;
        match packet {
            P::ConnAck => matches!(
                self,
                R::Success
                    | R::UnspecifiedError
                    | R::MalformedPacket
                    | R::ProtocolError
                    | R::ImplementationSpecificError
                    | R::UnsupportedProtocolVersion
                    | R::ClientIdentifierNotValid
                    | R::BadUserNameOrPassword
                    | R::NotAuthorized
                    | R::ServerUnavailable
                    | R::ServerBusy
                    | R::Banned
                    | R::BadAuthenticationMethod
                    | R::TopicNameInvalid
                    | R::PacketTooLarge
                    | R::QuotaExceeded
                    | R::PayloadFormatInvalid
                    | R::RetainNotSupported
                    | R::QoSNotSupported
                    | R::UseAnotherServer
                    | R::ServerMoved
                    | R::ConnectionRateExceeded
            ),
            P::PubAck | P::PubRec => matches!(
                self,
                R::Success
                    | R::NoMatchingSubscribers
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicNameInvalid
                    | R::PacketIdentifierInUse
                    | R::QuotaExceeded
                    | R::PayloadFormatInvalid
            ),
            P::PubRel | P::PubComp => matches!(self, R::Success | R::PacketIdentifierNotFound),
            P::SubAck => matches!(
                self,
                R::Success
                    | R::GrantedQoS1
                    | R::GrantedQoS2
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicFilterInvalid
                    | R::PacketIdentifierInUse
                    | R::QuotaExceeded
                    | R::SharedSubscriptionsNotSupported
                    | R::SubscriptionIdentifiersNotSupported
                    | R::WildcardSubscriptionsNotSupported
            ),
            P::UnsubAck => matches!(
                self,
                R::Success
                    | R::NoSubscriptionExisted
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicFilterInvalid
                    | R::PacketIdentifierInUse
            ),
            P::Disconnect => matches!(
                self,
                R::Success
                    | R::DisconnectWithWillMessage
                    | R::UnspecifiedError
                    | R::MalformedPacket
                    | R::ProtocolError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::ServerBusy
                    | R::ServerShuttingDown
                    | R::KeepAliveTimeout
                    | R::SessionTakenOver
                    | R::TopicFilterInvalid
                    | R::TopicNameInvalid
                    | R::ReceiveMaximumExceeded
                    | R::TopicAliasInvalid
                    | R::PacketTooLarge
                    | R::MessageRateTooHigh
                    | R::QuotaExceeded
                    | R::AdministrativeAction
                    | R::PayloadFormatInvalid
                    | R::RetainNotSupported
                    | R::QoSNotSupported
                    | R::UseAnotherServer
                    | R::ServerMoved
                    | R::SharedSubscriptionsNotSupported
                    | R::ConnectionRateExceeded
                    | R::MaximumConnectTime
                    | R::SubscriptionIdentifiersNotSupported
                    | R::WildcardSubscriptionsNotSupported
            ),
            P::Auth => matches!(
                self,
                R::Success | R::ContinueAuthentication | R::ReAuthenticate
            ),
            _ => false,
        }
    }

    /// The MQTT 3.1 / 3.1.1 CONNACK return code for this reason.
    ///
    /// 3.x has six return codes; every 5.0 failure maps to the nearest one (identifier,
    /// credentials and authorization keep their meaning, everything else is "server
    /// unavailable").
    pub const fn to_v3_connack(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::UnsupportedProtocolVersion => 1,
            Self::ClientIdentifierNotValid => 2,
            Self::BadUserNameOrPassword | Self::BadAuthenticationMethod => 4,
            Self::NotAuthorized | Self::Banned => 5,
            _ => 3,
        }
    }

    /// The reason code for an MQTT 3.1 / 3.1.1 CONNACK return code (0 to 5).
    pub const fn from_v3_connack(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Success),
            1 => Some(Self::UnsupportedProtocolVersion),
            2 => Some(Self::ClientIdentifierNotValid),
            3 => Some(Self::ServerUnavailable),
            4 => Some(Self::BadUserNameOrPassword),
            5 => Some(Self::NotAuthorized),
            _ => None,
        }
    }
}

impl core::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?} (0x{:02X})", self, self.as_u8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_or_is_unknown() {
        let mut known = 0;
        for b in 0..=255u8 {
            if let Some(code) = ReasonCode::from_u8(b) {
                assert_eq!(code.as_u8(), b);
                known += 1;
            }
        }
        assert_eq!(known, 43, "MQTT 5.0 defines 43 distinct reason code values");
    }

    #[test]
    fn v3_connack_mapping_is_reversible_for_its_six_codes() {
        for code in 0..=5 {
            let reason = ReasonCode::from_v3_connack(code).unwrap();
            assert_eq!(reason.to_v3_connack(), code);
        }
        assert_eq!(ReasonCode::from_v3_connack(6), None);
        assert_eq!(ReasonCode::ServerBusy.to_v3_connack(), 3);
    }
}
