//! PUBLISH frames encoded once for many sessions: what each session sends, byte for byte.

mod common;

use common::*;
use facteur_codec::{decode, Packet, Properties, Property, ProtocolVersion, Publish, QoS, Status};
use facteur_session::{AllocStore, Config, Connection, Event, Frame, FrameOut, Role, Session};
use proptest::prelude::*;

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
fn a_server_that_follows_no_delivery_gets_no_acknowledged_event() {
    let mut config = Config::new(Role::Server);
    config.report_acknowledgements = false;
    let mut s = Session::<AllocStore>::new(config);
    s.on_connect(at(0), Connection::new(V3, 0));
    s.publish_frame(&frame(QoS::AtLeastOnce, V3), at(0))
        .unwrap();
    assert_eq!(drain(&mut s, at(0)), [PUB1.to_vec()]);
    assert_eq!(s.inflight(), 1);
    feed(&mut s, &PUBACK1, V3, at(1));
    // Done all the same: its identifier is free, nothing is reported.
    assert_eq!(s.inflight(), 0);
    assert!(events(&mut s).is_empty());
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

#[test]
fn a_frame_published_now_is_written_at_once_and_not_kept_at_qos0() {
    let mut s = server(V3, None);
    let mut buf = [0u8; 64];
    let out = s
        .publish_frame_now(&frame(QoS::AtMostOnce, V3), at(0), &mut buf)
        .unwrap();
    let FrameOut::Written { len, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        &buf[..len],
        [0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i']
    );
    assert_eq!((s.queued(), s.inflight()), (0, 0));
    assert!(drain(&mut s, at(0)).is_empty());
}

#[test]
fn a_qos1_frame_published_now_is_in_flight_until_acknowledged() {
    let mut connection = Connection::new(V5, 0);
    connection.peer_receive_maximum = 1;
    let mut s = Session::<AllocStore>::new(Config::new(Role::Server));
    s.on_connect(at(0), connection);
    let f = frame(QoS::AtLeastOnce, V5);
    let mut buf = [0u8; 64];
    let FrameOut::Written { id: first, len } = s.publish_frame_now(&f, at(0), &mut buf).unwrap()
    else {
        panic!("written at once")
    };
    assert_eq!(
        &buf[..len],
        [0x32, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, 0x00, b'h', b'i']
    );
    assert_eq!(s.inflight(), 1);
    // The Receive Maximum (1) is used: the next one waits in the queue.
    let FrameOut::Queued(second) = s.publish_frame_now(&f, at(0), &mut buf).unwrap() else {
        panic!("queued behind the quota")
    };
    assert!(drain(&mut s, at(0)).is_empty());
    feed(&mut s, &[0x40, 0x02, 0x00, 0x01], V5, at(1));
    assert_eq!(kinds(&drain(&mut s, at(1)), V5), ["PUBLISH1 #2"]);
    assert!(matches!(
        events(&mut s)[..],
        [Event::Acknowledged { message, .. }] if message == first
    ));
    assert_ne!(first, second);
}

#[test]
fn a_frame_published_now_waits_behind_queued_messages_and_when_it_cannot_go_as_is() {
    let mut buf = [0u8; 64];
    // Something queued before it: it goes after.
    let mut s = server(V3, None);
    s.on_connection_lost(at(0));
    s.publish(&message("x", b"", QoS::AtLeastOnce), at(0))
        .unwrap();
    s.on_reconnect(at(1));
    let out = s
        .publish_frame_now(&frame(QoS::AtMostOnce, V3), at(1), &mut buf)
        .unwrap();
    assert!(matches!(out, FrameOut::Queued(_)), "{out:?}");
    assert_eq!(
        kinds(&drain(&mut s, at(1)), V3),
        ["PUBLISH1 #1", "PUBLISH0"]
    );
    // A buffer too small, a connection in another version, a packet above the peer's
    // Maximum Packet Size (dropped when its turn comes, as a queued frame is).
    for (mut s, len) in [
        (server(V3, None), 4),
        (server(V5, None), 64),
        (server(V5, Some(8)), 64),
    ] {
        let out = s
            .publish_frame_now(&frame(QoS::AtMostOnce, V3), at(0), &mut buf[..len])
            .unwrap();
        assert!(matches!(out, FrameOut::Queued(_)), "{out:?}");
        assert_eq!(s.queued(), 1);
    }
    // Disconnected: queued, or refused when QoS 0 messages are not kept offline.
    for keep in [true, false] {
        let mut config = Config::new(Role::Server);
        config.queue.qos0_offline = keep;
        let mut s = Session::<AllocStore>::new(config);
        s.on_connect(at(0), Connection::new(V3, 0));
        s.on_connection_lost(at(0));
        let out = s.publish_frame_now(&frame(QoS::AtMostOnce, V3), at(0), &mut buf);
        if keep {
            assert!(matches!(out, Ok(FrameOut::Queued(_))), "{out:?}");
        } else {
            assert_eq!(out, Err(facteur_session::PublishError::Offline));
        }
    }
}

/// What one step does to a server session.
#[derive(Debug, Clone)]
enum Step {
    /// A frame at this QoS, encoded for 5.0 (else 3.1.1).
    Publish(QoS, bool),
    /// The client acknowledges the oldest message it has not acknowledged.
    Acknowledge,
    /// The connection is lost and the client comes back.
    Reconnect,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let qos = prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ];
    let step = prop_oneof![
        4 => (qos, any::<bool>()).prop_map(|(q, v5)| Step::Publish(q, v5)),
        2 => Just(Step::Acknowledge),
        1 => Just(Step::Reconnect),
    ];
    proptest::collection::vec(step, 0..40)
}

/// A server session, the bytes it sent and the identifiers the client has yet to
/// acknowledge (with their QoS).
struct Side {
    session: Session<AllocStore>,
    sent: Vec<Vec<u8>>,
    unacknowledged: Vec<(u16, QoS)>,
    now: bool,
}

impl Side {
    fn new(version: ProtocolVersion, receive_maximum: u16, now: bool) -> Self {
        let mut connection = Connection::new(version, 0);
        connection.peer_receive_maximum = receive_maximum;
        let mut session = Session::new(Config::new(Role::Server));
        session.on_connect(at(0), connection);
        Self {
            session,
            sent: Vec::new(),
            unacknowledged: Vec::new(),
            now,
        }
    }

    fn step(&mut self, step: &Step, version: ProtocolVersion, t: u64) {
        let s = &mut self.session;
        match step {
            Step::Publish(qos, v5) => {
                let f = frame(*qos, if *v5 { V5 } else { V3 });
                if self.now {
                    let mut buf = [0u8; 64];
                    if let Ok(FrameOut::Written { len, .. }) =
                        s.publish_frame_now(&f, at(t), &mut buf)
                    {
                        self.sent.push(buf[..len].to_vec());
                    }
                } else {
                    let _ = s.publish_frame(&f, at(t));
                }
            }
            Step::Acknowledge => {
                if !self.unacknowledged.is_empty() {
                    let (id, qos) = self.unacknowledged.remove(0);
                    let [hi, lo] = id.to_be_bytes();
                    if qos == QoS::AtLeastOnce {
                        feed(s, &[0x40, 0x02, hi, lo], version, at(t));
                    } else {
                        feed(s, &[0x50, 0x02, hi, lo], version, at(t));
                        self.sent.extend(drain(s, at(t)));
                        feed(s, &[0x70, 0x02, hi, lo], version, at(t));
                    }
                }
            }
            Step::Reconnect => {
                s.on_connection_lost(at(t));
                s.on_reconnect(at(t));
                // Whatever was not acknowledged is sent again (or released again).
                self.unacknowledged.clear();
            }
        }
        let sent = drain(s, at(t));
        self.sent.extend(sent);
    }
}

proptest! {
    /// publish_frame_now is publish_frame followed by poll_transmit: the same bytes, the
    /// same events, the same state, whatever came before (quota used, resends waiting,
    /// other versions).
    #[test]
    fn publishing_a_frame_now_is_publishing_it_then_transmitting(
        steps in steps(),
        v5 in any::<bool>(),
        receive_maximum in 1u16..4,
    ) {
        let version = if v5 { V5 } else { V3 };
        let mut queued = Side::new(version, receive_maximum, false);
        let mut now = Side::new(version, receive_maximum, true);
        for (t, step) in steps.iter().enumerate() {
            let before = queued.sent.len();
            queued.step(step, version, t as u64);
            now.step(step, version, t as u64);
            prop_assert_eq!(&queued.sent, &now.sent);
            prop_assert_eq!(events(&mut queued.session), events(&mut now.session));
            prop_assert_eq!(queued.session.queued(), now.session.queued());
            prop_assert_eq!(queued.session.inflight(), now.session.inflight());
            // What the client has to acknowledge: the QoS 1/2 PUBLISHes sent (resends
            // after a reconnect included).
            for packet in &queued.sent[before..] {
                let Status::Complete(d) = decode(packet, version, 1 << 20).unwrap() else {
                    unreachable!()
                };
                if let Packet::Publish(p) = d.packet {
                    if let Some(id) = p.packet_id {
                        let pending = (id, p.qos);
                        queued.unacknowledged.push(pending);
                        now.unacknowledged.push(pending);
                    }
                }
            }
        }
    }
}
