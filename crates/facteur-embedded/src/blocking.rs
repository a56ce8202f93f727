//! The blocking client, over any [`embedded_io::Read`] + [`embedded_io::Write`] stream.

use embedded_io::{Error as _, ErrorKind, Read, Write};
use facteur_codec::{Publish, QoS, Subscription};
use facteur_session::{Connected, MessageId, Session, Store};

use crate::core::Core;
use crate::{Clock, ConnectOptions, Error, Notification};

/// An MQTT client over a blocking stream: a TCP socket of smoltcp or an AT-command modem, a
/// TLS stream on top, `std::net::TcpStream` through `embedded-io-adapters` on a host.
///
/// * `T`: the stream; the client owns it between [`connect`](Self::connect) and the end of
///   the connection.
/// * `C`: the [`Clock`].
/// * `S`: the session's storage, a
///   [`HeaplessStore<INFLIGHT, QUEUE, BYTES>`](facteur_session::HeaplessStore): how many
///   QoS 1/2 messages may be in flight each way, how many wait to be sent, and the largest
///   topic + payload kept for sending.
/// * The receive and transmit buffers are the caller's: a received message is read in place
///   from the receive buffer ([`Notification::Message`] borrows it), and a packet larger
///   than it is an error ([`Error::RxBufferTooSmall`]; a 5.0 broker is told the size).
///
/// **Keep alive** needs [`poll`](Self::poll) to return now and then: give the stream a read
/// timeout below the keep alive (a read that times out must fail with
/// [`ErrorKind::TimedOut`]; `poll` then returns `Ok(None)` after running the timers).
///
/// ```
/// use facteur_embedded::blocking::Client;
/// use facteur_embedded::{ConnectOptions, HeaplessStore, Notification, ProtocolVersion, QoS};
/// # /// A stand-in for the broker: answers with the bytes given, keeps what is written.
/// # struct Scripted { input: &'static [u8], written: usize }
/// # impl embedded_io::ErrorType for Scripted { type Error = embedded_io::ErrorKind; }
/// # impl embedded_io::Read for Scripted {
/// #     fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
/// #         if self.input.is_empty() { return Err(embedded_io::ErrorKind::TimedOut); }
/// #         let n = buf.len().min(self.input.len());
/// #         buf[..n].copy_from_slice(&self.input[..n]);
/// #         self.input = &self.input[n..];
/// #         Ok(n)
/// #     }
/// # }
/// # impl embedded_io::Write for Scripted {
/// #     fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> { self.written += buf.len(); Ok(buf.len()) }
/// #     fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
/// # }
/// # // CONNACK, then the PUBACK of packet 1.
/// # let socket = Scripted { input: &[0x20, 0x02, 0x00, 0x00, 0x40, 0x02, 0x00, 0x01], written: 0 };
/// # let mut ticks = 0;
/// # let millis = move || { ticks += 1; ticks };
/// let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
/// let options = ConnectOptions::new(ProtocolVersion::V3_1_1, "sensor-1");
/// // 4 QoS 1/2 messages in flight, 4 waiting, 128 bytes of topic + payload each.
/// let mut client: Client<_, _, HeaplessStore<4, 4, 128>> =
///     Client::new(options, millis, &mut rx, &mut tx);
/// let connected = client.connect(socket)?; // CONNECT, CONNACK
/// assert!(!connected.session_present);
/// let reading = client.publish("maison/salon/temperature", b"21.5", QoS::AtLeastOnce, false)?;
/// loop {
///     match client.poll()? {
///         Some(Notification::Published { message, .. }) if message == reading => break,
///         Some(Notification::Message(m)) => { /* m.topic, m.payload: borrowed from rx */ }
///         _ => {} // None: the read timed out
///     }
/// }
/// assert_eq!(client.session().inflight(), 0);
/// # Ok::<(), facteur_embedded::Error<embedded_io::ErrorKind>>(())
/// ```
pub struct Client<'a, T, C, S: Store> {
    core: Core<'a, S, C>,
    transport: Option<T>,
}

