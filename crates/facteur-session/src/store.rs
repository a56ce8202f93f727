//! Where a session keeps its state: one trait, [`Store`], naming the containers, with a
//! fixed-capacity implementation ([`HeaplessStore`], no allocator) and a growable one
//! ([`AllocStore`], with the `alloc` feature). The state machine is written once, generic over
//! the store.
//!
//! A broker keeps one session per client, most of them idle most of the time, so the
//! growable containers are one pointer wide until first used ([`SlimVec`], [`SlimDeque`],
//! [`SlimOption`]), and [`Session::release_idle_memory`](crate::Session::release_idle_memory)
//! gives back the allocations of those that are empty again.

use core::ops::{Deref, DerefMut};

use facteur_codec::{QoS, ReasonCode};

use crate::{Event, Instant, MessageId};

/// Owned bytes: a message's topic, properties and payload, or a topic alone.
pub trait OwnedBytes: AsRef<[u8]> + AsMut<[u8]> + Sized {
    /// `first` followed by `second`, or `None` if they do not fit.
    fn from_parts(first: &[u8], second: &[u8]) -> Option<Self>;
    /// `len` bytes, zeroed then handed to `fill`, or `None` if `len` bytes do not fit.
    fn filled(len: usize, fill: impl FnOnce(&mut [u8])) -> Option<Self>;
}

/// How a store keeps an outgoing message's payload: in the message's own buffer, after its
/// topic and properties ([`Inline`], the fixed-capacity choice), or apart, as a value that
/// can be shared with other sessions without a copy (`bytes::Bytes` in [`AllocStore`]).
pub trait Payload: Sized {
    /// True if the payload is kept in the message's buffer.
    const INLINE: bool;
    /// A copy of `payload` (nothing for [`Inline`]: the session copies it into the
    /// message's buffer), or `None` if it does not fit.
    fn copy_of(payload: &[u8]) -> Option<Self>;
    /// The payload: this value's bytes, or `inline` (the message's buffer after its topic and
    /// properties) for an inline store.
    fn bytes<'a>(&'a self, inline: &'a [u8]) -> &'a [u8];
}

/// Payloads kept in the message's own buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inline;

impl Payload for Inline {
    const INLINE: bool = true;

    fn copy_of(_: &[u8]) -> Option<Self> {
        Some(Inline)
    }

    fn bytes<'a>(&'a self, inline: &'a [u8]) -> &'a [u8] {
        inline
    }
}

/// An ordered sequence with room for a bounded or unbounded number of items: a slice that can
/// grow at the end and shrink anywhere, keeping order.
pub trait Seq<T>: Default + Deref<Target = [T]> + DerefMut {
    /// Appends `item`, or gives it back if the sequence is full.
    fn try_push(&mut self, item: T) -> Result<(), T>;
    /// Removes and returns the item at `index`, shifting the later ones down.
    ///
    /// # Panics
    /// If `index` is out of bounds.
    fn remove_at(&mut self, index: usize) -> T;
    /// How many items it can hold at most (`usize::MAX` when it grows).
    fn max_len(&self) -> usize;
    /// Frees the memory the sequence allocated, if it is empty: it then takes no more room
    /// than a new one, and allocates again on the next push. Nothing to do for a
    /// fixed-capacity sequence (the default).
    fn release_if_empty(&mut self) {}
}

/// A first-in first-out queue, bounded or not.
pub trait Fifo<T>: Default {
    /// Appends `item` at the back, or gives it back if the queue is full.
    fn push_back(&mut self, item: T) -> Result<(), T>;
    /// Removes the item at the front.
    fn pop_front(&mut self) -> Option<T>;
    /// The item at the front.
    fn front(&self) -> Option<&T>;
    /// How many items are queued.
    fn len(&self) -> usize;
    /// True if nothing is queued.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The item at the front, mutably.
    fn front_mut(&mut self) -> Option<&mut T>;
    /// Calls `visit` on every item, front to back.
    fn for_each_item(&self, visit: impl FnMut(&T));
    /// Keeps the items for which `keep` is true, in order (by one turn of the queue).
    fn retain_in_order(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for _ in 0..self.len() {
            let Some(item) = self.pop_front() else {
                return;
            };
            if keep(&item) {
                // Cannot fail: one was just taken out.
                let _ = self.push_back(item);
            }
        }
    }
    /// Frees the memory the queue allocated, if it is empty: it then takes no more room than
    /// a new one, and allocates again on the next push. Nothing to do for a fixed-capacity
    /// queue (the default).
    fn release_if_empty(&mut self) {}
}

