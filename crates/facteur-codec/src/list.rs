//! Lists inside packets (properties, subscriptions, filters, reason codes), one type for both
//! directions: a decoded packet borrows the validated wire bytes and reads items on demand; a
//! packet built for encoding borrows the caller's slice. Either way nothing is allocated and no
//! item is dropped, however many there are.

use crate::read::Reader;
use crate::write::Sink;
use crate::{DecodeError, ProtocolVersion};

mod sealed {
    pub trait Sealed {}
}

/// An element of a [`List`]: something with a wire form. Sealed: implemented by
/// [`Property`](crate::Property), [`Subscription`](crate::Subscription), `&str` (topic filters)
/// and [`ReasonCode`](crate::ReasonCode).
pub trait Item<'a>: Copy + sealed::Sealed {
    #[doc(hidden)]
    fn read(reader: &mut Reader<'a>, version: ProtocolVersion) -> Result<Self, DecodeError>;
    #[doc(hidden)]
    fn wire_len(&self, version: ProtocolVersion) -> usize;
    #[doc(hidden)]
    fn write<S: Sink + ?Sized>(&self, version: ProtocolVersion, out: &mut S);
}

pub(crate) use sealed::Sealed;

/// A sequence of items, borrowed either from a decoded packet or from the caller.
///
/// ```
/// use facteur_codec::{List, Property};
/// let props = [Property::UserProperty("k", "v"), Property::ContentType("text/plain")];
/// let list = List::from_slice(&props);
/// assert_eq!(list.iter().count(), 2);
/// ```
#[derive(Clone, Copy)]
pub struct List<'a, T> {
    repr: Repr<'a, T>,
}

#[derive(Clone, Copy)]
enum Repr<'a, T> {
    /// Wire bytes that decoding has already validated item by item.
    Wire {
        bytes: &'a [u8],
        version: ProtocolVersion,
        /// What the owner checked the items as, beyond reading them (properties: the packet
        /// they were checked for); 0 when nothing more. Kept here, inside the enum's padding,
        /// so that no packet grows for it.
        checked_as: u8,
    },
    /// The caller's items; `checked` when a packet constructor has already checked them
    /// (`Subscribe::checked`), so that encoding need not again.
    Slice { items: &'a [T], checked: bool },
}

