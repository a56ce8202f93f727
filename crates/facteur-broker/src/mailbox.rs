//! A session's hand-off: the messages routed to it on their way into its session, the
//! network connections coming to resume it, and the broker's stop signal, behind one lock
//! and one wake-up.
//!
//! It has no queueing rules of its own: the session's queue ([`facteur_session::QueueLimits`])
//! decides what is kept, displaced or refused. The hand-off only holds what the session
//! task has not taken yet, up to a capacity; when that is full a QoS 0 message is dropped
//! at once (counted) and a QoS 1/2 publisher waits for room, so a subscriber that cannot
//! keep up slows its publishers down. A publisher that has to wait wakes the session's
//! task, which then looks for its client's acknowledgements at once: they are what makes
//! room, and a busy broker's reactor would report them only after every other ready task. It holds no allocation while empty: ten thousand idle
//! clients cost a few hundred bytes each here, not a channel block each.

use crate::message::{Attach, Delivery};
use crate::park::{Lot, Token};
use facteur_codec::QoS;
use facteur_session::{Fifo, SlimDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

/// What became of messages offered together ([`Mailbox::offer_all`]).
#[derive(Debug, Default)]
pub(crate) struct OfferedAll {
    /// QoS 0 messages dropped for want of room.
    pub(crate) dropped: usize,
    /// The messages from the first QoS 1/2 one that found no room on, in order.
    pub(crate) full: Vec<Delivery>,
    /// The session has ended: nothing was taken.
    pub(crate) closed: bool,
}

/// What a session's task does with the first message waiting in its mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// It takes it.
    Yes,
    /// It leaves it; more messages wake the task.
    No,
    /// It leaves it until something else wakes the task (its client's acknowledgements,
    /// its timer): more messages do not, until the mailbox is full.
    NotYet,
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

/// A session's hand-off, shared by the session's task and everyone who routes to it.
#[derive(Debug)]
pub(crate) struct Mailbox {
    inbox: Mutex<Inbox>,
    /// Wakes publishers waiting for room.
    room: Notify,
    /// The number of messages waiting, as last written under the lock: lets a QoS 0 message
    /// that cannot be taken be dropped without taking the lock.
    waiting: AtomicU32,
    /// Most messages waiting (at least 1).
    capacity: u32,
}

#[derive(Debug, Default)]
struct Inbox {
    /// One pointer while empty and never used (an idle client's).
    deliveries: SlimDeque<Delivery>,
    attaches: Attaches,
    closed: bool,
    stopping: bool,
    /// A publisher is waiting for room.
    room_wanted: bool,
    /// The taker said [`Take::NotYet`] to the first message waiting: more messages do not
    /// wake it, until the mailbox is full.
    not_yet: bool,
    /// The one task that takes from this mailbox, when it waits. A plain waker (no future
    /// to keep) is all a single taker needs, and costs an idle session nothing more.
    taker: Option<Taker>,
}

/// Connections waiting for the session's task: none nearly always, so a mailbox pays one
/// pointer for them.
#[derive(Debug, Default)]
#[allow(clippy::box_collection)]
struct Attaches(Option<Box<Vec<Attach>>>);

impl Attaches {
    fn push(&mut self, attach: Attach) {
        self.0.get_or_insert_with(Box::default).push(attach);
    }

    fn pop(&mut self) -> Option<Attach> {
        let attaches = self.0.as_mut()?;
        let attach = attaches.pop();
        if attaches.is_empty() {
            self.0 = None;
        }
        attach
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn take(&mut self) -> Vec<Attach> {
        self.0.take().map(|attaches| *attaches).unwrap_or_default()
    }
}

/// Who is woken when something arrives in a mailbox.
#[derive(Debug)]
enum Taker {
    /// The session's task, waiting.
    Task(Waker),
    /// The session is parked ([`crate::park`]): the parking lot resumes it.
    Parked(Arc<Lot>, Token),
}

impl Inbox {
    /// Queues a delivery; returns the taker to wake (after the lock is released), unless it
    /// said [`Take::NotYet`] to the messages before and the mailbox is not full (at
    /// `capacity`).
    fn push(&mut self, delivery: Delivery, capacity: u32) -> Option<Taker> {
        // A `SlimDeque` grows as a `VecDeque` does and refuses nothing: the capacity is
        // the callers' to enforce (`is_full`).
        let _always_taken = self.deliveries.push_back(delivery);
        if self.not_yet && !self.is_full(capacity) {
            return None;
        }
        self.taker.take()
    }

    /// True if it holds `capacity` messages or more.
    fn is_full(&self, capacity: u32) -> bool {
        len_u32(self.deliveries.len()) >= capacity
    }

    fn pop(&mut self) -> Option<Delivery> {
        let delivery = self.deliveries.pop_front()?;
        if self.deliveries.is_empty() && self.deliveries.capacity() > IDLE_CAPACITY {
            // A client that caught up keeps no large queue.
            self.deliveries = SlimDeque::new();
        }
        Some(delivery)
    }
}

fn wake(taker: Option<Taker>) {
    match taker {
        Some(Taker::Task(waker)) => waker.wake(),
        Some(Taker::Parked(lot, token)) => lot.wake(token),
        None => {}
    }
}

/// The inbox while locked; publishes its length for [`Mailbox::drops_at_once`] on unlock.
struct Guard<'a> {
    inbox: MutexGuard<'a, Inbox>,
    waiting: &'a AtomicU32,
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
            .store(len_u32(self.inbox.deliveries.len()), Ordering::Relaxed);
    }
}