/// The outgoing messages in flight: a [`Fifo`] in the order first sent that can also be
/// read, changed and taken from anywhere. Its front is where it is cheapest: acknowledgements
/// come in the order sent, so the one acknowledged is nearly always the oldest, and taking it
/// moves nothing else (a sequence that shifts its items down would move every later message
/// at every acknowledgement).
pub trait Window<T>: Fifo<T> {
    /// The items in order: the first slice, then the second (a ring's two halves).
    fn as_slices(&self) -> (&[T], &[T]);
    /// The items in order, mutably: the first slice, then the second.
    fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]);
    /// How many items it can hold at most (`usize::MAX` when it grows).
    fn max_len(&self) -> usize;

    /// The item at `index` (0 is the front).
    fn get(&self, index: usize) -> Option<&T> {
        let (first, second) = self.as_slices();
        match index.checked_sub(first.len()) {
            None => first.get(index),
            Some(rest) => second.get(rest),
        }
    }

    /// The item at `index` (0 is the front), mutably.
    fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        let (first, second) = self.as_mut_slices();
        match index.checked_sub(first.len()) {
            None => first.get_mut(index),
            Some(rest) => second.get_mut(rest),
        }
    }

    /// Takes out the item at `index`, keeping the others in order; `None` if there is none.
    /// At the front it moves nothing; elsewhere this default turns the whole queue once
    /// (what a fixed-capacity ring without its own removal can do).
    fn remove_at(&mut self, index: usize) -> Option<T> {
        if index == 0 {
            return self.pop_front();
        }
        let len = self.len();
        if index >= len {
            return None;
        }
        let mut removed = None;
        for at in 0..len {
            let item = self.pop_front()?;
            if at == index {
                removed = Some(item);
            } else {
                // Cannot fail: one was just taken out.
                let _ = self.push_back(item);
            }
        }
        removed
    }
}

/// Room for one value a session seldom holds (the will, a DISCONNECT to send): in place in a
/// fixed-capacity store (`Option<T>`), behind one pointer in a growable one
/// ([`SlimOption`]), so that a session without it pays little for the room.
pub trait Slot<T>: Default {
    /// The value, if there is one.
    fn get(&self) -> Option<&T>;
    /// The value, mutably, if there is one.
    fn get_mut(&mut self) -> Option<&mut T>;
    /// Puts `value` in, dropping the one before.
    fn set(&mut self, value: T);
    /// Takes the value out, leaving the slot empty.
    fn take(&mut self) -> Option<T>;
    /// Empties the slot, dropping the value.
    fn clear(&mut self) {
        self.take();
    }
    /// True if there is a value.
    fn is_some(&self) -> bool {
        self.get().is_some()
    }
}

impl<T> Slot<T> for Option<T> {
    fn get(&self) -> Option<&T> {
        self.as_ref()
    }

    fn get_mut(&mut self) -> Option<&mut T> {
        self.as_mut()
    }

    fn set(&mut self, value: T) {
        *self = Some(value);
    }

    fn take(&mut self) -> Option<T> {
        Option::take(self)
    }
}

/// The containers a [`Session`](crate::Session) keeps its state in.
///
/// The implementing type is only a name for the set of container types; it is never built.
/// Use [`HeaplessStore`] (fixed capacity, no allocator) or [`AllocStore`] (growable).
pub trait Store {
    /// A message's (or the will's) topic, MQTT 5 properties and payload (if [`Payload::INLINE`]);
    /// an aliased topic.
    type Bytes: OwnedBytes;
    /// Where an outgoing message's payload is kept.
    type Payload: Payload;
    /// Messages accepted by [`publish`](crate::Session::publish) and not yet sent.
    type Queue: Fifo<Message<Self::Bytes, Self::Payload>>;
    /// Outgoing QoS 1 and 2 messages sent and not yet completed, in the order first sent.
    type Inflight: Window<Inflight<Self::Bytes, Self::Payload>>;
    /// Identifiers of incoming QoS 2 messages received and not yet released (PUBREL).
    type Received: Seq<u16>;
    /// Acknowledgements (PUBACK, PUBREC, PUBCOMP) to send, in order.
    type Acks: Seq<Ack>;
    /// A topic alias table (one per direction).
    type Aliases: Seq<Alias<Self::Bytes>>;
    /// Events not yet polled.
    type Events: Fifo<Event>;
    /// Room for one value the session seldom holds: see [`Slot`].
    type Rare<T>: Slot<T>;
}

