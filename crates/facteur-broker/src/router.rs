//! What every connection shares: subscriptions, retained messages, the mailboxes of the
//! connected clients, and the statistics. A PUBLISH takes read locks only on its way to the
//! subscribers, and its payload is shared by all of them (one `Arc`, never a copy each).

use crate::Stats;
use bytes::Bytes;
use facteur_codec::{PacketType, Properties, Property, QoS, SliceWriter, SubscriptionOptions};
use facteur_topic::{RetainedIndex, SubscriptionTree, TopicFilter, TopicName};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, Notify};

/// A connection's identity inside the broker.
pub(crate) type ConnId = u64;

/// An application message as the broker keeps it: shared by every subscriber it goes to.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    /// MQTT 5 PUBLISH properties as wire contents, without Topic Alias and Subscription
    /// Identifier (those belong to one connection).
    pub(crate) properties: Bytes,
}

impl Message {
    /// Copies what a PUBLISH carries, once, for every subscriber to share.
    pub(crate) fn new(
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: &Properties<'_>,
    ) -> Self {
        let kept: Vec<Property<'_>> = properties
            .iter()
            .filter(|p| {
                !matches!(
                    p,
                    Property::TopicAlias(_) | Property::SubscriptionIdentifier(_)
                )
            })
            .collect();
        let kept = Properties::from_slice(&kept);
        let mut bytes = vec![0u8; kept.contents_len()];
        kept.write_contents(&mut SliceWriter::new(&mut bytes));
        Self {
            topic: topic.to_owned(),
            payload: Bytes::copy_from_slice(payload),
            qos,
            retain,
            properties: Bytes::from(bytes),
        }
    }

    /// The stored properties (checked when the message was made, so this cannot fail).
    pub(crate) fn properties(&self) -> Properties<'_> {
        Properties::from_wire(&self.properties, PacketType::Publish).unwrap_or(Properties::EMPTY)
    }
}

/// A message on its way to one subscriber, at the QoS and retain flag it gets there.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) message: Arc<Message>,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
}

struct Client {
    conn: ConnId,
    takeover: Arc<Notify>,
}

/// The shared state.
pub(crate) struct Router {
    subscriptions: RwLock<SubscriptionTree<ConnId, SubscriptionOptions>>,
    retained: RwLock<RetainedIndex<Arc<Message>>>,
    mailboxes: RwLock<HashMap<ConnId, mpsc::Sender<Delivery>>>,
    clients: Mutex<HashMap<String, Client>>,
    retain_available: bool,
    pub(crate) stats: Stats,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Router {
    pub(crate) fn new(retain_available: bool) -> Self {
        Self {
            subscriptions: RwLock::new(SubscriptionTree::new()),
            retained: RwLock::new(RetainedIndex::new()),
            mailboxes: RwLock::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            retain_available,
            stats: Stats::default(),
        }
    }

    /// Registers a connected client; an earlier connection with the same client identifier
    /// is told to go (session takeover).
    pub(crate) fn register(
        &self,
        client_id: &str,
        conn: ConnId,
        mailbox: mpsc::Sender<Delivery>,
        takeover: Arc<Notify>,
    ) {
        write(&self.mailboxes).insert(conn, mailbox);
        let old = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client_id.to_owned(), Client { conn, takeover });
        if let Some(old) = old {
            old.takeover.notify_one();
        }
    }

    /// Forgets a connection: its mailbox, its subscriptions and (if still its own) its client
    /// identifier.
    pub(crate) fn unregister<'f>(
        &self,
        client_id: &str,
        conn: ConnId,
        filters: impl Iterator<Item = &'f str>,
    ) {
        write(&self.mailboxes).remove(&conn);
        {
            let mut tree = write(&self.subscriptions);
            for filter in filters {
                if let Ok(filter) = TopicFilter::new(filter) {
                    tree.remove(filter, &conn);
                }
            }
        }
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.get(client_id).is_some_and(|c| c.conn == conn) {
            clients.remove(client_id);
        }
    }

    /// The number of clients connected now.
    pub(crate) fn connected(&self) -> usize {
        read(&self.mailboxes).len()
    }

    /// The number of subscriptions held.
    pub(crate) fn subscription_count(&self) -> usize {
        read(&self.subscriptions).len()
    }

    /// Adds or replaces a subscription; true if it is new.
    pub(crate) fn subscribe(
        &self,
        conn: ConnId,
        filter: TopicFilter<'_>,
        options: SubscriptionOptions,
    ) -> bool {
        write(&self.subscriptions)
            .insert(filter, conn, options)
            .is_none()
    }

    /// Removes a subscription; true if it existed.
    pub(crate) fn unsubscribe(&self, conn: ConnId, filter: TopicFilter<'_>) -> bool {
        write(&self.subscriptions).remove(filter, &conn).is_some()
    }

    /// The retained messages matching `filter`.
    pub(crate) fn retained_for(&self, filter: TopicFilter<'_>) -> Vec<Arc<Message>> {
        let mut found = Vec::new();
        read(&self.retained).for_each_match(filter, |_, message| found.push(message.clone()));
        found
    }

    /// Stores or clears a retained message, then hands the message to every matching
    /// subscriber: once per client, at the highest QoS its matching subscriptions grant.
    pub(crate) fn publish(&self, from: ConnId, message: Message) {
        let message = Arc::new(message);
        let Ok(name) = TopicName::new(&message.topic) else {
            return;
        };
        if message.retain && self.retain_available {
            let mut retained = write(&self.retained);
            if message.payload.is_empty() {
                retained.remove(name);
            } else {
                retained.insert(name, message.clone());
            }
        }
        // (connection, qos, retain) for each client, highest QoS winning.
        let mut targets: Vec<(ConnId, QoS, bool)> = Vec::new();
        read(&self.subscriptions).for_each_match(name, |&conn, options| {
            if options.no_local && conn == from {
                return;
            }
            let qos = message.qos.min(options.qos);
            let retain = options.retain_as_published && message.retain;
            match targets.iter_mut().find(|t| t.0 == conn) {
                Some(t) => {
                    t.1 = t.1.max(qos);
                    t.2 |= retain;
                }
                None => targets.push((conn, qos, retain)),
            }
        });
        let mailboxes = read(&self.mailboxes);
        for (conn, qos, retain) in targets {
            if let Some(mailbox) = mailboxes.get(&conn) {
                let delivery = Delivery {
                    message: message.clone(),
                    qos,
                    retain,
                };
                if mailbox.try_send(delivery).is_err() {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
