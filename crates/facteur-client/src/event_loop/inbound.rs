//! What comes from the broker: whole packets cut from the read buffer within the Maximum
//! Packet Size, decoded, handed to the session; messages to the application.

use facteur_codec::{decode, shared_slice, split_frame, QoS, ReasonCode, Status};
use facteur_session::Verdict;

use super::{End, EventLoop};
use crate::message::{Message, PendingAck};
use crate::Error;

impl EventLoop {
    /// The connection ends because of the broker's bytes: DISCONNECT with `reason` (5.0).
    pub(super) fn protocol_failure(&mut self, reason: ReasonCode, why: &'static str) -> End {
        self.session.abort(reason, why);
        self.pending_loss = Some(Error::Protocol(reason));
        End::Lost(Error::Protocol(reason))
    }

    /// Takes every whole packet read.
    pub(super) async fn on_bytes(&mut self) -> Result<(), End> {
        let version = self.version();
        let max = self.options.max_packet_size;
        loop {
            let frame = match split_frame(&mut self.read_buf, max) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let why = if e.skip_len().is_some() {
                        "packet larger than the client's Maximum Packet Size"
                    } else {
                        "malformed packet"
                    };
                    return Err(self.protocol_failure(e.reason_code(), why));
                }
            };
            let packet = match decode(&frame, version, max) {
                Ok(Status::Complete(d)) => d.packet,
                Ok(Status::Incomplete(_)) => {
                    return Err(
                        self.protocol_failure(ReasonCode::MalformedPacket, "malformed packet")
                    )
                }
                Err(e) => return Err(self.protocol_failure(e.reason_code(), "malformed packet")),
            };
            self.before_handle(&packet)?;
            let now = self.now();
            let delivered = self
                .session
                .handle(packet, now)
                .map(|p| Message::from_publish(&p, shared_slice(&frame, p.payload)));
            if let Some(mut message) = delivered {
                if self.options.manual_acks && message.qos != QoS::AtMostOnce {
                    if let Some(token) = self.session.defer() {
                        match self.ack_sender.upgrade() {
                            Some(commands) => {
                                message.ack = Some(PendingAck {
                                    token,
                                    commands,
                                    sent: false,
                                });
                            }
                            None => self.session.acknowledge(token, Verdict::Accept),
                        }
                    }
                }
                self.session.decide(Verdict::Accept);
                // Waits while the application has not read enough: backpressure to the
                // broker. A closed stream drops the message (acknowledged).
                let _ = self.messages.send(message).await;
            }
            self.after_session_events();
            if !self.session.is_connected() {
                return Ok(());
            }
        }
    }
}
