//! A connection's two buffers, what was read and not yet decoded and what the socket did not
//! take yet: each one pointer wide while it holds nothing, since an idle client (most of a
//! broker's clients, most of the time) holds neither.

use bytes::{Buf, BytesMut};

thread_local! {
    /// A read buffer no connection holds (per thread): a connection about to read takes it
    /// rather than allocating one, and gives its own back here once it has read all. A busy
    /// client's buffer then costs no allocation per read, and an idle client holds none.
    static SPARE_READ: std::cell::Cell<Option<Box<BytesMut>>> = const { std::cell::Cell::new(None) };
}

/// The bytes read from a connection and not yet decoded.
///
/// One pointer while the connection holds no buffer. The buffer is taken from the thread's
/// spare when a read needs room ([`make_room`](Self::make_room)) and given back once all
/// was decoded ([`give_back`](Self::give_back)), so that moving it costs no copy and a busy
/// client no allocation per read.
#[derive(Debug, Default)]
pub(crate) struct ReadBuf(Option<Box<BytesMut>>);

impl ReadBuf {
    /// Keeps what a first read brought (the bytes after CONNECT); nothing when it is empty.
    pub(crate) fn from_bytes(bytes: BytesMut) -> Self {
        match bytes.is_empty() {
            true => Self(None),
            false => Self(Some(Box::new(bytes))),
        }
    }

    /// No byte waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().map_or(true, |bytes| bytes.is_empty())
    }

    /// Room for `room` more bytes, taking the thread's spare buffer if it holds none.
    pub(crate) fn make_room(&mut self, room: usize) -> &mut BytesMut {
        let bytes = self
            .0
            .get_or_insert_with(|| SPARE_READ.with(std::cell::Cell::take).unwrap_or_default());
        bytes.reserve(room);
        bytes
    }

    /// Drops the first `n` bytes (decoded).
    pub(crate) fn advance(&mut self, n: usize) {
        if let Some(bytes) = &mut self.0 {
            bytes.advance(n);
        }
    }

    /// Gives the buffer, all read, to the thread as its spare unless it has one already.
    pub(crate) fn give_back(&mut self) {
        let Some(buffer) = self.0.take() else {
            return;
        };
        debug_assert!(buffer.is_empty());
        SPARE_READ.with(|spare| {
            let held = spare.take();
            spare.set(held.or(Some(buffer)));
        });
    }

    /// The buffer's capacity (0 without one).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |bytes| bytes.capacity())
    }
}

impl std::ops::Deref for ReadBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_deref().map_or(&[], |bytes| bytes)
    }
}

/// What the socket did not take yet, written once it can.
///
/// One pointer while nothing waits; the bytes are freed once written (an idle connection
/// keeps no capacity).
#[derive(Debug, Default)]
// The box is the point: one pointer while unused, where the `Vec` takes three.
#[allow(clippy::box_collection)]
pub(crate) struct Unsent(Option<Box<Vec<u8>>>);

impl Unsent {
    /// Nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().map_or(true, |bytes| bytes.is_empty())
    }

    /// The buffer to add bytes to (allocated on first use).
    pub(crate) fn bytes_mut(&mut self) -> &mut Vec<u8> {
        self.0.get_or_insert_with(Box::default)
    }

    /// Adds bytes after those waiting.
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.bytes_mut().extend_from_slice(bytes);
    }

    /// Frees the buffer (what it held was written).
    pub(crate) fn release(&mut self) {
        self.0 = None;
    }
}

impl std::ops::Deref for Unsent {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_deref().map_or(&[], |bytes| bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::{ReadBuf, Unsent};
    use bytes::BytesMut;

    #[test]
    fn each_buffer_is_one_pointer_while_empty() {
        assert_eq!(std::mem::size_of::<ReadBuf>(), std::mem::size_of::<usize>());
        assert_eq!(std::mem::size_of::<Unsent>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn a_read_buffer_given_back_is_the_next_one_taken_and_an_idle_connection_holds_none() {
        const ROOM: usize = 8192;
        let mut first = ReadBuf::default();
        let buffer = first.make_room(ROOM).as_ptr();
        assert!(first.capacity() >= ROOM);
        first.give_back();
        assert_eq!(first.capacity(), 0, "the connection keeps no buffer");
        let mut second = ReadBuf::default();
        assert_eq!(
            second.make_room(16).as_ptr(),
            buffer,
            "the spare was taken, not a new one"
        );
        // With the spare taken, the next connection allocates its own; given back while
        // the thread holds a spare already, it is freed.
        let mut third = ReadBuf::default();
        assert_ne!(third.make_room(16).as_ptr(), buffer);
        second.give_back();
        third.give_back();
        let mut fourth = ReadBuf::default();
        assert_eq!(
            fourth.make_room(16).as_ptr(),
            buffer,
            "the first given back is the spare"
        );
    }

    #[test]
    fn read_bytes_are_decoded_from_the_front() {
        let mut read = ReadBuf::from_bytes(BytesMut::from(&b"abc"[..]));
        assert_eq!(&*read, b"abc");
        read.make_room(2).extend_from_slice(b"de");
        read.advance(2);
        assert_eq!(&*read, b"cde");
        read.advance(3);
        assert!(read.is_empty());
        assert!(ReadBuf::from_bytes(BytesMut::with_capacity(64)).capacity() == 0);
    }

    #[test]
    fn unsent_bytes_keep_their_order_and_are_freed_once_written() {
        let mut unsent = Unsent::default();
        assert!(unsent.is_empty());
        unsent.extend_from_slice(b"ab");
        unsent.bytes_mut().push(b'c');
        assert_eq!(&*unsent, b"abc");
        unsent.release();
        assert!(unsent.is_empty());
        assert_eq!(&*unsent, b"");
    }
}