/// An outgoing message held by the session: topic, MQTT 5 properties (as wire bytes, as the
/// session writes them) and, for an inline store, the payload in one buffer.
#[derive(Debug, Clone)]
pub struct Message<B, P> {
    pub(crate) id: MessageId,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    /// Message Expiry Interval in seconds, as given to `publish`.
    pub(crate) expiry: Option<u32>,
    pub(crate) queued_at: Instant,
    pub(crate) topic_len: usize,
    /// The stored properties: topic alias slot, expiry slot (if any), the others.
    pub(crate) props_len: usize,
    pub(crate) bytes: B,
    pub(crate) payload: P,
    /// Set when the message is a whole encoded PUBLISH (the payload holds it; no topic or
    /// properties are stored): see `Session::publish_frame`.
    pub(crate) frame: Option<crate::frame::FrameMeta>,
}

impl<B, P> Message<B, P> {
    /// When the Message Expiry Interval runs out, if there is one.
    pub(crate) fn expires_at(&self) -> Option<Instant> {
        self.expiry
            .map(|secs| self.queued_at.add_millis(u64::from(secs) * 1000))
    }

    /// True if the Message Expiry Interval ran out.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.expires_at().is_some_and(|at| now >= at)
    }

    /// The Message Expiry Interval left at `now` (0 once run out).
    pub(crate) fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        let waited = u32::try_from(now.millis_since(self.queued_at) / 1000).unwrap_or(u32::MAX);
        self.expiry.map(|secs| secs.saturating_sub(waited))
    }
}

impl<B: AsRef<[u8]>, P: Payload> Message<B, P> {
    pub(crate) fn topic(&self) -> &str {
        // The bytes were copied from a `&str` of exactly this length.
        core::str::from_utf8(&self.bytes.as_ref()[..self.topic_len]).unwrap_or_default()
    }

    pub(crate) fn payload(&self) -> &[u8] {
        let inline = &self.bytes.as_ref()[self.topic_len + self.props_len..];
        self.payload.bytes(inline)
    }

    /// The properties to send, as last set by [`Message::stamp`]: with the topic alias slot
    /// if `aliased`.
    pub(crate) fn properties(&self, aliased: bool) -> facteur_codec::Properties<'_> {
        let start = self.topic_len + if aliased { 0 } else { crate::props::ALIAS_SLOT };
        let bytes = &self.bytes.as_ref()[start..self.topic_len + self.props_len];
        crate::props::rebuild(bytes)
    }
}

impl<B: AsMut<[u8]>, P> Message<B, P> {
    /// Writes the remaining Message Expiry Interval at `now` and the topic alias into their
    /// slots, for [`Message::properties`].
    pub(crate) fn stamp(&mut self, now: Instant, alias: Option<u16>) {
        let remaining = self.remaining_expiry(now);
        let slots = &mut self.bytes.as_mut()[self.topic_len..];
        crate::props::stamp(slots, true, alias, remaining);
    }
}

/// Where an outgoing QoS 1 or 2 message is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// QoS 1, PUBLISH sent, waiting for PUBACK.
    Qos1Sent,
    /// QoS 2, PUBLISH sent, waiting for PUBREC.
    Qos2Sent,
    /// QoS 2, PUBREC received, PUBREL sent (or to send), waiting for PUBCOMP.
    Released,
}

/// An outgoing QoS 1 or 2 message that has a packet identifier.
#[derive(Debug, Clone)]
pub struct Inflight<B, P> {
    pub(crate) packet_id: u16,
    pub(crate) stage: Stage,
    /// The packet of this stage (PUBLISH with DUP, or PUBREL) must be (re)sent.
    pub(crate) resend: bool,
    /// Its PUBLISH was written on this connection and is not acknowledged: it counts against
    /// the peer's Receive Maximum, which is per connection.
    pub(crate) counted: bool,
    pub(crate) message: Message<B, P>,
}

/// Which acknowledgement an [`Ack`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckKind {
    /// PUBACK.
    Ack,
    /// PUBREC.
    Rec,
    /// PUBCOMP.
    Comp,
}

/// An acknowledgement waiting to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub(crate) kind: AckKind,
    pub(crate) packet_id: u16,
    pub(crate) reason: ReasonCode,
}

/// One entry of a topic alias table.
#[derive(Debug, Clone)]
pub struct Alias<B> {
    pub(crate) alias: u16,
    pub(crate) topic: B,
}

impl<B: AsRef<[u8]>> Alias<B> {
    pub(crate) fn topic(&self) -> &str {
        core::str::from_utf8(self.topic.as_ref()).unwrap_or_default()
    }
}

