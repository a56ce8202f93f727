//! TLS, mutual TLS, WebSocket and WebSocket over TLS, against Debian's mosquitto
//! configured by the test with certificates made by rcgen.

mod common;

use std::time::Duration;

use common::*;
use facteur_client::{Client, Error, Options, QoS, Reconnect, Roots, TlsOptions, Transport};

struct Setup {
    _mosquitto: Mosquitto,
    tls: u16,
    mtls: u16,
    ws: u16,
    wss: u16,
    pki: Pki,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let pki = pki();
    let (tls, mtls, ws, wss) = (free_port(), free_port(), free_port(), free_port());
    let certs = "cafile {dir}/ca.pem\ncertfile {dir}/server.pem\nkeyfile {dir}/server.key\n";
    let conf = format!(
        "listener {tls} 127.0.0.1\n{certs}\
         listener {mtls} 127.0.0.1\n{certs}require_certificate true\n\
         listener {ws} 127.0.0.1\nprotocol websockets\n\
         listener {wss} 127.0.0.1\nprotocol websockets\n{certs}"
    );
    let mosquitto = Mosquitto::start(
        &conf,
        &[
            ("ca.pem", pki.ca_pem.as_bytes()),
            ("server.pem", pki.server_cert.as_bytes()),
            ("server.key", pki.server_key.as_bytes()),
        ],
    )
    .await;
    for port in [tls, mtls, ws, wss] {
        wait_for_port(port).await;
    }
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("ca.pem", &pki.ca_pem),
            ("client.pem", &pki.client_cert),
            ("client.key", &pki.client_key),
        ],
    );
    Setup {
        _mosquitto: mosquitto,
        tls,
        mtls,
        ws,
        wss,
        pki,
        dir,
    }
}

fn tls_options(setup: &Setup) -> TlsOptions {
    let mut tls = TlsOptions::default();
    tls.roots = Roots::CaPem(setup.pki.ca_pem.clone().into_bytes());
    tls
}

fn once(mut options: Options, id: &str) -> Options {
    options.client_id = id.into();
    options.reconnect = Reconnect::off();
    options.connect_timeout = Duration::from_secs(5);
    options
}

/// A message to oneself over `options`.
async fn round_trip(options: Options) {
    let (client, mut messages) = connect(options).await;
    client
        .subscribe("transport/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .publish("transport/x", "over the wire")
        .qos(QoS::ExactlyOnce)
        .await
        .unwrap();
    let m = next(&mut messages).await;
    assert_eq!(m.payload_str(), Some("over the wire"));
    client.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mutual_tls_websocket_against_mosquitto() {
    if !have("mosquitto") {
        return;
    }
    let setup = setup().await;

    // TLS with the test's CA, by URL.
    let mut o = Options::from_url(&format!("mqtts://localhost:{}", setup.tls)).unwrap();
    *o.transport.tls_mut().unwrap() = tls_options(&setup);
    round_trip(once(o, "tls")).await;

    // The CA from a file (mosquitto's --cafile).
    let mut o = Options::from_url(&format!("mqtts://localhost:{}", setup.tls)).unwrap();
    o.transport.tls_mut().unwrap().roots = Roots::CaFile(setup.dir.path().join("ca.pem"));
    round_trip(once(o, "tls-file")).await;

    // Untrusted: the public roots do not know the test's CA.
    let o = Options::from_url(&format!("mqtts://localhost:{}", setup.tls)).unwrap();
    assert!(matches!(
        Client::connect(once(o, "tls-untrusted")).await,
        Err(Error::Tls(_))
    ));

    // A name the certificate does not carry: refused, unless the name check is skipped.
    let mut o = Options::new("127.0.0.1", setup.tls);
    let mut tls = tls_options(&setup);
    tls.server_name = Some("ailleurs.example".into());
    o.transport = Transport::Tls(tls.clone());
    assert!(matches!(
        Client::connect(once(o.clone(), "tls-name")).await,
        Err(Error::Tls(_))
    ));
    tls.skip_name_check = true;
    o.transport = Transport::Tls(tls);
    round_trip(once(o, "tls-insecure")).await;

    // Mutual TLS: with the client certificate, and without (refused by the server).
    let mut o = Options::new("localhost", setup.mtls);
    let mut tls = tls_options(&setup);
    tls.client_auth = Some((
        setup.dir.path().join("client.pem"),
        setup.dir.path().join("client.key"),
    ));
    o.transport = Transport::Tls(tls);
    round_trip(once(o, "mtls")).await;
    let mut o = Options::new("localhost", setup.mtls);
    o.transport = Transport::Tls(tls_options(&setup));
    assert!(Client::connect(once(o, "mtls-none")).await.is_err());

    // WebSocket, by URL, and WebSocket over TLS.
    let o = Options::from_url(&format!("ws://127.0.0.1:{}/mqtt", setup.ws)).unwrap();
    round_trip(once(o, "ws")).await;
    let mut o = Options::from_url(&format!("wss://localhost:{}/mqtt", setup.wss)).unwrap();
    *o.transport.tls_mut().unwrap() = tls_options(&setup);
    round_trip(once(o, "wss")).await;
    // 3.1.1 over WebSocket too.
    let o = Options::from_url(&format!("ws://127.0.0.1:{}/?protocol=311", setup.ws)).unwrap();
    round_trip(once(o, "ws311")).await;
}

/// A TLS file that is missing or holds no certificate is a clear error.
#[tokio::test]
async fn bad_tls_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for roots in [
        Roots::CaFile(dir.path().join("missing.pem")),
        Roots::CaFile(empty),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut tls = TlsOptions::default();
        tls.roots = roots;
        let o = Options::new("127.0.0.1", port).transport(Transport::Tls(tls));
        match Client::connect(once(o, "bad")).await {
            Err(Error::Tls(why)) => assert!(why.contains(".pem"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
