//! MQTT 5 Receive Maximum (outgoing), keep alive, topic aliases both ways, message expiry.

mod common;

use common::*;
use facteur_codec::{decode, Packet, Properties, Property, QoS, ReasonCode, Status};
use facteur_session::{
    AllocStore, Config, Connection, Event, HeaplessStore, Instant, Role, Session, Store,
};

fn connected<S: Store>(config: Config, connection: Connection) -> Session<S> {
    let mut s = Session::new(config);
    s.on_connect(at(0), connection);
    s
}

/// (topic, topic alias, message expiry) of a PUBLISH frame in 5.0.
fn publish_fields(frame: &[u8]) -> (String, Option<u16>, Option<u32>) {
    let Status::Complete(d) = decode(frame, V5, 1 << 20).unwrap() else {
        panic!()
    };
    let Packet::Publish(p) = d.packet else {
        panic!("not a PUBLISH: {frame:?}")
    };
    (
        p.topic.to_owned(),
        p.properties.topic_alias(),
        p.properties.message_expiry_interval(),
    )
}

fn peer_receive_maximum_limits_messages_in_flight<S: Store>() {
    let mut connection = Connection::new(V5, 0);
    connection.peer_receive_maximum = 2;
    let mut c = connected::<S>(Config::new(Role::Client), connection);
    for (i, qos) in [
        QoS::AtLeastOnce,
        QoS::ExactlyOnce,
        QoS::AtLeastOnce,
        QoS::AtMostOnce,
    ]
    .into_iter()
    .enumerate()
    {
        c.publish(&message(&format!("t/{i}"), b"", qos), at(0))
            .unwrap();
    }
    assert_eq!(
        kinds(&drain(&mut c, at(0)), V5),
        ["PUBLISH1 #1", "PUBLISH2 #2"]
    );
    assert_eq!((c.inflight(), c.queued()), (2, 2));
    // PUBREC does not free a slot (PUBCOMP does); PUBACK does.
    feed(&mut c, &[0x50, 0x02, 0x00, 0x02], V5, at(1));
    assert_eq!(kinds(&drain(&mut c, at(1)), V5), ["PUBREL #2"]);
    feed(&mut c, &[0x40, 0x02, 0x00, 0x01], V5, at(2));
    // The QoS 0 message behind keeps its place in line.
    assert_eq!(
        kinds(&drain(&mut c, at(2)), V5),
        ["PUBLISH1 #3", "PUBLISH0"]
    );
    // On reconnect: PUBREL #2 does not count against the new maximum of 1, DUP #3 does.
    connection.peer_receive_maximum = 1;
    c.on_connection_lost(at(3));
    c.publish(&message("t/late", b"", QoS::AtLeastOnce), at(3))
        .unwrap();
    c.on_connect(at(3), connection);
    assert_eq!(
        kinds(&drain(&mut c, at(3)), V5),
        ["PUBREL #2", "PUBLISH1 dup #3"]
    );
    feed(&mut c, &[0x70, 0x02, 0x00, 0x02], V5, at(4));
    assert!(
        drain(&mut c, at(4)).is_empty(),
        "3 still in flight, maximum 1"
    );
    feed(&mut c, &[0x40, 0x02, 0x00, 0x03], V5, at(4));
    assert_eq!(kinds(&drain(&mut c, at(4)), V5), ["PUBLISH1 #4"]);
}

/// The Receive Maximum is per connection and applies to resent PUBLISH packets too: after a
/// reconnect with a lower maximum they go out one acknowledgement at a time, in order, and
/// nothing new overtakes them.
fn peer_receive_maximum_applies_to_resends<S: Store>() {
    let mut connection = Connection::new(V5, 0);
    connection.peer_receive_maximum = 3;
    let mut c = connected::<S>(Config::new(Role::Client), connection);
    for _ in 0..3 {
        c.publish(&message("t", b"", QoS::AtLeastOnce), at(0))
            .unwrap();
    }
    c.publish(&message("t", b"", QoS::AtMostOnce), at(0))
        .unwrap();
    assert_eq!(drain(&mut c, at(0)).len(), 4);
    c.publish(&message("t", b"", QoS::AtMostOnce), at(0))
        .unwrap();
    c.on_connection_lost(at(1));
    connection.peer_receive_maximum = 1;
    c.on_connect(at(1), connection);
    for id in 1..=2u8 {
        assert_eq!(
            kinds(&drain(&mut c, at(1)), V5),
            [format!("PUBLISH1 dup #{id}")]
        );
        feed(&mut c, &[0x40, 0x02, 0x00, id], V5, at(1));
    }
    // QoS 0 needs no quota, but waits for the resends before it.
    assert_eq!(
        kinds(&drain(&mut c, at(1)), V5),
        ["PUBLISH1 dup #3", "PUBLISH0"]
    );
}

