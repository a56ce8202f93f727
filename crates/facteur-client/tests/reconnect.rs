//! Losing the connection: the proxy between client and broker cuts every connection at
//! each step of the QoS 1 and QoS 2 flows, or goes silent; the client reconnects, resumes
//! what was in flight and no future hangs. Offline publishing is bounded; a graceful
//! disconnect waits for what is in flight.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use facteur_client::{Error, ProtocolVersion, QoS, Reconnect};
use facteur_codec::PacketType;

/// Publishes `n` messages at `qos` through a proxy that cuts the connection once at
/// (`way`, `kind`); a subscriber connected directly counts what arrives.
async fn cut_once(
    broker: SocketAddr,
    version: ProtocolVersion,
    qos: QoS,
    way: Way,
    kind: PacketType,
) {
    let label = format!("{version} {qos:?} cut at {kind:?} {way:?}");
    let (sub, mut messages) = connect(options(broker, "cut-sub").protocol(version)).await;
    sub.subscribe("cut/#", QoS::ExactlyOnce).await.unwrap();
    let proxy = Proxy::start(broker).await;
    // Its own client identifier: the session of one case is not the next one's.
    let id = format!("cut-pub-{version}-{qos:?}-{kind:?}");
    let mut publisher_options = options(proxy.addr, &id).protocol(version);
    // A session that outlives the connection on the broker, so that it resumes it.
    publisher_options.clean_start = version.is_v5();
    publisher_options.session_expiry = Some(60);
    if !version.is_v5() {
        publisher_options.clean_start = false;
    }
    let (publisher, _) = connect(publisher_options).await;
    let mut events = publisher.events();
    proxy.cut_at(way, kind);
    let n = 5;
    let mut futures = Vec::new();
    for i in 0..n {
        let p = publisher.clone();
        futures.push(tokio::spawn(async move {
            p.publish(format!("cut/{i}"), format!("{i}")).qos(qos).await
        }));
    }
    for f in futures {
        let result = tokio::time::timeout(WAIT, f)
            .await
            .unwrap_or_else(|_| panic!("{label}: a publish future hangs"))
            .unwrap();
        assert!(result.is_ok(), "{label}: {result:?}");
    }
    assert_eq!(proxy.cuts(), 1, "{label}: the cut happened");
    disconnected(&mut events).await;
    assert!(reconnected(&mut events).await, "{label}: session resumed");
    // Every message arrives; exactly once at QoS 2, at least once at QoS 1.
    let mut seen: HashMap<String, usize> = HashMap::new();
    while seen.len() < n {
        let m = next(&mut messages).await;
        *seen.entry(m.topic).or_default() += 1;
    }
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), messages.recv()).await
    {
        *seen.entry(m.topic).or_default() += 1;
    }
    if qos == QoS::ExactlyOnce {
        assert!(seen.values().all(|&c| c == 1), "{label}: {seen:?}");
    }
    publisher.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_and_qos2_resume_after_a_cut_at_every_step() {
    let broker = facteur().await;
    let addr = broker.local_addrs()[0];
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        for (qos, way, kind) in [
            (QoS::AtLeastOnce, Way::ToBroker, PacketType::Publish),
            (QoS::AtLeastOnce, Way::ToClient, PacketType::PubAck),
            (QoS::ExactlyOnce, Way::ToBroker, PacketType::Publish),
            (QoS::ExactlyOnce, Way::ToClient, PacketType::PubRec),
            (QoS::ExactlyOnce, Way::ToBroker, PacketType::PubRel),
            (QoS::ExactlyOnce, Way::ToClient, PacketType::PubComp),
        ] {
            cut_once(addr, version, qos, way, kind).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_resume_after_a_cut_at_every_step() {
    if !have("mosquitto") {
        return;
    }
    let mosquitto = Mosquitto::start("", &[]).await;
    for (qos, way, kind) in [
        (QoS::AtLeastOnce, Way::ToClient, PacketType::PubAck),
        (QoS::ExactlyOnce, Way::ToClient, PacketType::PubRec),
        (QoS::ExactlyOnce, Way::ToBroker, PacketType::PubRel),
        (QoS::ExactlyOnce, Way::ToClient, PacketType::PubComp),
    ] {
        cut_once(mosquitto.addr(), ProtocolVersion::V5, qos, way, kind).await;
    }
}

/// The broker did not keep the session: the client subscribes again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_come_back_when_the_session_was_lost() {
    let broker = facteur().await;
    let addr = broker.local_addrs()[0];
    let proxy = Proxy::start(addr).await;
    // Session expiry 0 (5.0 default): the broker forgets the session with the connection.
    let (sub, mut messages) = connect(options(proxy.addr, "resub")).await;
    let mut events = sub.events();
    sub.subscribe("resub/#", QoS::AtLeastOnce).await.unwrap();
    proxy.cut();
    disconnected(&mut events).await;
    assert!(!reconnected(&mut events).await, "no session present");
    let (publisher, _) = connect(options(addr, "resub-pub")).await;
    // The re-subscription is on its way: publish until it is in place.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        publisher
            .publish("resub/x", "again")
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), messages.recv()).await
        {
            assert_eq!(m.payload_str(), Some("again"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never subscribed again"
        );
    }
}

