//! MQTT 5 properties kept as wire bytes.
//!
//! A stored message keeps its properties as they travel ([`Properties::write_contents`]) and
//! rebuilds them with [`Properties::from_wire`] when it is encoded. Two of them are kept in
//! fixed slots at the front, so they can be rewritten in place without a list to rebuild:
//!
//! * a Topic Alias slot (3 bytes, for outgoing messages only): the session writes the alias
//!   it assigned there and sends the slot, or skips it;
//! * a Message Expiry Interval slot (5 bytes, when the message has one): rewritten with the
//!   time left before every send.
//!
//! Any Topic Alias, Message Expiry Interval or Will Delay Interval in the properties given is
//! left out of the rest: the session assigns its own aliases, and the expiry and will delay
//! are kept apart.

use core::slice;

use facteur_codec::{
    Encode, PacketType, Properties, Property, PropertyId, ProtocolVersion, Publish, Sink,
    SliceWriter,
};

/// The size of the Topic Alias slot.
pub(crate) const ALIAS_SLOT: usize = 3;
/// The size of the Message Expiry Interval slot.
pub(crate) const EXPIRY_SLOT: usize = 5;

/// Whether `p` is stored with the others (and not in a slot, or dropped).
fn kept(p: &Property<'_>) -> bool {
    !matches!(
        p.id(),
        PropertyId::TopicAlias | PropertyId::MessageExpiryInterval | PropertyId::WillDelayInterval
    )
}

/// The wire size of one property.
fn one_len(p: Property<'_>) -> usize {
    Properties::from_slice(slice::from_ref(&p)).contents_len()
}

/// True if every kept property may be encoded in a PUBLISH (allowed there, valid value,
/// fields that fit their 16-bit lengths). Duplicates are caught by [`layout`].
fn encodable(props: &Properties<'_>) -> bool {
    props.iter().filter(kept).all(|p| {
        let one = [p];
        let publish = Publish {
            properties: Properties::from_slice(&one),
            ..Publish::new("t", b"")
        };
        publish.encoded_len(ProtocolVersion::V5).is_ok()
    })
}

/// How the stored properties of one message are laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// A Topic Alias slot comes first.
    pub(crate) alias_slot: bool,
    /// The Message Expiry Interval (its slot follows the alias slot).
    pub(crate) expiry: Option<u32>,
    /// The size of the kept properties after the slots.
    pub(crate) rest: usize,
}

impl Layout {
    /// The size of everything stored.
    pub(crate) fn len(&self) -> usize {
        self.slots() + self.rest
    }

    fn slots(&self) -> usize {
        usize::from(self.alias_slot) * ALIAS_SLOT + self.expiry.map_or(0, |_| EXPIRY_SLOT)
    }
}

/// The layout of `props` with `expiry` (None for properties that cannot be sent in a
/// PUBLISH).
pub(crate) fn layout(
    props: &Properties<'_>,
    expiry: Option<u32>,
    alias_slot: bool,
) -> Option<Layout> {
    if !encodable(props) {
        return None;
    }
    let rest = props.iter().filter(kept).map(one_len).sum();
    Some(Layout {
        alias_slot,
        expiry,
        rest,
    })
}

/// Writes `props` as `layout` says into `out` (of `layout.len()` bytes).
pub(crate) fn write(out: &mut [u8], props: &Properties<'_>, layout: Layout) {
    let mut w = SliceWriter::new(out);
    if layout.alias_slot {
        // Alias 1 until the session writes the one it assigns.
        w.put_slice(&[PropertyId::TopicAlias as u8, 0, 1]);
    }
    if let Some(secs) = layout.expiry {
        w.put_u8(PropertyId::MessageExpiryInterval as u8);
        w.put_slice(&secs.to_be_bytes());
    }
    for p in props.iter().filter(kept) {
        Properties::from_slice(slice::from_ref(&p)).write_contents(&mut w);
    }
}

/// True if `stored` (what [`write`] wrote, slots included) is a valid PUBLISH property list:
/// no duplicates.
pub(crate) fn valid(stored: &[u8]) -> bool {
    Properties::from_wire(stored, PacketType::Publish).is_ok()
}

/// The properties stored as `bytes` (checked with [`valid`] when stored).
pub(crate) fn rebuild(bytes: &[u8]) -> Properties<'_> {
    // Cannot fail: checked when stored.
    Properties::from_wire(bytes, PacketType::Publish).unwrap_or(Properties::EMPTY)
}

/// Rewrites the slots at the front of `stored`: the alias (if there is a slot and `alias`
/// is given) and the expiry (if there is a slot and `expiry` is given).
pub(crate) fn stamp(stored: &mut [u8], alias_slot: bool, alias: Option<u16>, expiry: Option<u32>) {
    let mut at = 0;
    if alias_slot {
        if let Some(alias) = alias {
            stored[1..ALIAS_SLOT].copy_from_slice(&alias.to_be_bytes());
        }
        at = ALIAS_SLOT;
    }
    if let (Some(secs), Some(slot)) = (expiry, stored.get_mut(at..at + EXPIRY_SLOT)) {
        if slot[0] == PropertyId::MessageExpiryInterval as u8 {
            slot[1..].copy_from_slice(&secs.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_rest_round_trip() {
        let list = [
            Property::TopicAlias(9),
            Property::UserProperty("k", "v"),
            Property::MessageExpiryInterval(60),
            Property::ContentType("t"),
        ];
        let props = Properties::from_slice(&list);
        let layout = layout(&props, Some(60), true).unwrap();
        assert_eq!(layout.len(), 3 + 5 + 7 + 4);
        let mut out = [0u8; 19];
        write(&mut out, &props, layout);
        assert!(valid(&out[ALIAS_SLOT..]));
        stamp(&mut out, true, Some(2), Some(59));
        assert_eq!(
            out,
            [0x23, 0, 2, 0x02, 0, 0, 0, 59, 0x26, 0, 1, b'k', 0, 1, b'v', 0x03, 0, 1, b't']
        );
        let again = rebuild(&out);
        assert_eq!(again.topic_alias(), Some(2));
        assert_eq!(again.message_expiry_interval(), Some(59));
        assert_eq!(again.content_type(), Some("t"));
    }

    #[test]
    fn refuses_what_a_publish_cannot_carry() {
        let list = [Property::SessionExpiryInterval(1)];
        assert!(layout(&Properties::from_slice(&list), None, false).is_none());
        let twice = [Property::ContentType("a"), Property::ContentType("b")];
        let props = Properties::from_slice(&twice);
        let layout = layout(&props, None, false).unwrap();
        let mut out = [0u8; 8];
        write(&mut out, &props, layout);
        assert!(!valid(&out));
    }
}
