//! Real traffic: every packet mosquitto_pub, mosquitto_sub, paho-mqtt and the mosquitto broker
//! exchanged in the captures under `tests/vectors/` (see its README for how they were made)
//! must decode, whole, and encode back to the very same bytes.

use facteur_codec::{decode, Encode, Packet, PacketType, ProtocolVersion, Status};
use std::collections::BTreeMap;
use std::path::Path;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn version(s: &str) -> ProtocolVersion {
    match s {
        "3.1" => ProtocolVersion::V3_1,
        "3.1.1" => ProtocolVersion::V3_1_1,
        "5.0" => ProtocolVersion::V5,
        other => panic!("unknown version {other}"),
    }
}

#[test]
fn captured_traffic_decodes_and_reencodes_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut seen: BTreeMap<(String, u8), usize> = BTreeMap::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/vectors exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("txt") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for (line_no, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (_direction, v, bytes) = (
                fields.next().unwrap(),
                version(fields.next().unwrap()),
                hex(fields.next().unwrap()),
            );
            let at = format!("{name}:{}", line_no + 1);
            let decoded = match decode(&bytes, v, facteur_codec::PROTOCOL_MAX_PACKET_SIZE) {
                Ok(Status::Complete(d)) => d,
                other => panic!("{at}: {other:?}"),
            };
            assert_eq!(decoded.len, bytes.len(), "{at}: one whole packet");
            let mut out = vec![0u8; bytes.len()];
            assert_eq!(decoded.packet.encoded_len(v), Ok(bytes.len()), "{at}");
            decoded.packet.encode(v, &mut out).unwrap();
            assert_eq!(out, bytes, "{at}: re-encoded bytes differ");
            if let Packet::Publish(p) = decoded.packet {
                assert!(!p.topic.is_empty() || p.properties.topic_alias().is_some());
            }
            *seen
                .entry((v.to_string(), decoded.packet.packet_type() as u8))
                .or_default() += 1;
        }
    }
    assert!(
        files >= 20,
        "expected the captured vector files, found {files}"
    );
    // Every packet type a 3.1.1 and a 5.0 session exchanges without AUTH shows up.
    for v in ["3.1", "3.1.1", "5.0"] {
        for kind in [
            PacketType::Connect,
            PacketType::ConnAck,
            PacketType::Publish,
            PacketType::PubAck,
            PacketType::PubRec,
            PacketType::PubRel,
            PacketType::PubComp,
            PacketType::Subscribe,
            PacketType::SubAck,
            PacketType::Disconnect,
        ] {
            assert!(
                seen.contains_key(&(v.to_string(), kind as u8)),
                "no {kind:?} captured for {v}"
            );
        }
    }
}
