//! CONNECT negotiation, takeover and the inbound PUBLISH verdict, at byte level.

mod common;

use common::*;
use facteur_codec::{
    ConnAck, Connect, Encode, Packet, Properties, Property, ProtocolVersion, QoS, ReasonCode, Will,
};
use facteur_session::{AllocStore, Config, Event, Role, ServerPolicy, Session, TakeOver, Verdict};

fn server() -> Session<AllocStore> {
    Session::new(Config {
        receive_maximum: 20,
        topic_alias_maximum: 10,
        ..Config::new(Role::Server)
    })
}

fn connack_bytes(
    session: &Session<AllocStore>,
    connect: &Connect<'_>,
    policy: &ServerPolicy,
) -> Vec<u8> {
    let mut session = Session::<AllocStore>::new(*session.config());
    let accepted = session.accept_connect(at(0), connect, policy).unwrap();
    let props =
        accepted.connack_properties(Some("assigned-1").filter(|_| connect.client_id.is_empty()));
    let packet = Packet::ConnAck(accepted.connack(&props));
    let mut out = vec![0u8; packet.encoded_len(connect.protocol).unwrap()];
    packet.encode(connect.protocol, &mut out).unwrap();
    out
}

#[test]
fn connack_bytes_carry_what_was_negotiated() {
    let s = server();
    let policy = ServerPolicy::new();
    // 3.1.1: no properties.
    assert_eq!(
        connack_bytes(&s, &Connect::new(V3, "a"), &policy),
        [0x20, 0x02, 0x00, 0x00]
    );
    // 5.0: Receive Maximum 20, Topic Alias Maximum 10.
    assert_eq!(
        connack_bytes(&s, &Connect::new(V5, "a"), &policy),
        [0x20, 0x09, 0x00, 0x00, 0x06, 0x21, 0x00, 0x14, 0x22, 0x00, 0x0A]
    );
    // Keep alive capped, Maximum Packet Size, no retained messages, an assigned identifier.
    let mut policy = ServerPolicy::new();
    policy.max_keep_alive = 30;
    policy.maximum_packet_size = 1024;
    policy.retain_available = false;
    let connect = Connect {
        keep_alive: 0,
        ..Connect::new(V5, "")
    };
    let mut expected = vec![0x20, 0x20, 0x00, 0x00, 0x1D];
    expected.extend([0x21, 0x00, 0x14, 0x22, 0x00, 0x0A, 0x25, 0x00]);
    expected.extend([0x27, 0x00, 0x00, 0x04, 0x00, 0x13, 0x00, 0x1E]);
    expected.extend([0x12, 0x00, 0x0A]);
    expected.extend(b"assigned-1");
    assert_eq!(connack_bytes(&s, &connect, &policy), expected);
}

#[test]
fn negotiation_sets_the_connection_and_the_session_expiry() {
    let mut s = server();
    let mut policy = ServerPolicy::new();
    policy.max_inflight = 10;
    policy.never_expires_cap = Some(3600);
    let props = [
        Property::ReceiveMaximum(50),
        Property::TopicAliasMaximum(3),
        Property::MaximumPacketSize(500),
        Property::RequestProblemInformation(false),
        Property::SessionExpiryInterval(u32::MAX),
    ];
    let connect = Connect {
        properties: Properties::from_slice(&props),
        ..Connect::new(V5, "a")
    };
    let accepted = s.accept_connect(at(0), &connect, &policy).unwrap();
    assert!(!accepted.session_present);
    assert_eq!(accepted.session_expiry, 3600);
    let c = s.connection();
    assert_eq!(
        c.peer_receive_maximum, 10,
        "the broker's own bound is lower"
    );
    assert_eq!(c.peer_topic_alias_maximum, 3);
    assert_eq!(c.peer_maximum_packet_size, 500);
    assert!(!c.peer_request_problem_information);
    assert_eq!(s.session_expiry(), Some(3600));

    // 3.1.1 persistent: forever (capped); clean: 0.
    let mut s = server();
    let persistent = Connect {
        clean_start: false,
        ..Connect::new(V3, "b")
    };
    assert_eq!(
        s.accept_connect(at(0), &persistent, &policy)
            .unwrap()
            .session_expiry,
        3600
    );
    let mut s = server();
    assert_eq!(
        s.accept_connect(at(0), &Connect::new(V3, "b"), &ServerPolicy::new())
            .unwrap()
            .session_expiry,
        0
    );
}

