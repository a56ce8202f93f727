//! `bytes` integration: whole frames out of a `BytesMut`, payloads as shared `Bytes`.

use crate::{frame, DecodeError, Status};
use bytes::{Bytes, BytesMut};

/// Splits the first whole packet off the front of `buf` as a frozen [`Bytes`], or returns
/// `Ok(None)` if `buf` does not hold one yet (read more and call again).
///
/// Only the fixed header is checked here (type, flags, size against `max_packet_size`); decode
/// the frame with [`decode`](crate::decode) and keep topic or payload beyond it with
/// [`shared_slice`], which shares the frame's memory instead of copying.
///
/// ```
/// use bytes::BytesMut;
/// use facteur_codec::{decode, shared_slice, split_frame, Packet, ProtocolVersion, Status};
/// // A 5.0 PUBLISH (topic "t", no properties, payload "hi"), then a PINGREQ's first byte.
/// let mut buf = BytesMut::from(&[0x30, 0x06, 0x00, 0x01, b't', 0x00, b'h', b'i', 0xC0][..]);
/// let frame = split_frame(&mut buf, 1024)?.unwrap();
/// assert_eq!(&buf[..], &[0xC0]); // the next packet stays in the buffer
/// let Status::Complete(d) = decode(&frame, ProtocolVersion::V5, 1024)? else { unreachable!() };
/// let Packet::Publish(p) = d.packet else { unreachable!() };
/// let payload = shared_slice(&frame, p.payload); // no copy
/// assert_eq!(&payload[..], b"hi");
/// # Ok::<(), facteur_codec::DecodeError>(())
/// ```
pub fn split_frame(buf: &mut BytesMut, max_packet_size: u32) -> Result<Option<Bytes>, DecodeError> {
    match frame(buf, max_packet_size)? {
        Status::Complete(header) => Ok(Some(buf.split_to(header.packet_len()).freeze())),
        Status::Incomplete(_) => Ok(None),
    }
}

/// The part of `frame` that `part` borrows (a topic or payload of a packet decoded from it), as
/// a `Bytes` sharing the frame's memory. `part` must point into `frame`.
pub fn shared_slice(frame: &Bytes, part: &[u8]) -> Bytes {
    if part.is_empty() {
        return Bytes::new();
    }
    frame.slice_ref(part)
}
