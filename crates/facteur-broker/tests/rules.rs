//! The session rules the broker once got wrong, over real sockets at byte level: message
//! expiry counted from receipt, session takeover, the reason code of a server DISCONNECT
//! reaching a client that keeps writing, No Local on a shared subscription, and the verdict
//! on an inbound PUBLISH.

mod common;

use common::*;
use facteur_codec::{
    Connect, Disconnect, Encode, Packet, Properties, Property, ProtocolVersion, PubResponse,
    Publish, QoS, ReasonCode, SubscriptionOptions, Will,
};
use std::time::Duration;

fn encoded(packet: &Packet<'_>, version: ProtocolVersion) -> Vec<u8> {
    let mut out = vec![0u8; packet.encoded_len(version).unwrap()];
    packet.encode(version, &mut out).unwrap();
    out
}

fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..SubscriptionOptions::default()
    }
}

/// A 5.0 PUBLISH with a Message Expiry Interval.
fn expiring<'a>(
    topic: &'a str,
    qos: QoS,
    id: Option<u16>,
    retain: bool,
    props: &'a [Property<'a>],
) -> Packet<'a> {
    Packet::Publish(Publish {
        qos,
        packet_id: id,
        retain,
        properties: Properties::from_slice(props),
        ..Publish::new(topic, b"m")
    })
}

fn persistent_v5(id: &str, expiry: u32) -> Connect<'_> {
    let props: &'static [Property<'static>] =
        Box::leak(Box::new([Property::SessionExpiryInterval(expiry)]));
    Connect {
        clean_start: false,
        properties: Properties::from_slice(props),
        ..Connect::new(V5, id)
    }
}

/// The time messages wait in the tests below: past an interval of 1 s, well within 6 s.
const WAITED: Duration = Duration::from_millis(2_100);

#[tokio::test]
async fn expiry_counts_the_time_a_message_waited_offline_and_retained() {
    let broker = broker_with(|_| {}).await;
    let mut sub = Peer::connect(&broker, persistent_v5("expiry-sub", 300)).await;
    assert_eq!(
        sub.subscribe("e/#", options(QoS::ExactlyOnce), 1).await,
        [0x90, 0x04, 0x00, 0x01, 0x00, 0x02]
    );
    sub.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(sub.closed().await);

    let mut publisher = Peer::client(&broker, V5, "expiry-pub").await;
    let one = [Property::MessageExpiryInterval(1)];
    let six = [Property::MessageExpiryInterval(6)];
    let sent = [
        ("e/1", QoS::AtLeastOnce, &one),
        ("e/2", QoS::ExactlyOnce, &one),
        ("e/3", QoS::AtLeastOnce, &six),
        ("e/4", QoS::ExactlyOnce, &six),
    ];
    for (i, (topic, qos, props)) in sent.into_iter().enumerate() {
        let id = i as u16 + 1;
        publisher
            .send(&expiring(topic, qos, Some(id), false, props))
            .await;
        let ack = publisher.recv_bytes().await;
        assert_eq!(ack[2..4], id.to_be_bytes(), "acknowledged: {ack:02X?}");
    }
    // Retained: one that will have run out, one that will not.
    publisher
        .send(&expiring("r/1", QoS::AtMostOnce, None, true, &one))
        .await;
    publisher
        .send(&expiring("r/2", QoS::AtMostOnce, None, true, &six))
        .await;
    // The only way to let a message's interval pass is to wait for it.
    tokio::time::sleep(WAITED).await;

    let mut sub = Peer::connect(&broker, persistent_v5("expiry-sub", 300)).await;
    // Only the two with 6 s, each with what is left of it: 4 s (MQTT-3.3.2-5, -6).
    let left = [Property::MessageExpiryInterval(4)];
    assert_eq!(
        sub.recv_bytes().await,
        encoded(
            &expiring("e/3", QoS::AtLeastOnce, Some(1), false, &left),
            V5
        )
    );
    assert_eq!(
        sub.recv_bytes().await,
        encoded(
            &expiring("e/4", QoS::ExactlyOnce, Some(2), false, &left),
            V5
        )
    );
    let mut late = Peer::client(&broker, V5, "expiry-late").await;
    assert_eq!(
        late.subscribe("r/#", options(QoS::AtMostOnce), 1).await,
        [0x90, 0x04, 0x00, 0x01, 0x00, 0x00]
    );
    assert_eq!(
        late.recv_bytes().await,
        encoded(&expiring("r/2", QoS::AtMostOnce, None, true, &left), V5)
    );
    // Nothing more for either: a PINGREQ round trip proves the queues are empty.
    for peer in [&mut sub, &mut late] {
        peer.send(&Packet::PingReq).await;
        assert_eq!(peer.recv_bytes().await, [0xD0, 0x00]);
    }
    broker.shutdown().await;
}

