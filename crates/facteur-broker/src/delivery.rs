//! Deliveries: from the mailbox into the session's queue (a batch per lock), and from the
//! session onto the socket (one write per wake-up).

use crate::link::End;
use crate::link::Link;
use crate::link::BATCH;
use crate::link::SCRATCH;
use crate::mailbox::Take;
use crate::message::Delivery;
use crate::session_task::SessionTask;
use facteur_codec::{Properties, Property, ProtocolVersion, Publish};
use facteur_session::{Admission, FrameOut};
use std::sync::atomic::Ordering;

impl SessionTask {
    /// What the session takes from its mailbox now, while a client is connected; `None`
    /// while it is not: every message is then handed to the session, which keeps what its
    /// limits allow (no QoS 0; QoS 1/2 up to the limits) and refuses the rest (counted), so
    /// publishers never wait for an offline client. While connected, messages the session
    /// does not take stay in the mailbox, and when that fills, QoS 0 messages are dropped
    /// and publishers of QoS 1/2 wait: a subscriber that cannot keep up slows them down.
    ///
    /// While connected, see [`Intake::admits`]: a message encoded once for many
    /// subscribers is taken only when it goes out at once, so a fan-out's backlog waits in
    /// the mailbox as shared deliveries; any other message is staged in the session's
    /// queue, which holds at most [`STAGED`] messages while connected.
    pub(crate) fn intake(&self) -> Option<Intake> {
        self.link.as_ref().map(|_| {
            let staged = STAGED.min(self.config.max_queued_messages);
            let more = staged.saturating_sub(self.session.queued());
            Intake {
                admission: self.session.admission().at_most(more),
                version: self.version(),
                full: None,
            }
        })
    }

