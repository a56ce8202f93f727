//! Byte-level tests: exact bytes in, exact packet out, and the same bytes back out, for every
//! packet type in every version; then exact errors for broken packets.

use core::num::NonZeroU16;
use facteur_codec::*;
use facteur_topic::TopicError;

const V31: ProtocolVersion = ProtocolVersion::V3_1;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;
const MAX: u32 = PROTOCOL_MAX_PACKET_SIZE;

/// Decodes `bytes` (which must be exactly one packet), checks it equals `expected`, then
/// encodes `expected` and checks the bytes are the same.
#[track_caller]
fn exact(version: ProtocolVersion, bytes: &[u8], expected: Packet<'_>) {
    let decoded = match decode(bytes, version, MAX) {
        Ok(Status::Complete(d)) => d,
        other => panic!("decode of {bytes:02X?} gave {other:?}"),
    };
    assert_eq!(decoded.len, bytes.len(), "whole input used");
    assert_eq!(decoded.packet, expected);
    let mut out = vec![0u8; bytes.len()];
    assert_eq!(expected.encoded_len(version), Ok(bytes.len()));
    assert_eq!(expected.encode(version, &mut out), Ok(bytes.len()));
    assert_eq!(out, bytes);
    // The decoded packet re-encodes to the same bytes too.
    assert_eq!(decoded.packet.encode(version, &mut out), Ok(bytes.len()));
    assert_eq!(out, bytes);
}

#[track_caller]
fn fails(version: ProtocolVersion, bytes: &[u8], kind: DecodeErrorKind, offset: usize) {
    assert_eq!(
        decode(bytes, version, MAX),
        Err(DecodeError { kind, offset }),
        "bytes {bytes:02X?}"
    );
}

#[test]
fn connect_3_1_1_with_will_and_credentials() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x1E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xEE, 0x00, 0x3C,
        0x00, 0x02, b'i', b'd',
        0x00, 0x03, b'w', b'/', b't', 0x00, 0x03, b'b', b'y', b'e',
        0x00, 0x01, b'u', 0x00, 0x01, b'p',
    ];
    let connect = Connect {
        protocol: V311,
        clean_start: true,
        keep_alive: 60,
        client_id: "id",
        will: Some(Will {
            topic: "w/t",
            payload: b"bye",
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Properties::EMPTY,
        }),
        username: Some("u"),
        password: Some(b"p"),
        properties: Properties::EMPTY,
    };
    exact(V311, &bytes, Packet::Connect(connect));
    // CONNECT carries its own version: the connection's version does not matter.
    exact(V5, &bytes, Packet::Connect(connect));
}

#[test]
fn connect_3_1_uses_mqisdp() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x0A,
        0x00, 0x03, b'a', b'b', b'c',
    ];
    let mut connect = Connect::new(V31, "abc");
    connect.keep_alive = 10;
    exact(V311, &bytes, Packet::Connect(connect));
}

#[test]
fn connect_5_with_properties_and_will_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x05, 0x11, 0x00, 0x00, 0x00, 0x1E, 0x00, 0x01, b'c',
    ];
    let props = [Property::SessionExpiryInterval(30)];
    let connect = Connect {
        properties: Properties::from_slice(&props),
        ..Connect::new(V5, "c")
    };
    exact(V5, &bytes, Packet::Connect(connect));

    #[rustfmt::skip]
    let with_will = [
        0x10, 0x1A, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x06, 0x00, 0x3C,
        0x00, 0x00, 0x01, b'c',
        0x05, 0x18, 0x00, 0x00, 0x00, 0x05, 0x00, 0x01, b't', 0x00, 0x01, b'x',
    ];
    let will_props = [Property::WillDelayInterval(5)];
    let connect = Connect {
        will: Some(Will {
            topic: "t",
            payload: b"x",
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties::from_slice(&will_props),
        }),
        ..Connect::new(V5, "c")
    };
    exact(V5, &with_will, Packet::Connect(connect));
    let Ok(Status::Complete(d)) = decode(&with_will, V5, MAX) else {
        panic!()
    };
    let Packet::Connect(c) = d.packet else {
        panic!()
    };
    assert_eq!(c.will.unwrap().properties.will_delay_interval(), Some(5));
}

#[test]
fn connack_every_version() {
    let mut present = ConnAck::new(ReasonCode::Success);
    present.session_present = true;
    exact(V311, &[0x20, 0x02, 0x01, 0x00], Packet::ConnAck(present));
    exact(
        V31,
        &[0x20, 0x02, 0x00, 0x05],
        Packet::ConnAck(ConnAck::new(ReasonCode::NotAuthorized)),
    );
    exact(
        V311,
        &[0x20, 0x02, 0x00, 0x01],
        Packet::ConnAck(ConnAck::new(ReasonCode::UnsupportedProtocolVersion)),
    );
    let props = [
        Property::ReceiveMaximum(10),
        Property::RetainAvailable(false),
    ];
    let with_props = ConnAck {
        properties: Properties::from_slice(&props),
        ..ConnAck::new(ReasonCode::Success)
    };
    exact(
        V5,
        &[0x20, 0x08, 0x00, 0x00, 0x05, 0x21, 0x00, 0x0A, 0x25, 0x00],
        Packet::ConnAck(with_props),
    );
    exact(
        V5,
        &[0x20, 0x03, 0x00, 0x87, 0x00],
        Packet::ConnAck(ConnAck::new(ReasonCode::NotAuthorized)),
    );
}

#[test]
fn connack_5_failure_maps_to_nearest_3_x_return_code() {
    let mut out = [0u8; 4];
    ConnAck::new(ReasonCode::Banned)
        .encode(V311, &mut out)
        .unwrap();
    assert_eq!(out, [0x20, 0x02, 0x00, 0x05]);
    ConnAck::new(ReasonCode::ServerBusy)
        .encode(V311, &mut out)
        .unwrap();
    assert_eq!(out, [0x20, 0x02, 0x00, 0x03]);
}

