//! Parked sessions (an idle client held without a task of its own): each test waits until
//! the sessions it needs are parked (`StatsSnapshot::sessions_parked`), then checks at byte
//! level that a parked session is served exactly as a running one: its client's packets,
//! messages routed to it, its keep alive, its will, a takeover, a reconnection and the
//! broker's stop.

mod common;

use common::*;
use facteur_broker::BrokerHandle;
use facteur_codec::{Connect, QoS, SubscriptionOptions, Will};
use std::time::Duration;

/// Waits (bounded) until exactly `n` sessions are parked.
async fn parked(broker: &BrokerHandle, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = broker.stats().sessions_parked;
        if now == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} sessions parked, {n} expected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn qos1() -> SubscriptionOptions {
    SubscriptionOptions::qos(QoS::AtLeastOnce)
}

#[tokio::test]
async fn an_idle_client_parks_and_is_answered_when_it_speaks() {
    let broker = broker_with(|_| {}).await;
    let mut peer = Peer::client(&broker, V311, "quiet").await;
    parked(&broker, 1).await;
    // PINGREQ to the parked session: PINGRESP.
    peer.send_bytes(&[0xC0, 0x00]).await;
    assert_eq!(peer.recv_bytes().await, [0xD0, 0x00]);
    // Quiet again: it parks again.
    parked(&broker, 1).await;
    peer.send_bytes(&[0xC0, 0x00]).await;
    assert_eq!(peer.recv_bytes().await, [0xD0, 0x00]);
    assert_eq!(broker.stats().clients_connected, 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn parked_subscribers_get_what_is_published() {
    let broker = broker_with(|_| {}).await;
    let mut subscribers = Vec::new();
    for i in 0..50 {
        let mut sub = Peer::client(&broker, V311, &format!("sub-{i}")).await;
        assert_eq!(
            sub.subscribe("maison/#", qos1(), 1).await,
            [0x90, 3, 0, 1, 1]
        );
        subscribers.push(sub);
    }
    let mut publisher = Peer::client(&broker, V311, "capteur").await;
    parked(&broker, 51).await;
    publisher
        .send(&publish("maison/salon", b"21.5", QoS::AtLeastOnce, Some(7)))
        .await;
    assert_eq!(publisher.recv_bytes().await, [0x40, 2, 0, 7]);
    let expected = [&[0x32, 20, 0, 12][..], b"maison/salon", &[0, 1], b"21.5"].concat();
    for sub in &mut subscribers {
        assert_eq!(sub.recv_bytes().await, expected);
        sub.send_bytes(&[0x40, 2, 0, 1]).await;
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn keep_alive_is_enforced_on_a_parked_client() {
    let broker = broker_with(|_| {}).await;
    let connect = Connect {
        keep_alive: 2,
        ..Connect::new(V5, "sleepy")
    };
    let mut peer = Peer::connect(&broker, connect).await;
    let started = std::time::Instant::now();
    parked(&broker, 1).await;
    assert_eq!(
        peer.recv_bytes().await,
        disconnect_why(0x8D, "nothing received for 1.5 times the keep alive")
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(2900), "{waited:?}");
    assert!(waited < Duration::from_millis(4000), "{waited:?}");
    assert!(peer.closed().await);
    assert_eq!(broker.stats().sessions_parked, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_parked_client_that_goes_away_leaves_its_will() {
    let broker = broker_with(|_| {}).await;
    let mut watcher = Peer::client(&broker, V311, "watcher").await;
    assert_eq!(
        watcher.subscribe("etat/#", qos1(), 1).await,
        [0x90, 3, 0, 1, 1]
    );
    let connect = Connect {
        will: Some(Will {
            topic: "etat/capteur",
            payload: b"perdu",
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
        }),
        ..Connect::new(V311, "capteur")
    };
    let sensor = Peer::connect(&broker, connect).await;
    parked(&broker, 2).await;
    drop(sensor);
    let expected = [&[0x30, 19, 0, 12][..], b"etat/capteur", b"perdu"].concat();
    assert_eq!(watcher.recv_bytes().await, expected);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_parked_session_is_taken_over_with_its_subscriptions() {
    let broker = broker_with(|_| {}).await;
    let persistent = Connect {
        clean_start: false,
        ..Connect::new(V311, "same")
    };
    let mut first = Peer::connect(&broker, persistent).await;
    assert_eq!(first.subscribe("t/#", qos1(), 1).await, [0x90, 3, 0, 1, 1]);
    parked(&broker, 1).await;
    let (connack, mut second) = try_connect(&broker, persistent).await;
    assert_eq!(connack, [0x20, 2, 1, 0], "session present");
    // 3.1.1: the old connection is closed without a word.
    assert!(first.closed().await);
    let mut publisher = Peer::client(&broker, V311, "pub").await;
    publisher
        .send(&publish("t/1", b"x", QoS::AtMostOnce, None))
        .await;
    assert_eq!(
        second.recv_bytes().await,
        [0x30, 6, 0, 3, b't', b'/', b'1', b'x']
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_parked_persistent_session_keeps_messages_for_its_client() {
    let broker = broker_with(|_| {}).await;
    let persistent = Connect {
        clean_start: false,
        ..Connect::new(V311, "p")
    };
    let mut client = Peer::connect(&broker, persistent).await;
    assert_eq!(client.subscribe("q/#", qos1(), 1).await, [0x90, 3, 0, 1, 1]);
    client.send_bytes(&[0xE0, 0x00]).await;
    assert!(client.closed().await);
    let mut publisher = Peer::client(&broker, V311, "pub").await;
    // The session without a connection and the publisher.
    parked(&broker, 2).await;
    publisher
        .send(&publish("q/1", b"garde", QoS::AtLeastOnce, Some(3)))
        .await;
    assert_eq!(publisher.recv_bytes().await, [0x40, 2, 0, 3]);
    parked(&broker, 2).await;
    let (connack, mut client) = try_connect(&broker, persistent).await;
    assert_eq!(connack, [0x20, 2, 1, 0], "session present");
    let expected = [&[0x32, 12, 0, 3][..], b"q/1", &[0, 1], b"garde"].concat();
    assert_eq!(client.recv_bytes().await, expected);
    broker.shutdown().await;
}

#[tokio::test]
async fn stopping_the_broker_reaches_parked_clients() {
    let broker = broker_with(|_| {}).await;
    let mut peers = Vec::new();
    for i in 0..20 {
        peers.push(Peer::client(&broker, V5, &format!("c{i}")).await);
    }
    parked(&broker, 20).await;
    tokio::time::timeout(WAIT, broker.shutdown())
        .await
        .expect("the broker stops");
    for peer in &mut peers {
        peer.told_why_then_closed(0x8B, "the broker is stopping")
            .await;
    }
}

#[tokio::test]
async fn a_client_mid_packet_is_not_parked_and_is_dropped_on_keep_alive() {
    // Half a PUBLISH: the session keeps its task (and its read buffer) while it waits for
    // the rest; the keep alive still ends it.
    let broker = broker_with(|_| {}).await;
    let connect = Connect {
        keep_alive: 1,
        ..Connect::new(V311, "half")
    };
    let mut peer = Peer::connect(&broker, connect).await;
    parked(&broker, 1).await;
    peer.send_bytes(&[0x30, 10, 0, 3, b'a']).await;
    parked(&broker, 0).await;
    assert!(peer.closed().await);
    broker.shutdown().await;
}

#[test]
fn in_process_streams_on_a_runtime_without_io_keep_their_sessions_in_tasks() {
    // An embedder serving only in-process streams may build its runtime without tokio's
    // I/O driver: nothing parks there (the lot needs the driver), and a session whose
    // client went away keeps waiting in its task for the client to come back.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut config = facteur_broker::Config::default();
        config.listeners.clear();
        let broker = facteur_broker::Broker::start(config).await.unwrap();
        // CONNECT 3.1.1, client "p", clean session 0, keep alive 60.
        let connect = [
            0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'T', 4, 0, 0, 60, 0, 1, b'p',
        ];
        let (mut client, server) = tokio::io::duplex(4096);
        broker.serve_stream(server);
        client.write_all(&connect).await.unwrap();
        let mut connack = [0u8; 4];
        client.read_exact(&mut connack).await.unwrap();
        assert_eq!(connack, [0x20, 2, 0, 0]);
        client.write_all(&[0xE0, 0x00]).await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, client.read_to_end(&mut rest))
            .await
            .expect("closed after DISCONNECT")
            .unwrap();
        // Nothing to await: past the time a session that was busy waits before it would
        // park (between one and two seconds).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(broker.stats().sessions_parked, 0);
        let (mut again, server) = tokio::io::duplex(4096);
        broker.serve_stream(server);
        again.write_all(&connect).await.unwrap();
        tokio::time::timeout(WAIT, again.read_exact(&mut connack))
            .await
            .expect("the session answers")
            .unwrap();
        assert_eq!(connack, [0x20, 2, 1, 0], "session present");
        broker.shutdown().await;
    });
}
