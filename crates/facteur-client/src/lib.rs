//! facteur-client: a tokio MQTT 3.1.1 / 5.0 client over TCP, TLS (rustls) and WebSocket.
//!
//! One task per client owns the connection and a `facteur-session` [`Session`](facteur_session::Session):
//! QoS 1/2 flows, packet identifiers, Receive Maximum, keep alive, topic aliases and the
//! CONNACK negotiation are the session's, the same code the facteur broker runs. The
//! application holds cheap [`Client`] handles and reads [`Messages`].
//!
//! * [`Client::publish`] returns a future that completes when the message is written
//!   (QoS 0), acknowledged (QoS 1, PUBACK) or complete (QoS 2, PUBCOMP), with the 5.0
//!   reason code and reason string; a refusal is an [`Error::PublishRefused`].
//! * [`Client::subscribe_many`] / [`Client::unsubscribe`] return the broker's answer for
//!   each filter.
//! * Incoming messages are owned [`Message`]s, the payload a `Bytes` sharing the packet's
//!   memory; with [`Options::manual_acks`] the PUBACK/PUBREC waits for [`Message::ack`].
//! * Bounded everywhere: a full queue makes `publish` wait while connected and fail
//!   ([`Error::QueueFull`]) past [`Options::max_queued`] while offline; unread messages
//!   stop the reading; a packet over [`Options::max_packet_size`] is refused from its
//!   header, before its body is read.
//! * Reconnection with exponential backoff and jitter ([`Reconnect`]); [`Event`]s for
//!   connected (session present) and disconnected (why); subscriptions made again when
//!   the broker lost the session; QoS 1/2 in flight resent (DUP, PUBREL); a dead link is
//!   noticed within 1.5 times the keep alive.
//!
//! ```no_run
//! use facteur_client::{Client, Options};
//! use facteur_codec::QoS;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), facteur_client::Error> {
//!     let (client, mut messages) = Client::connect(Options::from_url("mqtt://localhost:1883")?).await?;
//!     client.subscribe("maison/#", QoS::AtLeastOnce).await?;
//!     let ack = client.publish("maison/salon/temperature", "21.5").qos(QoS::AtLeastOnce).await?;
//!     println!("acknowledged: {:?}", ack.reason);
//!     if let Some(message) = messages.recv().await {
//!         println!("{} = {:?}", message.topic, message.payload_str());
//!     }
//!     client.disconnect().await
//! }
//! ```
#![forbid(unsafe_code)]

mod client;
mod error;
mod event_loop;
mod message;
mod options;
mod tls;
mod transport;

pub use client::{Client, Event, Granted, Messages, Publish, Published};
pub use error::Error;
pub use message::{Message, PublishProperties};
pub use options::{parse_protocol, Options, Reconnect, Roots, TlsOptions, Transport, Will};

/// Re-exported: QoS, reason codes, protocol versions and subscription options.
pub use facteur_codec::{ProtocolVersion, QoS, ReasonCode, RetainHandling, SubscriptionOptions};
