//! PUBLISH packets encoded once for many sessions ([`Frame`] needs the feature `alloc`): a server fanning one
//! message out to many subscribers checks and encodes it once per distinct header instead
//! of once per subscriber; each session copies the shared bytes and patches in its own
//! packet identifier (and DUP on a resend).

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "alloc")]
use alloc::vec;
#[cfg(feature = "alloc")]
use bytes::Bytes;
#[cfg(feature = "alloc")]
use facteur_codec::QoS;
use facteur_codec::{
    decode, DecodeErrorKind, Encode, EncodeError, Packet, ProtocolVersion, Publish, Status,
};

/// A PUBLISH encoded once, to hand to many sessions with
/// [`Session::publish_frame`](crate::Session::publish_frame). Only a message without
/// properties can be one (properties such as the Message Expiry Interval change with each
/// session and each send); its packet identifier is a placeholder each session replaces.
///
/// ```
/// use facteur_codec::{ProtocolVersion, Publish, QoS};
/// use facteur_session::{AllocStore, Config, Connection, Frame, Instant, Role, Session};
/// let message = Publish { qos: QoS::AtLeastOnce, ..Publish::new("maison/salon", b"21.5") };
/// let frame = Frame::new(&message, ProtocolVersion::V3_1_1).expect("no properties");
/// let now = Instant::from_millis(0);
/// let mut out = [0u8; 32];
/// // One encoding, any number of sessions: each sends it with its own packet identifier.
/// for _ in 0..3 {
///     let mut session = Session::<AllocStore>::new(Config::new(Role::Server));
///     session.on_connect(now, Connection::new(ProtocolVersion::V3_1_1, 0));
///     session.publish_frame(&frame, now)?;
///     let n = session.poll_transmit(now, &mut out)?.unwrap();
///     assert_eq!(&out[..n], b"\x32\x14\x00\x0cmaison/salon\x00\x0121.5");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub(crate) bytes: Bytes,
    pub(crate) meta: FrameMeta,
}

/// What a session needs to know of a frame besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameMeta {
    /// The version it was encoded for.
    pub(crate) version: ProtocolVersion,
    /// Where the packet identifier is (QoS 1/2).
    pub(crate) id_at: u32,
}

#[cfg(feature = "alloc")]
impl Frame {
    /// Checks and encodes `publish` for `version`; `None` when it has properties (publish
    /// it with [`Session::publish_shared`](crate::Session::publish_shared) then) or cannot
    /// be encoded. DUP and the packet identifier given are ignored.
    pub fn new(publish: &Publish<'_>, version: ProtocolVersion) -> Option<Self> {
        if !publish.properties.is_empty() {
            return None;
        }
        let publish = Publish {
            dup: false,
            packet_id: (publish.qos != QoS::AtMostOnce).then_some(1),
            ..*publish
        };
        let len = publish.encoded_len(version).ok()?;
        let mut bytes = vec![0u8; len];
        publish.encode(version, &mut bytes).ok()?;
        // The packet identifier sits before the (5.0: empty) properties and the payload.
        let props = usize::from(version.is_v5());
        let id_at = u32::try_from(len - publish.payload.len() - props - 2).ok()?;
        Some(Self {
            bytes: Bytes::from(bytes),
            meta: FrameMeta { version, id_at },
        })
    }

    /// The encoded packet (with the placeholder packet identifier).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Its QoS.
    pub fn qos(&self) -> QoS {
        match (self.bytes[0] >> 1) & 0x03 {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        }
    }

    /// Its retain flag.
    pub fn retain(&self) -> bool {
        self.bytes[0] & 0x01 != 0
    }
}

impl FrameMeta {
    /// Writes `frame` into `buf` for a connection in `version`, with `packet_id` and `dup`:
    /// a copy with the identifier patched in, or (another version) decoded and encoded
    /// again.
    pub(crate) fn write(
        &self,
        frame: &[u8],
        version: ProtocolVersion,
        packet_id: Option<u16>,
        dup: bool,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        if version != self.version {
            // A session resumed in another version: the frame is read back (it was
            // encoded by `Frame::new`, so it decodes) and written for this one.
            let publish = self.decode(frame)?;
            return Publish {
                dup,
                packet_id,
                ..publish
            }
            .encode(version, buf);
        }
        let available = buf.len();
        let out = buf
            .get_mut(..frame.len())
            .ok_or(EncodeError::BufferTooSmall {
                required: frame.len(),
                available,
            })?;
        out.copy_from_slice(frame);
        if let Some(id) = packet_id {
            let at = self.id_at as usize;
            out[at..at + 2].copy_from_slice(&id.to_be_bytes());
        }
        if dup {
            out[0] |= 0x08;
        }
        Ok(frame.len())
    }

    /// The packet's length for a connection in `version`.
    pub(crate) fn len_for(&self, frame: &[u8], version: ProtocolVersion) -> Option<usize> {
        if version == self.version {
            return Some(frame.len());
        }
        Packet::Publish(self.decode(frame).ok()?)
            .encoded_len(version)
            .ok()
    }

    fn decode<'f>(&self, frame: &'f [u8]) -> Result<Publish<'f>, EncodeError> {
        match decode(frame, self.version, u32::MAX) {
            Ok(Status::Complete(decoded)) => match decoded.packet {
                Packet::Publish(publish) => Ok(publish),
                _ => Err(EncodeError::Invalid(DecodeErrorKind::InvalidPacketType(0))),
            },
            _ => Err(EncodeError::Invalid(DecodeErrorKind::Truncated)),
        }
    }
}
