//! What a session does with each packet its client sends.

use crate::access::may_publish;
use crate::link::encode_into;
use crate::link::End;
use crate::message::{Delivery, Message, Subscribed};
use crate::session_task::SessionTask;
use facteur_codec::{
    decode, Packet, PacketType, QoS, ReasonCode, RetainHandling, Status, SubAck, Subscribe,
    UnsubAck, Unsubscribe,
};
use facteur_session::{Instant, Verdict};
use facteur_topic::TopicFilter;
use std::sync::atomic::Ordering;

/// Most messages one client's read routes at once (a bound on the batch's memory and on
/// how long a batch keeps its first message).
const ROUTE_BATCH: usize = 128;

/// How many of a client's messages in a row must be routed without waiting for room
/// before its QoS 1/2 messages are routed together, as QoS 0 ones always are (see
/// [`SessionTask::on_bytes`]).
const CALM: u16 = 256;

/// Why a PUBLISH was not taken.
enum Refused {
    /// Its payload is over `message_size_limit`.
    Size(usize),
    /// The client may not publish to its topic.
    Acl(String),
}

thread_local! {
    /// The messages read and not yet routed (per thread, reused).
    static PUBLISHED: std::cell::Cell<Vec<Message>> = const { std::cell::Cell::new(Vec::new()) };
}

impl SessionTask {
    /// Acts on what a read from the client gave.
    pub(crate) fn on_read(&mut self, read: std::io::Result<usize>) {
        let Some(link) = &mut self.link else {
            return;
        };
        match read {
            Ok(0) | Err(_) => {
                link.end.get_or_insert(End::Lost);
            }
            Ok(n) => {
                self.router
                    .stats
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
                self.on_bytes();
            }
        }
    }

    /// Handles every whole packet read. The messages published are routed together (one
    /// lock and wake-up per subscriber for the lot): at the end, before any other packet
    /// (so that a SUBSCRIBE after a PUBLISH sees it routed first), and every
    /// [`ROUTE_BATCH`] messages. A QoS 1/2 message is routed at once instead (with the
    /// messages before it) until [`CALM`] of this client's messages in a row have been
    /// routed without waiting for room (see [`SessionTask::calm`]).
    pub(crate) fn on_bytes(&mut self) {
        let Some(mut read) = self.link.as_mut().map(|l| std::mem::take(&mut l.read)) else {
            return;
        };
        let mut published = PUBLISHED.with(std::cell::Cell::take);
        // One reading of the clock for what one read brought (packets received together).
        let now = self.now();
        // PUBLISH packets received, added to the broker's count before they are routed (one
        // atomic add per batch routed, not one per message).
        let mut received = Received::default();
        // Bytes of whole packets handled, taken off the buffer once at the end (not packet
        // by packet).
        let mut handled = 0;
        while self.link.as_ref().is_some_and(|l| l.end.is_none())
            && self.waiting.is_empty()
            && !self.reauth_due()
        {
            match decode(&read[handled..], self.version(), self.config.packet_limit()) {
                Ok(Status::Complete(decoded)) => {
                    let len = decoded.len;
                    if let Packet::Publish(_) = decoded.packet {
                        received.0 += 1;
                        if let Some(message) = self.on_publish(decoded.packet, now) {
                            // A QoS 1/2 message of a client whose messages lately found a
                            // full mailbox is routed at once (with the QoS 0 ones before
                            // it): when the mailbox is full again, its publisher then stops
                            // reading at that message instead of having acknowledged a batch
                            // that must all wait for room. Once its messages get in without
                            // waiting, they are routed a read at a time (measured in
                            // docs/performance.md, the tenth sitting: the fan-in's
                            // publishers keep routing at once, the fan-out's and the
                            // point-to-point ones route together).
                            let acknowledged = message.qos != QoS::AtMostOnce;
                            published.push(message);
                            let at_once = acknowledged && self.calm < CALM;
                            if at_once || published.len() >= ROUTE_BATCH {
                                received.count(&self.router.stats);
                                self.route(&mut published);
                            }
                        }
                    } else {
                        received.count(&self.router.stats);
                        self.route(&mut published);
                        self.on_packet(decoded.packet, now);
                    }
                    handled += len;
                }
                Ok(Status::Incomplete(_)) => break,
                Err(error) => {
                    tracing::debug!(client = %self.client_id, %error, "malformed packet");
                    let reason = error.reason_code();
                    let reason = if reason.is_valid_for(PacketType::Disconnect) {
                        reason
                    } else {
                        ReasonCode::ProtocolError
                    };
                    self.close_with(reason, &error.to_string());
                    break;
                }
            }
        }
        read.advance(handled);
        received.count(&self.router.stats);
        self.route(&mut published);
        PUBLISHED.with(|cell| cell.set(published));
        if let Some(link) = &mut self.link {
            link.read = read;
        }
    }