/// Before 5.0 there is no Receive Maximum: only the store bounds what is in flight.
#[test]
fn heapless_inflight_capacity_bounds_sending_in_v3() {
    let mut c = session::<HeaplessStore<2, 8, 64>>(Role::Client, V3);
    for _ in 0..3 {
        c.publish(&message("t", b"", QoS::AtLeastOnce), at(0))
            .unwrap();
    }
    assert_eq!(drain(&mut c, at(0)).len(), 2);
    feed(&mut c, &[0x40, 0x02, 0x00, 0x02], V3, at(0));
    assert_eq!(kinds(&drain(&mut c, at(0)), V3), ["PUBLISH1 #3"]);
}

fn client_pings_after_keep_alive_of_silence<S: Store>() {
    let mut c = connected::<S>(Config::new(Role::Client), Connection::new(V3, 10));
    assert_eq!(c.poll_timeout(), Some(at(10_000)));
    c.handle_timeout(at(9_999));
    assert!(drain(&mut c, at(9_999)).is_empty());
    c.handle_timeout(at(10_000));
    assert_eq!(drain(&mut c, at(10_000)), [vec![0xC0, 0x00]]);
    // Next: the dead-peer deadline (1.5 × 10 s after the last packet received at 0).
    assert_eq!(c.poll_timeout(), Some(at(15_000)));
    feed(&mut c, &[0xD0, 0x00], V3, at(10_040)); // PINGRESP
    assert_eq!(c.poll_timeout(), Some(at(20_000)));
    // Anything we send resets the ping timer.
    c.publish(&message("t", b"", QoS::AtMostOnce), at(12_000))
        .unwrap();
    drain(&mut c, at(12_000));
    assert_eq!(c.poll_timeout(), Some(at(22_000)));
    assert!(events(&mut c).is_empty());
}

fn silent_peer_is_reported_after_one_and_a_half_keep_alive<S: Store>() {
    let mut c = connected::<S>(Config::new(Role::Client), Connection::new(V5, 10));
    feed(&mut c, &[0xD0, 0x00], V5, at(1_000));
    c.handle_timeout(at(15_999));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(at(16_000));
    assert_eq!(events(&mut c), [Event::KeepAliveTimeout]);
    assert!(!c.is_connected());
    assert_eq!(c.poll_timeout(), None);
    // A client sends no DISCONNECT for it (0x8D is the server's).
    assert!(drain(&mut c, at(16_000)).is_empty());
    c.handle_timeout(at(30_000));
    assert!(events(&mut c).is_empty(), "reported once");

    let mut s = connected::<S>(Config::new(Role::Server), Connection::new(V5, 10));
    assert_eq!(s.poll_timeout(), Some(at(15_000)), "servers do not ping");
    s.handle_timeout(at(15_000));
    assert_eq!(events(&mut s), [Event::KeepAliveTimeout]);
    assert_eq!(
        drain(&mut s, at(15_000)),
        [disconnect_why(
            0x8D,
            "nothing received for 1.5 times the keep alive"
        )]
    );
}

fn server_answers_pingreq<S: Store>() {
    let mut s = connected::<S>(Config::new(Role::Server), Connection::new(V3, 0));
    feed(&mut s, &[0xC0, 0x00], V3, at(0));
    assert_eq!(drain(&mut s, at(0)), [vec![0xD0, 0x00]]);
    assert_eq!(s.poll_timeout(), None, "keep alive 0: no timers");
    let mut c = connected::<S>(Config::new(Role::Client), Connection::new(V3, 0));
    feed(&mut c, &[0xC0, 0x00], V3, at(0));
    assert!(
        drain(&mut c, at(0)).is_empty(),
        "a client does not answer PINGREQ"
    );
}

fn peer_disconnect_is_reported<S: Store>() {
    let mut c = connected::<S>(Config::new(Role::Client), Connection::new(V5, 0));
    feed(&mut c, &[0xE0, 0x01, 0x8B], V5, at(0));
    assert_eq!(
        events(&mut c),
        [Event::Disconnected {
            reason: ReasonCode::ServerShuttingDown
        }]
    );
    assert!(!c.is_connected());
}

