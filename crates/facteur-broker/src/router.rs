//! What every connection shares: subscriptions, retained messages, the mailboxes of the
//! connected clients, and the statistics. A PUBLISH takes read locks only on its way to the
//! subscribers, and its payload is shared by all of them (one `Arc`, never a copy each).

use crate::auth::{Authenticator, Authorizer};
use crate::mailbox::Mailbox;
use crate::message::{Attach, Delivery, Message, Subscribed, SubscriptionIds};
use crate::park::Lot;
use crate::Stats;
use facteur_codec::QoS;
use facteur_session::{Instant, RetainedStore};
use facteur_topic::{SubscriptionTree, TopicFilter, TopicName};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A connection's identity inside the broker.
pub(crate) type ConnId = u64;

/// Hashing for maps keyed by [`ConnId`]: the keys are the broker's own counters, not chosen
/// by clients, so one multiplication spreads them (the default SipHash costs more than the
/// rest of a lookup, once per subscriber per message).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnIdHash;

impl std::hash::BuildHasher for ConnIdHash {
    type Hasher = ConnIdHasher;

    fn build_hasher(&self) -> ConnIdHasher {
        ConnIdHasher(0)
    }
}

/// See [`ConnIdHash`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnIdHasher(u64);

impl std::hash::Hasher for ConnIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, key: u64) {
        // Fibonacci hashing: an odd constant near 2^64 / φ.
        self.0 = (self.0.rotate_left(5) ^ key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Where a connecting client's session is.
pub(crate) enum SessionSlot {
    /// A task runs it: hand the connection to its mailbox.
    Existing(Arc<Mailbox>),
    /// None: the caller runs a new one under this key, with this (registered) mailbox.
    New { key: ConnId, mailbox: Arc<Mailbox> },
    /// None, and the broker holds as many sessions as it may.
    Full,
}

/// The vectors routing a batch works in, kept per thread between batches: once they are as
/// large as a batch needs, routing a message allocates nothing of its own (before, each
/// batch allocated three, one batch being one message when a QoS 1 publisher waits for each
/// acknowledgement). Each keeps the size of the largest batch or fan-out its thread has
/// routed (24 bytes per matching subscription).
#[derive(Default)]
struct RouteScratch {
    /// The batch's messages, shared by their deliveries.
    messages: Vec<Arc<Message>>,
    /// The subscriptions matching a run of messages to one topic.
    matched: Vec<(ConnId, Subscribed)>,
    /// One subscriber's deliveries of a run, on their way into its mailbox.
    deliveries: Vec<Delivery>,
}

thread_local! {
    /// See [`RouteScratch`].
    static ROUTE_SCRATCH: std::cell::Cell<RouteScratch> = std::cell::Cell::new(RouteScratch::default());
}

/// Where a message went that needs its publisher's attention.
#[derive(Default)]
pub(crate) struct Routed {
    /// QoS 1/2 deliveries to connected subscribers with full mailboxes: the publisher's
    /// connection waits for room.
    pub(crate) waiting: Vec<Waiting>,
    /// A connected subscriber's mailbox was full and a QoS 0 delivery was dropped: the
    /// publisher's connection lets other tasks run before reading more.
    pub(crate) congested: bool,
}

/// A QoS 1/2 delivery for a connected subscriber whose mailbox is full: the publishing
/// connection waits for room (so its publisher is slowed down) instead of dropping it.
pub(crate) type Waiting = (Arc<Mailbox>, Delivery);

struct SessionEntry {
    key: ConnId,
    mailbox: Arc<Mailbox>,
}

/// The shared state.
pub(crate) struct Router {
    subscriptions: RwLock<SubscriptionTree<ConnId, Subscribed>>,
    /// The retained messages (facteur-session's store: expiry, limits).
    retained: Mutex<RetainedStore>,
    mailboxes: RwLock<HashMap<ConnId, Arc<Mailbox>, ConnIdHash>>,
    /// Messages a session's mailbox holds before publishers drop (QoS 0) or wait.
    mailbox_capacity: usize,
    /// Set once the broker stops: mailboxes opened later are told at once.
    stopping: AtomicBool,
    sessions: Mutex<HashMap<Arc<str>, SessionEntry>>,
    retain_available: bool,
    next_key: AtomicU64,
    links: AtomicUsize,
    max_links: AtomicUsize,
    epoch: tokio::time::Instant,
    /// Where idle sessions park (opened at the first one; `None` when it cannot be).
    lot: std::sync::OnceLock<Option<Arc<Lot>>>,
    /// Connection and session tasks running, and the wake-up when none is left.
    tasks: AtomicUsize,
    tasks_ended: tokio::sync::Notify,
    pub(crate) stats: Stats,
    /// Who may connect.
    pub(crate) authenticator: Arc<dyn Authenticator>,
    /// What each client may do; `None`: everything (no check on the delivery path).
    pub(crate) authorizer: Option<Arc<dyn Authorizer>>,
}

/// One client admitted, counted among [`Router::links`] until it is dropped or its
/// session task takes the count over ([`LinkSlot::hand_to_session`]).
#[derive(Debug)]
pub(crate) struct LinkSlot(Option<Arc<Router>>);

impl LinkSlot {
    /// The session task now holds the count: it calls [`Router::link_down`] when the
    /// connection ends (a connected client then pays no pointer for its slot).
    pub(crate) fn hand_to_session(mut self) {
        self.0 = None;
    }
}

impl Drop for LinkSlot {
    fn drop(&mut self) {
        if let Some(router) = self.0.take() {
            router.link_down();
        }
    }
}

/// Counts one running connection task while it lives (see [`Router::all_tasks_ended`]);
/// session tasks count themselves.
pub(crate) struct TaskGuard(Arc<Router>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.task_ended();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Router {
    pub(crate) fn new(
        config: &crate::Config,
        authenticator: Arc<dyn Authenticator>,
        authorizer: Option<Arc<dyn Authorizer>>,
    ) -> Self {
        let (retain_available, mailbox_capacity) =
            (config.retain_available, config.max_queued_messages);
        Self {
            subscriptions: RwLock::new(SubscriptionTree::new()),
            retained: Mutex::new(RetainedStore::with_limits(
                config.max_retained_messages,
                config.max_retained_bytes,
            )),
            mailboxes: RwLock::new(HashMap::default()),
            mailbox_capacity,
            stopping: AtomicBool::new(false),
            sessions: Mutex::new(HashMap::new()),
            retain_available,
            next_key: AtomicU64::new(1),
            links: AtomicUsize::new(0),
            max_links: AtomicUsize::new(0),
            epoch: tokio::time::Instant::now(),
            lot: std::sync::OnceLock::new(),
            tasks: AtomicUsize::new(0),
            tasks_ended: tokio::sync::Notify::new(),
            stats: Stats::default(),
            authenticator,
            authorizer,
        }
    }

    /// The parking lot of idle sessions, opened on the first call (from a task of the
    /// broker's runtime); `None` when it cannot be opened (sessions then stay in their
    /// tasks).
    pub(crate) fn lot(&self) -> Option<&Arc<Lot>> {
        self.lot
            .get_or_init(|| match Lot::start() {
                Ok(lot) => Some(lot),
                Err(error) => {
                    tracing::warn!(%error, "idle sessions cannot park: each keeps its task");
                    None
                }
            })
            .as_ref()
    }

    /// The parking lot if it is open already (it is not opened for the call).
    pub(crate) fn open_lot(&self) -> Option<&Arc<Lot>> {
        self.lot.get().and_then(Option::as_ref)
    }

    /// How many sessions are parked (the lot is not opened for it).
    pub(crate) fn parked(&self) -> usize {
        self.open_lot().map_or(0, |lot| lot.parked())
    }

    /// Counts a task started; [`Router::task_ended`] when it ends.
    pub(crate) fn task_started(&self) {
        self.tasks.fetch_add(1, Ordering::AcqRel);
    }

    /// A task counted with [`Router::task_started`] ended.
    pub(crate) fn task_ended(&self) {
        if self.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tasks_ended.notify_waiters();
        }
    }

    /// Counts a task until the guard is dropped.
    pub(crate) fn track_task(self: &Arc<Self>) -> TaskGuard {
        self.tasks.fetch_add(1, Ordering::AcqRel);
        TaskGuard(self.clone())
    }

    /// Waits until no connection or session task is running.
    pub(crate) async fn all_tasks_ended(&self) {
        loop {
            let ended = self.tasks_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.tasks.load(Ordering::Acquire) == 0 {
                return;
            }
            ended.await;
        }
    }

    /// A key no session has had.
    pub(crate) fn next_key(&self) -> ConnId {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// The broker's clock, as sessions count time.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_millis(self.epoch.elapsed().as_millis() as u64)
    }

    /// A session deadline on tokio's clock.
    pub(crate) fn deadline(&self, at: Instant) -> tokio::time::Instant {
        self.epoch + std::time::Duration::from_millis(at.as_millis())
    }

    /// Finds the session of `client_id`, or reserves it (and its mailbox) for the caller.
    /// A new session is refused when `max_sessions` (0: no limit) are held already.
    pub(crate) fn attach(&self, client_id: &Arc<str>, max_sessions: usize) -> SessionSlot {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match sessions.get(&**client_id) {
            Some(entry) if !entry.mailbox.is_closed() => {
                return SessionSlot::Existing(entry.mailbox.clone());
            }
            // A session ending now is replaced, not counted twice.
            Some(_) => {}
            None if max_sessions != 0 && sessions.len() >= max_sessions => {
                return SessionSlot::Full;
            }
            None => {}
        }
        let key = self.next_key();
        let mailbox = self.open_mailbox(key);
        sessions.insert(
            client_id.clone(),
            SessionEntry {
                key,
                mailbox: mailbox.clone(),
            },
        );
        SessionSlot::New { key, mailbox }
    }

    /// Forgets the session `key` of `client_id` (if a newer one has not replaced it).
    pub(crate) fn detach(&self, client_id: &str, key: ConnId) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.get(client_id).is_some_and(|e| e.key == key) {
            sessions.remove(client_id);
        }
    }

    /// Opens and registers the mailbox of `key`.
    pub(crate) fn open_mailbox(&self, key: ConnId) -> Arc<Mailbox> {
        let mailbox = Arc::new(Mailbox::new(self.mailbox_capacity));
        let mut mailboxes = write(&self.mailboxes);
        if self.stopping.load(Ordering::Relaxed) {
            mailbox.stop();
        }
        mailboxes.insert(key, mailbox.clone());
        mailbox
    }

    /// Tells every session the broker is stopping.
    pub(crate) fn stop_all(&self) {
        let mailboxes = write(&self.mailboxes);
        self.stopping.store(true, Ordering::Relaxed);
        for mailbox in mailboxes.values() {
            mailbox.stop();
        }
    }

    /// Counts deliveries nobody will wait for as dropped.
    pub(crate) fn drop_waiting(&self, waiting: Vec<Waiting>) {
        self.stats
            .dropped
            .fetch_add(waiting.len() as u64, Ordering::Relaxed);
    }

    /// Closes every mailbox left (in-process subscriptions see their end).
    pub(crate) fn close_all_mailboxes(&self) {
        for (_, mailbox) in write(&self.mailboxes).drain() {
            mailbox.close();
        }
    }

    /// Unregisters and closes the mailbox of `key`; returns the connections that were on
    /// their way to it.
    pub(crate) fn close_mailbox(&self, key: ConnId) -> Vec<Attach> {
        match write(&self.mailboxes).remove(&key) {
            Some(mailbox) => mailbox.close(),
            None => Vec::new(),
        }
    }

    /// Removes every subscription of session `key`.
    pub(crate) fn unsubscribe_all<F: AsRef<str>>(
        &self,
        key: ConnId,
        filters: impl Iterator<Item = F>,
    ) {
        let mut tree = write(&self.subscriptions);
        for filter in filters {
            if let Ok(filter) = TopicFilter::new(filter.as_ref()) {
                tree.remove(filter, &key);
            }
        }
    }

    /// A connected client is gone (see [`LinkSlot::hand_to_session`]).
    pub(crate) fn link_down(&self) {
        self.links.fetch_sub(1, Ordering::AcqRel);
    }

    /// Counts one more connected client, unless `max` (0: no limit) are already: the count
    /// and the check are one atomic step, so racing connections cannot overshoot.
    pub(crate) fn reserve_link(self: &Arc<Self>, max: usize) -> Option<LinkSlot> {
        let before = self
            .links
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .ok()?;
        self.max_links.fetch_max(before + 1, Ordering::Relaxed);
        Some(LinkSlot(Some(self.clone())))
    }

    /// The most clients connected at once since start.
    pub(crate) fn max_links(&self) -> usize {
        self.max_links.load(Ordering::Relaxed)
    }

    /// The number of retained messages.
    pub(crate) fn retained_count(&self) -> usize {
        lock(&self.retained).len()
    }

    /// Clients connected now.
    pub(crate) fn links(&self) -> usize {
        self.links.load(Ordering::Relaxed)
    }

    /// Sessions held now, connected or not.
    pub(crate) fn sessions(&self) -> usize {
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
        subscribed: Subscribed,
    ) -> bool {
        write(&self.subscriptions)
            .insert(filter, conn, subscribed)
            .is_none()
    }

    /// Removes a subscription; true if it existed.
    pub(crate) fn unsubscribe(&self, conn: ConnId, filter: TopicFilter<'_>) -> bool {
        write(&self.subscriptions).remove(filter, &conn).is_some()
    }

    /// The retained messages matching `filter` whose Message Expiry Interval has not run
    /// out (an expired one is no longer retained, MQTT-3.3.2-5).
    /// Each is copied for its subscriber, with the Message Expiry Interval left now.
    pub(crate) fn retained_for(&self, filter: TopicFilter<'_>) -> Vec<Arc<Message>> {
        let now = self.now();
        let mut found = Vec::new();
        lock(&self.retained).for_each_match(filter, now, |m| {
            let message =
                Message::new(m.topic.as_str(), m.payload, m.qos, true, &m.properties, now);
            found.push(Arc::new(message));
        });
        found
    }

    /// Stores or clears a retained message, then hands the message to every matching
    /// subscriber: see [`Router::publish_all`].
    #[must_use]
    pub(crate) fn publish(&self, from: ConnId, message: Message) -> Routed {
        self.publish_all(from, &mut vec![message])
    }

    /// Routes the messages one client published, in order (`messages` is left empty):
    /// each is stored or cleared as retained, then handed to every matching subscriber,
    /// once per client, at the highest QoS its matching subscriptions grant.
    ///
    /// A batch costs one subscription lookup per distinct topic in a row and one mailbox
    /// lock and wake-up per subscriber, however many of its messages each subscriber gets.
    /// A full mailbox drops a QoS 0 delivery (counted); a QoS 1/2 delivery finding it full,
    /// and every later one to the same mailbox, is returned in order, for the caller to wait
    /// for room (or drop with [`Router::drop_waiting`]).
    #[must_use]
    pub(crate) fn publish_all(&self, from: ConnId, messages: &mut Vec<Message>) -> Routed {
        let mut scratch = ROUTE_SCRATCH.with(std::cell::Cell::take);
        let routed = self.route_with(from, messages, &mut scratch);
        scratch.messages.clear();
        scratch.matched.clear();
        ROUTE_SCRATCH.with(|cell| cell.set(scratch));
        routed
    }

    /// [`publish_all`](Self::publish_all) in `scratch`'s vectors (its deliveries are left
    /// empty; the caller empties the other two).
    fn route_with(
        &self,
        from: ConnId,
        messages: &mut Vec<Message>,
        scratch: &mut RouteScratch,
    ) -> Routed {
        let mut routed = Routed::default();
        let RouteScratch {
            messages: shared,
            matched,
            deliveries,
        } = scratch;
        shared.extend(messages.drain(..).map(Arc::new));
        let messages = &*shared;
        for message in messages
            .iter()
            .filter(|m| m.retain && self.retain_available)
        {
            self.keep_retained(message);
        }
        // Runs of messages to the same topic (the usual case: a sensor's stream) share one
        // subscription lookup, grouped by session with a sort of the run's matches (stable,
        // so subscription identifiers keep the tree's order); each session then gets the
        // run's messages in order, one delivery per message at the highest QoS its matching
        // subscriptions grant, with one mailbox lock and wake-up for the lot.
        let mut dropped = 0;
        let mailboxes = read(&self.mailboxes);
        for run in messages.chunk_by(|a, b| a.topic == b.topic) {
            let Ok(name) = TopicName::new(&run[0].topic) else {
                continue;
            };
            matched.clear();
            read(&self.subscriptions).for_each_match(name, |&conn, subscribed| {
                if !(subscribed.options.no_local && conn == from) {
                    matched.push((conn, *subscribed));
                }
            });
            matched.sort_by_key(|&(conn, _)| conn);
            let sessions = matched.chunk_by(|a, b| a.0 == b.0).count();
            for message in run {
                message.set_sessions(sessions);
            }
            for group in matched.chunk_by(|a, b| a.0 == b.0) {
                let Some(mailbox) = mailboxes.get(&group[0].0) else {
                    continue;
                };
                let ids = SubscriptionIds::new(group.iter().filter_map(|(_, s)| s.id));
                for message in run {
                    let qos = group
                        .iter()
                        .map(|(_, s)| message.qos.min(s.options.qos))
                        .max()
                        .unwrap_or(QoS::AtMostOnce);
                    if deliveries.is_empty() && mailbox.drops_at_once(qos) {
                        dropped += 1;
                        routed.congested = true;
                        continue;
                    }
                    let mut delivery = Delivery {
                        message: message.clone(),
                        qos,
                        retain: false,
                        subscription_ids: ids.clone(),
                    };
                    for (_, subscribed) in group {
                        let options = subscribed.options;
                        delivery.retain |= options.retain_as_published && message.retain;
                    }
                    deliveries.push(delivery);
                }
                if deliveries.is_empty() {
                    continue;
                }
                if routed.waiting.iter().any(|(m, _)| Arc::ptr_eq(m, mailbox)) {
                    // Its earlier messages wait for room: these go after them.
                    let blocked = deliveries.drain(..).map(|d| (mailbox.clone(), d));
                    routed.waiting.extend(blocked);
                    continue;
                }
                let offered = mailbox.offer_all(deliveries);
                if offered.dropped > 0 {
                    dropped += offered.dropped;
                    routed.congested = true;
                }
                if !offered.full.is_empty() {
                    routed
                        .waiting
                        .extend(offered.full.into_iter().map(|d| (mailbox.clone(), d)));
                }
            }
        }
        if dropped > 0 {
            self.stats
                .dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        routed
    }

    /// Stores or clears `message` as its topic's retained message (within the store's
    /// limits: past them it is still delivered, only not kept, and counted).
    fn keep_retained(&self, message: &Message) {
        let Ok(name) = TopicName::new(&message.topic) else {
            return;
        };
        let properties = message.properties();
        let expiry = properties.message_expiry_interval();
        let (payload, qos, at) = (&message.payload[..], message.qos, message.received_at);
        let kept = lock(&self.retained).set(name, payload, qos, &properties, expiry, at);
        if let Err(error) = kept {
            tracing::debug!(topic = %name, %error, "retained message not kept");
            self.stats.retained_refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}
