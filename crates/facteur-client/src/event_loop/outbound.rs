//! What goes to the broker: messages handed to the session, its packets written in
//! batches, the publish futures completed from its events, the graceful DISCONNECT.

use std::time::Duration;

use facteur_codec::{
    Disconnect, Encode, EncodeError, Packet, Properties, Property, ProtocolVersion,
    Publish as WirePublish, QoS, ReasonCode,
};
use facteur_session::{Event as SessionEvent, MessageId, PublishError};
use tokio::sync::oneshot;
use tokio::time::timeout;

use super::{Closing, End, EventLoop, Outgoing, Pending};
use crate::client::Published;
use crate::transport::Conn;
use crate::Error;

impl EventLoop {
    /// Hands a message to the session, which queues it (connected or not).
    pub(super) fn publish(
        &mut self,
        message: Outgoing,
        done: oneshot::Sender<Result<Published, Error>>,
    ) {
        let limits = self.server_limits;
        let refused = if message.qos > limits.maximum_qos {
            Some(format!(
                "QoS {} is above the broker's Maximum QoS {}",
                message.qos as u8, limits.maximum_qos as u8
            ))
        } else if message.retain && !limits.retain_available {
            Some("the broker keeps no retained messages (Retain Available 0)".to_owned())
        } else {
            None
        };
        if let Some(why) = refused {
            let _ = done.send(Err(Error::InvalidMessage(why)));
            return;
        }
        let list = message.properties.to_list();
        let publish = WirePublish {
            qos: message.qos,
            retain: message.retain,
            properties: if self.version().is_v5() {
                Properties::from_slice(&list)
            } else {
                Properties::EMPTY
            },
            ..WirePublish::new(&message.topic, &message.payload)
        };
        let now = self.now();
        match self
            .session
            .publish_shared(&publish, message.payload.clone(), now)
        {
            Ok(id) => {
                self.publishes.insert(
                    id,
                    Pending {
                        qos: message.qos,
                        done,
                    },
                );
                self.queued.push_back(id);
            }
            Err(error) => {
                let error = match error {
                    PublishError::QueueFull | PublishError::Offline => Error::QueueFull,
                    other => Error::InvalidMessage(other.to_string()),
                };
                let _ = done.send(Err(error));
            }
        }
        self.after_session_events();
    }

    pub(super) fn write_timeout(&self) -> Option<Duration> {
        let ka = self.session.connection().keep_alive;
        (ka > 0).then(|| Duration::from_millis(u64::from(ka) * 1500))
    }

    /// Writes `bytes`; a write that cannot finish within 1.5 keep alive is a dead link.
    pub(super) async fn write(&mut self, conn: &mut Conn, bytes: &[u8]) -> Result<(), End> {
        let result = match self.write_timeout() {
            Some(limit) => timeout(limit, conn.write_all(bytes))
                .await
                .unwrap_or(Err(Error::KeepAliveTimeout)),
            None => conn.write_all(bytes).await,
        };
        result.map_err(End::Lost)
    }

    /// Writes everything the session has to send, in batches of up to 64 KiB.
    pub(super) async fn flush(&mut self, conn: &mut Conn) -> Result<(), End> {
        loop {
            let mut buf = std::mem::take(&mut self.write_buf);
            buf.clear();
            let now = self.now();
            let mut room = 4096;
            while buf.len() < 64 * 1024 {
                let len = buf.len();
                buf.resize(len + room, 0);
                match self.session.poll_transmit(now, &mut buf[len..]) {
                    Ok(Some(n)) => buf.truncate(len + n),
                    Ok(None) => {
                        buf.truncate(len);
                        break;
                    }
                    Err(EncodeError::BufferTooSmall { required, .. }) => {
                        buf.truncate(len);
                        room = required;
                        if len > 0 {
                            break; // write what is there, then the large one
                        }
                    }
                    Err(error) => {
                        // The session checked what it queued: this is a bug, not the network.
                        buf.truncate(len);
                        tracing::error!("cannot encode a packet: {error}");
                        self.session.abort(
                            ReasonCode::ImplementationSpecificError,
                            "the client cannot encode a packet",
                        );
                        self.pending_loss = Some(Error::InvalidMessage(error.to_string()));
                        break;
                    }
                }
            }
            self.after_session_events();
            if buf.is_empty() {
                self.write_buf = buf;
                return Ok(());
            }
            let written = self.write(conn, &buf).await;
            self.write_buf = buf;
            written?;
            self.complete_written();
        }
    }

