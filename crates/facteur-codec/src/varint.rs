//! Variable byte integers (MQTT 5.0 §1.5.5): 1 to 4 bytes, 7 bits each, shortest form only.

use crate::DecodeErrorKind;

/// The largest value a variable byte integer can hold (268,435,455).
pub const VARINT_MAX: u32 = 268_435_455;

/// The outcome of reading a variable byte integer from a possibly short buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarIntRead {
    /// The value and how many bytes it took.
    Value(u32, usize),
    /// The buffer ends before the last byte of the integer.
    Incomplete,
}

/// Reads a variable byte integer at the start of `buf`, rejecting overlong and non-minimal forms.
#[inline]
pub(crate) fn read_varint(buf: &[u8]) -> Result<VarIntRead, DecodeErrorKind> {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().enumerate() {
        if i == 4 {
            return Err(DecodeErrorKind::VarIntTooLong);
        }
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // A last byte of 0 after a continuation byte means a shorter form existed.
            if i > 0 && byte == 0 {
                return Err(DecodeErrorKind::VarIntNotMinimal);
            }
            return Ok(VarIntRead::Value(value, i + 1));
        }
    }
    if buf.len() >= 4 {
        return Err(DecodeErrorKind::VarIntTooLong);
    }
    Ok(VarIntRead::Incomplete)
}

/// How many bytes `value` takes as a variable byte integer (values above [`VARINT_MAX`]
/// are the caller's error to prevent).
#[inline]
pub(crate) const fn varint_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_boundaries() {
        let cases: [(u32, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (VARINT_MAX, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for (value, bytes) in cases {
            let mut out = [0; 4];
            let mut w = crate::SliceWriter::new(&mut out);
            crate::write::SinkExt::put_varint(&mut w, value);
            let n = w.written();
            assert_eq!(&out[..n], bytes);
            assert_eq!(varint_len(value), n);
            assert_eq!(read_varint(bytes), Ok(VarIntRead::Value(value, n)));
        }
    }

    #[test]
    fn rejects_five_bytes_and_non_minimal_forms() {
        assert_eq!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            Err(DecodeErrorKind::VarIntTooLong)
        );
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80]),
            Err(DecodeErrorKind::VarIntTooLong)
        );
        assert_eq!(
            read_varint(&[0x80, 0x00]),
            Err(DecodeErrorKind::VarIntNotMinimal)
        );
        assert_eq!(
            read_varint(&[0x81, 0x80, 0x00]),
            Err(DecodeErrorKind::VarIntNotMinimal)
        );
    }

    #[test]
    fn short_input_is_incomplete() {
        assert_eq!(read_varint(&[]), Ok(VarIntRead::Incomplete));
        assert_eq!(read_varint(&[0x80]), Ok(VarIntRead::Incomplete));
        assert_eq!(read_varint(&[0x80, 0x80, 0x80]), Ok(VarIntRead::Incomplete));
    }
}
