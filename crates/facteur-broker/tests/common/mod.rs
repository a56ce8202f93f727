//! Helpers for the socket tests: a broker on 127.0.0.1 port 0 and a raw MQTT peer that
//! sends and reads exact bytes. Every wait is bounded.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod admin;
pub mod pki;

use facteur_broker::{Broker, BrokerHandle, Config};
use facteur_codec::{
    decode, Connect, Encode, Packet, Properties, ProtocolVersion, Publish, QoS, Status, Subscribe,
    Subscription, SubscriptionOptions,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
pub const V5: ProtocolVersion = ProtocolVersion::V5;
pub const WAIT: Duration = Duration::from_secs(5);

pub async fn broker_with(edit: impl FnOnce(&mut Config)) -> BrokerHandle {
    let mut config = Config::default();
    config.listeners[0].port = 0;
    edit(&mut config);
    Broker::start(config).await.expect("broker starts")
}

/// Any byte stream a test peer speaks MQTT over (TCP, TLS, WebSocket).
pub trait PeerStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> PeerStream for T {}

pub struct Peer {
    pub stream: Box<dyn PeerStream>,
    pub version: ProtocolVersion,
    pub buf: Vec<u8>,
}

impl Peer {
    pub async fn raw(broker: &BrokerHandle, version: ProtocolVersion) -> Self {
        let stream = TcpStream::connect(broker.local_addrs()[0]).await.unwrap();
        Self::over(stream, version)
    }

    /// A peer on a stream the test opened (TLS, WebSocket).
    pub fn over(stream: impl PeerStream + 'static, version: ProtocolVersion) -> Self {
        Self {
            stream: Box::new(stream),
            version,
            buf: Vec::new(),
        }
    }

    /// Sends `connect` and returns the CONNACK's bytes.
    pub async fn connack(&mut self, connect: Connect<'_>) -> Vec<u8> {
        self.send(&Packet::Connect(connect)).await;
        self.recv_bytes().await
    }

    /// Connects with `connect` and checks the CONNACK is a plain success.
    pub async fn connect(broker: &BrokerHandle, connect: Connect<'_>) -> Self {
        let mut peer = Self::raw(broker, connect.protocol).await;
        peer.send(&Packet::Connect(connect)).await;
        let connack = peer.recv_bytes().await;
        assert_eq!(connack[0], 0x20, "CONNACK expected, got {connack:02X?}");
        assert_eq!(connack[3], 0x00, "refused: {connack:02X?}");
        peer
    }

    /// A 5.0 client that takes at most `max` unacknowledged QoS 1/2 messages.
    pub async fn with_receive_maximum(broker: &BrokerHandle, id: &str, max: u16) -> Self {
        let props = [facteur_codec::Property::ReceiveMaximum(max)];
        let connect = Connect {
            properties: Properties::from_slice(&props),
            ..Connect::new(V5, id)
        };
        Self::connect(broker, connect).await
    }

    pub async fn client(broker: &BrokerHandle, version: ProtocolVersion, id: &str) -> Self {
        Self::connect(broker, Connect::new(version, id)).await
    }

    pub async fn send(&mut self, packet: &Packet<'_>) {
        let mut buf = vec![0u8; packet.encoded_len(self.version).unwrap()];
        packet.encode(self.version, &mut buf).unwrap();
        self.stream.write_all(&buf).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The next whole packet's bytes; fails after `WAIT`.
    pub async fn recv_bytes(&mut self) -> Vec<u8> {
        self.try_recv_bytes(WAIT)
            .await
            .expect("a packet within the wait")
    }

    pub async fn try_recv_bytes(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Ok(Status::Complete(d)) = decode(&self.buf, self.version, u32::MAX) {
                let bytes = self.buf.drain(..d.len).collect();
                return Some(bytes);
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(_)) => return None,
            }
        }
    }

    /// Checks the next packet is a 5.0 DISCONNECT with `reason` and the reason string
    /// `why`, then that the broker closes the connection.
    pub async fn told_why_then_closed(&mut self, reason: u8, why: &str) {
        assert_eq!(self.recv_bytes().await, disconnect_why(reason, why));
        assert!(self.closed().await, "closed after DISCONNECT {reason:#04X}");
    }

    /// True once the broker has closed the connection (within `WAIT`).
    pub async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(
            tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    pub async fn subscribe(
        &mut self,
        filter: &str,
        options: SubscriptionOptions,
        id: u16,
    ) -> Vec<u8> {
        let subs = [Subscription { filter, options }];
        self.send(&Packet::Subscribe(Subscribe::new(id, &subs)))
            .await;
        self.recv_bytes().await
    }
}

/// The exact bytes of a 5.0 DISCONNECT with `reason` and the reason string `why`.
pub fn disconnect_why(reason: u8, why: &str) -> Vec<u8> {
    let len = u8::try_from(why.len()).expect("a short reason string");
    assert!(len < 120, "one-byte lengths");
    let mut f = vec![0xE0, 5 + len, reason, 3 + len, 0x1F, 0x00, len];
    f.extend_from_slice(why.as_bytes());
    f
}

/// The exact bytes of a 5.0 CONNACK refusing with `reason` and the reason string `why`.
pub fn connack_why(reason: u8, why: &str) -> Vec<u8> {
    let len = u8::try_from(why.len()).expect("a short reason string");
    assert!(len < 120, "one-byte lengths");
    let mut f = vec![0x20, 6 + len, 0x00, reason, 3 + len, 0x1F, 0x00, len];
    f.extend_from_slice(why.as_bytes());
    f
}

pub fn publish<'a>(topic: &'a str, payload: &'a [u8], qos: QoS, id: Option<u16>) -> Packet<'a> {
    Packet::Publish(Publish {
        qos,
        packet_id: id,
        ..Publish::new(topic, payload)
    })
}

/// A fresh directory for one test's files (under the system's temporary directory).
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("facteur-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A password file line for `user` (a cheap PBKDF2 cost: these tests hash often).
pub fn passwd_line(user: &str, password: &str) -> String {
    let hash =
        facteur_broker::auth::password::PasswordHash::with_iterations(password.as_bytes(), 10)
            .unwrap();
    format!("{user}:{hash}\n")
}

/// A CONNECT with a username and password.
pub fn login<'a>(
    version: ProtocolVersion,
    id: &'a str,
    user: &'a str,
    password: &'a str,
) -> Connect<'a> {
    Connect {
        username: Some(user),
        password: Some(password.as_bytes()),
        ..Connect::new(version, id)
    }
}

/// Sends `connect` on a new connection and returns the CONNACK's bytes and the peer.
pub async fn try_connect(broker: &BrokerHandle, connect: Connect<'_>) -> (Vec<u8>, Peer) {
    let mut peer = Peer::raw(broker, connect.protocol).await;
    peer.send(&Packet::Connect(connect)).await;
    (peer.recv_bytes().await, peer)
}

/// The topic and payload of a PUBLISH's bytes.
pub fn topic_payload(version: ProtocolVersion, bytes: &[u8]) -> (String, Vec<u8>) {
    match decode(bytes, version, u32::MAX) {
        Ok(Status::Complete(d)) => match d.packet {
            Packet::Publish(p) => (p.topic.to_owned(), p.payload.to_vec()),
            other => panic!("PUBLISH expected, got {other:?}"),
        },
        other => panic!("PUBLISH expected, got {other:?}"),
    }
}