/// Fixed-capacity storage on `heapless`: no allocator, every bound a const generic.
///
/// * `INFLIGHT`: outgoing QoS 1/2 messages in flight, and as many incoming QoS 2 identifiers
///   and pending acknowledgements; the session's receive maximum in both directions is at
///   most this. A 3.1.1 peer is told no Receive Maximum: write the acknowledgements out
///   ([`poll_transmit`](crate::Session::poll_transmit)) after every handled packet, or a
///   burst of more than `INFLIGHT` QoS 1/2 messages is refused as `ReceiveMaximumExceeded`.
/// * `QUEUE`: messages accepted and not yet sent.
/// * `BYTES`: the largest outgoing message: its topic, payload and MQTT 5 properties as they
///   travel (Topic Alias and Message Expiry Interval excepted), plus 3 bytes (a Topic Alias
///   slot) and 5 more if it has a Message Expiry Interval; the largest will the same way
///   (Will Delay Interval excepted), without the 3 bytes; the largest aliased topic.
/// * `ALIASES`: entries of each topic alias table.
/// * `EVENTS`: events held between two [`poll_event`](crate::Session::poll_event) drains;
///   beyond that they are dropped and counted
///   ([`events_dropped`](crate::Session::events_dropped)). Each received packet and each
///   expired message makes at most one event, so draining after every `handle` and every
///   `poll_transmit` loop needs few.
#[derive(Debug, Clone, Copy)]
pub struct HeaplessStore<
    const INFLIGHT: usize,
    const QUEUE: usize,
    const BYTES: usize,
    const ALIASES: usize = 0,
    const EVENTS: usize = 8,
>;

impl<
        const INFLIGHT: usize,
        const QUEUE: usize,
        const BYTES: usize,
        const ALIASES: usize,
        const EVENTS: usize,
    > Store for HeaplessStore<INFLIGHT, QUEUE, BYTES, ALIASES, EVENTS>
{
    type Bytes = heapless::Vec<u8, BYTES>;
    type Payload = Inline;
    type Queue = heapless::Deque<Message<Self::Bytes, Inline>, QUEUE>;
    type Inflight = heapless::Deque<Inflight<Self::Bytes, Inline>, INFLIGHT>;
    type Received = heapless::Vec<u16, INFLIGHT>;
    type Acks = heapless::Vec<Ack, INFLIGHT>;
    type Aliases = heapless::Vec<Alias<Self::Bytes>, ALIASES>;
    type Events = heapless::Deque<Event, EVENTS>;
    type Rare<T> = Option<T>;
}

impl<const N: usize> OwnedBytes for heapless::Vec<u8, N> {
    fn from_parts(first: &[u8], second: &[u8]) -> Option<Self> {
        let mut v = Self::new();
        v.extend_from_slice(first).ok()?;
        v.extend_from_slice(second).ok()?;
        Some(v)
    }

    fn filled(len: usize, fill: impl FnOnce(&mut [u8])) -> Option<Self> {
        let mut v = Self::new();
        v.resize(len, 0).ok()?;
        fill(&mut v);
        Some(v)
    }
}

impl<T, const N: usize> Seq<T> for heapless::Vec<T, N> {
    fn try_push(&mut self, item: T) -> Result<(), T> {
        self.push(item)
    }

    fn remove_at(&mut self, index: usize) -> T {
        self.remove(index)
    }

    fn max_len(&self) -> usize {
        N
    }
}

impl<T, const N: usize> Fifo<T> for heapless::Deque<T, N> {
    fn push_back(&mut self, item: T) -> Result<(), T> {
        heapless::Deque::push_back(self, item)
    }

    fn pop_front(&mut self) -> Option<T> {
        heapless::Deque::pop_front(self)
    }

    fn front(&self) -> Option<&T> {
        heapless::Deque::front(self)
    }

    fn front_mut(&mut self) -> Option<&mut T> {
        heapless::Deque::front_mut(self)
    }

    fn for_each_item(&self, visit: impl FnMut(&T)) {
        self.iter().for_each(visit);
    }

    fn len(&self) -> usize {
        heapless::Deque::len(self)
    }
}

impl<T, const N: usize> Window<T> for heapless::Deque<T, N> {
    fn as_slices(&self) -> (&[T], &[T]) {
        heapless::Deque::as_slices(self)
    }

    fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        heapless::Deque::as_mut_slices(self)
    }

    fn max_len(&self) -> usize {
        N
    }
}

#[cfg(feature = "alloc")]
pub use growable::{AllocStore, SlimDeque, SlimOption, SlimVec};