fn outgoing_topic_aliases_up_to_the_peer_maximum<S: Store>() {
    let mut connection = Connection::new(V5, 0);
    connection.peer_topic_alias_maximum = 2;
    let mut c = connected::<S>(Config::new(Role::Client), connection);
    for topic in ["a", "b", "c", "a", "b", "c"] {
        c.publish(&message(topic, b"x", QoS::AtMostOnce), at(0))
            .unwrap();
    }
    let out = drain(&mut c, at(0));
    let fields: Vec<_> = out.iter().map(|f| publish_fields(f)).collect();
    assert_eq!(
        fields,
        [
            ("a".into(), Some(1), None),
            ("b".into(), Some(2), None),
            ("c".into(), None, None),
            ("".into(), Some(1), None),
            ("".into(), Some(2), None),
            ("c".into(), None, None),
        ]
    );
    // Exact bytes of an aliased PUBLISH: empty topic, property 0x23 = 1.
    assert_eq!(
        out[3],
        [0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, b'x']
    );
    // Aliases belong to the connection: set up again after a reconnect.
    c.on_connection_lost(at(1));
    c.on_reconnect(at(1));
    c.publish(&message("b", b"x", QoS::AtMostOnce), at(1))
        .unwrap();
    let out = drain(&mut c, at(1));
    assert_eq!(publish_fields(&out[0]), ("b".into(), Some(1), None));
    // Not in 3.1.1, and not if the peer allows none.
    let mut c = session::<S>(Role::Client, V5);
    c.publish(&message("a", b"x", QoS::AtMostOnce), at(0))
        .unwrap();
    c.publish(&message("a", b"x", QoS::AtMostOnce), at(0))
        .unwrap();
    for f in drain(&mut c, at(0)) {
        assert_eq!(publish_fields(&f), ("a".into(), None, None));
    }
}

/// A resend after reconnect always carries the full topic.
fn resend_never_uses_an_alias<S: Store>() {
    let mut connection = Connection::new(V5, 0);
    connection.peer_topic_alias_maximum = 4;
    let mut c = connected::<S>(Config::new(Role::Client), connection);
    c.publish(&message("a", b"1", QoS::AtLeastOnce), at(0))
        .unwrap();
    c.publish(&message("a", b"2", QoS::AtLeastOnce), at(0))
        .unwrap();
    let out = drain(&mut c, at(0));
    assert_eq!(publish_fields(&out[1]), ("".into(), Some(1), None));
    c.on_connection_lost(at(1));
    c.on_reconnect(at(1));
    for f in drain(&mut c, at(1)) {
        assert_eq!(publish_fields(&f), ("a".into(), None, None));
    }
}

fn incoming_topic_aliases_resolve<S: Store>() {
    let mut config = Config::new(Role::Server);
    config.topic_alias_maximum = 3;
    let mut s = connected::<S>(config, Connection::new(V5, 0));
    // "x/y" with alias 1, then alias 1 alone.
    let set = [
        0x30, 0x0A, 0x00, 0x03, b'x', b'/', b'y', 0x03, 0x23, 0x00, 0x01, b'1',
    ];
    let use_ = [0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, b'2'];
    assert_eq!(feed(&mut s, &set, V5, at(0)).unwrap().topic, "x/y");
    let got = feed(&mut s, &use_, V5, at(0)).unwrap();
    assert_eq!(
        (got.topic.as_str(), got.payload.as_slice()),
        ("x/y", &b"2"[..])
    );
    // Re-pointing alias 1.
    let repoint = [0x30, 0x08, 0x00, 0x01, b'z', 0x03, 0x23, 0x00, 0x01, b'3'];
    assert_eq!(feed(&mut s, &repoint, V5, at(0)).unwrap().topic, "z");
    assert_eq!(feed(&mut s, &use_, V5, at(0)).unwrap().topic, "z");
    assert!(events(&mut s).is_empty());
    // Forgotten with the connection.
    s.on_connection_lost(at(1));
    s.on_reconnect(at(1));
    assert_eq!(feed(&mut s, &use_, V5, at(1)), None);
    assert_eq!(
        events(&mut s),
        [Event::ProtocolError {
            reason: ReasonCode::TopicAliasInvalid
        }]
    );
    assert_eq!(
        drain(&mut s, at(1)),
        [disconnect_why(
            0x94,
            "empty topic with a topic alias not set before"
        )]
    );
}

