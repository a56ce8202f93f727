//! What the client puts on the wire, seen by a broker played by the test on a raw socket:
//! the CONNECT's 5.0 properties, outgoing topic aliases within the broker's maximum,
//! manual acknowledgements, and the keep alive's PINGREQ.

mod common;

use std::time::Duration;

use common::*;
use facteur_client::{Client, Messages, Options, QoS, ReasonCode, Reconnect};
use facteur_codec::{decode, Packet, ProtocolVersion, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Broker {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Broker {
    /// The next whole packet the client sent (5.0), or `None` if nothing comes in `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Ok(Status::Complete(d)) = decode(&self.buf, ProtocolVersion::V5, u32::MAX) {
                return Some(self.buf.drain(..d.len).collect());
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn expect(&mut self) -> Vec<u8> {
        self.next(WAIT).await.expect("a packet from the client")
    }
}

/// A client connected to a scripted broker whose CONNACK is `connack`; the broker side
/// and the CONNECT it read.
async fn scripted(
    connack: &'static [u8],
    edit: impl FnOnce(&mut Options),
) -> (Client, Messages, Broker, Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut broker = Broker {
            stream,
            buf: Vec::new(),
        };
        let connect = broker.expect().await;
        broker.stream.write_all(connack).await.unwrap();
        (broker, connect)
    });
    let mut options = Options::new("127.0.0.1", port)
        .client_id("wire")
        .reconnect(Reconnect::off());
    edit(&mut options);
    let (client, messages) = connect(options).await;
    let (broker, connect) = accept.await.unwrap();
    (client, messages, broker, connect)
}

fn packet(bytes: &[u8]) -> Packet<'_> {
    match decode(bytes, ProtocolVersion::V5, u32::MAX) {
        Ok(Status::Complete(d)) => d.packet,
        other => panic!("{other:?}"),
    }
}

