//! TLS listeners with certificates made in the test (rcgen): server-only TLS (1.3 and
//! 1.2), mutual TLS accepted, refused for a certificate from another CA, a missing
//! certificate and an expired one, the certificate's identity as the username of ACLs,
//! unusable certificate files stopping start-up, and the handshake timeout.

mod common;

use common::pki::{tls_connect, Pair, Pki};
use common::*;
use facteur_broker::{Broker, BrokerHandle, Config};
use facteur_codec::{Connect, QoS, SubscriptionOptions};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio_rustls::rustls::ClientConfig;

const CONNACK_OK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

async fn tls_broker(pki: &Pki, edit: impl FnOnce(&mut Config)) -> BrokerHandle {
    broker_with(|c| {
        let listener = &mut c.listeners[0];
        listener.certfile = Some(pki.server_cert.clone());
        listener.keyfile = Some(pki.server_key.clone());
        edit(c);
    })
    .await
}

fn mutual(pki: &Pki) -> impl FnOnce(&mut Config) + '_ {
    |c| {
        c.listeners[0].cafile = Some(pki.ca.clone());
        c.listeners[0].require_certificate = true;
    }
}

/// A 3.1.1 client over TLS with `config`; its CONNACK's bytes, or `None` when the broker
/// refused it (handshake failure, alert, or closed without CONNACK).
async fn connack_over_tls(
    broker: &BrokerHandle,
    config: Arc<ClientConfig>,
    id: &str,
) -> Option<(Vec<u8>, Peer)> {
    let tls = tls_connect(broker.local_addrs()[0], config).await.ok()?;
    let mut peer = Peer::over(tls, V311);
    peer.send(&facteur_codec::Packet::Connect(Connect::new(V311, id)))
        .await;
    let connack = peer.try_recv_bytes(WAIT).await?;
    Some((connack, peer))
}

