//! Shared checks for the fuzz targets.
#![forbid(unsafe_code)]

use facteur_codec::{decode, Encode, Packet, ProtocolVersion, Status, PROTOCOL_MAX_PACKET_SIZE};

/// Decodes every packet in `data` as a stream, reading every lazily decoded part; panics only
/// on a bug (decode itself must never panic).
pub fn decode_stream(mut data: &[u8], version: ProtocolVersion) {
    while let Ok(Status::Complete(decoded)) = decode(data, version, PROTOCOL_MAX_PACKET_SIZE) {
        touch(&decoded.packet);
        data = &data[decoded.len..];
    }
}

/// Decode → encode → decode: whatever decodes must encode to exactly `encoded_len` bytes and
/// decode again to the same packet; a PUBLISH, prepared, must write the same bytes.
pub fn roundtrip(data: &[u8], version: ProtocolVersion) {
    let Ok(Status::Complete(decoded)) = decode(data, version, PROTOCOL_MAX_PACKET_SIZE) else {
        return;
    };
    let len = decoded
        .packet
        .encoded_len(version)
        .expect("a decoded packet must encode");
    let mut buf = vec![0u8; len];
    assert_eq!(decoded.packet.encode(version, &mut buf), Ok(len));
    match decode(&buf, version, PROTOCOL_MAX_PACKET_SIZE) {
        Ok(Status::Complete(again)) => {
            assert_eq!(again.len, len);
            assert_eq!(again.packet, decoded.packet);
        }
        other => panic!("re-encoded packet does not decode: {other:?}"),
    }
    // A PUBLISH prepared once writes the same bytes as the one-shot encoder.
    if let Packet::Publish(publish) = decoded.packet {
        let prepared = publish
            .prepare(version)
            .expect("a decoded PUBLISH must prepare");
        assert_eq!(prepared.encoded_len(), len);
        let mut fast = vec![0u8; len];
        assert_eq!(prepared.encode(&mut fast), Ok(len));
        assert_eq!(fast, buf);
    }
}

fn touch(packet: &Packet<'_>) -> usize {
    let props = |p: &facteur_codec::Properties<'_>| p.iter().count();
    match packet {
        Packet::Connect(c) => props(&c.properties) + c.will.map_or(0, |w| props(&w.properties)),
        Packet::ConnAck(c) => props(&c.properties),
        Packet::Publish(p) => props(&p.properties),
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            props(&r.properties)
        }
        Packet::Subscribe(s) => props(&s.properties) + s.subscriptions.iter().count(),
        Packet::SubAck(s) => props(&s.properties) + s.reason_codes.iter().count(),
        Packet::Unsubscribe(u) => props(&u.properties) + u.filters.iter().count(),
        Packet::UnsubAck(u) => props(&u.properties) + u.reason_codes.iter().count(),
        Packet::Disconnect(d) => props(&d.properties),
        Packet::Auth(a) => props(&a.properties),
        Packet::PingReq | Packet::PingResp => 0,
    }
}

/// The version a roundtrip input asks for: its first byte modulo 3.
pub fn version_from(byte: u8) -> ProtocolVersion {
    match byte % 3 {
        0 => ProtocolVersion::V3_1,
        1 => ProtocolVersion::V3_1_1,
        _ => ProtocolVersion::V5,
    }
}