#[test]
fn publish_3_1_1_qos0_and_qos2_dup_retain() {
    let bytes = [
        0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o',
    ];
    exact(V311, &bytes, Packet::Publish(Publish::new("a/b", b"hello")));
    exact(V31, &bytes, Packet::Publish(Publish::new("a/b", b"hello")));
    let publish = Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: true,
        packet_id: Some(10),
        ..Publish::new("t", b"x")
    };
    exact(
        V311,
        &[0x3D, 0x06, 0x00, 0x01, b't', 0x00, 0x0A, b'x'],
        Packet::Publish(publish),
    );
}

const PUBLISH_5_PROPS: [Property<'static>; 3] = [
    Property::PayloadFormatIndicator(PayloadFormat::Utf8),
    Property::TopicAlias(5),
    Property::UserProperty("k", "v"),
];

/// A 5.0 QoS 1 PUBLISH with properties, and its bytes.
const PUBLISH_5: Publish<'static> = Publish {
    qos: QoS::AtLeastOnce,
    packet_id: Some(1),
    properties: Properties::from_slice(&PUBLISH_5_PROPS),
    ..Publish::new("t", b"hi")
};

#[rustfmt::skip]
const PUBLISH_5_BYTES: [u8; 22] = [
    0x32, 0x14, 0x00, 0x01, b't', 0x00, 0x01,
    0x0C, 0x01, 0x01, 0x23, 0x00, 0x05, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v',
    b'h', b'i',
];

#[test]
fn publish_5_with_properties_and_alias_only_topic() {
    let (publish, bytes) = (PUBLISH_5, PUBLISH_5_BYTES);
    exact(V5, &bytes, Packet::Publish(publish));

    let alias = [Property::TopicAlias(5)];
    let aliased = Publish {
        properties: Properties::from_slice(&alias),
        ..Publish::new("", b"z")
    };
    exact(
        V5,
        &[0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x05, b'z'],
        Packet::Publish(aliased),
    );
}

