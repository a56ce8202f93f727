//! MQTT over TLS 1.3 (embedded-tls) with the broker's certificate pinned by its SHA-256
//! fingerprint, against Debian's mosquitto with a certificate made for the test by openssl:
//! the pinned certificate connects and publishes, any other is refused in the handshake.

mod common;

#[path = "../examples/tls_pinned/pinned.rs"]
mod pinned;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{unique, TempDir, WAIT};
use embedded_io_adapters::std::FromStd;
use embedded_tls::blocking::{TlsConfig, TlsConnection, TlsContext, TlsError};
use facteur_embedded::blocking::Client;
use facteur_embedded::{
    ConnectOptions, HeaplessStore, Notification, ProtocolVersion, QoS, ReasonCode, Subscription,
};
use sha2::{Digest, Sha256};

/// mosquitto with a TLS 1.3 listener and a fresh P-256 certificate; `None` when mosquitto or
/// openssl is missing (not under CI=true).
struct TlsBroker {
    addr: SocketAddr,
    fingerprint: [u8; 32],
    child: std::process::Child,
    _dir: TempDir,
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_broker() -> Option<TlsBroker> {
    let mosquitto = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let openssl = std::path::Path::new("/usr/bin/openssl").exists();
    let (Some(mosquitto), true) = (mosquitto, openssl) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("mosquitto and openssl are needed (CI=true: the TLS test must run)");
        }
        eprintln!("mosquitto or openssl is not installed: the TLS test skips");
        return None;
    };
    let dir = TempDir::new("tls");
    let (key, cert, der) = (
        dir.path.join("key.pem"),
        dir.path.join("cert.pem"),
        dir.path.join("cert.der"),
    );
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl made the certificate");
    // mosquitto started as root reads its files as the user `mosquitto`: a throwaway key.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let converted = Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(&cert)
        .arg("-out")
        .arg(&der)
        .status()
        .unwrap();
    assert!(converted.success());
    let fingerprint: [u8; 32] = Sha256::digest(std::fs::read(&der).unwrap()).into();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n\
             certfile {}\nkeyfile {}\ncafile {}\ntls_version tlsv1.3\n",
            cert.display(),
            key.display(),
            cert.display()
        ),
    )
    .unwrap();
    let child = Command::new(mosquitto)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(TlsBroker {
        addr,
        fingerprint,
        child,
        _dir: dir,
    })
}

type Tls = TlsConnection<'static, FromStd<TcpStream>, embedded_tls::blocking::Aes128GcmSha256>;

fn tls(addr: SocketAddr, fingerprint: [u8; 32]) -> Result<Tls, TlsError> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let record_rx = Box::leak(vec![0u8; 16_640].into_boxed_slice());
    let record_tx = Box::leak(vec![0u8; 4_096].into_boxed_slice());
    let mut tls = TlsConnection::new(FromStd::new(stream), record_rx, record_tx);
    let provider = pinned::PinnedProvider::new(rand_core::OsRng, fingerprint);
    tls.open(TlsContext::new(&TlsConfig::new(), provider))?;
    Ok(tls)
}

#[test]
fn mqtt_over_tls_with_a_pinned_certificate() {
    let Some(broker) = tls_broker() else { return };

    // Another certificate's fingerprint: refused during the handshake.
    let mut wrong = broker.fingerprint;
    wrong[0] ^= 1;
    let refused = tls(broker.addr, wrong).map(drop);
    assert!(
        matches!(refused, Err(TlsError::InvalidCertificate)),
        "{refused:?}"
    );

    // The pinned one: MQTT 5.0 over it, a QoS 1 message to ourselves and back.
    let tls = tls(broker.addr, broker.fingerprint).expect("the pinned certificate is accepted");
    let (rx, tx) = common::buffers(1024);
    let id: &'static str = Box::leak(unique("tls").into_boxed_str());
    let mut client: Client<'static, Tls, _, HeaplessStore<2, 2, 128>> = Client::new(
        ConnectOptions::new(ProtocolVersion::V5, id),
        common::clock(),
        rx,
        tx,
    );
    client.connect(tls).expect("MQTT over TLS");
    client
        .subscribe(&[Subscription::new(id, QoS::AtLeastOnce)])
        .unwrap();
    let message = client
        .publish(id, b"pinned", QoS::AtLeastOnce, false)
        .unwrap();
    let (mut acknowledged, mut received) = (false, false);
    let deadline = Instant::now() + WAIT;
    while !(acknowledged && received) {
        assert!(Instant::now() < deadline, "nothing within {WAIT:?}");
        match client.poll().expect("polls") {
            Some(Notification::Published {
                message: m, reason, ..
            }) if m == message => {
                assert_eq!(reason, ReasonCode::Success);
                acknowledged = true;
            }
            Some(Notification::Message(m)) => {
                assert_eq!((m.topic, m.payload), (id, &b"pinned"[..]));
                received = true;
            }
            _ => {}
        }
    }
    client.disconnect();
}