const CONNACK: &[u8] = &[0x20, 0x03, 0x00, 0x00, 0x00];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_carries_the_client_limits() {
    let (_client, _messages, _broker, connect) = scripted(CONNACK, |o| {
        o.receive_maximum = 7;
        o.max_packet_size = 4096;
        o.session_expiry = Some(30);
        o.user_properties.push(("k".into(), "v".into()));
    })
    .await;
    let Packet::Connect(c) = packet(&connect) else {
        panic!()
    };
    assert_eq!(c.client_id, "wire");
    assert_eq!(c.properties.receive_maximum(), Some(7));
    assert_eq!(c.properties.maximum_packet_size(), Some(4096));
    assert_eq!(c.properties.session_expiry_interval(), Some(30));
    assert_eq!(
        c.properties.user_properties().collect::<Vec<_>>(),
        [("k", "v")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_aliases_within_the_broker_maximum() {
    // CONNACK with Topic Alias Maximum 1.
    let connack: &[u8] = &[0x20, 0x06, 0x00, 0x00, 0x03, 0x22, 0x00, 0x01];
    let (client, _messages, mut broker, _) = scripted(connack, |_| {}).await;
    for topic in ["capteur/1", "capteur/1", "capteur/2", "capteur/1"] {
        client.publish(topic, "x").await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        let bytes = broker.expect().await;
        let Packet::Publish(p) = packet(&bytes) else {
            panic!()
        };
        seen.push((p.topic.to_owned(), p.properties.topic_alias()));
    }
    assert_eq!(
        seen,
        [
            ("capteur/1".to_owned(), Some(1)),
            (String::new(), Some(1)),
            ("capteur/2".to_owned(), None),
            (String::new(), Some(1)),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_acknowledgement_waits_for_the_application() {
    let (_client, mut messages, mut broker, _) = scripted(CONNACK, |o| o.manual_acks = true).await;
    // QoS 1 PUBLISH id 5 and QoS 2 PUBLISH id 6, topic "t".
    broker
        .stream
        .write_all(&[
            0x32, 0x07, 0x00, 0x01, b't', 0x00, 0x05, 0x00, b'a', //
            0x34, 0x07, 0x00, 0x01, b't', 0x00, 0x06, 0x00, b'b',
        ])
        .await
        .unwrap();
    let first = next(&mut messages).await;
    let second = next(&mut messages).await;
    assert!(
        broker.next(Duration::from_millis(300)).await.is_none(),
        "no ack yet"
    );
    // Out of order: the second is processed first; the first is dropped unprocessed
    // (acknowledged all the same).
    second.ack().await;
    assert_eq!(broker.expect().await, [0x50, 0x02, 0x00, 0x06]);
    drop(first);
    assert_eq!(broker.expect().await, [0x40, 0x02, 0x00, 0x05]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_pings_within_its_keep_alive() {
    let (client, _messages, mut broker, _) =
        scripted(CONNACK, |o| o.keep_alive = Duration::from_secs(1)).await;
    let started = tokio::time::Instant::now();
    assert_eq!(broker.expect().await, [0xC0, 0x00]);
    // Due at 1 s; well before the 1.5 s deadline even on a loaded machine.
    assert!(started.elapsed() < Duration::from_millis(1_450));
    broker.stream.write_all(&[0xD0, 0x00]).await.unwrap();
    assert_eq!(
        broker.expect().await,
        [0xC0, 0x00],
        "and again a keep alive later"
    );
    broker.stream.write_all(&[0xD0, 0x00]).await.unwrap();
    client.publish("a", "b").qos(QoS::AtMostOnce).await.unwrap();
    let bytes = broker.expect().await;
    assert!(matches!(packet(&bytes), Packet::Publish(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_waits_for_the_flight_then_says_reason_and_expiry() {
    let (client, _messages, mut broker, _) = scripted(CONNACK, |_| {}).await;
    let c = client.clone();
    let publishing = tokio::spawn(async move { c.publish("t", "x").qos(QoS::AtLeastOnce).await });
    let bytes = broker.expect().await;
    let Packet::Publish(p) = packet(&bytes) else {
        panic!()
    };
    let id = p.packet_id.unwrap();
    let c = client.clone();
    let leaving = tokio::spawn(async move {
        c.disconnect_with(
            facteur_client::ReasonCode::DisconnectWithWillMessage,
            Some(0),
        )
        .await
    });
    // Nothing more until the message is acknowledged.
    assert!(broker.next(Duration::from_millis(200)).await.is_none());
    let [hi, lo] = id.to_be_bytes();
    broker
        .stream
        .write_all(&[0x40, 0x02, hi, lo])
        .await
        .unwrap();
    let bytes = broker.expect().await;
    let Packet::Disconnect(d) = packet(&bytes) else {
        panic!("{bytes:02X?}")
    };
    assert_eq!(
        d.reason_code,
        facteur_client::ReasonCode::DisconnectWithWillMessage
    );
    assert_eq!(d.properties.session_expiry_interval(), Some(0));
    assert!(broker.next(WAIT).await.is_none(), "then the client closes");
    assert!(publishing.await.unwrap().is_ok());
    leaving.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_disconnect_reason_reaches_the_application() {
    let (client, _messages, mut broker, _) = scripted(CONNACK, |_| {}).await;
    let mut events = client.events();
    // DISCONNECT 0x8B (Server shutting down) with the reason string "bye".
    broker
        .stream
        .write_all(&[0xE0, 0x07, 0x8B, 0x05, 0x1F, 0x00, 0x03, b'b', b'y'])
        .await
        .unwrap();
    // (A truncated reason string: malformed, 0x81.)
    assert_eq!(
        disconnected(&mut events).await,
        facteur_client::Error::Protocol(facteur_client::ReasonCode::MalformedPacket)
    );
    let (client, _messages, mut broker, _) = scripted(CONNACK, |_| {}).await;
    let mut events = client.events();
    broker
        .stream
        .write_all(&[0xE0, 0x08, 0x8B, 0x06, 0x1F, 0x00, 0x03, b'b', b'y', b'e'])
        .await
        .unwrap();
    assert_eq!(
        disconnected(&mut events).await,
        facteur_client::Error::ServerDisconnected {
            reason: facteur_client::ReasonCode::ServerShuttingDown,
            reason_string: Some("bye".into()),
        }
    );
}

/// The CONNACK's Maximum QoS and Retain Available: a message beyond them is refused by
/// the client (the broker would end the connection for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_connack_allows() {
    // Maximum QoS 1, Retain Available 0, Assigned Client Identifier "abc".
    let connack: &[u8] = &[
        0x20, 0x0D, 0x00, 0x00, 0x0A, 0x24, 0x01, 0x25, 0x00, 0x12, 0x00, 0x03, b'a', b'b', b'c',
    ];
    let (client, _messages, mut broker, _) = scripted(connack, |o| o.client_id.clear()).await;
    for (qos, retain) in [(QoS::ExactlyOnce, false), (QoS::AtMostOnce, true)] {
        assert!(matches!(
            client.publish("t", "x").qos(qos).retain(retain).await,
            Err(facteur_client::Error::InvalidMessage(_))
        ));
    }
    client
        .publish("t", "ok")
        .qos(QoS::AtMostOnce)
        .await
        .unwrap();
    let bytes = broker.expect().await;
    let Packet::Publish(p) = packet(&bytes) else {
        panic!("{bytes:02X?}")
    };
    assert_eq!(p.payload, b"ok", "only the allowed one went out");
}

/// An Assigned Client Identifier is the client's from then on: its reconnection uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assigned_identifier_is_used_to_reconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = tokio::spawn(async move {
        let mut ids = Vec::new();
        for connack in [
            // Assigned Client Identifier "abc", then the connection is dropped.
            &[
                0x20, 0x09, 0x00, 0x00, 0x06, 0x12, 0x00, 0x03, b'a', b'b', b'c',
            ][..],
            CONNACK,
        ] {
            let (stream, _) = listener.accept().await.unwrap();
            let mut b = Broker {
                stream,
                buf: Vec::new(),
            };
            let bytes = b.expect().await;
            let Packet::Connect(c) = packet(&bytes) else {
                panic!()
            };
            ids.push(c.client_id.to_owned());
            b.stream.write_all(connack).await.unwrap();
        }
        ids
    });
    let mut options = Options::new("127.0.0.1", port).client_id("");
    options.reconnect.initial = Duration::from_millis(10);
    let (client, _messages) = connect(options).await;
    let mut events = client.events();
    disconnected(&mut events).await;
    reconnected(&mut events).await;
    let ids = tokio::time::timeout(WAIT, broker).await.unwrap().unwrap();
    assert_eq!(ids, ["", "abc"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manually_acknowledged_message_can_be_refused_with_a_reason() {
    let (_client, mut messages, mut broker, _) = scripted(CONNACK, |o| o.manual_acks = true).await;
    // QoS 1 PUBLISH id 7 and QoS 2 PUBLISH id 8, topic "t".
    broker
        .stream
        .write_all(&[
            0x32, 0x07, 0x00, 0x01, b't', 0x00, 0x07, 0x00, b'a', //
            0x34, 0x07, 0x00, 0x01, b't', 0x00, 0x08, 0x00, b'b',
        ])
        .await
        .unwrap();
    let first = next(&mut messages).await;
    let second = next(&mut messages).await;
    first.reject(ReasonCode::PayloadFormatInvalid).await;
    // PUBACK id 7, reason 0x99, no properties.
    assert_eq!(broker.expect().await, [0x40, 0x03, 0x00, 0x07, 0x99]);
    second.reject(ReasonCode::QuotaExceeded).await;
    // PUBREC id 8, reason 0x97: the QoS 2 flow ends there.
    assert_eq!(broker.expect().await, [0x50, 0x03, 0x00, 0x08, 0x97]);
    // Answered once: nothing more follows (the dropped messages owe nothing).
    assert!(broker.next(Duration::from_millis(300)).await.is_none());
}
