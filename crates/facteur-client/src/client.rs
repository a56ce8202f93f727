//! The handle applications hold: [`Client`], cheap to clone, and the stream of incoming
//! [`Messages`].

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use facteur_codec::{QoS, ReasonCode, SubscriptionOptions};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::event_loop::{Command, EventLoop, Outgoing};
use crate::message::{Message, PublishProperties};
use crate::{Error, Options};

/// What happened to the connection, from [`Client::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A connection is up (the first one, or a reconnection).
    Connected {
        /// The broker kept the session (its subscriptions and messages in flight).
        session_present: bool,
    },
    /// The connection is gone; a reconnection follows unless it is off or the client was
    /// disconnected.
    Disconnected {
        /// Why.
        reason: Error,
    },
}

/// The broker's answer to a QoS 1/2 message (QoS 0: written).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The PUBACK's, PUBREC's or PUBCOMP's reason code (`Success` in 3.1.1): a success
    /// code, such as `NoMatchingSubscribers`.
    pub reason: ReasonCode,
    /// Its 5.0 reason string, if any.
    pub reason_string: Option<String>,
}

/// The result of one filter of a subscription: the QoS granted, or why not.
pub type Granted = Result<QoS, ReasonCode>;

/// A handle on a client's connection: publish, subscribe, unsubscribe, disconnect. Clones
/// share the connection; the connection ends when the last handle is dropped (or on
/// [`disconnect`](Self::disconnect)).
///
/// ```no_run
/// use facteur_client::{Client, Options};
/// use facteur_codec::QoS;
///
/// # async fn run() -> Result<(), facteur_client::Error> {
/// let (client, mut messages) = Client::connect(Options::from_url("mqtt://localhost")?).await?;
/// client.subscribe("maison/+/temperature", QoS::AtLeastOnce).await?;
/// client.publish("maison/salon/temperature", "21.5").qos(QoS::AtLeastOnce).retain(true).await?;
/// while let Some(message) = messages.recv().await {
///     println!("{}: {:?}", message.topic, message.payload);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Event>,
    /// The receiver made before the task started, for the first `events()` call.
    first_events: Arc<Mutex<Option<broadcast::Receiver<Event>>>>,
}

/// The messages received on the client's subscriptions, in order. The connection stops
/// reading from the broker while [`Options::channel_capacity`] of them wait here unread:
/// read them in a task of their own, apart from one that waits on `publish`.
#[derive(Debug)]
pub struct Messages(mpsc::Receiver<Message>);

impl Messages {
    /// The next message; `None` once the client has ended.
    pub async fn recv(&mut self) -> Option<Message> {
        self.0.recv().await
    }
}

impl futures_util::Stream for Messages {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.0.poll_recv(cx)
    }
}

impl Client {
    /// Connects as `options` say and starts the connection's task on the current tokio
    /// runtime. Returns once the broker accepted the first connection; later losses are
    /// reconnected as [`Options::reconnect`] says.
    ///
    /// # Errors
    /// The first connection failed: [`Error::Io`], [`Error::Tls`], [`Error::Timeout`],
    /// [`Error::Refused`] (with the CONNACK's reason code), [`Error::Protocol`].
    pub async fn connect(options: Options) -> Result<(Self, Messages), Error> {
        let capacity = options.channel_capacity.max(1);
        let (commands, command_rx) = mpsc::channel(capacity);
        let (message_tx, messages) = mpsc::channel(capacity);
        let (events, first_events) = broadcast::channel(64);
        let (first_tx, first_rx) = oneshot::channel();
        let event_loop = EventLoop::new(
            options,
            command_rx,
            commands.downgrade(),
            message_tx,
            events.clone(),
        );
        tokio::spawn(event_loop.run(first_tx));
        first_rx.await.map_err(|_| Error::Disconnected)??;
        let client = Self {
            commands,
            events,
            first_events: Arc::new(Mutex::new(Some(first_events))),
        };
        Ok((client, Messages(messages)))
    }

