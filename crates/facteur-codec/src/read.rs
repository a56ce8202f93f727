//! A cursor over one packet's bytes that turns every short read into a located error.

use crate::varint::{read_varint, VarIntRead};
use crate::{DecodeError, DecodeErrorKind};

/// Reads fields from a packet body. Offsets in errors count from the packet's first byte.
///
/// Public only so that the sealed [`Item`](crate::Item) trait can name it; it cannot be
/// constructed or used outside this crate.
#[derive(Debug, Clone)]
#[allow(unreachable_pub)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` within the packet.
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// The packet offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.offset())
    }

    pub(crate) fn error_at(&self, kind: DecodeErrorKind, offset: usize) -> DecodeError {
        DecodeError::new(kind, offset)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    #[inline]
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let out = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or_else(|| self.error(DecodeErrorKind::Truncated))?;
        self.pos += n;
        Ok(out)
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A non-zero packet identifier.
    #[inline]
    pub(crate) fn packet_id(&mut self) -> Result<u16, DecodeError> {
        let at = self.offset();
        match self.u16()? {
            0 => Err(self.error_at(DecodeErrorKind::ZeroPacketIdentifier, at)),
            id => Ok(id),
        }
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match read_varint(&self.buf[self.pos..]) {
            Ok(VarIntRead::Value(value, used)) => {
                self.pos += used;
                Ok(value)
            }
            Ok(VarIntRead::Incomplete) => Err(self.error(DecodeErrorKind::Truncated)),
            Err(kind) => Err(self.error(kind)),
        }
    }

    /// Binary data: a two-byte length and that many bytes.
    #[inline]
    pub(crate) fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()?;
        self.bytes(usize::from(len))
    }

    /// A UTF-8 encoded string: valid UTF-8 (so no surrogates) and no U+0000.
    #[inline]
    pub(crate) fn utf8(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.offset() + 2;
        let raw = self.binary()?;
        check_utf8(raw).map_err(|(kind, i)| self.error_at(kind, at + i))
    }

    /// A string that is valid UTF-8, leaving the U+0000 check to the caller: topic validation
    /// looks for U+0000 and wildcards in one pass.
    #[inline]
    pub(crate) fn utf8_without_nul_check(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.offset() + 2;
        let raw = self.binary()?;
        core::str::from_utf8(raw)
            .map_err(|e| self.error_at(DecodeErrorKind::InvalidUtf8, at + e.valid_up_to()))
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Splits off the next `n` bytes as a reader of their own.
    pub(crate) fn sub(&mut self, n: usize) -> Result<Reader<'a>, DecodeError> {
        let base = self.offset();
        let buf = self.bytes(n)?;
        Ok(Reader::new(buf, base))
    }

    /// Fails with [`DecodeErrorKind::TrailingBytes`] unless everything was read.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(self.error(DecodeErrorKind::TrailingBytes(extra))),
        }
    }
}

/// Validates an MQTT UTF-8 string, returning the error and its index within `raw`.
#[inline]
pub(crate) fn check_utf8(raw: &[u8]) -> Result<&str, (DecodeErrorKind, usize)> {
    match core::str::from_utf8(raw) {
        Ok(s) => match facteur_topic::find_any_of3(raw, 0, 0, 0) {
            Some(i) => Err((DecodeErrorKind::NullCharacter, i)),
            None => Ok(s),
        },
        Err(e) => Err((DecodeErrorKind::InvalidUtf8, e.valid_up_to())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_reject_surrogates_and_nul_with_offsets() {
        // U+D800 encoded as UTF-8 bytes (ED A0 80) is not valid UTF-8.
        let mut r = Reader::new(&[0, 3, 0xED, 0xA0, 0x80], 10);
        assert_eq!(
            r.utf8(),
            Err(DecodeError::new(DecodeErrorKind::InvalidUtf8, 12))
        );
        let mut r = Reader::new(&[0, 3, b'a', 0, b'b'], 0);
        assert_eq!(
            r.utf8(),
            Err(DecodeError::new(DecodeErrorKind::NullCharacter, 3))
        );
        let mut r = Reader::new(&[0, 4, b'a'], 0);
        assert_eq!(
            r.utf8(),
            Err(DecodeError::new(DecodeErrorKind::Truncated, 2))
        );
    }

    #[test]
    fn zero_packet_identifier_is_refused() {
        let mut r = Reader::new(&[0, 0], 2);
        assert_eq!(
            r.packet_id(),
            Err(DecodeError::new(DecodeErrorKind::ZeroPacketIdentifier, 2))
        );
    }
}
