//! Limits against hostile peers, over real sockets: what an unadmitted connection may make
//! the broker hold, how many sessions and retained messages it keeps.

mod common;

use common::*;
use facteur_codec::{Connect, Disconnect, Packet, Publish, QoS, ReasonCode, SubscriptionOptions};

#[tokio::test]
async fn a_first_packet_above_the_connect_cap_is_refused_before_its_body() {
    let broker = broker_with(|c| c.max_connect_packet_size = 1024).await;
    let mut peer = Peer::raw(&broker, V311).await;
    // A CONNECT announcing 100,000 bytes: closed as soon as the length is read.
    peer.send_bytes(&[0x10, 0xA0, 0x8D, 0x06]).await;
    assert!(peer.closed().await);
    // Once admitted, packets up to max_packet_size are fine.
    let mut client = Peer::client(&broker, V311, "admitted").await;
    client
        .subscribe("big", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    let payload = vec![7u8; 4096];
    client
        .send(&Packet::Publish(Publish::new("big", &payload)))
        .await;
    let got = client.recv_bytes().await;
    assert!(got.ends_with(&payload));
    broker.shutdown().await;
}

#[tokio::test]
async fn sessions_past_max_sessions_are_refused() {
    let broker = broker_with(|c| c.max_sessions = 1).await;
    let persistent = Connect {
        clean_start: false,
        ..Connect::new(V311, "kept")
    };
    let mut kept = Peer::connect(&broker, persistent).await;
    kept.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(kept.closed().await);
    // The offline session still counts: another client is refused (3.1.1: server
    // unavailable; 5.0: 0x89 with why).
    let mut other = Peer::raw(&broker, V311).await;
    other
        .send(&Packet::Connect(Connect::new(V311, "other")))
        .await;
    assert_eq!(other.recv_bytes().await, [0x20, 0x02, 0x00, 0x03]);
    let mut other5 = Peer::raw(&broker, V5).await;
    other5
        .send(&Packet::Connect(Connect::new(V5, "other5")))
        .await;
    assert_eq!(
        other5.recv_bytes().await,
        connack_why(
            0x89,
            "the broker holds as many sessions as max_sessions allows"
        )
    );
    // The session held takes its client back.
    let mut back = Peer::raw(&broker, V311).await;
    back.send(&Packet::Connect(persistent)).await;
    assert_eq!(back.recv_bytes().await, [0x20, 0x02, 0x01, 0x00]);
    broker.shutdown().await;
}

#[tokio::test]
async fn retained_messages_past_the_limits_are_delivered_not_kept() {
    let broker = broker_with(|c| {
        c.max_retained_messages = 1;
        c.max_retained_bytes = 8;
        // No $SYS topics: they are retained messages too.
        c.sys_interval = 0;
    })
    .await;
    let mut publisher = Peer::client(&broker, V311, "retainer").await;
    let retained = |topic, payload| {
        Packet::Publish(Publish {
            retain: true,
            ..Publish::new(topic, payload)
        })
    };
    publisher.send(&retained("r/1", b"one")).await;
    // A second topic: over the count; the first topic again, larger than 8 bytes: over
    // the bytes. Both refused, the first message kept.
    publisher.send(&retained("r/2", b"two")).await;
    publisher.send(&retained("r/1", b"123456789")).await;
    // A PINGREQ round trip: the publishes before it were routed.
    publisher.send(&Packet::PingReq).await;
    assert_eq!(publisher.recv_bytes().await, [0xD0, 0x00]);
    assert_eq!(broker.stats().retained_refused, 2);
    let mut late = Peer::client(&broker, V311, "late").await;
    late.subscribe("r/#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    // PUBLISH r/1 "one", retained.
    assert_eq!(
        late.recv_bytes().await,
        [0x31, 0x08, 0x00, 0x03, b'r', b'/', b'1', b'o', b'n', b'e']
    );
    late.send(&Packet::PingReq).await;
    assert_eq!(late.recv_bytes().await, [0xD0, 0x00]);
    broker.shutdown().await;
}
