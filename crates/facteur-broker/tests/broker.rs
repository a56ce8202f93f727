//! The broker over real sockets on 127.0.0.1 (port 0), at byte level: exact packets in,
//! exact packets out. Every wait is bounded.

mod common;

use common::*;
use facteur_broker::BrokerHandle;
use facteur_codec::{
    decode, Connect, Encode, Packet, Properties, ProtocolVersion, Publish, QoS, Status, Subscribe,
    Subscription, SubscriptionOptions, Will,
};
use std::time::Duration;

#[tokio::test]
async fn connack_3_1_1_and_5_0_bytes() {
    let broker = broker_with(|_| {}).await;
    let mut v3 = Peer::raw(&broker, V311).await;
    v3.send(&Packet::Connect(Connect::new(V311, "c311"))).await;
    assert_eq!(v3.recv_bytes().await, [0x20, 0x02, 0x00, 0x00]);

    let mut v5 = Peer::raw(&broker, V5).await;
    v5.send(&Packet::Connect(Connect::new(V5, "c5"))).await;
    // Receive Maximum 20, Topic Alias Maximum 10, Maximum Packet Size 1 MiB.
    assert_eq!(
        v5.recv_bytes().await,
        [
            0x20, 0x0E, 0x00, 0x00, 0x0B, 0x21, 0x00, 0x14, 0x22, 0x00, 0x0A, 0x27, 0x00, 0x10,
            0x00, 0x00
        ]
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn empty_client_id_is_assigned_in_5_0_and_refused_when_disallowed() {
    let broker = broker_with(|c| c.allow_zero_length_clientid = true).await;
    let mut v5 = Peer::raw(&broker, V5).await;
    v5.send(&Packet::Connect(Connect::new(V5, ""))).await;
    let connack = v5.recv_bytes().await;
    let Ok(Status::Complete(d)) = decode(&connack, V5, u32::MAX) else {
        panic!()
    };
    let Packet::ConnAck(ack) = d.packet else {
        panic!()
    };
    assert!(ack
        .properties
        .assigned_client_identifier()
        .unwrap()
        .starts_with("facteur-"));
    broker.shutdown().await;

    let broker = broker_with(|c| c.allow_zero_length_clientid = false).await;
    let mut v3 = Peer::raw(&broker, V311).await;
    v3.send(&Packet::Connect(Connect::new(V311, ""))).await;
    assert_eq!(v3.recv_bytes().await, [0x20, 0x02, 0x00, 0x02]);
    assert!(v3.closed().await);
    let mut v5 = Peer::raw(&broker, V5).await;
    v5.send(&Packet::Connect(Connect::new(V5, ""))).await;
    assert_eq!(
        v5.recv_bytes().await,
        connack_why(
            0x85,
            "this broker assigns no client identifier (allow_zero_length_clientid is off)"
        )
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn qos1_publish_reaches_a_wildcard_subscriber() {
    let broker = broker_with(|_| {}).await;
    let mut sub = Peer::client(&broker, V311, "sub").await;
    assert_eq!(
        sub.subscribe(
            "maison/+/temp",
            SubscriptionOptions::qos(QoS::AtLeastOnce),
            1
        )
        .await,
        [0x90, 0x03, 0x00, 0x01, 0x01]
    );
    let mut publisher = Peer::client(&broker, V311, "pub").await;
    publisher
        .send(&publish(
            "maison/salon/temp",
            b"21",
            QoS::AtLeastOnce,
            Some(7),
        ))
        .await;
    assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, 0x00, 0x07]);
    let mut expected = vec![0x32, 0x17, 0x00, 0x11];
    expected.extend_from_slice(b"maison/salon/temp");
    expected.extend_from_slice(&[0x00, 0x01, b'2', b'1']);
    assert_eq!(sub.recv_bytes().await, expected);
    sub.send_bytes(&[0x40, 0x02, 0x00, 0x01]).await;
    // A publish at QoS 2 is delivered at the subscription's QoS 1.
    publisher
        .send(&publish(
            "maison/cave/temp",
            b"12",
            QoS::ExactlyOnce,
            Some(8),
        ))
        .await;
    assert_eq!(publisher.recv_bytes().await, [0x50, 0x02, 0x00, 0x08]);
    publisher.send_bytes(&[0x62, 0x02, 0x00, 0x08]).await;
    assert_eq!(publisher.recv_bytes().await, [0x70, 0x02, 0x00, 0x08]);
    let got = sub.recv_bytes().await;
    assert_eq!(got[0], 0x32, "{got:02X?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn qos2_end_to_end_exactly_once_even_when_the_publisher_resends() {
    let broker = broker_with(|_| {}).await;
    let mut sub = Peer::client(&broker, V5, "sub2").await;
    sub.subscribe("q2", SubscriptionOptions::qos(QoS::ExactlyOnce), 1)
        .await;
    let mut publisher = Peer::client(&broker, V5, "pub2").await;
    publisher
        .send(&publish("q2", b"once", QoS::ExactlyOnce, Some(3)))
        .await;
    assert_eq!(publisher.recv_bytes().await, [0x50, 0x02, 0x00, 0x03]);
    // The same PUBLISH again, as a DUP resend before PUBREL: acknowledged, not delivered.
    let dup = Packet::Publish(Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        packet_id: Some(3),
        ..Publish::new("q2", b"once")
    });
    publisher.send(&dup).await;
    assert_eq!(publisher.recv_bytes().await, [0x50, 0x02, 0x00, 0x03]);
    publisher.send_bytes(&[0x62, 0x02, 0x00, 0x03]).await;
    assert_eq!(publisher.recv_bytes().await, [0x70, 0x02, 0x00, 0x03]);
    // The subscriber gets it once, at QoS 2, and completes the flow.
    assert_eq!(
        sub.recv_bytes().await,
        [0x34, 0x0B, 0x00, 0x02, b'q', b'2', 0x00, 0x01, 0x00, b'o', b'n', b'c', b'e']
    );
    sub.send_bytes(&[0x50, 0x02, 0x00, 0x01]).await;
    assert_eq!(sub.recv_bytes().await, [0x62, 0x02, 0x00, 0x01]);
    sub.send_bytes(&[0x70, 0x02, 0x00, 0x01]).await;
    assert_eq!(sub.try_recv_bytes(Duration::from_millis(300)).await, None);
    broker.shutdown().await;
}

#[tokio::test]
async fn retained_messages_set_sent_on_subscribe_and_cleared() {
    let broker = broker_with(|_| {}).await;
    let mut publisher = Peer::client(&broker, V311, "p").await;
    let retained = Packet::Publish(Publish {
        retain: true,
        ..Publish::new("etat/porte", b"ouverte")
    });
    publisher.send(&retained).await;
    // PINGREQ round trip: the publish before it has been routed.
    publisher.send_bytes(&[0xC0, 0x00]).await;
    assert_eq!(publisher.recv_bytes().await, [0xD0, 0x00]);

    let mut later = Peer::client(&broker, V311, "late").await;
    later
        .subscribe("etat/#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    let mut expected = vec![0x31, 0x13, 0x00, 0x0A];
    expected.extend_from_slice(b"etat/porteouverte");
    assert_eq!(later.recv_bytes().await, expected);

    // Live messages carry retain 0 to existing subscribers (no retain-as-published).
    publisher.send(&retained).await;
    assert_eq!(later.recv_bytes().await[0], 0x30);

    // An empty retained payload clears it.
    let clear = Packet::Publish(Publish {
        retain: true,
        ..Publish::new("etat/porte", b"")
    });
    publisher.send(&clear).await;
    publisher.send_bytes(&[0xC0, 0x00]).await;
    assert_eq!(publisher.recv_bytes().await, [0xD0, 0x00]);
    let mut third = Peer::client(&broker, V311, "third").await;
    third
        .subscribe("etat/#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    assert_eq!(third.try_recv_bytes(Duration::from_millis(300)).await, None);
    broker.shutdown().await;
}

#[tokio::test]
async fn will_is_published_on_abnormal_loss_only() {
    let broker = broker_with(|_| {}).await;
    let mut watcher = Peer::client(&broker, V311, "watcher").await;
    watcher
        .subscribe(
            "clients/+/etat",
            SubscriptionOptions::qos(QoS::AtMostOnce),
            1,
        )
        .await;
    let will = |topic| Will {
        topic,
        payload: b"perdu",
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties::EMPTY,
    };
    let lost = Peer::connect(
        &broker,
        Connect {
            will: Some(will("clients/a/etat")),
            ..Connect::new(V311, "a")
        },
    )
    .await;
    drop(lost); // TCP closed without DISCONNECT
    let got = watcher.recv_bytes().await;
    assert_eq!(&got[4..], b"clients/a/etatperdu");

    let mut polite = Peer::connect(
        &broker,
        Connect {
            will: Some(will("clients/b/etat")),
            ..Connect::new(V311, "b")
        },
    )
    .await;
    polite.send_bytes(&[0xE0, 0x00]).await;
    assert!(polite.closed().await);
    assert_eq!(
        watcher.try_recv_bytes(Duration::from_millis(300)).await,
        None
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn malformed_packet_closes_only_its_connection_with_the_reason() {
    let broker = broker_with(|_| {}).await;
    let mut good = Peer::client(&broker, V5, "good").await;
    good.subscribe("t", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    let mut bad = Peer::client(&broker, V5, "bad").await;
    // PUBLISH with QoS 3: malformed.
    bad.send_bytes(&[0x36, 0x04, 0x00, 0x01, b't', 0x00]).await;
    bad.told_why_then_closed(0x81, "QoS 3 is reserved (at byte 0)")
        .await;
    // A wildcard in a PUBLISH topic: 0x90.
    let mut bad2 = Peer::client(&broker, V5, "bad2").await;
    bad2.send_bytes(&[0x30, 0x04, 0x00, 0x01, b'#', 0x00]).await;
    assert_eq!(
        bad2.recv_bytes().await,
        disconnect_why(
            0x90,
            "invalid topic name: wildcard character at byte 0 in a topic name (at byte 2)"
        )
    );
    // Everyone else is still served.
    let mut other = Peer::client(&broker, V5, "other").await;
    other
        .send(&publish("t", b"ok", QoS::AtMostOnce, None))
        .await;
    assert_eq!(
        good.recv_bytes().await,
        [0x30, 0x06, 0x00, 0x01, b't', 0x00, b'o', b'k']
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn too_large_packet_is_refused_before_its_body() {
    let broker = broker_with(|c| c.max_packet_size = 64).await;
    let mut peer = Peer::client(&broker, V5, "big").await;
    // A PUBLISH announcing 1000 bytes: refused as soon as the length is read.
    peer.send_bytes(&[0x30, 0xE8, 0x07]).await;
    peer.told_why_then_closed(
        0x95,
        "packet of 1003 bytes exceeds the maximum of 64 (at byte 1)",
    )
    .await;
    broker.shutdown().await;
}

#[tokio::test]
async fn silent_tcp_connection_is_dropped_after_the_connect_timeout() {
    let broker = broker_with(|c| c.connect_timeout = 1).await;
    let mut peer = Peer::raw(&broker, V311).await;
    let started = std::time::Instant::now();
    assert!(peer.closed().await);
    assert!(started.elapsed() >= Duration::from_millis(900));
    broker.shutdown().await;
}

#[tokio::test]
async fn keep_alive_is_enforced_at_one_and_a_half_times() {
    let broker = broker_with(|_| {}).await;
    let mut peer = Peer::connect(
        &broker,
        Connect {
            keep_alive: 1,
            ..Connect::new(V5, "sleepy")
        },
    )
    .await;
    let started = std::time::Instant::now();
    assert_eq!(
        peer.recv_bytes().await,
        disconnect_why(0x8D, "nothing received for 1.5 times the keep alive")
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1400), "{waited:?}");
    assert!(peer.closed().await);
    broker.shutdown().await;
}

#[tokio::test]
async fn session_takeover_disconnects_the_old_connection_with_0x8e() {
    let broker = broker_with(|_| {}).await;
    let mut first = Peer::client(&broker, V5, "same").await;
    let _second = Peer::client(&broker, V5, "same").await;
    first
        .told_why_then_closed(0x8E, "another connection took this session over")
        .await;
    broker.shutdown().await;
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_once_at_the_highest_qos() {
    let broker = broker_with(|_| {}).await;
    let mut sub = Peer::client(&broker, V311, "overlap").await;
    sub.subscribe("a/#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    sub.subscribe("a/+", SubscriptionOptions::qos(QoS::AtLeastOnce), 2)
        .await;
    let mut publisher = Peer::client(&broker, V311, "p").await;
    publisher
        .send(&publish("a/b", b"x", QoS::AtLeastOnce, Some(1)))
        .await;
    assert_eq!(
        sub.recv_bytes().await,
        [0x32, 0x08, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, b'x']
    );
    assert_eq!(sub.try_recv_bytes(Duration::from_millis(300)).await, None);
    broker.shutdown().await;
}

#[tokio::test]
async fn no_local_and_shared_subscriptions() {
    let broker = broker_with(|_| {}).await;
    let mut me = Peer::client(&broker, V5, "me").await;
    let no_local = SubscriptionOptions {
        no_local: true,
        ..SubscriptionOptions::qos(QoS::AtMostOnce)
    };
    me.subscribe("echo", no_local, 1).await;
    me.send(&publish("echo", b"mine", QoS::AtMostOnce, None))
        .await;
    me.send_bytes(&[0xC0, 0x00]).await;
    assert_eq!(
        me.recv_bytes().await,
        [0xD0, 0x00],
        "no copy of its own message"
    );

    let mut w1 = Peer::client(&broker, V5, "w1").await;
    let mut w2 = Peer::client(&broker, V5, "w2").await;
    w1.subscribe(
        "$share/workers/jobs",
        SubscriptionOptions::qos(QoS::AtMostOnce),
        1,
    )
    .await;
    w2.subscribe(
        "$share/workers/jobs",
        SubscriptionOptions::qos(QoS::AtMostOnce),
        1,
    )
    .await;
    for _ in 0..4 {
        me.send(&publish("jobs", b"j", QoS::AtMostOnce, None)).await;
    }
    let mut got = 0;
    for peer in [&mut w1, &mut w2] {
        while peer
            .try_recv_bytes(Duration::from_millis(300))
            .await
            .is_some()
        {
            got += 1;
        }
    }
    assert_eq!(got, 4, "one delivery per message to the group");
    broker.shutdown().await;
}

#[tokio::test]
async fn shutdown_tells_5_0_clients_and_stats_count() {
    let broker = broker_with(|_| {}).await;
    let mut peer = Peer::client(&broker, V5, "stay").await;
    peer.send(&publish("x", b"1", QoS::AtMostOnce, None)).await;
    peer.send_bytes(&[0xC0, 0x00]).await;
    assert_eq!(peer.recv_bytes().await, [0xD0, 0x00]);
    let stats = broker.stats();
    assert_eq!(stats.clients_connected, 1);
    assert_eq!(stats.messages_received, 1);
    let stop = tokio::spawn(broker.shutdown());
    peer.told_why_then_closed(0x8B, "the broker is stopping")
        .await;
    tokio::time::timeout(WAIT, stop).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stuck_subscriber_is_bounded_slows_its_publisher_and_drops_are_counted() {
    let broker = broker_with(|c| c.max_queued_messages = 2).await;
    // Receive Maximum 1: one QoS 1 message in flight to this subscriber, never acknowledged.
    let mut stuck = Peer::with_receive_maximum(&broker, "stuck", 1).await;
    stuck
        .subscribe("flot", SubscriptionOptions::qos(QoS::AtLeastOnce), 1)
        .await;
    let mut publisher = Peer::client(&broker, V5, "fast").await;
    // Kept: 1 in flight + 2 in the session's queue + 2 in its mailbox. Each of the next 3
    // makes the publisher's connection wait (backpressure), then is dropped and counted.
    for id in 1..=8u16 {
        publisher
            .send(&publish("flot", b"m", QoS::AtLeastOnce, Some(id)))
            .await;
        assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, 0x00, id as u8]);
    }
    publisher.send_bytes(&[0xC0, 0x00]).await;
    assert_eq!(publisher.recv_bytes().await, [0xD0, 0x00]);
    assert_eq!(broker.stats().dropped, 3);
    let first = stuck.recv_bytes().await;
    assert_eq!(&first[..7], &[0x32, 0x0A, 0x00, 0x04, b'f', b'l', b'o']);
    assert_eq!(stuck.try_recv_bytes(Duration::from_millis(300)).await, None);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_slow_subscriber_loses_no_qos1_message() {
    let broker = broker_with(|c| c.max_queued_messages = 4).await;
    let mut slow = Peer::client(&broker, V311, "slow").await;
    slow.subscribe("lent", SubscriptionOptions::qos(QoS::AtLeastOnce), 1)
        .await;
    let mut publisher = Peer::client(&broker, V311, "quick").await;
    let count = 200u16;
    let sender = tokio::spawn(async move {
        for id in 1..=count {
            publisher
                .send(&publish("lent", b"m", QoS::AtLeastOnce, Some(id)))
                .await;
        }
        publisher
    });
    // Acknowledge each message as it comes; every one arrives.
    let mut received = 0;
    while received < count {
        let got = slow.recv_bytes().await;
        assert_eq!(got[0] & 0xF6, 0x32, "{got:02X?}");
        let id = [got[8], got[9]];
        slow.send_bytes(&[0x40, 0x02, id[0], id[1]]).await;
        received += 1;
    }
    let _publisher = sender.await.unwrap();
    assert_eq!(broker.stats().dropped, 0);
    broker.shutdown().await;
}

/// Receives the next PUBLISH, checks it carries `expected` as its payload, and
/// acknowledges it (QoS 1).
async fn take_and_acknowledge(peer: &mut Peer, expected: u16) {
    let (payload, _, id) = delivered(V311, &peer.recv_bytes().await);
    assert_eq!(payload, expected.to_be_bytes(), "in order");
    let [hi, lo] = id.expect("a QoS 1 delivery").to_be_bytes();
    peer.send_bytes(&[0x40, 0x02, hi, lo]).await;
}

#[tokio::test]
async fn a_burst_after_a_calm_spell_is_routed_together_and_waits_for_room_in_order() {
    // A mailbox of 4: the burst below is far more than the subscriber's session and
    // mailbox hold at once.
    let broker = broker_with(|c| c.max_queued_messages = 4).await;
    let mut sub = Peer::client(&broker, V311, "sub").await;
    sub.subscribe("calme", SubscriptionOptions::qos(QoS::AtLeastOnce), 1)
        .await;
    let mut publisher = Peer::client(&broker, V311, "pub").await;
    // A calm spell: each message is taken and acknowledged before the next is sent, so
    // none waits for room, and the publisher's QoS 1 messages are then routed a read at a
    // time.
    for n in 1..=300u16 {
        publisher
            .send(&publish(
                "calme",
                &n.to_be_bytes(),
                QoS::AtLeastOnce,
                Some(n),
            ))
            .await;
        let [hi, lo] = n.to_be_bytes();
        assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, hi, lo]);
        take_and_acknowledge(&mut sub, n).await;
    }
    // A burst in one write, routed together: most of it must wait for room.
    let mut burst = Vec::new();
    for n in 301..=400u16 {
        let payload = n.to_be_bytes();
        let packet = publish("calme", &payload, QoS::AtLeastOnce, Some(n));
        let at = burst.len();
        burst.resize(at + packet.encoded_len(V311).unwrap(), 0);
        packet.encode(V311, &mut burst[at..]).unwrap();
    }
    publisher.send_bytes(&burst).await;
    for n in 301..=400u16 {
        take_and_acknowledge(&mut sub, n).await;
    }
    for n in 301..=400u16 {
        let [hi, lo] = n.to_be_bytes();
        assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, hi, lo]);
    }
    assert_eq!(sub.try_recv_bytes(Duration::from_millis(100)).await, None);
    assert_eq!(broker.stats().dropped, 0);
    broker.shutdown().await;
}

/// Waits (bounded) until the broker's statistics satisfy `ready`.
async fn until_stats(
    broker: &BrokerHandle,
    ready: impl Fn(&facteur_broker::StatsSnapshot) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ready(&broker.stats()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            broker.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn persistent(version: ProtocolVersion, id: &str) -> Connect<'_> {
    Connect {
        clean_start: false,
        ..Connect::new(version, id)
    }
}

#[tokio::test]
async fn persistent_session_keeps_subscriptions_and_queues_qos1_offline() {
    let broker = broker_with(|_| {}).await;
    let mut sub = Peer::raw(&broker, V311).await;
    sub.send(&Packet::Connect(persistent(V311, "keeper"))).await;
    assert_eq!(sub.recv_bytes().await, [0x20, 0x02, 0x00, 0x00]);
    sub.subscribe("news", SubscriptionOptions::qos(QoS::AtLeastOnce), 1)
        .await;
    drop(sub);
    until_stats(&broker, |s| s.clients_connected == 0).await;

    let mut publisher = Peer::client(&broker, V311, "pub").await;
    publisher
        .send(&publish("news", b"a", QoS::AtLeastOnce, Some(1)))
        .await;
    assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, 0x00, 0x01]);
    publisher
        .send(&publish("news", b"b", QoS::AtMostOnce, None))
        .await;
    publisher.send_bytes(&[0xC0, 0x00]).await;
    assert_eq!(publisher.recv_bytes().await, [0xD0, 0x00]);
    // Both routed (in order, by one connection): the QoS 0 one was dropped, not kept.
    until_stats(&broker, |s| s.dropped == 1).await;

    // Back with clean session 0: session present, the QoS 1 message waiting, not the QoS 0.
    let mut sub = Peer::raw(&broker, V311).await;
    sub.send(&Packet::Connect(persistent(V311, "keeper"))).await;
    assert_eq!(sub.recv_bytes().await, [0x20, 0x02, 0x01, 0x00]);
    assert_eq!(
        sub.recv_bytes().await,
        [0x32, 0x09, 0x00, 0x04, b'n', b'e', b'w', b's', 0x00, 0x01, b'a']
    );
    sub.send_bytes(&[0x40, 0x02, 0x00, 0x01]).await;
    assert_eq!(sub.try_recv_bytes(Duration::from_millis(300)).await, None);
    drop(sub);
    until_stats(&broker, |s| s.clients_connected == 1).await;

    // Clean session 1 discards it: no session present, no subscription left.
    let mut sub = Peer::raw(&broker, V311).await;
    sub.send(&Packet::Connect(Connect::new(V311, "keeper")))
        .await;
    assert_eq!(sub.recv_bytes().await, [0x20, 0x02, 0x00, 0x00]);
    publisher
        .send(&publish("news", b"c", QoS::AtLeastOnce, Some(2)))
        .await;
    assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, 0x00, 0x02]);
    assert_eq!(sub.try_recv_bytes(Duration::from_millis(300)).await, None);
    broker.shutdown().await;
}

#[tokio::test]
async fn takeover_resumes_the_session_and_resends_unacknowledged_messages() {
    let broker = broker_with(|_| {}).await;
    let mut first = Peer::raw(&broker, V311).await;
    first
        .send(&Packet::Connect(persistent(V311, "mobile")))
        .await;
    assert_eq!(first.recv_bytes().await, [0x20, 0x02, 0x00, 0x00]);
    first
        .subscribe("gps", SubscriptionOptions::qos(QoS::AtLeastOnce), 1)
        .await;
    let mut publisher = Peer::client(&broker, V311, "tracker").await;
    publisher
        .send(&publish("gps", b"48.8", QoS::AtLeastOnce, Some(5)))
        .await;
    assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, 0x00, 0x05]);
    // Received, never acknowledged.
    assert_eq!(
        first.recv_bytes().await,
        [0x32, 0x0B, 0x00, 0x03, b'g', b'p', b's', 0x00, 0x01, b'4', b'8', b'.', b'8']
    );
    let mut second = Peer::raw(&broker, V311).await;
    second
        .send(&Packet::Connect(persistent(V311, "mobile")))
        .await;
    assert!(first.closed().await);
    assert_eq!(second.recv_bytes().await, [0x20, 0x02, 0x01, 0x00]);
    // Resent with DUP, same packet identifier.
    assert_eq!(
        second.recv_bytes().await,
        [0x3A, 0x0B, 0x00, 0x03, b'g', b'p', b's', 0x00, 0x01, b'4', b'8', b'.', b'8']
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn session_expiry_interval_5_0() {
    let broker = broker_with(|_| {}).await;
    let expiry = [facteur_codec::Property::SessionExpiryInterval(1)];
    let connect = Connect {
        clean_start: false,
        properties: Properties::from_slice(&expiry),
        ..Connect::new(V5, "brief")
    };
    let peer = Peer::connect(&broker, connect).await;
    drop(peer);
    until_stats(&broker, |s| s.clients_connected == 0 && s.sessions == 1).await;
    let lost = std::time::Instant::now();
    until_stats(&broker, |s| s.sessions == 0).await;
    assert!(
        lost.elapsed() >= Duration::from_millis(900),
        "{:?}",
        lost.elapsed()
    );

    // Default expiry 0: the session ends with the connection.
    let peer = Peer::client(&broker, V5, "gone").await;
    drop(peer);
    until_stats(&broker, |s| s.sessions == 0 && s.clients_connected == 0).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn will_delay_and_a_reconnect_that_cancels_it() {
    let broker = broker_with(|_| {}).await;
    let mut watcher = Peer::client(&broker, V5, "watcher").await;
    watcher
        .subscribe("last/+", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    let props = |delay| [facteur_codec::Property::WillDelayInterval(delay)];
    let session = [facteur_codec::Property::SessionExpiryInterval(60)];
    let delayed = props(1);
    let will = |topic, properties| Will {
        topic,
        payload: b"bye",
        qos: QoS::AtMostOnce,
        retain: false,
        properties,
    };
    let a = Peer::connect(
        &broker,
        Connect {
            will: Some(will("last/a", Properties::from_slice(&delayed))),
            properties: Properties::from_slice(&session),
            ..Connect::new(V5, "a")
        },
    )
    .await;
    drop(a);
    let lost = std::time::Instant::now();
    let got = watcher.recv_bytes().await;
    assert!(
        lost.elapsed() >= Duration::from_millis(900),
        "{:?}",
        lost.elapsed()
    );
    assert_eq!(&got[4..10], b"last/a");

    let longer = props(2);
    let b = Peer::connect(
        &broker,
        Connect {
            will: Some(will("last/b", Properties::from_slice(&longer))),
            properties: Properties::from_slice(&session),
            ..Connect::new(V5, "b")
        },
    )
    .await;
    drop(b);
    until_stats(&broker, |s| s.clients_connected == 1).await;
    let back = Connect {
        clean_start: false,
        properties: Properties::from_slice(&session),
        ..Connect::new(V5, "b")
    };
    let _b = Peer::connect(&broker, back).await;
    assert_eq!(
        watcher.try_recv_bytes(Duration::from_millis(2500)).await,
        None
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn deliveries_carry_every_matching_subscription_identifier() {
    let broker = broker_with(|_| {}).await;
    let mut sub = Peer::client(&broker, V5, "ids").await;
    for (filter, id, packet_id) in [("a/#", 7, 1u16), ("a/+", 300, 2)] {
        let subs = [Subscription::new(filter, QoS::AtMostOnce)];
        let props = [facteur_codec::Property::SubscriptionIdentifier(id)];
        let subscribe = Subscribe {
            properties: Properties::from_slice(&props),
            ..Subscribe::new(packet_id, &subs)
        };
        sub.send(&Packet::Subscribe(subscribe)).await;
        assert_eq!(
            sub.recv_bytes().await,
            [0x90, 0x04, 0x00, packet_id as u8, 0x00, 0x00]
        );
    }
    let mut publisher = Peer::client(&broker, V5, "p").await;
    publisher
        .send(&publish("a/b", b"x", QoS::AtMostOnce, None))
        .await;
    // One PUBLISH, with Subscription Identifier 7 and 300 (0xAC 0x02) in match order.
    let got = sub.recv_bytes().await;
    let Ok(Status::Complete(d)) = decode(&got, V5, u32::MAX) else {
        panic!()
    };
    let Packet::Publish(p) = d.packet else {
        panic!()
    };
    let mut ids: Vec<u32> = p.properties.subscription_identifiers().collect();
    ids.sort_unstable();
    assert_eq!(ids, [7, 300]);
    assert_eq!(sub.try_recv_bytes(Duration::from_millis(300)).await, None);
    broker.shutdown().await;
}

#[tokio::test]
async fn sys_topics_every_interval_not_matched_by_a_bare_wildcard() {
    let broker = broker_with(|c| c.sys_interval = 1).await;
    let mut everything = Peer::client(&broker, V311, "all").await;
    everything
        .subscribe("#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    let mut admin = Peer::client(&broker, V311, "admin").await;
    admin
        .subscribe(
            "$SYS/broker/clients/connected",
            SubscriptionOptions::qos(QoS::AtMostOnce),
            1,
        )
        .await;
    // The retained value may predate the second client; a later update says 2.
    let topic = b"$SYS/broker/clients/connected";
    let mut values = Vec::new();
    while values.last().map(Vec::as_slice) != Some(&b"2"[..]) {
        assert!(values.len() < 4, "{values:?}");
        let got = admin.recv_bytes().await;
        assert_eq!(&got[4..4 + topic.len()], topic);
        values.push(got[4 + topic.len()..].to_vec());
    }
    admin
        .subscribe(
            "$SYS/broker/load/messages/received/1min",
            SubscriptionOptions::qos(QoS::AtMostOnce),
            2,
        )
        .await;
    let got = admin.recv_bytes().await;
    let topic = b"$SYS/broker/load/messages/received/1min";
    assert_eq!(&got[4..4 + topic.len()], topic);
    let load: f64 = std::str::from_utf8(&got[4 + topic.len()..])
        .unwrap()
        .parse()
        .unwrap();
    assert!(load >= 0.0, "{load}");
    assert_eq!(
        everything.try_recv_bytes(Duration::from_millis(300)).await,
        None
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn in_process_publish_and_subscribe() {
    let broker = broker_with(|_| {}).await;
    broker
        .publish("etat/lampe", b"on", QoS::AtLeastOnce, true)
        .unwrap();
    let mut local = broker.subscribe("etat/#", QoS::AtMostOnce).unwrap();
    let retained = local.recv().await.unwrap();
    assert_eq!(
        (
            retained.topic.as_str(),
            &retained.payload[..],
            retained.qos,
            retained.retain
        ),
        ("etat/lampe", &b"on"[..], QoS::AtMostOnce, true)
    );
    let mut client = Peer::client(&broker, V311, "c").await;
    client
        .send(&publish("etat/porte", b"ouverte", QoS::AtMostOnce, None))
        .await;
    let live = tokio::time::timeout(WAIT, local.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((live.topic.as_str(), live.retain), ("etat/porte", false));
    assert!(broker
        .publish("etat/#", b"", QoS::AtMostOnce, false)
        .is_err());
    assert_eq!(broker.stats().subscriptions, 1);
    drop(local);
    assert_eq!(broker.stats().subscriptions, 0);
    let mut again = broker.subscribe("x", QoS::AtMostOnce).unwrap();
    broker.shutdown().await;
    assert_eq!(again.recv().await, None);
}

/// A PUBLISH the broker sent: its payload, QoS and packet identifier.
fn delivered(version: ProtocolVersion, bytes: &[u8]) -> (Vec<u8>, QoS, Option<u16>) {
    match decode(bytes, version, u32::MAX) {
        Ok(Status::Complete(d)) => match d.packet {
            Packet::Publish(p) => (p.payload.to_vec(), p.qos, p.packet_id),
            other => panic!("PUBLISH expected, got {other:?}"),
        },
        other => panic!("PUBLISH expected, got {other:?}"),
    }
}

/// Sends PINGREQ and waits for PINGRESP: everything sent before has been acted on.
async fn sync(peer: &mut Peer) {
    peer.send_bytes(&[0xC0, 0x00]).await;
    assert_eq!(peer.recv_bytes().await, [0xD0, 0x00]);
}

/// The first messages of the queue tests below: m1 and m2 at QoS 1, q1 at QoS 0.
const M1_M2_Q1: [(&[u8], QoS, Option<u16>); 3] = [
    (b"m1", QoS::AtLeastOnce, Some(1)),
    (b"m2", QoS::AtLeastOnce, Some(2)),
    (b"q1", QoS::AtMostOnce, None),
];

/// Publishes each `(payload, qos, packet id)` to "flot" in order, checking the broker's
/// PUBACK of each QoS 1 one.
async fn publish_in_order(publisher: &mut Peer, messages: &[(&[u8], QoS, Option<u16>)]) {
    for &(payload, qos, id) in messages {
        publisher.send(&publish("flot", payload, qos, id)).await;
        if let Some(id) = id {
            assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, 0x00, id as u8]);
        }
    }
}

#[tokio::test]
async fn a_full_queue_drops_qos0_messages_before_qos1_ones() {
    let broker = broker_with(|c| c.max_queued_messages = 2).await;
    // Receive Maximum 1: one QoS 1 message in flight, the rest wait.
    let mut slow = Peer::with_receive_maximum(&broker, "slow", 1).await;
    slow.subscribe("flot", SubscriptionOptions::qos(QoS::AtLeastOnce), 1)
        .await;
    let mut publisher = Peer::client(&broker, V5, "pub").await;
    // m1 in flight; m2 waits for it in the session's queue (2), q1 behind m2.
    publish_in_order(&mut publisher, &M1_M2_Q1).await;
    until_stats(&broker, |s| s.messages_sent == 3).await;
    // The queue is full: m3 takes the place of q1 there.
    publish_in_order(&mut publisher, &[(b"m3", QoS::AtLeastOnce, Some(3))]).await;
    until_stats(&broker, |s| s.dropped == 1).await;
    // Nothing left to displace: q2 and m4 wait in the mailbox (2), and q3 finds that full.
    publish_in_order(
        &mut publisher,
        &[
            (b"q2", QoS::AtMostOnce, None),
            (b"m4", QoS::AtLeastOnce, Some(4)),
            (b"q3", QoS::AtMostOnce, None),
        ],
    )
    .await;
    sync(&mut publisher).await;
    assert_eq!(broker.stats().dropped, 2, "q1 and q3");

    // The subscriber catches up: every QoS 1 message, in order. When m2 leaves the queue,
    // q2 and m4 come in from the mailbox: the queue (2) is full again, and m4 takes q2's
    // place.
    let (mut got1, mut got0) = (Vec::new(), Vec::new());
    while got1.len() < 4 {
        let (payload, qos, id) = delivered(V5, &slow.recv_bytes().await);
        match id {
            Some(id) => {
                assert_eq!(qos, QoS::AtLeastOnce);
                got1.push(payload);
                slow.send_bytes(&[0x40, 0x02, 0x00, id as u8]).await;
            }
            None => got0.push(payload),
        }
    }
    slow.send(&Packet::PingReq).await;
    loop {
        let bytes = slow.recv_bytes().await;
        if bytes == [0xD0, 0x00] {
            break;
        }
        got0.push(delivered(V5, &bytes).0);
    }
    assert_eq!(got1, [b"m1", b"m2", b"m3", b"m4"]);
    assert!(got0.is_empty(), "{got0:?}");
    assert_eq!(broker.stats().dropped, 3, "q1, q3 and q2");
    broker.shutdown().await;
}

/// A message encoded once for many subscribers (a wide fan-out: at least the broker's
/// `WIDE_FAN_OUT`, 64) waits in each one's mailbox until it can go out at once; once the
/// mailbox is full, the session's queue takes what its limits allow, where a QoS 1 message
/// displaces a QoS 0 one.
#[tokio::test]
async fn a_wide_fan_outs_backlog_waits_in_the_mailbox_until_it_is_full() {
    const SUBSCRIBERS: u64 = 64;
    let broker = broker_with(|c| c.max_queued_messages = 2).await;
    // Each message is encoded once for all; Receive Maximum 1 for each subscriber.
    let mut slow = Vec::new();
    for i in 0..SUBSCRIBERS {
        let mut peer = Peer::with_receive_maximum(&broker, &format!("slow{i}"), 1).await;
        peer.subscribe("flot", SubscriptionOptions::qos(QoS::AtLeastOnce), 1)
            .await;
        slow.push(peer);
    }
    let mut publisher = Peer::client(&broker, V5, "pub").await;
    // m1 goes out; m2 and q1 fill each mailbox (2), and each session's queue (2) takes them.
    publish_in_order(&mut publisher, &M1_M2_Q1).await;
    until_stats(&broker, |s| s.messages_sent == 3 * SUBSCRIBERS).await;
    // m3 waits in each mailbox, which has room: nothing is dropped yet.
    publish_in_order(&mut publisher, &[(b"m3", QoS::AtLeastOnce, Some(3))]).await;
    assert_eq!(broker.stats().dropped, 0);
    // q2 fills each mailbox: each queue takes m3 in the place of q1.
    publisher
        .send(&publish("flot", b"q2", QoS::AtMostOnce, None))
        .await;
    until_stats(&broker, |s| s.dropped == SUBSCRIBERS).await;
    // Nothing left to displace: q2 and m4 wait in each mailbox, and q3 finds it full.
    publish_in_order(
        &mut publisher,
        &[
            (b"m4", QoS::AtLeastOnce, Some(4)),
            (b"q3", QoS::AtMostOnce, None),
        ],
    )
    .await;
    sync(&mut publisher).await;
    assert_eq!(broker.stats().dropped, 2 * SUBSCRIBERS, "q1 and q3, each");
    // Each subscriber catches up: when m2 leaves its queue, q2 comes in behind m3, and m4
    // then has room in the mailbox. Everything kept arrives, in order.
    for peer in &mut slow {
        let mut got = Vec::new();
        while got.len() < 5 {
            let (payload, qos, id) = delivered(V5, &peer.recv_bytes().await);
            got.push(payload);
            if let Some(id) = id {
                assert_eq!(qos, QoS::AtLeastOnce);
                peer.send_bytes(&[0x40, 0x02, 0x00, id as u8]).await;
            }
        }
        peer.send(&Packet::PingReq).await;
        assert_eq!(peer.recv_bytes().await, [0xD0, 0x00], "nothing more");
        assert_eq!(got, [&b"m1"[..], b"m2", b"m3", b"q2", b"m4"]);
    }
    assert_eq!(broker.stats().dropped, 2 * SUBSCRIBERS);
    broker.shutdown().await;
}

#[tokio::test]
async fn max_queued_bytes_bounds_an_offline_session() {
    let broker = broker_with(|c| c.max_queued_bytes = 10).await;
    let mut sub = Peer::raw(&broker, V311).await;
    sub.send(&Packet::Connect(persistent(V311, "keeper"))).await;
    assert_eq!(sub.recv_bytes().await, [0x20, 0x02, 0x00, 0x00]);
    sub.subscribe("news", SubscriptionOptions::qos(QoS::AtLeastOnce), 1)
        .await;
    drop(sub);
    until_stats(&broker, |s| s.clients_connected == 0).await;

    let mut publisher = Peer::client(&broker, V311, "pub").await;
    // 6 bytes are kept; 6 more would make 12, above the 10 allowed.
    for (id, payload) in [(1u16, b"123456"), (2, b"abcdef")] {
        publisher
            .send(&publish("news", payload, QoS::AtLeastOnce, Some(id)))
            .await;
        assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, 0x00, id as u8]);
    }
    until_stats(&broker, |s| s.dropped == 1).await;

    let mut sub = Peer::raw(&broker, V311).await;
    sub.send(&Packet::Connect(persistent(V311, "keeper"))).await;
    assert_eq!(sub.recv_bytes().await, [0x20, 0x02, 0x01, 0x00]);
    let (payload, _, id) = delivered(V311, &sub.recv_bytes().await);
    assert_eq!(payload, b"123456");
    sub.send_bytes(&[0x40, 0x02, 0x00, id.unwrap() as u8]).await;
    assert_eq!(sub.try_recv_bytes(Duration::from_millis(300)).await, None);
    broker.shutdown().await;
}

#[tokio::test]
async fn receive_maximum_is_announced_and_enforced_with_0x93() {
    let broker = broker_with(|c| c.receive_maximum = 2).await;
    let mut client = Peer::raw(&broker, V5).await;
    client
        .send(&Packet::Connect(Connect::new(V5, "eager")))
        .await;
    // Receive Maximum 2, Topic Alias Maximum 10, Maximum Packet Size 1 MiB.
    assert_eq!(
        client.recv_bytes().await,
        [
            0x20, 0x0E, 0x00, 0x00, 0x0B, 0x21, 0x00, 0x02, 0x22, 0x00, 0x0A, 0x27, 0x00, 0x10,
            0x00, 0x00
        ]
    );
    // QoS 2 messages stay unacknowledged until PUBREL: the third is one too many.
    for id in 1..=2u8 {
        client
            .send(&publish("t", b"x", QoS::ExactlyOnce, Some(u16::from(id))))
            .await;
        assert_eq!(client.recv_bytes().await, [0x50, 0x02, 0x00, id]);
    }
    client
        .send(&publish("t", b"x", QoS::ExactlyOnce, Some(3)))
        .await;
    client
        .told_why_then_closed(
            0x93,
            "more QoS 1/2 messages unacknowledged than the Receive Maximum",
        )
        .await;
    broker.shutdown().await;
}

#[tokio::test]
async fn max_inflight_messages_applies_to_3_1_1_subscribers() {
    let broker = broker_with(|c| c.max_inflight_messages = 2).await;
    let mut sub = Peer::client(&broker, V311, "sub").await;
    sub.subscribe("t", SubscriptionOptions::qos(QoS::AtLeastOnce), 1)
        .await;
    let mut publisher = Peer::client(&broker, V311, "pub").await;
    for id in 1..=3u16 {
        publisher
            .send(&publish("t", b"x", QoS::AtLeastOnce, Some(id)))
            .await;
        assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, 0x00, id as u8]);
    }
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(delivered(V311, &sub.recv_bytes().await).2.unwrap());
    }
    // Two unacknowledged: the third waits for an acknowledgement.
    assert_eq!(sub.try_recv_bytes(Duration::from_millis(300)).await, None);
    sub.send_bytes(&[0x40, 0x02, 0x00, ids[0] as u8]).await;
    let (payload, _, id) = delivered(V311, &sub.recv_bytes().await);
    assert_eq!(payload, b"x");
    assert!(id.is_some_and(|id| !ids.contains(&id)));
    broker.shutdown().await;
}

#[tokio::test]
async fn refusals_carry_a_reason_string_unless_the_client_declines_it() {
    let broker = broker_with(|_| {}).await;
    // UNSUBSCRIBE 2 from `z`, which it never subscribed to.
    let unsubscribe = [0xA2, 0x06, 0x00, 0x02, 0x00, 0x00, 0x01, b'z'];
    let mut asks = Peer::client(&broker, V5, "asks").await;
    asks.send_bytes(&unsubscribe).await;
    let why = b"no subscription with this filter";
    let mut unsuback = vec![0xB0, 39, 0x00, 0x02, 35, 0x1F, 0x00, 32];
    unsuback.extend_from_slice(why);
    unsuback.push(0x11);
    assert_eq!(asks.recv_bytes().await, unsuback);

    // Request Problem Information 0: the bare codes only.
    let props = [facteur_codec::Property::RequestProblemInformation(false)];
    let mut declines = Peer::connect(
        &broker,
        Connect {
            properties: Properties::from_slice(&props),
            ..Connect::new(V5, "declines")
        },
    )
    .await;
    declines.send_bytes(&unsubscribe).await;
    assert_eq!(
        declines.recv_bytes().await,
        [0xB0, 0x04, 0x00, 0x02, 0x00, 0x11]
    );

    // A client taking no packet above 16 bytes gets the CONNACK without its reason string.
    let broker_full = broker_with(|c| c.max_connections = 1).await;
    let _first = Peer::client(&broker_full, V5, "first").await;
    let small = [facteur_codec::Property::MaximumPacketSize(16)];
    let mut second = Peer::raw(&broker_full, V5).await;
    second
        .send(&Packet::Connect(Connect {
            properties: Properties::from_slice(&small),
            ..Connect::new(V5, "second")
        }))
        .await;
    assert_eq!(second.recv_bytes().await, [0x20, 0x03, 0x00, 0x89, 0x00]);
    broker_full.shutdown().await;
    broker.shutdown().await;
}