#[cfg(feature = "alloc")]
mod growable {
    extern crate alloc;

    use alloc::boxed::Box;
    use alloc::collections::VecDeque;
    use alloc::vec::Vec;
    use core::fmt;
    use core::ops::{Deref, DerefMut};

    use super::{
        Ack, Alias, Fifo, Inflight, Message, OwnedBytes, Payload, Seq, Slot, Store, Window,
    };
    use crate::Event;
    use bytes::Bytes;

    /// Growable storage on `alloc`'s `Vec` and `VecDeque`: nothing is bounded but the
    /// session's receive maximum and the peer's. Payloads are kept as [`Bytes`], so one
    /// payload given to many sessions with
    /// [`publish_shared`](crate::Session::publish_shared) is stored once.
    ///
    /// Every container is one pointer wide until first used ([`SlimVec`], [`SlimDeque`],
    /// and [`SlimOption`] for the will and a DISCONNECT to send), so that an idle session (a
    /// broker keeps one per client) is small. A container keeps its allocation once used,
    /// emptied or not, until
    /// [`release_idle_memory`](crate::Session::release_idle_memory).
    #[derive(Debug, Clone, Copy)]
    pub struct AllocStore;

    impl Store for AllocStore {
        type Bytes = Vec<u8>;
        type Payload = Bytes;
        type Queue = SlimDeque<Message<Vec<u8>, Bytes>>;
        type Inflight = SlimDeque<Inflight<Vec<u8>, Bytes>>;
        type Received = SlimVec<u16>;
        type Acks = SlimVec<Ack>;
        type Aliases = SlimVec<Alias<Vec<u8>>>;
        type Events = SlimDeque<Event>;
        type Rare<T> = SlimOption<T>;
    }

    impl OwnedBytes for Vec<u8> {
        fn from_parts(first: &[u8], second: &[u8]) -> Option<Self> {
            let mut v = Vec::with_capacity(first.len() + second.len());
            v.extend_from_slice(first);
            v.extend_from_slice(second);
            Some(v)
        }

        // Not `vec![0; len]`: a zeroed allocation (`calloc`) cost twice a plain one for the
        // few bytes of a message's topic, at every message queued (callgrind).
        #[allow(clippy::slow_vector_initialization)]
        fn filled(len: usize, fill: impl FnOnce(&mut [u8])) -> Option<Self> {
            let mut v = Vec::with_capacity(len);
            v.resize(len, 0);
            fill(&mut v);
            Some(v)
        }
    }

    impl Payload for Bytes {
        const INLINE: bool = false;

        fn copy_of(payload: &[u8]) -> Option<Self> {
            Some(Bytes::copy_from_slice(payload))
        }

        fn bytes<'a>(&'a self, _: &'a [u8]) -> &'a [u8] {
            self
        }
    }

    impl<T> Seq<T> for Vec<T> {
        fn try_push(&mut self, item: T) -> Result<(), T> {
            self.push(item);
            Ok(())
        }

        fn remove_at(&mut self, index: usize) -> T {
            self.remove(index)
        }

        fn max_len(&self) -> usize {
            usize::MAX
        }

        fn release_if_empty(&mut self) {
            if self.is_empty() {
                *self = Vec::new();
            }
        }
    }

    impl<T> Fifo<T> for VecDeque<T> {
        fn push_back(&mut self, item: T) -> Result<(), T> {
            VecDeque::push_back(self, item);
            Ok(())
        }

        fn pop_front(&mut self) -> Option<T> {
            VecDeque::pop_front(self)
        }

        fn front(&self) -> Option<&T> {
            VecDeque::front(self)
        }

        fn front_mut(&mut self) -> Option<&mut T> {
            VecDeque::front_mut(self)
        }

        fn for_each_item(&self, visit: impl FnMut(&T)) {
            self.iter().for_each(visit);
        }

        fn len(&self) -> usize {
            VecDeque::len(self)
        }

        fn release_if_empty(&mut self) {
            if self.is_empty() {
                *self = VecDeque::new();
            }
        }
    }

    /// A growable sequence one pointer wide while unused: a `Vec` boxed on the first push,
    /// whose allocation is then kept, however often it is emptied and filled again, until
    /// [`release_if_empty`](Seq::release_if_empty) frees it (the acknowledgements to send
    /// go from none to one and back at every QoS 1 message received: that costs no
    /// allocation).
    ///
    /// ```
    /// use facteur_session::{Seq, SlimVec};
    /// assert_eq!(core::mem::size_of::<SlimVec<u64>>(), core::mem::size_of::<usize>());
    /// let mut v = SlimVec::new();
    /// v.try_push(1u64).unwrap();
    /// v.try_push(2).unwrap();
    /// assert_eq!(v.remove_at(0), 1);
    /// assert_eq!(&*v, &[2]);
    /// ```
    #[derive(Clone)]
    // The box is the point: one pointer while unused, where the collection takes three or four.
    #[allow(clippy::box_collection)]
    pub struct SlimVec<T>(Option<Box<Vec<T>>>);

