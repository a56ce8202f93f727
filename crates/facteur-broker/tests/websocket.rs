//! MQTT over WebSocket at message level: the `mqtt` subprotocol agreed on any path, a
//! request without it refused, packets split across WebSocket messages and several
//! packets in one message, text messages refused, plain and over TLS.

mod common;

use common::pki::{tls_connect, Pki};
use common::*;
use facteur_broker::{BrokerHandle, Protocol};
use facteur_codec::{decode, Connect, Encode, Packet, QoS, Status};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

async fn ws_broker(edit: impl FnOnce(&mut facteur_broker::Config)) -> BrokerHandle {
    broker_with(|c| {
        c.listeners[0].protocol = Protocol::Websockets;
        edit(c);
    })
    .await
}

/// Opens a WebSocket on `stream` to `path`, offering `protocol` if given.
async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    path: &str,
    protocol: Option<&str>,
) -> Result<WebSocketStream<S>, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://localhost{path}")
        .into_client_request()
        .unwrap();
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().unwrap());
    }
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await?;
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        protocol.unwrap()
    );
    Ok(ws)
}

async fn open_tcp(broker: &BrokerHandle, path: &str) -> WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(broker.local_addrs()[0])
        .await
        .unwrap();
    open(tcp, path, Some("mqtt")).await.unwrap()
}

fn bytes(packet: &Packet<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; packet.encoded_len(V311).unwrap()];
    packet.encode(V311, &mut buf).unwrap();
    buf
}

/// Reads binary messages until `count` whole packets have come; their bytes, one each.
async fn packets<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    count: usize,
) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < count {
        while let Ok(Status::Complete(d)) = decode(&buf, V311, u32::MAX) {
            out.push(buf.drain(..d.len).collect());
            if out.len() == count {
                return out;
            }
        }
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => buf.extend_from_slice(&data),
            other => panic!("a binary message expected, got {other:?}"),
        }
    }
    out
}

#[tokio::test]
async fn packets_split_across_messages_and_several_in_one() {
    let broker = ws_broker(|_| {}).await;
    let mut ws = open_tcp(&broker, "/mqtt").await;
    let connect = bytes(&Packet::Connect(Connect::new(V311, "ws")));
    // The CONNECT in three messages.
    for part in [&connect[..1], &connect[1..5], &connect[5..]] {
        ws.send(Message::Binary(part.to_vec().into()))
            .await
            .unwrap();
    }
    assert_eq!(packets(&mut ws, 1).await, [vec![0x20, 0x02, 0x00, 0x00]]);
    // SUBSCRIBE, PINGREQ and half a PUBLISH in one message, the rest in the next.
    let subs = [facteur_codec::Subscription {
        filter: "w/#",
        options: facteur_codec::SubscriptionOptions::qos(QoS::AtLeastOnce),
    }];
    let mut batch = bytes(&Packet::Subscribe(facteur_codec::Subscribe::new(1, &subs)));
    batch.extend_from_slice(&[0xC0, 0x00]);
    let publish = bytes(&publish("w/1", b"hello", QoS::AtLeastOnce, Some(2)));
    batch.extend_from_slice(&publish[..4]);
    ws.send(Message::Binary(batch.into())).await.unwrap();
    ws.send(Message::Binary(publish[4..].to_vec().into()))
        .await
        .unwrap();
    let answers = packets(&mut ws, 4).await;
    assert_eq!(answers[0], [0x90, 0x03, 0x00, 0x01, 0x01]);
    assert_eq!(answers[1], [0xD0, 0x00]);
    assert_eq!(answers[2], [0x40, 0x02, 0x00, 0x02]);
    let (topic, payload) = topic_payload(V311, &answers[3]);
    assert_eq!((topic.as_str(), &payload[..]), ("w/1", &b"hello"[..]));
    broker.shutdown().await;
}

