//! The blocking client over std TCP (through embedded-io-adapters) against facteur's broker
//! and Debian's mosquitto, in MQTT 3.1.1 and 5.0.

mod common;

use std::time::Instant;

use common::{buffers, clock, options, unique, Got, Proxy, StdTcp, TestBroker, WAIT};
use facteur_embedded::blocking::Client;
use facteur_embedded::{
    ConnectOptions, Error, HeaplessStore, MessageId, Notification, Properties, ProtocolVersion,
    QoS, ReasonCode, Subscription, Will,
};

type Store = HeaplessStore<8, 8, 1100>;
type TestClient = Client<'static, StdTcp, Box<dyn FnMut() -> u64>, Store>;

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

fn client(options: ConnectOptions<'static>, buffer: usize) -> TestClient {
    let (rx, tx) = buffers(buffer);
    Client::new(options, Box::new(clock()), rx, tx)
}

fn connected(broker: &TestBroker, options: ConnectOptions<'static>) -> TestClient {
    let mut c = client(options, 2048);
    let connected = c.connect(StdTcp::connect(broker.addr)).expect("connects");
    assert!(!connected.session_present);
    c
}

/// Polls until `want` picks something out of a notification; fails after `WAIT`.
fn wait_for<R>(
    c: &mut TestClient,
    what: &str,
    mut want: impl FnMut(&Notification<'_>) -> Option<R>,
) -> R {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no {what} within {WAIT:?}");
        if let Some(n) = c
            .poll()
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
        {
            if let Some(r) = want(&n) {
                return r;
            }
        }
    }
}

fn subscribe(c: &mut TestClient, filter: &str, qos: QoS) {
    let id = c.subscribe(&[Subscription::new(filter, qos)]).unwrap();
    let granted = wait_for(c, "SUBACK", |n| match n {
        Notification::Subscribed { packet_id, results } if *packet_id == id => {
            Some(results.granted().collect::<Vec<_>>())
        }
        _ => None,
    });
    assert_eq!(granted, [Ok(qos)]);
}

fn message(c: &mut TestClient) -> Got {
    wait_for(c, "message", |n| match n {
        Notification::Message(m) => Some(Got::of(m)),
        _ => None,
    })
}

fn published(c: &mut TestClient, message: MessageId) -> ReasonCode {
    wait_for(c, "acknowledgement", |n| match n {
        Notification::Published {
            message: m, reason, ..
        } if *m == message => Some(*reason),
        _ => None,
    })
}

#[test]
fn qos_0_1_2_and_retained_messages() {
    for broker in TestBroker::all() {
        for version in VERSIONS {
            let case = format!("{} {version:?}", broker.name);
            let topic = unique("t");
            let mut sub = connected(&broker, options(version, "sub"));
            subscribe(&mut sub, &format!("{topic}/#"), QoS::ExactlyOnce);
            let mut publisher = connected(&broker, options(version, "pub"));
            let mut acks = Vec::new();
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let payload = format!("{qos:?}");
                let id = publisher
                    .publish(&format!("{topic}/q"), payload.as_bytes(), qos, false)
                    .unwrap();
                if qos != QoS::AtMostOnce {
                    acks.push(id);
                }
            }
            for id in acks {
                assert_eq!(published(&mut publisher, id), ReasonCode::Success, "{case}");
            }
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let got = message(&mut sub);
                assert_eq!(got.topic, format!("{topic}/q"), "{case}");
                assert_eq!(got.payload, format!("{qos:?}").as_bytes(), "{case}");
                assert_eq!(got.qos, qos, "{case}");
                assert!(!got.retain, "{case}");
            }

            // Retained: kept by the broker, delivered to a later subscriber with the flag.
            let retained_topic = format!("{topic}/retained");
            let id = publisher
                .publish(&retained_topic, b"21.5", QoS::AtLeastOnce, true)
                .unwrap();
            assert_eq!(published(&mut publisher, id), ReasonCode::Success, "{case}");
            let mut late = connected(&broker, options(version, "late"));
            subscribe(&mut late, &retained_topic, QoS::AtLeastOnce);
            let got = message(&mut late);
            assert_eq!(
                (got.topic.as_str(), got.payload.as_slice(), got.retain),
                (retained_topic.as_str(), &b"21.5"[..], true),
                "{case}"
            );
            // Cleared, so that the broker holds nothing after the test.
            publisher
                .publish(&retained_topic, b"", QoS::AtLeastOnce, true)
                .unwrap();
            for mut c in [sub, publisher, late] {
                c.disconnect();
            }
        }
    }
}