#[test]
fn publish_5_encoded_for_3_1_1_drops_properties() {
    let props = [Property::MessageExpiryInterval(9)];
    let publish = Publish {
        properties: Properties::from_slice(&props),
        ..Publish::new("a/b", b"hello")
    };
    let mut out = [0u8; 12];
    assert_eq!(publish.encode(V311, &mut out), Ok(12));
    assert_eq!(
        out,
        [0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o']
    );
}

#[test]
fn publish_header_only_for_vectored_writes() {
    let props = [Property::ContentType("text/plain")];
    let publish = Publish {
        qos: QoS::AtLeastOnce,
        packet_id: Some(3),
        properties: Properties::from_slice(&props),
        ..Publish::new("x/y", &[7u8; 300])
    };
    let mut head = [0u8; 32];
    let n = publish.encode_header(V5, &mut head).unwrap();
    let mut whole = vec![0u8; 400];
    let m = publish.encode(V5, &mut whole).unwrap();
    assert_eq!(n + 300, m);
    assert_eq!([&head[..n], publish.payload].concat(), &whole[..m]);
    assert_eq!(
        publish.encode_header(V5, &mut head[..n - 1]),
        Err(EncodeError::BufferTooSmall {
            required: n,
            available: n - 1
        })
    );
}

/// Encodes `prepared` into an exact-size buffer and returns the bytes.
#[track_caller]
fn prepared_bytes(prepared: &PreparedPublish<'_>) -> Vec<u8> {
    let mut out = vec![0u8; prepared.encoded_len()];
    assert_eq!(prepared.encode(&mut out), Ok(out.len()));
    out
}

#[test]
fn prepared_publish_exact_bytes_with_packet_id_dup_and_retain_changed() {
    let publish = Publish {
        qos: QoS::AtLeastOnce,
        packet_id: Some(1),
        ..Publish::new("a/b", b"hi")
    };
    let mut prepared = publish.prepare(V311).unwrap();
    assert_eq!(prepared.version(), V311);
    assert_eq!(prepared.qos(), QoS::AtLeastOnce);
    assert_eq!(prepared.publish(), publish);
    assert_eq!(
        prepared_bytes(&prepared),
        [0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, b'h', b'i']
    );
    // Per subscriber: a packet identifier, then a resend with DUP, then RETAIN too.
    prepared
        .set_packet_id(NonZeroU16::new(0x1234).unwrap())
        .unwrap();
    assert_eq!(
        prepared_bytes(&prepared),
        [0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x12, 0x34, b'h', b'i']
    );
    prepared.set_dup(true).unwrap();
    prepared.set_retain(true);
    assert_eq!(
        prepared_bytes(&prepared),
        [0x3B, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x12, 0x34, b'h', b'i']
    );
    assert_eq!(
        prepared.publish(),
        Publish {
            dup: true,
            retain: true,
            packet_id: Some(0x1234),
            ..publish
        }
    );
    prepared.set_dup(false).unwrap();
    prepared.set_retain(false);
    assert_eq!(prepared_bytes(&prepared)[0], 0x32);
    // What the prepared form writes decodes to what it says it holds.
    let bytes = prepared_bytes(&prepared);
    let Ok(Status::Complete(decoded)) = decode(&bytes, V311, MAX) else {
        panic!()
    };
    assert_eq!(decoded.packet, Packet::Publish(prepared.publish()));
}

#[test]
fn prepared_publish_qos0_refuses_packet_id_and_dup_and_stays_unchanged() {
    let mut prepared = Publish::new("a/b", b"hello").prepare(V311).unwrap();
    let before = prepared;
    assert_eq!(
        prepared.set_packet_id(NonZeroU16::new(1).unwrap()),
        Err(EncodeError::PacketIdMismatch)
    );
    assert_eq!(
        prepared.set_dup(true),
        Err(EncodeError::Invalid(DecodeErrorKind::InvalidFlags {
            packet: PacketType::Publish,
            flags: 0x08
        }))
    );
    assert_eq!(prepared.set_dup(false), Ok(()));
    assert_eq!(prepared, before);
    assert_eq!(
        prepared_bytes(&prepared),
        [0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o']
    );
}

#[test]
fn prepared_publish_5_properties_from_a_slice_and_from_the_wire() {
    let (publish, bytes) = (PUBLISH_5, PUBLISH_5_BYTES);
    let prepared = publish.prepare(V5).unwrap();
    assert_eq!(prepared.encoded_len(), bytes.len());
    assert_eq!(prepared_bytes(&prepared), bytes);
    // The decoded packet's properties are its validated wire bytes: copied as they are.
    let Ok(Status::Complete(decoded)) = decode(&bytes, V5, MAX) else {
        panic!()
    };
    let Packet::Publish(received) = decoded.packet else {
        panic!()
    };
    assert_eq!(prepared_bytes(&received.prepare(V5).unwrap()), bytes);
    // Stored properties rebuilt with `from_wire` are copied as they are too.
    let stored = Properties::from_wire(&bytes[8..20], PacketType::Publish).unwrap();
    let rebuilt = Publish {
        properties: stored,
        ..publish
    };
    assert_eq!(prepared_bytes(&rebuilt.prepare(V5).unwrap()), bytes);
    // The same message prepared for 3.1.1 leaves the properties out.
    assert_eq!(
        prepared_bytes(&received.prepare(V311).unwrap()),
        [0x32, 0x07, 0x00, 0x01, b't', 0x00, 0x01, b'h', b'i']
    );
    // An empty topic stands on its alias in 5.0 only.
    let alias = [Property::TopicAlias(5)];
    let aliased = Publish {
        properties: Properties::from_slice(&alias),
        ..Publish::new("", b"z")
    };
    assert_eq!(
        prepared_bytes(&aliased.prepare(V5).unwrap()),
        [0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x05, b'z']
    );
    assert_eq!(
        aliased.prepare(V311),
        Err(EncodeError::Invalid(DecodeErrorKind::MissingTopic))
    );
}

#[test]
fn prepared_publish_wire_properties_of_another_packet_are_checked_again() {
    // CONNECT's properties, validated for CONNECT, are not valid PUBLISH properties: putting
    // them into a PUBLISH does not skip the check.
    let connect_props = [0x11, 0x00, 0x00, 0x00, 0x0A]; // Session Expiry Interval 10
    let props = Properties::from_wire(&connect_props, PacketType::Connect).unwrap();
    let publish = Publish {
        properties: props,
        ..Publish::new("a/b", b"")
    };
    let expected = EncodeError::Invalid(DecodeErrorKind::PropertyNotAllowed(
        PropertyId::SessionExpiryInterval,
    ));
    assert_eq!(publish.prepare(V5).unwrap_err(), expected);
    assert_eq!(publish.encoded_len(V5).unwrap_err(), expected);
    // Before 5.0 no properties are written, so none are checked.
    assert!(publish.prepare(V311).is_ok());
}

#[test]
fn prepared_publish_header_and_buffer_errors() {
    let payload = [7u8; 300];
    let props = [Property::ContentType("text/plain")];
    let publish = Publish {
        qos: QoS::AtLeastOnce,
        packet_id: Some(3),
        properties: Properties::from_slice(&props),
        ..Publish::new("x/y", &payload)
    };
    let prepared = publish.prepare(V5).unwrap();
    let whole = prepared_bytes(&prepared);
    // 300 + 2 + 3 + 2 + 1 + 13 = 321 bytes of body: a two-byte remaining length.
    assert_eq!(&whole[..3], &[0x32, 0xC1, 0x02]);
    let mut head = [0u8; 32];
    let n = prepared.encode_header(&mut head).unwrap();
    assert_eq!(n, 24);
    assert_eq!([&head[..n], &payload[..]].concat(), whole);
    assert_eq!(publish.encode_header(V5, &mut head), Ok(n));
    assert_eq!(
        prepared.encode_header(&mut head[..n - 1]),
        Err(EncodeError::BufferTooSmall {
            required: n,
            available: n - 1
        })
    );
    let mut short = vec![0xAAu8; whole.len() - 1];
    assert_eq!(
        prepared.encode(&mut short),
        Err(EncodeError::BufferTooSmall {
            required: whole.len(),
            available: whole.len() - 1
        })
    );
    assert!(
        short.iter().all(|&b| b == 0xAA),
        "nothing partially written"
    );
    // `encode_to` writes the same bytes into any sink: a growing `BytesMut`, a slice.
    #[cfg(feature = "bytes")]
    {
        let mut grown = bytes::BytesMut::new();
        assert_eq!(prepared.encode_to(&mut grown), Ok(whole.len()));
        assert_eq!(&grown[..], &whole[..]);
    }
    let mut slice = vec![0u8; whole.len() + 5];
    let mut w = SliceWriter::new(&mut slice);
    assert_eq!(prepared.encode_to(&mut w), Ok(whole.len()));
    assert_eq!(w.written(), whole.len());
    assert_eq!(&slice[..whole.len()], &whole[..]);
}

#[test]
fn prepare_refuses_what_encode_refuses_with_the_same_errors() {
    let publish = Publish::new("a/b", b"hello");
    let not_allowed = [Property::ReceiveMaximum(1)];
    let twice = [Property::TopicAlias(1), Property::TopicAlias(2)];
    let zero_alias = [Property::TopicAlias(0)];
    let long_value = "v".repeat(70_000);
    let long_props = [Property::ContentType(&long_value)];
    let long_topic = "a".repeat(70_000);
    let cases: Vec<(ProtocolVersion, Publish<'_>)> = vec![
        (
            V311,
            Publish {
                qos: QoS::AtLeastOnce,
                ..publish
            },
        ),
        (
            V311,
            Publish {
                packet_id: Some(1),
                ..publish
            },
        ),
        (
            V311,
            Publish {
                qos: QoS::ExactlyOnce,
                packet_id: Some(0),
                ..publish
            },
        ),
        (
            V311,
            Publish {
                dup: true,
                ..publish
            },
        ),
        (V311, Publish::new("a/#", b"")),
        (V311, Publish::new("a/\0", b"")),
        (V311, Publish::new("", b"")),
        (V5, Publish::new("", b"")),
        (V311, Publish::new(&long_topic, b"")),
        (
            V5,
            Publish {
                properties: Properties::from_slice(&not_allowed),
                ..publish
            },
        ),
        (
            V5,
            Publish {
                properties: Properties::from_slice(&twice),
                ..publish
            },
        ),
        (
            V5,
            Publish {
                properties: Properties::from_slice(&zero_alias),
                ..publish
            },
        ),
        (
            V5,
            Publish {
                properties: Properties::from_slice(&long_props),
                ..publish
            },
        ),
    ];
    for (v, bad) in cases {
        let err = bad.encoded_len(v).unwrap_err();
        assert_eq!(bad.prepare(v).unwrap_err(), err, "{bad:?}");
        assert_eq!(bad.encode(v, &mut [0u8; 64]), Err(err), "{bad:?}");
        assert_eq!(Packet::Publish(bad).encoded_len(v), Err(err), "{bad:?}");
    }
}

#[test]
fn pub_responses_every_version_and_form() {
    let ack = PubResponse::new(7);
    exact(V311, &[0x40, 0x02, 0x00, 0x07], Packet::PubAck(ack));
    exact(V5, &[0x40, 0x02, 0x00, 0x07], Packet::PubAck(ack));
    exact(
        V31,
        &[0x50, 0x02, 0x00, 0x01],
        Packet::PubRec(PubResponse::new(1)),
    );
    exact(
        V311,
        &[0x62, 0x02, 0x00, 0x01],
        Packet::PubRel(PubResponse::new(1)),
    );
    exact(
        V311,
        &[0x70, 0x02, 0x00, 0x01],
        Packet::PubComp(PubResponse::new(1)),
    );
    let no_match = PubResponse {
        reason_code: ReasonCode::NoMatchingSubscribers,
        ..PubResponse::new(7)
    };
    exact(
        V5,
        &[0x40, 0x03, 0x00, 0x07, 0x10],
        Packet::PubAck(no_match),
    );
    exact(
        V5,
        &[0x50, 0x03, 0x00, 0x07, 0x10],
        Packet::PubRec(no_match),
    );
    let not_found = PubResponse {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        ..PubResponse::new(1)
    };
    exact(
        V5,
        &[0x62, 0x03, 0x00, 0x01, 0x92],
        Packet::PubRel(not_found),
    );
    exact(
        V5,
        &[0x70, 0x03, 0x00, 0x01, 0x92],
        Packet::PubComp(not_found),
    );
    let why = [Property::ReasonString("bad")];
    let with_reason = PubResponse {
        reason_code: ReasonCode::UnspecifiedError,
        properties: Properties::from_slice(&why),
        ..PubResponse::new(7)
    };
    #[rustfmt::skip]
    let bytes = [0x40, 0x0A, 0x00, 0x07, 0x80, 0x06, 0x1F, 0x00, 0x03, b'b', b'a', b'd'];
    exact(V5, &bytes, Packet::PubAck(with_reason));
    // A 5.0 success code with an empty property section is accepted, and re-encoded short.
    let Ok(Status::Complete(d)) = decode(&[0x40, 0x04, 0x00, 0x07, 0x00, 0x00], V5, MAX) else {
        panic!()
    };
    assert_eq!(d.packet, Packet::PubAck(ack));
}

/// The acknowledgements' short form (`Success`, no properties): four bytes in every version,
/// through every entry point, with the general path's errors.
#[test]
fn pub_response_short_form_exact_bytes_and_errors() {
    type Make = fn(PubResponse<'static>) -> Packet<'static>;
    let kinds: [(Make, u8); 4] = [
        (Packet::PubAck, 0x40),
        (Packet::PubRec, 0x50),
        (Packet::PubRel, 0x62),
        (Packet::PubComp, 0x70),
    ];
    for version in [V31, V311, V5] {
        for (make, first) in kinds {
            for id in [1u16, 0x00FF, 0x0100, 0xBEEF, u16::MAX] {
                let packet = make(PubResponse::new(id));
                let [high, low] = id.to_be_bytes();
                let expected = [first, 0x02, high, low];
                exact(version, &expected, packet);
                // Into a larger slice: exactly four bytes written, the rest untouched.
                let mut buf = [0xAAu8; 7];
                assert_eq!(packet.encode(version, &mut buf), Ok(4));
                assert_eq!(buf, [first, 0x02, high, low, 0xAA, 0xAA, 0xAA]);
                // Through a `Sink`, after bytes already written.
                let mut buf = [0xAAu8; 8];
                let mut out = SliceWriter::new(&mut buf);
                out.put_slice(&[0x11, 0x22]);
                assert_eq!(packet.encode_to(version, &mut out), Ok(4));
                assert_eq!(out.written(), 6);
                assert_eq!(buf, [0x11, 0x22, first, 0x02, high, low, 0xAA, 0xAA]);
                #[cfg(feature = "bytes")]
                {
                    let mut grown = bytes::BytesMut::new();
                    assert_eq!(packet.encode_to(version, &mut grown), Ok(4));
                    assert_eq!(&grown[..], &expected);
                }
                // Too small: the size needed, and nothing written.
                for len in 0..4 {
                    let mut small = [0xAAu8; 4];
                    let error = Err(EncodeError::BufferTooSmall {
                        required: 4,
                        available: len,
                    });
                    assert_eq!(packet.encode(version, &mut small[..len]), error);
                    let mut out = SliceWriter::new(&mut small[..len]);
                    assert_eq!(packet.encode_to(version, &mut out), error);
                    assert_eq!(small, [0xAA; 4]);
                }
                // Packet identifier 0 is refused before the buffer is looked at.
                let zero = make(PubResponse::new(0));
                let refused = Err(EncodeError::Invalid(DecodeErrorKind::ZeroPacketIdentifier));
                assert_eq!(zero.encoded_len(version), refused);
                assert_eq!(zero.encode(version, &mut buf), refused);
                assert_eq!(zero.encode(version, &mut []), refused);
                let mut out = SliceWriter::new(&mut buf);
                assert_eq!(zero.encode_to(version, &mut out), refused);
                assert_eq!(out.written(), 0);
            }
        }
    }
    // Properties decoded from an empty section are no properties: the short form again.
    let Ok(Status::Complete(d)) = decode(&[0x50, 0x04, 0x00, 0x07, 0x00, 0x00], V5, MAX) else {
        panic!()
    };
    let mut buf = [0u8; 4];
    assert_eq!(d.packet.encode(V5, &mut buf), Ok(4));
    assert_eq!(buf, [0x50, 0x02, 0x00, 0x07]);
    // Not the short form in 5.0, but four bytes before it (reason code and properties are
    // 5.0 fields): the general path, same bytes as before.
    let why = [Property::ReasonString("bad")];
    let with_reason = PubResponse {
        reason_code: ReasonCode::NoMatchingSubscribers,
        properties: Properties::from_slice(&why),
        ..PubResponse::new(9)
    };
    assert_eq!(Packet::PubAck(with_reason).encode(V311, &mut buf), Ok(4));
    assert_eq!(buf, [0x40, 0x02, 0x00, 0x09]);
    // A reason code the packet does not have is refused in every version.
    let wrong = PubResponse {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        ..PubResponse::new(9)
    };
    for version in [V311, V5] {
        assert_eq!(
            Packet::PubAck(wrong).encode(version, &mut buf),
            Err(EncodeError::Invalid(DecodeErrorKind::InvalidReasonCode(
                0x92
            )))
        );
    }
}

#[test]
fn subscribe_and_suback() {
    let subs = [
        Subscription::new("a/#", QoS::AtLeastOnce),
        Subscription::new("+", QoS::ExactlyOnce),
    ];
    #[rustfmt::skip]
    let bytes = [
        0x82, 0x0C, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'#', 0x01, 0x00, 0x01, b'+', 0x02,
    ];
    exact(V311, &bytes, Packet::Subscribe(Subscribe::new(10, &subs)));
    exact(V31, &bytes, Packet::Subscribe(Subscribe::new(10, &subs)));

    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    let subs5 = [Subscription {
        filter: "a/#",
        options,
    }];
    let id = [Property::SubscriptionIdentifier(5)];
    let subscribe = Subscribe {
        properties: Properties::from_slice(&id),
        ..Subscribe::new(10, &subs5)
    };
    #[rustfmt::skip]
    let bytes5 = [
        0x82, 0x0B, 0x00, 0x0A, 0x02, 0x0B, 0x05, 0x00, 0x03, b'a', b'/', b'#', 0x2D,
    ];
    exact(V5, &bytes5, Packet::Subscribe(subscribe));

    let codes = [ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError];
    exact(
        V311,
        &[0x90, 0x04, 0x00, 0x0A, 0x01, 0x80],
        Packet::SubAck(SubAck::new(10, &codes)),
    );
    let codes5 = [ReasonCode::GrantedQoS2, ReasonCode::NotAuthorized];
    exact(
        V5,
        &[0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x87],
        Packet::SubAck(SubAck::new(10, &codes5)),
    );
    // A 5.0-only failure becomes 0x80 in 3.1.1.
    let mut out = [0u8; 6];
    SubAck::new(10, &codes5).encode(V311, &mut out).unwrap();
    assert_eq!(out, [0x90, 0x04, 0x00, 0x0A, 0x02, 0x80]);
}

#[test]
fn unsubscribe_and_unsuback() {
    let filters = ["a/b"];
    exact(
        V311,
        &[0xA2, 0x07, 0x00, 0x0B, 0x00, 0x03, b'a', b'/', b'b'],
        Packet::Unsubscribe(Unsubscribe::new(11, &filters)),
    );
    exact(
        V5,
        &[0xA2, 0x08, 0x00, 0x0B, 0x00, 0x00, 0x03, b'a', b'/', b'b'],
        Packet::Unsubscribe(Unsubscribe::new(11, &filters)),
    );
    exact(
        V311,
        &[0xB0, 0x02, 0x00, 0x0B],
        Packet::UnsubAck(UnsubAck::new(11, &[])),
    );
    let codes = [ReasonCode::NoSubscriptionExisted];
    exact(
        V5,
        &[0xB0, 0x04, 0x00, 0x0B, 0x00, 0x11],
        Packet::UnsubAck(UnsubAck::new(11, &codes)),
    );
}

#[test]
fn ping_disconnect_auth() {
    for v in [V31, V311, V5] {
        exact(v, &[0xC0, 0x00], Packet::PingReq);
        exact(v, &[0xD0, 0x00], Packet::PingResp);
        exact(
            v,
            &[0xE0, 0x00],
            Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
        );
    }
    exact(
        V5,
        &[0xE0, 0x01, 0x8E],
        Packet::Disconnect(Disconnect::new(ReasonCode::SessionTakenOver)),
    );
    let expiry = [Property::SessionExpiryInterval(0)];
    let with_will = Disconnect {
        properties: Properties::from_slice(&expiry),
        ..Disconnect::new(ReasonCode::DisconnectWithWillMessage)
    };
    exact(
        V5,
        &[0xE0, 0x07, 0x04, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00],
        Packet::Disconnect(with_will),
    );
    exact(
        V5,
        &[0xF0, 0x00],
        Packet::Auth(Auth::new(ReasonCode::Success)),
    );
    let method = [Property::AuthenticationMethod("m")];
    let auth = Auth {
        properties: Properties::from_slice(&method),
        ..Auth::new(ReasonCode::ContinueAuthentication)
    };
    exact(
        V5,
        &[0xF0, 0x06, 0x18, 0x04, 0x15, 0x00, 0x01, b'm'],
        Packet::Auth(auth),
    );
    let mut out = [0u8; 8];
    assert_eq!(
        auth.encode(V311, &mut out),
        Err(EncodeError::NotInVersion(PacketType::Auth))
    );
}

#[test]
fn malformed_headers_and_lengths() {
    fails(
        V311,
        &[0x36, 0x03, 0x00, 0x01, b't'],
        DecodeErrorKind::InvalidQoS,
        0,
    );
    fails(
        V311,
        &[0x38, 0x03, 0x00, 0x01, b't'],
        DecodeErrorKind::InvalidFlags {
            packet: PacketType::Publish,
            flags: 0x08,
        },
        0,
    );
    fails(
        V311,
        &[0x30, 0x80, 0x00],
        DecodeErrorKind::VarIntNotMinimal,
        1,
    );
    fails(
        V311,
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        DecodeErrorKind::VarIntTooLong,
        1,
    );
    fails(
        V311,
        &[0x40, 0x03, 0x00, 0x01, 0x00],
        DecodeErrorKind::TrailingBytes(1),
        4,
    );
    fails(
        V311,
        &[0x10, 0x03, 0x00, 0x04, b'M'],
        DecodeErrorKind::Truncated,
        4,
    );
    fails(
        V311,
        &[0xF0, 0x00],
        DecodeErrorKind::InvalidPacketType(15),
        0,
    );
    fails(
        V5,
        &[0xC0, 0x01, 0x00],
        DecodeErrorKind::TrailingBytes(1),
        2,
    );
    fails(
        V311,
        &[0x00, 0x00],
        DecodeErrorKind::InvalidPacketType(0),
        0,
    );
    fails(
        V311,
        &[0x82, 0x02, 0x00, 0x01],
        DecodeErrorKind::NoTopicFilters,
        4,
    );
    fails(
        V5,
        &[0xA2, 0x03, 0x00, 0x01, 0x00],
        DecodeErrorKind::NoTopicFilters,
        5,
    );
}

#[test]
fn connect_rules() {
    let base = |level: u8, flags: u8| -> Vec<u8> {
        let mut b = vec![
            0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', level, flags, 0x00, 0x3C, 0x00, 0x00,
        ];
        if level == 5 {
            b.push(0x00);
            b[1] += 1;
        }
        b
    };
    assert!(decode(&base(4, 0x02), V311, MAX).is_ok());
    fails(
        V311,
        &base(6, 0x02),
        DecodeErrorKind::UnsupportedProtocolVersion(6),
        8,
    );
    assert_eq!(
        decode(&base(6, 0x02), V311, MAX).unwrap_err().reason_code(),
        ReasonCode::UnsupportedProtocolVersion
    );
    fails(V311, &base(4, 0x03), DecodeErrorKind::ReservedBitSet, 9);
    fails(V311, &base(4, 0x18), DecodeErrorKind::InvalidQoS, 9);
    // Will QoS without the will flag.
    fails(V311, &base(4, 0x08), DecodeErrorKind::InconsistentFlags, 9);
    // Password without user name is refused in 3.1.1 but allowed in 5.0.
    fails(V311, &base(4, 0x40), DecodeErrorKind::InconsistentFlags, 9);
    let mut v5 = base(5, 0x40);
    v5.extend_from_slice(&[0x00, 0x01, b'p']);
    v5[1] += 3;
    assert!(decode(&v5, V5, MAX).is_ok());
    let mut bad_name = base(4, 0x02);
    bad_name[7] = b'X';
    fails(V311, &bad_name, DecodeErrorKind::InvalidProtocolName, 2);
}

#[test]
fn publish_rules() {
    fails(
        V311,
        &[0x30, 0x05, 0x00, 0x03, b'a', b'/', b'#'],
        DecodeErrorKind::InvalidTopicName(TopicError::WildcardInName { at: 2 }),
        2,
    );
    assert_eq!(
        decode(&[0x30, 0x05, 0x00, 0x03, b'a', b'/', b'+'], V311, MAX)
            .unwrap_err()
            .reason_code(),
        ReasonCode::TopicNameInvalid
    );
    fails(
        V311,
        &[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00],
        DecodeErrorKind::ZeroPacketIdentifier,
        5,
    );
    fails(
        V311,
        &[0x30, 0x03, 0x00, 0x01, 0xFF],
        DecodeErrorKind::InvalidUtf8,
        4,
    );
    fails(
        V311,
        &[0x30, 0x03, 0x00, 0x01, 0x00],
        DecodeErrorKind::NullCharacter,
        4,
    );
    // U+D800 as three bytes: a surrogate, not valid UTF-8.
    fails(
        V311,
        &[0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80],
        DecodeErrorKind::InvalidUtf8,
        4,
    );
    fails(
        V311,
        &[0x30, 0x03, 0x00, 0x00, b'x'],
        DecodeErrorKind::MissingTopic,
        2,
    );
    fails(
        V5,
        &[0x30, 0x04, 0x00, 0x00, 0x00, b'x'],
        DecodeErrorKind::MissingTopic,
        2,
    );
    fails(
        V5,
        &[
            0x30, 0x09, 0x00, 0x01, b't', 0x05, 0x11, 0x00, 0x00, 0x00, 0x01,
        ],
        DecodeErrorKind::PropertyNotAllowed(PropertyId::SessionExpiryInterval),
        6,
    );
    fails(
        V5,
        &[0x30, 0x08, 0x00, 0x01, b't', 0x04, 0x23, 0x00, 0x01, 0x23],
        DecodeErrorKind::Truncated,
        10,
    );
    let dup = [
        0x30, 0x0A, 0x00, 0x01, b't', 0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02,
    ];
    fails(
        V5,
        &dup,
        DecodeErrorKind::DuplicateProperty(PropertyId::TopicAlias),
        9,
    );
    assert_eq!(
        decode(&dup, V5, MAX).unwrap_err().reason_code(),
        ReasonCode::ProtocolError
    );
}

#[test]
fn subscribe_rules() {
    // Reserved option bits: bit 2 is reserved in 3.1.1 but no-local in 5.0.
    fails(
        V311,
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04],
        DecodeErrorKind::ReservedBitSet,
        7,
    );
    fails(
        V5,
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x40],
        DecodeErrorKind::ReservedBitSet,
        8,
    );
    fails(
        V5,
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30],
        DecodeErrorKind::InvalidRetainHandling,
        8,
    );
    fails(
        V311,
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03],
        DecodeErrorKind::InvalidQoS,
        7,
    );
    fails(
        V311,
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x02, b'a', b'#', 0x00],
        DecodeErrorKind::InvalidTopicFilter(TopicError::WildcardNotWholeLevel { at: 1 }),
        4,
    );
    assert_eq!(
        decode(
            &[0x82, 0x07, 0x00, 0x01, 0x00, 0x02, b'a', b'#', 0x00],
            V311,
            MAX
        )
        .unwrap_err()
        .reason_code(),
        ReasonCode::TopicFilterInvalid
    );
    fails(
        V311,
        &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00],
        DecodeErrorKind::ZeroPacketIdentifier,
        2,
    );
}