#[test]
fn a_will_that_cannot_be_kept_refuses_and_leaves_the_session_alone() {
    let mut s = server();
    let policy = ServerPolicy::new();
    let persistent = Connect {
        clean_start: false,
        ..Connect::new(V3, "w")
    };
    s.accept_connect(at(0), &persistent, &policy).unwrap();
    s.publish(&message("x", b"1", QoS::AtLeastOnce), at(0))
        .unwrap();
    s.on_connection_lost(at(1));
    let bad = Connect {
        will: Some(Will {
            topic: "a/+",
            payload: b"",
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties::EMPTY,
        }),
        ..persistent
    };
    let refused = s.accept_connect(at(2), &bad, &policy).unwrap_err();
    assert_eq!(refused.reason, ReasonCode::PayloadFormatInvalid);
    assert!(!s.is_connected());
    assert_eq!(s.queued(), 1, "the queued message is still there");
    let accepted = s.accept_connect(at(3), &persistent, &policy).unwrap();
    assert!(accepted.session_present);
}

fn will_connect(id: &str, clean_start: bool, expiry: u32, delay: Option<u32>) -> Connect<'_> {
    let props: &'static [Property<'static>] = match delay {
        Some(d) => Box::leak(Box::new([Property::WillDelayInterval(d)])),
        None => &[],
    };
    let expiry: &'static [Property<'static>] =
        Box::leak(Box::new([Property::SessionExpiryInterval(expiry)]));
    Connect {
        clean_start,
        will: Some(Will {
            topic: "will/t",
            payload: b"gone",
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties::from_slice(props),
        }),
        properties: Properties::from_slice(expiry),
        ..Connect::new(V5, id)
    }
}

/// The takeover matrix: {old expiry 0, > 0} × {new clean start 0, 1} × {no will, will, will
/// with delay}: whether the old will is due, whether the session carries on.
#[test]
fn takeover_matrix() {
    let policy = ServerPolicy::new();
    for old_expiry in [0, 60] {
        for clean_start in [false, true] {
            for will in [None, Some(0), Some(30)] {
                let mut s = server();
                let mut first = will_connect("m", true, old_expiry, will);
                if will.is_none() {
                    first.will = None;
                }
                s.accept_connect(at(0), &first, &policy).unwrap();
                s.publish(&message("q", b"1", QoS::AtLeastOnce), at(0))
                    .unwrap();
                let sent = drain(&mut s, at(0));
                assert_eq!(kinds(&sent, V5), ["PUBLISH1 #1"]);

                let outcome = s.take_over(at(10), clean_start);
                let ends = old_expiry == 0 || clean_start;
                let case =
                    format!("old expiry {old_expiry}, clean start {clean_start}, will {will:?}");
                assert_eq!(
                    outcome,
                    if ends {
                        TakeOver::Ended
                    } else {
                        TakeOver::Resumed
                    },
                    "{case}"
                );
                let will_due = will.is_some() && (ends || will == Some(0));
                let evs = events(&mut s);
                assert_eq!(evs.contains(&Event::WillDue), will_due, "{case}: {evs:?}");
                assert!(!evs.contains(&Event::SessionExpired), "{case}: {evs:?}");
                if will_due {
                    assert_eq!(s.will().unwrap().payload, b"gone", "{case}");
                    s.clear_will();
                }

                let second = Connect {
                    clean_start,
                    keep_alive: 0,
                    ..Connect::new(V5, "m")
                };
                let accepted = s.accept_connect(at(20), &second, &policy).unwrap();
                assert_eq!(accepted.session_present, !ends, "{case}");
                let resent = kinds(&drain(&mut s, at(20)), V5);
                if ends {
                    assert!(resent.is_empty(), "{case}: {resent:?}");
                } else {
                    assert_eq!(resent, ["PUBLISH1 dup #1"], "{case}");
                }
                // Nothing of the old connection acts later: no will, no expiry.
                s.handle_timeout(at(1_000_000));
                assert_eq!(events(&mut s), [], "{case}");
                assert!(s.is_connected(), "{case}");
            }
        }
    }
}

#[test]
fn a_rejected_publish_is_told_in_5_0_and_acknowledged_in_3_1_1() {
    // 5.0 QoS 1: PUBACK 0x97; QoS 2: PUBREC 0x87, and the identifier is free again.
    let mut s = session::<Fixed>(Role::Server, V5);
    let pub1 = [
        0x32, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, 0x00, b'h', b'i',
    ];
    assert!(feed(&mut s, &pub1, V5, at(1)).is_some());
    s.decide(Verdict::Reject(ReasonCode::QuotaExceeded));
    assert_eq!(drain(&mut s, at(1)), [vec![0x40, 0x03, 0x00, 0x01, 0x97]]);
    let pub2 = [
        0x34, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x02, 0x00, b'h', b'i',
    ];
    assert!(feed(&mut s, &pub2, V5, at(2)).is_some());
    s.decide(Verdict::Reject(ReasonCode::NotAuthorized));
    assert_eq!(drain(&mut s, at(2)), [vec![0x50, 0x03, 0x00, 0x02, 0x87]]);
    assert_eq!(s.received(), 0);
    // A code that a PUBACK cannot carry goes as Unspecified error.
    assert!(feed(&mut s, &pub1, V5, at(3)).is_some());
    s.decide(Verdict::Reject(ReasonCode::ServerBusy));
    assert_eq!(drain(&mut s, at(3)), [vec![0x40, 0x03, 0x00, 0x01, 0x80]]);

    // 3.1.1: no negative acknowledgement.
    let mut s = session::<Fixed>(Role::Server, V3);
    assert!(feed(&mut s, &PUB1, V3, at(1)).is_some());
    s.decide(Verdict::Reject(ReasonCode::NotAuthorized));
    assert_eq!(drain(&mut s, at(1)), [PUBACK1.to_vec()]);
}

