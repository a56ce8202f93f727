//! Incoming QoS 0, 1 and 2: delivery, acknowledgement, exactly once across replays, the
//! bound on unreleased identifiers; and client and server end to end with the connection cut
//! after every packet.

mod common;

use common::*;
use facteur_codec::{ProtocolVersion, QoS, ReasonCode};
use facteur_session::{AllocStore, Config, Connection, Event, HeaplessStore, Role, Session, Store};

fn hi(qos: QoS, dup: bool) -> Got {
    Got {
        topic: "a/b".into(),
        payload: b"hi".to_vec(),
        qos,
        dup,
    }
}

/// A QoS 2 PUBLISH with identifier `id` on topic "t", 3.1.1.
fn pub2(id: u16) -> Vec<u8> {
    let [hi, lo] = id.to_be_bytes();
    vec![0x34, 0x05, 0x00, 0x01, b't', hi, lo]
}

fn qos0_delivered_without_ack<S: Store>() {
    let mut s = session::<S>(Role::Server, V3);
    let got = feed(
        &mut s,
        &[0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'],
        V3,
        at(0),
    );
    assert_eq!(got, Some(hi(QoS::AtMostOnce, false)));
    assert!(drain(&mut s, at(0)).is_empty());
}

fn qos1_delivered_and_acknowledged<S: Store>() {
    let mut s = session::<S>(Role::Server, V3);
    assert_eq!(
        feed(&mut s, &PUB1, V3, at(0)),
        Some(hi(QoS::AtLeastOnce, false))
    );
    // The same PUBLISH again before our PUBACK went out: a resend, not delivered again.
    assert_eq!(feed(&mut s, &PUB1_DUP, V3, at(0)), None);
    assert_eq!(drain(&mut s, at(0)), [PUBACK1.to_vec()]);
    // After the PUBACK the identifier may carry a new message.
    assert_eq!(
        feed(&mut s, &PUB1, V3, at(1)),
        Some(hi(QoS::AtLeastOnce, false))
    );
    assert_eq!(drain(&mut s, at(1)), [PUBACK1.to_vec()]);
}

fn qos2_replayed_publish_is_acknowledged_not_delivered<S: Store>() {
    let mut s = session::<S>(Role::Server, V3);
    assert_eq!(
        feed(&mut s, &PUB2, V3, at(0)),
        Some(hi(QoS::ExactlyOnce, false))
    );
    assert_eq!(drain(&mut s, at(0)), [PUBREC1.to_vec()]);
    for now in 1..4 {
        assert_eq!(feed(&mut s, &PUB2_DUP, V3, at(now)), None, "replay {now}");
        assert_eq!(drain(&mut s, at(now)), [PUBREC1.to_vec()]);
    }
    // A replay while the first PUBREC is still queued queues no second one.
    feed(&mut s, &PUB2_DUP, V3, at(4));
    feed(&mut s, &PUB2_DUP, V3, at(4));
    assert_eq!(drain(&mut s, at(4)), [PUBREC1.to_vec()]);
    assert_eq!(s.received(), 1);
    assert_eq!(feed(&mut s, &PUBREL1, V3, at(5)), None);
    assert_eq!(drain(&mut s, at(5)), [PUBCOMP1.to_vec()]);
    assert_eq!(s.received(), 0);
    // Released: the identifier is free, the next PUBLISH with it is a new message.
    assert_eq!(
        feed(&mut s, &PUB2, V3, at(6)),
        Some(hi(QoS::ExactlyOnce, false))
    );
}

/// A PUBACK not written when the connection dropped is not sent on the next one: the peer
/// resends the PUBLISH (QoS 1 may deliver twice) and gets exactly one PUBACK, never a stale
/// one for an identifier it may have reused.
fn qos1_unwritten_puback_is_not_sent_after_reconnect<S: Store>() {
    let mut s = session::<S>(Role::Server, V3);
    assert!(feed(&mut s, &PUB1, V3, at(0)).is_some());
    s.on_connection_lost(at(1));
    s.on_reconnect(at(1));
    assert!(drain(&mut s, at(1)).is_empty());
    assert_eq!(
        feed(&mut s, &PUB1_DUP, V3, at(1)),
        Some(hi(QoS::AtLeastOnce, true))
    );
    assert_eq!(drain(&mut s, at(1)), [PUBACK1.to_vec()]);
}

/// PUBREL arriving before our PUBREC went out: the PUBREC is dropped, PUBCOMP sent.
fn qos2_pubrel_before_pubrec_sent<S: Store>() {
    let mut s = session::<S>(Role::Server, V3);
    assert!(feed(&mut s, &PUB2, V3, at(0)).is_some());
    feed(&mut s, &PUBREL1, V3, at(0));
    feed(&mut s, &PUBREL1, V3, at(0));
    assert_eq!(drain(&mut s, at(0)), [PUBCOMP1.to_vec()]);
}

fn qos2_pubrel_for_unknown_id<S: Store>() {
    let mut s = session::<S>(Role::Server, V3);
    feed(&mut s, &[0x62, 0x02, 0x00, 0x09], V3, at(0));
    assert_eq!(drain(&mut s, at(0)), [vec![0x70, 0x02, 0x00, 0x09]]);
    let mut s = session::<S>(Role::Server, V5);
    feed(&mut s, &[0x62, 0x02, 0x00, 0x09], V5, at(0));
    // 0x92 Packet Identifier not found, and why.
    let why = b"no QoS 2 message with this identifier";
    let mut pubcomp = vec![0x70, 4 + 3 + why.len() as u8, 0x00, 0x09, 0x92];
    pubcomp.extend_from_slice(&[3 + why.len() as u8, 0x1F, 0x00, why.len() as u8]);
    pubcomp.extend_from_slice(why);
    assert_eq!(drain(&mut s, at(0)), [pubcomp]);
    // Without the reason string when the client asked for none (Request Problem
    // Information 0).
    let mut connection = Connection::new(V5, 0);
    connection.peer_request_problem_information = false;
    let mut s = Session::<S>::new(Config::new(Role::Server));
    s.on_connect(at(0), connection);
    feed(&mut s, &[0x62, 0x02, 0x00, 0x09], V5, at(0));
    assert_eq!(drain(&mut s, at(0)), [vec![0x70, 0x03, 0x00, 0x09, 0x92]]);
}

/// The server side of a QoS 2 flow loses the connection at every step; the client's
/// replays never cause a second delivery.
fn qos2_inbound_reconnect_at_every_step<S: Store>() {
    for step in 0..4 {
        let mut s = session::<S>(Role::Server, V3);
        let mut delivered = Vec::new();
        let lose = |s: &mut Session<S>, now| {
            s.on_connection_lost(at(now));
            s.on_reconnect(at(now));
        };
        delivered.extend(feed(&mut s, &PUB2, V3, at(0)));
        if step == 0 {
            // PUBREC never written: the client resends the PUBLISH.
            lose(&mut s, 1);
            delivered.extend(feed(&mut s, &PUB2_DUP, V3, at(1)));
        }
        assert_eq!(drain(&mut s, at(1)), [PUBREC1.to_vec()]);
        if step == 1 {
            // PUBREC written but lost on the way: the client resends the PUBLISH.
            lose(&mut s, 2);
            delivered.extend(feed(&mut s, &PUB2_DUP, V3, at(2)));
            assert_eq!(drain(&mut s, at(2)), [PUBREC1.to_vec()]);
        }
        feed(&mut s, &PUBREL1, V3, at(3));
        if step == 2 {
            // PUBCOMP not written: the client resends PUBREL.
            lose(&mut s, 4);
            feed(&mut s, &PUBREL1, V3, at(4));
        }
        assert_eq!(drain(&mut s, at(4)), [PUBCOMP1.to_vec()]);
        if step == 3 {
            // PUBCOMP lost on the way: PUBREL again, PUBCOMP again.
            lose(&mut s, 5);
            feed(&mut s, &PUBREL1, V3, at(5));
            assert_eq!(drain(&mut s, at(5)), [PUBCOMP1.to_vec()]);
        }
        assert_eq!(delivered, [hi(QoS::ExactlyOnce, false)], "step {step}");
        assert_eq!(s.received(), 0);
    }
}

/// More unreleased QoS 2 identifiers than the store holds: refused, in MQTT 5 with
/// DISCONNECT 0x93, and the set does not grow (the class of CVE-2023-28366).
#[test]
fn qos2_identifier_set_is_bounded_v5() {
    let mut s = session::<HeaplessStore<2, 4, 64>>(Role::Server, V5);
    let v5 = |id: u16| {
        let [hi, lo] = id.to_be_bytes();
        vec![0x34, 0x06, 0x00, 0x01, b't', hi, lo, 0x00]
    };
    assert!(feed(&mut s, &v5(1), V5, at(0)).is_some());
    assert!(feed(&mut s, &v5(2), V5, at(0)).is_some());
    assert_eq!(feed(&mut s, &v5(3), V5, at(0)), None);
    assert_eq!(s.received(), 2);
    assert_eq!(
        events(&mut s),
        [Event::ProtocolError {
            reason: ReasonCode::ReceiveMaximumExceeded
        }]
    );
    assert!(!s.is_connected());
    // Only the DISCONNECT goes out now; the queued PUBRECs wait for the next connection.
    assert_eq!(
        drain(&mut s, at(0)),
        [disconnect_why(
            0x93,
            "more QoS 1/2 messages unacknowledged than the Receive Maximum"
        )]
    );
    assert_eq!(
        feed(&mut s, &v5(4), V5, at(0)),
        None,
        "nothing taken while closing"
    );
    assert_eq!(s.received(), 2);
}

/// In 3.1.1 the excess is refused too, with no DISCONNECT (the caller closes).
#[test]
fn qos2_identifier_set_is_bounded_v3() {
    let mut s = session::<HeaplessStore<2, 4, 64>>(Role::Server, V3);
    for id in 1..=2 {
        assert!(feed(&mut s, &pub2(id), V3, at(0)).is_some());
    }
    assert_eq!(feed(&mut s, &pub2(3), V3, at(0)), None);
    assert_eq!(
        events(&mut s),
        [Event::ProtocolError {
            reason: ReasonCode::ReceiveMaximumExceeded
        }]
    );
    assert!(drain(&mut s, at(0)).is_empty());
    // The peer resends on the next connection: the known ones are acknowledged, not
    // delivered again.
    s.on_connection_lost(at(1));
    s.on_reconnect(at(1));
    assert!(drain(&mut s, at(1)).is_empty());
    assert_eq!(feed(&mut s, &pub2(1), V3, at(1)), None);
    assert_eq!(feed(&mut s, &pub2(2), V3, at(1)), None);
    assert_eq!(kinds(&drain(&mut s, at(1)), V3), ["PUBREC #1", "PUBREC #2"]);
}

/// Our Receive Maximum counts QoS 1 messages whose PUBACK is not written yet and QoS 2
/// messages until PUBCOMP is written.
#[test]
fn receive_maximum_counts_every_unacknowledged_message() {
    let mut config = Config::new(Role::Server);
    config.receive_maximum = 2;
    let mut s = Session::<AllocStore>::new(config);
    s.on_connect(at(0), Connection::new(V5, 0));
    let p1 = |id: u8| vec![0x32, 0x06, 0x00, 0x01, b't', 0x00, id, 0x00];
    let p2 = |id: u8| vec![0x34, 0x06, 0x00, 0x01, b't', 0x00, id, 0x00];
    assert!(feed(&mut s, &p1(1), V5, at(0)).is_some());
    assert!(feed(&mut s, &p2(2), V5, at(0)).is_some());
    // Released but PUBCOMP not written: still counts.
    feed(&mut s, &[0x62, 0x02, 0x00, 0x02], V5, at(0));
    assert_eq!(
        kinds(&drain(&mut s, at(0)), V5),
        ["PUBACK #1", "PUBCOMP #2"]
    );
    assert!(feed(&mut s, &p1(3), V5, at(1)).is_some());
    assert!(feed(&mut s, &p2(4), V5, at(1)).is_some());
    assert!(events(&mut s).is_empty());
    assert_eq!(feed(&mut s, &p1(5), V5, at(1)), None);
    assert_eq!(
        events(&mut s),
        [Event::ProtocolError {
            reason: ReasonCode::ReceiveMaximumExceeded
        }]
    );
}

/// Runs a client and a server against each other, delivering at most `budget` frames (all
/// if `None`); returns the server's deliveries, and whether the budget ran out.
fn pump<S: Store>(
    client: &mut Session<S>,
    server: &mut Session<S>,
    version: ProtocolVersion,
    budget: &mut Option<usize>,
    got: &mut Vec<Got>,
) -> bool {
    loop {
        let mut moved = false;
        for (from_client, frames) in [(true, drain(client, at(0))), (false, drain(server, at(0)))] {
            for f in frames {
                if let Some(b) = budget {
                    if *b == 0 {
                        return true; // cut: this frame and the rest are lost
                    }
                    *b -= 1;
                }
                moved = true;
                if from_client {
                    got.extend(feed(server, &f, version, at(0)));
                } else {
                    assert!(feed(client, &f, version, at(0)).is_none());
                }
            }
        }
        if !moved {
            return false;
        }
    }
}

/// Client publishes one message at `qos`; the link is cut after `cut` frames, both sides
/// reconnect, and it runs to the end. Returns deliveries and the client's acknowledgements.
fn cut_after<S: Store>(qos: QoS, cut: usize, version: ProtocolVersion) -> (Vec<Got>, usize, bool) {
    let mut client = session::<S>(Role::Client, version);
    let mut server = session::<S>(Role::Server, version);
    client.publish(&message("a/b", b"hi", qos), at(0)).unwrap();
    let mut got = Vec::new();
    let cut_happened = pump(&mut client, &mut server, version, &mut Some(cut), &mut got);
    client.on_connection_lost(at(1));
    server.on_connection_lost(at(1));
    client.on_reconnect(at(1));
    server.on_reconnect(at(1));
    assert!(!pump(
        &mut client,
        &mut server,
        version,
        &mut None,
        &mut got
    ));
    let acks = events(&mut client)
        .into_iter()
        .filter(|e| matches!(e, Event::Acknowledged { .. }))
        .count();
    assert_eq!(client.inflight(), 0);
    assert_eq!(server.received(), 0);
    (got, acks, cut_happened)
}

fn end_to_end_cut_after_every_frame<S: Store>() {
    for version in [V3, V5] {
        for cut in 0..6 {
            let (got, acks, cut2) = cut_after::<S>(QoS::ExactlyOnce, cut, version);
            assert_eq!(got.len(), 1, "QoS 2 exactly once, cut after {cut}");
            assert_eq!(acks, 1);
            let (got, acks, cut1) = cut_after::<S>(QoS::AtLeastOnce, cut, version);
            assert!(!got.is_empty(), "QoS 1 at least once, cut after {cut}");
            assert!(got.iter().all(|g| g.payload == b"hi"));
            assert_eq!(acks, 1);
            if cut >= 4 {
                assert!(!cut2 && !cut1, "the flows are 4 and 2 frames long");
            }
        }
    }
}

macro_rules! for_both_stores {
    ($($name:ident),* $(,)?) => {
        mod heapless_store {
            $( #[test] fn $name() { super::$name::<super::Fixed>() } )*
        }
        mod alloc_store {
            $( #[test] fn $name() { super::$name::<super::AllocStore>() } )*
        }
    };
}

for_both_stores!(
    qos0_delivered_without_ack,
    qos1_delivered_and_acknowledged,
    qos1_unwritten_puback_is_not_sent_after_reconnect,
    qos2_replayed_publish_is_acknowledged_not_delivered,
    qos2_pubrel_before_pubrec_sent,
    qos2_pubrel_for_unknown_id,
    qos2_inbound_reconnect_at_every_step,
    end_to_end_cut_after_every_frame,
);