fn will_props(delay: Option<u32>) -> &'static [Property<'static>] {
    match delay {
        Some(d) => Box::leak(Box::new([Property::WillDelayInterval(d)])),
        None => &[],
    }
}

/// Every combination of {old Session Expiry 0, > 0} × {new Clean Start 0, 1} × {no will,
/// will, will with delay}: the old connection is told 0x8E and closed, the new one gets the
/// right session present, the old will is published exactly when the session ends or has no
/// delay, and the new connection is served normally afterwards.
#[tokio::test]
async fn takeover_matrix() {
    let broker = broker_with(|_| {}).await;
    let mut observer = Peer::client(&broker, V5, "observer").await;
    observer
        .subscribe("will/#", options(QoS::AtMostOnce), 1)
        .await;
    let mut helper = Peer::client(&broker, V5, "helper").await;
    let mut case = 0;
    for old_expiry in [0u32, 60] {
        for clean_start in [false, true] {
            for will in [None, Some(0u32), Some(30)] {
                case += 1;
                let id = format!("taken-{case}");
                let name =
                    format!("old expiry {old_expiry}, clean start {clean_start}, will {will:?}");
                let expiry: &'static [Property<'static>] =
                    Box::leak(Box::new([Property::SessionExpiryInterval(old_expiry)]));
                let first = Connect {
                    will: will.map(|delay| Will {
                        topic: "will/t",
                        payload: b"gone",
                        qos: QoS::AtMostOnce,
                        retain: false,
                        properties: Properties::from_slice(will_props(
                            Some(delay).filter(|d| *d > 0),
                        )),
                    }),
                    properties: Properties::from_slice(expiry),
                    ..Connect::new(V5, &id)
                };
                let mut old = Peer::connect(&broker, first).await;
                old.subscribe("kept", options(QoS::AtLeastOnce), 1).await;

                let mut second = Peer::raw(&broker, V5).await;
                let new_connect = Connect {
                    clean_start,
                    ..persistent_v5(&id, 60)
                };
                second.send(&Packet::Connect(new_connect)).await;
                let present = old_expiry > 0 && !clean_start;
                let connack = second.recv_bytes().await;
                assert_eq!(
                    connack[..4],
                    [0x20, connack[1], u8::from(present), 0x00],
                    "{name}"
                );
                old.told_why_then_closed(0x8E, "another connection took this session over")
                    .await;

                // The will, if due, was routed before the CONNACK was written: the marker
                // published now comes after it.
                helper
                    .send(&expiring("will/marker", QoS::AtMostOnce, None, false, &[]))
                    .await;
                let will_due =
                    will.is_some() && (old_expiry == 0 || clean_start || will == Some(0));
                let first_seen = observer.recv_bytes().await;
                let got_will = first_seen.windows(6).any(|w| w == b"will/t");
                assert_eq!(got_will, will_due, "{name}: {first_seen:02X?}");
                if got_will {
                    let marker = observer.recv_bytes().await;
                    assert!(marker.windows(11).any(|w| w == b"will/marker"), "{name}");
                }

                // Served normally: the kept subscription (session present) or a new one.
                if !present {
                    second.subscribe("kept", options(QoS::AtLeastOnce), 2).await;
                }
                helper
                    .send(&expiring("kept", QoS::AtMostOnce, None, false, &[]))
                    .await;
                let got = second.recv_bytes().await;
                assert_eq!(got[0] & 0xF0, 0x30, "{name}: a PUBLISH, got {got:02X?}");
                second.send(&Packet::PingReq).await;
                assert_eq!(second.recv_bytes().await, [0xD0, 0x00], "{name}");
                second
                    .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
                    .await;
            }
        }
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_that_keeps_writing_still_reads_disconnect_0x93() {
    let broker = broker_with(|c| c.receive_maximum = 2).await;
    let mut client = Peer::client(&broker, V5, "eager").await;
    // Three QoS 2 PUBLISHes against a Receive Maximum of 2, then PUBRELs and more, in one
    // burst: the broker closes with unread bytes on the socket.
    let mut burst = Vec::new();
    for id in 1..=3u16 {
        burst.extend(encoded(
            &Packet::Publish(Publish {
                qos: QoS::ExactlyOnce,
                packet_id: Some(id),
                ..Publish::new("q2", b"x")
            }),
            V5,
        ));
    }
    for id in 1..=4000u16 {
        burst.extend(encoded(&Packet::PubRel(PubResponse::new(id)), V5));
    }
    client.send_bytes(&burst).await;
    // It goes on writing after the DISCONNECT was sent: the broker still reads (and
    // discards), so these writes succeed...
    let pubrels: Vec<u8> = (1..=1000u16)
        .flat_map(|id| encoded(&Packet::PubRel(PubResponse::new(id)), V5))
        .collect();
    for _ in 0..4 {
        tokio::io::AsyncWriteExt::write_all(&mut client.stream, &pubrels)
            .await
            .expect("the broker reads what the client still sends");
    }
    // ... and the client then reads why, and a clean end of stream, not a reset.
    let why = "more QoS 1/2 messages unacknowledged than the Receive Maximum";
    assert_eq!(client.recv_bytes().await, disconnect_why(0x93, why));
    let mut rest = [0u8; 64];
    let end = tokio::time::timeout(
        WAIT,
        tokio::io::AsyncReadExt::read(&mut client.stream, &mut rest),
    )
    .await
    .expect("closed within the wait");
    assert_eq!(
        end.map_err(|e| e.kind()),
        Ok(0),
        "a clean close, not a reset"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let broker = broker_with(|_| {}).await;
    let mut client = Peer::client(&broker, V5, "shared-no-local").await;
    // SUBSCRIBE 1 to `$share/g/t` with No Local (options 0x04).
    let mut subscribe = vec![0x82, 0x10, 0x00, 0x01, 0x00, 0x00, 0x0A];
    subscribe.extend_from_slice(b"$share/g/t");
    subscribe.push(0x04);
    client.send_bytes(&subscribe).await;
    client
        .told_why_then_closed(0x82, "no local is not allowed on a shared subscription")
        .await;
    assert_eq!(broker.stats().subscriptions, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn message_size_limit_answers_with_a_reason_code_and_counts_the_drop() {
    let broker = broker_with(|c| c.message_size_limit = 4).await;
    let mut sub = Peer::client(&broker, V5, "limit-sub").await;
    sub.subscribe("big", options(QoS::ExactlyOnce), 1).await;
    let mut v5 = Peer::client(&broker, V5, "limit-v5").await;
    let large = |qos, id| {
        Packet::Publish(Publish {
            qos,
            packet_id: Some(id),
            ..Publish::new("big", b"12345")
        })
    };
    v5.send(&large(QoS::AtLeastOnce, 1)).await;
    assert_eq!(v5.recv_bytes().await, [0x40, 0x03, 0x00, 0x01, 0x83]);
    v5.send(&large(QoS::ExactlyOnce, 2)).await;
    assert_eq!(v5.recv_bytes().await, [0x50, 0x03, 0x00, 0x02, 0x83]);
    // The QoS 2 flow ended with that PUBREC: identifier 2 is free for a new message.
    v5.send(&Packet::Publish(Publish {
        qos: QoS::ExactlyOnce,
        packet_id: Some(2),
        ..Publish::new("big", b"1234")
    }))
    .await;
    assert_eq!(v5.recv_bytes().await, [0x50, 0x02, 0x00, 0x02]);
    // 3.1.1 has no negative acknowledgement: acknowledged, and dropped.
    let mut v3 = Peer::client(&broker, V311, "limit-v3").await;
    v3.send(&large(QoS::AtLeastOnce, 7)).await;
    assert_eq!(v3.recv_bytes().await, [0x40, 0x02, 0x00, 0x07]);
    // The subscriber only ever sees the message within the limit.
    let got = sub.recv_bytes().await;
    assert!(got.ends_with(b"1234"), "{got:02X?}");
    sub.send(&Packet::PingReq).await;
    assert_eq!(sub.recv_bytes().await, [0xD0, 0x00]);
    assert_eq!(broker.stats().dropped, 3);
    broker.shutdown().await;
}

/// A message handed to a session while its client was connected with 3.1.1 keeps its 5.0
/// properties: when the client resumes the session with 5.0, the resend carries them (found
/// by the model test).
#[tokio::test]
async fn properties_survive_a_3_1_1_session_resumed_in_5_0() {
    let broker = broker_with(|c| c.sys_interval = 0).await;
    let v3_persistent = Connect {
        clean_start: false,
        ..Connect::new(V311, "switcher")
    };
    let mut sub = Peer::connect(&broker, v3_persistent).await;
    sub.subscribe("m/b", options(QoS::AtLeastOnce), 1).await;
    let mut publisher = Peer::client(&broker, V5, "props-pub").await;
    let props = [
        Property::MessageExpiryInterval(3600),
        Property::UserProperty("k", "v"),
    ];
    publisher
        .send(&expiring("m/b", QoS::AtLeastOnce, Some(1), false, &props))
        .await;
    assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, 0x00, 0x01]);
    // Sent to the 3.1.1 client without properties, not acknowledged, connection lost.
    assert_eq!(
        sub.recv_bytes().await,
        [0x32, 0x08, 0x00, 0x03, b'm', b'/', b'b', 0x00, 0x01, b'm']
    );
    drop(sub);
    let mut sub = Peer::connect(&broker, persistent_v5("switcher", 300)).await;
    let resent = Packet::Publish(Publish {
        dup: true,
        ..match expiring("m/b", QoS::AtLeastOnce, Some(1), false, &props) {
            Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    });
    assert_eq!(sub.recv_bytes().await, encoded(&resent, V5));
    broker.shutdown().await;
}
