//! The sans-IO MQTT session of facteur: the QoS state machine shared by clients, brokers and
//! embedded users.
//!
//! In the style of `quinn-proto`, a [`Session`] does no I/O, reads no clock and never waits.
//! The caller hands in what it received and the time, then pulls what to send, what happened
//! and when to wake up next:
//!
//! * [`Session::handle`] takes a decoded [`Packet`](facteur_codec::Packet) and `now`, and
//!   returns the message to deliver, if any (borrowed: nothing is copied on the way in);
//! * [`Session::poll_transmit`] encodes the next packet to send into the caller's buffer;
//! * [`Session::poll_event`] returns the next [`Event`];
//! * [`Session::poll_timeout`] says when [`Session::handle_timeout`] is due.
//!
//! Call each `poll_*` until it returns `None` after every input. Connections come and go
//! around the session: [`Session::on_connect`], [`Session::on_connection_lost`] (with the
//! time it happened), [`Session::on_reconnect`].
//!
//! # What it does
//!
//! * **CONNECT and CONNACK**, decided once for every server and client:
//!   a server answers a CONNECT with [`client_identifier`] and [`Session::accept_connect`]
//!   (keep alive capped and Server Keep Alive, Receive Maximum both ways, Topic Alias
//!   Maximum, Maximum Packet Size, Request Problem Information, Session Expiry for 3.x and
//!   5.0, the will, session present under a [`ServerPolicy`]), and writes
//!   [`Accepted::connack`]; a connection replacing one still up goes through
//!   [`Session::take_over`] first. A client reads the CONNACK with
//!   [`Session::accept_connack`].
//! * **The verdict on an incoming PUBLISH**: its PUBACK or PUBREC is queued only once the
//!   caller decides ([`Session::decide`] with a [`Verdict`]: MQTT 5 refusals carry the
//!   reason code; 3.x acknowledges and the caller drops).
//! * **Bounded queues** ([`QueueLimits`] in [`Config`]): messages, payload bytes, QoS 0
//!   displaced first, none kept offline if asked; [`Session::admission`] tells a caller
//!   how many more the queue takes.
//! * **Fan-out encoded once** (feature `alloc`): a `Frame` is a PUBLISH checked and encoded
//!   once for many sessions; `Session::publish_frame` queues it, and each send copies it
//!   with the session's own packet identifier (DUP on a resend). `Session::publish_frame_now`
//!   writes it into the caller's buffer at once when it is what the next `poll_transmit`
//!   would send (same bytes, same state), skipping the queue.
//! * **Outgoing QoS 1 and 2** ([`Session::publish`], or [`Session::publish_shared`] to
//!   keep one payload for many sessions, a `bytes::Bytes` with [`AllocStore`]): packet
//!   identifiers from [`PacketIds`]
//!   (never one still in flight); PUBLISH → PUBACK, PUBLISH → PUBREC → PUBREL → PUBCOMP; on
//!   a new connection unacknowledged PUBLISH packets are resent with DUP set and PUBREL
//!   packets are resent, in their original order, before anything new.
//! * **Incoming QoS 1 and 2**: QoS 1 is delivered and acknowledged; QoS 2 is delivered once
//!   and its identifier kept until PUBREL, so a replayed PUBLISH is acknowledged (PUBREC) and
//!   not delivered again. The identifiers kept are bounded: past the Receive Maximum (and the
//!   store's capacity) the peer is refused ([`Event::ProtocolError`] with
//!   `ReceiveMaximumExceeded`, and DISCONNECT 0x93 in MQTT 5).
//! * **MQTT 5 Receive Maximum** both ways, **keep alive** (client PINGREQ after a keep alive
//!   of silence; peer gone after 1.5 × keep alive: [`Event::KeepAliveTimeout`]), **topic
//!   aliases** both ways, **message expiry** (the time spent queued is subtracted; expired
//!   messages are dropped before sending, and on the timer: [`Session::poll_timeout`]
//!   includes the earliest expiry of a queued message, connected or not, and
//!   [`Session::handle_timeout`] drops what ran out: [`Event::Expired`]), the peer's
//!   **Maximum Packet Size** (a message that would exceed it is dropped:
//!   [`Event::TooLarge`]).
//! * **Every MQTT 5 PUBLISH property** of an outgoing message (user properties, content type,
//!   response topic, correlation data, payload format, subscription identifiers) is stored as
//!   wire bytes with the message and sent as given, resends included; the Message Expiry
//!   Interval is rewritten to the time left at each send (a DUP resend too), and a Topic
//!   Alias given by the caller is dropped (the session assigns its own).
//! * **Session expiry** (server side, [`Session::set_session_expiry`], from CONNECT and
//!   changed by the client's DISCONNECT): once the connection is lost, the session lasts the
//!   Session Expiry Interval (0: it ends with the connection; `0xFFFF_FFFF`: never), then
//!   [`Session::handle_timeout`] reports [`Event::SessionExpired`] and discards its state. A
//!   new connection before that stops the timer.
//! * **The will** (server side, [`Session::set_will`], from CONNECT): kept with its
//!   properties (as wire bytes) and Will Delay Interval. A normal DISCONNECT (0x00) deletes
//!   it; when the connection ends otherwise (DISCONNECT 0x04 or any other reason, keep alive
//!   timeout, protocol error, network loss), it is due after the will delay or the session
//!   expiry, whichever is shorter: [`Event::WillDue`], and the caller publishes
//!   [`Session::will`]. A new connection before that cancels it.
//!
//! # Retained messages
//!
//! [`RetainedStore`] (feature `alloc`) keeps a server's retained messages: the last one of
//! each topic with its QoS and MQTT 5 properties (as wire bytes), cleared by an empty
//! payload, found by topic filter through `facteur-topic`'s `RetainedIndex` (a lookup never
//! scans every topic; a leading wildcard does not match `$` topics). Expired messages are not
//! returned and are removed; those returned carry the Message Expiry Interval left.
//! [`RetainedStore::with_limits`] bounds the topics and bytes it holds. It needs
//! `alloc` (a fixed-capacity index would scan every topic); its message buffer is generic
//! (`Vec<u8>`, or `heapless::Vec<u8, N>` to bound each message).
//!
//! # Storage
//!
//! All state lives in containers named by a [`Store`]: [`HeaplessStore`] has fixed
//! capacities and needs no allocator; [`AllocStore`] (feature `alloc`) grows. The state
//! machine is the same code for both. An idle `Session<AllocStore>` is small (a broker keeps
//! one per client): each container is one pointer until used, and
//! [`Session::release_idle_memory`] frees those that are empty again. The messages in
//! flight are a ring ([`Window`]): the acknowledged one, nearly always the oldest, is taken
//! from the front without moving the others.
//!
//! ```
//! use facteur_codec::{decode, ProtocolVersion, Publish, QoS, Status};
//! use facteur_session::{Config, Connection, HeaplessStore, Instant, Role, Session};
//!
//! // 4 messages in flight each way, 8 queued, 128 bytes of topic + payload each, 2 aliases.
//! type Store = HeaplessStore<4, 8, 128, 2>;
//! let mut server = Session::<Store>::new(Config::new(Role::Server));
//! server.on_connect(Instant::from_millis(0), Connection::new(ProtocolVersion::V3_1_1, 30));
//!
//! // A QoS 2 PUBLISH arrives twice (the second time as a resend): delivered once.
//! let bytes = [0x34, 0x07, 0x00, 0x01, b't', 0x00, 0x05, b'o', b'k'];
//! let mut delivered = 0;
//! let mut out = [0u8; 64];
//! for now in [10, 20] {
//!     let now = Instant::from_millis(now);
//!     let Status::Complete(d) = decode(&bytes, ProtocolVersion::V3_1_1, 1024)? else {
//!         unreachable!()
//!     };
//!     if let Some(message) = server.handle(d.packet, now) {
//!         assert_eq!(message.payload, b"ok");
//!         delivered += 1;
//!     }
//!     // PUBREC both times.
//!     let n = server.poll_transmit(now, &mut out)?.unwrap();
//!     assert_eq!(&out[..n], &[0x50, 0x02, 0x00, 0x05]);
//!     assert_eq!(server.poll_transmit(now, &mut out)?, None);
//! }
//! assert_eq!(delivered, 1);
//! // Nothing heard for 45 s (1.5 × 30): the client is gone.
//! assert_eq!(server.poll_timeout(), Some(Instant::from_millis(20 + 45_000)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Not covered
//!
//! The peer's Maximum QoS and Retain Available are not enforced (the caller chooses what to
//! publish); SUBSCRIBE/UNSUBSCRIBE identifiers are not managed here; subscriptions, routing
//! and publishing a due will to subscribers are the caller's (see `facteur-topic`'s
//! `SubscriptionTree`); so are authentication and the client identifier a server assigns.
//!
//! # Features
//!
//! * `std` (default): implies `alloc`, and `std` on the dependencies.
//! * `alloc`: [`AllocStore`] and [`RetainedStore`].
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod connect;
mod event;
mod frame;
mod ids;
mod props;
#[cfg(feature = "alloc")]
mod retained;
mod session;
mod store;
mod time;

pub use connect::{
    client_identifier, Accepted, ClientId, ConnAckProperties, Connected, Refused, ServerPolicy,
    TakeOver,
};
pub use event::{Event, MessageId};
#[cfg(feature = "alloc")]
pub use frame::Frame;
pub use ids::PacketIds;
#[cfg(feature = "alloc")]
pub use retained::{RetainedMessage, RetainedStore};
pub use session::{
    Admission, Config, Connection, Deferred, FrameOut, PublishError, QueueLimits, Role, Session,
    Verdict,
};
pub use store::{
    Ack, Alias, Fifo, HeaplessStore, Inflight, Inline, Message, OwnedBytes, Payload, Seq, Slot,
    Store, Window,
};
#[cfg(feature = "alloc")]
pub use store::{AllocStore, SlimDeque, SlimOption, SlimVec};
pub use time::Instant;
