//! A session's inbox: the messages routed to it, the network connections coming to resume
//! it, and the broker's stop signal, behind one lock and one wake-up.
//!
//! It is bounded (a number of messages and, optionally, of payload bytes), it drops QoS 0
//! messages before QoS 1/2 ones when full, and it holds no allocation while empty: ten
//! thousand idle clients cost a few hundred bytes each here, not a channel block each.

use crate::message::{Attach, Delivery};
use facteur_codec::QoS;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

/// How much a mailbox holds before it refuses or drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most messages waiting (at least 1).
    pub(crate) messages: usize,
    /// Most payload bytes waiting; 0 means no limit. A message larger than this is still
    /// taken into an empty mailbox, so that one big message cannot block a client forever.
    pub(crate) bytes: usize,
}

/// What became of a message offered to a mailbox.
#[derive(Debug)]
pub(crate) enum Offer {
    /// Queued, after dropping this many older QoS 0 messages to make room.
    Queued {
        /// QoS 0 messages dropped for it.
        evicted: usize,
    },
    /// Full, and the message is QoS 1/2 for a connected client: the caller may wait for
    /// room with [`Mailbox::send`].
    Full(Delivery),
    /// Not kept: full, or QoS 0 for a client that is not connected.
    Dropped,
    /// The session has ended.
    Closed,
}

/// What a session's task is woken for.
#[derive(Debug)]
pub(crate) enum Next {
    /// A network connection for this session (a reconnect or a takeover).
    Attach(Box<Attach>),
    /// A message to deliver.
    Deliver(Delivery),
    /// The broker is stopping (reported once).
    Stop,
    /// The mailbox was closed and nothing is left in it.
    Closed,
}

/// A session's inbox, shared by the session's task and everyone who routes to it.
#[derive(Debug)]
pub(crate) struct Mailbox {
    inbox: Mutex<Inbox>,
    /// Wakes publishers waiting for room.
    room: Notify,
    /// Whether a client is connected to take deliveries now.
    online: AtomicBool,
    /// The number of messages waiting, as last written under the lock: lets a QoS 0 message
    /// that cannot be taken be dropped without taking the lock.
    waiting: AtomicUsize,
    limits: Limits,
}

#[derive(Debug, Default)]
struct Inbox {
    deliveries: VecDeque<Delivery>,
    /// Payload bytes of `deliveries`.
    bytes: usize,
    attaches: Vec<Attach>,
    closed: bool,
    stopping: bool,
    /// A publisher is waiting for room.
    room_wanted: bool,
    /// The one task that takes from this mailbox, when it waits. A plain waker (no future
    /// to keep) is all a single taker needs, and costs an idle session nothing more.
    taker: Option<Waker>,
}

impl Inbox {
    fn has_room(&self, limits: &Limits, payload: usize) -> bool {
        self.deliveries.len() < limits.messages
            && (limits.bytes == 0
                || self.deliveries.is_empty()
                || self.bytes + payload <= limits.bytes)
    }

    /// Queues a delivery; returns the taker to wake (after the lock is released).
    fn push(&mut self, delivery: Delivery) -> Option<Waker> {
        self.bytes += delivery.message.payload.len();
        self.deliveries.push_back(delivery);
        self.taker.take()
    }

    fn remove(&mut self, at: usize) -> Option<Delivery> {
        let delivery = if at == 0 {
            self.deliveries.pop_front()?
        } else {
            self.deliveries.remove(at)?
        };
        self.bytes -= delivery.message.payload.len();
        if self.deliveries.is_empty() && self.deliveries.capacity() > IDLE_CAPACITY {
            // A client that caught up keeps no large queue.
            self.deliveries = VecDeque::new();
        }
        Some(delivery)
    }

    /// Drops the oldest QoS 0 message; false if there is none.
    fn evict_qos0(&mut self) -> bool {
        let oldest = self
            .deliveries
            .iter()
            .position(|d| d.qos == QoS::AtMostOnce);
        oldest.and_then(|at| self.remove(at)).is_some()
    }
}

fn wake(taker: Option<Waker>) {
    if let Some(waker) = taker {
        waker.wake();
    }
}

/// The inbox while locked; publishes its length for [`Mailbox::drops_at_once`] on unlock.
struct Guard<'a> {
    inbox: MutexGuard<'a, Inbox>,
    waiting: &'a AtomicUsize,
}