    impl<T> SlimVec<T> {
        /// An empty sequence, with nothing allocated.
        pub const fn new() -> Self {
            Self(None)
        }

        /// How many items it holds without allocating again; 0 when nothing is allocated.
        pub fn capacity(&self) -> usize {
            self.0.as_deref().map_or(0, Vec::capacity)
        }

        /// The allocation, out of the way of the pushes that find it made.
        #[cold]
        #[inline(never)]
        // A push into an empty `Vec` allocates room for a few (`vec![item]`: for one).
        #[allow(clippy::vec_init_then_push)]
        fn first_push(&mut self, item: T) {
            let mut v = Vec::new();
            v.push(item);
            self.0 = Some(Box::new(v));
        }
    }

    impl<T> Default for SlimVec<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    impl<T: fmt::Debug> fmt::Debug for SlimVec<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_list().entries(self.iter()).finish()
        }
    }

    impl<T> Deref for SlimVec<T> {
        type Target = [T];

        #[inline]
        fn deref(&self) -> &[T] {
            match self.0.as_deref() {
                Some(v) => v,
                None => &[],
            }
        }
    }

    impl<T> DerefMut for SlimVec<T> {
        #[inline]
        fn deref_mut(&mut self) -> &mut [T] {
            match self.0.as_deref_mut() {
                Some(v) => v,
                None => &mut [],
            }
        }
    }

    impl<T> Seq<T> for SlimVec<T> {
        #[inline]
        fn try_push(&mut self, item: T) -> Result<(), T> {
            match self.0.as_deref_mut() {
                Some(v) => v.push(item),
                None => self.first_push(item),
            }
            Ok(())
        }

        #[inline]
        fn remove_at(&mut self, index: usize) -> T {
            match self.0.as_deref_mut() {
                Some(v) => v.remove(index),
                None => panic!("removal index (is {index}) should be < len (is 0)"),
            }
        }

        fn max_len(&self) -> usize {
            usize::MAX
        }

        fn release_if_empty(&mut self) {
            if self.is_empty() {
                self.0 = None;
            }
        }
    }

    /// A growable first-in first-out queue one pointer wide while unused: a `VecDeque` boxed
    /// on the first push, whose allocation is then kept, however often it is emptied and
    /// filled again, until [`release_if_empty`](Fifo::release_if_empty) frees it.
    ///
    /// ```
    /// use facteur_session::{Fifo, SlimDeque};
    /// assert_eq!(core::mem::size_of::<SlimDeque<u64>>(), core::mem::size_of::<usize>());
    /// let mut q = SlimDeque::new();
    /// q.push_back(1u64).unwrap();
    /// q.push_back(2).unwrap();
    /// assert_eq!(q.pop_front(), Some(1));
    /// assert_eq!(q.len(), 1);
    /// ```
    #[derive(Clone)]
    // The box is the point: one pointer while unused, where the collection takes three or four.
    #[allow(clippy::box_collection)]
    pub struct SlimDeque<T>(Option<Box<VecDeque<T>>>);

    impl<T> SlimDeque<T> {
        /// An empty queue, with nothing allocated.
        pub const fn new() -> Self {
            Self(None)
        }

        /// How many items it holds without allocating again; 0 when nothing is allocated.
        pub fn capacity(&self) -> usize {
            self.0.as_deref().map_or(0, VecDeque::capacity)
        }

        /// The allocation, out of the way of the pushes that find it made.
        #[cold]
        #[inline(never)]
        fn first_push(&mut self, item: T) {
            let mut q = VecDeque::new();
            q.push_back(item);
            self.0 = Some(Box::new(q));
        }
    }

    impl<T> Default for SlimDeque<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    impl<T: fmt::Debug> fmt::Debug for SlimDeque<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let mut list = f.debug_list();
            self.for_each_item(|item| {
                list.entry(item);
            });
            list.finish()
        }
    }

    impl<T> Fifo<T> for SlimDeque<T> {
        #[inline]
        fn push_back(&mut self, item: T) -> Result<(), T> {
            match self.0.as_deref_mut() {
                Some(q) => q.push_back(item),
                None => self.first_push(item),
            }
            Ok(())
        }

        #[inline]
        fn pop_front(&mut self) -> Option<T> {
            self.0.as_deref_mut()?.pop_front()
        }

        #[inline]
        fn front(&self) -> Option<&T> {
            self.0.as_deref()?.front()
        }

        #[inline]
        fn front_mut(&mut self) -> Option<&mut T> {
            self.0.as_deref_mut()?.front_mut()
        }

        fn for_each_item(&self, visit: impl FnMut(&T)) {
            if let Some(q) = self.0.as_deref() {
                q.iter().for_each(visit);
            }
        }

        #[inline]
        fn len(&self) -> usize {
            self.0.as_deref().map_or(0, VecDeque::len)
        }

        fn retain_in_order(&mut self, keep: impl FnMut(&T) -> bool) {
            if let Some(q) = self.0.as_deref_mut() {
                q.retain(keep);
            }
        }

        fn release_if_empty(&mut self) {
            if self.is_empty() {
                self.0 = None;
            }
        }
    }

    impl<T> Window<T> for SlimDeque<T> {
        fn as_slices(&self) -> (&[T], &[T]) {
            self.0.as_deref().map_or((&[], &[]), VecDeque::as_slices)
        }

        fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
            match self.0.as_deref_mut() {
                Some(q) => q.as_mut_slices(),
                None => (&mut [], &mut []),
            }
        }

        fn max_len(&self) -> usize {
            usize::MAX
        }

        /// Moves the shorter side only (`VecDeque::remove`).
        fn remove_at(&mut self, index: usize) -> Option<T> {
            self.0.as_deref_mut()?.remove(index)
        }
    }

    /// Room for one value, one pointer wide: the value is boxed when set. Setting it again
    /// reuses the box; taking it out frees it.
    ///
    /// ```
    /// use facteur_session::{Slot, SlimOption};
    /// assert_eq!(core::mem::size_of::<SlimOption<[u64; 6]>>(), core::mem::size_of::<usize>());
    /// let mut will = SlimOption::default();
    /// will.set("gone");
    /// assert_eq!(will.get(), Some(&"gone"));
    /// assert_eq!(will.take(), Some("gone"));
    /// assert!(!will.is_some());
    /// ```
    #[derive(Clone)]
    pub struct SlimOption<T>(Option<Box<T>>);

    impl<T> Default for SlimOption<T> {
        fn default() -> Self {
            Self(None)
        }
    }

    impl<T: fmt::Debug> fmt::Debug for SlimOption<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.get().fmt(f)
        }
    }

    impl<T> Slot<T> for SlimOption<T> {
        fn get(&self) -> Option<&T> {
            self.0.as_deref()
        }

        fn get_mut(&mut self) -> Option<&mut T> {
            self.0.as_deref_mut()
        }

        fn set(&mut self, value: T) {
            match self.0.as_deref_mut() {
                Some(old) => *old = value,
                None => self.0 = Some(Box::new(value)),
            }
        }

        fn take(&mut self) -> Option<T> {
            self.0.take().map(|boxed| *boxed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise<S: Seq<u16>>(mut s: S) {
        for i in 0..3 {
            s.try_push(i).unwrap();
        }
        assert_eq!(s.remove_at(1), 1);
        assert_eq!(&*s, &[0, 2]);
    }

    #[test]
    fn heapless_seq_is_bounded() {
        let mut v: heapless::Vec<u16, 3> = Default::default();
        exercise(v.clone());
        for i in 0..3 {
            v.try_push(i).unwrap();
        }
        assert_eq!(v.try_push(9), Err(9));
        assert_eq!(v.max_len(), 3);
        assert!(<heapless::Vec<u8, 4>>::from_parts(b"ab", b"cde").is_none());
        assert_eq!(
            <heapless::Vec<u8, 5>>::from_parts(b"ab", b"cde").unwrap(),
            b"abcde"[..]
        );
    }

    #[cfg(feature = "alloc")]
    extern crate alloc;

    #[cfg(feature = "alloc")]
    #[test]
    fn alloc_seq_grows() {
        exercise(alloc::vec::Vec::new());
        let mut q = alloc::collections::VecDeque::new();
        for i in 0..1000u16 {
            Fifo::push_back(&mut q, i).unwrap();
        }
        assert_eq!(Fifo::len(&q), 1000);
        assert_eq!(Fifo::pop_front(&mut q), Some(0));
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn slim_containers_allocate_once_until_released() {
        exercise(SlimVec::new());
        let mut v = SlimVec::<u16>::new();
        assert!(v.is_empty() && v.iter_mut().next().is_none());
        v.release_if_empty();
        v.try_push(1).unwrap();
        let cap = v.capacity();
        assert!(cap > 0);
        // Emptied and filled again: the same allocation.
        for i in 0..10 {
            assert_eq!(v.remove_at(0), 1 + i);
            assert_eq!(v.capacity(), cap);
            v.try_push(2 + i).unwrap();
        }
        v.release_if_empty();
        assert_eq!(v.capacity(), cap, "not empty: kept");
        v.remove_at(0);
        v.release_if_empty();
        assert_eq!(v.capacity(), 0);
        assert_eq!(v.max_len(), usize::MAX);

        let mut q = SlimDeque::<u16>::new();
        assert_eq!((q.len(), q.front()), (0, None));
        assert_eq!(q.pop_front(), None);
        q.retain_in_order(|_| false);
        for i in 0..5 {
            q.push_back(i).unwrap();
        }
        q.retain_in_order(|i| i % 2 == 0);
        let mut seen = alloc::vec::Vec::new();
        q.for_each_item(|&i| seen.push(i));
        assert_eq!(seen, [0, 2, 4]);
        *q.front_mut().unwrap() = 9;
        assert_eq!(q.front(), Some(&9));
        let cap = q.capacity();
        while q.pop_front().is_some() {}
        assert_eq!(q.capacity(), cap);
        q.release_if_empty();
        assert_eq!(q.capacity(), 0);
        q.push_back(7).unwrap();
        assert_eq!(q.pop_front(), Some(7));

        let mut slot = SlimOption::default();
        assert!(!slot.is_some());
        slot.set([1u64; 4]);
        let first: *const [u64; 4] = slot.get().unwrap();
        slot.set([2; 4]);
        assert!(
            core::ptr::eq(first, slot.get().unwrap()),
            "the box is reused"
        );
        slot.get_mut().unwrap()[0] = 3;
        assert_eq!(slot.take(), Some([3, 2, 2, 2]));
        slot.set([0; 4]);
        slot.clear();
        assert_eq!(slot.get(), None);
    }

    /// Pushes 0..6 through a window of 4 so that its items wrap around the ring, then takes
    /// them out from the front, the middle and the back.
    fn exercise_window<W: Window<u16>>(mut w: W) {
        for i in 0..4 {
            w.push_back(i).unwrap();
        }
        assert_eq!(w.pop_front(), Some(0));
        assert_eq!(w.pop_front(), Some(1));
        w.push_back(4).unwrap();
        w.push_back(5).unwrap();
        let in_order = |w: &W| {
            let (first, second) = w.as_slices();
            first
                .iter()
                .chain(second)
                .copied()
                .collect::<std::vec::Vec<u16>>()
        };
        assert_eq!(in_order(&w), [2, 3, 4, 5]);
        assert_eq!((w.get(0), w.get(3), w.get(4)), (Some(&2), Some(&5), None));
        *w.get_mut(2).unwrap() = 40;
        assert_eq!(w.remove_at(4), None, "out of range: nothing taken");
        assert_eq!(w.remove_at(2), Some(40));
        assert_eq!(in_order(&w), [2, 3, 5]);
        assert_eq!(w.remove_at(0), Some(2));
        assert_eq!(w.remove_at(1), Some(5));
        let (first, second) = w.as_mut_slices();
        first.iter_mut().chain(second).for_each(|i| *i += 1);
        assert_eq!(in_order(&w), [4]);
        assert_eq!(w.remove_at(0), Some(4));
        assert_eq!((w.len(), w.remove_at(0)), (0, None));
    }

    extern crate std;

    #[test]
    fn heapless_window_takes_from_anywhere_in_order() {
        let w: heapless::Deque<u16, 4> = Default::default();
        assert_eq!(w.max_len(), 4);
        exercise_window(w);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn slim_window_takes_from_anywhere_in_order() {
        let w = SlimDeque::<u16>::new();
        assert_eq!(
            (w.max_len(), w.get(0), w.as_slices()),
            (usize::MAX, None, (&[][..], &[][..]))
        );
        let mut empty = SlimDeque::<u16>::new();
        assert_eq!(empty.get_mut(0), None);
        assert_eq!(empty.remove_at(0), None);
        exercise_window(w);
    }

    #[cfg(feature = "alloc")]
    #[test]
    #[should_panic(expected = "removal index")]
    fn slim_vec_remove_from_empty_panics() {
        SlimVec::<u8>::new().remove_at(0);
    }
}
