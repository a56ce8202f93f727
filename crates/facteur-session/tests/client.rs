//! What a client needs of its session beyond the QoS flows: packet identifiers for its
//! SUBSCRIBE/UNSUBSCRIBE shared with its PUBLISH packets, the packets a server may not send,
//! keep alive when it only publishes QoS 0, and ending a connection for its own reasons.

mod common;

use common::*;
use facteur_codec::{Encode, Packet, QoS, ReasonCode, SubAck, UnsubAck};
use facteur_session::{Config, Connection, Event, Instant, Role, Session, Store};

fn client<S: Store>(version: facteur_codec::ProtocolVersion, keep_alive: u16) -> Session<S> {
    let mut c = Session::new(Config::new(Role::Client));
    c.on_connect(at(0), Connection::new(version, keep_alive));
    c
}

fn frame(packet: Packet<'_>, version: facteur_codec::ProtocolVersion) -> Vec<u8> {
    let mut out = vec![0u8; packet.encoded_len(version).unwrap()];
    packet.encode(version, &mut out).unwrap();
    out
}

fn reserved_ids_are_never_given_to_a_publish<S: Store>() {
    let mut c = client::<S>(V3, 0);
    let sub = c.reserve_packet_id().unwrap();
    assert_eq!(sub, 1);
    c.publish(&message("t", b"x", QoS::AtLeastOnce), at(0))
        .unwrap();
    assert_eq!(kinds(&drain(&mut c, at(0)), V3), ["PUBLISH1 #2"]);
    // In flight: 2 is not reserved for a SUBSCRIBE either.
    assert_eq!(c.reserve_packet_id(), Some(3));
    // The SUBACK releases 1; the UNSUBACK 3.
    feed(
        &mut c,
        &frame(
            Packet::SubAck(SubAck::new(1, &[ReasonCode::GrantedQoS1])),
            V3,
        ),
        V3,
        at(1),
    );
    feed(
        &mut c,
        &frame(Packet::UnsubAck(UnsubAck::new(3, &[])), V3),
        V3,
        at(1),
    );
    assert!(c.is_connected());
    assert!(
        !c.release_packet_id(1) && !c.release_packet_id(3),
        "released by the acks"
    );
    assert!(events(&mut c).is_empty());
}

fn reserved_ids_survive_a_lost_connection<S: Store>() {
    let mut c = client::<S>(V5, 0);
    let id = c.reserve_packet_id().unwrap();
    c.on_connection_lost(at(1));
    c.on_reconnect(at(2));
    c.publish(&message("t", b"x", QoS::ExactlyOnce), at(2))
        .unwrap();
    assert_eq!(
        kinds(&drain(&mut c, at(2)), V5),
        [format!("PUBLISH2 #{}", id + 1)]
    );
    assert!(c.release_packet_id(id));
}

fn packets_a_server_may_not_send_end_the_connection<S: Store>() {
    for (bytes, why) in [
        (
            frame(
                Packet::ConnAck(facteur_codec::ConnAck::new(ReasonCode::Success)),
                V5,
            ),
            "a second CONNACK",
        ),
        (frame(Packet::PingReq, V5), "PINGREQ sent to a client"),
        (
            frame(
                Packet::Subscribe(facteur_codec::Subscribe::new(
                    1,
                    &[facteur_codec::Subscription::new("a", QoS::AtMostOnce)],
                )),
                V5,
            ),
            "SUBSCRIBE or UNSUBSCRIBE sent to a client",
        ),
        (
            frame(Packet::SubAck(SubAck::new(9, &[ReasonCode::Success])), V5),
            "SUBACK or UNSUBACK for no request",
        ),
    ] {
        let mut c = client::<S>(V5, 0);
        assert!(feed(&mut c, &bytes, V5, at(0)).is_none());
        assert!(!c.is_connected(), "{why}");
        assert_eq!(
            events(&mut c),
            [Event::ProtocolError {
                reason: ReasonCode::ProtocolError
            }]
        );
        assert_eq!(drain(&mut c, at(0)), [disconnect_why(0x82, why)]);
    }
    // A server receiving PINGREQ still answers it.
    let mut s = Session::<S>::new(Config::new(Role::Server));
    s.on_connect(at(0), Connection::new(V5, 0));
    feed(&mut s, &[0xC0, 0x00], V5, at(0));
    assert_eq!(drain(&mut s, at(0)), [vec![0xD0, 0x00]]);
}

