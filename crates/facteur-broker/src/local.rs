//! Publishing and subscribing inside the process that embeds the broker, without a socket.

use crate::mailbox::{Mailbox, Next};
use crate::message::{Delivery, Message, Subscribed};
use crate::router::{ConnId, Router};
use bytes::Bytes;
use facteur_codec::{Properties, QoS, SubscriptionOptions};
use facteur_topic::{TopicError, TopicFilter, TopicName};
use std::sync::Arc;

/// A message received by a [`LocalSubscription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMessage {
    /// The topic it was published to.
    pub topic: String,
    /// The payload, shared with every other subscriber (not copied).
    pub payload: Bytes,
    /// The QoS it was delivered at (the lower of publish and subscription QoS).
    pub qos: QoS,
    /// True when it is a retained message sent at subscribe time.
    pub retain: bool,
}

/// An in-process subscription made with
/// [`BrokerHandle::subscribe`](crate::BrokerHandle::subscribe). Dropping it unsubscribes.
#[derive(Debug)]
pub struct LocalSubscription {
    key: ConnId,
    filter: String,
    mailbox: Arc<Mailbox>,
    router: Arc<Router>,
}

impl LocalSubscription {
    pub(crate) fn new(router: &Arc<Router>, filter: &str, qos: QoS) -> Result<Self, TopicError> {
        let parsed = TopicFilter::new(filter)?;
        let key = router.next_key();
        let mailbox = router.open_mailbox(key);
        // Retained messages first, as a client would get them (as many as fit).
        let mut retained: Vec<Delivery> = router
            .retained_for(parsed)
            .into_iter()
            .map(|message| Delivery {
                qos: message.qos.min(qos),
                message,
                retain: true,
                subscription_ids: crate::message::SubscriptionIds::NONE,
            })
            .collect();
        // Nobody waits for room here: what does not fit is not kept.
        let _ = mailbox.offer_all(&mut retained);
        let subscribed = Subscribed {
            options: SubscriptionOptions::qos(qos),
            id: None,
        };
        router.subscribe(key, parsed, subscribed);
        Ok(Self {
            key,
            filter: filter.to_owned(),
            mailbox,
            router: router.clone(),
        })
    }

    /// The next message, or `None` once the broker has stopped.
    pub async fn recv(&mut self) -> Option<LocalMessage> {
        let delivery = loop {
            match self.mailbox.next().await {
                Next::Deliver(delivery) => break delivery,
                Next::Closed => return None,
                // Not a session: connections never come here, and the end of the broker
                // is seen when its mailboxes close.
                Next::Attach(_) | Next::Stop => continue,
            }
        };
        Some(LocalMessage {
            topic: delivery.message.topic.to_string(),
            payload: delivery.message.payload.clone(),
            qos: delivery.qos,
            retain: delivery.retain,
        })
    }
}

impl Drop for LocalSubscription {
    fn drop(&mut self) {
        self.router
            .unsubscribe_all(self.key, std::iter::once(std::mem::take(&mut self.filter)));
        let _ = self.router.close_mailbox(self.key);
    }
}

/// Publishes from inside the process, as a client would (retained if asked).
pub(crate) fn publish(
    router: &Router,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
) -> Result<(), TopicError> {
    TopicName::new(topic)?;
    let message = Message::new(
        topic,
        payload,
        qos,
        retain,
        &Properties::EMPTY,
        router.now(),
    );
    let waiting = router.publish(0, message).waiting;
    router.drop_waiting(waiting);
    Ok(())
}