impl<'a, T, C, S> Client<'a, T, C, S>
where
    T: Read + Write,
    C: Clock,
    S: Store,
{
    /// A client that connects with `options`, reads the time from `clock`, receives into
    /// `rx` and sends from `tx`. Nothing happens before [`connect`](Self::connect).
    pub fn new(options: ConnectOptions<'a>, clock: C, rx: &'a mut [u8], tx: &'a mut [u8]) -> Self {
        Self {
            core: Core::new(options, clock, rx, tx),
            transport: None,
        }
    }

    /// Connects over `transport` (an open stream to the broker): CONNECT, then waits for the
    /// CONNACK. The first connection starts as [`ConnectOptions::clean_start`] says; a later
    /// one resumes the session if it lasts ([`ConnectOptions::resumes`]), and then the
    /// messages in flight are sent again (PUBLISH with DUP, PUBREL) before new ones. What
    /// was published while disconnected goes out now.
    ///
    /// # Errors
    /// [`Error::Refused`] with the broker's reason code, [`Error::Timeout`] after
    /// [`ConnectOptions::connect_timeout_ms`] (counted when a read times out), and the
    /// stream's and the protocol's errors. [`Error::NotConnected`] if a connection is up.
    pub fn connect(&mut self, transport: T) -> Result<Connected, Error<T::Error>> {
        self.core.begin_connect()?;
        self.transport = Some(transport);
        self.flush()?;
        loop {
            if self.step()? {
                if let Some(connected) = self.core.connected() {
                    self.flush()?;
                    return Ok(connected);
                }
            } else if !self.read()? {
                self.core.on_timeout()?;
            }
        }
    }

    /// Publishes `payload` to `topic` at `qos`, retained or not: sent now if connected,
    /// otherwise on the next connection. QoS 1 and 2 messages are reported done by
    /// [`Notification::Published`] with the returned handle.
    ///
    /// # Errors
    /// [`Error::Invalid`] (not a topic name, properties a PUBLISH cannot carry),
    /// [`Error::Publish`] (larger than the store holds, the queue is full),
    /// [`Error::TxBufferTooSmall`], and the stream's errors while sending.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<MessageId, Error<T::Error>> {
        let message = Publish {
            qos,
            retain,
            ..Publish::new(topic, payload)
        };
        self.publish_message(&message)
    }

    /// Publishes `message` (with MQTT 5 properties, if any): see [`publish`](Self::publish).
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub fn publish_message(&mut self, message: &Publish<'_>) -> Result<MessageId, Error<T::Error>> {
        let id = self.core.publish(message)?;
        if self.core.is_connected() {
            self.flush()?;
        }
        Ok(id)
    }

    /// Sends a SUBSCRIBE of `subscriptions` and returns its packet identifier; the SUBACK
    /// comes from [`poll`](Self::poll) as [`Notification::Subscribed`], one result per
    /// filter (messages may come before it).
    ///
    /// ```
    /// use facteur_embedded::blocking::Client;
    /// use facteur_embedded::{
    ///     ConnectOptions, HeaplessStore, Notification, ProtocolVersion, QoS, ReasonCode, Subscription,
    /// };
    /// # struct Scripted { input: &'static [u8] }
    /// # impl embedded_io::ErrorType for Scripted { type Error = embedded_io::ErrorKind; }
    /// # impl embedded_io::Read for Scripted {
    /// #     fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
    /// #         if self.input.is_empty() { return Err(embedded_io::ErrorKind::TimedOut); }
    /// #         let n = buf.len().min(self.input.len());
    /// #         buf[..n].copy_from_slice(&self.input[..n]);
    /// #         self.input = &self.input[n..];
    /// #         Ok(n)
    /// #     }
    /// # }
    /// # impl embedded_io::Write for Scripted {
    /// #     fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> { Ok(buf.len()) }
    /// #     fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
    /// # }
    /// # // CONNACK; SUBACK of packet 1: QoS 1 granted, then Not authorized (5.0).
    /// # let socket = Scripted { input: &[0x20, 0x03, 0x00, 0x00, 0x00, 0x90, 0x05, 0x00, 0x01, 0x00, 0x01, 0x87] };
    /// let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    /// let options = ConnectOptions::new(ProtocolVersion::V5, "sensor-1");
    /// let mut client: Client<_, _, HeaplessStore<4, 4, 128>> =
    ///     Client::new(options, || 0, &mut rx, &mut tx);
    /// client.connect(socket)?;
    /// let id = client.subscribe(&[
    ///     Subscription::new("maison/sensor-1/command", QoS::AtLeastOnce),
    ///     Subscription::new("$SYS/#", QoS::AtMostOnce),
    /// ])?;
    /// let Some(Notification::Subscribed { packet_id, results }) = client.poll()? else {
    ///     panic!("SUBACK expected")
    /// };
    /// assert_eq!(packet_id, id);
    /// let granted: Vec<_> = results.granted().collect();
    /// assert_eq!(granted, [Ok(QoS::AtLeastOnce), Err(ReasonCode::NotAuthorized)]);
    /// # Ok::<(), facteur_embedded::Error<embedded_io::ErrorKind>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::Invalid`] (no filter, an invalid one),
    /// [`Error::TooManyPending`], [`Error::TxBufferTooSmall`], the stream's errors.
    pub fn subscribe(
        &mut self,
        subscriptions: &[Subscription<'_>],
    ) -> Result<u16, Error<T::Error>> {
        loop {
            match self.core.stage_subscribe(subscriptions)? {
                Some(id) => return self.flush().map(|()| id),
                None => self.write_pending()?,
            }
        }
    }

    /// Sends an UNSUBSCRIBE of `filters` and returns its packet identifier; the UNSUBACK
    /// comes from [`poll`](Self::poll) as [`Notification::Unsubscribed`].
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn unsubscribe(&mut self, filters: &[&str]) -> Result<u16, Error<T::Error>> {
        loop {
            match self.core.stage_unsubscribe(filters)? {
                Some(id) => return self.flush().map(|()| id),
                None => self.write_pending()?,
            }
        }
    }

    /// Sends what is due, then reads until something happens: a message, a QoS 1/2 message
    /// done, a SUBACK... (`Ok(Some(..))`, borrowed from the receive buffer), or the stream's
    /// read timed out (`Ok(None)`, after running the keep alive timers). Call it in a loop.
    ///
    /// # Errors
    /// [`Error::NotConnected`] without a connection; every other error ends the connection
    /// (see [`Error::is_fatal`]): connect again with a new stream.
    pub fn poll(&mut self) -> Result<Option<Notification<'_>>, Error<T::Error>> {
        self.core.require_up()?;
        // The acknowledgement of the message the last call returned, and what else is due.
        self.flush()?;
        loop {
            if self.core.wait_ms() == Some(0) {
                self.core.on_timeout()?;
            }
            if self.step()? {
                break;
            }
            // What the packets just handled call for (PUBREL, PUBCOMP...), a PINGREQ.
            self.flush()?;
            if !self.read()? {
                self.core.on_timeout()?;
                if self.step()? {
                    break;
                }
                self.flush()?;
                return Ok(None);
            }
        }
        self.core.notification().map(Some)
    }

    /// Sends DISCONNECT (the broker then drops the will) and gives the stream back to be
    /// closed; the session is kept for the next [`connect`](Self::connect).
    pub fn disconnect(&mut self) -> Option<T> {
        self.core.stage_disconnect();
        let _ = self.write_pending();
        if let Some(t) = self.transport.as_mut() {
            let _ = t.flush();
        }
        self.transport.take()
    }

    /// Gives the stream back after the connection ended on an error (to close it).
    pub fn take_transport(&mut self) -> Option<T> {
        self.transport.take()
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.core.is_connected()
    }

    /// The session: what is queued, in flight, the connection's negotiated parameters.
    pub fn session(&self) -> &Session<S> {
        self.core.session()
    }

    /// The options it connects with.
    pub fn options(&self) -> &ConnectOptions<'a> {
        self.core.options()
    }

    /// [`Core::step`]; on an error, what it staged (a 5.0 DISCONNECT) is written first.
    fn step(&mut self) -> Result<bool, Error<T::Error>> {
        let stepped = self.core.step();
        if stepped.is_err() {
            let _ = self.write_pending();
        }
        stepped
    }

    /// Reads once into the receive buffer: `Ok(false)` if the read timed out.
    fn read(&mut self) -> Result<bool, Error<T::Error>> {
        let Some(transport) = self.transport.as_mut() else {
            return Err(self.core.fail(Error::NotConnected));
        };
        let space = self.core.rx_space();
        if space.is_empty() {
            let needed = self.core.rx_capacity() + 1;
            return Err(self.core.fail(Error::RxBufferTooSmall { needed }));
        }
        match transport.read(space) {
            Ok(0) => Err(self.core.fail(Error::Closed)),
            Ok(n) => {
                self.core.rx_filled(n);
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => Ok(false),
            Err(e) => Err(self.core.fail(Error::Transport(e))),
        }
    }

    /// Stages what the session has to send and writes it all.
    fn flush(&mut self) -> Result<(), Error<T::Error>> {
        loop {
            let more = self.core.fill_tx();
            self.write_pending()?;
            if !more? {
                break;
            }
        }
        match self.transport.as_mut().map(Write::flush) {
            Some(Err(e)) => Err(self.core.fail(Error::Transport(e))),
            _ => Ok(()),
        }
    }

    /// Writes the staged bytes.
    fn write_pending(&mut self) -> Result<(), Error<T::Error>> {
        while !self.core.tx_pending().is_empty() {
            let Some(transport) = self.transport.as_mut() else {
                return Err(self.core.fail(Error::NotConnected));
            };
            match transport.write(self.core.tx_pending()) {
                Ok(0) => return Err(self.core.fail(Error::Closed)),
                Ok(n) => self.core.tx_written(n),
                Err(e) => return Err(self.core.fail(Error::Transport(e))),
            }
        }
        Ok(())
    }
}
