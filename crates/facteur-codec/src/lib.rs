//! The MQTT codec of facteur: every packet of MQTT 3.1, 3.1.1 and 5.0.
//!
//! * **`no_std`, no allocator.** Decoding borrows from the input; encoding writes into the
//!   caller's buffer (or, with the `bytes` feature, any `BufMut`).
//! * **Zero-copy.** A decoded [`Publish`] holds `&str` and `&[u8]` into the input. Lists
//!   (properties, subscriptions, reason codes) are validated once and then read in place
//!   ([`List`], [`Properties`]), so nothing is allocated or dropped however many there are.
//! * **Streaming.** [`decode`] on a partial buffer answers [`Status::Incomplete`] with how many
//!   bytes are still needed; the size limit is applied as soon as the length is read.
//! * **Strict.** Every rule of the spec that a single packet can break is checked, and the
//!   [`DecodeError`] says what and where, and which [`ReasonCode`] answers it.
//! * **One codec.** The same types and functions serve all three versions, the client, the
//!   broker and embedded users. The version is an input: CONNECT carries it, and from then on
//!   it belongs to the connection.
//! * **Check once, write many.** Encoding checks what decoding checks, so what facteur writes,
//!   facteur (and any strict peer) reads. For PUBLISH, the packet sent most, the checks run once:
//!   [`Publish::prepare`] gives a [`PreparedPublish`] whose encoding only checks the buffer's
//!   length, and whose packet identifier, DUP and RETAIN change without a second check. That
//!   is the recommended way to send a PUBLISH; [`Encode::encode`] on a [`Publish`] prepares and
//!   writes in one call.
//!
//! # Example: a stream in, replies out
//!
//! ```
//! use facteur_codec::{
//!     decode, ConnAck, Encode, Packet, ProtocolVersion, PubResponse, ReasonCode, Status,
//! };
//!
//! // Bytes as they came off a socket: CONNECT (3.1.1), a QoS 1 PUBLISH, half of a PINGREQ.
//! let mut input: &[u8] = &[
//!     0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x04,
//!     b's', b'e', b'n', b's', // CONNECT, client id "sens"
//!     0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, b'o', b'k', // PUBLISH id 1
//!     0xC0, // PINGREQ, first byte only
//! ];
//! let mut version = ProtocolVersion::V3_1_1;
//! let mut out = [0u8; 64];
//! let mut written = 0;
//! loop {
//!     let decoded = match decode(input, version, 1024)? {
//!         Status::Complete(decoded) => decoded,
//!         Status::Incomplete(needed) => {
//!             assert_eq!(needed.get(), 1); // wait for one more byte
//!             break;
//!         }
//!     };
//!     let reply = match decoded.packet {
//!         Packet::Connect(connect) => {
//!             version = connect.protocol;
//!             Packet::ConnAck(ConnAck::new(ReasonCode::Success))
//!         }
//!         Packet::Publish(publish) => {
//!             assert_eq!((publish.topic, publish.payload), ("a/b", &b"ok"[..]));
//!             Packet::PubAck(PubResponse::new(publish.packet_id.unwrap()))
//!         }
//!         _ => unreachable!(),
//!     };
//!     written += reply.encode(version, &mut out[written..]).unwrap();
//!     input = &input[decoded.len..];
//! }
//! assert_eq!(&out[..written], &[0x20, 0x02, 0x00, 0x00, 0x40, 0x02, 0x00, 0x01]);
//! # Ok::<(), facteur_codec::DecodeError>(())
//! ```
//!
//! # Example: one message to many subscribers
//!
//! A broker checks a message once per protocol version, then writes it to each subscriber
//! with that subscriber's packet identifier. Properties that came off the wire are copied as
//! one slice.
//!
//! ```
//! use core::num::NonZeroU16;
//! use facteur_codec::{decode, Packet, ProtocolVersion, Status};
//!
//! // A QoS 1 PUBLISH (5.0) as a publisher sent it: topic "a/b", Message Expiry 60 s, "ok".
//! let received: &[u8] = &[
//!     0x32, 0x0F, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x09, // topic, packet id 9
//!     0x05, 0x02, 0x00, 0x00, 0x00, 0x3C, b'o', b'k', // properties, payload
//! ];
//! let Status::Complete(decoded) = decode(received, ProtocolVersion::V5, 1024)? else {
//!     unreachable!()
//! };
//! let Packet::Publish(message) = decoded.packet else { unreachable!() };
//! let mut prepared = message.prepare(ProtocolVersion::V5)?;
//! let mut out = [0u8; 64];
//! for (subscriber_packet_id, expected_id_bytes) in [(1, [0, 1]), (300, [1, 44])] {
//!     prepared.set_packet_id(NonZeroU16::new(subscriber_packet_id).unwrap())?;
//!     let n = prepared.encode(&mut out)?;
//!     assert_eq!(n, received.len());
//!     assert_eq!(&out[7..9], &expected_id_bytes);
//!     assert_eq!(&out[9..n], &received[9..]); // properties and payload as received
//! }
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
//!
//! # Features
//!
//! * `std` (default): nothing more than the `std` feature of the dependencies; the errors
//!   implement `core::error::Error` in every configuration.
//! * `bytes`: encode into any `bytes::BufMut`, and [`split_frame`] cuts whole packets out of a
//!   `BytesMut` as shared `Bytes` so payloads are handed on without copying.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "bytes")]
mod bytes_support;
mod error;
mod header;
mod list;
mod packet;
mod property;
mod qos;
mod read;
mod reason;
mod varint;
mod version;
mod write;

#[cfg(feature = "bytes")]
pub use bytes_support::{shared_slice, split_frame};
pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use header::{frame, FixedHeader, PacketType, Status, PROTOCOL_MAX_PACKET_SIZE};
pub use list::{Item, List, ListIter};
pub use packet::{
    decode, decode_frame, Auth, ConnAck, Connect, Decoded, Disconnect, Encode, Packet,
    PreparedPublish, PubResponse, Publish, RetainHandling, SubAck, Subscribe, Subscription,
    SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
pub use property::{PayloadFormat, Properties, Property, PropertyId};
pub use qos::QoS;
pub use reason::ReasonCode;
pub use varint::VARINT_MAX;
pub use version::ProtocolVersion;
pub use write::{Sink, SliceWriter};
