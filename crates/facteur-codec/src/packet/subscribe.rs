//! SUBSCRIBE (§3.8) and UNSUBSCRIBE (§3.10).

use super::{
    check_field, decode_id_and_properties, plan_id_and_properties, write_id_properties_list, Plan,
};
use crate::list::{Item, Sealed};
use crate::property::PropertyContext;
use crate::read::Reader;
use crate::write::{Sink, SinkExt};
use crate::{DecodeError, DecodeErrorKind, EncodeError, List, Properties, ProtocolVersion, QoS};

/// What a subscriber wants done with retained messages when it subscribes (5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// Send retained messages at subscribe time.
    #[default]
    SendOnSubscribe = 0,
    /// Send them only if the subscription did not exist.
    SendIfNew = 1,
    /// Never send them at subscribe time.
    DoNotSend = 2,
}

/// The options of one subscription. Before 5.0 only `qos` exists; the others are not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// The highest QoS the subscriber wants.
    pub qos: QoS,
    /// Do not send this client its own messages (5.0).
    pub no_local: bool,
    /// Keep the retain flag as published when forwarding (5.0).
    pub retain_as_published: bool,
    /// Retained messages at subscribe time (5.0).
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with this QoS and 5.0 defaults for the rest.
    pub const fn qos(qos: QoS) -> Self {
        Self {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendOnSubscribe,
        }
    }

    #[inline]
    fn to_byte(self, version: ProtocolVersion) -> u8 {
        let mut byte = self.qos as u8;
        if version.is_v5() {
            byte |= u8::from(self.no_local) << 2
                | u8::from(self.retain_as_published) << 3
                | (self.retain_handling as u8) << 4;
        }
        byte
    }

    fn from_byte(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeErrorKind> {
        let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
        if byte & reserved != 0 {
            return Err(DecodeErrorKind::ReservedBitSet);
        }
        let qos = QoS::from_u8(byte & 0x03).ok_or(DecodeErrorKind::InvalidQoS)?;
        let retain_handling = match (byte >> 4) & 0x03 {
            0 => RetainHandling::SendOnSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeErrorKind::InvalidRetainHandling),
        };
        Ok(Self {
            qos,
            no_local: byte & 0x04 != 0,
            retain_as_published: byte & 0x08 != 0,
            retain_handling,
        })
    }
}

/// One topic filter of a SUBSCRIBE with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subscription<'a> {
    /// The topic filter (wildcards allowed; `$share/{group}/...` for shared subscriptions).
    pub filter: &'a str,
    /// Its options.
    pub options: SubscriptionOptions,
}

impl<'a> Subscription<'a> {
    /// A subscription to `filter` at `qos`.
    pub const fn new(filter: &'a str, qos: QoS) -> Self {
        Self {
            filter,
            options: SubscriptionOptions::qos(qos),
        }
    }
}

fn read_filter<'a>(r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
    let at = r.offset();
    let filter = r.utf8()?;
    facteur_topic::TopicFilter::new(filter)
        .map_err(|e| r.error_at(DecodeErrorKind::InvalidTopicFilter(e), at))?;
    Ok(filter)
}

#[inline]
fn check_filter(filter: &str) -> Result<usize, EncodeError> {
    facteur_topic::TopicFilter::new(filter)
        .map_err(|e| EncodeError::Invalid(DecodeErrorKind::InvalidTopicFilter(e)))?;
    check_field(filter.len())
}

impl Sealed for Subscription<'_> {}

impl<'a> Item<'a> for Subscription<'a> {
    fn read(r: &mut Reader<'a>, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let filter = read_filter(r)?;
        let at = r.offset();
        let options = SubscriptionOptions::from_byte(r.u8()?, version)
            .map_err(|kind| r.error_at(kind, at))?;
        Ok(Self { filter, options })
    }

    fn wire_len(&self, _version: ProtocolVersion) -> usize {
        2 + self.filter.len() + 1
    }

    #[inline]
    fn write<S: Sink + ?Sized>(&self, version: ProtocolVersion, out: &mut S) {
        out.put_str(self.filter);
        out.put_u8(self.options.to_byte(version));
    }
}

impl Sealed for &str {}

/// A topic filter of an UNSUBSCRIBE.
impl<'a> Item<'a> for &'a str {
    fn read(r: &mut Reader<'a>, _version: ProtocolVersion) -> Result<Self, DecodeError> {
        read_filter(r)
    }

    fn wire_len(&self, _version: ProtocolVersion) -> usize {
        2 + self.len()
    }

    #[inline]
    fn write<S: Sink + ?Sized>(&self, _version: ProtocolVersion, out: &mut S) {
        out.put_str(self);
    }
}

/// Reads a non-empty list of items filling the rest of the packet.
fn decode_items<'a, T: Item<'a>>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
) -> Result<List<'a, T>, DecodeError> {
    if r.is_empty() {
        return Err(r.error(DecodeErrorKind::NoTopicFilters));
    }
    let bytes = r.clone().rest();
    while !r.is_empty() {
        T::read(r, version)?;
    }
    Ok(List::from_validated_wire(bytes, version))
}