impl<'a, T: Item<'a>> List<'a, T> {
    /// The empty list.
    pub const EMPTY: Self = Self {
        repr: Repr::Slice {
            items: &[],
            checked: false,
        },
    };

    /// A list of the caller's items, for encoding.
    pub const fn from_slice(items: &'a [T]) -> Self {
        Self {
            repr: Repr::Slice {
                items,
                checked: false,
            },
        }
    }

    /// A list of the caller's items that the packet's constructor has just checked.
    pub(crate) const fn from_checked_slice(items: &'a [T]) -> Self {
        Self {
            repr: Repr::Slice {
                items,
                checked: true,
            },
        }
    }

    /// True if a packet constructor checked these items ([`List::from_checked_slice`]).
    #[inline]
    pub(crate) fn is_checked_slice(&self) -> bool {
        matches!(self.repr, Repr::Slice { checked: true, .. })
    }

    /// Wraps wire bytes that the caller has read item by item without error.
    pub(crate) const fn from_validated_wire(bytes: &'a [u8], version: ProtocolVersion) -> Self {
        Self::from_checked_wire(bytes, version, 0)
    }

    /// Wraps wire bytes read item by item without error and checked as `checked_as` too.
    pub(crate) const fn from_checked_wire(
        bytes: &'a [u8],
        version: ProtocolVersion,
        checked_as: u8,
    ) -> Self {
        Self {
            repr: Repr::Wire {
                bytes,
                version,
                checked_as,
            },
        }
    }

    /// The items, in order.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter { repr: self.repr }
    }

    /// True if there are no items.
    #[inline]
    pub fn is_empty(&self) -> bool {
        match self.repr {
            Repr::Wire { bytes, .. } => bytes.is_empty(),
            Repr::Slice { items, .. } => items.is_empty(),
        }
    }

    /// The caller's items, when the list is made of them.
    #[inline]
    pub(crate) fn as_slice(&self) -> Option<&'a [T]> {
        match self.repr {
            Repr::Slice { items, .. } => Some(items),
            Repr::Wire { .. } => None,
        }
    }

    /// The wire bytes when this list was decoded, which an encoder can copy as they are.
    pub(crate) fn wire_bytes(&self, version: ProtocolVersion) -> Option<&'a [u8]> {
        match self.repr {
            Repr::Wire {
                bytes, version: v, ..
            } if v == version => Some(bytes),
            _ => None,
        }
    }

    /// The wire bytes when this list was decoded in `version` and checked as `checked_as`.
    #[inline]
    pub(crate) fn wire_bytes_checked_as(
        &self,
        version: ProtocolVersion,
        checked_as: u8,
    ) -> Option<&'a [u8]> {
        match self.repr {
            Repr::Wire {
                bytes,
                version: v,
                checked_as: c,
            } if v == version && c == checked_as => Some(bytes),
            _ => None,
        }
    }

    /// Calls `f` on every item, in order, until it fails. A caller's slice is visited by
    /// reference: copying each item out first costs a store-forwarding stall per item.
    #[inline]
    pub(crate) fn try_for_each<E>(&self, mut f: impl FnMut(&T) -> Result<(), E>) -> Result<(), E> {
        match self.repr {
            Repr::Slice { items, .. } => items.iter().try_for_each(f),
            Repr::Wire { .. } => self.iter().try_for_each(|item| f(&item)),
        }
    }

    /// The size of the items on the wire in `version`.
    pub(crate) fn wire_len(&self, version: ProtocolVersion) -> usize {
        match self.wire_bytes(version) {
            Some(bytes) => bytes.len(),
            None => self.iter().map(|item| item.wire_len(version)).sum(),
        }
    }

    /// Writes the items as `version` spells them.
    #[inline]
    pub(crate) fn write<S: Sink + ?Sized>(&self, version: ProtocolVersion, out: &mut S) {
        match self.repr {
            Repr::Wire {
                bytes, version: v, ..
            } if v == version => out.put_slice(bytes),
            Repr::Slice { items, .. } => items.iter().for_each(|item| item.write(version, out)),
            Repr::Wire { .. } => self.iter().for_each(|item| item.write(version, out)),
        }
    }
}

/// Iterates over a [`List`].
#[derive(Clone)]
pub struct ListIter<'a, T> {
    repr: Repr<'a, T>,
}

impl<'a, T: Item<'a>> Iterator for ListIter<'a, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.repr {
            Repr::Wire { bytes, version, .. } => {
                if bytes.is_empty() {
                    return None;
                }
                let mut reader = Reader::new(bytes, 0);
                // The bytes were validated when the packet was decoded, so this read succeeds;
                // should it not, the iteration ends rather than panicking.
                match T::read(&mut reader, *version) {
                    Ok(item) => {
                        *bytes = reader.rest();
                        Some(item)
                    }
                    Err(_) => {
                        *bytes = &[];
                        None
                    }
                }
            }
            Repr::Slice { items, .. } => {
                let (first, rest) = items.split_first()?;
                *items = rest;
                Some(*first)
            }
        }
    }
}

impl<'a, T: Item<'a>> IntoIterator for List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T: Item<'a>> IntoIterator for &List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T: Item<'a> + PartialEq> PartialEq for List<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a, T: Item<'a> + Eq> Eq for List<'a, T> {}

impl<'a, T: Item<'a> + core::fmt::Debug> core::fmt::Debug for List<'a, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: Item<'a>> Default for List<'a, T> {
    fn default() -> Self {
        Self::EMPTY
    }
}
