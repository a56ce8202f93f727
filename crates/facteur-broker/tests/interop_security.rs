//! Interop of the security features with real clients, on 127.0.0.1 port 0:
//! mosquitto_pub / mosquitto_sub over TLS (`--cafile`), mutual TLS (`--cert` / `--key`)
//! with a username and password (`-u` / `-P`); a password file made by Debian's
//! `mosquitto_passwd` read by facteur, and one made by facteur read by the mosquitto
//! broker; Python paho-mqtt over WebSocket, plain and TLS, MQTT 3.1.1 and 5.0.
//!
//! A missing peer is reported and the test skipped, except with `CI=true`, where it fails.

mod common;

use common::pki::Pki;
use common::{broker_with, passwd_line, temp_dir, write_file};
use facteur_broker::{BrokerHandle, Listener, Protocol};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(15);

fn peer_available(program: &str, probe: &[&str]) -> bool {
    let found = std::process::Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success() || program.starts_with("mosquitto"));
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{program} is required in CI (.ci/run installs it)");
        }
        eprintln!("SKIPPED: {program} is not installed");
    }
    found
}

fn paho_available() -> bool {
    peer_available("python3", &["-c", "import paho.mqtt"])
}

async fn run(program: &str, args: &[&str]) -> std::process::Output {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish"))
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Polls until the broker counts `n` subscriptions; fails after `WAIT`.
async fn until_subscriptions(broker: &BrokerHandle, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while broker.stats().subscriptions != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            broker.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// mosquitto_sub for one message on `topic` (started, subscribed) and mosquitto_pub of
/// `payload` there, both with `client_args`; mosquitto_sub's output.
async fn sub_then_pub(
    broker: &BrokerHandle,
    port: u16,
    client_args: &[&str],
    topic: &str,
    payload: &str,
) -> String {
    let port = port.to_string();
    let mut common = vec!["-h", "localhost", "-p", &port];
    common.extend_from_slice(client_args);
    let mut sub_args = common.clone();
    sub_args.extend_from_slice(&["-t", topic, "-C", "1", "-W", "10", "-v", "-q", "1"]);
    let before = broker.stats().subscriptions;
    let sub_args: Vec<String> = sub_args.iter().map(|s| s.to_string()).collect();
    let sub = tokio::spawn(async move {
        let args: Vec<&str> = sub_args.iter().map(String::as_str).collect();
        run("mosquitto_sub", &args).await
    });
    until_subscriptions(broker, before + 1).await;
    let mut pub_args = common.clone();
    pub_args.extend_from_slice(&["-t", topic, "-m", payload, "-q", "1"]);
    let out = run("mosquitto_pub", &pub_args).await;
    assert!(out.status.success(), "mosquitto_pub: {}", text(&out));
    let out = sub.await.unwrap();
    assert!(out.status.success(), "mosquitto_sub: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tls_listener(pki: &Pki) -> Listener {
    let mut listener = Listener::default();
    listener.port = 0;
    listener.certfile = Some(pki.server_cert.clone());
    listener.keyfile = Some(pki.server_key.clone());
    listener
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_over_tls_and_mutual_tls_with_a_password() {
    if !peer_available("mosquitto_pub", &["--help"]) {
        return;
    }
    let dir = temp_dir("interop-tls");
    let pki = Pki::new(&dir);
    let passwords = write_file(&dir, "passwd", &passwd_line("alice", "a-pw"));
    let client = pki.client("mosquitto-client");
    let broker = broker_with(|c| {
        c.password_file = Some(passwords);
        c.allow_anonymous = Some(false);
        let server_only = tls_listener(&pki);
        let mut mutual = tls_listener(&pki);
        mutual.cafile = Some(pki.ca.clone());
        mutual.require_certificate = true;
        c.listeners = vec![server_only, mutual];
    })
    .await;
    let [tls_port, mutual_port] = [0, 1].map(|i| broker.local_addrs()[i].port());
    let ca = pki.ca.to_str().unwrap();
    let (cert, key) = (client.cert.to_str().unwrap(), client.key.to_str().unwrap());
    for version in ["mqttv311", "mqttv5"] {
        let over_tls = ["--cafile", ca, "-u", "alice", "-P", "a-pw", "-V", version];
        let got = sub_then_pub(&broker, tls_port, &over_tls, "tls/t", "secret").await;
        assert_eq!(got, "tls/t secret\n", "{version}");
        let mutual = [
            "--cafile", ca, "--cert", cert, "--key", key, "-u", "alice", "-P", "a-pw", "-V",
            version,
        ];
        let got = sub_then_pub(&broker, mutual_port, &mutual, "mtls/t", "both").await;
        assert_eq!(got, "mtls/t both\n", "{version}");
    }
    // Refused: a wrong password, and no client certificate where one is required.
    let port = tls_port.to_string();
    let wrong = [
        "-h",
        "localhost",
        "-p",
        &port,
        "--cafile",
        ca,
        "-u",
        "alice",
        "-P",
        "nope",
        "-t",
        "x",
        "-m",
        "x",
    ];
    let out = run("mosquitto_pub", &wrong).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not authorised"), "{}", text(&out));
    let port = mutual_port.to_string();
    let no_cert = [
        "-h",
        "localhost",
        "-p",
        &port,
        "--cafile",
        ca,
        "-u",
        "alice",
        "-P",
        "a-pw",
        "-t",
        "x",
        "-m",
        "x",
    ];
    let out = run("mosquitto_pub", &no_cert).await;
    assert!(!out.status.success(), "{}", text(&out));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_file_made_by_mosquitto_passwd_is_read_as_it_is() {
    if !peer_available("mosquitto_passwd", &["--help"])
        || !peer_available("mosquitto_pub", &["--help"])
    {
        return;
    }
    let dir = temp_dir("interop-mosquitto-passwd");
    let file = dir.join("passwd");
    let path = file.to_str().unwrap();
    for args in [
        vec!["-c", "-b", path, "ann", "ann-pw"],
        vec!["-b", path, "ben", "ben-pw"],
    ] {
        let out = run("mosquitto_passwd", &args).await;
        assert!(out.status.success(), "mosquitto_passwd: {}", text(&out));
    }
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.starts_with("ann:$7$"), "{written}");
    let broker = broker_with(|c| {
        c.password_file = Some(file.clone());
        c.allow_anonymous = Some(false);
    })
    .await;
    let port = broker.local_addrs()[0].port().to_string();
    let publish = |user: &'static str, password: &'static str| {
        let port = port.clone();
        async move {
            let args = [
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-u",
                user,
                "-P",
                password,
                "-t",
                "p",
                "-m",
                "m",
            ];
            run("mosquitto_pub", &args).await
        }
    };
    for (user, password) in [("ann", "ann-pw"), ("ben", "ben-pw")] {
        let out = publish(user, password).await;
        assert!(out.status.success(), "{user}: {}", text(&out));
    }
    for (user, password) in [("ann", "ben-pw"), ("nobody", "ann-pw")] {
        let out = publish(user, password).await;
        assert!(!out.status.success(), "{user}/{password} accepted");
        assert!(text(&out).contains("not authorised"), "{}", text(&out));
    }
    broker.shutdown().await;
}

/// A free port on 127.0.0.1 (for the mosquitto broker, which needs a number).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_file_made_by_facteur_is_read_by_mosquitto() {
    if !peer_available("mosquitto", &["-h"]) || !peer_available("mosquitto_pub", &["--help"]) {
        return;
    }
    let dir = temp_dir("interop-facteur-passwd");
    let hash =
        facteur_broker::auth::password::PasswordHash::with_iterations(b"cat-pw", 1000).unwrap();
    let file = write_file(&dir, "passwd", &format!("cat:{hash}\n"));
    let port = free_port();
    let conf = write_file(
        &dir,
        "mosquitto.conf",
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
            file.display()
        ),
    );
    let _mosquitto = Command::new("mosquitto")
        .args(["-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    let port = port.to_string();
    let args = |password| {
        [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            "cat",
            "-P",
            password,
            "-t",
            "t",
            "-m",
            "m",
        ]
        .map(str::to_owned)
    };
    let run_owned = |args: [String; 12]| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("mosquitto_pub", &args).await
    };
    let out = run_owned(args("cat-pw")).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run_owned(args("dog-pw")).await;
    assert!(
        !out.status.success(),
        "a wrong password accepted by mosquitto"
    );
}

/// Waits until something listens on 127.0.0.1:`port`; fails after `WAIT`.
async fn wait_for_port(port: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "nothing on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn paho_over_websocket(broker: &BrokerHandle, index: usize, cafile: Option<&Path>) {
    let port = broker.local_addrs()[index].port().to_string();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/paho_ws_check.py"
    );
    let mut args = vec![script, &port];
    if let Some(ca) = cafile {
        args.push(ca.to_str().unwrap());
    }
    let out = run("python3", &args).await;
    assert!(out.status.success(), "paho over WebSocket: {}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_over_websocket_plain_and_tls_3_1_1_and_5_0() {
    if !paho_available() {
        return;
    }
    let dir = temp_dir("interop-ws");
    let pki = Pki::new(&dir);
    let broker = broker_with(|c| {
        let mut plain = Listener::default();
        plain.port = 0;
        plain.protocol = Protocol::Websockets;
        let mut secure = tls_listener(&pki);
        secure.protocol = Protocol::Websockets;
        c.listeners = vec![plain, secure];
    })
    .await;
    paho_over_websocket(&broker, 0, None).await;
    paho_over_websocket(&broker, 1, Some(&pki.ca)).await;
    broker.shutdown().await;
}
