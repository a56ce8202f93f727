//! MQTT 5.0 properties (§2.2.2): every identifier with its type, where each may appear, and a
//! borrowed view with typed accessors.

use crate::list::{Item, List, Sealed};
use crate::read::Reader;
use crate::varint::{varint_len, VARINT_MAX};
use crate::write::{Sink, SinkExt};
use crate::{DecodeError, DecodeErrorKind, ProtocolVersion, QoS};

macro_rules! property_ids {
    ($( $(#[$doc:meta])* $name:ident = $value:literal ),* $(,)?) => {
        /// A property identifier, with the spec's value.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum PropertyId {
            $( $(#[$doc])* $name = $value, )*
        }

        impl PropertyId {
            /// The identifier for a byte, if the spec defines one.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $( $value => Some(Self::$name), )*
                    _ => None,
                }
            }
        }
    };
}

property_ids! {
    /// Byte: 0 unspecified bytes, 1 UTF-8 payload.
    PayloadFormatIndicator = 0x01,
    /// Four byte integer, seconds.
    MessageExpiryInterval = 0x02,
    /// UTF-8 string.
    ContentType = 0x03,
    /// UTF-8 string (a topic name).
    ResponseTopic = 0x08,
    /// Binary data.
    CorrelationData = 0x09,
    /// Variable byte integer, 1 to 268,435,455.
    SubscriptionIdentifier = 0x0B,
    /// Four byte integer, seconds.
    SessionExpiryInterval = 0x11,
    /// UTF-8 string.
    AssignedClientIdentifier = 0x12,
    /// Two byte integer, seconds.
    ServerKeepAlive = 0x13,
    /// UTF-8 string.
    AuthenticationMethod = 0x15,
    /// Binary data.
    AuthenticationData = 0x16,
    /// Byte, 0 or 1.
    RequestProblemInformation = 0x17,
    /// Four byte integer, seconds.
    WillDelayInterval = 0x18,
    /// Byte, 0 or 1.
    RequestResponseInformation = 0x19,
    /// UTF-8 string.
    ResponseInformation = 0x1A,
    /// UTF-8 string.
    ServerReference = 0x1C,
    /// UTF-8 string.
    ReasonString = 0x1F,
    /// Two byte integer, not 0.
    ReceiveMaximum = 0x21,
    /// Two byte integer.
    TopicAliasMaximum = 0x22,
    /// Two byte integer, not 0.
    TopicAlias = 0x23,
    /// Byte, 0 or 1.
    MaximumQoS = 0x24,
    /// Byte, 0 or 1.
    RetainAvailable = 0x25,
    /// UTF-8 string pair; may repeat.
    UserProperty = 0x26,
    /// Four byte integer, not 0.
    MaximumPacketSize = 0x27,
    /// Byte, 0 or 1.
    WildcardSubscriptionAvailable = 0x28,
    /// Byte, 0 or 1.
    SubscriptionIdentifierAvailable = 0x29,
    /// Byte, 0 or 1.
    SharedSubscriptionAvailable = 0x2A,
}

/// The value of the Payload Format Indicator property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PayloadFormat {
    /// The payload is unspecified bytes.
    Unspecified = 0,
    /// The payload is UTF-8 text.
    Utf8 = 1,
}

