//! The README's codec example, compiled and run so it stays true.

use facteur_codec::{decode, Encode, Packet, ProtocolVersion, PubResponse, Status};

/// Handles the first packet in `input`; returns (bytes consumed, bytes of reply in `out`).
fn on_bytes(input: &[u8], out: &mut [u8]) -> Result<(usize, usize), Box<dyn std::error::Error>> {
    // The connection's version came from its CONNECT; 64 KiB is our size limit.
    match decode(input, ProtocolVersion::V5, 65_536)? {
        Status::Incomplete(_needed) => Ok((0, 0)), // read more first
        Status::Complete(decoded) => {
            let mut reply = 0;
            if let Packet::Publish(publish) = decoded.packet {
                // `publish.topic` and `publish.payload` borrow `input`: nothing was copied.
                println!("{} -> {} bytes", publish.topic, publish.payload.len());
                if let Some(id) = publish.packet_id {
                    reply =
                        Packet::PubAck(PubResponse::new(id)).encode(ProtocolVersion::V5, out)?;
                }
            }
            Ok((decoded.len, reply))
        }
    }
}

#[test]
fn readme_example_acknowledges_a_qos1_publish() {
    let input = [0x32, 0x07, 0x00, 0x01, b't', 0x00, 0x05, 0x00, b'x'];
    let mut out = [0u8; 8];
    assert_eq!(on_bytes(&input, &mut out).unwrap(), (9, 4));
    assert_eq!(&out[..4], &[0x40, 0x02, 0x00, 0x05]);
    assert_eq!(on_bytes(&input[..3], &mut out).unwrap(), (0, 0));
}