fn incoming_alias_above_our_maximum_is_refused<S: Store>() {
    let mut config = Config::new(Role::Server);
    config.topic_alias_maximum = 3;
    let mut s = connected::<S>(config, Connection::new(V5, 0));
    let set4 = [0x30, 0x08, 0x00, 0x01, b'z', 0x03, 0x23, 0x00, 0x04, b'3'];
    assert_eq!(feed(&mut s, &set4, V5, at(0)), None);
    assert_eq!(
        events(&mut s),
        [Event::ProtocolError {
            reason: ReasonCode::TopicAliasInvalid
        }]
    );
    assert_eq!(
        drain(&mut s, at(0)),
        [disconnect_why(
            0x94,
            "topic alias above the Topic Alias Maximum"
        )]
    );
}

fn with_expiry(topic: &str, qos: QoS, secs: u32) -> facteur_codec::Publish<'static> {
    let props: &'static [Property<'static>] =
        Box::leak(vec![Property::MessageExpiryInterval(secs)].into_boxed_slice());
    let mut p = message(topic, b"x", qos);
    p.properties = Properties::from_slice(props);
    p
}

fn message_expiry_counts_time_in_the_queue<S: Store>() {
    let mut connection = Connection::new(V5, 0);
    connection.peer_receive_maximum = 1;
    let mut c = connected::<S>(Config::new(Role::Client), connection);
    c.publish(&message("block", b"", QoS::AtLeastOnce), at(0))
        .unwrap();
    let short = c
        .publish(&with_expiry("short", QoS::AtLeastOnce, 2), at(0))
        .unwrap();
    c.publish(&with_expiry("long", QoS::AtLeastOnce, 10), at(0))
        .unwrap();
    assert_eq!(drain(&mut c, at(0)).len(), 1);
    feed(&mut c, &[0x40, 0x02, 0x00, 0x01], V5, at(3_500));
    let out = drain(&mut c, at(3_500));
    // "short" waited 3.5 s of its 2: dropped. "long" waited 3.5 s of its 10: 7 s left
    // (whole seconds waited are subtracted).
    assert_eq!(out.len(), 1);
    assert_eq!(publish_fields(&out[0]), ("long".into(), None, Some(7)));
    let evs = events(&mut c);
    assert!(evs.contains(&Event::Expired { message: short }));
    // A resend carries the interval left then (10 s - 9 s waited): DUP set, expiry 1.
    c.on_connection_lost(at(9_000));
    c.on_reconnect(at(9_000));
    let resent = drain(&mut c, at(9_000));
    assert_eq!(resent.len(), 1);
    let mut expected = out[0].clone();
    expected[0] |= 0x08;
    expected[15] = 1;
    assert_eq!(resent[0], expected);
}

/// Expiry is checked when the message would go out, also at QoS 0 and while disconnected.
fn expired_while_disconnected<S: Store>() {
    let mut c = session::<S>(Role::Client, V5);
    c.on_connection_lost(at(0));
    let id = c
        .publish(&with_expiry("t", QoS::AtMostOnce, 1), at(0))
        .unwrap();
    c.on_reconnect(at(1_000));
    assert!(drain(&mut c, at(1_000)).is_empty());
    assert_eq!(events(&mut c), [Event::Expired { message: id }]);
    let _ = Instant::default();
}

/// The maxima to announce are the configured ones, lowered to the store's capacity.
#[test]
fn announced_maxima_fit_the_store() {
    let mut config = Config::new(Role::Server);
    config.topic_alias_maximum = 10;
    let s = Session::<HeaplessStore<4, 4, 16, 3>>::new(config);
    assert_eq!((s.receive_maximum(), s.topic_alias_maximum()), (4, 3));
    config.receive_maximum = 2;
    let s = Session::<AllocStore>::new(config);
    assert_eq!((s.receive_maximum(), s.topic_alias_maximum()), (2, 10));
    let s = Session::<AllocStore>::new(Config::new(Role::Client));
    assert_eq!(
        (s.receive_maximum(), s.topic_alias_maximum()),
        (u16::MAX, 0)
    );
}