    /// QoS 0 messages that left the session's queue were written: their futures complete.
    pub(super) fn complete_written(&mut self) {
        let sent = self.queued.len().saturating_sub(self.session.queued());
        for _ in 0..sent {
            let Some(id) = self.queued.pop_front() else {
                return;
            };
            if self
                .publishes
                .get(&id)
                .is_some_and(|p| p.qos == QoS::AtMostOnce)
            {
                if let Some(p) = self.publishes.remove(&id) {
                    let _ = p.done.send(Ok(Published {
                        reason: ReasonCode::Success,
                        reason_string: None,
                    }));
                }
            }
        }
    }

    /// A message's future fails, and it leaves the queue's record.
    pub(super) fn fail(&mut self, message: MessageId, error: Error) {
        self.queued.retain(|&m| m != message);
        if let Some(p) = self.publishes.remove(&message) {
            let _ = p.done.send(Err(error));
        }
    }

    /// Acts on what the session reports.
    pub(super) fn after_session_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::Acknowledged {
                    message,
                    packet_id,
                    reason,
                    ..
                } => {
                    let reason_string = self.reason_strings.remove(&packet_id);
                    if let Some(p) = self.publishes.remove(&message) {
                        // PUBCOMP 0x92 answers a PUBREL resent after the broker had
                        // completed the flow (its PUBCOMP was lost): the PUBREC had
                        // already said it took the message. PUBREC cannot carry 0x92.
                        let done = p.qos == QoS::ExactlyOnce
                            && reason == ReasonCode::PacketIdentifierNotFound;
                        let _ = p.done.send(if reason.is_error() && !done {
                            Err(Error::PublishRefused {
                                reason,
                                reason_string,
                            })
                        } else {
                            Ok(Published {
                                reason,
                                reason_string,
                            })
                        });
                    }
                }
                SessionEvent::Expired { message } => self.fail(message, Error::Expired),
                SessionEvent::Dropped { message } => self.fail(message, Error::QueueFull),
                SessionEvent::TooLarge { message } => self.fail(
                    message,
                    Error::InvalidMessage("larger than the broker's Maximum Packet Size".into()),
                ),
                SessionEvent::ProtocolError { reason } => {
                    self.pending_loss = Some(Error::Protocol(reason));
                }
                SessionEvent::KeepAliveTimeout => {
                    self.pending_loss = Some(Error::KeepAliveTimeout);
                }
                SessionEvent::Disconnected { reason } => {
                    self.pending_loss = Some(Error::ServerDisconnected {
                        reason,
                        reason_string: self.server_reason_string.take(),
                    });
                }
                _ => {}
            }
        }
    }

    /// The graceful end: DISCONNECT with the application's reason (and Session Expiry).
    pub(super) async fn say_goodbye(&mut self, conn: &mut Conn) -> End {
        let Some(closing) = self.closing.take() else {
            return End::Stop;
        };
        let version = self.version();
        let props = closing
            .session_expiry
            .map(Property::SessionExpiryInterval)
            .into_iter()
            .collect::<Vec<_>>();
        let disconnect = Disconnect {
            reason_code: closing.reason,
            properties: if version.is_v5() {
                Properties::from_slice(&props)
            } else {
                Properties::EMPTY
            },
        };
        let max = self.session.connection().peer_maximum_packet_size as usize;
        if let Ok(bytes) = encode(&Packet::Disconnect(disconnect), version, max) {
            let _ = self.write(conn, &bytes).await;
        }
        // The will is deleted by a normal DISCONNECT: the session is told it is over.
        self.closing = Some(Closing {
            done: closing.done,
            ..closing
        });
        End::Stop
    }
}

/// `packet` encoded, if it is at most `max` bytes.
pub(super) fn encode(
    packet: &Packet<'_>,
    version: ProtocolVersion,
    max: usize,
) -> Result<Vec<u8>, String> {
    let len = packet.encoded_len(version).map_err(|e| e.to_string())?;
    if len > max {
        return Err(format!(
            "{len} bytes, more than the broker's Maximum Packet Size ({max})"
        ));
    }
    let mut out = vec![0; len];
    packet
        .encode(version, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}
