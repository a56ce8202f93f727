//! Where encoded bytes go: a caller's slice, or (feature `bytes`) any `BufMut`.

/// A destination for encoded bytes. Encoders check the room first, so writes cannot fail.
///
/// Implemented for [`SliceWriter`] and, with the `bytes` feature, for every `bytes::BufMut`.
pub trait Sink {
    /// Appends one byte.
    fn put_u8(&mut self, byte: u8);
    /// Appends a slice.
    fn put_slice(&mut self, bytes: &[u8]);
    /// How many more bytes fit.
    fn room(&self) -> usize;

    /// Appends an MQTT string or binary field: its length as two big-endian bytes, then the
    /// bytes (at most 65,535: the encoders check that before writing). The default writes
    /// the two parts with [`Sink::put_slice`]; [`SliceWriter`] writes them after one bounds
    /// check.
    #[inline]
    fn put_field(&mut self, bytes: &[u8]) {
        self.put_slice(&(bytes.len() as u16).to_be_bytes());
        self.put_slice(bytes);
    }
}

/// Writes into a caller's `&mut [u8]` from the front.
#[derive(Debug)]
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> SliceWriter<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.pos
    }
}

impl Sink for SliceWriter<'_> {
    #[inline]
    fn put_u8(&mut self, byte: u8) {
        if let Some(slot) = self.buf.get_mut(self.pos) {
            *slot = byte;
            self.pos += 1;
        }
    }

    #[inline]
    fn put_slice(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        if let Some(to) = self.buf.get_mut(self.pos..end) {
            copy(to, bytes);
            self.pos = end;
        }
    }

    fn room(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline(always)]
    fn put_field(&mut self, bytes: &[u8]) {
        let end = self.pos + 2 + bytes.len();
        if let Some(to) = self.buf.get_mut(self.pos..end) {
            let (len, to) = to.split_at_mut(2);
            len.copy_from_slice(&(bytes.len() as u16).to_be_bytes());
            copy(to, bytes);
            self.pos = end;
        }
    }
}

/// `to.copy_from_slice(from)` (same lengths), without a `memcpy` call for short slices
/// (strings and property values): two overlapping fixed-size copies cover 4 to 32 bytes.
#[inline(always)]
fn copy(to: &mut [u8], from: &[u8]) {
    let n = from.len();
    if n > 32 || n != to.len() {
        to.copy_from_slice(from);
    } else if n >= 16 {
        to[..16].copy_from_slice(&from[..16]);
        to[n - 16..].copy_from_slice(&from[n - 16..]);
    } else if n >= 8 {
        to[..8].copy_from_slice(&from[..8]);
        to[n - 8..].copy_from_slice(&from[n - 8..]);
    } else if n >= 4 {
        to[..4].copy_from_slice(&from[..4]);
        to[n - 4..].copy_from_slice(&from[n - 4..]);
    } else {
        for (t, f) in to.iter_mut().zip(from) {
            *t = *f;
        }
    }
}

#[cfg(feature = "bytes")]
impl<B: bytes::BufMut> Sink for B {
    #[inline]
    fn put_u8(&mut self, byte: u8) {
        bytes::BufMut::put_u8(self, byte);
    }

    #[inline]
    fn put_slice(&mut self, bytes: &[u8]) {
        bytes::BufMut::put_slice(self, bytes);
    }

    fn room(&self) -> usize {
        self.remaining_mut()
    }
}

/// Field writers shared by every packet's encoder.
pub(crate) trait SinkExt: Sink {
    #[inline]
    fn put_u16(&mut self, value: u16) {
        self.put_slice(&value.to_be_bytes());
    }

    #[inline]
    fn put_u32(&mut self, value: u32) {
        self.put_slice(&value.to_be_bytes());
    }

    #[inline]
    fn put_varint(&mut self, mut value: u32) {
        // Byte by byte: a copy of an unknown 1-to-4-byte length would be a `memcpy` call.
        loop {
            let byte = (value & 0x7F) as u8;
            value >>= 7;
            if value == 0 {
                self.put_u8(byte);
                return;
            }
            self.put_u8(byte | 0x80);
        }
    }

    /// A two-byte length then the bytes; lengths were checked by the caller's size pass.
    #[inline(always)]
    fn put_binary(&mut self, bytes: &[u8]) {
        self.put_field(bytes);
    }

    #[inline(always)]
    fn put_str(&mut self, s: &str) {
        self.put_binary(s.as_bytes());
    }
}

impl<S: Sink + ?Sized> SinkExt for S {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that only has the default `put_field`.
    struct Plain {
        buf: [u8; 310],
        len: usize,
    }

    impl Sink for Plain {
        fn put_u8(&mut self, byte: u8) {
            self.put_slice(&[byte]);
        }
        fn put_slice(&mut self, bytes: &[u8]) {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        fn room(&self) -> usize {
            self.buf.len() - self.len
        }
    }

    #[test]
    fn fields_are_a_big_endian_length_then_the_bytes() {
        let long = [0x5Au8; 300];
        for bytes in [&b""[..], b"a", b"maison/+/temperature", &long] {
            let n = bytes.len();
            let mut buf = [0xEEu8; 310];
            let mut w = SliceWriter::new(&mut buf);
            w.put_u8(0x11);
            w.put_field(bytes);
            assert_eq!(w.written(), 1 + 2 + n);
            assert_eq!(buf[..3], [0x11, (n >> 8) as u8, n as u8]);
            assert_eq!(&buf[3..3 + n], bytes);
            assert!(buf[3 + n..].iter().all(|&b| b == 0xEE));
            let mut plain = Plain {
                buf: [0; 310],
                len: 0,
            };
            plain.put_u8(0x11);
            plain.put_field(bytes);
            assert_eq!(plain.buf[..plain.len], buf[..3 + n]);
        }
    }

    #[test]
    fn short_and_long_slices_are_copied_exactly() {
        let from: [u8; 48] = core::array::from_fn(|i| i as u8 + 1);
        for n in 0..=from.len() {
            for at in 0..3 {
                let mut buf = [0u8; 64];
                let mut w = SliceWriter::new(&mut buf);
                for _ in 0..at {
                    w.put_u8(0xEE);
                }
                w.put_slice(&from[..n]);
                assert_eq!(w.written(), at + n);
                assert_eq!(&buf[at..at + n], &from[..n], "{n} bytes at {at}");
                assert!(
                    buf[at + n..].iter().all(|&b| b == 0),
                    "nothing past the end"
                );
            }
        }
        // No room: nothing written.
        let mut small = [0u8; 4];
        let mut w = SliceWriter::new(&mut small);
        w.put_field(b"abc");
        assert_eq!((w.written(), small), (0, [0; 4]));
        let mut small = [0u8; 4];
        let mut w = SliceWriter::new(&mut small);
        w.put_slice(&from[..5]);
        assert_eq!((w.written(), small), (0, [0; 4]));
    }
}