    /// Routes the messages this client published, in order; deliveries owed to full
    /// mailboxes are kept for the task to wait on (reading nothing more meanwhile), and
    /// the count of messages routed without waiting ([`SessionTask::calm`]) starts again.
    fn route(&mut self, published: &mut Vec<Message>) {
        if published.is_empty() {
            return;
        }
        let count = published.len();
        let routed = self.router.publish_all(self.key, published);
        self.calm = match routed.waiting.is_empty() {
            true => self
                .calm
                .saturating_add(u16::try_from(count).unwrap_or(u16::MAX)),
            false => 0,
        };
        self.waiting.extend(routed.waiting);
        self.congested |= routed.congested;
    }

    /// A PUBLISH from the client: the session takes it (QoS flows, topic alias), then the
    /// broker's verdict; returns the message to route, if accepted.
    fn on_publish(&mut self, packet: Packet<'_>, now: Instant) -> Option<Message> {
        let limit = self.config.message_size_limit as usize;
        // The session delivers it; the broker decides what the client is told.
        let router = &self.router;
        let rights = self.auth.as_deref().and_then(|a| a.rights.as_deref());
        let message = match self.session.handle(packet, now)? {
            p if limit != 0 && p.payload.len() > limit => Err(Refused::Size(p.payload.len())),
            p if !may_publish(router, rights, p.topic) => Err(Refused::Acl(p.topic.to_owned())),
            p => Ok(Message::new(
                p.topic,
                p.payload,
                p.qos,
                p.retain,
                &p.properties,
                now,
            )),
        };
        match message {
            Ok(message) => {
                self.session.decide(Verdict::Accept);
                Some(message)
            }
            Err(refused) => {
                let reason = match refused {
                    Refused::Size(size) => {
                        tracing::debug!(client = %self.client_id, size, "payload over message_size_limit");
                        ReasonCode::ImplementationSpecificError
                    }
                    Refused::Acl(topic) => {
                        tracing::debug!(client = %self.client_id, %topic, "PUBLISH not authorized");
                        ReasonCode::NotAuthorized
                    }
                };
                // 5.0: the reason code; 3.x: acknowledged all the same (the session's rule).
                self.session.decide(Verdict::Reject(reason));
                self.router.stats.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Queues a 5.0 answer with the reason string `why`, left out when the client takes no
    /// packet that large (a reason string must not make a packet exceed the client's
    /// Maximum Packet Size).
    pub(crate) fn answer(&mut self, packet: Packet<'_>, why: &str) {
        let max = self.session.connection().peer_maximum_packet_size;
        let version = self.version();
        if let Some(link) = &mut self.link {
            packet.with_reason_string(why, max, version, |answer| {
                encode_into(link.out.bytes_mut(), version, answer)
            });
        }
    }

    pub(crate) fn queue(&mut self, packet: &Packet<'_>) {
        let version = self.version();
        if let Some(link) = &mut self.link {
            encode_into(link.out.bytes_mut(), version, packet);
        }
    }

    pub(crate) fn on_packet(&mut self, packet: Packet<'_>, now: Instant) {
        match packet {
            Packet::Connect(_) => self.close_with(ReasonCode::ProtocolError, "a second CONNECT"),
            Packet::Subscribe(subscribe) => self.on_subscribe(&subscribe),
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(&unsubscribe),
            Packet::Auth(auth) => self.on_auth(&auth),
            other => {
                self.session.handle(other, now);
            }
        }
    }

    pub(crate) fn on_subscribe(&mut self, subscribe: &Subscribe<'_>) {
        let mut codes = Vec::new();
        let mut retained = Vec::new();
        // The reason string of the SUBACK (5.0): why the first refused filter was refused.
        let mut why = None;
        for subscription in subscribe.subscriptions.iter() {
            let Ok(filter) = TopicFilter::new(subscription.filter) else {
                codes.push(ReasonCode::TopicFilterInvalid);
                why.get_or_insert("invalid topic filter");
                continue;
            };
            let shared = filter.shared().is_some();
            if shared && subscription.options.no_local && self.version().is_v5() {
                // A protocol error (MQTT-3.8.3-4): the connection ends, nothing is granted.
                let why = "no local is not allowed on a shared subscription";
                self.close_with(ReasonCode::ProtocolError, why);
                return;
            }
            if shared && !self.version().is_v5() {
                // Before 5.0 `$share/` is an ordinary filter, which facteur does not take.
                codes.push(ReasonCode::TopicFilterInvalid);
                why.get_or_insert("shared subscriptions need MQTT 5.0");
                continue;
            }
            let plain = filter.shared().map_or(filter, |shared| shared.filter());
            if !self.may_subscribe(plain.as_str()) {
                codes.push(ReasonCode::NotAuthorized);
                why.get_or_insert("not authorized");
                continue;
            }
            let options = subscription.options;
            let subscribed = Subscribed {
                options,
                id: subscribe.properties.subscription_identifier(),
            };
            let new = self.router.subscribe(self.key, filter, subscribed);
            self.filters.insert(subscription.filter);
            codes.push(match options.qos {
                QoS::AtMostOnce => ReasonCode::Success,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            let send_retained = match options.retain_handling {
                RetainHandling::SendOnSubscribe => true,
                RetainHandling::SendIfNew => new,
                RetainHandling::DoNotSend => false,
            };
            if send_retained && !shared {
                for message in self.router.retained_for(filter) {
                    let qos = message.qos.min(options.qos);
                    retained.push(Delivery {
                        message,
                        qos,
                        retain: true,
                        subscription_ids: crate::message::SubscriptionIds::new(subscribed.id),
                    });
                }
            }
        }
        let suback = Packet::SubAck(SubAck::new(subscribe.packet_id, &codes));
        let problem_information = self.session.connection().peer_request_problem_information;
        match why.filter(|_| problem_information) {
            Some(why) => self.answer(suback, why),
            None => self.queue(&suback),
        }
        let mut tally = crate::delivery::Tally::default();
        for delivery in retained {
            tally.add(self.publish_to_session(&delivery, None));
        }
        tally.count(&self.router.stats);
    }

    pub(crate) fn on_unsubscribe(&mut self, unsubscribe: &Unsubscribe<'_>) {
        let mut codes = Vec::new();
        for filter in unsubscribe.filters.iter() {
            let existed = TopicFilter::new(filter)
                .map(|f| self.router.unsubscribe(self.key, f))
                .unwrap_or(false);
            self.filters.remove(filter);
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        let unsuback = Packet::UnsubAck(UnsubAck::new(unsubscribe.packet_id, &codes));
        let none = codes.contains(&ReasonCode::NoSubscriptionExisted);
        let problem_information = self.session.connection().peer_request_problem_information;
        match problem_information && none {
            true => self.answer(unsuback, "no subscription with this filter"),
            false => self.queue(&unsuback),
        }
    }
}

/// PUBLISH packets read and not yet added to [`crate::Stats::messages_received`].
#[derive(Debug, Default)]
struct Received(u64);

impl Received {
    /// Adds them to the broker's count (before they are routed, so a delivery is never
    /// seen before its count).
    fn count(&mut self, stats: &crate::Stats) {
        if self.0 > 0 {
            stats
                .messages_received
                .fetch_add(std::mem::take(&mut self.0), Ordering::Relaxed);
        }
    }
}