/// Events beyond the heapless event capacity are dropped and counted.
#[test]
fn heapless_event_overflow_is_counted() {
    let mut c = session::<HeaplessStore<8, 8, 16, 0, 2>>(Role::Client, V5);
    c.on_connection_lost(at(0));
    for _ in 0..3 {
        c.publish(&with_expiry("t", QoS::AtMostOnce, 1), at(0))
            .unwrap();
    }
    c.on_reconnect(at(5_000));
    assert!(drain(&mut c, at(5_000)).is_empty());
    assert_eq!(events(&mut c).len(), 2);
    assert_eq!(c.events_dropped(), 1);
}

/// Clean start: the session state goes, the configuration stays.
fn clear_session_state_forgets_everything_in_flight<S: Store>() {
    let mut c = session::<S>(Role::Client, V3);
    c.publish(&message("t", b"", QoS::ExactlyOnce), at(0))
        .unwrap();
    c.publish(&message("t", b"", QoS::AtLeastOnce), at(0))
        .unwrap();
    drain(&mut c, at(0));
    c.publish(&message("t", b"", QoS::AtLeastOnce), at(0))
        .unwrap();
    feed(
        &mut c,
        &[0x34, 0x05, 0x00, 0x01, b't', 0x00, 0x07],
        V3,
        at(0),
    );
    assert_eq!((c.inflight(), c.queued(), c.received()), (2, 1, 1));
    c.on_connection_lost(at(1));
    c.clear_session_state();
    c.on_reconnect(at(1));
    assert_eq!((c.inflight(), c.queued(), c.received()), (0, 0, 0));
    assert!(drain(&mut c, at(1)).is_empty());
    // A QoS 2 message with the identifier the old session had is new now.
    assert!(feed(
        &mut c,
        &[0x34, 0x05, 0x00, 0x01, b't', 0x00, 0x07],
        V3,
        at(1)
    )
    .is_some());
}

/// A message larger than the peer's Maximum Packet Size is dropped, not sent; the next
/// one goes out. A topic alias can make the difference.
fn peer_maximum_packet_size_drops_what_does_not_fit<S: Store>() {
    let mut connection = Connection::new(V5, 0);
    connection.peer_maximum_packet_size = 14;
    connection.peer_topic_alias_maximum = 1;
    let mut c = connected::<S>(Config::new(Role::Client), connection);
    // Fixed header 2 + topic "abc" 5 + id 2 + alias property 4 + payload: 14 with 1 byte.
    c.publish(&message("abc", b"1", QoS::AtLeastOnce), at(0))
        .unwrap();
    let big = c
        .publish(&message("abc", b"123456", QoS::AtLeastOnce), at(0))
        .unwrap();
    let other = c
        .publish(&message("abcd", b"1234", QoS::AtLeastOnce), at(0))
        .unwrap();
    // No alias left for "abcd": 11 bytes + payload, too large. "abc" aliased again: the
    // topic is gone, 10 bytes + payload.
    c.publish(&message("abc", b"123", QoS::AtLeastOnce), at(0))
        .unwrap();
    let out = drain(&mut c, at(0));
    assert!(out.iter().all(|f| f.len() <= 14));
    assert_eq!(kinds(&out, V5), ["PUBLISH1 #1", "PUBLISH1 #2"]);
    assert_eq!(publish_fields(&out[1]), ("".into(), Some(1), None));
    assert_eq!(
        events(&mut c),
        [
            Event::TooLarge { message: big },
            Event::TooLarge { message: other }
        ]
    );
}

/// A full queue makes room by dropping expired messages before refusing.
#[test]
fn full_queue_drops_expired_messages_first() {
    use facteur_session::PublishError;
    let mut c = session::<HeaplessStore<2, 3, 16>>(Role::Client, V5);
    c.on_connection_lost(at(0));
    let a = c
        .publish(&with_expiry("a", QoS::AtLeastOnce, 1), at(0))
        .unwrap();
    c.publish(&message("b", b"x", QoS::AtLeastOnce), at(0))
        .unwrap();
    let d = c
        .publish(&with_expiry("d", QoS::AtLeastOnce, 5), at(0))
        .unwrap();
    assert_eq!(
        c.publish(&message("e", b"x", QoS::AtLeastOnce), at(999)),
        Err(PublishError::QueueFull)
    );
    c.publish(&message("e", b"x", QoS::AtLeastOnce), at(1_000))
        .unwrap();
    assert_eq!(events(&mut c), [Event::Expired { message: a }]);
    assert_eq!(c.queued(), 3);
    c.on_reconnect(at(6_000));
    let out = drain(&mut c, at(6_000));
    let topics: Vec<_> = out.iter().map(|f| publish_fields(f).0).collect();
    assert_eq!(topics, ["b", "e"]);
    assert_eq!(events(&mut c), [Event::Expired { message: d }]);
}