/// A client that publishes QoS 0 all the time hears nothing back: it pings before the 1.5
/// keep alive deadline all the same, once, and a PINGRESP keeps it connected.
fn a_client_that_only_sends_still_pings<S: Store>() {
    let mut c = client::<S>(V3, 10);
    let mut now = 0;
    let mut pings = 0;
    while now < 40_000 {
        now += 1_000;
        c.publish(&message("t", b"x", QoS::AtMostOnce), at(now))
            .unwrap();
        c.handle_timeout(at(now));
        for f in drain(&mut c, at(now)) {
            if f == [0xC0, 0x00] {
                pings += 1;
                // The server answers 100 ms later.
                c.handle_timeout(at(now + 100));
                feed(&mut c, &[0xD0, 0x00], V3, at(now + 100));
            }
        }
        assert!(c.is_connected(), "at {now} ms");
    }
    assert!(events(&mut c).is_empty());
    // One ping per 12.5 s of silence from the server: at 13 s, 26 s, 39 s.
    assert_eq!(pings, 3);
    // Unanswered, the ping is not repeated, and the link is dead at 1.5 keep alive.
    let mut c = client::<S>(V3, 10);
    let mut pings = 0;
    for now in (1_000..=15_000).step_by(1_000) {
        c.publish(&message("t", b"x", QoS::AtMostOnce), at(now))
            .unwrap();
        c.handle_timeout(at(now));
        pings += drain(&mut c, at(now))
            .iter()
            .filter(|f| **f == [0xC0, 0x00])
            .count();
    }
    assert_eq!(pings, 1);
    assert_eq!(events(&mut c), [Event::KeepAliveTimeout]);
    assert!(!c.is_connected());
}

fn abort_says_why_in_v5_only<S: Store>() {
    let mut c = client::<S>(V5, 0);
    c.abort(
        ReasonCode::PacketTooLarge,
        "larger than our Maximum Packet Size",
    );
    assert!(!c.is_connected());
    assert_eq!(
        drain(&mut c, at(0)),
        [disconnect_why(0x95, "larger than our Maximum Packet Size")]
    );
    // 3.x: a client's DISCONNECT would delete its will; nothing is sent.
    let mut c = client::<S>(V3, 0);
    c.abort(ReasonCode::MalformedPacket, "bad");
    assert!(!c.is_connected());
    assert!(drain(&mut c, at(0)).is_empty());
    assert_eq!(c.poll_timeout(), None::<Instant>);
}

