//! Parking: an idle client costs no task.
//!
//! A session whose client has nothing to say leaves its task. Its state (the boxed
//! [`SessionTask`]) goes into the broker's parking lot, its TCP socket leaves tokio's
//! reactor for the lot's own readiness set (one epoll set for every parked socket), and its
//! mailbox wakes the lot instead of a task. One task runs the lot: when a parked client's
//! socket becomes readable (bytes, or the end of the connection), when something arrives in
//! a parked session's mailbox (a message, a reconnecting client, the broker's stop), or when
//! a parked session's deadline comes (keep alive, expiry, a will's delay), the lot gives the
//! session a task again and the session goes on exactly where it stopped.
//!
//! What an idle client costs is then its session's state, its mailbox and the router's
//! entries: no task, no timer and no reactor registration of its own (together about 800
//! bytes of the 1,800 a client waiting in a task held).
//!
//! When a session parks is the session task's decision ([`SessionTask::wants_to_park`]):
//! at once when its client has said nothing since its CONNACK or since the session last
//! resumed and went quiet again, else after [`PARK_AFTER`] without anything to do, so that
//! a busy client does not go in and out of the lot between its messages.

use crate::link::Link;
use crate::session_task::SessionTask;
use crate::transport::Stream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A parked session's place in the lot.
pub(crate) type Token = u32;

/// A parked socket, as the lot's readiness set knows it.
#[cfg(unix)]
type Fd = std::os::fd::RawFd;
#[cfg(not(unix))]
type Fd = std::convert::Infallible;

/// How long a session that has been busy waits with nothing to do before it parks.
pub(crate) const PARK_AFTER: Duration = Duration::from_secs(1);

/// The shortest time between two looks for parked sessions whose deadline came: a
/// parked session's deadline is kept at most this late, and many sessions due close
/// together are resumed by one scan of the lot.
const SCAN_GAP: Duration = Duration::from_millis(20);

/// Parked sessions, and what wakes them.
pub(crate) struct Lot {
    /// Where parked sockets are registered (the lot's task waits on the set).
    registry: mio::Registry,
    slots: Mutex<Slots>,
    /// Sessions whose mailbox got something, for the lot's task to resume.
    woken: Mutex<Vec<Token>>,
    /// Wakes the lot's task: a mailbox woke a session, or an earlier deadline came in.
    notify: Notify,
}

