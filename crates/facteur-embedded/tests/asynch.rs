//! The async client over tokio TCP (through embedded-io-adapters) against facteur's broker
//! and Debian's mosquitto, in MQTT 3.1.1 and 5.0: the same scenarios as the blocking tests,
//! through the other front end of the same core.

mod common;

use std::future::Future;
use std::time::Duration;

use common::{buffers, clock, options, unique, Got, Proxy, TestBroker, TokioDelay, TokioTcp, WAIT};
use facteur_embedded::asynch::Client;
use facteur_embedded::{
    ConnectOptions, Error, HeaplessStore, Notification, Properties, ProtocolVersion, QoS,
    ReasonCode, Subscription, Will,
};

type Store = HeaplessStore<8, 8, 1100>;
type TestClient = Client<'static, TokioTcp, Box<dyn FnMut() -> u64>, TokioDelay, Store>;

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

/// Runs `test` on a current-thread runtime (the brokers live outside it).
fn run(test: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test)
}

fn client(options: ConnectOptions<'static>, buffer: usize) -> TestClient {
    let (rx, tx) = buffers(buffer);
    Client::new(options, Box::new(clock()), TokioDelay, rx, tx)
}

async fn connected(broker: &TestBroker, options: ConnectOptions<'static>) -> TestClient {
    let mut c = client(options, 2048);
    let connected = c
        .connect(common::tokio_tcp(broker.addr).await)
        .await
        .expect("connects");
    assert!(!connected.session_present);
    c
}

/// Polls until `want` picks something out of a notification; fails after `WAIT`.
async fn wait_for<R>(
    c: &mut TestClient,
    what: &str,
    mut want: impl FnMut(&Notification<'_>) -> Option<R>,
) -> R {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let n = c
                .poll()
                .await
                .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
            if let Some(r) = want(&n) {
                return r;
            }
        }
    });
    found
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

async fn subscribe(c: &mut TestClient, filter: &str, qos: QoS) {
    let id = c
        .subscribe(&[Subscription::new(filter, qos)])
        .await
        .unwrap();
    let granted = wait_for(c, "SUBACK", |n| match n {
        Notification::Subscribed { packet_id, results } if *packet_id == id => {
            Some(results.granted().collect::<Vec<_>>())
        }
        _ => None,
    })
    .await;
    assert_eq!(granted, [Ok(qos)]);
}

async fn message(c: &mut TestClient) -> Got {
    wait_for(c, "message", |n| match n {
        Notification::Message(m) => Some(Got::of(m)),
        _ => None,
    })
    .await
}

/// The next `count` acknowledgements, sorted by message.
async fn published(c: &mut TestClient, count: usize) -> Vec<(u32, ReasonCode)> {
    let mut done = Vec::new();
    while done.len() < count {
        let next = wait_for(c, "acknowledgement", |n| match n {
            Notification::Published {
                message, reason, ..
            } => Some((message.get(), *reason)),
            _ => None,
        });
        done.push(next.await);
    }
    done.sort();
    done
}

#[test]
fn qos_0_1_2_retained_and_will() {
    for broker in TestBroker::all() {
        run(async {
            for version in VERSIONS {
                let case = format!("{} {version:?}", broker.name);
                let topic = unique("at");
                let mut sub = connected(&broker, options(version, "sub")).await;
                subscribe(&mut sub, &format!("{topic}/#"), QoS::ExactlyOnce).await;
                let mut publisher = connected(&broker, options(version, "pub")).await;
                let mut ids = Vec::new();
                for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                    let payload = format!("{qos:?}");
                    let id = publisher
                        .publish(&format!("{topic}/q"), payload.as_bytes(), qos, false)
                        .await
                        .unwrap();
                    if qos != QoS::AtMostOnce {
                        ids.push((id.get(), ReasonCode::Success));
                    }
                }
                assert_eq!(published(&mut publisher, 2).await, ids, "{case}");
                for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                    let got = message(&mut sub).await;
                    assert_eq!(got.payload, format!("{qos:?}").as_bytes(), "{case}");
                    assert_eq!((got.qos, got.retain), (qos, false), "{case}");
                }

                let retained = format!("{topic}/retained");
                publisher
                    .publish(&retained, b"on", QoS::AtLeastOnce, true)
                    .await
                    .unwrap();
                published(&mut publisher, 1).await;
                let mut late = connected(&broker, options(version, "late")).await;
                subscribe(&mut late, &retained, QoS::AtLeastOnce).await;
                let got = message(&mut late).await;
                assert_eq!(
                    (got.payload.as_slice(), got.retain),
                    (&b"on"[..], true),
                    "{case}"
                );
                publisher
                    .publish(&retained, b"", QoS::AtLeastOnce, true)
                    .await
                    .unwrap();

                // The will, when the link dies without DISCONNECT.
                let will_topic: &'static str = Box::leak(format!("{topic}/will").into_boxed_str());
                let mut o = options(version, "dying");
                o.will = Some(Will {
                    topic: will_topic,
                    payload: b"offline",
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    properties: Properties::EMPTY,
                });
                let mut watcher = connected(&broker, options(version, "watch")).await;
                subscribe(&mut watcher, will_topic, QoS::AtLeastOnce).await;
                let mut dying = connected(&broker, o).await;
                drop(dying.take_transport());
                let got = message(&mut watcher).await;
                assert_eq!(
                    (got.topic.as_str(), got.payload.as_slice()),
                    (will_topic, &b"offline"[..]),
                    "{case}"
                );
                for mut c in [sub, publisher, late, watcher] {
                    c.disconnect().await;
                }
            }
        });
    }
}