/// Sizes a non-empty list of filters, checking each: one pass over the caller's items.
#[inline]
fn plan_items<'a, T: Item<'a>>(
    list: &List<'a, T>,
    version: ProtocolVersion,
    filter_of: impl Fn(&T) -> &str,
) -> Result<usize, EncodeError> {
    if list.is_empty() {
        return Err(EncodeError::Invalid(DecodeErrorKind::NoTopicFilters));
    }
    if let Some(bytes) = list.wire_bytes(version) {
        return Ok(bytes.len());
    }
    if let Some(items) = list.as_slice() {
        if list.is_checked_slice() {
            // Checked when the packet was made (`Subscribe::checked`).
            return Ok(items.iter().map(|item| item.wire_len(version)).sum());
        }
        // The caller's filters, checked in one loop; only when one is refused (or starts
        // with `$`) are they checked one by one, for the error.
        if facteur_topic::all_plain_filters_valid(items.iter().map(&filter_of)) {
            return Ok(items.iter().map(|item| item.wire_len(version)).sum());
        }
    }
    let mut len = 0;
    list.try_for_each(|item| {
        check_filter(filter_of(item))?;
        len += item.wire_len(version);
        Ok(())
    })?;
    Ok(len)
}

/// A request to subscribe to one or more topic filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// Packet identifier (non-zero), echoed by SUBACK.
    pub packet_id: u16,
    /// SUBSCRIBE properties (5.0): subscription identifier and user properties.
    pub properties: Properties<'a>,
    /// The filters (at least one).
    pub subscriptions: List<'a, Subscription<'a>>,
}

impl<'a> Subscribe<'a> {
    /// A SUBSCRIBE of these subscriptions.
    pub const fn new(packet_id: u16, subscriptions: &'a [Subscription<'a>]) -> Self {
        Self {
            packet_id,
            properties: Properties::EMPTY,
            subscriptions: List::from_slice(subscriptions),
        }
    }

    /// A SUBSCRIBE of these subscriptions, their filters checked now rather than each time
    /// the packet is encoded (as a client checks what it is asked to subscribe to before it
    /// builds the packet).
    ///
    /// ```
    /// use facteur_codec::{Encode, ProtocolVersion, QoS, Subscribe, Subscription};
    /// let subs = [Subscription::new("maison/+/temperature", QoS::AtLeastOnce)];
    /// let subscribe = Subscribe::checked(1, &subs)?;
    /// let mut out = [0u8; 32];
    /// let n = subscribe.encode(ProtocolVersion::V3_1_1, &mut out)?;
    /// assert_eq!(n, 27);
    /// let bad = [Subscription::new("maison/#/temperature", QoS::AtLeastOnce)];
    /// assert!(Subscribe::checked(2, &bad).is_err());
    /// # Ok::<(), facteur_codec::EncodeError>(())
    /// ```
    ///
    /// # Errors
    /// As encoding would: no subscription, a filter that is not one, or one too long.
    pub fn checked(
        packet_id: u16,
        subscriptions: &'a [Subscription<'a>],
    ) -> Result<Self, EncodeError> {
        plan_items(&List::from_slice(subscriptions), ProtocolVersion::V5, |s| {
            s.filter
        })?;
        Ok(Self {
            packet_id,
            properties: Properties::EMPTY,
            subscriptions: List::from_checked_slice(subscriptions),
        })
    }

    pub(crate) fn decode(
        r: &mut Reader<'a>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (packet_id, properties) =
            decode_id_and_properties(r, version, PropertyContext::Subscribe)?;
        let subscriptions = decode_items(r, version)?;
        Ok(Self {
            packet_id,
            properties,
            subscriptions,
        })
    }

    #[inline]
    pub(crate) fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError> {
        let list_len = plan_items(&self.subscriptions, version, |s| s.filter)?;
        plan_id_and_properties(
            self.packet_id,
            &self.properties,
            version,
            PropertyContext::Subscribe,
            list_len,
        )
    }

    #[inline]
    pub(crate) fn write<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        plan: &Plan,
        out: &mut S,
    ) {
        write_id_properties_list(
            self.packet_id,
            &self.properties,
            &self.subscriptions,
            version,
            plan,
            out,
        );
    }
}

/// A request to remove one or more subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    /// Packet identifier (non-zero), echoed by UNSUBACK.
    pub packet_id: u16,
    /// UNSUBSCRIBE properties (5.0): user properties.
    pub properties: Properties<'a>,
    /// The filters to remove (at least one).
    pub filters: List<'a, &'a str>,
}

impl<'a> Unsubscribe<'a> {
    /// An UNSUBSCRIBE of these filters.
    pub const fn new(packet_id: u16, filters: &'a [&'a str]) -> Self {
        Self {
            packet_id,
            properties: Properties::EMPTY,
            filters: List::from_slice(filters),
        }
    }

    pub(crate) fn decode(
        r: &mut Reader<'a>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (packet_id, properties) =
            decode_id_and_properties(r, version, PropertyContext::Unsubscribe)?;
        let filters = decode_items(r, version)?;
        Ok(Self {
            packet_id,
            properties,
            filters,
        })
    }

    pub(crate) fn plan(&self, version: ProtocolVersion) -> Result<Plan, EncodeError> {
        let list_len = plan_items(&self.filters, version, |f| f)?;
        plan_id_and_properties(
            self.packet_id,
            &self.properties,
            version,
            PropertyContext::Unsubscribe,
            list_len,
        )
    }

    #[inline]
    pub(crate) fn write<S: Sink + ?Sized>(
        &self,
        version: ProtocolVersion,
        plan: &Plan,
        out: &mut S,
    ) {
        write_id_properties_list(
            self.packet_id,
            &self.properties,
            &self.filters,
            version,
            plan,
            out,
        );
    }
}
