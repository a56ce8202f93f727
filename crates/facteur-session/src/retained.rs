//! Retained messages (feature `alloc`): the last retained message of each topic, found by
//! topic filter.

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use facteur_codec::{Properties, Publish, QoS};
use facteur_topic::{RetainedIndex, TopicFilter, TopicName};

use crate::store::OwnedBytes;
use crate::{props, Instant, PublishError};

/// One stored retained message: its properties (Message Expiry Interval slot first, as wire
/// bytes) then its payload, in one buffer.
#[derive(Debug, Clone)]
struct Entry<B> {
    qos: QoS,
    /// Message Expiry Interval in seconds, as given to `set`.
    expiry: Option<u32>,
    set_at: Instant,
    props_len: usize,
    bytes: B,
}

impl<B: OwnedBytes> Entry<B> {
    fn expired(&self, now: Instant) -> bool {
        self.expiry
            .is_some_and(|secs| now >= self.set_at.add_millis(u64::from(secs) * 1000))
    }

    /// Writes the Message Expiry Interval left at `now` into its slot.
    fn stamp(&mut self, now: Instant) {
        let waited = u32::try_from(now.millis_since(self.set_at) / 1000).unwrap_or(u32::MAX);
        let left = self.expiry.map(|secs| secs.saturating_sub(waited));
        props::stamp(
            &mut self.bytes.as_mut()[..self.props_len],
            false,
            None,
            left,
        );
    }

    fn message<'a>(&'a self, topic: TopicName<'a>) -> RetainedMessage<'a> {
        let (stored, payload) = self.bytes.as_ref().split_at(self.props_len);
        RetainedMessage {
            topic,
            payload,
            qos: self.qos,
            properties: props::rebuild(stored),
        }
    }
}

/// A retained message as [`RetainedStore`] hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedMessage<'a> {
    /// Its topic.
    pub topic: TopicName<'a>,
    /// Its payload (never empty: an empty payload clears the topic).
    pub payload: &'a [u8],
    /// The QoS it was published with.
    pub qos: QoS,
    /// Its MQTT 5 PUBLISH properties as stored, with the Message Expiry Interval set to the
    /// time left at the lookup.
    pub properties: Properties<'a>,
}

impl<'a> RetainedMessage<'a> {
    /// The message as a PUBLISH with the retain flag set (QoS as stored, no packet
    /// identifier), ready for [`Session::publish`](crate::Session::publish) after choosing
    /// the QoS of the subscription it goes to.
    pub fn publish(&self) -> Publish<'a> {
        Publish {
            qos: self.qos,
            retain: true,
            properties: self.properties,
            ..Publish::new(self.topic.as_str(), self.payload)
        }
    }
}

/// The retained messages of a server: the last retained message of each topic name, looked
/// up by topic filter through `facteur-topic`'s [`RetainedIndex`] (a lookup visits only the
/// branches of the topic trie its filter can match, never every topic; filters starting with
/// a wildcard do not match topics starting with `$`).
///
/// Only with the `alloc` feature: the index is a trie that grows, and a fixed-capacity
/// version would have to scan every topic on each lookup. The message buffer is generic like
/// a [`Store`](crate::Store)'s: `Vec<u8>` (the default) grows, `heapless::Vec<u8, N>` bounds
/// the properties (as wire bytes, plus 5 bytes when there is a Message Expiry Interval) and
/// payload of each message to `N` bytes.
///
/// Message expiry is honoured: a message whose Message Expiry Interval ran out is not
/// returned, and is removed when a lookup meets it (or by
/// [`purge_expired`](Self::purge_expired)); one returned carries the interval left.
///
/// ```
/// use facteur_codec::{Properties, QoS};
/// use facteur_session::{Instant, RetainedStore};
/// use facteur_topic::{TopicFilter, TopicName};
///
/// let mut retained = RetainedStore::<Vec<u8>>::new();
/// let t0 = Instant::from_millis(0);
/// let topic = TopicName::new("maison/salon/temp")?;
/// retained.set(topic, b"21.5", QoS::AtLeastOnce, &Properties::EMPTY, Some(60), t0)?;
///
/// let mut got = Vec::new();
/// let later = Instant::from_millis(10_000);
/// retained.for_each_match(TopicFilter::new("maison/+/temp")?, later, |m| {
///     got.push((m.topic.as_str().to_owned(), m.payload.to_vec(), m.properties.message_expiry_interval()))
/// });
/// assert_eq!(got, [("maison/salon/temp".to_owned(), b"21.5".to_vec(), Some(50))]);
///
/// // An empty payload clears the topic.
/// retained.set(topic, b"", QoS::AtMostOnce, &Properties::EMPTY, None, later)?;
/// assert!(retained.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RetainedStore<B = Vec<u8>> {
    index: RetainedIndex<usize>,
    entries: Vec<Option<Entry<B>>>,
    free: Vec<usize>,
    bytes: usize,
    expired: u64,
    /// Most topics held; 0: no limit.
    max_messages: usize,
    /// Most bytes held ([`RetainedStore::stored_bytes`]); 0: no limit.
    max_bytes: usize,
}