impl std::ops::Deref for Guard<'_> {
    type Target = Inbox;

    fn deref(&self) -> &Inbox {
        &self.inbox
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Inbox {
        &mut self.inbox
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.waiting
            .store(self.inbox.deliveries.len(), Ordering::Relaxed);
    }
}

/// Queue capacity kept once a mailbox is empty again.
const IDLE_CAPACITY: usize = 64;

impl Mailbox {
    /// An empty, open mailbox.
    pub(crate) fn new(limits: Limits, online: bool) -> Self {
        Self {
            inbox: Mutex::default(),
            room: Notify::new(),
            online: AtomicBool::new(online),
            waiting: AtomicUsize::new(0),
            limits,
        }
    }

    fn lock(&self) -> Guard<'_> {
        Guard {
            inbox: self.inbox.lock().unwrap_or_else(|p| p.into_inner()),
            waiting: &self.waiting,
        }
    }

    /// True if a message at `qos` would be dropped now, known without the lock: QoS 0 for a
    /// client that is offline or whose mailbox is full (by count). The caller then need not
    /// build the delivery at all.
    pub(crate) fn drops_at_once(&self, qos: QoS) -> bool {
        qos == QoS::AtMostOnce
            && (!self.is_online() || self.waiting.load(Ordering::Relaxed) >= self.limits.messages)
    }

    /// Whether a client is connected.
    pub(crate) fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Marks the client connected or gone. Going offline drops the QoS 0 messages waiting
    /// (they are not kept for offline clients) and returns how many.
    pub(crate) fn set_online(&self, online: bool) -> usize {
        self.online.store(online, Ordering::Relaxed);
        if online {
            return 0;
        }
        let mut inbox = self.lock();
        let mut dropped = 0;
        while inbox.evict_qos0() {
            dropped += 1;
        }
        dropped
    }

    /// Offers a message without waiting. A QoS 1/2 message finding the mailbox full takes
    /// the place of the oldest QoS 0 messages; a QoS 0 message finding it full is dropped.
    pub(crate) fn offer(&self, delivery: Delivery) -> Offer {
        let online = self.is_online();
        if !online && delivery.qos == QoS::AtMostOnce {
            return Offer::Dropped;
        }
        let payload = delivery.message.payload.len();
        let mut inbox = self.lock();
        if inbox.closed {
            return Offer::Closed;
        }
        let mut evicted = 0;
        if delivery.qos != QoS::AtMostOnce {
            while !inbox.has_room(&self.limits, payload) && inbox.evict_qos0() {
                evicted += 1;
            }
        }
        if inbox.has_room(&self.limits, payload) {
            let taker = inbox.push(delivery);
            drop(inbox);
            wake(taker);
            Offer::Queued { evicted }
        } else if online && delivery.qos != QoS::AtMostOnce {
            Offer::Full(delivery)
        } else {
            Offer::Dropped
        }
    }

    /// Waits for room, then queues the message. Gives it back if the session ends or its
    /// client goes offline meanwhile. Bound the wait with a timeout.
    pub(crate) async fn send(&self, delivery: Delivery) -> Result<(), Delivery> {
        let payload = delivery.message.payload.len();
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before looking, so room made after the look still wakes us.
            notified.as_mut().enable();
            {
                let mut inbox = self.lock();
                if inbox.closed || !self.is_online() {
                    return Err(delivery);
                }
                if inbox.has_room(&self.limits, payload) {
                    let taker = inbox.push(delivery);
                    drop(inbox);
                    wake(taker);
                    return Ok(());
                }
                inbox.room_wanted = true;
            }
            notified.await;
        }
    }

    /// Queues a network connection for the session's task; gives it back if the session
    /// has ended (the caller then starts a new one).
    pub(crate) fn attach(&self, attach: Box<Attach>) -> Result<(), Box<Attach>> {
        let mut inbox = self.lock();
        if inbox.closed {
            return Err(attach);
        }
        inbox.attaches.push(*attach);
        let taker = inbox.taker.take();
        drop(inbox);
        wake(taker);
        Ok(())
    }

    /// Moves up to `max` waiting deliveries, oldest first, into `out` (one lock for all).
    pub(crate) fn take_up_to(&self, max: usize, out: &mut Vec<Delivery>) {
        let mut inbox = self.lock();
        for _ in 0..max {
            match inbox.remove(0) {
                Some(delivery) => out.push(delivery),
                None => break,
            }
        }
        let wanted = !out.is_empty() && std::mem::take(&mut inbox.room_wanted);
        drop(inbox);
        if wanted {
            self.room.notify_waiters();
        }
    }

    /// What the session's task must act on: a connection first, then the stop signal,
    /// then (when `deliveries` is true) a message. When there is nothing, the task's waker
    /// is kept and woken when something comes. Only one task may take from a mailbox.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>, deliveries: bool) -> Poll<Next> {
        let mut inbox = self.lock();
        if let Some(attach) = inbox.attaches.pop() {
            return Poll::Ready(Next::Attach(Box::new(attach)));
        }
        if std::mem::take(&mut inbox.stopping) {
            return Poll::Ready(Next::Stop);
        }
        if deliveries {
            if let Some(delivery) = inbox.remove(0) {
                let wanted = std::mem::take(&mut inbox.room_wanted);
                drop(inbox);
                if wanted {
                    self.room.notify_waiters();
                }
                return Poll::Ready(Next::Deliver(delivery));
            }
        }
        if inbox.closed && inbox.deliveries.is_empty() {
            return Poll::Ready(Next::Closed);
        }
        match &mut inbox.taker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            taker => *taker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next thing to act on (see [`Mailbox::poll_next`]).
    pub(crate) async fn next(&self, deliveries: bool) -> Next {
        std::future::poll_fn(|cx| self.poll_next(cx, deliveries)).await
    }

    /// Tells the session's task the broker is stopping.
    pub(crate) fn stop(&self) {
        let mut inbox = self.lock();
        inbox.stopping = true;
        let taker = inbox.taker.take();
        drop(inbox);
        wake(taker);
    }

    /// Drops every message waiting.
    pub(crate) fn clear(&self) {
        let mut inbox = self.lock();
        inbox.deliveries = VecDeque::new();
        inbox.bytes = 0;
        let wanted = std::mem::take(&mut inbox.room_wanted);
        drop(inbox);
        if wanted {
            self.room.notify_waiters();
        }
    }

    /// Closes the mailbox: nothing more is taken, waiting publishers give up, and the
    /// connections that arrived meanwhile are returned (they need a new session).
    pub(crate) fn close(&self) -> Vec<Attach> {
        let mut inbox = self.lock();
        inbox.closed = true;
        let attaches = std::mem::take(&mut inbox.attaches);
        let taker = inbox.taker.take();
        drop(inbox);
        self.room.notify_waiters();
        wake(taker);
        attaches
    }

    /// Whether the mailbox was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use facteur_codec::Properties;
    use std::sync::Arc;
    use std::time::Duration;

    fn delivery(qos: QoS, payload: &[u8]) -> Delivery {
        Delivery {
            message: Arc::new(Message::new(
                "t",
                payload,
                qos,
                false,
                &Properties::EMPTY,
                facteur_session::Instant::from_millis(0),
            )),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
        }
    }

    fn payloads(mailbox: &Mailbox) -> Vec<Vec<u8>> {
        let mut taken = Vec::new();
        mailbox.take_up_to(usize::MAX, &mut taken);
        taken.iter().map(|d| d.message.payload.to_vec()).collect()
    }

    const TWO: Limits = Limits {
        messages: 2,
        bytes: 0,
    };

    #[test]
    fn empty_mailbox_holds_no_allocation() {
        let mailbox = Mailbox::new(TWO, true);
        assert_eq!(mailbox.lock().deliveries.capacity(), 0);
        assert_eq!(mailbox.lock().attaches.capacity(), 0);
    }

    #[test]
    fn full_mailbox_drops_qos0_first() {
        let mailbox = Mailbox::new(TWO, true);
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtMostOnce, b"a")),
            Offer::Queued { evicted: 0 }
        ));
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtLeastOnce, b"b")),
            Offer::Queued { evicted: 0 }
        ));
        // Full: a new QoS 0 message is the one dropped...
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtMostOnce, b"c")),
            Offer::Dropped
        ));
        // ...and a QoS 1 message takes the place of the QoS 0 one.
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtLeastOnce, b"d")),
            Offer::Queued { evicted: 1 }
        ));
        // Nothing QoS 0 left: a QoS 1 message for a connected client is handed back.
        assert!(matches!(
            mailbox.offer(delivery(QoS::ExactlyOnce, b"e")),
            Offer::Full(_)
        ));
        assert_eq!(payloads(&mailbox), [b"b".to_vec(), b"d".to_vec()]);
    }

    #[test]
    fn byte_limit_counts_payloads_but_takes_one_big_message() {
        let mailbox = Mailbox::new(
            Limits {
                messages: 100,
                bytes: 10,
            },
            true,
        );
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtLeastOnce, &[0; 25])),
            Offer::Queued { .. }
        ));
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtLeastOnce, b"x")),
            Offer::Full(_)
        ));
        assert_eq!(payloads(&mailbox).len(), 1);
        for _ in 0..5 {
            assert!(matches!(
                mailbox.offer(delivery(QoS::AtMostOnce, b"12")),
                Offer::Queued { .. }
            ));
        }
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtMostOnce, b"1")),
            Offer::Dropped
        ));
        // 4 more bytes of QoS 1 evict two 2-byte QoS 0 messages.
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtLeastOnce, b"four")),
            Offer::Queued { evicted: 2 }
        ));
        assert_eq!(mailbox.lock().bytes, 10);
    }

    #[test]
    fn offline_client_gets_no_qos0_and_loses_waiting_ones() {
        let mailbox = Mailbox::new(TWO, true);
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtMostOnce, b"a")),
            Offer::Queued { .. }
        ));
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtLeastOnce, b"b")),
            Offer::Queued { .. }
        ));
        assert_eq!(mailbox.set_online(false), 1);
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtMostOnce, b"c")),
            Offer::Dropped
        ));
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtLeastOnce, b"d")),
            Offer::Queued { .. }
        ));
        // Full and offline: nobody waits for an offline client.
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtLeastOnce, b"e")),
            Offer::Dropped
        ));
        assert_eq!(payloads(&mailbox), [b"b".to_vec(), b"d".to_vec()]);
    }

    #[tokio::test]
    async fn waiting_sender_gets_in_when_room_is_made() {
        let mailbox = Arc::new(Mailbox::new(TWO, true));
        for p in [b"a", b"b"] {
            assert!(matches!(
                mailbox.offer(delivery(QoS::AtLeastOnce, p)),
                Offer::Queued { .. }
            ));
        }
        let Offer::Full(waiting) = mailbox.offer(delivery(QoS::AtLeastOnce, b"c")) else {
            panic!("expected a full mailbox");
        };
        let sender = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { mailbox.send(waiting).await.is_ok() }
        });
        // The receiving side takes one: the sender is woken and gets in.
        let Next::Deliver(first) = mailbox.next(true).await else {
            panic!("expected a delivery");
        };
        assert_eq!(&first.message.payload[..], b"a");
        let sent = tokio::time::timeout(Duration::from_secs(5), sender)
            .await
            .expect("the sender was woken")
            .unwrap();
        assert!(sent);
        assert_eq!(payloads(&mailbox), [b"b".to_vec(), b"c".to_vec()]);
    }

    #[tokio::test]
    async fn closing_returns_attaches_and_releases_senders() {
        let mailbox = Arc::new(Mailbox::new(TWO, true));
        for p in [b"a", b"b"] {
            mailbox.offer(delivery(QoS::AtLeastOnce, p));
        }
        let Offer::Full(waiting) = mailbox.offer(delivery(QoS::AtLeastOnce, b"c")) else {
            panic!("expected a full mailbox");
        };
        let sender = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { mailbox.send(waiting).await.is_ok() }
        });
        tokio::task::yield_now().await;
        assert!(mailbox.close().is_empty());
        let sent = tokio::time::timeout(Duration::from_secs(5), sender)
            .await
            .expect("the sender was released")
            .unwrap();
        assert!(!sent);
        assert!(mailbox.is_closed());
        assert!(matches!(
            mailbox.offer(delivery(QoS::AtLeastOnce, b"d")),
            Offer::Closed
        ));
        // What was queued before closing can still be read, then the end is seen.
        assert_eq!(payloads(&mailbox).len(), 2);
        assert!(matches!(mailbox.next(true).await, Next::Closed));
    }

    #[tokio::test]
    async fn stop_wakes_the_task_even_without_deliveries() {
        let mailbox = Arc::new(Mailbox::new(TWO, true));
        let task = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { matches!(mailbox.next(false).await, Next::Stop) }
        });
        mailbox.offer(delivery(QoS::AtLeastOnce, b"a"));
        mailbox.stop();
        let stopped = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task was woken")
            .unwrap();
        assert!(stopped);
    }
}
