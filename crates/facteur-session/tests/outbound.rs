//! Scenario tests (see each function).
//! Outgoing QoS 0, 1 and 2 flows, with the connection lost and re-established at every step.

mod common;

use common::*;
use facteur_codec::{EncodeError, QoS, ReasonCode};
use facteur_session::{AllocStore, Event, HeaplessStore, MessageId, Role, Session, Store};

fn acked(message: MessageId, packet_id: u16, qos: QoS) -> Event {
    Event::Acknowledged {
        message,
        packet_id,
        qos,
        reason: ReasonCode::Success,
    }
}

fn qos0_is_sent_once_and_not_resent<S: Store>() {
    let mut c = session::<S>(Role::Client, V3);
    c.publish(&message("a/b", b"hi", QoS::AtMostOnce), at(0))
        .unwrap();
    let out = drain(&mut c, at(0));
    assert_eq!(
        out,
        [vec![0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i']]
    );
    assert!(events(&mut c).is_empty());
    assert_eq!((c.queued(), c.inflight()), (0, 0));
    c.on_connection_lost(at(1));
    c.on_reconnect(at(1));
    assert!(drain(&mut c, at(1)).is_empty());
}

fn qos1_publish_then_puback<S: Store>() {
    let mut c = session::<S>(Role::Client, V3);
    let id = c
        .publish(&message("a/b", b"hi", QoS::AtLeastOnce), at(0))
        .unwrap();
    assert_eq!(drain(&mut c, at(0)), [PUB1.to_vec()]);
    assert_eq!(c.inflight(), 1);
    assert!(events(&mut c).is_empty());
    assert_eq!(feed(&mut c, &PUBACK1, V3, at(1)), None);
    assert_eq!(events(&mut c), [acked(id, 1, QoS::AtLeastOnce)]);
    assert_eq!(c.inflight(), 0);
    // A second PUBACK for the same id is ignored.
    feed(&mut c, &PUBACK1, V3, at(2));
    assert!(events(&mut c).is_empty());
}

fn qos1_reconnect_before_puback_resends_dup_bytes<S: Store>() {
    let mut c = session::<S>(Role::Client, V3);
    let id = c
        .publish(&message("a/b", b"hi", QoS::AtLeastOnce), at(0))
        .unwrap();
    assert_eq!(drain(&mut c, at(0)), [PUB1.to_vec()]);
    c.on_connection_lost(at(1));
    assert!(
        drain(&mut c, at(1)).is_empty(),
        "nothing is sent while down"
    );
    // An ack arriving while down is not taken.
    assert_eq!(feed(&mut c, &PUBACK1, V3, at(1)), None);
    c.on_reconnect(at(2));
    assert_eq!(drain(&mut c, at(2)), [PUB1_DUP.to_vec()]);
    // Lost again: resent again, still DUP.
    c.on_connection_lost(at(3));
    c.on_reconnect(at(3));
    assert_eq!(drain(&mut c, at(3)), [PUB1_DUP.to_vec()]);
    feed(&mut c, &PUBACK1, V3, at(4));
    assert_eq!(events(&mut c), [acked(id, 1, QoS::AtLeastOnce)]);
    c.on_connection_lost(at(5));
    c.on_reconnect(at(5));
    assert!(
        drain(&mut c, at(5)).is_empty(),
        "acknowledged: nothing to resend"
    );
}

fn qos1_publish_while_disconnected_goes_out_on_connect<S: Store>() {
    let mut c = session::<S>(Role::Client, V3);
    c.on_connection_lost(at(0));
    c.publish(&message("a/b", b"hi", QoS::AtLeastOnce), at(0))
        .unwrap();
    assert!(drain(&mut c, at(0)).is_empty());
    c.on_reconnect(at(1));
    assert_eq!(drain(&mut c, at(1)), [PUB1.to_vec()], "first send: no DUP");
}

fn qos2_publish_pubrec_pubrel_pubcomp<S: Store>() {
    let mut c = session::<S>(Role::Client, V3);
    let id = c
        .publish(&message("a/b", b"hi", QoS::ExactlyOnce), at(0))
        .unwrap();
    assert_eq!(drain(&mut c, at(0)), [PUB2.to_vec()]);
    feed(&mut c, &PUBREC1, V3, at(1));
    assert_eq!(drain(&mut c, at(1)), [PUBREL1.to_vec()]);
    assert!(events(&mut c).is_empty());
    // A duplicate PUBREC is answered with PUBREL again.
    feed(&mut c, &PUBREC1, V3, at(2));
    assert_eq!(drain(&mut c, at(2)), [PUBREL1.to_vec()]);
    // A PUBACK for a QoS 2 message means nothing.
    feed(&mut c, &PUBACK1, V3, at(2));
    assert!(events(&mut c).is_empty());
    feed(&mut c, &PUBCOMP1, V3, at(3));
    assert_eq!(events(&mut c), [acked(id, 1, QoS::ExactlyOnce)]);
    assert_eq!(c.inflight(), 0);
    assert!(drain(&mut c, at(3)).is_empty());
}

/// Loses the connection at each step of the QoS 2 flow and checks what is resent.
fn qos2_reconnect_at_every_step<S: Store>() {
    for step in 0..5 {
        let mut c = session::<S>(Role::Client, V3);
        let id = c
            .publish(&message("a/b", b"hi", QoS::ExactlyOnce), at(0))
            .unwrap();
        let lose = |c: &mut Session<S>, now| {
            c.on_connection_lost(at(now));
            c.on_reconnect(at(now));
            drain(c, at(now))
        };
        if step == 0 {
            // Lost before the PUBLISH was even written.
            assert_eq!(lose(&mut c, 1), [PUB2.to_vec()]);
        } else {
            assert_eq!(drain(&mut c, at(0)), [PUB2.to_vec()]);
        }
        if step == 1 {
            // PUBLISH written, no PUBREC: resent with DUP.
            assert_eq!(lose(&mut c, 1), [PUB2_DUP.to_vec()]);
        }
        feed(&mut c, &PUBREC1, V3, at(2));
        if step == 2 {
            // PUBREC received, PUBREL not written yet: PUBREL on the new connection.
            assert_eq!(lose(&mut c, 3), [PUBREL1.to_vec()]);
        } else {
            assert_eq!(drain(&mut c, at(2)), [PUBREL1.to_vec()]);
        }
        if step == 3 {
            // PUBREL written, no PUBCOMP: PUBREL resent, never the PUBLISH.
            assert_eq!(lose(&mut c, 3), [PUBREL1.to_vec()]);
            assert_eq!(lose(&mut c, 4), [PUBREL1.to_vec()]);
        }
        feed(&mut c, &PUBCOMP1, V3, at(5));
        assert_eq!(
            events(&mut c),
            [acked(id, 1, QoS::ExactlyOnce)],
            "step {step}"
        );
        if step == 4 {
            assert!(lose(&mut c, 6).is_empty());
        }
    }
}

/// A PUBREC with an error reason (MQTT 5) ends the flow: no PUBREL.
fn qos2_pubrec_error_ends_the_flow<S: Store>() {
    let mut c = session::<S>(Role::Client, V5);
    let id = c
        .publish(&message("a/b", b"hi", QoS::ExactlyOnce), at(0))
        .unwrap();
    drain(&mut c, at(0));
    feed(&mut c, &[0x50, 0x03, 0x00, 0x01, 0x87], V5, at(1)); // Not authorized
    assert_eq!(
        events(&mut c),
        [Event::Acknowledged {
            message: id,
            packet_id: 1,
            qos: QoS::ExactlyOnce,
            reason: ReasonCode::NotAuthorized
        }]
    );
    assert!(drain(&mut c, at(1)).is_empty());
}

/// Resends go out in the order first sent, before anything new.
fn resends_keep_the_original_order<S: Store>() {
    let mut c = session::<S>(Role::Client, V3);
    for (i, qos) in [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce]
        .into_iter()
        .enumerate()
    {
        c.publish(&message(&format!("t/{i}"), b"x", qos), at(0))
            .unwrap();
    }
    assert_eq!(
        kinds(&drain(&mut c, at(0)), V3),
        ["PUBLISH1 #1", "PUBLISH2 #2", "PUBLISH1 #3"]
    );
    feed(&mut c, &[0x50, 0x02, 0x00, 0x02], V3, at(1)); // PUBREC 2
    c.on_connection_lost(at(1));
    c.publish(&message("t/new", b"x", QoS::AtLeastOnce), at(1))
        .unwrap();
    c.on_reconnect(at(2));
    assert_eq!(
        kinds(&drain(&mut c, at(2)), V3),
        [
            "PUBLISH1 dup #1",
            "PUBREL #2",
            "PUBLISH1 dup #3",
            "PUBLISH1 #4"
        ]
    );
}

fn buffer_too_small_keeps_the_packet<S: Store>() {
    let mut c = session::<S>(Role::Client, V3);
    c.publish(&message("a/b", b"hi", QoS::AtLeastOnce), at(0))
        .unwrap();
    let mut small = [0u8; 4];
    assert_eq!(
        c.poll_transmit(at(0), &mut small),
        Err(EncodeError::BufferTooSmall {
            required: 11,
            available: 4
        })
    );
    assert_eq!(drain(&mut c, at(0)), [PUB1.to_vec()]);
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
    qos0_is_sent_once_and_not_resent,
    qos1_publish_then_puback,
    qos1_reconnect_before_puback_resends_dup_bytes,
    qos1_publish_while_disconnected_goes_out_on_connect,
    qos2_publish_pubrec_pubrel_pubcomp,
    qos2_reconnect_at_every_step,
    qos2_pubrec_error_ends_the_flow,
    resends_keep_the_original_order,
    buffer_too_small_keeps_the_packet,
);

/// Identifiers wrap from 65535 to 1 and skip one still in flight.
#[test]
fn a_shared_payload_is_kept_once_by_every_session_until_acknowledged() {
    let payload = bytes::Bytes::from(b"hi".to_vec());
    let message = message("a/b", b"hi", QoS::AtLeastOnce);
    let message = facteur_codec::Publish {
        payload: &payload,
        ..message
    };
    let mut sessions: Vec<Session<AllocStore>> =
        (0..3).map(|_| session(Role::Server, V3)).collect();
    for s in &mut sessions {
        s.publish_shared(&message, payload.clone(), at(0)).unwrap();
    }
    assert!(!payload.is_unique(), "the sessions hold the payload itself");
    for s in &mut sessions {
        assert_eq!(drain(s, at(0)), [PUB1.to_vec()]);
        // Resent from the same bytes after a reconnection.
        s.on_connection_lost(at(1));
        s.on_reconnect(at(1));
        assert_eq!(drain(s, at(1)), [PUB1_DUP.to_vec()]);
    }
    for s in &mut sessions {
        assert_eq!(feed(s, &PUBACK1, V3, at(2)), None);
        assert_eq!((s.queued(), s.inflight()), (0, 0));
    }
    assert!(payload.is_unique(), "released once acknowledged everywhere");
}

#[test]
fn packet_ids_wrap_and_skip_the_one_in_flight() {
    let mut c = session::<AllocStore>(Role::Client, V3);
    c.publish(&message("stuck", b"", QoS::AtLeastOnce), at(0))
        .unwrap();
    assert_eq!(kinds(&drain(&mut c, at(0)), V3), ["PUBLISH1 #1"]);
    let mut buf = [0u8; 64];
    for expected in (2..=u16::MAX).chain([2]) {
        c.publish(&message("t", b"", QoS::AtLeastOnce), at(0))
            .unwrap();
        let n = c.poll_transmit(at(0), &mut buf).unwrap().unwrap();
        assert_eq!(&buf[5..7], &expected.to_be_bytes(), "id after {expected}");
        let _ = n;
        feed(&mut c, &[0x40, 0x02, buf[5], buf[6]], V3, at(0));
        assert!(matches!(c.poll_event(), Some(Event::Acknowledged { .. })));
    }
    assert_eq!(c.inflight(), 1);
}

/// The heapless store bounds the queue and the message size.
#[test]
fn heapless_store_refuses_beyond_capacity() {
    use facteur_session::PublishError;
    let mut c = session::<HeaplessStore<2, 2, 8>>(Role::Client, V3);
    assert_eq!(
        c.publish(&message("a/b", b"123456", QoS::AtMostOnce), at(0)),
        Err(PublishError::TooLarge)
    );
    c.publish(&message("a/b", b"1", QoS::AtMostOnce), at(0))
        .unwrap();
    c.publish(&message("a/b", b"2", QoS::AtMostOnce), at(0))
        .unwrap();
    assert_eq!(
        c.publish(&message("a/b", b"3", QoS::AtMostOnce), at(0)),
        Err(PublishError::QueueFull)
    );
    assert!(matches!(
        c.publish(&message("a/+", b"", QoS::AtMostOnce), at(0)),
        Err(PublishError::InvalidTopic(_))
    ));
}