/// Queued messages expire on the timer: `poll_timeout` gives the earliest expiry, connected
/// (with the keep alive's timers) or not, and `handle_timeout` drops what ran out.
fn queued_messages_expire_on_the_timer<S: Store>() {
    let mut c = connected::<S>(Config::new(Role::Client), Connection::new(V5, 10));
    let a = c
        .publish(&with_expiry("a", QoS::AtLeastOnce, 5), at(0))
        .unwrap();
    let b = c
        .publish(&with_expiry("b", QoS::AtMostOnce, 2), at(1_000))
        .unwrap();
    c.publish(&message("c", b"x", QoS::AtLeastOnce), at(1_000))
        .unwrap();
    // Nothing sent yet (no poll_transmit): b expires at 3 s, before the PINGREQ at 10 s.
    assert_eq!(c.poll_timeout(), Some(at(3_000)));
    c.handle_timeout(at(2_999));
    assert!(events(&mut c).is_empty());
    assert_eq!(c.queued(), 3);
    c.handle_timeout(at(3_000));
    assert_eq!(events(&mut c), [Event::Expired { message: b }]);
    assert_eq!((c.queued(), c.poll_timeout()), (2, Some(at(5_000))));
    // Disconnected: the keep alive timers stop, the expiry timer does not.
    c.on_connection_lost(at(3_000));
    assert_eq!(c.poll_timeout(), Some(at(5_000)));
    c.handle_timeout(at(7_000));
    assert_eq!(events(&mut c), [Event::Expired { message: a }]);
    assert_eq!((c.queued(), c.poll_timeout()), (1, None));
    // "c" (no expiry) is still sent on the next connection.
    c.on_reconnect(at(8_000));
    assert_eq!(c.poll_timeout(), Some(at(18_000)));
    let out = drain(&mut c, at(8_000));
    assert_eq!(publish_fields(&out[0]), ("c".into(), None, None));
}

fn reason_string_left_out_when_the_peer_takes_no_packet_that_large<S: Store>() {
    let mut connection = Connection::new(V5, 10);
    connection.peer_maximum_packet_size = 10;
    let mut s = connected::<S>(Config::new(Role::Server), connection);
    s.handle_timeout(at(15_000));
    assert_eq!(events(&mut s), [Event::KeepAliveTimeout]);
    assert_eq!(drain(&mut s, at(15_000)), [vec![0xE0, 0x01, 0x8D]]);
}

/// The queue's limits: messages and payload bytes, QoS 0 displaced first, none kept offline.
fn queue_limits_drop_qos0_first_and_keep_none_offline<S: Store>() {
    use facteur_session::{PublishError, QueueLimits};
    let mut config = Config::new(Role::Server);
    config.queue = QueueLimits {
        messages: 3,
        bytes: 8,
        qos0_offline: false,
    };
    let mut s = connected::<S>(config, Connection::new(V5, 0));
    let q0a = s
        .publish(&message("a", b"12", QoS::AtMostOnce), at(0))
        .unwrap();
    s.publish(&message("b", b"34", QoS::AtLeastOnce), at(0))
        .unwrap();
    let q0c = s
        .publish(&message("c", b"56", QoS::AtMostOnce), at(0))
        .unwrap();
    // 6 of 8 bytes: 3 more is over, whatever the QoS; a QoS 1 message displaces QoS 0 ones.
    assert_eq!(
        s.publish(&message("d", b"789", QoS::AtMostOnce), at(0)),
        Err(PublishError::QueueFull)
    );
    s.publish(&message("e", b"789", QoS::AtLeastOnce), at(0))
        .unwrap();
    assert_eq!(events(&mut s), [Event::Dropped { message: q0a }]);
    // 3 messages: the next QoS 1 displaces the last QoS 0 one, then nothing more fits.
    s.publish(&message("f", b"0", QoS::ExactlyOnce), at(0))
        .unwrap();
    assert_eq!(events(&mut s), [Event::Dropped { message: q0c }]);
    assert_eq!(
        s.publish(&message("g", b"0", QoS::AtLeastOnce), at(0)),
        Err(PublishError::QueueFull)
    );
    let sent = drain(&mut s, at(0));
    let topics: Vec<_> = sent.iter().map(|f| publish_fields(f).0).collect();
    assert_eq!(topics, ["b", "e", "f"]);

    // One message larger than the byte limit still goes into an empty queue.
    s.publish(&message("big", b"0123456789", QoS::AtMostOnce), at(0))
        .unwrap();
    assert_eq!(s.queued(), 1);
    // Lost connection: queued QoS 0 messages go, and no new one is taken.
    let q0 = s.publish(&message("h", b"", QoS::AtMostOnce), at(0));
    assert_eq!(q0, Err(PublishError::QueueFull), "9 bytes queued already");
    s.on_connection_lost(at(1));
    assert_eq!(s.queued(), 0);
    assert!(matches!(events(&mut s)[..], [Event::Dropped { .. }]));
    assert_eq!(
        s.publish(&message("i", b"x", QoS::AtMostOnce), at(2)),
        Err(PublishError::Offline)
    );
    assert!(!s.accepts(QoS::AtMostOnce, 1));
    assert!(s.accepts(QoS::AtLeastOnce, 1));
    s.publish(&message("j", b"x", QoS::AtLeastOnce), at(2))
        .unwrap();
}

