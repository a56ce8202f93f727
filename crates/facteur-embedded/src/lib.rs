//! An MQTT 3.1.1 and 5.0 client for microcontrollers: `no_std`, no allocator, blocking
//! ([`blocking::Client`] over [`embedded_io`]) or async ([`asynch::Client`] over
//! [`embedded_io_async`]), over any stream the firmware has: a TCP socket of smoltcp,
//! embassy-net or an AT-command modem, or a TLS stream on top of one.
//!
//! * **Nothing hidden, nothing allocated.** The receive and transmit buffers are the
//!   caller's; the session's capacities are const generics of its
//!   [`HeaplessStore<INFLIGHT, QUEUE, BYTES>`](HeaplessStore): QoS 1/2 messages in flight each
//!   way, messages waiting to be sent, the largest topic + payload kept for sending.
//! * **Zero copy in.** A received message ([`Notification::Message`]) is read in place from
//!   the receive buffer; it is acknowledged once the application had it.
//! * **The same protocol code as the broker.** QoS 1/2 flows, packet identifiers, Receive
//!   Maximum, keep alive, the CONNACK's negotiation and session resumption are
//!   [`facteur_session`]'s; framing and validation are [`facteur_codec`]'s. This crate moves
//!   bytes and waits; the blocking and async clients share all the rest.
//! * **Time is the firmware's.** A [`Clock`] gives milliseconds (any `FnMut() -> u64`); the
//!   async client waits with an `embedded-hal-async` [`DelayNs`](embedded_hal_async::delay::DelayNs).
//! * **Errors are values.** [`Error`] says what to do: a buffer too small (with the size
//!   needed), the broker's refusal (with its reason code), the stream's error. No input from
//!   the network makes it panic.
//!
//! # From the dependency to the first publish
//!
//! ```toml
//! [dependencies]
//! facteur-embedded = "0.1"
//! ```
//!
//! ```no_run
//! use facteur_embedded::blocking::Client;
//! use facteur_embedded::{
//!     ConnectOptions, HeaplessStore, Notification, ProtocolVersion, QoS, Subscription,
//! };
//!
//! fn run<T: embedded_io::Read + embedded_io::Write>(
//!     socket: T, // an open TCP (or TLS) stream to the broker
//!     millis: impl FnMut() -> u64,
//! ) -> Result<(), facteur_embedded::Error<T::Error>> {
//!     // 1 KiB each way; 4 QoS 1/2 messages in flight, 4 waiting, 128 bytes of topic + payload.
//!     let (mut rx, mut tx) = ([0u8; 1024], [0u8; 1024]);
//!     let mut options = ConnectOptions::new(ProtocolVersion::V3_1_1, "sensor-1");
//!     options.keep_alive = 30;
//!     let mut client: Client<T, _, HeaplessStore<4, 4, 128>> =
//!         Client::new(options, millis, &mut rx, &mut tx);
//!
//!     client.connect(socket)?;
//!     client.subscribe(&[Subscription::new("maison/sensor-1/command", QoS::AtLeastOnce)])?;
//!     client.publish("maison/sensor-1/temperature", b"21.5", QoS::AtLeastOnce, false)?;
//!     loop {
//!         // Ok(None): the socket's read timed out (the keep alive was looked after).
//!         match client.poll()? {
//!             Some(Notification::Message(message)) => {
//!                 // Borrowed from `rx`: no copy.
//!                 let _command: &[u8] = message.payload;
//!             }
//!             Some(Notification::Published { .. }) => {} // the broker has the reading
//!             Some(_) | None => {}
//!         }
//!     }
//! }
//! ```
//!
//! The async client is the same with `.await` and a delay: see [`asynch::Client`].
//!
//! # Sizing
//!
//! * Each buffer: at least [`MIN_BUFFER`] bytes plus the largest topic + payload.
//! * The receive buffer bounds the largest packet the broker may send (a 5.0 broker is told
//!   so, Maximum Packet Size, and drops larger messages for this client; a 3.1.1 broker sends
//!   them anyway, which ends the connection with [`Error::RxBufferTooSmall`]).
//! * The transmit buffer must hold the largest PUBLISH (topic + payload + about 10 bytes);
//!   `publish` says [`Error::TxBufferTooSmall`] otherwise.
//! * `INFLIGHT` of the store: QoS 1/2 messages in flight each way. A 5.0 broker is told it
//!   (Receive Maximum); a 3.1.1 broker is not, and a burst of more unreleased QoS 2 messages
//!   than this ends the connection ([`Violation::Session`] with `ReceiveMaximumExceeded`):
//!   cover the broker's per-client window (mosquitto: `max_inflight_messages`, 20).
//! * `BYTES` of the store: the largest topic + payload (+ 3 for 5.0) kept until sent or
//!   acknowledged.
//!
//! # Reconnecting
//!
//! After an error that ends the connection ([`Error::is_fatal`]), open a new stream and call
//! `connect` again. With a session that lasts ([`ConnectOptions::resumes`]: a Session Expiry
//! Interval in 5.0, no clean session in 3.1.1) the broker resumes it and the QoS 1/2
//! messages that were in flight are sent again, then what was published meanwhile.
//! Subscriptions live in the broker's session; subscribe again when `connect` says
//! `session_present: false`.
//!
//! # TLS
//!
//! TLS is a stream like any other: wrap the TCP socket in a TLS client (embedded-tls, or the
//! modem's own TLS) and hand that to `connect`. See the crate's README for pinning the
//! server's certificate by its fingerprint.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod asynch;
pub mod blocking;
mod clock;
mod core;
mod error;
mod notification;
mod options;

pub use clock::Clock;

/// The smallest receive and transmit buffers that hold every packet of the protocol's own
/// (CONNACK, acknowledgements and DISCONNECT with their MQTT 5 reason strings, SUBACK of a
/// few filters) besides the application's messages: size each buffer as this plus the
/// largest topic + payload.
///
/// ```
/// // Messages of up to 64 bytes of topic and 256 of payload, each way.
/// const BUFFER: usize = facteur_embedded::MIN_BUFFER + 64 + 256;
/// let (rx, tx) = ([0u8; BUFFER], [0u8; BUFFER]);
/// # let _ = (rx, tx);
/// ```
pub const MIN_BUFFER: usize = 128;
pub use error::{Error, Violation};
pub use notification::{AckResults, DropReason, Notification};
pub use options::ConnectOptions;

pub use facteur_codec::{
    Properties, Property, ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, Subscription,
    SubscriptionOptions, Will,
};
pub use facteur_session::{Connected, HeaplessStore, MessageId, Session, Store};