/// Manual acknowledgement: PUBACK/PUBREC only when the application says, in any order;
/// deferred ones count against the Receive Maximum; a deferred QoS 1 ack ends with its
/// connection, a deferred QoS 2 one does not (and the resend is not delivered again).
fn deferred_acknowledgements<S: Store>() {
    let mut config = Config::new(Role::Client);
    config.receive_maximum = 2;
    let mut c = Session::<S>::new(config);
    c.on_connect(at(0), Connection::new(V5, 0));
    let qos1 = |id: u8| vec![0x32, 0x07, 0x00, 0x01, b't', 0x00, id, 0x00, b'x'];
    let qos2 = |id: u8| vec![0x34, 0x07, 0x00, 0x01, b't', 0x00, id, 0x00, b'x'];
    assert!(feed(&mut c, &qos1(1), V5, at(0)).is_some());
    let a = c.defer().unwrap();
    assert!(c.defer().is_none(), "nothing left to defer");
    assert!(feed(&mut c, &qos2(2), V5, at(0)).is_some());
    let b = c.defer().unwrap();
    assert!(drain(&mut c, at(0)).is_empty());
    // A third one is over the Receive Maximum of 2.
    assert!(feed(&mut c, &qos1(3), V5, at(0)).is_none());
    assert_eq!(
        events(&mut c),
        [Event::ProtocolError {
            reason: ReasonCode::ReceiveMaximumExceeded
        }]
    );

    let mut c = Session::<S>::new(config);
    c.on_connect(at(0), Connection::new(V5, 0));
    feed(&mut c, &qos1(1), V5, at(0)).unwrap();
    let a2 = c.defer().unwrap();
    feed(&mut c, &qos2(2), V5, at(0)).unwrap();
    let b2 = c.defer().unwrap();
    c.acknowledge(b2, facteur_session::Verdict::Accept);
    c.acknowledge(b2, facteur_session::Verdict::Accept);
    assert_eq!(kinds(&drain(&mut c, at(0)), V5), ["PUBREC #2"], "once");
    c.acknowledge(
        a2,
        facteur_session::Verdict::Reject(ReasonCode::QuotaExceeded),
    );
    assert_eq!(drain(&mut c, at(0)), [vec![0x40, 0x03, 0x00, 0x01, 0x97]]);
    let _ = (a, b);

    // Across a lost connection.
    let mut c = Session::<S>::new(config);
    c.on_connect(at(0), Connection::new(V5, 0));
    feed(&mut c, &qos1(1), V5, at(0)).unwrap();
    let a = c.defer().unwrap();
    feed(&mut c, &qos2(2), V5, at(0)).unwrap();
    let b = c.defer().unwrap();
    c.on_connection_lost(at(1));
    c.on_reconnect(at(2));
    // The resends: QoS 1 delivered again, QoS 2 not, and no PUBREC before the application's.
    let dup = |mut f: Vec<u8>| {
        f[0] |= 0x08;
        f
    };
    assert!(feed(&mut c, &dup(qos1(1)), V5, at(2)).is_some());
    let a_again = c.defer().unwrap();
    assert!(feed(&mut c, &dup(qos2(2)), V5, at(2)).is_none());
    assert!(drain(&mut c, at(2)).is_empty());
    c.acknowledge(a, facteur_session::Verdict::Accept);
    assert!(
        drain(&mut c, at(2)).is_empty(),
        "a stale token of the last connection"
    );
    c.acknowledge(b, facteur_session::Verdict::Accept);
    c.acknowledge(a_again, facteur_session::Verdict::Accept);
    assert_eq!(kinds(&drain(&mut c, at(2)), V5), ["PUBREC #2", "PUBACK #1"]);
}

fn limit_inflight_bounds_a_v3_window<S: Store>() {
    let mut c = client::<S>(V3, 0);
    c.limit_inflight(2);
    for _ in 0..3 {
        c.publish(&message("t", b"x", QoS::AtLeastOnce), at(0))
            .unwrap();
    }
    assert_eq!(
        kinds(&drain(&mut c, at(0)), V3),
        ["PUBLISH1 #1", "PUBLISH1 #2"]
    );
    feed(&mut c, &PUBACK1, V3, at(0));
    assert_eq!(kinds(&drain(&mut c, at(0)), V3), ["PUBLISH1 #3"]);
}

macro_rules! for_both_stores {
    ($($name:ident),* $(,)?) => {
        mod heapless_store {
            $( #[test] fn $name() { super::$name::<super::Fixed>() } )*
        }
        mod alloc_store {
            $( #[test] fn $name() { super::$name::<facteur_session::AllocStore>() } )*
        }
    };
}

for_both_stores!(
    reserved_ids_are_never_given_to_a_publish,
    reserved_ids_survive_a_lost_connection,
    packets_a_server_may_not_send_end_the_connection,
    a_client_that_only_sends_still_pings,
    abort_says_why_in_v5_only,
    deferred_acknowledgements,
    limit_inflight_bounds_a_v3_window,
);
