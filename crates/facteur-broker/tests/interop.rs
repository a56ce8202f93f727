//! Interop with real clients: Debian's mosquitto_pub / mosquitto_sub (MQTT 3.1, 3.1.1, 5.0)
//! and Python's paho-mqtt (3.1.1 and 5.0), against a broker on 127.0.0.1 port 0.
//!
//! A missing peer is reported and the test skipped, except with `CI=true`, where it fails.

use facteur_broker::{Broker, BrokerHandle, Config};
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
        .is_ok();
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{program} is required in CI (.ci/run installs it)");
        }
        eprintln!("SKIPPED: {program} is not installed");
    }
    found
}

async fn broker() -> BrokerHandle {
    let mut config = Config::default();
    config.listeners[0].port = 0;
    Broker::start(config).await.unwrap()
}

async fn run(program: &'static str, args: Vec<String>) -> std::process::Output {
    let child = Command::new(program)
        .args(&args)
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

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Waits until the broker counts `n` connected clients and `subs` subscriptions.
async fn until(broker: &BrokerHandle, n: usize, subs: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = broker.stats();
        if stats.clients_connected == n && stats.subscriptions == subs {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "client did not connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_every_version_and_qos() {
    if !peer_available("mosquitto_pub", &["--help"]) {
        return;
    }
    let broker = broker().await;
    let port = broker.local_addrs()[0].port().to_string();
    for version in ["mqttv31", "mqttv311", "mqttv5"] {
        for qos in ["0", "1", "2"] {
            let sub = tokio::spawn(run(
                "mosquitto_sub",
                args(&[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-V",
                    version,
                    "-q",
                    qos,
                    "-t",
                    "maison/+/temperature",
                    "-C",
                    "1",
                    "-W",
                    "10",
                    "-v",
                ]),
            ));
            until(&broker, 1, 1).await;
            let out = run(
                "mosquitto_pub",
                args(&[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-V",
                    version,
                    "-q",
                    qos,
                    "-t",
                    "maison/etage1/temperature",
                    "-m",
                    "21.5",
                ]),
            )
            .await;
            assert!(out.status.success(), "pub {version} q{qos}: {out:?}");
            let out = sub.await.unwrap();
            assert!(out.status.success(), "sub {version} q{qos}: {out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "maison/etage1/temperature 21.5\n",
                "{version} q{qos}"
            );
            until(&broker, 0, 0).await;
        }
    }
    // Retained, then cleared.
    let out = run(
        "mosquitto_pub",
        args(&[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "etat/porte",
            "-m",
            "fermee",
            "-r",
            "-q",
            "1",
        ]),
    )
    .await;
    assert!(out.status.success());
    let out = run(
        "mosquitto_sub",
        args(&[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "etat/#",
            "-C",
            "1",
            "-W",
            "5",
            "-v",
        ]),
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "etat/porte fermee\n");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_mqtt_3_1_1_and_5_0() {
    let has_paho = std::process::Command::new("python3")
        .args(["-c", "import paho.mqtt"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_paho {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3 with paho-mqtt is required in CI (.ci/run installs it)");
        }
        eprintln!("SKIPPED: python3 with paho-mqtt is not installed");
        return;
    }
    let broker = broker().await;
    let port = broker.local_addrs()[0].port().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/paho_check.py");
    let out = run("python3", args(&[script, &port])).await;
    assert!(
        out.status.success(),
        "paho: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    broker.shutdown().await;
}