impl std::fmt::Debug for Lot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lot")
            .field("parked", &lock(&self.slots).count)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Slots {
    /// A parked session's deadline is kept in its `park_at`, unused while it is parked.
    parked: Vec<Option<Box<SessionTask>>>,
    /// Free places in `parked`.
    free: Vec<Token>,
    count: usize,
    /// No parked session's deadline is earlier (after a session left, it may be earlier
    /// than every deadline left: the next scan then finds nothing and sets it right).
    earliest: Option<Instant>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Lot {
    /// Opens the lot and starts its task (on the current tokio runtime).
    ///
    /// # Errors
    /// The readiness set cannot be made (or parking is not available on this platform).
    pub(crate) fn start() -> std::io::Result<Arc<Self>> {
        #[cfg(unix)]
        {
            let poll = mio::Poll::new()?;
            let registry = poll.registry().try_clone()?;
            // Deprecated because an `AsyncFd` may be handed a descriptor it does not own,
            // which is then closed under the reactor; here the descriptor belongs to the
            // `Poll` the `AsyncFd` owns, so it lives exactly as long as the registration.
            // The replacement (`register_with_interest`) is the same call, marked `unsafe`.
            #[allow(deprecated)]
            let ready =
                tokio::io::unix::AsyncFd::with_interest(poll, tokio::io::Interest::READABLE)?;
            let lot = Arc::new(Self {
                registry,
                slots: Mutex::default(),
                woken: Mutex::default(),
                notify: Notify::new(),
            });
            tokio::spawn(run(lot.clone(), ready));
            Ok(lot)
        }
        #[cfg(not(unix))]
        {
            Err(std::io::ErrorKind::Unsupported.into())
        }
    }

    /// Parks `task` (its socket, if any, already out of tokio's reactor) until its socket
    /// is readable, its mailbox gets something or `deadline` comes. The task is given back
    /// when it cannot park: its socket cannot be watched, or its mailbox has something
    /// already.
    pub(crate) fn park(
        self: &Arc<Self>,
        task: Box<SessionTask>,
        deadline: Option<Instant>,
    ) -> Result<(), Box<SessionTask>> {
        let mut slots = lock(&self.slots);
        let token = slots
            .free
            .pop()
            .unwrap_or_else(|| Token::try_from(slots.parked.len()).unwrap_or(Token::MAX));
        if token == Token::MAX {
            return Err(task);
        }
        let fd = task.parked_fd();
        if let Some(fd) = fd {
            if let Err(error) = self.watch(fd, token) {
                tracing::debug!(%error, "cannot park a socket");
                slots.free.push(token);
                return Err(task);
            }
        }
        // Under the lot's lock: the lot cannot resume the session before its mailbox
        // knows where it is.
        if !task.mailbox.park(self, token) {
            if let Some(fd) = fd {
                self.unwatch(fd);
            }
            slots.free.push(token);
            return Err(task);
        }
        let index = token as usize;
        if index == slots.parked.len() {
            slots.parked.push(None);
        }
        let mut task = task;
        task.park_at = deadline;
        slots.parked[index] = Some(task);
        slots.count += 1;
        let earlier = deadline.filter(|d| slots.earliest.map_or(true, |e| *d < e));
        if earlier.is_some() {
            slots.earliest = earlier;
        }
        drop(slots);
        if earlier.is_some() {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// A parked session's mailbox got something: the lot's task resumes it.
    pub(crate) fn wake(&self, token: Token) {
        lock(&self.woken).push(token);
        self.notify.notify_one();
    }

    /// How many sessions are parked.
    pub(crate) fn parked(&self) -> usize {
        lock(&self.slots).count
    }

    /// Takes the session parked at `token` out of the lot (none when it was resumed
    /// already), its socket no longer watched.
    fn take(&self, token: Token) -> Option<Box<SessionTask>> {
        let mut slots = lock(&self.slots);
        let task = slots.parked.get_mut(token as usize)?.take()?;
        slots.free.push(token);
        slots.count -= 1;
        drop(slots);
        if let Some(fd) = task.parked_fd() {
            self.unwatch(fd);
        }
        Some(task)
    }

    /// The sessions whose deadline has come by `now`; the earliest deadline left is
    /// recomputed on the way.
    fn due(&self, now: Instant, due: &mut Vec<Token>) {
        let mut slots = lock(&self.slots);
        let mut earliest = None::<Instant>;
        for (index, parked) in slots.parked.iter().enumerate() {
            let Some(deadline) = parked.as_ref().and_then(|task| task.park_at) else {
                continue;
            };
            if deadline <= now {
                due.push(index as Token);
            } else if earliest.map_or(true, |e| deadline < e) {
                earliest = Some(deadline);
            }
        }
        slots.earliest = earliest;
    }

    fn earliest(&self) -> Option<Instant> {
        lock(&self.slots).earliest
    }

    #[cfg(unix)]
    fn watch(&self, fd: Fd, token: Token) -> std::io::Result<()> {
        self.registry.register(
            &mut mio::unix::SourceFd(&fd),
            mio::Token(token as usize),
            mio::Interest::READABLE,
        )
    }

    #[cfg(unix)]
    fn unwatch(&self, fd: Fd) {
        let _ = self.registry.deregister(&mut mio::unix::SourceFd(&fd));
    }

    #[cfg(not(unix))]
    fn watch(&self, fd: Fd, _: Token) -> std::io::Result<()> {
        match fd {}
    }

    #[cfg(not(unix))]
    fn unwatch(&self, fd: Fd) {
        match fd {}
    }

    /// Drops everything parked (the lot's task is going away with its runtime).
    fn clear(&self) {
        let mut slots = lock(&self.slots);
        slots.free.clear();
        slots.count = 0;
        slots.earliest = None;
        let parked = std::mem::take(&mut slots.parked);
        drop(slots);
        drop(parked);
    }
}

/// The parked sessions go when the lot's task does (its runtime is shutting down): their
/// sockets close, and what they hold of the broker is released.
struct ClearOnDrop(Arc<Lot>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// The lot's task: waits for parked sockets, woken mailboxes and deadlines, and gives each
/// session that has something to do a task again.
#[cfg(unix)]
async fn run(lot: Arc<Lot>, mut ready: tokio::io::unix::AsyncFd<mio::Poll>) {
    let _clear = ClearOnDrop(lot.clone());
    let mut events = mio::Events::with_capacity(1024);
    let mut due = Vec::new();
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut last_scan = Instant::now();
    loop {
        let earliest = lot.earliest();
        if let Some(at) = earliest {
            let at = at.max(last_scan + SCAN_GAP);
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
        }
        tokio::select! {
            readable = ready.readable_mut() => {
                let Ok(mut guard) = readable else {
                    tracing::error!("the parking lot's readiness set failed");
                    return;
                };
                let polled = guard.try_io(|poll| {
                    poll.get_mut().poll(&mut events, Some(Duration::ZERO))?;
                    match events.is_empty() {
                        true => Err(std::io::ErrorKind::WouldBlock.into()),
                        false => Ok(()),
                    }
                });
                if let Ok(Ok(())) = polled {
                    due.extend(events.iter().map(|e| e.token().0 as Token));
                }
            }
            () = lot.notify.notified() => {}
            () = &mut timer, if earliest.is_some() => {
                last_scan = Instant::now();
                lot.due(last_scan, &mut due);
            }
        }
        due.append(&mut *lock(&lot.woken));
        for token in due.drain(..) {
            if let Some(task) = lot.take(token) {
                tokio::spawn(task.resume());
            }
        }
    }
}

impl SessionTask {
    /// Whether the session parks now. It may once it has nothing to do
    /// ([`SessionTask::parkable`]); it does at once when nothing happened since it last
    /// looked (a client that said nothing after its CONNACK, or after being resumed and
    /// served), else it looks again after [`PARK_AFTER`].
    pub(crate) fn wants_to_park(&mut self) -> bool {
        if !self.parkable() {
            return false;
        }
        match self.park_at {
            Some(_) => false,
            None if !self.active => true,
            None => {
                self.park_at = Some(Instant::now() + PARK_AFTER);
                self.active = false;
                false
            }
        }
    }

    /// Nothing to do but wait: nothing held back for a full mailbox, no re-authentication
    /// step due, nothing read and not decoded, nothing to write, and the connection (if
    /// any) a TCP socket that is not closing.
    fn parkable(&self) -> bool {
        if !self.waiting.is_empty() || self.congested || self.reauth_due() {
            return false;
        }
        self.link.as_ref().map_or(true, |link| {
            link.end.is_none()
                && link.out.is_empty()
                && link.read.is_empty()
                && matches!(link.stream, Stream::Tcp(_))
        })
    }

    /// Parks the session until its socket is readable, its mailbox gets something or
    /// `deadline` comes; given back when it cannot park (it is then served on).
    pub(crate) fn park(mut self: Box<Self>, deadline: Option<Instant>) -> Result<(), Box<Self>> {
        // Only a session holding a TCP socket opens the lot: tokio made that socket, so the
        // runtime has the I/O driver the lot needs. A session without a connection parks
        // only in a lot already open (an embedder's runtime serving in-process streams
        // alone may have no I/O driver at all).
        let tcp = self
            .link
            .as_ref()
            .is_some_and(|link| matches!(link.stream, Stream::Tcp(_)));
        let lot = match tcp {
            true => self.router.lot(),
            false => self.router.open_lot(),
        };
        let Some(lot) = lot.cloned() else {
            return Err(self);
        };
        if !self.park_link() {
            return Err(self);
        }
        // A parked session keeps no empty container's allocation.
        self.session.release_idle_memory();
        lot.park(self, deadline).map_err(|mut back| {
            back.unpark_link();
            back
        })
    }

    /// The parked socket, for the lot's readiness set.
    fn parked_fd(&self) -> Option<Fd> {
        match &self.link.as_ref()?.stream {
            #[cfg(unix)]
            Stream::Parked(socket) => Some(std::os::fd::AsRawFd::as_raw_fd(socket)),
            _ => None,
        }
    }

    /// Takes the TCP socket out of tokio's reactor; false when the session has a
    /// connection that cannot park (then lost, if taking it out failed).
    fn park_link(&mut self) -> bool {
        let Some(link) = self.link.as_mut() else {
            return true;
        };
        if !link.read.is_empty() || !link.out.is_empty() {
            return false;
        }
        let (tcp, end) = match self.link.take() {
            Some(Link {
                stream: Stream::Tcp(tcp),
                end,
                ..
            }) => (tcp, end),
            other => {
                self.link = other;
                return false;
            }
        };
        match tcp.into_std() {
            Ok(socket) => {
                // Nothing is kept in them; a parked client keeps no buffer's capacity.
                self.link = Some(Link {
                    stream: Stream::Parked(socket),
                    read: Default::default(),
                    out: Default::default(),
                    end,
                });
                true
            }
            Err(error) => {
                tracing::debug!(client = %self.client_id, %error, "connection lost while parking");
                self.lose_parked_link();
                false
            }
        }
    }

    /// Puts a parked socket back into tokio's reactor (the connection is lost if that
    /// fails).
    pub(crate) fn unpark_link(&mut self) {
        let Some(Link {
            stream,
            read,
            out,
            end,
        }) = self.link.take()
        else {
            return;
        };
        let stream = match stream {
            Stream::Parked(socket) => match tokio::net::TcpStream::from_std(socket) {
                Ok(tcp) => Stream::Tcp(tcp),
                Err(error) => {
                    tracing::debug!(client = %self.client_id, %error, "connection lost while resuming");
                    self.lose_parked_link();
                    return;
                }
            },
            other => other,
        };
        self.link = Some(Link {
            stream,
            read,
            out,
            end,
        });
    }

    /// The connection was lost on its way into or out of the lot (its socket is closed
    /// already): the session goes on without it, as after any lost connection.
    fn lose_parked_link(&mut self) {
        self.router.link_down();
        self.connection_lost();
    }
}
