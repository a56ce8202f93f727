//! Publish and subscribe through real brokers: the facteur broker in process and Debian's
//! mosquitto, MQTT 3.1.1 and 5.0: QoS 0/1/2, retained messages, wildcards, wills, 5.0
//! properties, unsubscribe, refusals.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use facteur_client::{
    Client, Error, ProtocolVersion, PublishProperties, QoS, ReasonCode, Reconnect,
    SubscriptionOptions, Will,
};

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

/// QoS 0, 1, 2 through wildcards; each publish future completes; order kept.
async fn qos_levels(addr: SocketAddr, version: ProtocolVersion) {
    let (sub, mut messages) = connect(options(addr, "qos-sub").protocol(version)).await;
    let granted = sub
        .subscribe_many(vec![
            (
                "maison/+/temperature".into(),
                SubscriptionOptions::qos(QoS::ExactlyOnce),
            ),
            (
                "jardin/#".into(),
                SubscriptionOptions::qos(QoS::AtLeastOnce),
            ),
        ])
        .await
        .unwrap();
    assert_eq!(granted, [Ok(QoS::ExactlyOnce), Ok(QoS::AtLeastOnce)]);
    let (publisher, _) = connect(options(addr, "qos-pub").protocol(version)).await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let ack = publisher
            .publish("maison/salon/temperature", format!("{i}"))
            .qos(qos)
            .await
            .unwrap();
        assert!(!ack.reason.is_error());
    }
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let m = next(&mut messages).await;
        assert_eq!(m.topic, "maison/salon/temperature");
        assert_eq!(m.payload_str(), Some(format!("{i}").as_str()));
        assert_eq!(m.qos, qos);
        assert!(!m.retain);
    }
    // Granted QoS 1 caps a QoS 2 publication; a topic outside the filters is not received.
    publisher
        .publish("cuisine/temperature", "x")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    publisher
        .publish("jardin/arrosage/etat", "on")
        .qos(QoS::ExactlyOnce)
        .await
        .unwrap();
    let m = next(&mut messages).await;
    assert_eq!(
        (m.topic.as_str(), m.qos),
        ("jardin/arrosage/etat", QoS::AtLeastOnce)
    );
    // Unsubscribed: no more.
    let results = sub.unsubscribe(vec!["jardin/#".into()]).await.unwrap();
    assert_eq!(results, [Ok(())]);
    publisher
        .publish("jardin/x", "y")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(quiet(&mut messages, Duration::from_millis(300)).await);
    publisher.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
}

/// A retained message reaches a later subscriber with the retain flag; an empty one
/// clears it.
async fn retained(addr: SocketAddr, version: ProtocolVersion) {
    let topic = format!("retained/{version}/capteur");
    let (publisher, _) = connect(options(addr, "ret-pub").protocol(version)).await;
    publisher
        .publish(topic.clone(), "21.5")
        .qos(QoS::AtLeastOnce)
        .retain(true)
        .await
        .unwrap();
    let (sub, mut messages) = connect(options(addr, "ret-sub").protocol(version)).await;
    sub.subscribe(topic.clone(), QoS::AtLeastOnce)
        .await
        .unwrap();
    let m = next(&mut messages).await;
    assert_eq!((m.payload_str(), m.retain), (Some("21.5"), true));
    publisher
        .publish(topic.clone(), "")
        .qos(QoS::AtLeastOnce)
        .retain(true)
        .await
        .unwrap();
    // The live empty message itself is delivered (not as retained by a fresh subscribe).
    let m = next(&mut messages).await;
    assert!(m.payload.is_empty());
    let (late, mut late_messages) = connect(options(addr, "ret-late").protocol(version)).await;
    late.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    assert!(
        quiet(&mut late_messages, Duration::from_millis(300)).await,
        "cleared"
    );
}

/// The will is published when the connection is cut, not after a normal disconnect.
async fn will(addr: SocketAddr, version: ProtocolVersion) {
    let proxy = Proxy::start(addr).await;
    let (watcher, mut messages) = connect(options(addr, "will-watch").protocol(version)).await;
    watcher.subscribe("etat/#", QoS::AtLeastOnce).await.unwrap();
    let mut will_options = options(proxy.addr, "will-client").protocol(version);
    will_options.will = Some(Will::new("etat/capteur", "perdu").qos(QoS::AtLeastOnce));
    will_options.reconnect = Reconnect::off();
    let (client, _) = connect(will_options.clone()).await;
    let mut events = client.events();
    proxy.cut();
    assert!(
        !reconnected(&mut events).await,
        "the first connection, no session"
    );
    disconnected(&mut events).await;
    let m = next(&mut messages).await;
    assert_eq!(
        (m.topic.as_str(), m.payload_str()),
        ("etat/capteur", Some("perdu"))
    );
    // A normal DISCONNECT: no will.
    let (client, _) = connect(will_options).await;
    client.disconnect().await.unwrap();
    assert!(quiet(&mut messages, Duration::from_millis(300)).await);
}

