//! Hostile or broken brokers, played by the test on a raw socket: malformed packets,
//! packets a client never expects, a packet over the client's Maximum Packet Size, a
//! broker that never answers, and arbitrary bytes (proptest). Each ends the connection
//! with the right 5.0 reason code and an error or a disconnected event; nothing panics
//! and no future hangs.

mod common;

use std::time::Duration;

use common::*;
use facteur_client::{Client, Error, Event, Options, QoS, ReasonCode, Reconnect};
use facteur_codec::{decode, Packet, ProtocolVersion, Status};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// CONNACK success, 5.0, no properties.
const CONNACK: [u8; 5] = [0x20, 0x03, 0x00, 0x00, 0x00];

fn client_options(port: u16) -> Options {
    let mut o = Options::new("127.0.0.1", port)
        .client_id("victim")
        .reconnect(Reconnect::off());
    o.max_packet_size = 1024;
    o.connect_timeout = Duration::from_secs(2);
    o
}

/// Reads one whole packet the client sent (5.0), within `WAIT`; `None` at the end.
async fn read_packet(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Ok(Status::Complete(d)) = decode(buf, ProtocolVersion::V5, u32::MAX) {
            return Some(buf.drain(..d.len).collect());
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("the client neither wrote nor closed"),
        }
    }
}

/// A broker that accepts the CONNECT, answers `connack`, then writes `hostile`; returns
/// the client's event and what the client wrote after the CONNACK, up to its close.
async fn play(connack: &[u8], hostile: &[u8]) -> (Event, Vec<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (connack, hostile) = (connack.to_vec(), hostile.to_vec());
    let broker = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let connect = read_packet(&mut stream, &mut buf).await.unwrap();
        assert_eq!(connect[0], 0x10);
        stream.write_all(&connack).await.unwrap();
        let _ = stream.write_all(&hostile).await;
        let mut got = Vec::new();
        while let Some(packet) = read_packet(&mut stream, &mut buf).await {
            got.push(packet);
        }
        got
    });
    let (client, mut messages) = connect(client_options(port)).await;
    let mut events = client.events();
    let event = Event::Disconnected {
        reason: disconnected(&mut events).await,
    };
    // The client has ended: the stream of messages closes, publishing fails at once.
    while let Some(_m) = tokio::time::timeout(WAIT, messages.recv()).await.unwrap() {}
    assert!(matches!(
        tokio::time::timeout(WAIT, client.publish("a", "b").qos(QoS::AtLeastOnce))
            .await
            .unwrap(),
        Err(Error::Disconnected)
    ));
    let got = tokio::time::timeout(WAIT, broker).await.unwrap().unwrap();
    (event, got)
}

fn disconnect_reason(packet: &[u8]) -> ReasonCode {
    match decode(packet, ProtocolVersion::V5, u32::MAX) {
        Ok(Status::Complete(d)) => match d.packet {
            Packet::Disconnect(d) => d.reason_code,
            other => panic!("not a DISCONNECT: {other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

async fn refused_with(hostile: &[u8], reason: ReasonCode) {
    let (event, got) = play(&CONNACK, hostile).await;
    assert_eq!(
        event,
        Event::Disconnected {
            reason: Error::Protocol(reason)
        },
        "{hostile:02X?}"
    );
    assert_eq!(got.len(), 1, "{got:02X?}");
    assert_eq!(disconnect_reason(&got[0]), reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packet_is_answered_0x81() {
    // PUBLISH with QoS 3.
    refused_with(
        &[0x36, 0x04, 0x00, 0x01, b't', 0x00],
        ReasonCode::MalformedPacket,
    )
    .await;
    // PUBACK with a length that does not match its content.
    refused_with(&[0x40, 0x01, 0x00], ReasonCode::MalformedPacket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_a_client_never_expects_are_answered_0x82() {
    // A second CONNACK.
    refused_with(&CONNACK, ReasonCode::ProtocolError).await;
    // A SUBSCRIBE.
    refused_with(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x00],
        ReasonCode::ProtocolError,
    )
    .await;
    // A SUBACK for nothing asked.
    refused_with(
        &[0x90, 0x04, 0x00, 0x09, 0x00, 0x00],
        ReasonCode::ProtocolError,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_over_the_maximum_packet_size_is_answered_0x95_from_its_header() {
    // A PUBLISH announcing 1 MiB: refused as soon as its length is read (1024 is the
    // client's maximum), none of its body is waited for.
    refused_with(&[0x30, 0x80, 0x80, 0x40], ReasonCode::PacketTooLarge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(WAIT).await;
        drop(stream);
    });
    let started = tokio::time::Instant::now();
    let result = tokio::time::timeout(WAIT, Client::connect(client_options(port)))
        .await
        .unwrap();
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_connack_is_an_error() {
    for connack in [
        &[0x20, 0x03, 0x01, 0x00, 0x00][..], // session present, and we never had one
        &[0x20, 0x03, 0x00, 0x00, 0x05][..], // a property list longer than the packet
        &[0x30, 0x02, 0x00, 0x00][..],       // not a CONNACK
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = connack.to_vec();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            read_packet(&mut stream, &mut buf).await;
            let _ = stream.write_all(&bytes).await;
            let _ = read_packet(&mut stream, &mut buf).await;
        });
        let result = tokio::time::timeout(WAIT, Client::connect(client_options(port)))
            .await
            .unwrap();
        assert!(
            matches!(result, Err(Error::Protocol(_)) | Err(Error::Io(_))),
            "{connack:02X?}: {result:?}"
        );
    }
    // Refused with a 5.0 reason code and reason string.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        read_packet(&mut stream, &mut buf).await;
        let _ = stream
            .write_all(&[0x20, 0x07, 0x00, 0x87, 0x04, 0x1F, 0x00, 0x01, b'x'])
            .await;
    });
    match Client::connect(client_options(port)).await {
        Err(Error::Refused {
            reason,
            reason_string,
        }) => {
            assert_eq!(reason, ReasonCode::NotAuthorized);
            assert_eq!(reason_string.as_deref(), Some("x"));
        }
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Arbitrary bytes after a valid CONNACK, then the broker closes: the client ends
    /// with a disconnected event, its futures fail, nothing panics or hangs.
    #[test]
    fn arbitrary_broker_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (event, got) = play(&CONNACK, &bytes).await;
            let disconnected = matches!(event, Event::Disconnected { .. });
            prop_assert!(disconnected, "{:?}", event);
            // Whatever it sent back decodes, and a DISCONNECT is the last.
            for (i, packet) in got.iter().enumerate() {
                let decoded = decode(packet, ProtocolVersion::V5, u32::MAX);
                prop_assert!(matches!(decoded, Ok(Status::Complete(_))));
                if let Ok(Status::Complete(d)) = decoded {
                    if let Packet::Disconnect(_) = d.packet {
                        prop_assert_eq!(i, got.len() - 1);
                    }
                }
            }
            Ok(())
        })?;
    }
}