/// SUBSCRIBE and UNSUBSCRIBE check the caller's filters in one loop and, when one is refused
/// or starts with `$`, one by one: the bytes and the errors are the same either way.
#[test]
fn subscribe_filters_checked_together_or_one_by_one() {
    // Filters starting with `$` (a shared subscription, `$SYS`) take the one-by-one path.
    let subs = [
        Subscription::new("$share/g/a/+", QoS::AtLeastOnce),
        Subscription::new("$SYS/#", QoS::AtMostOnce),
        Subscription::new("a/b", QoS::ExactlyOnce),
    ];
    #[rustfmt::skip]
    let bytes = [
        0x82, 0x20, 0x00, 0x05,
        0x00, 0x0C, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b'a', b'/', b'+', 0x01,
        0x00, 0x06, b'$', b'S', b'Y', b'S', b'/', b'#', 0x00,
        0x00, 0x03, b'a', b'/', b'b', 0x02,
    ];
    exact(V311, &bytes, Packet::Subscribe(Subscribe::new(5, &subs)));
    let filters = ["$share/g/a/+", "a/b"];
    #[rustfmt::skip]
    let bytes = [
        0xA2, 0x15, 0x00, 0x05,
        0x00, 0x0C, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b'a', b'/', b'+',
        0x00, 0x03, b'a', b'/', b'b',
    ];
    exact(
        V311,
        &bytes,
        Packet::Unsubscribe(Unsubscribe::new(5, &filters)),
    );
    // The first refused filter names the error, whichever comes after it; nothing written.
    let refused = |subs: &[Subscription<'_>], error: TopicError| {
        for version in [V311, V5] {
            let mut buf = [0xAAu8; 64];
            let packet = Packet::Subscribe(Subscribe::new(5, subs));
            let expected = Err(EncodeError::Invalid(DecodeErrorKind::InvalidTopicFilter(
                error,
            )));
            assert_eq!(packet.encoded_len(version), expected);
            assert_eq!(packet.encode(version, &mut buf), expected);
            assert_eq!(buf, [0xAA; 64]);
            let filters: Vec<&str> = subs.iter().map(|s| s.filter).collect();
            let packet = Packet::Unsubscribe(Unsubscribe::new(5, &filters));
            assert_eq!(packet.encode(version, &mut buf), expected);
            assert_eq!(buf, [0xAA; 64]);
        }
    };
    let sub = |filter| Subscription::new(filter, QoS::AtMostOnce);
    refused(
        &[sub("a/+"), sub("maison/etage1+/x"), sub("b/#/c")],
        TopicError::WildcardNotWholeLevel { at: 13 },
    );
    refused(
        &[sub("a/+"), sub("b/#/c"), sub("maison/etage1+/x")],
        TopicError::MultiLevelNotLast { at: 2 },
    );
    refused(&[sub("a"), sub("")], TopicError::Empty);
    refused(
        &[sub("$share/g/a"), sub("b/c\0")],
        TopicError::NullCharacter { at: 3 },
    );
    refused(
        &[sub("a/#"), sub("$share/g")],
        TopicError::MissingSharedFilter,
    );
}

