//! The data the router, the mailboxes and the session tasks pass between them: messages
//! (shared by every subscriber), deliveries, subscriptions, and connections on their way to
//! their session.

use crate::router::LinkSlot;
use crate::transport::Stream;
use bytes::Bytes;
use facteur_codec::{
    PacketType, Properties, Property, ProtocolVersion, Publish, QoS, SliceWriter,
    SubscriptionOptions,
};
use facteur_session::{Frame, Instant};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// An application message as the broker keeps it: shared by every subscriber it goes to.
///
/// Kept to 96 bytes (112 with its `Arc`'s counts): glibc's allocator frees a block of up to
/// 128 bytes without taking its arena's lock. A message is made on its publisher's thread
/// and usually freed on its subscriber's, so a larger one made every delivery wait on the
/// publisher thread's arena lock (see docs/performance.md, the seventh sitting).
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) topic: Box<str>,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    /// MQTT 5 PUBLISH properties as wire contents, without Topic Alias and Subscription
    /// Identifier (those belong to one connection).
    properties: Box<[u8]>,
    /// When the broker received it: its Message Expiry Interval counts from here, however
    /// long it waits (in a mailbox, a session's queue, the retained store).
    pub(crate) received_at: Instant,
    /// The message encoded once for the first kind of subscriber that asked (version, QoS,
    /// retain flag), shared by every other of that kind: see [`Message::frame_for`]. Boxed:
    /// only a fan-out makes one.
    frame: OnceLock<Box<(FrameKey, Option<Frame>)>>,
    /// How many sessions the router handed it to: a frame pays for itself only when it is
    /// shared (for one subscriber it would be one more copy of the payload).
    sessions: AtomicU32,
}

/// Which subscribers can share one encoding of a message.
type FrameKey = (bool, QoS, bool);

impl Message {
    /// Copies what a PUBLISH carries, once, for every subscriber to share.
    pub(crate) fn new(
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: &Properties<'_>,
        received_at: Instant,
    ) -> Self {
        let kept: Vec<Property<'_>> = properties
            .iter()
            .filter(|p| {
                !matches!(
                    p,
                    Property::TopicAlias(_) | Property::SubscriptionIdentifier(_)
                )
            })
            .collect();
        let kept = Properties::from_slice(&kept);
        let mut bytes = vec![0u8; kept.contents_len()];
        kept.write_contents(&mut SliceWriter::new(&mut bytes));
        Self {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload),
            qos,
            retain,
            properties: bytes.into_boxed_slice(),
            received_at,
            frame: OnceLock::new(),
            sessions: AtomicU32::new(0),
        }
    }

    /// How many sessions the router handed it to.
    pub(crate) fn sessions(&self) -> u32 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Records how many sessions the message is handed to.
    pub(crate) fn set_sessions(&self, sessions: usize) {
        let sessions = u32::try_from(sessions).unwrap_or(u32::MAX);
        self.sessions.store(sessions, Ordering::Relaxed);
    }

    /// The message encoded for a subscriber in `version` at `qos` with `retain`, if it has
    /// no properties (those change per subscriber and per send), goes to more than one
    /// session, and is of the kind encoded first: that kind, usually all of a fan-out's subscribers, shares one encoding; the
    /// others go through the session's own encoding.
    pub(crate) fn frame_for(
        &self,
        version: ProtocolVersion,
        qos: QoS,
        retain: bool,
    ) -> Option<&Frame> {
        if !self.properties.is_empty() || self.sessions.load(Ordering::Relaxed) < 2 {
            return None;
        }
        let key = (version.is_v5(), qos, retain);
        let (made_for, frame) = &**self.frame.get_or_init(|| {
            let publish = Publish {
                qos,
                retain,
                ..Publish::new(&self.topic, &self.payload)
            };
            Box::new((key, Frame::new(&publish, version)))
        });
        frame.as_ref().filter(|_| *made_for == key)
    }

    /// The stored properties (checked when the message was made, so this cannot fail).
    pub(crate) fn properties(&self) -> Properties<'_> {
        if self.properties.is_empty() {
            // Most messages: nothing to read.
            return Properties::EMPTY;
        }
        Properties::from_wire(&self.properties, PacketType::Publish).unwrap_or(Properties::EMPTY)
    }
}

/// A message on its way to one subscriber, at the QoS and retain flag it gets there, with
/// the identifiers of the subscriptions it matched (MQTT 5).
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) message: Arc<Message>,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) subscription_ids: SubscriptionIds,
}

/// The identifiers of the subscriptions a delivery matched (MQTT 5): none nearly always,
/// so one pointer (a delivery is 24 bytes: a mailbox holding a subscriber's backlog touches
/// fewer cache lines per message).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(clippy::box_collection)]
pub(crate) struct SubscriptionIds(Option<Box<Vec<u32>>>);

impl SubscriptionIds {
    /// No identifier.
    pub(crate) const NONE: Self = Self(None);

    pub(crate) fn new(ids: impl IntoIterator<Item = u32>) -> Self {
        let ids: Vec<u32> = ids.into_iter().collect();
        Self((!ids.is_empty()).then(|| Box::new(ids)))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().flat_map(|ids| ids.iter().copied())
    }
}

/// One subscription as the tree holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subscribed {
    pub(crate) options: SubscriptionOptions,
    /// The Subscription Identifier of the SUBSCRIBE that made it (MQTT 5).
    pub(crate) id: Option<u32>,
}

/// A network connection on its way to its session's task: the socket, what was read after
/// its CONNECT, and the CONNECT itself.
#[derive(Debug)]
pub(crate) struct Attach {
    pub(crate) stream: Stream,
    pub(crate) read: bytes::BytesMut,
    pub(crate) frame: bytes::BytesMut,
    /// The client sent an empty identifier and the broker chose one.
    pub(crate) assigned: bool,
    /// Its place among the connected clients.
    pub(crate) slot: LinkSlot,
    /// What its authentication settled (a username, an enhanced authentication), if
    /// anything.
    pub(crate) auth: Option<Box<crate::enhanced::ClientAuth>>,
}

#[cfg(test)]
mod tests {
    use super::{Delivery, Message, SubscriptionIds};

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_message_and_its_arc_counts_fit_a_block_glibc_frees_without_a_lock() {
        // 112 bytes with the two counts: a chunk of 128, glibc's largest "fast" size.
        assert_eq!(std::mem::size_of::<Message>(), 96);
    }

    #[test]
    fn a_delivery_is_three_words_and_keeps_its_subscription_identifiers() {
        // What a mailbox holds per message waiting (see `SubscriptionIds`).
        assert_eq!(std::mem::size_of::<Delivery>(), 24);
        assert!(SubscriptionIds::new([]).is_empty());
        let ids = SubscriptionIds::new([7, 9]);
        assert_eq!(ids.iter().collect::<Vec<_>>(), [7, 9]);
    }
}