/// What goes out at once: QoS 1/2 messages only within the room in flight (the peer's
/// Receive Maximum, less what is in flight and queued), none while a resend waits or the
/// peer is away; QoS 0 ones as the queue takes them.
fn admit_to_send_counts_the_room_in_flight<S: Store>() {
    let mut connection = Connection::new(V5, 0);
    connection.peer_receive_maximum = 3;
    let mut s = connected::<S>(Config::new(Role::Server), connection);
    let to_send = |s: &Session<S>, qos: QoS| {
        let mut admission = s.admission();
        (0..10)
            .take_while(|_| admission.admit_to_send(qos, 1))
            .count()
    };
    assert_eq!(to_send(&s, QoS::AtLeastOnce), 3);
    s.publish(&message("a", b"1", QoS::AtLeastOnce), at(0))
        .unwrap();
    assert_eq!(kinds(&drain(&mut s, at(0)), V5), ["PUBLISH1 #1"]);
    s.publish(&message("b", b"2", QoS::ExactlyOnce), at(0))
        .unwrap();
    // One in flight, one queued: room for one more, of either QoS 1 or 2.
    assert_eq!(to_send(&s, QoS::ExactlyOnce), 1);
    assert_eq!(to_send(&s, QoS::AtMostOnce), 10);
    // The queue takes more, and what it takes uses up the room.
    let mut admission = s.admission();
    assert!(admission.admit(QoS::AtLeastOnce, 1));
    assert!(!admission.admit_to_send(QoS::AtLeastOnce, 1));
    assert!((0..5).all(|_| admission.admit(QoS::AtLeastOnce, 1)));
    // Away, then back with the message in flight to resend: nothing new goes first.
    s.on_connection_lost(at(1));
    assert_eq!(to_send(&s, QoS::AtLeastOnce), 0);
    s.on_reconnect(at(2));
    assert_eq!(to_send(&s, QoS::AtLeastOnce), 0);
    assert_eq!(
        kinds(&drain(&mut s, at(2)), V5),
        ["PUBLISH1 dup #1", "PUBLISH2 #2"]
    );
    assert_eq!(to_send(&s, QoS::AtLeastOnce), 1);
    feed(&mut s, &PUBACK1, V5, at(3));
    assert_eq!(to_send(&s, QoS::AtLeastOnce), 2);
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
    admit_to_send_counts_the_room_in_flight,
    peer_receive_maximum_limits_messages_in_flight,
    peer_receive_maximum_applies_to_resends,
    client_pings_after_keep_alive_of_silence,
    silent_peer_is_reported_after_one_and_a_half_keep_alive,
    server_answers_pingreq,
    peer_disconnect_is_reported,
    outgoing_topic_aliases_up_to_the_peer_maximum,
    resend_never_uses_an_alias,
    incoming_topic_aliases_resolve,
    incoming_alias_above_our_maximum_is_refused,
    message_expiry_counts_time_in_the_queue,
    expired_while_disconnected,
    clear_session_state_forgets_everything_in_flight,
    peer_maximum_packet_size_drops_what_does_not_fit,
    queued_messages_expire_on_the_timer,
    reason_string_left_out_when_the_peer_takes_no_packet_that_large,
    queue_limits_drop_qos0_first_and_keep_none_offline,
);