#[tokio::test]
async fn server_only_tls_carries_mqtt_both_ways() {
    let dir = temp_dir("tls-server");
    let pki = Pki::new(&dir);
    let broker = tls_broker(&pki, |_| {}).await;
    let (connack, mut sub) = connack_over_tls(&broker, pki.client_config(None), "sub")
        .await
        .expect("accepted");
    assert_eq!(connack, CONNACK_OK);
    let suback = sub
        .subscribe("t/#", SubscriptionOptions::qos(QoS::AtLeastOnce), 1)
        .await;
    assert_eq!(suback, [0x90, 0x03, 0x00, 0x01, 0x01]);
    // A TLS 1.2 client too.
    let tls12 = {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        let ca = std::fs::read(&pki.ca).unwrap();
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        for cert in tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&tokio_rustls::rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    };
    let (connack, mut publisher) = connack_over_tls(&broker, tls12, "pub").await.unwrap();
    assert_eq!(connack, CONNACK_OK);
    publisher
        .send(&publish("t/1", b"over tls", QoS::AtLeastOnce, Some(5)))
        .await;
    assert_eq!(publisher.recv_bytes().await, [0x40, 0x02, 0x00, 0x05]);
    let (topic, payload) = topic_payload(V311, &sub.recv_bytes().await);
    assert_eq!((topic.as_str(), &payload[..]), ("t/1", &b"over tls"[..]));
    // Plain MQTT on the TLS port is not served: at most a TLS alert, then the end.
    let mut plain = tokio::net::TcpStream::connect(broker.local_addrs()[0])
        .await
        .unwrap();
    let connect = [
        0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'p',
    ];
    tokio::io::AsyncWriteExt::write_all(&mut plain, &connect)
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, plain.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "closed within the wait");
    assert!(!answer.starts_with(&[0x20]), "no CONNACK: {answer:02X?}");
    // A TLS alert record (content type 21) when anything.
    assert!(answer.is_empty() || answer[0] == 21, "{answer:02X?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_accepts_this_cas_clients_only() {
    let dir = temp_dir("tls-mutual");
    let pki = Pki::new(&dir);
    let broker = tls_broker(&pki, mutual(&pki)).await;
    let good = pki.client("good-client");
    let (connack, _) = connack_over_tls(&broker, pki.client_config(Some(&good)), "good")
        .await
        .expect("a certificate from the CA is accepted");
    assert_eq!(connack, CONNACK_OK);
    let refusals: [(&str, Option<Pair>); 3] = [
        ("another CA", Some(pki.foreign_client("foreign"))),
        ("no certificate", None),
        ("expired", Some(pki.expired_client("old"))),
    ];
    for (what, pair) in refusals {
        let refused = connack_over_tls(&broker, pki.client_config(pair.as_ref()), "x").await;
        assert!(refused.is_none(), "{what}: accepted");
    }
    assert_eq!(broker.stats().clients_connected, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn an_optional_client_certificate_is_verified_when_presented() {
    let dir = temp_dir("tls-optional");
    let pki = Pki::new(&dir);
    let broker = tls_broker(&pki, |c| c.listeners[0].cafile = Some(pki.ca.clone())).await;
    let (connack, _none) = connack_over_tls(&broker, pki.client_config(None), "none")
        .await
        .expect("no certificate: accepted");
    assert_eq!(connack, CONNACK_OK);
    let good = pki.client("good");
    let (connack, _good) = connack_over_tls(&broker, pki.client_config(Some(&good)), "good")
        .await
        .expect("this CA's certificate: accepted");
    assert_eq!(connack, CONNACK_OK);
    let foreign = pki.foreign_client("foreign");
    let refused = connack_over_tls(&broker, pki.client_config(Some(&foreign)), "f").await;
    assert!(refused.is_none(), "another CA's certificate accepted");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_certificate_without_identity_gets_no_username() {
    let dir = temp_dir("tls-no-identity");
    let pki = Pki::new(&dir);
    let broker = tls_broker(&pki, |c| {
        mutual(&pki)(c);
        c.listeners[0].use_identity_as_username = true;
    })
    .await;
    let nameless = pki.client_with_sans("nameless", &[]);
    for (version, refused) in [
        (V311, vec![0x20, 0x02, 0x00, 0x05]),
        (
            V5,
            connack_why(
                0x87,
                "this listener takes the username from a client certificate",
            ),
        ),
    ] {
        let tls = tls_connect(broker.local_addrs()[0], pki.client_config(Some(&nameless)))
            .await
            .unwrap();
        let mut peer = Peer::over(tls, version);
        assert_eq!(peer.connack(Connect::new(version, "n")).await, refused);
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn certificate_identity_is_the_username_for_acls() {
    let dir = temp_dir("tls-identity");
    let pki = Pki::new(&dir);
    let acl = write_file(
        &dir,
        "acl",
        "user sensor-7\ntopic readwrite sensors/7/#\nuser device.example\ntopic read devices/#\n",
    );
    let broker = tls_broker(&pki, |c| {
        mutual(&pki)(c);
        c.listeners[0].use_identity_as_username = true;
        c.allow_anonymous = Some(false);
        c.acl_file = Some(acl);
    })
    .await;
    let sensor = pki.client("sensor-7");
    let tls = tls_connect(broker.local_addrs()[0], pki.client_config(Some(&sensor)))
        .await
        .unwrap();
    let mut peer = Peer::over(tls, V311);
    // The CONNECT's own username and password are not what counts.
    let connack = peer.connack(login(V311, "s7", "admin", "whatever")).await;
    assert_eq!(connack, CONNACK_OK);
    let own = peer
        .subscribe("sensors/7/#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    assert_eq!(own, [0x90, 0x03, 0x00, 0x01, 0x00]);
    let other = peer
        .subscribe("sensors/8/#", SubscriptionOptions::qos(QoS::AtMostOnce), 2)
        .await;
    assert_eq!(other, [0x90, 0x03, 0x00, 0x02, 0x80]);
    // Without a common name, the first DNS name.
    let device = pki.client_with_sans("device", &["device.example", "other.example"]);
    let tls = tls_connect(broker.local_addrs()[0], pki.client_config(Some(&device)))
        .await
        .unwrap();
    let mut peer = Peer::over(tls, V311);
    assert_eq!(peer.connack(Connect::new(V311, "d")).await, CONNACK_OK);
    let granted = peer
        .subscribe("devices/#", SubscriptionOptions::qos(QoS::AtMostOnce), 1)
        .await;
    assert_eq!(granted, [0x90, 0x03, 0x00, 0x01, 0x00]);
    broker.shutdown().await;
}

#[tokio::test]
async fn unusable_tls_files_stop_start_up_naming_the_file() {
    let dir = temp_dir("tls-bad");
    let pki = Pki::new(&dir);
    let other = pki.client("someone");
    let not_pem = write_file(&dir, "not.pem", "hello\n");
    let cases = [
        (
            pki.server_cert.clone(),
            other.key.clone(),
            other.key.clone(),
        ),
        (not_pem.clone(), pki.server_key.clone(), not_pem.clone()),
        (pki.server_cert.clone(), not_pem.clone(), not_pem.clone()),
        (
            dir.join("missing.crt"),
            pki.server_key.clone(),
            dir.join("missing.crt"),
        ),
    ];
    for (cert, key, named) in cases {
        let mut config = Config::default();
        config.listeners[0].port = 0;
        config.listeners[0].certfile = Some(cert);
        config.listeners[0].keyfile = Some(key);
        let error = Broker::start(config)
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&named.display().to_string()),
            "{} expected in: {error}",
            named.display()
        );
    }
}

#[tokio::test]
async fn a_silent_tls_connection_is_closed_after_the_connect_timeout() {
    let dir = temp_dir("tls-timeout");
    let pki = Pki::new(&dir);
    let broker = tls_broker(&pki, |c| c.connect_timeout = 1).await;
    let mut tcp = tokio::net::TcpStream::connect(broker.local_addrs()[0])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, tcp.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    broker.shutdown().await;
}