/// A count of messages as the mailbox keeps it (saturating: a capacity above `u32::MAX` is
/// no limit anyone reaches).
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Queue capacity kept once a mailbox is empty again.
const IDLE_CAPACITY: usize = 64;

impl Mailbox {
    /// An empty, open mailbox holding at most `capacity` messages.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inbox: Mutex::default(),
            room: Notify::new(),
            waiting: AtomicU32::new(0),
            capacity: len_u32(capacity).max(1),
        }
    }

    fn lock(&self) -> Guard<'_> {
        Guard {
            inbox: self.inbox.lock().unwrap_or_else(|p| p.into_inner()),
            waiting: &self.waiting,
        }
    }

    /// True if a message at `qos` would be dropped now, known without the lock: QoS 0 with
    /// the mailbox full. The caller then need not build the delivery at all.
    pub(crate) fn drops_at_once(&self, qos: QoS) -> bool {
        qos == QoS::AtMostOnce && self.waiting.load(Ordering::Relaxed) >= self.capacity
    }

    /// Offers several messages in order under one lock, with one wake-up: each is queued
    /// while there is room; past that a QoS 0 one is dropped and, from the first QoS 1/2 one
    /// that finds no room, it and every later one are handed back in order (to wait for
    /// room with [`Mailbox::send`]); the taker is then woken, so that it makes room as soon
    /// as it can. `deliveries` is left empty.
    pub(crate) fn offer_all(&self, deliveries: &mut Vec<Delivery>) -> OfferedAll {
        let mut offered = OfferedAll::default();
        let mut inbox = self.lock();
        if inbox.closed {
            deliveries.clear();
            offered.closed = true;
            return offered;
        }
        let mut taker = None;
        let mut rest = deliveries.drain(..);
        while let Some(delivery) = rest.next() {
            if !inbox.is_full(self.capacity) {
                if let Some(waiting) = inbox.push(delivery, self.capacity) {
                    taker = Some(waiting);
                }
            } else if delivery.qos == QoS::AtMostOnce {
                offered.dropped += 1;
            } else {
                offered.full.push(delivery);
                offered.full.extend(rest.by_ref());
                // The publisher will wait for room, which only the taker makes.
                taker = taker.or_else(|| inbox.taker.take());
            }
        }
        drop(inbox);
        wake(taker);
        offered
    }

    /// Waits for room (the taker woken, as by [`Mailbox::offer_all`]), then queues the
    /// message. Gives it back if the session ends meanwhile. Bound the wait with a timeout.
    pub(crate) async fn send(&self, delivery: Delivery) -> Result<(), Delivery> {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before looking, so room made after the look still wakes us.
            notified.as_mut().enable();
            {
                let mut inbox = self.lock();
                if inbox.closed {
                    return Err(delivery);
                }
                if !inbox.is_full(self.capacity) {
                    let taker = inbox.push(delivery, self.capacity);
                    drop(inbox);
                    wake(taker);
                    return Ok(());
                }
                inbox.room_wanted = true;
                // Room comes from the taker: it is told a publisher waits.
                let taker = inbox.taker.take();
                drop(inbox);
                wake(taker);
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

    /// Moves waiting deliveries, oldest first, into `out` while `take` says [`Take::Yes`]
    /// (one lock for all). `take` is told whether the mailbox is full.
    pub(crate) fn take_while(
        &self,
        out: &mut Vec<Delivery>,
        mut take: impl FnMut(&Delivery, bool) -> Take,
    ) {
        let mut inbox = self.lock();
        loop {
            let full = inbox.is_full(self.capacity);
            let first = inbox.deliveries.front();
            if !first.is_some_and(|d| take(d, full) == Take::Yes) {
                break;
            }
            if let Some(delivery) = inbox.pop() {
                out.push(delivery);
            }
        }
        let wanted = !out.is_empty() && std::mem::take(&mut inbox.room_wanted);
        drop(inbox);
        if wanted {
            self.room.notify_waiters();
        }
    }

    /// What the session's task must act on: a connection first, then the stop signal,
    /// then a message, if `take` takes the first one waiting (`take` is told whether the
    /// mailbox is full). When there is nothing, the task's waker is kept and woken when
    /// something comes (after [`Take::NotYet`], a message only once the mailbox is full).
    /// Only one task may take from a mailbox.
    pub(crate) fn poll_next(
        &self,
        cx: &mut Context<'_>,
        take: impl FnOnce(&Delivery, bool) -> Take,
    ) -> Poll<Next> {
        let mut inbox = self.lock();
        if let Some(attach) = inbox.attaches.pop() {
            return Poll::Ready(Next::Attach(Box::new(attach)));
        }
        if std::mem::take(&mut inbox.stopping) {
            return Poll::Ready(Next::Stop);
        }
        let full = inbox.is_full(self.capacity);
        let taken = inbox.deliveries.front().map(|d| take(d, full));
        inbox.not_yet = taken == Some(Take::NotYet);
        if taken == Some(Take::Yes) {
            if let Some(delivery) = inbox.pop() {
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
            Some(Taker::Task(waker)) if waker.will_wake(cx.waker()) => {}
            taker => *taker = Some(Taker::Task(cx.waker().clone())),
        }
        Poll::Pending
    }

    /// Whether messages are waiting (as last seen under the lock; no lock taken): after
    /// [`Mailbox::poll_next`] declined the first of them, the session cannot take more now.
    pub(crate) fn holds_messages(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// The session is parked in `lot` under `token`: what arrives from now on wakes the
    /// lot. False, and nothing changed, when something is already waiting (or the mailbox is
    /// stopping or closed): the session has work and does not park.
    pub(crate) fn park(&self, lot: &Arc<Lot>, token: Token) -> bool {
        let mut inbox = self.lock();
        if !inbox.deliveries.is_empty()
            || !inbox.attaches.is_empty()
            || inbox.stopping
            || inbox.closed
        {
            return false;
        }
        inbox.taker = Some(Taker::Parked(lot.clone(), token));
        true
    }

    /// Waits for the next thing to act on, every message taken (see
    /// [`Mailbox::poll_next`]).
    pub(crate) async fn next(&self) -> Next {
        std::future::poll_fn(|cx| self.poll_next(cx, |_, _| Take::Yes)).await
    }

    /// Tells the session's task the broker is stopping.
    pub(crate) fn stop(&self) {
        let mut inbox = self.lock();
        inbox.stopping = true;
        let taker = inbox.taker.take();
        drop(inbox);
        wake(taker);
    }

    /// Drops every message waiting; returns how many.
    pub(crate) fn clear(&self) -> usize {
        let mut inbox = self.lock();
        let dropped = inbox.deliveries.len();
        inbox.deliveries = SlimDeque::new();
        let wanted = std::mem::take(&mut inbox.room_wanted);
        drop(inbox);
        if wanted {
            self.room.notify_waiters();
        }
        dropped
    }

    /// Closes the mailbox: nothing more is taken, waiting publishers give up, and the
    /// connections that arrived meanwhile are returned (they need a new session).
    pub(crate) fn close(&self) -> Vec<Attach> {
        let mut inbox = self.lock();
        inbox.closed = true;
        let attaches = inbox.attaches.take();
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
            subscription_ids: crate::message::SubscriptionIds::NONE,
        }
    }

    /// Offers one delivery: "queued", "dropped", "full" or "closed".
    fn offer(mailbox: &Mailbox, delivery: Delivery) -> &'static str {
        let offered = mailbox.offer_all(&mut vec![delivery]);
        match (offered.closed, offered.dropped, offered.full.len()) {
            (true, _, _) => "closed",
            (_, 1, _) => "dropped",
            (_, _, 1) => "full",
            _ => "queued",
        }
    }

    /// A publisher waiting for room in the background: its task says whether the message
    /// got in.
    fn send_in_background(
        mailbox: &Arc<Mailbox>,
        delivery: Delivery,
    ) -> tokio::task::JoinHandle<bool> {
        let mailbox = mailbox.clone();
        tokio::spawn(async move { mailbox.send(delivery).await.is_ok() })
    }

    /// What a background publisher's wait ended with; `why` names what must have ended it
    /// (within 5 s).
    async fn joined(sender: tokio::task::JoinHandle<bool>, why: &str) -> bool {
        tokio::time::timeout(Duration::from_secs(5), sender)
            .await
            .expect(why)
            .unwrap()
    }

    fn payloads(mailbox: &Mailbox) -> Vec<Vec<u8>> {
        let mut taken = Vec::new();
        mailbox.take_while(&mut taken, |_, _| Take::Yes);
        taken.iter().map(|d| d.message.payload.to_vec()).collect()
    }

    #[test]
    fn empty_mailbox_holds_no_allocation() {
        let mailbox = Mailbox::new(2);
        assert_eq!(mailbox.lock().deliveries.capacity(), 0);
        assert!(mailbox.lock().attaches.is_empty());
    }

    /// With the `Arc`'s two counts, 112 bytes: jemalloc's 112-byte class, where the
    /// `VecDeque` inline made it a 160-byte block for every idle client.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_mailbox_fits_a_112_byte_block_with_its_arc() {
        let size = std::mem::size_of::<Mailbox>();
        assert!(size <= 96, "Mailbox is {size} bytes");
    }

    #[test]
    fn a_full_hand_off_drops_qos0_at_once_and_hands_qos1_back() {
        let mailbox = Mailbox::new(2);
        assert_eq!(offer(&mailbox, delivery(QoS::AtMostOnce, b"a")), "queued");
        assert!(!mailbox.drops_at_once(QoS::AtMostOnce));
        assert_eq!(offer(&mailbox, delivery(QoS::AtLeastOnce, b"b")), "queued");
        assert!(mailbox.drops_at_once(QoS::AtMostOnce));
        assert!(!mailbox.drops_at_once(QoS::AtLeastOnce));
        assert_eq!(offer(&mailbox, delivery(QoS::AtMostOnce, b"c")), "dropped");
        assert_eq!(offer(&mailbox, delivery(QoS::ExactlyOnce, b"e")), "full");
        assert_eq!(payloads(&mailbox), [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn the_taker_stops_at_the_first_message_it_declines() {
        let mailbox = Mailbox::new(4);
        for (qos, p) in [
            (QoS::AtLeastOnce, b"a"),
            (QoS::AtMostOnce, b"b"),
            (QoS::AtLeastOnce, b"c"),
        ] {
            offer(&mailbox, delivery(qos, p));
        }
        let mut taken = Vec::new();
        mailbox.take_while(&mut taken, |d, _| match d.qos {
            QoS::AtMostOnce => Take::No,
            _ => Take::Yes,
        });
        assert_eq!(taken.len(), 1);
        assert_eq!(payloads(&mailbox), [b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn many_at_once_in_order_and_handed_back_from_the_first_full_qos1() {
        let mailbox = Mailbox::new(3);
        let mut batch = vec![
            delivery(QoS::AtLeastOnce, b"a"),
            delivery(QoS::AtMostOnce, b"b"),
            delivery(QoS::AtLeastOnce, b"c"),
            // Full from here: a QoS 0 message is dropped...
            delivery(QoS::AtMostOnce, b"d"),
            // ...a QoS 1 message is handed back, with everything after it.
            delivery(QoS::AtLeastOnce, b"e"),
            delivery(QoS::AtMostOnce, b"f"),
        ];
        let offered = mailbox.offer_all(&mut batch);
        assert!(batch.is_empty());
        assert_eq!(offered.dropped, 1);
        let back: Vec<_> = offered
            .full
            .iter()
            .map(|d| d.message.payload.to_vec())
            .collect();
        assert_eq!(back, [b"e".to_vec(), b"f".to_vec()]);
        assert_eq!(
            payloads(&mailbox),
            [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
    }

    #[tokio::test]
    async fn waiting_sender_gets_in_when_room_is_made() {
        let mailbox = Arc::new(Mailbox::new(2));
        for p in [b"a", b"b"] {
            assert_eq!(offer(&mailbox, delivery(QoS::AtLeastOnce, p)), "queued");
        }
        let mut full = mailbox
            .offer_all(&mut vec![delivery(QoS::AtLeastOnce, b"c")])
            .full;
        let waiting = full.pop().expect("a full mailbox hands the message back");
        let sender = send_in_background(&mailbox, waiting);
        // The receiving side takes one: the sender is woken and gets in.
        let Next::Deliver(first) = mailbox.next().await else {
            panic!("expected a delivery");
        };
        assert_eq!(&first.message.payload[..], b"a");
        let sent = joined(sender, "the sender was woken").await;
        assert!(sent);
        assert_eq!(payloads(&mailbox), [b"b".to_vec(), b"c".to_vec()]);
    }

    #[tokio::test]
    async fn closing_returns_attaches_and_releases_senders() {
        let mailbox = Arc::new(Mailbox::new(2));
        for p in [b"a", b"b"] {
            offer(&mailbox, delivery(QoS::AtLeastOnce, p));
        }
        let mut full = mailbox
            .offer_all(&mut vec![delivery(QoS::AtLeastOnce, b"c")])
            .full;
        let waiting = full.pop().expect("a full mailbox hands the message back");
        let sender = send_in_background(&mailbox, waiting);
        tokio::task::yield_now().await;
        assert!(mailbox.close().is_empty());
        let sent = joined(sender, "the sender was released").await;
        assert!(!sent);
        assert!(mailbox.is_closed());
        assert_eq!(offer(&mailbox, delivery(QoS::AtLeastOnce, b"d")), "closed");
        // What was queued before closing can still be read, then the end is seen.
        assert_eq!(payloads(&mailbox).len(), 2);
        assert!(matches!(mailbox.next().await, Next::Closed));
    }

    #[test]
    fn the_taker_is_told_whether_the_mailbox_is_full() {
        let mailbox = Mailbox::new(2);
        for p in [b"a", b"b"] {
            offer(&mailbox, delivery(QoS::AtLeastOnce, p));
        }
        let mut seen = Vec::new();
        let mut taken = Vec::new();
        mailbox.take_while(&mut taken, |_, full| {
            seen.push(full);
            Take::Yes
        });
        // Full before the first is taken, not before the second.
        assert_eq!(seen, [true, false]);
        assert_eq!(taken.len(), 2);
        offer(&mailbox, delivery(QoS::AtLeastOnce, b"c"));
        let waker = Waker::from(Arc::new(Wakes::default()));
        let mut cx = Context::from_waker(&waker);
        let mut full_then = None;
        let next = mailbox.poll_next(&mut cx, |_, full| {
            full_then = Some(full);
            Take::No
        });
        assert!(next.is_pending());
        assert_eq!(full_then, Some(false));
    }

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Wakes {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn not_yet_leaves_the_taker_asleep_until_the_mailbox_is_full() {
        let mailbox = Mailbox::new(4);
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        // Nothing waiting: the next message wakes the taker.
        assert!(mailbox.poll_next(&mut cx, |_, _| Take::Yes).is_pending());
        offer(&mailbox, delivery(QoS::AtLeastOnce, b"a"));
        assert_eq!(wakes.count(), 1);
        // Left with `No`: the next message wakes it again.
        assert!(mailbox.poll_next(&mut cx, |_, _| Take::No).is_pending());
        offer(&mailbox, delivery(QoS::AtLeastOnce, b"b"));
        assert_eq!(wakes.count(), 2);
        // Left with `NotYet`: more messages do not wake it...
        let not_yet = |_: &Delivery, full: bool| if full { Take::Yes } else { Take::NotYet };
        assert!(mailbox.poll_next(&mut cx, not_yet).is_pending());
        offer(&mailbox, delivery(QoS::AtLeastOnce, b"c"));
        assert_eq!(wakes.count(), 2);
        // ...until one fills the mailbox (4).
        offer(&mailbox, delivery(QoS::AtLeastOnce, b"d"));
        assert_eq!(wakes.count(), 3);
        let Poll::Ready(Next::Deliver(first)) = mailbox.poll_next(&mut cx, not_yet) else {
            panic!("the first message of a full mailbox is taken");
        };
        assert_eq!(&first.message.payload[..], b"a");
        // The stop signal wakes a taker that said `NotYet`.
        assert!(mailbox.poll_next(&mut cx, not_yet).is_pending());
        mailbox.stop();
        assert_eq!(wakes.count(), 4);
    }

    #[tokio::test]
    async fn a_publisher_that_must_wait_wakes_the_taker_and_one_that_drops_does_not() {
        let mailbox = Arc::new(Mailbox::new(2));
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        for p in [b"a", b"b"] {
            offer(&mailbox, delivery(QoS::AtLeastOnce, p));
        }
        // The taker leaves both (its client's window is full) and waits.
        assert!(mailbox.poll_next(&mut cx, |_, _| Take::No).is_pending());
        // A QoS 0 message is dropped: nobody waits, the taker sleeps on.
        assert_eq!(offer(&mailbox, delivery(QoS::AtMostOnce, b"c")), "dropped");
        assert_eq!(wakes.count(), 0);
        // A QoS 1 message is handed back to wait for room: the taker is woken.
        let mut full = mailbox
            .offer_all(&mut vec![delivery(QoS::AtLeastOnce, b"d")])
            .full;
        assert_eq!(wakes.count(), 1);
        // Woken, it still cannot take (no acknowledgement came) and waits again; the
        // publisher's wait for room wakes it once more.
        assert!(mailbox.poll_next(&mut cx, |_, _| Take::No).is_pending());
        let waiting = full.pop().expect("a full mailbox hands the message back");
        let sender = send_in_background(&mailbox, waiting);
        let waited = async {
            while wakes.count() < 2 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), waited)
            .await
            .expect("the waiting publisher woke the taker");
        // The taker makes room; the publisher gets in.
        let Poll::Ready(Next::Deliver(first)) = mailbox.poll_next(&mut cx, |_, _| Take::Yes) else {
            panic!("the first message is taken");
        };
        assert_eq!(&first.message.payload[..], b"a");
        let sent = joined(sender, "the sender was woken").await;
        assert!(sent);
        assert_eq!(payloads(&mailbox), [b"b".to_vec(), b"d".to_vec()]);
    }

    #[tokio::test]
    async fn stop_wakes_the_task_even_when_it_takes_no_delivery() {
        let mailbox = Arc::new(Mailbox::new(2));
        let task = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { std::future::poll_fn(|cx| mailbox.poll_next(cx, |_, _| Take::No)).await }
        });
        offer(&mailbox, delivery(QoS::AtLeastOnce, b"a"));
        mailbox.stop();
        let next = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task was woken")
            .unwrap();
        assert!(matches!(next, Next::Stop));
    }
}
