//! Deliveries: from the mailbox into the session's queue (a batch per lock), and from the
//! session onto the socket (one write per wake-up).

use crate::link::End;
use crate::link::BATCH;
use crate::link::SCRATCH;
use crate::message::Delivery;
use crate::session_task::SessionTask;
use facteur_codec::{Properties, Property, Publish, QoS};
use std::sync::atomic::Ordering;

impl SessionTask {
    /// True while a client is connected and the session's queue (what goes out in the next
    /// writes) has room. Otherwise deliveries stay in the mailbox, which is bounded: when it
    /// fills, QoS 0 messages are dropped first and publishers of QoS 1/2 wait (connected
    /// client) or their messages are dropped (offline).
    pub(crate) fn has_room(&self) -> bool {
        self.room() > 0
    }

    /// How many more messages the session's queue takes now.
    pub(crate) fn room(&self) -> usize {
        match self.link {
            Some(_) => STAGED
                .min(self.config.max_queued_messages)
                .saturating_sub(self.session.queued()),
            None => 0,
        }
    }

    pub(crate) fn deliver(&mut self, delivery: Delivery) {
        self.publish_to_session(&delivery);
        drop(delivery);
        // Take whatever else is already waiting (a batch per lock), so it goes out in the
        // same write.
        BATCH.with(|cell| {
            let mut batch = cell.take();
            loop {
                let room = self.room();
                if room == 0 {
                    break;
                }
                self.mailbox.take_up_to(room, &mut batch);
                if batch.is_empty() {
                    break;
                }
                for delivery in batch.drain(..) {
                    self.publish_to_session(&delivery);
                }
            }
            cell.replace(batch);
        });
    }

    pub(crate) fn publish_to_session(&mut self, delivery: &Delivery) {
        // Offline, QoS 0 messages are not kept (MQTT allows it; mosquitto does the same).
        let offline = self.link.is_none();
        // The session's queue is bounded like the mailbox in front of it: a subscriber that
        // does not keep up loses new messages (counted) instead of growing memory.
        if (offline && delivery.qos == QoS::AtMostOnce)
            || self.session.queued() >= self.config.max_queued_messages
        {
            self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let message = &delivery.message;
        // The subscriber's subscription identifiers join the message's own properties.
        let with_ids: Vec<Property<'_>>;
        let properties = if !self.version.is_v5() {
            // Not sent before 5.0: not even read.
            Properties::EMPTY
        } else if delivery.subscription_ids.is_empty() {
            message.properties()
        } else {
            with_ids = message
                .properties()
                .iter()
                .chain(
                    delivery
                        .subscription_ids
                        .iter()
                        .map(|&id| Property::SubscriptionIdentifier(id)),
                )
                .collect();
            Properties::from_slice(&with_ids)
        };
        let publish = Publish {
            qos: delivery.qos,
            retain: delivery.retain,
            properties,
            ..Publish::new(&message.topic, &message.payload)
        };
        // The payload is shared with every other subscriber, not copied; its expiry counts
        // from when the broker received it.
        match self
            .session
            .publish_shared(&publish, message.payload.clone(), message.received_at)
        {
            Ok(_) => {
                self.router
                    .stats
                    .messages_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::debug!(client = %self.client_id, %error, "message not queued");
                self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sends everything the session has to send: encoded into a per-thread scratch buffer
    /// and written at once if the socket takes it, so a connection only keeps a buffer of
    /// its own for what the socket could not take yet.
    pub(crate) fn drain_session(&mut self) {
        let now = self.now();
        let Some(link) = &mut self.link else {
            return;
        };
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut used = 0;
            loop {
                match self.session.poll_transmit(now, &mut scratch[used..]) {
                    Ok(Some(n)) => used += n,
                    Ok(None) => break,
                    Err(facteur_codec::EncodeError::BufferTooSmall { .. }) if used > 0 => {
                        // The scratch is full: what is in it goes first.
                        link.out.extend_from_slice(&scratch[..used]);
                        used = 0;
                    }
                    Err(facteur_codec::EncodeError::BufferTooSmall { required, .. }) => {
                        let mut big = vec![0u8; required];
                        match self.session.poll_transmit(now, &mut big) {
                            Ok(Some(n)) => link.out.extend_from_slice(&big[..n]),
                            _ => break,
                        }
                    }
                    Err(error) => {
                        tracing::warn!(client = %self.client_id, %error, "cannot encode");
                        break;
                    }
                }
            }
            let bytes = &scratch[..used];
            if bytes.is_empty() {
                return;
            }
            if !link.out.is_empty() {
                // Earlier bytes are still waiting: these go after them.
                link.out.extend_from_slice(bytes);
                return;
            }
            match link.stream.try_write(bytes) {
                Ok(n) => {
                    self.router
                        .stats
                        .bytes_sent
                        .fetch_add(n as u64, Ordering::Relaxed);
                    link.out.extend_from_slice(&bytes[n..]);
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    link.out.extend_from_slice(bytes);
                }
                Err(error) => {
                    tracing::debug!(client = %self.client_id, %error, "write failed");
                    link.end.get_or_insert(End::Lost);
                }
            }
        });
    }
}

/// Messages moved from the mailbox into the session's own queue ahead of the writes (beyond
/// those in flight). The rest wait in the mailbox, where the payload is shared, not copied.
pub(crate) const STAGED: usize = 64;
