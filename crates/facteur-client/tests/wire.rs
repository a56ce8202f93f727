//! What the client puts on the wire, seen by a broker played by the test on a raw socket:
//! the CONNECT's 5.0 properties, outgoing topic aliases within the broker's maximum,
//! manual acknowledgements, and the keep alive's PINGREQ.

mod common;

use std::time::Duration;

use common::*;
use facteur_client::{Client, Messages, Options, QoS, Reconnect};
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
    assert!(started.elapsed() < Duration::from_millis(1_300));
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
