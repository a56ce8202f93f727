//! The async client, over any [`embedded_io_async::Read`] + [`embedded_io_async::Write`]
//! stream (embassy-net's `TcpSocket`, embedded-tls, tokio through `embedded-io-adapters`).

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;

use embedded_hal_async::delay::DelayNs;
use embedded_io_async::{Error as _, ErrorKind, Read, Write};
use facteur_codec::{Publish, QoS, Subscription};
use facteur_session::{Connected, MessageId, Session, Store};

use crate::core::Core;
use crate::{Clock, ConnectOptions, Error, Notification};

/// An MQTT client over an async stream: embassy-net's `TcpSocket`, a TLS stream on top
/// (embedded-tls), `tokio::net::TcpStream` through `embedded-io-adapters` on a host.
///
/// * `T`: the stream; the client owns it between [`connect`](Self::connect) and the end of
///   the connection.
/// * `C`: the [`Clock`]; `D`: an async delay ([`DelayNs`], such as `embassy_time::Delay`),
///   that [`poll`](Self::poll) waits on for the keep alive, together with the stream.
/// * `S`: the session's storage, a
///   [`HeaplessStore<INFLIGHT, QUEUE, BYTES>`](facteur_session::HeaplessStore): how many
///   QoS 1/2 messages may be in flight each way, how many wait to be sent, and the largest
///   topic + payload kept for sending.
/// * The receive and transmit buffers are the caller's: a received message is read in place
///   from the receive buffer ([`Notification::Message`] borrows it), and a packet larger
///   than it is an error ([`Error::RxBufferTooSmall`]; a 5.0 broker is told the size).
///
/// **Keep alive** is [`poll`](Self::poll)'s: it waits on the stream and the delay at once
/// and sends PINGREQ when due, so a task that awaits `poll` in a loop keeps the connection
/// up. Every future of this client may be dropped at an `.await` (in a `select` with other
/// work) without losing bytes, as long as the stream's `read` and `write` are cancel-safe
/// (those of embassy-net and tokio are).
///
/// ```no_run
/// use facteur_embedded::asynch::Client;
/// use facteur_embedded::{ConnectOptions, HeaplessStore, Notification, ProtocolVersion, QoS};
/// # struct Delay;
/// # impl embedded_hal_async::delay::DelayNs for Delay {
/// #     async fn delay_ns(&mut self, ns: u32) {
/// #         tokio::time::sleep(std::time::Duration::from_nanos(ns.into())).await
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let socket = embedded_io_adapters::tokio_1::FromTokio::new(tokio::net::TcpStream::connect("127.0.0.1:1883").await?);
/// # let start = std::time::Instant::now();
/// # let millis = move || start.elapsed().as_millis() as u64;
/// let (mut rx, mut tx) = ([0u8; 512], [0u8; 512]);
/// let options = ConnectOptions::new(ProtocolVersion::V5, "sensor-1");
/// let mut client: Client<_, _, _, HeaplessStore<4, 4, 256>> =
///     Client::new(options, millis, Delay, &mut rx, &mut tx);
/// client.connect(socket).await?;
/// client.publish("maison/salon/temperature", b"21.5", QoS::AtLeastOnce, false).await?;
/// loop {
///     if let Notification::Published { .. } = client.poll().await? {
///         break; // the broker has it
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// Without an OS, on any executor (here a loop that polls, as a firmware without interrupts
/// would; `Waker::noop` needs Rust 1.85, a firmware uses embassy's executor), over a stream
/// that answers CONNACK then PUBACK:
///
/// ```
/// use core::future::Future;
/// use core::pin::pin;
/// use core::task::{Context, Poll, Waker};
/// use facteur_embedded::asynch::Client;
/// use facteur_embedded::{ConnectOptions, HeaplessStore, Notification, ProtocolVersion, QoS};
/// # struct Scripted { input: &'static [u8] }
/// # impl embedded_io_async::ErrorType for Scripted { type Error = embedded_io_async::ErrorKind; }
/// # impl embedded_io_async::Read for Scripted {
/// #     async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
/// #         let n = buf.len().min(self.input.len());
/// #         buf[..n].copy_from_slice(&self.input[..n]);
/// #         self.input = &self.input[n..];
/// #         Ok(n)
/// #     }
/// # }
/// # impl embedded_io_async::Write for Scripted {
/// #     async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> { Ok(buf.len()) }
/// #     async fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
/// # }
/// # struct NoDelay;
/// # impl embedded_hal_async::delay::DelayNs for NoDelay { async fn delay_ns(&mut self, _: u32) {} }
/// fn block_on<F: Future>(future: F) -> F::Output {
///     let mut future = pin!(future);
///     let mut cx = Context::from_waker(Waker::noop());
///     loop {
///         if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
///             return output;
///         }
///     }
/// }
///
/// # let socket = Scripted { input: &[0x20, 0x02, 0x00, 0x00, 0x40, 0x02, 0x00, 0x01] };
/// let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
/// let options = ConnectOptions::new(ProtocolVersion::V3_1_1, "sensor-1");
/// let mut client: Client<_, _, _, HeaplessStore<4, 4, 128>> =
///     Client::new(options, || 0, NoDelay, &mut rx, &mut tx);
/// block_on(async {
///     client.connect(socket).await?;
///     let id = client.publish("maison/salon/temperature", b"21.5", QoS::AtLeastOnce, false).await?;
///     let done = client.poll().await?;
///     assert!(matches!(done, Notification::Published { message, .. } if message == id));
///     Ok::<(), facteur_embedded::Error<embedded_io_async::ErrorKind>>(())
/// })?;
/// # Ok::<(), facteur_embedded::Error<embedded_io_async::ErrorKind>>(())
/// ```
pub struct Client<'a, T, C, D, S: Store> {
    core: Core<'a, S, C>,
    transport: Option<T>,
    delay: D,
}

