//! SUBSCRIBE and UNSUBSCRIBE: identifiers reserved from the session, the packets written,
//! the broker's answers (SUBACK/UNSUBACK) given to the waiting futures, and the
//! subscriptions kept to make again when the broker lost the session.

use facteur_codec::{
    Packet, QoS, ReasonCode, Subscribe, Subscription, SubscriptionOptions, Unsubscribe,
};
use tokio::sync::oneshot;

use super::outbound::encode;
use super::{End, EventLoop, Request};
use crate::client::Granted;
use crate::transport::Conn;
use crate::Error;

impl EventLoop {
    pub(super) fn take_subscribe(
        &mut self,
        filters: Vec<(String, SubscriptionOptions)>,
        done: oneshot::Sender<Result<Vec<Granted>, Error>>,
    ) -> Option<u16> {
        let Some(id) = self.session.reserve_packet_id() else {
            let _ = done.send(Err(Error::QueueFull));
            return None;
        };
        self.requests.insert(
            id,
            Request::Subscribe {
                filters,
                done: Some(done),
            },
        );
        Some(id)
    }

    pub(super) fn take_unsubscribe(
        &mut self,
        filters: Vec<String>,
        done: oneshot::Sender<Result<Vec<Result<(), ReasonCode>>, Error>>,
    ) -> Option<u16> {
        let Some(id) = self.session.reserve_packet_id() else {
            let _ = done.send(Err(Error::QueueFull));
            return None;
        };
        self.requests
            .insert(id, Request::Unsubscribe { filters, done });
        Some(id)
    }

    /// Writes the SUBSCRIBE or UNSUBSCRIBE of request `id`; one that cannot be encoded
    /// (a filter too long, larger than the broker takes) fails.
    pub(super) async fn write_request(&mut self, conn: &mut Conn, id: u16) -> Result<(), End> {
        let version = self.version();
        let max = self.session.connection().peer_maximum_packet_size as usize;
        let encoded = match self.requests.get(&id) {
            None => return Ok(()),
            Some(Request::Subscribe { filters, .. }) => {
                let subs: Vec<Subscription<'_>> = filters
                    .iter()
                    .map(|(filter, options)| Subscription {
                        filter,
                        options: *options,
                    })
                    .collect();
                encode(&Packet::Subscribe(Subscribe::new(id, &subs)), version, max)
            }
            Some(Request::Unsubscribe { filters, .. }) => {
                let list: Vec<&str> = filters.iter().map(String::as_str).collect();
                encode(
                    &Packet::Unsubscribe(Unsubscribe::new(id, &list)),
                    version,
                    max,
                )
            }
        };
        let bytes = match encoded {
            Ok(bytes) => bytes,
            Err(why) => {
                self.session.release_packet_id(id);
                match self.requests.remove(&id) {
                    Some(Request::Subscribe {
                        done: Some(done), ..
                    }) => {
                        let _ = done.send(Err(Error::InvalidFilter(why)));
                    }
                    Some(Request::Unsubscribe { done, .. }) => {
                        let _ = done.send(Err(Error::InvalidFilter(why)));
                    }
                    _ => {}
                }
                return Ok(());
            }
        };
        self.write(conn, &bytes).await
    }

    /// What the client itself takes from a packet before the session sees it: answers to
    /// its requests, reason strings.
    pub(super) fn before_handle(&mut self, packet: &Packet<'_>) -> Result<(), End> {
        match packet {
            Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubComp(r) => {
                if let Some(why) = r.properties.reason_string() {
                    // Bounded: at most one per identifier in flight, and never many.
                    if self.reason_strings.len() < 1024 {
                        self.reason_strings.insert(r.packet_id, why.to_owned());
                    }
                }
            }
            Packet::Disconnect(d) => {
                self.server_reason_string = d.properties.reason_string().map(str::to_owned);
            }
            Packet::SubAck(ack) => {
                let Some(Request::Subscribe { filters, done }) =
                    self.take_request(ack.packet_id, true)
                else {
                    return Ok(()); // the session says what is wrong
                };
                let codes: Vec<ReasonCode> = ack.reason_codes.iter().collect();
                if codes.len() != filters.len() {
                    if let Some(done) = done {
                        let _ = done.send(Err(Error::Protocol(ReasonCode::ProtocolError)));
                    }
                    return Err(self.protocol_failure(
                        ReasonCode::ProtocolError,
                        "SUBACK with another number of codes than filters",
                    ));
                }
                let mut results = Vec::with_capacity(codes.len());
                for ((filter, options), code) in filters.into_iter().zip(codes) {
                    let granted = match code {
                        ReasonCode::Success => Ok(QoS::AtMostOnce),
                        ReasonCode::GrantedQoS1 => Ok(QoS::AtLeastOnce),
                        ReasonCode::GrantedQoS2 => Ok(QoS::ExactlyOnce),
                        other => Err(other),
                    };
                    if granted.is_ok() {
                        self.subscriptions.retain(|(f, _)| *f != filter);
                        self.subscriptions.push((filter, options));
                    }
                    results.push(granted);
                }
                if let Some(done) = done {
                    let _ = done.send(Ok(results));
                }
            }
            Packet::UnsubAck(ack) => {
                let Some(Request::Unsubscribe { filters, done }) =
                    self.take_request(ack.packet_id, false)
                else {
                    return Ok(());
                };
                let codes: Vec<ReasonCode> = ack.reason_codes.iter().collect();
                let results: Vec<Result<(), ReasonCode>> = if self.version().is_v5() {
                    if codes.len() != filters.len() {
                        let _ = done.send(Err(Error::Protocol(ReasonCode::ProtocolError)));
                        return Err(self.protocol_failure(
                            ReasonCode::ProtocolError,
                            "UNSUBACK with another number of codes than filters",
                        ));
                    }
                    codes
                        .into_iter()
                        .map(|c| if c.is_error() { Err(c) } else { Ok(()) })
                        .collect()
                } else {
                    filters.iter().map(|_| Ok(())).collect()
                };
                for filter in &filters {
                    self.subscriptions.retain(|(f, _)| f != filter);
                }
                let _ = done.send(Ok(results));
            }
            _ => {}
        }
        Ok(())
    }

    /// The request `id` if it is of the kind answered (SUBSCRIBE when `subscribe`).
    pub(super) fn take_request(&mut self, id: u16, subscribe: bool) -> Option<Request> {
        let matches = match self.requests.get(&id)? {
            Request::Subscribe { .. } => subscribe,
            Request::Unsubscribe { .. } => !subscribe,
        };
        if !matches {
            return None;
        }
        self.requests.remove(&id)
    }
}