    /// Hands `delivery` and whatever else waits in the mailbox (what the session's queue
    /// takes) to the session. Messages the session can send at once are encoded straight
    /// into the thread's scratch buffer and written in one go at the end (see
    /// [`Session::publish_frame_now`](facteur_session::Session::publish_frame_now)).
    pub(crate) fn deliver(&mut self, delivery: Delivery) {
        let mut tally = Tally::default();
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut out = Outgoing::new(&mut scratch);
            tally.add(self.publish_to_session(&delivery, Some(&mut out)));
            drop(delivery);
            // Take whatever else is already waiting and the queue takes (a batch per lock),
            // so it goes out in the same write.
            BATCH.with(|cell| {
                let mut batch = cell.take();
                loop {
                    let mut intake = self.intake();
                    self.mailbox
                        .take_while(&mut batch, |d, full| intake.takes(d, full));
                    if batch.is_empty() {
                        break;
                    }
                    for delivery in batch.drain(..) {
                        tally.add(self.publish_to_session(&delivery, Some(&mut out)));
                    }
                }
                cell.replace(batch);
            });
            if let Some(link) = &mut self.link {
                out.send(link, &self.router.stats);
            }
        });
        tally.count(&self.router.stats);
    }

    /// Hands a delivery to the session, which queues it or refuses it; the caller counts
    /// what became of it ([`Tally`]).
    ///
    /// With `out`, a message encoded once for many subscribers that the session can send at
    /// once is written into `out` rather than queued, while the socket keeps up (nothing
    /// of this connection is waiting to be written).
    #[must_use]
    pub(crate) fn publish_to_session(
        &mut self,
        delivery: &Delivery,
        out: Option<&mut Outgoing<'_>>,
    ) -> Handed {
        let message = &delivery.message;
        if !self.may_read(&message.topic) {
            // Not for this client's eyes (retained messages and wills included): dropped,
            // counted.
            return Handed::Dropped;
        }
        let frame = (delivery.subscription_ids.is_empty())
            .then(|| message.frame_for(self.version(), delivery.qos, delivery.retain))
            .flatten();
        if let Some(frame) = frame {
            // Encoded once for every subscriber of this kind: copied and sent as is.
            let at = message.received_at;
            let link = self
                .link
                .as_mut()
                .filter(|l| l.out.is_empty() && l.end.is_none());
            let queued = match (out, link) {
                (Some(out), Some(link)) => {
                    if out.room().len() < frame.as_bytes().len() {
                        out.send(link, &self.router.stats);
                    }
                    match self.session.publish_frame_now(frame, at, out.room()) {
                        Ok(FrameOut::Written { id, len }) => {
                            out.used += len;
                            Ok(id)
                        }
                        Ok(FrameOut::Queued(id)) => Ok(id),
                        Err(error) => Err(error),
                    }
                }
                _ => self.session.publish_frame(frame, at),
            };
            return self.handed(queued);
        }
        // The subscriber's subscription identifiers join the message's own properties. They
        // are kept whatever the connection's version: the session writes them only in 5.0,
        // and a session resumed in 5.0 sends them (Message Expiry Interval included).
        let with_ids: Vec<Property<'_>>;
        let properties = if delivery.subscription_ids.is_empty() {
            message.properties()
        } else {
            with_ids = message
                .properties()
                .iter()
                .chain(
                    delivery
                        .subscription_ids
                        .iter()
                        .map(Property::SubscriptionIdentifier),
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
        let queued =
            self.session
                .publish_shared(&publish, message.payload.clone(), message.received_at);
        self.handed(queued)
    }

    /// What became of a message handed to the session: queued (sent) or refused (dropped).
    fn handed(
        &self,
        queued: Result<facteur_session::MessageId, facteur_session::PublishError>,
    ) -> Handed {
        match queued {
            Ok(_) => Handed::Sent,
            Err(error) => {
                tracing::debug!(client = %self.client_id, %error, "message not queued");
                Handed::Dropped
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
        let stats = &self.router.stats;
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut out = Outgoing::new(&mut scratch);
            loop {
                match self.session.poll_transmit(now, out.room()) {
                    Ok(Some(n)) => out.used += n,
                    Ok(None) => break,
                    Err(facteur_codec::EncodeError::BufferTooSmall { .. }) if out.used > 0 => {
                        // The scratch is full: what is in it goes first.
                        out.send(link, stats);
                    }
                    Err(facteur_codec::EncodeError::BufferTooSmall { required, .. }) => {
                        let mut big = vec![0u8; required];
                        match self.session.poll_transmit(now, &mut big) {
                            Ok(Some(n)) => send(link, &big[..n], stats),
                            _ => break,
                        }
                    }
                    Err(error) => {
                        tracing::warn!(client = %self.client_id, %error, "cannot encode");
                        break;
                    }
                }
            }
            out.send(link, stats);
        });
    }
}

/// Packets encoded for one connection, in the thread's scratch buffer, on their way to one
/// write.
pub(crate) struct Outgoing<'s> {
    scratch: &'s mut [u8],
    /// How much of `scratch` holds packets.
    pub(crate) used: usize,
}

impl<'s> Outgoing<'s> {
    pub(crate) fn new(scratch: &'s mut [u8]) -> Self {
        Self { scratch, used: 0 }
    }

    /// Where the next packet goes.
    pub(crate) fn room(&mut self) -> &mut [u8] {
        &mut self.scratch[self.used..]
    }

    /// Writes what is here (see [`send`]) and empties it.
    pub(crate) fn send(&mut self, link: &mut Link, stats: &crate::Stats) {
        send(link, &self.scratch[..self.used], stats);
        self.used = 0;
    }
}

/// Writes `bytes` at once if the socket takes them; what it does not take waits in the
/// connection's own buffer (after anything already waiting there, which keeps the order).
fn send(link: &mut Link, bytes: &[u8], stats: &crate::Stats) {
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
            stats.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
            link.out.extend_from_slice(&bytes[n..]);
        }
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
            link.out.extend_from_slice(bytes);
        }
        Err(error) => {
            tracing::debug!(%error, "write failed");
            link.end.get_or_insert(End::Lost);
        }
    }
}

/// Messages a connected client's session queue holds at most (see
/// [`SessionTask::intake`]).
pub(crate) const STAGED: usize = 64;

/// How many sessions a message must go to for a subscriber to leave it in its mailbox until
/// it goes out at once (see [`Intake::admits`]). Measured (docs/performance.md): with
/// a thousand subscribers, staging each message in each session's queue costs more than it
/// saves (~10% of the broker's CPU per message); with eight, each subscriber is busy enough
/// that a staged window sent as soon as the acknowledgements come is worth it (~8% less
/// CPU per message at 1 KiB).
pub(crate) const WIDE_FAN_OUT: u32 = 64;

