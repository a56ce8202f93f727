//! PUBLISH frames encoded once for many sessions: what each session sends, byte for byte.

mod common;

use common::*;
use facteur_codec::{Properties, Property, ProtocolVersion, Publish, QoS};
use facteur_session::{AllocStore, Config, Connection, Event, Frame, Role, Session};

fn server(version: ProtocolVersion, max_packet: Option<u32>) -> Session<AllocStore> {
    let mut s = Session::new(Config::new(Role::Server));
    let mut connection = Connection::new(version, 0);
    if let Some(max) = max_packet {
        connection.peer_maximum_packet_size = max;
    }
    s.on_connect(at(0), connection);
    s
}

fn frame(qos: QoS, version: ProtocolVersion) -> Frame {
    let publish = Publish {
        qos,
        ..Publish::new("a/b", b"hi")
    };
    Frame::new(&publish, version).expect("no properties")
}

#[test]
fn each_session_writes_the_frame_with_its_own_packet_identifier() {
    let f = frame(QoS::AtLeastOnce, V3);
    let mut busy = server(V3, None);
    // This session has used identifier 1 already.
    busy.publish(&message("x", b"", QoS::AtLeastOnce), at(0))
        .unwrap();
    assert_eq!(kinds(&drain(&mut busy, at(0)), V3), ["PUBLISH1 #1"]);
    busy.publish_frame(&f, at(0)).unwrap();
    assert_eq!(
        drain(&mut busy, at(0)),
        [vec![
            0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x02, b'h', b'i'
        ]]
    );
    let mut fresh = server(V3, None);
    fresh.publish_frame(&f, at(0)).unwrap();
    assert_eq!(drain(&mut fresh, at(0)), [PUB1.to_vec()]);
    // The frame itself is untouched.
    assert_eq!(f.as_bytes(), PUB1);
}

#[test]
fn a_frame_is_resent_with_dup_and_completes_its_qos2_flow() {
    let f = frame(QoS::ExactlyOnce, V3);
    let mut s = server(V3, None);
    let id = s.publish_frame(&f, at(0)).unwrap();
    assert_eq!(drain(&mut s, at(0)), [PUB2.to_vec()]);
    s.on_connection_lost(at(1));
    s.on_reconnect(at(2));
    assert_eq!(drain(&mut s, at(2)), [PUB2_DUP.to_vec()]);
    feed(&mut s, &PUBREC1, V3, at(3));
    assert_eq!(drain(&mut s, at(3)), [PUBREL1.to_vec()]);
    feed(&mut s, &PUBCOMP1, V3, at(4));
    assert!(matches!(
        events(&mut s)[..],
        [Event::Acknowledged { message, qos: QoS::ExactlyOnce, .. }] if message == id
    ));
}

#[test]
fn a_session_in_another_version_gets_the_frame_encoded_for_it() {
    // Encoded for 3.1.1, sent to a 5.0 connection: an empty property section is added.
    let mut s = server(V5, None);
    s.publish_frame(&frame(QoS::AtLeastOnce, V3), at(0))
        .unwrap();
    assert_eq!(
        drain(&mut s, at(0)),
        [vec![
            0x32, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, 0x00, b'h', b'i'
        ]]
    );
    // And the other way.
    let mut s = server(V3, None);
    s.publish_frame(&frame(QoS::AtMostOnce, V5), at(0)).unwrap();
    assert_eq!(
        drain(&mut s, at(0)),
        [vec![0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i']]
    );
}

#[test]
fn a_frame_above_the_peer_maximum_packet_size_is_dropped() {
    let mut s = server(V5, Some(8));
    let id = s.publish_frame(&frame(QoS::AtMostOnce, V5), at(0)).unwrap();
    assert!(drain(&mut s, at(0)).is_empty());
    assert_eq!(events(&mut s), [Event::TooLarge { message: id }]);
}

#[test]
fn only_a_message_without_properties_makes_a_frame() {
    let props = [Property::MessageExpiryInterval(5)];
    let publish = Publish {
        properties: Properties::from_slice(&props),
        ..Publish::new("a/b", b"hi")
    };
    assert!(Frame::new(&publish, V5).is_none());
    assert!(
        Frame::new(&Publish::new("a/+", b""), V3).is_none(),
        "not a topic name"
    );
    let retained = Frame::new(
        &Publish {
            retain: true,
            ..Publish::new("a/b", b"")
        },
        V3,
    )
    .unwrap();
    assert!(retained.retain());
    assert_eq!(retained.qos(), QoS::AtMostOnce);
}