impl<'a, T, C, D, S> Client<'a, T, C, D, S>
where
    T: Read + Write,
    C: Clock,
    D: DelayNs,
    S: Store,
{
    /// A client that connects with `options`, reads the time from `clock`, waits with
    /// `delay`, receives into `rx` and sends from `tx`. Nothing happens before
    /// [`connect`](Self::connect).
    pub fn new(
        options: ConnectOptions<'a>,
        clock: C,
        delay: D,
        rx: &'a mut [u8],
        tx: &'a mut [u8],
    ) -> Self {
        Self {
            core: Core::new(options, clock, rx, tx),
            transport: None,
            delay,
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
    pub async fn connect(&mut self, transport: T) -> Result<Connected, Error<T::Error>> {
        self.core.begin_connect()?;
        self.transport = Some(transport);
        self.flush().await?;
        loop {
            if self.step().await? {
                if let Some(connected) = self.core.connected() {
                    self.flush().await?;
                    return Ok(connected);
                }
            } else if !self.read().await? {
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
    pub async fn publish(
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
        self.publish_message(&message).await
    }

    /// Publishes `message` (with MQTT 5 properties, if any): see [`publish`](Self::publish).
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub async fn publish_message(
        &mut self,
        message: &Publish<'_>,
    ) -> Result<MessageId, Error<T::Error>> {
        let id = self.core.publish(message)?;
        if self.core.is_connected() {
            self.flush().await?;
        }
        Ok(id)
    }

    /// Sends a SUBSCRIBE of `subscriptions` and returns its packet identifier; the SUBACK
    /// comes from [`poll`](Self::poll) as [`Notification::Subscribed`], one result per
    /// filter (messages may come before it).
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::Invalid`] (no filter, an invalid one),
    /// [`Error::TooManyPending`], [`Error::TxBufferTooSmall`], the stream's errors.
    pub async fn subscribe(
        &mut self,
        subscriptions: &[Subscription<'_>],
    ) -> Result<u16, Error<T::Error>> {
        loop {
            match self.core.stage_subscribe(subscriptions)? {
                Some(id) => return self.flush().await.map(|()| id),
                None => self.write_pending().await?,
            }
        }
    }

    /// Sends an UNSUBSCRIBE of `filters` and returns its packet identifier; the UNSUBACK
    /// comes from [`poll`](Self::poll) as [`Notification::Unsubscribed`].
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub async fn unsubscribe(&mut self, filters: &[&str]) -> Result<u16, Error<T::Error>> {
        loop {
            match self.core.stage_unsubscribe(filters)? {
                Some(id) => return self.flush().await.map(|()| id),
                None => self.write_pending().await?,
            }
        }
    }

    /// Sends what is due, then waits until something happens: a message, a QoS 1/2
    /// message done, a SUBACK... (borrowed from the receive buffer). Meanwhile it keeps the
    /// connection alive (PINGREQ when due, [`Error::KeepAliveTimeout`] when the broker went
    /// silent). Await it in a loop, or in a `select` with the firmware's other work: it may
    /// be dropped at any `.await` (see [`Client`]).
    ///
    /// # Errors
    /// [`Error::NotConnected`] without a connection; every other error ends the connection
    /// (see [`Error::is_fatal`]): connect again with a new stream.
    pub async fn poll(&mut self) -> Result<Notification<'_>, Error<T::Error>> {
        self.core.require_up()?;
        // The acknowledgement of the message the last call returned, and what else is due.
        self.flush().await?;
        loop {
            if self.core.wait_ms() == Some(0) {
                self.core.on_timeout()?;
            }
            if self.step().await? {
                break;
            }
            // What the packets just handled call for (PUBREL, PUBCOMP...), a PINGREQ.
            self.flush().await?;
            if !self.read().await? {
                self.core.on_timeout()?;
            }
        }
        self.core.notification()
    }

    /// Sends DISCONNECT (the broker then drops the will) and gives the stream back to be
    /// closed; the session is kept for the next [`connect`](Self::connect).
    pub async fn disconnect(&mut self) -> Option<T> {
        self.core.stage_disconnect();
        let _ = self.write_pending().await;
        if let Some(t) = self.transport.as_mut() {
            let _ = t.flush().await;
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
    async fn step(&mut self) -> Result<bool, Error<T::Error>> {
        let stepped = self.core.step();
        if stepped.is_err() {
            let _ = self.write_pending().await;
        }
        stepped
    }

    /// Reads once into the receive buffer, waiting at most until the next timer is due:
    /// `Ok(false)` if it is due first (or the stream's read timed out).
    async fn read(&mut self) -> Result<bool, Error<T::Error>> {
        let wait_ms = self.core.wait_ms();
        let Some(transport) = self.transport.as_mut() else {
            return Err(self.core.fail(Error::NotConnected));
        };
        let space = self.core.rx_space();
        if space.is_empty() {
            let needed = self.core.rx_capacity() + 1;
            return Err(self.core.fail(Error::RxBufferTooSmall { needed }));
        }
        let read = match wait_ms {
            None => Some(transport.read(space).await),
            Some(ms) => {
                let ms = u32::try_from(ms).unwrap_or(u32::MAX);
                first_of(transport.read(space), self.delay.delay_ms(ms)).await
            }
        };
        let Some(read) = read else {
            return Ok(false);
        };
        match read {
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
    async fn flush(&mut self) -> Result<(), Error<T::Error>> {
        loop {
            let more = self.core.fill_tx();
            self.write_pending().await?;
            if !more? {
                break;
            }
        }
        let flushed = match self.transport.as_mut() {
            Some(transport) => transport.flush().await,
            None => Ok(()),
        };
        flushed.map_err(|e| self.core.fail(Error::Transport(e)))
    }

    /// Writes the staged bytes.
    async fn write_pending(&mut self) -> Result<(), Error<T::Error>> {
        while !self.core.tx_pending().is_empty() {
            let Some(transport) = self.transport.as_mut() else {
                return Err(self.core.fail(Error::NotConnected));
            };
            match transport.write(self.core.tx_pending()).await {
                Ok(0) => return Err(self.core.fail(Error::Closed)),
                Ok(n) => self.core.tx_written(n),
                Err(e) => return Err(self.core.fail(Error::Transport(e))),
            }
        }
        Ok(())
    }
}

/// Runs `work` and `timer` together: `Some` with `work`'s output if it finishes first, `None`
/// when `timer` does (`work` is then dropped, unfinished).
async fn first_of<W: Future, T: Future>(work: W, timer: T) -> Option<W::Output> {
    let mut work = pin!(work);
    let mut timer = pin!(timer);
    poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        timer.as_mut().poll(cx).map(|_| None)
    })
    .await
}