/// What a connected session takes from its mailbox now ([`SessionTask::intake`]), counted
/// down as it takes.
pub(crate) struct Intake {
    admission: Admission,
    /// The connection's version: which deliveries share a frame.
    version: ProtocolVersion,
    /// Whether the messages taken so far were taken from a full mailbox: a batch is taken
    /// one way.
    full: Option<bool>,
}

impl Intake {
    /// Whether the session takes `delivery` now, the mailbox being `full` or not.
    ///
    /// A message encoded once for many subscribers ([`Message::frame_for`]), at least
    /// [`WIDE_FAN_OUT`] of them, is taken only when it goes out at once
    /// ([`Admission::admit_to_send`]: for QoS 1/2, while there is room in flight): it then
    /// goes from the mailbox straight into flight
    /// ([`Session::publish_frame_now`](facteur_session::Session::publish_frame_now)), and
    /// a subscriber that falls behind keeps its backlog in the mailbox as 24-byte
    /// deliveries, not in its session's queue. Left so, it is [`Take::NotYet`]: the task
    /// waits for its client's acknowledgements, not for more messages (a fan-out's
    /// subscribers are many, and each would be woken by every message for nothing).
    ///
    /// Any other message (encoded by the session for this connection, or shared by fewer
    /// subscribers, each of them busy) is staged in its queue as the queue's limits allow
    /// ([`Admission::admit`]), ready to go out as soon as the client acknowledges earlier
    /// ones. Left so, it is [`Take::No`]: each message routed to the session wakes its
    /// task, which then looks for its client's acknowledgements at once (`read_now`), so a
    /// busy subscriber of many publishers (fan-in) keeps its window moving; once the mailbox
    /// is full, each publisher that starts waiting for room wakes it so.
    ///
    /// Once the mailbox is full, its messages go into the session's queue as its limits
    /// allow, where its rules apply (a QoS 1/2 message displaces a QoS 0 one), so a
    /// subscriber holds as much either way.
    ///
    /// [`Message::frame_for`]: crate::message::Message::frame_for
    pub(crate) fn admits(&mut self, delivery: &Delivery, full: bool) -> Take {
        let full = self.full.unwrap_or(full);
        let (qos, size) = (delivery.qos, delivery.message.payload.len());
        let message = &delivery.message;
        let shared = message.sessions() >= WIDE_FAN_OUT
            && delivery.subscription_ids.is_empty()
            && message
                .frame_for(self.version, qos, delivery.retain)
                .is_some();
        let wait_for_acks = shared && !full;
        let admitted = if wait_for_acks {
            self.admission.admit_to_send(qos, size)
        } else {
            self.admission.admit(qos, size)
        };
        if admitted {
            self.full = Some(full);
            Take::Yes
        } else if wait_for_acks {
            Take::NotYet
        } else {
            Take::No
        }
    }
}

/// An intake that may be absent (no client connected: everything is taken).
pub(crate) trait TakesAll {
    /// [`Take::Yes`] if there is no intake, else what it says ([`Intake::admits`]).
    fn takes(&mut self, delivery: &Delivery, full: bool) -> Take;
}

impl TakesAll for Option<Intake> {
    fn takes(&mut self, delivery: &Delivery, full: bool) -> Take {
        self.as_mut()
            .map_or(Take::Yes, |i| i.admits(delivery, full))
    }
}

/// What became of a message handed to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handed {
    /// The session queued it.
    Sent,
    /// Refused (queue limits) or not for this client (ACL).
    Dropped,
}

/// Counts of a batch of deliveries, added to the broker's counters once for the batch (one
/// atomic step per counter, not one per message).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    sent: u64,
    dropped: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, handed: Handed) {
        match handed {
            Handed::Sent => self.sent += 1,
            Handed::Dropped => self.dropped += 1,
        }
    }

    pub(crate) fn count(self, stats: &crate::Stats) {
        if self.sent > 0 {
            stats.messages_sent.fetch_add(self.sent, Ordering::Relaxed);
        }
        if self.dropped > 0 {
            stats.dropped.fetch_add(self.dropped, Ordering::Relaxed);
        }
    }
}