/// One MQTT 5.0 property with its typed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the property of the same name in PropertyId
pub enum Property<'a> {
    PayloadFormatIndicator(PayloadFormat),
    MessageExpiryInterval(u32),
    ContentType(&'a str),
    ResponseTopic(&'a str),
    CorrelationData(&'a [u8]),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(&'a str),
    ServerKeepAlive(u16),
    AuthenticationMethod(&'a str),
    AuthenticationData(&'a [u8]),
    RequestProblemInformation(bool),
    WillDelayInterval(u32),
    RequestResponseInformation(bool),
    ResponseInformation(&'a str),
    ServerReference(&'a str),
    ReasonString(&'a str),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(u16),
    MaximumQoS(QoS),
    RetainAvailable(bool),
    /// Name and value.
    UserProperty(&'a str, &'a str),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(bool),
    SubscriptionIdentifierAvailable(bool),
    SharedSubscriptionAvailable(bool),
}

impl Property<'_> {
    /// This property's identifier.
    pub const fn id(&self) -> PropertyId {
        use Property as P;
        use PropertyId as I;
        match self {
            P::PayloadFormatIndicator(_) => I::PayloadFormatIndicator,
            P::MessageExpiryInterval(_) => I::MessageExpiryInterval,
            P::ContentType(_) => I::ContentType,
            P::ResponseTopic(_) => I::ResponseTopic,
            P::CorrelationData(_) => I::CorrelationData,
            P::SubscriptionIdentifier(_) => I::SubscriptionIdentifier,
            P::SessionExpiryInterval(_) => I::SessionExpiryInterval,
            P::AssignedClientIdentifier(_) => I::AssignedClientIdentifier,
            P::ServerKeepAlive(_) => I::ServerKeepAlive,
            P::AuthenticationMethod(_) => I::AuthenticationMethod,
            P::AuthenticationData(_) => I::AuthenticationData,
            P::RequestProblemInformation(_) => I::RequestProblemInformation,
            P::WillDelayInterval(_) => I::WillDelayInterval,
            P::RequestResponseInformation(_) => I::RequestResponseInformation,
            P::ResponseInformation(_) => I::ResponseInformation,
            P::ServerReference(_) => I::ServerReference,
            P::ReasonString(_) => I::ReasonString,
            P::ReceiveMaximum(_) => I::ReceiveMaximum,
            P::TopicAliasMaximum(_) => I::TopicAliasMaximum,
            P::TopicAlias(_) => I::TopicAlias,
            P::MaximumQoS(_) => I::MaximumQoS,
            P::RetainAvailable(_) => I::RetainAvailable,
            P::UserProperty(..) => I::UserProperty,
            P::MaximumPacketSize(_) => I::MaximumPacketSize,
            P::WildcardSubscriptionAvailable(_) => I::WildcardSubscriptionAvailable,
            P::SubscriptionIdentifierAvailable(_) => I::SubscriptionIdentifierAvailable,
            P::SharedSubscriptionAvailable(_) => I::SharedSubscriptionAvailable,
        }
    }

    /// False for values the spec forbids (a zero Receive Maximum, a Maximum QoS of 2, ...).
    fn value_is_valid(&self) -> bool {
        match *self {
            Self::SubscriptionIdentifier(id) => (1..=VARINT_MAX).contains(&id),
            Self::ReceiveMaximum(n) | Self::TopicAlias(n) => n != 0,
            Self::MaximumPacketSize(n) => n != 0,
            Self::MaximumQoS(qos) => qos != QoS::ExactlyOnce,
            _ => true,
        }
    }

    /// The longest string or binary field in this property, which must fit a 16-bit length.
    fn longest_field(&self) -> usize {
        match *self {
            Self::ContentType(s)
            | Self::ResponseTopic(s)
            | Self::AssignedClientIdentifier(s)
            | Self::AuthenticationMethod(s)
            | Self::ResponseInformation(s)
            | Self::ServerReference(s)
            | Self::ReasonString(s) => s.len(),
            Self::CorrelationData(b) | Self::AuthenticationData(b) => b.len(),
            Self::UserProperty(k, v) => k.len().max(v.len()),
            _ => 0,
        }
    }
}

fn read_flag<'a>(r: &mut Reader<'a>, id: PropertyId) -> Result<bool, DecodeError> {
    let at = r.offset();
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(r.error_at(DecodeErrorKind::InvalidPropertyValue(id), at)),
    }
}

impl Sealed for Property<'_> {}

impl<'a> Item<'a> for Property<'a> {
    fn read(r: &mut Reader<'a>, _version: ProtocolVersion) -> Result<Self, DecodeError> {
        use Property as P;
        use PropertyId as I;
        let at = r.offset();
        let raw_id = r.varint()?;
        let id = u8::try_from(raw_id)
            .ok()
            .and_then(PropertyId::from_u8)
            .ok_or_else(|| r.error_at(DecodeErrorKind::UnknownProperty(raw_id as u8), at))?;
        let value_at = r.offset();
        let property = match id {
            I::PayloadFormatIndicator => P::PayloadFormatIndicator(if read_flag(r, id)? {
                PayloadFormat::Utf8
            } else {
                PayloadFormat::Unspecified
            }),
            I::MessageExpiryInterval => P::MessageExpiryInterval(r.u32()?),
            I::ContentType => P::ContentType(r.utf8()?),
            I::ResponseTopic => P::ResponseTopic(r.utf8()?),
            I::CorrelationData => P::CorrelationData(r.binary()?),
            I::SubscriptionIdentifier => P::SubscriptionIdentifier(r.varint()?),
            I::SessionExpiryInterval => P::SessionExpiryInterval(r.u32()?),
            I::AssignedClientIdentifier => P::AssignedClientIdentifier(r.utf8()?),
            I::ServerKeepAlive => P::ServerKeepAlive(r.u16()?),
            I::AuthenticationMethod => P::AuthenticationMethod(r.utf8()?),
            I::AuthenticationData => P::AuthenticationData(r.binary()?),
            I::RequestProblemInformation => P::RequestProblemInformation(read_flag(r, id)?),
            I::WillDelayInterval => P::WillDelayInterval(r.u32()?),
            I::RequestResponseInformation => P::RequestResponseInformation(read_flag(r, id)?),
            I::ResponseInformation => P::ResponseInformation(r.utf8()?),
            I::ServerReference => P::ServerReference(r.utf8()?),
            I::ReasonString => P::ReasonString(r.utf8()?),
            I::ReceiveMaximum => P::ReceiveMaximum(r.u16()?),
            I::TopicAliasMaximum => P::TopicAliasMaximum(r.u16()?),
            I::TopicAlias => P::TopicAlias(r.u16()?),
            I::MaximumQoS => P::MaximumQoS(if read_flag(r, id)? {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            }),
            I::RetainAvailable => P::RetainAvailable(read_flag(r, id)?),
            I::UserProperty => P::UserProperty(r.utf8()?, r.utf8()?),
            I::MaximumPacketSize => P::MaximumPacketSize(r.u32()?),
            I::WildcardSubscriptionAvailable => P::WildcardSubscriptionAvailable(read_flag(r, id)?),
            I::SubscriptionIdentifierAvailable => {
                P::SubscriptionIdentifierAvailable(read_flag(r, id)?)
            }
            I::SharedSubscriptionAvailable => P::SharedSubscriptionAvailable(read_flag(r, id)?),
        };
        if !property.value_is_valid() {
            return Err(r.error_at(DecodeErrorKind::InvalidPropertyValue(id), value_at));
        }
        Ok(property)
    }

    fn wire_len(&self, _version: ProtocolVersion) -> usize {
        use Property as P;
        1 + match *self {
            P::PayloadFormatIndicator(_)
            | P::RequestProblemInformation(_)
            | P::RequestResponseInformation(_)
            | P::MaximumQoS(_)
            | P::RetainAvailable(_)
            | P::WildcardSubscriptionAvailable(_)
            | P::SubscriptionIdentifierAvailable(_)
            | P::SharedSubscriptionAvailable(_) => 1,
            P::ServerKeepAlive(_)
            | P::ReceiveMaximum(_)
            | P::TopicAliasMaximum(_)
            | P::TopicAlias(_) => 2,
            P::MessageExpiryInterval(_)
            | P::SessionExpiryInterval(_)
            | P::WillDelayInterval(_)
            | P::MaximumPacketSize(_) => 4,
            P::SubscriptionIdentifier(n) => varint_len(n),
            P::ContentType(s)
            | P::ResponseTopic(s)
            | P::AssignedClientIdentifier(s)
            | P::AuthenticationMethod(s)
            | P::ResponseInformation(s)
            | P::ServerReference(s)
            | P::ReasonString(s) => 2 + s.len(),
            P::CorrelationData(b) | P::AuthenticationData(b) => 2 + b.len(),
            P::UserProperty(k, v) => 4 + k.len() + v.len(),
        }
    }

    // Inlined into the loop over a list, the writer's position stays in a register.
    #[inline(always)]
    fn write<S: Sink + ?Sized>(&self, _version: ProtocolVersion, out: &mut S) {
        use Property as P;
        out.put_u8(self.id() as u8);
        match *self {
            P::PayloadFormatIndicator(f) => out.put_u8(f as u8),
            P::MaximumQoS(q) => out.put_u8(q as u8),
            P::RequestProblemInformation(b)
            | P::RequestResponseInformation(b)
            | P::RetainAvailable(b)
            | P::WildcardSubscriptionAvailable(b)
            | P::SubscriptionIdentifierAvailable(b)
            | P::SharedSubscriptionAvailable(b) => out.put_u8(u8::from(b)),
            P::ServerKeepAlive(n)
            | P::ReceiveMaximum(n)
            | P::TopicAliasMaximum(n)
            | P::TopicAlias(n) => out.put_u16(n),
            P::MessageExpiryInterval(n)
            | P::SessionExpiryInterval(n)
            | P::WillDelayInterval(n)
            | P::MaximumPacketSize(n) => out.put_u32(n),
            P::SubscriptionIdentifier(n) => out.put_varint(n),
            P::ContentType(s)
            | P::ResponseTopic(s)
            | P::AssignedClientIdentifier(s)
            | P::AuthenticationMethod(s)
            | P::ResponseInformation(s)
            | P::ServerReference(s)
            | P::ReasonString(s) => out.put_str(s),
            P::CorrelationData(b) | P::AuthenticationData(b) => out.put_binary(b),
            P::UserProperty(k, v) => {
                out.put_str(k);
                out.put_str(v);
            }
        }
    }
}

/// Where a property list stands, which decides the properties it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    PubResponse,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl PropertyContext {
    /// A non-zero byte for the context, kept with wire bytes checked for it.
    const fn tag(self) -> u8 {
        self as u8 + 1
    }
}

impl PropertyId {
    /// True if the spec allows this property in `context` (MQTT 5.0 §2.2.2.2).
    pub(crate) const fn allowed_in(self, context: PropertyContext) -> bool {
        use PropertyContext as C;
        use PropertyId as I;
        match self {
            I::UserProperty => true,
            I::PayloadFormatIndicator
            | I::MessageExpiryInterval
            | I::ContentType
            | I::ResponseTopic
            | I::CorrelationData => matches!(context, C::Publish | C::Will),
            I::SubscriptionIdentifier => matches!(context, C::Publish | C::Subscribe),
            I::SessionExpiryInterval => matches!(context, C::Connect | C::ConnAck | C::Disconnect),
            I::AuthenticationMethod | I::AuthenticationData => {
                matches!(context, C::Connect | C::ConnAck | C::Auth)
            }
            I::RequestProblemInformation | I::RequestResponseInformation => {
                matches!(context, C::Connect)
            }
            I::WillDelayInterval => matches!(context, C::Will),
            I::ServerReference => matches!(context, C::ConnAck | C::Disconnect),
            I::ReasonString => !matches!(
                context,
                C::Connect | C::Will | C::Publish | C::Subscribe | C::Unsubscribe
            ),
            I::ReceiveMaximum | I::TopicAliasMaximum | I::MaximumPacketSize => {
                matches!(context, C::Connect | C::ConnAck)
            }
            I::TopicAlias => matches!(context, C::Publish),
            I::AssignedClientIdentifier
            | I::ServerKeepAlive
            | I::ResponseInformation
            | I::MaximumQoS
            | I::RetainAvailable
            | I::WildcardSubscriptionAvailable
            | I::SubscriptionIdentifierAvailable
            | I::SharedSubscriptionAvailable => matches!(context, C::ConnAck),
        }
    }

    /// True if the property may appear more than once in `context`.
    const fn may_repeat(self, context: PropertyContext) -> bool {
        matches!(self, Self::UserProperty)
            || matches!(
                (self, context),
                (Self::SubscriptionIdentifier, PropertyContext::Publish)
            )
    }
}

/// Checks one property against the ones seen before it in the same list.
#[derive(Default)]
struct PropertyChecker {
    seen: u64,
}

impl PropertyChecker {
    fn check(
        &mut self,
        property: &Property<'_>,
        context: PropertyContext,
    ) -> Result<(), DecodeErrorKind> {
        let id = property.id();
        if !id.allowed_in(context) {
            return Err(DecodeErrorKind::PropertyNotAllowed(id));
        }
        let bit = 1u64 << (id as u8);
        if self.seen & bit != 0 && !id.may_repeat(context) {
            return Err(DecodeErrorKind::DuplicateProperty(id));
        }
        self.seen |= bit;
        Ok(())
    }
}

/// The properties of a packet or a will: a borrowed list of [`Property`] with typed accessors.
///
/// Decoding validates the list once (identifiers, types, allowed in this packet, duplicates,
/// value ranges); reading it later cannot fail. User properties are kept, in order, however
/// many there are. Decoded properties (and [`Properties::from_wire`]) are the wire bytes,
/// which remember the packet they were checked for: encoded in that packet they are copied as
/// they are, in another they are checked again.
///
/// ```
/// use facteur_codec::{Properties, Property};
/// let list = [
///     Property::MessageExpiryInterval(60),
///     Property::UserProperty("unit", "celsius"),
/// ];
/// let props = Properties::from_slice(&list);
/// assert_eq!(props.message_expiry_interval(), Some(60));
/// assert_eq!(props.user_properties().next(), Some(("unit", "celsius")));
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Properties<'a>(List<'a, Property<'a>>);

impl core::fmt::Debug for Properties<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! accessors {
    ($( $(#[$doc:meta])* $fn:ident -> $ty:ty = $variant:ident; )*) => {
        $(
            $(#[$doc])*
            pub fn $fn(&self) -> Option<$ty> {
                self.iter().find_map(|p| match p {
                    Property::$variant(v) => Some(v),
                    _ => None,
                })
            }
        )*
    };
}

impl<'a> Properties<'a> {
    /// No properties.
    pub const EMPTY: Self = Self(List::EMPTY);

    /// Properties given by the caller, for encoding. They are checked when the packet is
    /// encoded or prepared ([`Publish::prepare`](crate::Publish::prepare)), and written one by
    /// one; decoded properties and [`Properties::from_wire`] are wire bytes already checked for
    /// their packet, written as one copy.
    pub const fn from_slice(list: &'a [Property<'a>]) -> Self {
        Self(List::from_slice(list))
    }

    /// Every property, in order.
    pub fn iter(&self) -> crate::ListIter<'a, Property<'a>> {
        self.0.iter()
    }

    /// True if there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The user properties (name, value), in order.
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.iter().filter_map(|p| match p {
            Property::UserProperty(k, v) => Some((k, v)),
            _ => None,
        })
    }

    /// The subscription identifiers (a PUBLISH from a server may carry several).
    pub fn subscription_identifiers(&self) -> impl Iterator<Item = u32> + 'a {
        self.iter().filter_map(|p| match p {
            Property::SubscriptionIdentifier(id) => Some(id),
            _ => None,
        })
    }

    accessors! {
        /// Payload Format Indicator (0x01).
        payload_format -> PayloadFormat = PayloadFormatIndicator;
        /// Message Expiry Interval in seconds (0x02).
        message_expiry_interval -> u32 = MessageExpiryInterval;
        /// Content Type (0x03).
        content_type -> &'a str = ContentType;
        /// Response Topic (0x08).
        response_topic -> &'a str = ResponseTopic;
        /// Correlation Data (0x09).
        correlation_data -> &'a [u8] = CorrelationData;
        /// The first Subscription Identifier (0x0B); see [`Self::subscription_identifiers`].
        subscription_identifier -> u32 = SubscriptionIdentifier;
        /// Session Expiry Interval in seconds (0x11).
        session_expiry_interval -> u32 = SessionExpiryInterval;
        /// Assigned Client Identifier (0x12).
        assigned_client_identifier -> &'a str = AssignedClientIdentifier;
        /// Server Keep Alive in seconds (0x13).
        server_keep_alive -> u16 = ServerKeepAlive;
        /// Authentication Method (0x15).
        authentication_method -> &'a str = AuthenticationMethod;
        /// Authentication Data (0x16).
        authentication_data -> &'a [u8] = AuthenticationData;
        /// Request Problem Information (0x17).
        request_problem_information -> bool = RequestProblemInformation;
        /// Will Delay Interval in seconds (0x18).
        will_delay_interval -> u32 = WillDelayInterval;
        /// Request Response Information (0x19).
        request_response_information -> bool = RequestResponseInformation;
        /// Response Information (0x1A).
        response_information -> &'a str = ResponseInformation;
        /// Server Reference (0x1C).
        server_reference -> &'a str = ServerReference;
        /// Reason String (0x1F).
        reason_string -> &'a str = ReasonString;
        /// Receive Maximum (0x21).
        receive_maximum -> u16 = ReceiveMaximum;
        /// Topic Alias Maximum (0x22).
        topic_alias_maximum -> u16 = TopicAliasMaximum;
        /// Topic Alias (0x23).
        topic_alias -> u16 = TopicAlias;
        /// Maximum QoS (0x24).
        maximum_qos -> QoS = MaximumQoS;
        /// Retain Available (0x25).
        retain_available -> bool = RetainAvailable;
        /// Maximum Packet Size (0x27).
        maximum_packet_size -> u32 = MaximumPacketSize;
        /// Wildcard Subscription Available (0x28).
        wildcard_subscription_available -> bool = WildcardSubscriptionAvailable;
        /// Subscription Identifier Available (0x29).
        subscription_identifier_available -> bool = SubscriptionIdentifierAvailable;
        /// Shared Subscription Available (0x2A).
        shared_subscription_available -> bool = SharedSubscriptionAvailable;
    }

    /// Reads a property section (length, then properties) and validates it for `context`.
    /// Before 5.0 there is no section and the result is empty.
    pub(crate) fn decode(
        r: &mut Reader<'a>,
        version: ProtocolVersion,
        context: PropertyContext,
    ) -> Result<Self, DecodeError> {
        if !version.is_v5() {
            return Ok(Self::EMPTY);
        }
        let len = r.varint()? as usize;
        let section = r.sub(len)?;
        Self::decode_contents(section, context)
    }

    /// Validates property contents (no length prefix) for `context`, keeping them borrowed.
    fn decode_contents(
        mut section: Reader<'a>,
        context: PropertyContext,
    ) -> Result<Self, DecodeError> {
        let bytes_start = section.clone().rest();
        let mut checker = PropertyChecker::default();
        while !section.is_empty() {
            let at = section.offset();
            let property = Property::read(&mut section, ProtocolVersion::V5)?;
            checker
                .check(&property, context)
                .map_err(|kind| section.error_at(kind, at))?;
        }
        Ok(Self(List::from_checked_wire(
            bytes_start,
            ProtocolVersion::V5,
            context.tag(),
        )))
    }

    /// Properties stored as wire bytes (what [`Properties::write_contents`] wrote), checked
    /// as the properties of a `packet` (every rule decoding applies; offsets in the error are
    /// within `bytes`). A store keeps a message's properties as bytes and rebuilds them with
    /// this, without an allocator.
    ///
    /// ```
    /// use facteur_codec::{PacketType, Properties, Property, SliceWriter};
    /// let list = [Property::ContentType("text/plain"), Property::UserProperty("k", "v")];
    /// let props = Properties::from_slice(&list);
    /// let mut stored = [0u8; 32];
    /// let mut w = SliceWriter::new(&mut stored);
    /// props.write_contents(&mut w);
    /// let n = w.written();
    /// assert_eq!(n, props.contents_len());
    /// let again = Properties::from_wire(&stored[..n], PacketType::Publish)?;
    /// assert_eq!(again, props);
    /// assert!(Properties::from_wire(&stored[..n], PacketType::PubAck).is_err());
    /// // None at all is valid for every packet.
    /// assert_eq!(Properties::from_wire(&[], PacketType::PingReq)?, Properties::EMPTY);
    /// # Ok::<(), facteur_codec::DecodeError>(())
    /// ```
    pub fn from_wire(bytes: &'a [u8], packet: crate::PacketType) -> Result<Self, DecodeError> {
        use crate::PacketType as T;
        use PropertyContext as C;
        if bytes.is_empty() {
            // No properties are valid anywhere: most messages have none.
            return Ok(Self::EMPTY);
        }
        let context = match packet {
            T::Connect => C::Connect,
            T::ConnAck => C::ConnAck,
            T::Publish => C::Publish,
            T::PubAck | T::PubRec | T::PubRel | T::PubComp => C::PubResponse,
            T::Subscribe => C::Subscribe,
            T::SubAck => C::SubAck,
            T::Unsubscribe => C::Unsubscribe,
            T::UnsubAck => C::UnsubAck,
            T::Disconnect => C::Disconnect,
            T::Auth => C::Auth,
            T::PingReq | T::PingResp => {
                return match bytes.is_empty() {
                    true => Ok(Self::EMPTY),
                    false => Err(DecodeError::new(
                        DecodeErrorKind::TrailingBytes(bytes.len()),
                        0,
                    )),
                }
            }
        };
        Self::decode_contents(Reader::new(bytes, 0), context)
    }

    /// The size of the properties on the wire, without the section's length prefix.
    pub fn contents_len(&self) -> usize {
        self.0.wire_len(ProtocolVersion::V5)
    }

    /// Writes the properties as they travel, without the section's length prefix; the sink
    /// must have [`Properties::contents_len`] bytes of room.
    pub fn write_contents<S: Sink + ?Sized>(&self, out: &mut S) {
        self.0.write(ProtocolVersion::V5, out);
    }

    /// Checks the list for `context` before encoding; returns the size of its contents.
    #[inline(always)]
    pub(crate) fn validate(&self, context: PropertyContext) -> Result<usize, crate::EncodeError> {
        // No properties, the common case outside PUBLISH: no call.
        if self.is_empty() {
            return Ok(0);
        }
        self.validate_list(context)
    }

    /// [`Self::validate`] for a list that is not empty.
    #[inline]
    fn validate_list(&self, context: PropertyContext) -> Result<usize, crate::EncodeError> {
        // Wire bytes validated for this very context need no second look; validated for
        // another packet (CONNECT's properties put into a PUBLISH), they are checked again.
        if let Some(bytes) = self
            .0
            .wire_bytes_checked_as(ProtocolVersion::V5, context.tag())
        {
            return Ok(bytes.len());
        }
        let mut checker = PropertyChecker::default();
        let mut len = 0usize;
        self.0.try_for_each(
            #[inline(always)]
            |property| {
                checker
                    .check(property, context)
                    .map_err(crate::EncodeError::Invalid)?;
                if !property.value_is_valid() {
                    return Err(crate::EncodeError::Invalid(
                        DecodeErrorKind::InvalidPropertyValue(property.id()),
                    ));
                }
                if property.longest_field() > usize::from(u16::MAX) {
                    return Err(crate::EncodeError::FieldTooLong);
                }
                len += property.wire_len(ProtocolVersion::V5);
                Ok(())
            },
        )?;
        if len > VARINT_MAX as usize {
            return Err(crate::EncodeError::PacketTooLarge);
        }
        Ok(len)
    }

    /// The size of the section (length prefix included) given its contents' size `len`.
    pub(crate) fn section_len(version: ProtocolVersion, len: usize) -> usize {
        if version.is_v5() {
            varint_len(len as u32) + len
        } else {
            0
        }
    }

    /// Writes the section (nothing before 5.0); `len` is what [`Self::validate`] returned.
    #[inline]
    pub(crate) fn write<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        len: usize,
        out: &mut S,
    ) {
        if version.is_v5() {
            out.put_varint(len as u32);
            if len > 0 {
                self.0.write(version, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8], context: PropertyContext) -> Result<Properties<'_>, DecodeError> {
        let mut r = Reader::new(bytes, 0);
        let p = Properties::decode(&mut r, ProtocolVersion::V5, context)?;
        r.finish()?;
        Ok(p)
    }

    #[test]
    fn remembering_the_checked_packet_costs_no_size() {
        // Every packet holds properties: they stay three words (a slice and a tag).
        assert_eq!(
            core::mem::size_of::<Properties<'_>>(),
            3 * core::mem::size_of::<usize>()
        );
    }

    #[test]
    fn every_identifier_round_trips_through_its_type() {
        let all = [
            Property::PayloadFormatIndicator(PayloadFormat::Utf8),
            Property::MessageExpiryInterval(7),
            Property::ContentType("c"),
            Property::ResponseTopic("r"),
            Property::CorrelationData(b"x"),
            Property::SubscriptionIdentifier(300),
            Property::SessionExpiryInterval(1),
            Property::AssignedClientIdentifier("id"),
            Property::ServerKeepAlive(9),
            Property::AuthenticationMethod("m"),
            Property::AuthenticationData(b"d"),
            Property::RequestProblemInformation(true),
            Property::WillDelayInterval(3),
            Property::RequestResponseInformation(false),
            Property::ResponseInformation("ri"),
            Property::ServerReference("sr"),
            Property::ReasonString("why"),
            Property::ReceiveMaximum(5),
            Property::TopicAliasMaximum(6),
            Property::TopicAlias(7),
            Property::MaximumQoS(QoS::AtLeastOnce),
            Property::RetainAvailable(true),
            Property::UserProperty("k", "v"),
            Property::MaximumPacketSize(1024),
            Property::WildcardSubscriptionAvailable(false),
            Property::SubscriptionIdentifierAvailable(true),
            Property::SharedSubscriptionAvailable(true),
        ];
        assert_eq!(all.len(), 27, "MQTT 5.0 defines 27 properties");
        for p in all {
            let mut buf = [0u8; 16];
            let mut w = crate::SliceWriter::new(&mut buf);
            p.write(ProtocolVersion::V5, &mut w);
            let n = w.written();
            assert_eq!(n, p.wire_len(ProtocolVersion::V5));
            let mut r = Reader::new(&buf[..n], 0);
            assert_eq!(Property::read(&mut r, ProtocolVersion::V5).unwrap(), p);
            assert!(r.is_empty());
            assert_eq!(PropertyId::from_u8(p.id() as u8), Some(p.id()));
        }
    }

    #[test]
    fn duplicates_are_a_protocol_error_except_user_properties() {
        // Message expiry twice.
        let twice = [10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2];
        let err = decode(&twice, PropertyContext::Publish).unwrap_err();
        assert_eq!(
            err,
            DecodeError::new(
                DecodeErrorKind::DuplicateProperty(PropertyId::MessageExpiryInterval),
                6
            )
        );
        assert_eq!(err.reason_code(), crate::ReasonCode::ProtocolError);
        let users = [
            14, 0x26, 0, 1, b'a', 0, 1, b'b', 0x26, 0, 1, b'a', 0, 1, b'c',
        ];
        let props = decode(&users, PropertyContext::Publish).unwrap();
        assert_eq!(props.user_properties().count(), 2);
    }

    #[test]
    fn property_outside_its_packet_is_malformed() {
        let err = decode(&[3, 0x21, 0, 5], PropertyContext::Publish).unwrap_err();
        assert_eq!(
            err.kind,
            DecodeErrorKind::PropertyNotAllowed(PropertyId::ReceiveMaximum)
        );
        assert_eq!(err.offset, 1);
        assert_eq!(err.reason_code(), crate::ReasonCode::MalformedPacket);
    }

    #[test]
    fn unknown_identifier_and_bad_values() {
        assert_eq!(
            decode(&[2, 0x05, 0], PropertyContext::Publish)
                .unwrap_err()
                .kind,
            DecodeErrorKind::UnknownProperty(0x05)
        );
        assert_eq!(
            decode(&[3, 0x21, 0, 0], PropertyContext::Connect)
                .unwrap_err()
                .kind,
            DecodeErrorKind::InvalidPropertyValue(PropertyId::ReceiveMaximum)
        );
        assert_eq!(
            decode(&[2, 0x01, 2], PropertyContext::Publish)
                .unwrap_err()
                .kind,
            DecodeErrorKind::InvalidPropertyValue(PropertyId::PayloadFormatIndicator)
        );
        assert_eq!(
            decode(&[2, 0x24, 2], PropertyContext::ConnAck)
                .unwrap_err()
                .kind,
            DecodeErrorKind::InvalidPropertyValue(PropertyId::MaximumQoS)
        );
        // A section length running past the packet.
        assert_eq!(
            decode(&[9, 0x01, 1], PropertyContext::Publish)
                .unwrap_err()
                .kind,
            DecodeErrorKind::Truncated
        );
    }

    #[test]
    fn subscription_identifier_may_repeat_in_publish_only() {
        let two = [4, 0x0B, 1, 0x0B, 2];
        assert_eq!(
            decode(&two, PropertyContext::Publish)
                .unwrap()
                .subscription_identifiers()
                .sum::<u32>(),
            3
        );
        assert_eq!(
            decode(&two, PropertyContext::Subscribe).unwrap_err().kind,
            DecodeErrorKind::DuplicateProperty(PropertyId::SubscriptionIdentifier)
        );
        assert_eq!(
            decode(&[2, 0x0B, 0], PropertyContext::Publish)
                .unwrap_err()
                .kind,
            DecodeErrorKind::InvalidPropertyValue(PropertyId::SubscriptionIdentifier)
        );
    }
}
