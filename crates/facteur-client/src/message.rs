//! Messages as the application sees them: owned, the payload a shared [`Bytes`].

use bytes::Bytes;
use facteur_codec::{PayloadFormat, Properties, Property, Publish, QoS, ReasonCode};
use facteur_session::Verdict;
use tokio::sync::mpsc;

use crate::event_loop::Command;

/// The MQTT 5 properties of a message, owned (empty in 3.1.1).
///
/// ```
/// use facteur_client::PublishProperties;
/// let mut props = PublishProperties::default();
/// props.content_type = Some("application/json".into());
/// props.user_properties.push(("unit".into(), "°C".into()));
/// props.message_expiry = Some(3600);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PublishProperties {
    /// Payload Format Indicator: true for UTF-8 text.
    pub utf8_payload: Option<bool>,
    /// Message Expiry Interval in seconds.
    pub message_expiry: Option<u32>,
    /// Content Type.
    pub content_type: Option<String>,
    /// Response Topic.
    pub response_topic: Option<String>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User properties, in order.
    pub user_properties: Vec<(String, String)>,
    /// Subscription Identifiers of the subscriptions that matched (incoming only).
    pub subscription_identifiers: Vec<u32>,
}

impl PublishProperties {
    /// The owned copy of decoded properties.
    pub(crate) fn from_wire(props: &Properties<'_>) -> Self {
        Self {
            utf8_payload: props.payload_format().map(|f| f == PayloadFormat::Utf8),
            message_expiry: props.message_expiry_interval(),
            content_type: props.content_type().map(str::to_owned),
            response_topic: props.response_topic().map(str::to_owned),
            correlation_data: props.correlation_data().map(Bytes::copy_from_slice),
            user_properties: props
                .user_properties()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            subscription_identifiers: props.subscription_identifiers().collect(),
        }
    }

    /// The properties as a list the codec encodes (subscription identifiers are not sent
    /// by a client).
    pub(crate) fn to_list(&self) -> Vec<Property<'_>> {
        let mut list = Vec::new();
        if let Some(utf8) = self.utf8_payload {
            list.push(Property::PayloadFormatIndicator(if utf8 {
                PayloadFormat::Utf8
            } else {
                PayloadFormat::Unspecified
            }));
        }
        if let Some(secs) = self.message_expiry {
            list.push(Property::MessageExpiryInterval(secs));
        }
        if let Some(t) = &self.content_type {
            list.push(Property::ContentType(t));
        }
        if let Some(t) = &self.response_topic {
            list.push(Property::ResponseTopic(t));
        }
        if let Some(d) = &self.correlation_data {
            list.push(Property::CorrelationData(d));
        }
        for (k, v) in &self.user_properties {
            list.push(Property::UserProperty(k, v));
        }
        list
    }
}

/// A message received on a subscription.
///
/// ```no_run
/// # async fn f(mut messages: facteur_client::Messages) {
/// if let Some(message) = messages.recv().await {
///     let unit = message.properties.user_properties.iter().find(|(k, _)| k == "unit");
///     println!("{} = {:?} {unit:?} (QoS {:?})", message.topic, message.payload_str(), message.qos);
/// }
/// # }
/// ```
///
/// With [`Options::manual_acks`](crate::Options::manual_acks), a QoS 1/2 message is
/// acknowledged to the broker when [`ack`](Self::ack) is called or the message is dropped.
#[derive(Debug)]
#[non_exhaustive]
pub struct Message {
    /// Its topic (resolved if it came as a topic alias).
    pub topic: String,
    /// Its payload, sharing the memory of the packet it came in.
    pub payload: Bytes,
    /// Its QoS.
    pub qos: QoS,
    /// Retained (sent because of a subscription, not published just now), or published
    /// with retain when the subscription keeps the flag.
    pub retain: bool,
    /// A resend the broker may have sent before.
    pub dup: bool,
    /// Its 5.0 properties.
    pub properties: PublishProperties,
    pub(crate) ack: Option<PendingAck>,
}

/// The acknowledgement a manually acknowledged message still owes: sent by
/// [`Message::ack`], or when dropped.
#[derive(Debug)]
pub(crate) struct PendingAck {
    pub(crate) token: facteur_session::Deferred,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) sent: bool,
}

impl Drop for PendingAck {
    fn drop(&mut self) {
        if self.sent {
            return;
        }
        // Dropped unacknowledged: acknowledged all the same (the broker would otherwise
        // hold the slot until the connection ends). try_send: drop cannot wait.
        if let Err(mpsc::error::TrySendError::Full(command)) = self
            .commands
            .try_send(Command::Ack(self.token, Verdict::Accept))
        {
            let commands = self.commands.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = commands.send(command).await;
                });
            }
        }
    }
}

impl Message {
    pub(crate) fn from_publish(publish: &Publish<'_>, payload: Bytes) -> Self {
        Self {
            topic: publish.topic.to_owned(),
            payload,
            qos: publish.qos,
            retain: publish.retain,
            dup: publish.dup,
            properties: PublishProperties::from_wire(&publish.properties),
            ack: None,
        }
    }

    /// The payload as UTF-8 text, if it is.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// Manual acknowledgement mode: tells the broker the message is processed (PUBACK or
    /// PUBREC is sent now). Does nothing for QoS 0 or in automatic mode.
    ///
    /// ```no_run
    /// # async fn f(mut messages: facteur_client::Messages) {
    /// while let Some(message) = messages.recv().await {
    ///     // ... store it durably ...
    ///     message.ack().await;
    /// }
    /// # }
    /// ```
    pub async fn ack(mut self) {
        self.answer(Verdict::Accept).await;
    }

    /// Manual acknowledgement mode: tells the broker the message was not taken, with
    /// `reason` (one valid in PUBACK and PUBREC: `UnspecifiedError`,
    /// `ImplementationSpecificError`, `NotAuthorized`, `TopicNameInvalid`, `QuotaExceeded`,
    /// `PayloadFormatInvalid`), in the PUBACK or PUBREC sent now. MQTT 3.1.1 has no negative
    /// acknowledgement: there the message is acknowledged all the same. Either way the broker
    /// does not send it again. Does nothing for QoS 0 or in automatic mode.
    ///
    /// ```no_run
    /// # async fn f(mut messages: facteur_client::Messages) {
    /// use facteur_client::ReasonCode;
    /// while let Some(message) = messages.recv().await {
    ///     if message.payload_str().is_none() {
    ///         message.reject(ReasonCode::PayloadFormatInvalid).await;
    ///         continue;
    ///     }
    ///     message.ack().await;
    /// }
    /// # }
    /// ```
    pub async fn reject(mut self, reason: ReasonCode) {
        self.answer(Verdict::Reject(reason)).await;
    }

    async fn answer(&mut self, verdict: Verdict) {
        if let Some(mut pending) = self.ack.take() {
            pending.sent = true;
            let _ = pending
                .commands
                .send(Command::Ack(pending.token, verdict))
                .await;
        }
    }
}