#[test]
fn an_undecided_publish_counts_against_the_receive_maximum_and_is_accepted_later() {
    let mut s: Session<Fixed> = Session::new(Config {
        receive_maximum: 1,
        ..Config::new(Role::Server)
    });
    s.on_connect(at(0), facteur_session::Connection::new(V5, 0));
    let pub1 = [
        0x32, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, 0x00, b'h', b'i',
    ];
    let pub2 = [
        0x32, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x02, 0x00, b'h', b'i',
    ];
    assert!(feed(&mut s, &pub1, V5, at(1)).is_some());
    // Not decided: the next packet accepts it, and the second one is over the maximum.
    assert!(feed(&mut s, &pub2, V5, at(1)).is_none());
    assert_eq!(
        events(&mut s),
        [Event::ProtocolError {
            reason: ReasonCode::ReceiveMaximumExceeded
        }]
    );
}

#[test]
fn client_reads_the_connack() {
    let mut c = Session::<Fixed>::new(Config::new(Role::Client));
    let connect = Connect {
        keep_alive: 120,
        ..Connect::new(V5, "c")
    };
    // A session present answer to a client that never had one is a protocol error.
    let present = ConnAck {
        session_present: true,
        ..ConnAck::new(ReasonCode::Success)
    };
    assert_eq!(
        c.accept_connack(at(0), &connect, &present),
        Err(ReasonCode::ProtocolError)
    );
    let refused = ConnAck::new(ReasonCode::NotAuthorized);
    assert_eq!(
        c.accept_connack(at(0), &connect, &refused),
        Err(ReasonCode::NotAuthorized)
    );
    assert!(!c.is_connected());

    let props = [
        Property::ServerKeepAlive(30),
        Property::ReceiveMaximum(1),
        Property::TopicAliasMaximum(2),
        Property::MaximumPacketSize(64),
    ];
    let ok = ConnAck {
        properties: Properties::from_slice(&props),
        ..ConnAck::new(ReasonCode::Success)
    };
    let connected = c.accept_connack(at(0), &connect, &ok).unwrap();
    assert_eq!(connected.keep_alive, 30);
    let conn = *c.connection();
    assert_eq!(
        (
            conn.keep_alive,
            conn.peer_receive_maximum,
            conn.peer_topic_alias_maximum,
            conn.peer_maximum_packet_size
        ),
        (30, 1, 2, 64)
    );
    // The client pings after the server's keep alive.
    assert_eq!(c.poll_timeout(), Some(at(30_000)));

    // A QoS 2 message got its PUBREC, a QoS 1 one nothing; the server then lost the session.
    c.publish(&message("a", b"1", QoS::ExactlyOnce), at(0))
        .unwrap();
    c.publish(&message("b", b"2", QoS::AtLeastOnce), at(0))
        .unwrap();
    let mut sent = drain(&mut c, at(0));
    assert_eq!(kinds(&sent, V5), ["PUBLISH2 #1"], "Receive Maximum 1");
    feed(&mut c, &[0x50, 0x02, 0x00, 0x01], V5, at(1));
    sent = drain(&mut c, at(1));
    assert_eq!(kinds(&sent, V5), ["PUBREL #1"]);
    feed(&mut c, &[0x70, 0x02, 0x00, 0x01], V5, at(1));
    sent = drain(&mut c, at(1));
    assert_eq!(kinds(&sent, V5), ["PUBLISH1 #2"]);
    events(&mut c);
    c.on_connection_lost(at(2));
    let fresh = ConnAck::new(ReasonCode::Success);
    let connected = c.accept_connack(at(3), &connect, &fresh).unwrap();
    assert!(!connected.session_present);
    // The unacknowledged QoS 1 message goes again.
    assert_eq!(kinds(&drain(&mut c, at(3)), V5), ["PUBLISH1 dup #2"]);
    let _ = ProtocolVersion::V5;
}