#[test]
fn unsubscribe_reports_per_filter_results() {
    for broker in TestBroker::all() {
        for version in VERSIONS {
            let topic = unique("u");
            let mut c = connected(&broker, options(version, "unsub"));
            subscribe(&mut c, &topic, QoS::AtLeastOnce);
            let id = c.unsubscribe(&[topic.as_str()]).unwrap();
            let codes = wait_for(&mut c, "UNSUBACK", |n| match n {
                Notification::Unsubscribed { packet_id, results } if *packet_id == id => {
                    Some(results.reason_codes().collect::<Vec<_>>())
                }
                _ => None,
            });
            let expected: &[ReasonCode] = match version {
                ProtocolVersion::V5 => &[ReasonCode::Success],
                _ => &[], // 3.1.1's UNSUBACK has no codes
            };
            assert_eq!(codes, expected, "{} {version:?}", broker.name);
            // Nothing arrives on the filter any more: a message on another one comes first.
            subscribe(&mut c, &format!("{topic}-other"), QoS::AtLeastOnce);
            let mut publisher = connected(&broker, options(version, "pub"));
            publisher
                .publish(&topic, b"gone", QoS::AtLeastOnce, false)
                .unwrap();
            publisher
                .publish(&format!("{topic}-other"), b"here", QoS::AtLeastOnce, false)
                .unwrap();
            assert_eq!(message(&mut c).payload, b"here");
        }
    }
}

#[test]
fn the_will_is_published_when_the_connection_drops() {
    for broker in TestBroker::all() {
        for version in VERSIONS {
            let topic: &'static str = Box::leak(unique("will").into_boxed_str());
            let mut watcher = connected(&broker, options(version, "watch"));
            subscribe(&mut watcher, topic, QoS::AtLeastOnce);
            let mut o = options(version, "dying");
            o.will = Some(Will {
                topic,
                payload: b"offline",
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties::EMPTY,
            });
            let mut dying = connected(&broker, o);
            // The link dies: no DISCONNECT.
            dying.take_transport().unwrap().cut();
            let got = message(&mut watcher);
            assert_eq!(
                (got.topic.as_str(), got.payload.as_slice()),
                (topic, &b"offline"[..])
            );

            // A normal DISCONNECT deletes the will: nothing comes.
            let mut o = options(version, "polite");
            o.will = Some(Will {
                topic,
                payload: b"polite",
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties::EMPTY,
            });
            let mut polite = connected(&broker, o);
            polite.disconnect().unwrap().cut();
            let mut publisher = connected(&broker, options(version, "pub"));
            publisher
                .publish(topic, b"after", QoS::AtLeastOnce, false)
                .unwrap();
            assert_eq!(
                message(&mut watcher).payload,
                b"after",
                "{} {version:?}",
                broker.name
            );
        }
    }
}

#[test]
fn a_dropped_connection_resumes_and_resends_what_was_in_flight() {
    for broker in TestBroker::all() {
        for version in VERSIONS {
            let case = format!("{} {version:?}", broker.name);
            let topic = unique("resume");
            let mut watcher = connected(&broker, options(version, "watch"));
            subscribe(&mut watcher, &topic, QoS::ExactlyOnce);

            let proxy = Proxy::new(broker.addr);
            let mut o = options(version, "resumer");
            o.clean_start = true;
            o.session_expiry = 600; // 5.0
            if version != ProtocolVersion::V5 {
                o.clean_start = false; // 3.1.1: a persistent session
            }
            let mut c = client(o, 2048);
            c.connect(StdTcp::connect(proxy.addr)).unwrap();
            assert!(o.resumes());

            // The link goes silent, then down, with a QoS 1 and a QoS 2 message in flight.
            proxy.freeze(true);
            let q1 = c.publish(&topic, b"one", QoS::AtLeastOnce, false).unwrap();
            let q2 = c.publish(&topic, b"two", QoS::ExactlyOnce, false).unwrap();
            assert_eq!(c.session().inflight(), 2, "{case}");
            proxy.cut();
            let deadline = Instant::now() + WAIT;
            let error = loop {
                assert!(Instant::now() < deadline, "{case}: the cut was not seen");
                match c.poll() {
                    Err(e) => break e,
                    Ok(_) => continue,
                }
            };
            assert!(error.is_fatal(), "{case}: {error:?}");
            assert!(!c.is_connected());
            // Published while disconnected: queued, sent after the resends.
            let q3 = c
                .publish(&topic, b"three", QoS::AtLeastOnce, false)
                .unwrap();

            proxy.freeze(false);
            let resumed = c.connect(StdTcp::connect(proxy.addr)).unwrap();
            assert!(resumed.session_present, "{case}");
            // In any order: q3's PUBACK may overtake q2's PUBCOMP.
            let mut done = Vec::new();
            while done.len() < 3 {
                done.push(wait_for(&mut c, "acknowledgements", |n| match n {
                    Notification::Published {
                        message, reason, ..
                    } => Some((*message, *reason)),
                    _ => None,
                }));
            }
            done.sort();
            assert_eq!(
                done,
                [q1, q2, q3].map(|id| (id, ReasonCode::Success)),
                "{case}"
            );
            // Each once; in any order (mosquitto passes a QoS 2 message on at PUBREL).
            let mut got: Vec<_> = (0..3).map(|_| message(&mut watcher).payload).collect();
            got.sort();
            assert_eq!(got, [&b"one"[..], b"three", b"two"], "{case}");
            // And no second copy: the next message is a new one.
            let mut publisher = connected(&broker, options(version, "pub"));
            publisher
                .publish(&topic, b"end", QoS::AtLeastOnce, false)
                .unwrap();
            assert_eq!(message(&mut watcher).payload, b"end", "{case}");
            c.disconnect();
        }
    }
}