#[test]
fn reason_codes_are_checked_per_packet() {
    fails(
        V311,
        &[0x20, 0x02, 0x00, 0x06],
        DecodeErrorKind::InvalidReasonCode(6),
        3,
    );
    fails(
        V311,
        &[0x20, 0x02, 0x01, 0x05],
        DecodeErrorKind::InconsistentFlags,
        2,
    );
    fails(
        V311,
        &[0x20, 0x02, 0x02, 0x00],
        DecodeErrorKind::ReservedBitSet,
        2,
    );
    fails(
        V5,
        &[0x40, 0x03, 0x00, 0x01, 0x8E],
        DecodeErrorKind::InvalidReasonCode(0x8E),
        4,
    );
    fails(
        V5,
        &[0xE0, 0x01, 0x10],
        DecodeErrorKind::InvalidReasonCode(0x10),
        2,
    );
    fails(
        V311,
        &[0x90, 0x03, 0x00, 0x01, 0x87],
        DecodeErrorKind::InvalidReasonCode(0x87),
        4,
    );
    fails(
        V5,
        &[0x90, 0x04, 0x00, 0x01, 0x00, 0x11],
        DecodeErrorKind::InvalidReasonCode(0x11),
        5,
    );
}

#[test]
fn encode_refuses_invalid_packets_and_writes_nothing() {
    let mut buf = [0xAAu8; 8];
    let publish = Publish::new("a/b", b"hello");
    assert_eq!(
        publish.encode(V311, &mut buf),
        Err(EncodeError::BufferTooSmall {
            required: 12,
            available: 8
        })
    );
    assert_eq!(buf, [0xAA; 8], "nothing partially written");
    let qos1_no_id = Publish {
        qos: QoS::AtLeastOnce,
        ..publish
    };
    assert_eq!(
        qos1_no_id.encoded_len(V311),
        Err(EncodeError::PacketIdMismatch)
    );
    let wildcard = Publish::new("a/#", b"");
    assert_eq!(
        wildcard.encoded_len(V311),
        Err(EncodeError::Invalid(DecodeErrorKind::InvalidTopicName(
            TopicError::WildcardInName { at: 2 }
        )))
    );
    let not_allowed = [Property::ReceiveMaximum(1)];
    let bad_props = Publish {
        properties: Properties::from_slice(&not_allowed),
        ..publish
    };
    assert_eq!(
        bad_props.encoded_len(V5),
        Err(EncodeError::Invalid(DecodeErrorKind::PropertyNotAllowed(
            PropertyId::ReceiveMaximum
        )))
    );
    assert_eq!(
        Subscribe::new(1, &[]).encoded_len(V311),
        Err(EncodeError::Invalid(DecodeErrorKind::NoTopicFilters))
    );
    let long = "a".repeat(70_000);
    assert_eq!(
        Publish::new(&long, b"").encoded_len(V311).unwrap_err(),
        EncodeError::Invalid(DecodeErrorKind::InvalidTopicName(TopicError::TooLong {
            len: 70_000
        }))
    );
    assert_eq!(
        Connect::new(V311, &long).encoded_len(V311),
        Err(EncodeError::FieldTooLong)
    );
}