impl<B: OwnedBytes> Default for RetainedStore<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: OwnedBytes> RetainedStore<B> {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            index: RetainedIndex::new(),
            entries: Vec::new(),
            free: Vec::new(),
            bytes: 0,
            expired: 0,
            max_messages: 0,
            max_bytes: 0,
        }
    }

    /// An empty store that holds at most `max_messages` topics and `max_bytes` bytes of
    /// messages ([`stored_bytes`](Self::stored_bytes)); 0 is no limit. Past them,
    /// [`set`](Self::set) refuses a new message ([`PublishError::StoreFull`]) and keeps what
    /// it holds, so that publishers cannot make a server hold more than it allows.
    ///
    /// ```
    /// use facteur_codec::{Properties, QoS};
    /// use facteur_session::{Instant, PublishError, RetainedStore};
    /// use facteur_topic::TopicName;
    /// let mut retained = RetainedStore::<Vec<u8>>::with_limits(1, 0);
    /// let now = Instant::from_millis(0);
    /// let (a, b) = (TopicName::new("a")?, TopicName::new("b")?);
    /// retained.set(a, b"1", QoS::AtMostOnce, &Properties::EMPTY, None, now)?;
    /// assert_eq!(
    ///     retained.set(b, b"2", QoS::AtMostOnce, &Properties::EMPTY, None, now),
    ///     Err(PublishError::StoreFull)
    /// );
    /// // Replacing the one held is always possible within the byte limit.
    /// retained.set(a, b"3", QoS::AtMostOnce, &Properties::EMPTY, None, now)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_limits(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            max_messages,
            max_bytes,
            ..Self::new()
        }
    }

    /// How many topics hold a retained message (expired ones not yet removed included).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True if no topic holds a retained message.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The bytes of the messages held: stored properties and payloads (topics not counted).
    pub fn stored_bytes(&self) -> usize {
        self.bytes
    }

    /// How many messages were removed because their Message Expiry Interval ran out, since
    /// the store was made.
    pub fn expired_count(&self) -> u64 {
        self.expired
    }

    /// Sets the retained message of `topic` at `now`, replacing the one before; an empty
    /// `payload` clears the topic instead. `properties` are the PUBLISH's MQTT 5 properties,
    /// kept as wire bytes (any Topic Alias or Message Expiry Interval among them is left out:
    /// the expiry is `expiry`, in seconds, counted from `now`).
    ///
    /// # Errors
    /// [`PublishError::InvalidProperties`] if the properties cannot be sent in a PUBLISH;
    /// [`PublishError::TooLarge`] if they and the payload do not fit `B`. The topic's
    /// previous message is kept then.
    pub fn set(
        &mut self,
        topic: TopicName<'_>,
        payload: &[u8],
        qos: QoS,
        properties: &Properties<'_>,
        expiry: Option<u32>,
        now: Instant,
    ) -> Result<(), PublishError> {
        if payload.is_empty() {
            self.remove(topic);
            return Ok(());
        }
        let layout =
            props::layout(properties, expiry, false).ok_or(PublishError::InvalidProperties)?;
        let props_len = layout.len();
        let bytes = B::filled(props_len + payload.len(), |out| {
            let (stored, rest) = out.split_at_mut(props_len);
            props::write(stored, properties, layout);
            rest.copy_from_slice(payload);
        })
        .ok_or(PublishError::TooLarge)?;
        if !props::valid(&bytes.as_ref()[..props_len]) {
            return Err(PublishError::InvalidProperties);
        }
        let slot = self.index.get(topic).copied();
        let replaced = slot
            .and_then(|slot| self.entries[slot].as_ref())
            .map_or(0, |old| old.bytes.as_ref().len());
        let new_topic = slot.is_none() && self.max_messages > 0 && self.len() >= self.max_messages;
        let over_bytes =
            self.max_bytes > 0 && self.bytes - replaced + bytes.as_ref().len() > self.max_bytes;
        if new_topic || over_bytes {
            return Err(PublishError::StoreFull);
        }
        self.bytes += bytes.as_ref().len();
        let entry = Entry {
            qos,
            expiry,
            set_at: now,
            props_len,
            bytes,
        };
        if let Some(slot) = slot {
            if let Some(old) = self.entries[slot].replace(entry) {
                self.bytes -= old.bytes.as_ref().len();
            }
            return Ok(());
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot] = Some(entry);
                slot
            }
            None => {
                self.entries.push(Some(entry));
                self.entries.len() - 1
            }
        };
        self.index.insert(topic, slot);
        Ok(())
    }

    /// Clears the retained message of `topic`; false if there was none.
    pub fn remove(&mut self, topic: TopicName<'_>) -> bool {
        let Some(slot) = self.index.remove(topic) else {
            return false;
        };
        if let Some(old) = self.entries[slot].take() {
            self.bytes -= old.bytes.as_ref().len();
        }
        self.free.push(slot);
        true
    }

    /// The retained message of `topic` at `now`, unless there is none or it expired (it is
    /// removed then).
    pub fn get<'a>(
        &'a mut self,
        topic: TopicName<'a>,
        now: Instant,
    ) -> Option<RetainedMessage<'a>> {
        let slot = *self.index.get(topic)?;
        if self.entries[slot].as_ref()?.expired(now) {
            self.expired += 1;
            self.remove(topic);
            return None;
        }
        let entry = self.entries[slot].as_mut()?;
        entry.stamp(now);
        Some(entry.message(topic))
    }

    /// Calls `visit` with every retained message whose topic matches `filter` at `now`, and
    /// returns how many it visited. Messages that expired are not visited, and are removed.
    /// Visits only the branches of the topic trie the filter can match (the order is the
    /// trie's, not sorted).
    pub fn for_each_match<F>(
        &mut self,
        filter: TopicFilter<'_>,
        now: Instant,
        mut visit: F,
    ) -> usize
    where
        F: FnMut(RetainedMessage<'_>),
    {
        let entries = &mut self.entries;
        let mut expired: Vec<String> = Vec::new();
        let mut visited = 0;
        self.index.for_each_match(filter, |name, &slot| {
            let Some(entry) = entries.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if entry.expired(now) {
                expired.push(name.as_str().into());
                return;
            }
            entry.stamp(now);
            visit(entry.message(name));
            visited += 1;
        });
        self.remove_expired(expired);
        visited
    }

    /// Removes every message whose Message Expiry Interval ran out at `now` and returns how
    /// many. Visits every topic.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let entries = &self.entries;
        let mut expired: Vec<String> = Vec::new();
        self.index.for_each(|name, &slot| {
            if entries[slot].as_ref().is_some_and(|e| e.expired(now)) {
                expired.push(name.as_str().into());
            }
        });
        let n = expired.len();
        self.remove_expired(expired);
        n
    }

    fn remove_expired(&mut self, names: Vec<String>) {
        for name in names {
            if let Ok(topic) = TopicName::new(&name) {
                if self.remove(topic) {
                    self.expired += 1;
                }
            }
        }
    }
}
