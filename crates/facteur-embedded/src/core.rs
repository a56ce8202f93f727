//! The driver without I/O: buffers, the session, CONNECT and the packets the session does not
//! handle (CONNACK, SUBACK, UNSUBACK). The blocking and async clients are this plus a stream:
//! they move bytes between the stream and the buffers and wait, nothing else.
//!
//! Every rule of the protocol is facteur-session's (QoS 1/2 flows, packet identifiers,
//! Receive Maximum, keep alive, the CONNACK's negotiation) or facteur-codec's (framing,
//! validation).

use facteur_codec::{
    decode, Connect, Disconnect, Encode, EncodeError, Packet, Properties, Property, Publish, QoS,
    ReasonCode, Status, Subscribe, Subscription, Unsubscribe,
};
use facteur_session::{Config, Connected, Event, Instant, MessageId, Role, Session, Store};

use crate::{AckResults, Clock, ConnectOptions, DropReason, Error, Notification, Violation};

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No connection (never connected, or lost).
    Down,
    /// CONNECT sent (or staged), CONNACK awaited until the deadline.
    Connecting { deadline: Instant },
    /// Connected.
    Up,
}

/// What the last successful [`Core::step`] has ready for [`Core::notification`].
#[derive(Debug, Clone, Copy)]
enum Ready {
    /// The CONNACK was accepted.
    Connected(Connected),
    /// A notification that borrows nothing.
    Owned(Notification<'static>),
    /// A PUBLISH to deliver, or a SUBACK / UNSUBACK: the packet at the start of the receive
    /// buffer (decoded again when taken, so that nothing borrowed is kept across calls).
    Frame,
}

/// The state both clients share.
pub(crate) struct Core<'a, S: Store, C> {
    session: Session<S>,
    options: ConnectOptions<'a>,
    clock: C,
    state: State,
    rx: &'a mut [u8],
    /// Bytes held in `rx`.
    rx_len: usize,
    /// The packet at the start of `rx` reported by the last step, dropped by the next.
    rx_reported: usize,
    tx: &'a mut [u8],
    /// Bytes of `tx` already written to the stream.
    tx_start: usize,
    /// Bytes of `tx` staged.
    tx_end: usize,
    ready: Option<Ready>,
}

impl<'a, S: Store, C: Clock> Core<'a, S, C> {
    pub(crate) fn new(
        options: ConnectOptions<'a>,
        clock: C,
        rx: &'a mut [u8],
        tx: &'a mut [u8],
    ) -> Self {
        Self {
            session: Session::new(Config::new(Role::Client)),
            options,
            clock,
            state: State::Down,
            rx,
            rx_len: 0,
            rx_reported: 0,
            tx,
            tx_start: 0,
            tx_end: 0,
            ready: None,
        }
    }

    pub(crate) fn now(&mut self) -> Instant {
        Instant::from_millis(self.clock.now_ms())
    }

    pub(crate) fn session(&self) -> &Session<S> {
        &self.session
    }