    /// Connection events (connected, disconnected). The first call, on any clone, gets
    /// every event since the client started (the first `Connected` included), so that
    /// none is missed; later calls get those from the time of the call. A receiver that
    /// falls more than 64 behind loses the oldest.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        let first = self
            .first_events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        first.unwrap_or_else(|| self.events.subscribe())
    }

    /// A message to publish: set its QoS, retain flag and properties, then `.await` it.
    /// The future completes when the message is written (QoS 0), acknowledged (QoS 1,
    /// PUBACK) or complete (QoS 2, PUBCOMP), across reconnections; it waits first for room
    /// in the client's queue.
    ///
    /// ```no_run
    /// # async fn f(client: facteur_client::Client) -> Result<(), facteur_client::Error> {
    /// use facteur_codec::QoS;
    /// let ack = client.publish("a/b", "hello").qos(QoS::ExactlyOnce).await?;
    /// println!("{:?}", ack.reason);
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish(&self, topic: impl Into<String>, payload: impl Into<Bytes>) -> Publish<'_> {
        Publish {
            client: self,
            message: Outgoing {
                topic: topic.into(),
                payload: payload.into(),
                qos: QoS::AtMostOnce,
                retain: false,
                properties: PublishProperties::default(),
            },
        }
    }

    /// Subscribes to one filter; the QoS the broker granted.
    ///
    /// # Errors
    /// [`Error::InvalidFilter`]; [`Error::Refused`] with the SUBACK's failure code;
    /// [`Error::Disconnected`] if the client ended first.
    pub async fn subscribe(&self, filter: impl Into<String>, qos: QoS) -> Result<QoS, Error> {
        let results = self
            .subscribe_many(vec![(filter.into(), SubscriptionOptions::qos(qos))])
            .await?;
        match results.first() {
            Some(Ok(qos)) => Ok(*qos),
            Some(Err(reason)) => Err(Error::Refused {
                reason: *reason,
                reason_string: None,
            }),
            None => Err(Error::Protocol(ReasonCode::ProtocolError)),
        }
    }

    /// Subscribes to several filters in one SUBSCRIBE; the broker's answer for each, in
    /// order. Kept by the client: if the broker loses the session, they are subscribed
    /// again on the next connection.
    ///
    /// # Errors
    /// [`Error::InvalidFilter`] before anything is sent; [`Error::Disconnected`].
    pub async fn subscribe_many(
        &self,
        filters: Vec<(String, SubscriptionOptions)>,
    ) -> Result<Vec<Granted>, Error> {
        if filters.is_empty() {
            return Err(Error::InvalidFilter("no filter".into()));
        }
        for (filter, _) in &filters {
            facteur_topic::TopicFilter::new(filter)
                .map_err(|e| Error::InvalidFilter(format!("{filter}: {e}")))?;
        }
        let (done, answer) = oneshot::channel();
        self.send(Command::Subscribe { filters, done }).await?;
        answer.await.map_err(|_| Error::Disconnected)?
    }

    /// Unsubscribes from these filters; the broker's answer for each (5.0; `Ok` for each
    /// in 3.1.1).
    ///
    /// # Errors
    /// [`Error::InvalidFilter`]; [`Error::Disconnected`].
    pub async fn unsubscribe(
        &self,
        filters: Vec<String>,
    ) -> Result<Vec<Result<(), ReasonCode>>, Error> {
        if filters.is_empty() {
            return Err(Error::InvalidFilter("no filter".into()));
        }
        for filter in &filters {
            facteur_topic::TopicFilter::new(filter)
                .map_err(|e| Error::InvalidFilter(format!("{filter}: {e}")))?;
        }
        let (done, answer) = oneshot::channel();
        self.send(Command::Unsubscribe { filters, done }).await?;
        answer.await.map_err(|_| Error::Disconnected)?
    }

    /// Ends the client gracefully: waits (up to the connect timeout) for the messages in
    /// flight and queued to complete, then sends DISCONNECT (normal disconnection) and
    /// closes. Pending requests that could not complete fail with
    /// [`Error::Disconnected`].
    pub async fn disconnect(&self) -> Result<(), Error> {
        self.disconnect_with(ReasonCode::Success, None).await
    }

    /// [`disconnect`](Self::disconnect) with a 5.0 reason code (`Success`, or
    /// `DisconnectWithWillMessage` to have the broker publish the will) and a new
    /// Session Expiry Interval.
    pub async fn disconnect_with(
        &self,
        reason: ReasonCode,
        session_expiry: Option<u32>,
    ) -> Result<(), Error> {
        let (done, finished) = oneshot::channel();
        self.send(Command::Disconnect {
            reason,
            session_expiry,
            done,
        })
        .await?;
        // The task ends when it is done: a closed channel is the answer too.
        let _ = finished.await;
        Ok(())
    }

    async fn send(&self, command: Command) -> Result<(), Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::Disconnected)
    }
}

/// A message on its way: see [`Client::publish`]. `.await` it.
#[derive(Debug)]
#[must_use = "a message is published when awaited"]
pub struct Publish<'c> {
    client: &'c Client,
    message: Outgoing,
}

impl Publish<'_> {
    /// With this QoS (0 by default).
    pub fn qos(mut self, qos: QoS) -> Self {
        self.message.qos = qos;
        self
    }

    /// Retained or not (not by default).
    pub fn retain(mut self, retain: bool) -> Self {
        self.message.retain = retain;
        self
    }

    /// With these 5.0 properties.
    pub fn properties(mut self, properties: PublishProperties) -> Self {
        self.message.properties = properties;
        self
    }
}

impl<'c> IntoFuture for Publish<'c> {
    type Output = Result<Published, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'c>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (done, answer) = oneshot::channel();
            self.client
                .send(Command::Publish {
                    message: self.message,
                    done,
                })
                .await?;
            answer.await.map_err(|_| Error::Disconnected)?
        })
    }
}