#[test]
fn many_user_properties_are_all_kept() {
    let props: Vec<Property<'_>> = (0..1000)
        .map(|_| Property::UserProperty("key", "value"))
        .collect();
    let publish = Publish {
        properties: Properties::from_slice(&props),
        ..Publish::new("t", b"")
    };
    let mut buf = vec![0u8; publish.encoded_len(V5).unwrap()];
    publish.encode(V5, &mut buf).unwrap();
    let Ok(Status::Complete(d)) = decode(&buf, V5, MAX) else {
        panic!()
    };
    let Packet::Publish(p) = d.packet else {
        panic!()
    };
    assert_eq!(p.properties.user_properties().count(), 1000);
}

#[test]
fn size_limit_counts_the_whole_packet() {
    let bytes = [
        0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o',
    ];
    assert!(decode(&bytes, V311, 12).is_ok());
    let err = decode(&bytes[..2], V311, 11).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::PacketTooLarge { size: 12, max: 11 }
    );
    assert_eq!(err.skip_len(), Some(12));
}

/// The worked examples of the specifications' CONNECT and PUBLISH variable headers.
#[test]
fn spec_examples() {
    // MQTT 3.1.1 §3.1.2.10 / MQTT 5.0 §3.1.2.12: protocol name "MQTT", level 4 or 5, flags
    // 0xCE (user name, password, will QoS 1, will, clean), keep alive 10; 5.0 adds a
    // property section of length 5 holding Session Expiry Interval 10.
    #[rustfmt::skip]
    let v311 = [
        0x10, 0x1B, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xCE, 0x00, 0x0A,
        0x00, 0x01, b'c', 0x00, 0x01, b'w', 0x00, 0x01, b'x',
        0x00, 0x02, b'u', b's', 0x00, 0x02, b'p', b'w',
    ];
    let Ok(Status::Complete(d)) = decode(&v311, V311, MAX) else {
        panic!()
    };
    let Packet::Connect(c) = d.packet else {
        panic!()
    };
    assert_eq!(
        (c.keep_alive, c.clean_start, c.username, c.password),
        (10, true, Some("us"), Some(&b"pw"[..]))
    );
    assert_eq!(
        c.will.map(|w| (w.qos, w.retain, w.topic)),
        Some((QoS::AtLeastOnce, false, "w"))
    );
    exact(V311, &v311, d.packet);

    #[rustfmt::skip]
    let v5 = [
        0x10, 0x22, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0xCE, 0x00, 0x0A,
        0x05, 0x11, 0x00, 0x00, 0x00, 0x0A,
        0x00, 0x01, b'c', 0x00, 0x00, 0x01, b'w', 0x00, 0x01, b'x',
        0x00, 0x02, b'u', b's', 0x00, 0x02, b'p', b'w',
    ];
    let Ok(Status::Complete(d)) = decode(&v5, V5, MAX) else {
        panic!()
    };
    let Packet::Connect(c) = d.packet else {
        panic!()
    };
    assert_eq!(c.properties.session_expiry_interval(), Some(10));
    exact(V5, &v5, d.packet);

    // MQTT 3.1.1 §3.3.2.3: PUBLISH variable header, topic "a/b", packet identifier 10.
    let publish = [0x32, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A];
    exact(
        V311,
        &publish,
        Packet::Publish(Publish {
            qos: QoS::AtLeastOnce,
            packet_id: Some(10),
            ..Publish::new("a/b", b"")
        }),
    );
}
