//! The network side of a connected session: the stream, what was read and not yet
//! decoded, what is waiting to be written, and the lingering close.

use crate::buffers::{ReadBuf, Unsent};
use crate::message::Delivery;
use crate::transport::Stream;
use facteur_codec::{Encode, Packet, ProtocolVersion};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a network connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The client sent DISCONNECT.
    Disconnected,
    /// Anything else: closed socket, error, keep alive, takeover, shutdown.
    Lost,
}

/// The network side of a session while a client is connected.
pub(crate) struct Link {
    pub(crate) stream: Stream,
    pub(crate) read: ReadBuf,
    pub(crate) out: Unsent,
    pub(crate) end: Option<End>,
}

impl Link {
    /// Writes the bytes waiting in `out`, then releases the buffer.
    pub(crate) async fn write_out(&mut self, stats: &crate::Stats) -> std::io::Result<()> {
        self.stream.write_all(&self.out).await?;
        // TLS and WebSocket streams send what they buffered (a no-op for TCP).
        self.stream.flush().await?;
        stats
            .bytes_sent
            .fetch_add(self.out.len() as u64, Ordering::Relaxed);
        // An idle connection keeps no buffer.
        self.out.release();
        Ok(())
    }
}

/// Room made in a connection's read buffer before each read.
pub(crate) const READ_CHUNK: usize = 8192;

thread_local! {
    /// Deliveries taken from a mailbox in one go (per thread, reused).
    pub(crate) static BATCH: std::cell::Cell<Vec<Delivery>> = const { std::cell::Cell::new(Vec::new()) };
    /// The buffer sessions encode into before one write (per thread, reused).
    pub(crate) static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
}

pub(crate) fn encode_into(out: &mut Vec<u8>, version: ProtocolVersion, packet: &Packet<'_>) {
    match packet.encoded_len(version) {
        Ok(len) => {
            let at = out.len();
            out.resize(at + len, 0);
            if packet.encode(version, &mut out[at..]).is_err() {
                out.truncate(at);
            }
        }
        Err(error) => tracing::warn!(%error, "cannot encode"),
    }
}

/// Reads from the connected client once its socket is readable, taking a read buffer only
/// then (an idle client holds none). A read that does not fill the buffer tells tokio the
/// socket is drained, so the next wait needs no read that would block.
pub(crate) fn poll_read_link(
    link: &mut Option<Link>,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    let Some(link) = link.as_mut().filter(|l| l.end.is_none()) else {
        return Poll::Pending;
    };
    let ready = link.stream.poll_read_ready(cx);
    if ready.is_ready() {
        let buffer = link.read.make_room(READ_CHUNK);
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut link.stream), cx, buffer);
        if read.is_ready() {
            return read;
        }
    }
    if link.read.is_empty() {
        // Nothing to read now: an idle client keeps no buffer.
        link.read.give_back();
    }
    match ready {
        Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        _ => Poll::Pending,
    }
}

/// Most bytes [`read_now`] takes in one go: a window of acknowledgements (4 bytes each).
const READ_NOW_CHUNK: usize = 1024;

/// Reads what the client has sent without waiting for tokio's reactor to report it (a TCP
/// socket only; `None` when nothing is there or the stream is not TCP).
///
/// For a session whose mailbox holds messages it cannot take until its client acknowledges
/// earlier ones: woken by its mailbox (a message arriving, or a publisher finding it full
/// and starting to wait), it looks for those acknowledgements at once rather
/// than after the reactor's next turn, which on a busy broker comes after many publishers'
/// tasks (a subscriber's window then stays closed for as long). What it reads is handled as
/// any read; tokio's own readiness is left as it is (a later read that finds nothing clears
/// it).
pub(crate) fn read_now(link: &mut Option<Link>) -> Option<std::io::Result<usize>> {
    use std::io::Read;
    let link = link.as_mut().filter(|l| l.end.is_none())?;
    let Stream::Tcp(tcp) = &link.stream else {
        return None;
    };
    let mut chunk = [0u8; READ_NOW_CHUNK];
    match (&*socket2::SockRef::from(tcp)).read(&mut chunk) {
        Ok(n) => {
            link.read.make_room(n).extend_from_slice(&chunk[..n]);
            Some(Ok(n))
        }
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ) =>
        {
            None
        }
        Err(error) => Some(Err(error)),
    }
}

/// When a session looks for its client's acknowledgements with [`read_now`]: at every
/// chance while they are finding something, and after looks that found nothing, less often
/// (every 2nd, 4th, ... up to every 32nd chance), so that a session whose client answers
/// slowly does not spend a system call on every wake-up for nothing.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReadAhead {
    /// Chances to let go by before the next look.
    skip: u8,
    /// `skip` after the next look that finds nothing.
    backoff: u8,
}

impl ReadAhead {
    /// A chance to look: whether to take it.
    pub(crate) fn look(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    /// What the look found.
    pub(crate) fn found(&mut self, something: bool) {
        if something {
            self.backoff = 0;
        } else {
            self.skip = self.backoff;
            self.backoff = (self.backoff * 2 + 1).min(31);
        }
    }
}

/// How long a closed connection is still read (and what it sends discarded) after the
/// broker's last bytes, and how much of it at most.
pub(crate) const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) const LINGER_BYTES: usize = 64 * 1024;

/// Closes a connection gracefully: the write side is shut down (the client reads what was
/// sent, a DISCONNECT with its reason code included, then the end), and what the client
/// still sends meanwhile is read and discarded for a bounded time and size, so that closing
/// does not turn into a reset that destroys the unread DISCONNECT (a lingering close, as
/// HTTP servers do).
pub(crate) async fn linger(mut stream: Stream) {
    let _ = tokio::time::timeout(LINGER_TIME, stream.shutdown()).await;
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut discarded = 0;
    let mut sink = [0u8; 1024];
    while discarded < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReadAhead;

    #[test]
    fn read_ahead_looks_at_every_chance_while_it_finds_and_backs_off_after_misses() {
        let mut ahead = ReadAhead::default();
        for _ in 0..3 {
            assert!(ahead.look());
            ahead.found(true);
        }
        // Misses: the chances let go by before a look grow 0, 1, 3, 7, 15, 31, 31.
        let gap = |ahead: &mut ReadAhead| (0..).take_while(|_| !ahead.look()).count();
        let mut gaps = Vec::new();
        for _ in 0..7 {
            gaps.push(gap(&mut ahead));
            ahead.found(false);
        }
        assert_eq!(gaps, [0, 0, 1, 3, 7, 15, 31]);
        // A hit: at every chance again once the skip set by the last miss runs out.
        assert_eq!(gap(&mut ahead), 31);
        ahead.found(true);
        assert!(ahead.look());
        ahead.found(true);
        assert!(ahead.look());
    }
}
