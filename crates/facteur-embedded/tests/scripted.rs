//! The client against scripted broker bytes and a hand-moved clock: keep alive, the QoS 2
//! receiver flow, refusals, protocol violations, buffer sizes, byte by byte.

mod common;

use common::{ManualClock, Scripted};
use facteur_embedded::blocking::Client;
use facteur_embedded::{
    ConnectOptions, Error, HeaplessStore, Notification, ProtocolVersion, QoS, ReasonCode,
    Subscription, Violation,
};

type TestClient<'a> = Client<'a, Scripted, ManualClock, HeaplessStore<4, 4, 256>>;

const CONNACK_V3: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
const CONNACK_V5: [u8; 5] = [0x20, 0x03, 0x00, 0x00, 0x00];
/// QoS 2 PUBLISH "a/b" "hi", packet id 7 (3.1.1).
const PUBLISH_QOS2: [u8; 11] = [
    0x34, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x07, b'h', b'i',
];

fn connect<'a>(
    version: ProtocolVersion,
    keep_alive: u16,
    rx: &'a mut [u8],
    tx: &'a mut [u8],
) -> (TestClient<'a>, Scripted, ManualClock) {
    let mut options = ConnectOptions::new(version, "scripted");
    options.keep_alive = keep_alive;
    let clock = ManualClock::default();
    let mut client = Client::new(options, clock.clone(), rx, tx);
    let script = Scripted::default();
    script.push(if version.is_v5() {
        &CONNACK_V5
    } else {
        &CONNACK_V3
    });
    client.connect(script.clone()).expect("connects");
    script.take_output();
    (client, script, clock)
}

#[test]
fn keep_alive_sends_pingreq_and_gives_up_on_a_silent_broker() {
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let (mut client, script, clock) = connect(ProtocolVersion::V3_1_1, 10, &mut rx, &mut tx);
    clock.advance(9_999);
    assert!(client.poll().unwrap().is_none());
    assert_eq!(script.take_output(), b"", "not yet");
    clock.advance(1);
    assert!(client.poll().unwrap().is_none());
    assert_eq!(
        script.take_output(),
        [0xC0, 0x00],
        "PINGREQ after 10 s of silence"
    );
    script.push(&[0xD0, 0x00]); // PINGRESP at 10 s
    assert!(client.poll().unwrap().is_none());
    clock.advance(14_999);
    assert!(client.poll().is_ok());
    clock.advance(1); // 15 s (1.5 × keep alive) without a byte from the broker
    let error = client.poll().map(|_| ()).unwrap_err();
    assert!(matches!(error, Error::KeepAliveTimeout), "{error:?}");
    assert!(!client.is_connected());
    assert!(matches!(
        client.poll().map(|_| ()),
        Err(Error::NotConnected)
    ));
}