/// A link that dies silently is noticed within 1.5 keep alive (and a bit): the client
/// reports it and reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_link_is_noticed_within_one_and_a_half_keep_alive() {
    let broker = facteur().await;
    let proxy = Proxy::start(broker.local_addrs()[0]).await;
    let client_options = options(proxy.addr, "silent").keep_alive(Duration::from_secs(1));
    let (client, _) = connect(client_options).await;
    let mut events = client.events();
    proxy.silence(true);
    let started = tokio::time::Instant::now();
    let reason = disconnected(&mut events).await;
    let took = started.elapsed();
    assert_eq!(reason, Error::KeepAliveTimeout);
    assert!(took <= Duration::from_millis(1_700), "{took:?}");
    proxy.silence(false);
    reconnected(&mut events).await;
    // And the link works again.
    client
        .publish("x", "y")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
}

/// Offline, messages wait up to `max_queued`, then publishing fails; they go out on the
/// next connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_publishing_is_bounded() {
    let broker = facteur().await;
    let addr = broker.local_addrs()[0];
    let (sub, mut messages) = connect(options(addr, "offline-sub")).await;
    sub.subscribe("offline/#", QoS::AtLeastOnce).await.unwrap();
    let proxy = Proxy::start(addr).await;
    let mut publisher_options = options(proxy.addr, "offline-pub");
    publisher_options.max_queued = 3;
    publisher_options.reconnect.initial = Duration::from_millis(300);
    publisher_options.reconnect.max = Duration::from_millis(300);
    let (publisher, _) = connect(publisher_options).await;
    let mut events = publisher.events();
    // The broker's side goes away and stays away until the test says so.
    proxy.cut();
    proxy.cut_at(Way::ToClient, PacketType::ConnAck);
    disconnected(&mut events).await;
    // Four at once while offline: three wait in the queue, one is refused.
    let mut waiting = Vec::new();
    for i in 0..4 {
        let p = publisher.clone();
        waiting.push(tokio::spawn(async move {
            p.publish(format!("offline/{i}"), "x")
                .qos(QoS::AtLeastOnce)
                .await
        }));
    }
    let mut refused = 0;
    for w in waiting {
        match tokio::time::timeout(WAIT, w)
            .await
            .expect("completes")
            .unwrap()
        {
            Ok(_) => {}
            Err(Error::QueueFull) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, 1);
    for _ in 0..3 {
        let m = next(&mut messages).await;
        assert!(m.topic.starts_with("offline/"));
    }
}

/// A full outbound queue makes `publish` wait (it does not grow): with the broker
/// silent, a bounded number of publications are taken, the rest wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_makes_publish_wait() {
    let broker = facteur().await;
    let proxy = Proxy::start(broker.local_addrs()[0]).await;
    let mut o = options(proxy.addr, "backpressure");
    o.max_inflight = 2;
    o.max_queued = 2;
    o.channel_capacity = 2;
    let (client, _) = connect(o).await;
    proxy.silence(true);
    let mut waiting = Vec::new();
    for i in 0..20 {
        let c = client.clone();
        waiting.push(tokio::spawn(async move {
            c.publish(format!("bp/{i}"), "x")
                .qos(QoS::AtLeastOnce)
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // None completed: 2 in flight, 2 queued, 2 in the channel, the rest wait to send.
    assert!(waiting.iter().all(|w| !w.is_finished()));
    proxy.silence(false);
    for w in waiting {
        let result = tokio::time::timeout(WAIT, w)
            .await
            .expect("completes")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}

/// `disconnect` waits for what is in flight, then says goodbye; later calls fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_disconnect_flushes_in_flight_messages() {
    let broker = facteur().await;
    let addr = broker.local_addrs()[0];
    let (sub, mut messages) = connect(options(addr, "flush-sub")).await;
    sub.subscribe("flush/#", QoS::ExactlyOnce).await.unwrap();
    let (publisher, _) = connect(options(addr, "flush-pub")).await;
    let mut futures = Vec::new();
    for i in 0..50 {
        let p = publisher.clone();
        futures.push(tokio::spawn(async move {
            p.publish(format!("flush/{i}"), "x")
                .qos(QoS::ExactlyOnce)
                .await
        }));
    }
    // Let the task take them, then disconnect.
    tokio::task::yield_now().await;
    tokio::time::timeout(WAIT, publisher.disconnect())
        .await
        .unwrap()
        .unwrap();
    let mut ok = 0;
    for f in futures {
        match tokio::time::timeout(WAIT, f).await.unwrap().unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Disconnected) => {} // came after the disconnect
            Err(other) => panic!("{other:?}"),
        }
    }
    for _ in 0..ok {
        next(&mut messages).await;
    }
    assert!(matches!(
        publisher.publish("flush/late", "x").await,
        Err(Error::Disconnected)
    ));
}

/// With reconnection off, a lost connection ends the client: pending futures fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnection_the_client_ends() {
    let broker = facteur().await;
    let proxy = Proxy::start(broker.local_addrs()[0]).await;
    let (client, mut messages) =
        connect(options(proxy.addr, "once").reconnect(Reconnect::off())).await;
    proxy.silence(true);
    let c = client.clone();
    let pending = tokio::spawn(async move { c.publish("a", "b").qos(QoS::AtLeastOnce).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.cut();
    let result = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(result, Err(Error::Disconnected));
    assert!(tokio::time::timeout(WAIT, messages.recv())
        .await
        .unwrap()
        .is_none());
}