/// 5.0 properties travel both ways; user properties keep their order.
async fn properties(addr: SocketAddr) {
    let v5 = ProtocolVersion::V5;
    let (sub, mut messages) = connect(options(addr, "props-sub").protocol(v5)).await;
    sub.subscribe("props/#", QoS::AtLeastOnce).await.unwrap();
    let (publisher, _) = connect(options(addr, "props-pub").protocol(v5)).await;
    let mut props = PublishProperties::default();
    props.content_type = Some("application/json".into());
    props.response_topic = Some("props/reponse".into());
    props.correlation_data = Some(bytes::Bytes::from_static(b"\x00\x01"));
    props.utf8_payload = Some(true);
    props.message_expiry = Some(3600);
    props.user_properties = vec![("b".into(), "2".into()), ("a".into(), "1".into())];
    // Several messages to one topic: the client uses a topic alias after the first.
    for i in 0..3 {
        publisher
            .publish("props/x", format!("{{\"i\":{i}}}"))
            .qos(QoS::AtLeastOnce)
            .properties(props.clone())
            .await
            .unwrap();
    }
    for i in 0..3 {
        let m = next(&mut messages).await;
        assert_eq!(m.topic, "props/x");
        assert_eq!(m.payload_str(), Some(format!("{{\"i\":{i}}}").as_str()));
        let got = &m.properties;
        assert_eq!(got.content_type.as_deref(), Some("application/json"));
        assert_eq!(got.response_topic.as_deref(), Some("props/reponse"));
        assert_eq!(got.correlation_data.as_deref(), Some(&b"\x00\x01"[..]));
        assert_eq!(got.utf8_payload, Some(true));
        assert!(got.message_expiry.is_some_and(|s| s <= 3600 && s > 3000));
        assert_eq!(got.user_properties, props.user_properties);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facteur_qos_levels() {
    let broker = facteur().await;
    for version in VERSIONS {
        qos_levels(broker.local_addrs()[0], version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facteur_retained() {
    let broker = facteur().await;
    for version in VERSIONS {
        retained(broker.local_addrs()[0], version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facteur_will() {
    let broker = facteur().await;
    for version in VERSIONS {
        will(broker.local_addrs()[0], version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facteur_properties() {
    let broker = facteur().await;
    properties(broker.local_addrs()[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_qos_retained_will_properties() {
    if !have("mosquitto") {
        return;
    }
    let mosquitto = Mosquitto::start("", &[]).await;
    for version in VERSIONS {
        qos_levels(mosquitto.addr(), version).await;
        retained(mosquitto.addr(), version).await;
        will(mosquitto.addr(), version).await;
    }
    properties(mosquitto.addr()).await;
}

/// A refused connection is an error with the CONNACK's reason code (facteur refuses an
/// empty client identifier with clean start 0 in 3.1.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_an_error() {
    let broker = facteur().await;
    let options = options(broker.local_addrs()[0], "")
        .protocol(ProtocolVersion::V3_1_1)
        .clean_start(false);
    match Client::connect(options).await {
        Err(Error::Refused { reason, .. }) => {
            assert_eq!(reason, ReasonCode::ClientIdentifierNotValid)
        }
        other => panic!("{other:?}"),
    }
}

/// A message the broker refuses (5.0: larger than its message size limit) fails its
/// future with the PUBACK's reason code; the connection carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_message_fails_its_future() {
    let broker = facteur_with(|c| c.message_size_limit = 8).await;
    let (client, _) = connect(options(broker.local_addrs()[0], "big")).await;
    match client
        .publish("a", vec![0u8; 100])
        .qos(QoS::AtLeastOnce)
        .await
    {
        Err(Error::PublishRefused { reason, .. }) => {
            // facteur's answer to a message over message_size_limit.
            assert_eq!(reason, ReasonCode::ImplementationSpecificError)
        }
        other => panic!("{other:?}"),
    }
    let ok = client
        .publish("a", "small")
        .qos(QoS::ExactlyOnce)
        .await
        .unwrap();
    assert!(!ok.reason.is_error());
    // An invalid topic never leaves the client.
    assert!(matches!(
        client.publish("a/+", "x").await,
        Err(Error::InvalidMessage(_))
    ));
    assert!(matches!(
        client.subscribe("a/#/b", QoS::AtMostOnce).await,
        Err(Error::InvalidFilter(_))
    ));
}