#[test]
fn a_qos_2_message_is_delivered_once_and_acknowledged_after_it_was_read() {
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let (mut client, script, _clock) = connect(ProtocolVersion::V3_1_1, 0, &mut rx, &mut tx);
    // Split anywhere: partial input is waited for.
    script.push(&PUBLISH_QOS2[..3]);
    script.push(&PUBLISH_QOS2[3..]);
    match client.poll().unwrap() {
        Some(Notification::Message(m)) => {
            assert_eq!(
                (m.topic, m.payload, m.qos),
                ("a/b", &b"hi"[..], QoS::ExactlyOnce)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(script.take_output(), b"", "no PUBREC before the next call");
    // The broker resends it (DUP) before its PUBREL: acknowledged, not delivered again.
    let mut dup = PUBLISH_QOS2;
    dup[0] |= 0x08;
    script.push(&dup);
    assert!(client.poll().unwrap().is_none());
    assert_eq!(
        script.take_output(),
        [0x50, 0x02, 0x00, 0x07, 0x50, 0x02, 0x00, 0x07]
    );
    script.push(&[0x62, 0x02, 0x00, 0x07]); // PUBREL
    assert!(client.poll().unwrap().is_none());
    assert_eq!(script.take_output(), [0x70, 0x02, 0x00, 0x07], "PUBCOMP");
}

#[test]
fn outgoing_qos_2_runs_publish_pubrec_pubrel_pubcomp() {
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let (mut client, script, _clock) = connect(ProtocolVersion::V3_1_1, 0, &mut rx, &mut tx);
    let id = client
        .publish("a/b", b"hi", QoS::ExactlyOnce, true)
        .unwrap();
    // QoS 2, retain; packet id 1.
    assert_eq!(
        script.take_output(),
        [0x35, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, b'h', b'i']
    );
    script.push(&[0x50, 0x02, 0x00, 0x01]); // PUBREC
    assert!(client.poll().unwrap().is_none());
    assert_eq!(script.take_output(), [0x62, 0x02, 0x00, 0x01], "PUBREL");
    script.push(&[0x70, 0x02, 0x00, 0x01]); // PUBCOMP
    match client.poll().unwrap() {
        Some(Notification::Published {
            message,
            qos,
            reason,
        }) => assert_eq!(
            (message, qos, reason),
            (id, QoS::ExactlyOnce, ReasonCode::Success)
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.session().inflight(), 0);
}

#[test]
fn subscribe_takes_its_packet_id_from_the_session_and_reports_each_filter() {
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let (mut client, script, _clock) = connect(ProtocolVersion::V5, 0, &mut rx, &mut tx);
    client.publish("a", b"x", QoS::AtLeastOnce, false).unwrap(); // packet id 1
    script.take_output();
    let subs = [
        Subscription::new("a/+", QoS::ExactlyOnce),
        Subscription::new("b/#", QoS::AtMostOnce),
    ];
    let id = client.subscribe(&subs).unwrap();
    assert_eq!(id, 2, "1 is in flight");
    let out = script.take_output();
    assert_eq!(out[0], 0x82, "SUBSCRIBE");
    // SUBACK: QoS 1 granted for the first, refused (Not authorized) for the second.
    script.push(&[0x90, 0x05, 0x00, 0x02, 0x00, 0x01, 0x87]);
    match client.poll().unwrap() {
        Some(Notification::Subscribed { packet_id, results }) => {
            assert_eq!(packet_id, 2);
            let granted: Vec<_> = results.granted().collect();
            assert_eq!(
                granted,
                [Ok(QoS::AtLeastOnce), Err(ReasonCode::NotAuthorized)]
            );
        }
        other => panic!("{other:?}"),
    }
    // A second SUBACK for the same identifier answers nothing of ours.
    script.push(&[0x90, 0x04, 0x00, 0x02, 0x00, 0x01]);
    let error = client.poll().map(|_| ()).unwrap_err();
    assert!(
        matches!(error, Error::Protocol(Violation::UnknownPacketId(2))),
        "{error:?}"
    );
    // 5.0: the broker is told why (DISCONNECT, Protocol error).
    assert_eq!(script.take_output()[..3], [0xE0, 0x01, 0x82]);
}

#[test]
fn refusals_and_violations_before_connack() {
    for (version, connack, expected) in [
        (
            ProtocolVersion::V3_1_1,
            &[0x20, 0x02, 0x00, 0x05][..],
            ReasonCode::NotAuthorized,
        ),
        (
            ProtocolVersion::V5,
            &[0x20, 0x03, 0x00, 0x86, 0x00][..],
            ReasonCode::BadUserNameOrPassword,
        ),
    ] {
        let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
        let mut client: TestClient<'_> = Client::new(
            ConnectOptions::new(version, "c"),
            ManualClock::default(),
            &mut rx,
            &mut tx,
        );
        let script = Scripted::default();
        script.push(connack);
        let error = client.connect(script.clone()).unwrap_err();
        assert!(
            matches!(error, Error::Refused(r) if r == expected),
            "{error:?}"
        );
        assert!(!client.is_connected());
    }
    // A PUBLISH before the CONNACK.
    let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
    let mut client: TestClient<'_> = Client::new(
        ConnectOptions::new(ProtocolVersion::V3_1_1, "c"),
        ManualClock::default(),
        &mut rx,
        &mut tx,
    );
    let script = Scripted::default();
    script.push(&PUBLISH_QOS2);
    let error = client.connect(script.clone()).unwrap_err();
    assert!(
        matches!(error, Error::Protocol(Violation::UnexpectedPacket(_))),
        "{error:?}"
    );
    // No whole CONNACK: the deadline (a clock that moves 100 ms at each reading).
    let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
    let mut options = ConnectOptions::new(ProtocolVersion::V3_1_1, "c");
    options.connect_timeout_ms = 500;
    let mut now = 0;
    let ticking = move || {
        now += 100;
        now
    };
    let mut client: Client<'_, Scripted, _, HeaplessStore<4, 4, 256>> =
        Client::new(options, ticking, &mut rx, &mut tx);
    let script = Scripted::default();
    script.push(&CONNACK_V3[..2]); // half of it, then nothing
    let error = client.connect(script).unwrap_err();
    assert!(matches!(error, Error::Timeout), "{error:?}");
}

#[test]
fn a_malformed_packet_ends_the_connection_with_the_reason() {
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let (mut client, script, _clock) = connect(ProtocolVersion::V5, 0, &mut rx, &mut tx);
    script.push(&[0x30, 0x03, 0x00, 0x05, b'a']); // topic runs past the packet
    let error = client.poll().map(|_| ()).unwrap_err();
    assert!(matches!(error, Error::Malformed(_)), "{error:?}");
    assert_eq!(
        script.take_output()[..3],
        [0xE0, 0x01, 0x81],
        "DISCONNECT Malformed Packet"
    );
    assert!(!client.is_connected());
}

#[test]
fn buffers_too_small_say_the_size_needed() {
    let (mut rx, mut tx) = ([0u8; 32], [0u8; 32]);
    let (mut client, script, _clock) = connect(ProtocolVersion::V3_1_1, 0, &mut rx, &mut tx);
    // Sending: refused before it is queued, the connection stays.
    let error = client
        .publish("a/b", &[0u8; 40], QoS::AtLeastOnce, false)
        .unwrap_err();
    assert!(
        matches!(error, Error::TxBufferTooSmall { needed: 50 }),
        "{error:?}"
    );
    assert!(!error.is_fatal() && client.is_connected());
    // Receiving: a 3.1.1 PUBLISH of 2 + 45 bytes is seen too large from its header on.
    script.push(&[0x30, 45, 0x00, 0x03, b'a', b'/', b'b']);
    let error = client.poll().map(|_| ()).unwrap_err();
    assert!(
        matches!(error, Error::RxBufferTooSmall { needed: 47 }),
        "{error:?}"
    );
    assert!(!client.is_connected());
}

#[test]
fn the_broker_closing_the_stream_is_reported_and_resume_resends() {
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let mut options = ConnectOptions::new(ProtocolVersion::V3_1_1, "c");
    options.clean_start = false;
    let clock = ManualClock::default();
    let mut client: TestClient<'_> = Client::new(options, clock, &mut rx, &mut tx);
    let script = Scripted::default();
    script.push(&CONNACK_V3);
    client.connect(script.clone()).unwrap();
    client
        .publish("a/b", b"hi", QoS::AtLeastOnce, false)
        .unwrap();
    script.close();
    assert!(matches!(client.poll().map(|_| ()), Err(Error::Closed)));
    // A new stream; the broker has the session: the PUBLISH goes again, DUP set.
    let script = Scripted::default();
    script.push(&[0x20, 0x02, 0x01, 0x00]);
    let connected = client.connect(script.clone()).unwrap();
    assert!(connected.session_present);
    let out = script.take_output();
    assert_eq!(out[0], 0x10, "CONNECT");
    assert_eq!(out[9] & 0x02, 0, "no clean session on resume");
    let resent = &out[out.len() - 11..];
    assert_eq!(
        resent,
        [0x3A, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, b'h', b'i']
    );
}

#[test]
fn a_rebooted_3_1_1_device_takes_up_the_session_the_broker_kept() {
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let mut options = ConnectOptions::new(ProtocolVersion::V3_1_1, "c");
    options.clean_start = false;
    let mut client: TestClient<'_> = Client::new(options, ManualClock::default(), &mut rx, &mut tx);
    let script = Scripted::default();
    script.push(&[0x20, 0x02, 0x01, 0x00]); // session present
    let connected = client.connect(script.clone()).unwrap();
    assert!(
        connected.session_present,
        "the broker's subscriptions carry on"
    );
    assert_eq!(script.take_output()[9] & 0x02, 0, "no clean session");
    // A PUBREL for a QoS 2 message the device received before its reboot: completed.
    script.push(&[0x62, 0x02, 0x00, 0x09]);
    assert!(client.poll().unwrap().is_none());
    assert_eq!(script.take_output(), [0x70, 0x02, 0x00, 0x09]);
}

#[test]
fn mqtt_5_starts_a_client_without_state_clean_and_refuses_a_session_it_never_had() {
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let mut options = ConnectOptions::new(ProtocolVersion::V5, "c");
    options.clean_start = false;
    options.session_expiry = 60;
    let mut client: TestClient<'_> = Client::new(options, ManualClock::default(), &mut rx, &mut tx);
    let script = Scripted::default();
    script.push(&[0x20, 0x03, 0x01, 0x00, 0x00]); // session present: not possible
    let error = client.connect(script.clone()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Protocol(Violation::Session(ReasonCode::ProtocolError))
        ),
        "{error:?}"
    );
    let out = script.take_output();
    assert_eq!(
        out[9] & 0x02,
        0x02,
        "clean start: there is no state to resume"
    );
    assert_eq!(
        out[out.len() - 3..],
        [0xE0, 0x01, 0x82],
        "DISCONNECT Protocol error"
    );
}