#[tokio::test]
async fn any_path_is_served() {
    let broker = ws_broker(|_| {}).await;
    for path in ["/", "/mqtt", "/some/where?x=1"] {
        let mut ws = open_tcp(&broker, path).await;
        let connect = bytes(&Packet::Connect(Connect::new(V311, "p")));
        ws.send(Message::Binary(connect.into())).await.unwrap();
        assert_eq!(
            packets(&mut ws, 1).await[0],
            [0x20, 0x02, 0x00, 0x00],
            "{path}"
        );
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_request_without_the_mqtt_subprotocol_is_refused() {
    let broker = ws_broker(|_| {}).await;
    for offered in [None, Some("chat")] {
        let tcp = tokio::net::TcpStream::connect(broker.local_addrs()[0])
            .await
            .unwrap();
        let mut request = "ws://localhost/mqtt".into_client_request().unwrap();
        if let Some(protocol) = offered {
            request
                .headers_mut()
                .insert("sec-websocket-protocol", protocol.parse().unwrap());
        }
        match tokio_tungstenite::client_async(request, tcp).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "{offered:?}");
            }
            other => panic!("{offered:?}: refusal expected, got {other:?}"),
        }
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_text_message_ends_the_connection() {
    let broker = ws_broker(|_| {}).await;
    let mut ws = open_tcp(&broker, "/mqtt").await;
    let connect = bytes(&Packet::Connect(Connect::new(V311, "t")));
    ws.send(Message::Binary(connect.into())).await.unwrap();
    packets(&mut ws, 1).await;
    ws.send(Message::text("PINGREQ")).await.unwrap();
    // The next thing seen is the end: a close, an error or the end of the stream.
    let end = tokio::time::timeout(WAIT, ws.next()).await;
    assert!(
        matches!(end, Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_))))),
        "{end:?}"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn mqtt_3_1_clients_may_ask_for_mqttv3_1() {
    let broker = ws_broker(|_| {}).await;
    let tcp = tokio::net::TcpStream::connect(broker.local_addrs()[0])
        .await
        .unwrap();
    let mut ws = open(tcp, "/mqtt", Some("mqttv3.1")).await.unwrap();
    // An MQTT 3.1 CONNECT (protocol name MQIsdp, level 3), client "old".
    let connect = [
        0x10, 0x11, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60, 0, 3, b'o', b'l', b'd',
    ];
    ws.send(Message::Binary(connect.to_vec().into()))
        .await
        .unwrap();
    assert_eq!(packets(&mut ws, 1).await[0], [0x20, 0x02, 0x00, 0x00]);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_message_larger_than_the_packet_limit_allows_ends_the_connection() {
    let broker = ws_broker(|c| c.max_packet_size = 1024).await;
    let mut ws = open_tcp(&broker, "/mqtt").await;
    let connect = bytes(&Packet::Connect(Connect::new(V311, "big")));
    ws.send(Message::Binary(connect.into())).await.unwrap();
    packets(&mut ws, 1).await;
    // Many packets in one message: each answered while the message is within the limit
    // (1000 UNSUBSCRIBEs, 7 KiB)...
    let unsubscribes: Vec<u8> = (1..=1000u16)
        .flat_map(|id| {
            let [hi, lo] = id.to_be_bytes();
            [0xA2, 0x05, hi, lo, 0x00, 0x01, b'x']
        })
        .collect();
    ws.send(Message::Binary(unsubscribes.into())).await.unwrap();
    let answers = packets(&mut ws, 1000).await;
    for (id, answer) in (1..=1000u16).zip(&answers) {
        let [hi, lo] = id.to_be_bytes();
        assert_eq!(answer[..], [0xB0, 0x02, hi, lo]);
    }
    // ...but over max_packet_size plus 64 KiB (PINGREQs this time) the WebSocket layer
    // refuses the message before it is whole: none of it reaches MQTT (no PINGRESP), the
    // connection ends.
    let pings: Vec<u8> = [0xC0, 0x00].repeat((1024 + 65 * 1024) / 2);
    let _ = ws.send(Message::Binary(pings.into())).await;
    let end = tokio::time::timeout(WAIT, ws.next()).await;
    assert!(
        matches!(end, Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_))))),
        "{end:?}"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn websocket_over_tls() {
    let dir = temp_dir("wss");
    let pki = Pki::new(&dir);
    let broker = ws_broker(|c| {
        c.listeners[0].certfile = Some(pki.server_cert.clone());
        c.listeners[0].keyfile = Some(pki.server_key.clone());
    })
    .await;
    let tls = tls_connect(broker.local_addrs()[0], pki.client_config(None))
        .await
        .unwrap();
    let mut ws = open(tls, "/mqtt", Some("mqtt")).await.unwrap();
    let connect = bytes(&Packet::Connect(Connect::new(V311, "wss")));
    ws.send(Message::Binary(connect.into())).await.unwrap();
    assert_eq!(packets(&mut ws, 1).await[0], [0x20, 0x02, 0x00, 0x00]);
    broker.shutdown().await;
}