#[test]
fn a_dropped_connection_resumes_and_resends_what_was_in_flight() {
    for broker in TestBroker::all() {
        let proxy = Proxy::new(broker.addr);
        run(async {
            for version in VERSIONS {
                let case = format!("{} {version:?}", broker.name);
                let topic = unique("aresume");
                let mut watcher = connected(&broker, options(version, "watch")).await;
                subscribe(&mut watcher, &topic, QoS::ExactlyOnce).await;
                let mut o = options(version, "resumer");
                o.session_expiry = 600;
                o.clean_start = version == ProtocolVersion::V5;
                let mut c = client(o, 2048);
                c.connect(common::tokio_tcp(proxy.addr).await)
                    .await
                    .unwrap();

                proxy.freeze(true);
                let q1 = c
                    .publish(&topic, b"one", QoS::AtLeastOnce, false)
                    .await
                    .unwrap();
                let q2 = c
                    .publish(&topic, b"two", QoS::ExactlyOnce, false)
                    .await
                    .unwrap();
                proxy.cut();
                let error = tokio::time::timeout(WAIT, async {
                    loop {
                        if let Err(e) = c.poll().await {
                            return e;
                        }
                    }
                })
                .await
                .expect("the cut is seen");
                assert!(error.is_fatal(), "{case}: {error:?}");
                proxy.freeze(false);
                let resumed = c
                    .connect(common::tokio_tcp(proxy.addr).await)
                    .await
                    .unwrap();
                assert!(resumed.session_present, "{case}");
                let expected = [q1, q2].map(|id| (id.get(), ReasonCode::Success));
                assert_eq!(published(&mut c, 2).await, expected, "{case}");
                let mut got = vec![
                    message(&mut watcher).await.payload,
                    message(&mut watcher).await.payload,
                ];
                got.sort();
                assert_eq!(got, [&b"one"[..], b"two"], "{case}");
                c.disconnect().await;
            }
        });
    }
}

#[test]
fn a_packet_larger_than_the_receive_buffer_is_a_clear_error() {
    for broker in TestBroker::all() {
        run(async {
            let topic = unique("abig");
            let mut small = client(options(ProtocolVersion::V3_1_1, "small"), 128);
            small
                .connect(common::tokio_tcp(broker.addr).await)
                .await
                .unwrap();
            subscribe(&mut small, &topic, QoS::AtMostOnce).await;
            let mut publisher = connected(&broker, options(ProtocolVersion::V3_1_1, "pub")).await;
            publisher
                .publish(&topic, &[7u8; 1000], QoS::AtMostOnce, false)
                .await
                .unwrap();
            let error = tokio::time::timeout(WAIT, small.poll())
                .await
                .expect("an answer")
                .map(|_| ())
                .unwrap_err();
            let needed = 1000 + topic.len() + 2 + 3;
            assert!(
                matches!(error, Error::RxBufferTooSmall { needed: n } if n == needed),
                "{}: {error:?}",
                broker.name
            );
            assert!(!small.is_connected());
        });
    }
}

#[test]
fn keep_alive_pings_while_poll_waits() {
    let broker = TestBroker::facteur();
    run(async {
        let mut o = options(ProtocolVersion::V3_1_1, "idle");
        o.keep_alive = 1;
        let mut c = client(o, 256);
        c.connect(common::tokio_tcp(broker.addr).await)
            .await
            .unwrap();
        // Nothing to report for 3.5 s: poll keeps waiting, and pings meanwhile (the broker
        // drops a client silent for 1.5 s, which would end poll with an error).
        let waited = tokio::time::timeout(Duration::from_millis(3500), c.poll()).await;
        assert!(
            waited.is_err(),
            "poll returned: {:?}",
            waited.map(|r| r.map(|_| ()))
        );
        assert!(c.is_connected());
        subscribe(&mut c, &unique("idle"), QoS::AtMostOnce).await;
    });
}