#[test]
fn a_packet_larger_than_the_receive_buffer_is_a_clear_error() {
    for broker in TestBroker::all() {
        let topic = unique("big");
        // 3.1.1 has no Maximum Packet Size: the broker sends it, the client says how large.
        let mut small = client(options(ProtocolVersion::V3_1_1, "small"), 128);
        small.connect(StdTcp::connect(broker.addr)).unwrap();
        subscribe(&mut small, &topic, QoS::AtMostOnce);
        let mut publisher = connected(&broker, options(ProtocolVersion::V3_1_1, "pub"));
        publisher
            .publish(&topic, &[7u8; 1000], QoS::AtMostOnce, false)
            .unwrap();
        let deadline = Instant::now() + WAIT;
        let error = loop {
            assert!(Instant::now() < deadline, "{}: no error", broker.name);
            match small.poll() {
                Err(e) => break e,
                Ok(_) => continue,
            }
        };
        let needed = 1000 + topic.len() + 2 + 3;
        assert!(
            matches!(error, Error::RxBufferTooSmall { needed: n } if n == needed),
            "{}: {error:?}",
            broker.name
        );
        assert!(error.is_fatal() && !small.is_connected());

        // 5.0: the broker is told the buffer's size and keeps the large message back.
        let mut small = client(options(ProtocolVersion::V5, "small5"), 128);
        small.connect(StdTcp::connect(broker.addr)).unwrap();
        subscribe(&mut small, &topic, QoS::AtMostOnce);
        publisher
            .publish(&topic, &[7u8; 1000], QoS::AtMostOnce, false)
            .unwrap();
        publisher
            .publish(&topic, b"small", QoS::AtMostOnce, false)
            .unwrap();
        assert_eq!(message(&mut small).payload, b"small", "{}", broker.name);
    }
}

#[test]
fn a_refusal_carries_the_brokers_reason_code() {
    let broker = TestBroker::facteur();
    // 3.1.1 refuses an empty client identifier without clean session.
    let mut o = ConnectOptions::new(ProtocolVersion::V3_1_1, "");
    o.clean_start = false;
    let mut c = client(o, 256);
    let error = c.connect(StdTcp::connect(broker.addr)).unwrap_err();
    assert!(
        matches!(error, Error::Refused(ReasonCode::ClientIdentifierNotValid)),
        "{error:?}"
    );
    assert!(!c.is_connected());
}

#[test]
fn keep_alive_pings_keep_an_idle_connection_up() {
    for broker in TestBroker::all() {
        let mut o = options(ProtocolVersion::V5, "idle");
        o.keep_alive = 1;
        let mut c = client(o, 256);
        let connected = c.connect(StdTcp::connect(broker.addr)).unwrap();
        assert_eq!(connected.keep_alive, 1);
        // 3.5 s idle: the broker drops a silent client after 1.5 s; PINGREQ keeps it.
        let until = Instant::now() + std::time::Duration::from_millis(3500);
        while Instant::now() < until {
            assert!(c.poll().unwrap().is_none(), "{}", broker.name);
        }
        let topic = unique("idle");
        subscribe(&mut c, &topic, QoS::AtMostOnce);
    }
}