    pub(crate) fn options(&self) -> &ConnectOptions<'a> {
        &self.options
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.state == State::Up
    }

    pub(crate) fn require_up<E>(&self) -> Result<(), Error<E>> {
        match self.state {
            State::Up => Ok(()),
            _ => Err(Error::NotConnected),
        }
    }

    /// A new connection starts: the buffers are emptied and the CONNECT staged. The session
    /// is resumed (no clean start) if it has state and the options keep sessions.
    pub(crate) fn begin_connect<E>(&mut self) -> Result<(), Error<E>> {
        if self.state != State::Down {
            return Err(Error::NotConnected);
        }
        let now = self.now();
        self.rx_len = 0;
        self.rx_reported = 0;
        self.tx_start = 0;
        self.tx_end = 0;
        self.ready = None;
        let o = &self.options;
        let clean_start = match (self.session.has_state(), o.version.is_v5()) {
            (true, _) if o.resumes() => false,
            // 5.0: a client without session state (its first connection, a reboot) cannot
            // resume one, and must close the connection if the broker says it did
            // (MQTT-3.2.2-4): it starts clean; the session expiry keeps the new one.
            (false, true) => true,
            _ => o.clean_start,
        };
        // 5.0: what this client takes (the store's capacity, the receive buffer).
        let props = [
            Property::SessionExpiryInterval(o.session_expiry),
            Property::ReceiveMaximum(self.session.receive_maximum()),
            Property::MaximumPacketSize(u32::try_from(self.rx.len()).unwrap_or(u32::MAX)),
        ];
        // A Session Expiry Interval of 0 is the default: not sent.
        let first = usize::from(o.session_expiry == 0);
        let connect = Connect {
            protocol: o.version,
            clean_start,
            keep_alive: o.keep_alive,
            client_id: o.client_id,
            will: o.will,
            username: o.username,
            password: o.password,
            properties: Properties::from_slice(&props[first..]),
        };
        self.stage(&Packet::Connect(connect))?;
        let timeout = u64::from(self.options.connect_timeout_ms);
        self.state = State::Connecting {
            deadline: now.add_millis(timeout),
        };
        Ok(())
    }

    /// Stages `packet` after the bytes waiting in the transmit buffer: `Ok(false)` if it does
    /// not fit beside them (write them out, then stage again).
    fn try_stage<E>(&mut self, packet: &Packet<'_>) -> Result<bool, Error<E>> {
        let version = self.options.version;
        let needed = packet.encoded_len(version).map_err(Error::Invalid)?;
        if needed > self.tx.len() {
            return Err(Error::TxBufferTooSmall { needed });
        }
        self.compact_tx();
        if needed > self.tx.len() - self.tx_end {
            return Ok(false);
        }
        let n = packet
            .encode(version, &mut self.tx[self.tx_end..])
            .map_err(Error::Invalid)?;
        self.tx_end += n;
        Ok(true)
    }

    /// Stages `packet` into an empty transmit buffer (a CONNECT).
    fn stage<E>(&mut self, packet: &Packet<'_>) -> Result<(), Error<E>> {
        match self.try_stage(packet)? {
            true => Ok(()),
            false => Err(Error::TxBufferTooSmall {
                needed: packet.encoded_len(self.options.version).unwrap_or(0),
            }),
        }
    }

    /// Stages a SUBSCRIBE of `subscriptions` under a packet identifier from the session;
    /// `Ok(None)` if it does not fit beside the bytes waiting (write them, try again).
    pub(crate) fn stage_subscribe<E>(
        &mut self,
        subscriptions: &[Subscription<'_>],
    ) -> Result<Option<u16>, Error<E>> {
        self.require_up()?;
        let id = self
            .session
            .reserve_packet_id()
            .ok_or(Error::TooManyPending)?;
        let staged = Subscribe::checked(id, subscriptions)
            .map_err(Error::Invalid)
            .and_then(|s| self.try_stage(&Packet::Subscribe(s)));
        self.keep_id_if(id, staged)
    }

    /// Stages an UNSUBSCRIBE of `filters`, as [`stage_subscribe`](Self::stage_subscribe).
    pub(crate) fn stage_unsubscribe<E>(
        &mut self,
        filters: &[&str],
    ) -> Result<Option<u16>, Error<E>> {
        self.require_up()?;
        if filters.is_empty() {
            return Err(Error::Invalid(EncodeError::Invalid(
                facteur_codec::DecodeErrorKind::NoTopicFilters,
            )));
        }
        let id = self
            .session
            .reserve_packet_id()
            .ok_or(Error::TooManyPending)?;
        let unsubscribe = Unsubscribe {
            packet_id: id,
            properties: Properties::EMPTY,
            filters: facteur_codec::List::from_slice(filters),
        };
        let staged = self.try_stage(&Packet::Unsubscribe(unsubscribe));
        self.keep_id_if(id, staged)
    }

    fn keep_id_if<E>(
        &mut self,
        id: u16,
        staged: Result<bool, Error<E>>,
    ) -> Result<Option<u16>, Error<E>> {
        match staged {
            Ok(true) => Ok(Some(id)),
            other => {
                self.session.release_packet_id(id);
                other.map(|_| None)
            }
        }
    }

    /// Hands `message` to the session (sent now if connected, on the next connection
    /// otherwise). Refused when its PUBLISH could never fit the transmit buffer.
    pub(crate) fn publish<E>(&mut self, message: &Publish<'_>) -> Result<MessageId, Error<E>> {
        let version = self.options.version;
        let sized = Publish {
            packet_id: (message.qos != QoS::AtMostOnce).then_some(1),
            ..*message
        };
        let len = Packet::Publish(sized)
            .encoded_len(version)
            .map_err(Error::Invalid)?;
        // The session may add a Topic Alias (3 bytes, 5.0), and the length one more byte.
        let needed = len + if version.is_v5() { 4 } else { 1 };
        if needed > self.tx.len() {
            return Err(Error::TxBufferTooSmall { needed });
        }
        let now = self.now();
        Ok(self.session.publish(message, now)?)
    }

    /// Stages a normal DISCONNECT (best effort: not if it does not fit) and ends the
    /// connection; the session is kept.
    pub(crate) fn stage_disconnect(&mut self) {
        if self.state == State::Up {
            let disconnect = Packet::Disconnect(Disconnect::new(ReasonCode::Success));
            let _ = self.try_stage::<()>(&disconnect);
        }
        self.lost();
    }

    /// Moves the unwritten bytes of the transmit buffer to its start.
    fn compact_tx(&mut self) {
        if self.tx_start > 0 {
            self.tx.copy_within(self.tx_start..self.tx_end, 0);
            self.tx_end -= self.tx_start;
            self.tx_start = 0;
        }
    }

    /// Stages what the session has to send (acknowledgements, resends, PINGREQ, queued
    /// messages), as much as fits: `Ok(true)` if more waits for room.
    pub(crate) fn fill_tx<E>(&mut self) -> Result<bool, Error<E>> {
        if self.state != State::Up {
            return Ok(false);
        }
        let now = self.now();
        self.compact_tx();
        loop {
            match self.session.poll_transmit(now, &mut self.tx[self.tx_end..]) {
                Ok(Some(n)) => self.tx_end += n,
                Ok(None) => return Ok(false),
                Err(EncodeError::BufferTooSmall { .. }) if self.tx_end > 0 => return Ok(true),
                Err(EncodeError::BufferTooSmall { required, .. }) => {
                    return Err(self.fail(Error::CannotSend { needed: required }))
                }
                Err(e) => return Err(self.fail(Error::Invalid(e))),
            }
        }
    }

    /// The bytes staged and not yet written.
    pub(crate) fn tx_pending(&self) -> &[u8] {
        &self.tx[self.tx_start..self.tx_end]
    }

    /// `n` bytes of [`tx_pending`](Self::tx_pending) were written.
    pub(crate) fn tx_written(&mut self, n: usize) {
        self.tx_start = (self.tx_start + n).min(self.tx_end);
        if self.tx_start == self.tx_end {
            self.tx_start = 0;
            self.tx_end = 0;
        }
    }

    /// The free end of the receive buffer, to read into. Never empty while a packet is
    /// incomplete: a packet larger than the buffer is an error as soon as its header is in.
    pub(crate) fn rx_space(&mut self) -> &mut [u8] {
        self.drop_reported();
        &mut self.rx[self.rx_len..]
    }

    /// The receive buffer's size.
    pub(crate) fn rx_capacity(&self) -> usize {
        self.rx.len()
    }

    /// `n` bytes were read into [`rx_space`](Self::rx_space).
    pub(crate) fn rx_filled(&mut self, n: usize) {
        self.rx_len = (self.rx_len + n).min(self.rx.len());
    }

    fn drop_reported(&mut self) {
        if self.rx_reported > 0 {
            self.rx.copy_within(self.rx_reported..self.rx_len, 0);
            self.rx_len -= self.rx_reported;
            self.rx_reported = 0;
        }
        self.ready = None;
    }

    /// When [`on_timeout`](Self::on_timeout) is next due: the CONNACK's deadline, or the
    /// session's timers (PINGREQ, keep alive).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Down => None,
            State::Connecting { deadline } => Some(deadline),
            State::Up => self.session.poll_timeout(),
        }
    }

    /// Milliseconds until [`next_deadline`](Self::next_deadline), if any.
    pub(crate) fn wait_ms(&mut self) -> Option<u64> {
        let deadline = self.next_deadline()?;
        let now = self.now();
        Some(deadline.millis_since(now))
    }

    /// Runs the timers: the CONNACK's deadline, the session's (a due PINGREQ is staged by
    /// the next [`fill_tx`](Self::fill_tx); a keep alive timeout is reported by the next
    /// [`step`](Self::step)).
    pub(crate) fn on_timeout<E>(&mut self) -> Result<(), Error<E>> {
        let now = self.now();
        match self.state {
            State::Down => Ok(()),
            State::Connecting { deadline } if now >= deadline => Err(self.fail(Error::Timeout)),
            State::Connecting { .. } => Ok(()),
            State::Up => {
                self.session.handle_timeout(now);
                Ok(())
            }
        }
    }

    /// The stream ended (read 0 bytes, or failed): the connection is lost.
    pub(crate) fn fail<E>(&mut self, error: Error<E>) -> Error<E> {
        self.lost();
        error
    }

    fn lost(&mut self) {
        let now = self.now();
        self.session.on_connection_lost(now);
        // Unanswered SUBSCRIBE / UNSUBSCRIBE packets are not sent again: their identifiers
        // are free.
        self.session.release_packet_ids();
        self.state = State::Down;
        self.rx_len = 0;
        self.rx_reported = 0;
        self.ready = None;
    }

    /// Fails the connection for a protocol violation: in 5.0 a DISCONNECT with `reason` is
    /// staged first (best effort), for the driver's last write.
    fn violation<E>(&mut self, reason: ReasonCode, error: Error<E>) -> Error<E> {
        if self.options.version.is_v5() {
            let disconnect = Packet::Disconnect(Disconnect::new(reason));
            let _ = self.try_stage::<E>(&disconnect);
        }
        self.fail(error)
    }

    /// Takes what is buffered as far as it goes: `Ok(true)` when something is ready for
    /// [`notification`](Self::notification) (or [`connected`](Self::connected)),
    /// `Ok(false)` when more bytes must be read first.
    pub(crate) fn step<E>(&mut self) -> Result<bool, Error<E>> {
        self.drop_reported();
        let now = self.now();
        loop {
            if self.state != State::Up {
                // Events wait for the connection (the CONNACK comes first).
            } else if let Some(ready) = self.next_event()? {
                self.ready = Some(ready);
                return Ok(true);
            }
            let version = self.options.version;
            let max = u32::try_from(self.rx.len()).unwrap_or(u32::MAX);
            let decoded = match decode(&self.rx[..self.rx_len], version, max) {
                Ok(Status::Complete(decoded)) => decoded,
                Ok(Status::Incomplete(_)) => return Ok(false),
                Err(e) => {
                    let reason = e.reason_code();
                    return Err(self.violation(reason, Error::from(e)));
                }
            };
            let (packet, len) = (decoded.packet, decoded.len);
            let packet_type = packet.packet_type();
            let unexpected = Error::Protocol(Violation::UnexpectedPacket(packet_type));
            match (self.state, packet) {
                (State::Down, _) => return Err(Error::NotConnected),
                (State::Connecting { .. }, Packet::ConnAck(connack)) => {
                    // The session reads what it needs of the CONNECT: version, keep alive.
                    let connect = Connect {
                        keep_alive: self.options.keep_alive,
                        ..Connect::new(version, self.options.client_id)
                    };
                    // 3.1.1 lets a client without state take up a persistent session the
                    // broker kept (a device after a reboot, clean session 0): the broker's
                    // part (subscriptions, queued messages) carries on, ours starts empty.
                    if !version.is_v5() && !self.session.has_state() {
                        self.session.adopt_server_session();
                    }
                    return match self.session.accept_connack(now, &connect, &connack) {
                        Ok(connected) => {
                            self.state = State::Up;
                            self.rx_reported = len;
                            self.ready = Some(Ready::Connected(connected));
                            Ok(true)
                        }
                        Err(ReasonCode::ProtocolError) if !connack.reason_code.is_error() => {
                            let violation = Violation::Session(ReasonCode::ProtocolError);
                            Err(self
                                .violation(ReasonCode::ProtocolError, Error::Protocol(violation)))
                        }
                        Err(reason) => Err(self.fail(Error::Refused(reason))),
                    };
                }
                (State::Connecting { .. }, _) => {
                    return Err(self.violation(ReasonCode::ProtocolError, unexpected))
                }
                (State::Up, Packet::Publish(_)) => {
                    let delivered = self.session.handle(packet, now).is_some();
                    if delivered {
                        self.rx_reported = len;
                        self.ready = Some(Ready::Frame);
                        return Ok(true);
                    }
                }
                (State::Up, packet) => {
                    // Whether a server may send this packet now is the session's rule: one it
                    // may not (a SUBSCRIBE, a second CONNACK, an acknowledgement of nothing of
                    // ours) ends the connection there, reported as its protocol error event.
                    let answered = match &packet {
                        Packet::SubAck(ack) => Some(ack.packet_id),
                        Packet::UnsubAck(ack) => Some(ack.packet_id),
                        _ => None,
                    };
                    let _ = self.session.handle(packet, now);
                    if let Some(id) = answered {
                        self.acknowledged(id)?;
                        self.rx_reported = len;
                        self.ready = Some(Ready::Frame);
                        return Ok(true);
                    }
                }
            }
            // Handled without anything to report: next packet.
            self.rx_reported = len;
            self.drop_reported();
        }
    }

    /// A SUBACK or UNSUBACK for `id` went to the session, which gives its identifier back,
    /// or ends the connection when no request of ours holds it.
    fn acknowledged<E>(&mut self, id: u16) -> Result<(), Error<E>> {
        if self.session.is_connected() {
            Ok(())
        } else {
            let violation = Error::Protocol(Violation::UnknownPacketId(id));
            Err(self.violation(ReasonCode::ProtocolError, violation))
        }
    }

    /// The session's next event: something to report, an error, or nothing.
    fn next_event<E>(&mut self) -> Result<Option<Ready>, Error<E>> {
        while let Some(event) = self.session.poll_event() {
            let dropped = |message, why| Notification::Dropped { message, why };
            let notification = match event {
                Event::Acknowledged {
                    message,
                    qos,
                    reason,
                    ..
                } => Notification::Published {
                    message,
                    qos,
                    reason,
                },
                Event::Expired { message } => dropped(message, DropReason::Expired),
                Event::Dropped { message } => dropped(message, DropReason::Displaced),
                Event::TooLarge { message } => dropped(message, DropReason::TooLarge),
                Event::ProtocolError { reason } => {
                    // The session staged its DISCONNECT (5.0): written by the driver's last
                    // flush.
                    let _ = self.fill_tx::<E>();
                    return Err(self.fail(Error::Protocol(Violation::Session(reason))));
                }
                Event::KeepAliveTimeout => return Err(self.fail(Error::KeepAliveTimeout)),
                Event::Disconnected { reason } => {
                    return Err(self.fail(Error::Disconnected(reason)))
                }
                // Server-side events.
                _ => continue,
            };
            return Ok(Some(Ready::Owned(notification)));
        }
        Ok(None)
    }

    /// The CONNACK's outcome, once [`step`](Self::step) returned true in `Connecting`.
    pub(crate) fn connected(&self) -> Option<Connected> {
        match self.ready {
            Some(Ready::Connected(connected)) => Some(connected),
            _ => None,
        }
    }

    /// What [`step`](Self::step) has ready.
    pub(crate) fn notification<E>(&self) -> Result<Notification<'_>, Error<E>> {
        match self.ready {
            Some(Ready::Owned(notification)) => Ok(notification),
            Some(Ready::Frame) => {
                let version = self.options.version;
                let frame = &self.rx[..self.rx_reported];
                // Decoded by `step` already: it decodes again.
                let Status::Complete(decoded) = decode(frame, version, u32::MAX)? else {
                    return Err(Error::NotConnected);
                };
                match decoded.packet {
                    Packet::Publish(message) => Ok(Notification::Message(message)),
                    Packet::SubAck(ack) => Ok(Notification::Subscribed {
                        packet_id: ack.packet_id,
                        results: AckResults::new(ack.reason_codes),
                    }),
                    Packet::UnsubAck(ack) => Ok(Notification::Unsubscribed {
                        packet_id: ack.packet_id,
                        results: AckResults::new(ack.reason_codes),
                    }),
                    other => Err(Error::Protocol(Violation::UnexpectedPacket(
                        other.packet_type(),
                    ))),
                }
            }
            Some(Ready::Connected(_)) | None => Err(Error::NotConnected),
        }
    }
}
