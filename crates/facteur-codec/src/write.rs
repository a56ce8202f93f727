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
        if end <= self.buf.len() {
            self.buf[self.pos..end].copy_from_slice(bytes);
            self.pos = end;
        }
    }

    fn room(&self) -> usize {
        self.buf.len() - self.pos
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
    #[inline]
    fn put_binary(&mut self, bytes: &[u8]) {
        self.put_u16(bytes.len() as u16);
        self.put_slice(bytes);
    }

    #[inline]
    fn put_str(&mut self, s: &str) {
        self.put_binary(s.as_bytes());
    }
}

impl<S: Sink + ?Sized> SinkExt for S {}
