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
//! Call each `poll_*` until it returns `None` after every input.
//!
//! All state lives in containers named by a [`Store`]: [`HeaplessStore`] has fixed
//! capacities and needs no allocator; [`AllocStore`] (feature `alloc`) grows. The state
//! machine is the same code for both.
//!
//! # Features
//!
//! * `std` (default): implies `alloc`, and `std` on the dependencies.
//! * `alloc`: [`AllocStore`].
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod event;
mod ids;
mod session;
mod store;
mod time;

pub use event::{Event, MessageId};
pub use ids::PacketIds;
pub use session::{Config, Connection, PublishError, Role, Session};
#[cfg(feature = "alloc")]
pub use store::AllocStore;
pub use store::{Ack, Alias, Fifo, HeaplessStore, Inflight, Message, OwnedBytes, Seq, Store};
pub use time::Instant;
