//! Interop with real clients: Debian's mosquitto_pub / mosquitto_sub (MQTT 3.1, 3.1.1, 5.0)
//! and Python's paho-mqtt (3.1.1 and 5.0), against a broker on 127.0.0.1 port 0: every
//! version and QoS, retained messages, `+` and `#` filters (and `$SYS` kept out of them),
//! wills (lost connection, normal exit, 5.0 DISCONNECT 0x04), persistent sessions receiving
//! what was published while they were offline. Waits poll the broker's counters, bounded.
//!
//! A missing peer is reported and the test skipped, except with `CI=true`, where it fails.

use facteur_broker::{Broker, BrokerHandle, Config, StatsSnapshot};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

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
    broker_with(|_| {}).await
}

async fn broker_with(edit: impl FnOnce(&mut Config)) -> BrokerHandle {
    let mut config = Config::default();
    config.listeners[0].port = 0;
    edit(&mut config);
    Broker::start(config).await.unwrap()
}

/// Starts a client and leaves it running (killed if dropped).
fn spawn(program: &'static str, args: Vec<String>) -> Child {
    Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits, bounded, for a client started with [`spawn`] to exit by itself.
async fn finish(child: Child, what: &str) -> std::process::Output {
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish"))
        .unwrap()
}

/// mosquitto_sub/mosquitto_pub arguments: host, port and protocol version, then `rest`.
fn mosq(port: &str, version: &str, rest: &[&str]) -> Vec<String> {
    let mut list = args(&["-h", "127.0.0.1", "-p", port, "-V", version]);
    list.extend(args(rest));
    list
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
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

/// Runs mosquitto_pub with these arguments and checks it succeeded.
async fn mosquitto_pub(args: Vec<String>) {
    let out = run("mosquitto_pub", args).await;
    assert!(out.status.success(), "mosquitto_pub: {out:?}");
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Waits until the broker counts `n` connected clients and `subs` subscriptions.
async fn until(broker: &BrokerHandle, n: usize, subs: usize) {
    until_stats(broker, &format!("{n} clients, {subs} subscriptions"), |s| {
        s.clients_connected == n && s.subscriptions == subs
    })
    .await;
}

/// Polls the broker's counters until `ready` holds; fails after `WAIT`.
async fn until_stats(broker: &BrokerHandle, what: &str, ready: impl Fn(&StatsSnapshot) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = broker.stats();
        if ready(&stats) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited for {what}, stats are {stats:?}"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_wildcards_and_no_sys_on_hash() {
    if !peer_available("mosquitto_pub", &["--help"]) {
        return;
    }
    // $SYS every second, so that some are published while the wildcard subscribers listen.
    let broker = broker_with(|c| c.sys_interval = 1).await;
    let port = broker.local_addrs()[0].port().to_string();
    for version in ["mqttv311", "mqttv5"] {
        let sub = |filter: &str, count: &str| {
            spawn(
                "mosquitto_sub",
                mosq(
                    &port,
                    version,
                    &["-q", "1", "-t", filter, "-C", count, "-W", "10", "-v"],
                ),
            )
        };
        let everything = sub("#", "5");
        let temperatures = sub("maison/+/temp", "2");
        let house = sub("maison/#", "3");
        let top_level = sub("+", "1");
        let broker_level = sub("+/broker/#", "1");
        until(&broker, 5, 5).await;
        // A fresh $SYS publication (not only the retained ones) after the wildcard
        // subscriptions exist: two messages on uptime mean at least one live one.
        let out = run(
            "mosquitto_sub",
            mosq(
                &port,
                version,
                &["-t", "$SYS/broker/uptime", "-C", "2", "-W", "10", "-v"],
            ),
        )
        .await;
        assert!(out.status.success(), "$SYS {version}: {out:?}");
        assert!(stdout(&out).starts_with("$SYS/broker/uptime "), "{out:?}");
        for topic in [
            "maison/salon/temp",
            "maison/cuisine/temp",
            "maison/salon/humidite",
            "jardin",
            "x/broker/y",
        ] {
            let out = run(
                "mosquitto_pub",
                mosq(&port, version, &["-q", "1", "-t", topic, "-m", "v"]),
            )
            .await;
            assert!(out.status.success(), "pub {topic} {version}: {out:?}");
        }
        let expect = [
            (
                everything,
                "#",
                "maison/salon/temp v\nmaison/cuisine/temp v\nmaison/salon/humidite v\njardin v\nx/broker/y v\n",
            ),
            (
                temperatures,
                "maison/+/temp",
                "maison/salon/temp v\nmaison/cuisine/temp v\n",
            ),
            (
                house,
                "maison/#",
                "maison/salon/temp v\nmaison/cuisine/temp v\nmaison/salon/humidite v\n",
            ),
            (top_level, "+", "jardin v\n"),
            (broker_level, "+/broker/#", "x/broker/y v\n"),
        ];
        for (child, filter, want) in expect {
            let out = finish(child, filter).await;
            assert!(out.status.success(), "{filter} {version}: {out:?}");
            assert_eq!(stdout(&out), want, "{filter} {version}");
        }
        until(&broker, 0, 0).await;
    }
    broker.shutdown().await;
}

/// A will watcher on `topic`: prints the first message there and exits.
async fn watch(broker: &BrokerHandle, port: &str, version: &str, topic: &str) -> Child {
    let before = broker.stats();
    let child = spawn(
        "mosquitto_sub",
        mosq(
            port,
            version,
            &["-q", "1", "-t", topic, "-C", "1", "-W", "10", "-v"],
        ),
    );
    until(
        broker,
        before.clients_connected + 1,
        before.subscriptions + 1,
    )
    .await;
    child
}

/// mosquitto_sub with a will on `will_topic`, subscribed to `topic`, connected when this
/// returns.
async fn with_will(
    broker: &BrokerHandle,
    port: &str,
    version: &str,
    will_topic: &str,
    topic: &str,
    extra: &[&str],
) -> Child {
    let before = broker.stats();
    let mut rest = vec![
        "-t",
        topic,
        "--will-topic",
        will_topic,
        "--will-payload",
        "gone",
        "--will-qos",
        "1",
    ];
    rest.extend_from_slice(extra);
    let child = spawn("mosquitto_sub", mosq(port, version, &rest));
    until(
        broker,
        before.clients_connected + 1,
        before.subscriptions + 1,
    )
    .await;
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_will_on_kill_not_on_normal_exit() {
    if !peer_available("mosquitto_sub", &["--help"]) {
        return;
    }
    let broker = broker().await;
    let port = broker.local_addrs()[0].port().to_string();
    for version in ["mqttv311", "mqttv5"] {
        // Killed: the connection drops without DISCONNECT, the will goes.
        let will_topic = format!("will/{version}/killed");
        let watcher = watch(&broker, &port, version, &will_topic).await;
        let mut doomed = with_will(&broker, &port, version, &will_topic, "ignore", &[]).await;
        doomed.kill().await.unwrap();
        let out = finish(watcher, "will watcher").await;
        assert!(out.status.success(), "{version}: {out:?}");
        assert_eq!(stdout(&out), format!("{will_topic} gone\n"), "{version}");
        until(&broker, 0, 0).await;

        // Exits after one message (-C 1): DISCONNECT 0x00, no will. A sentinel published on
        // the will topic afterwards must be the first thing the watcher sees.
        let will_topic = format!("will/{version}/count");
        let trigger = format!("trigger/{version}");
        let watcher = watch(&broker, &port, version, &will_topic).await;
        let leaver = with_will(&broker, &port, version, &will_topic, &trigger, &["-C", "1"]).await;
        mosquitto_pub(mosq(
            &port,
            version,
            &["-q", "1", "-t", &trigger, "-m", "x"],
        ))
        .await;
        let out = finish(leaver, "mosquitto_sub -C 1").await;
        assert!(out.status.success(), "{version}: {out:?}");
        until(&broker, 1, 1).await;
        mosquitto_pub(mosq(
            &port,
            version,
            &["-q", "1", "-t", &will_topic, "-m", "sentinel"],
        ))
        .await;
        let out = finish(watcher, "will watcher").await;
        assert_eq!(
            stdout(&out),
            format!("{will_topic} sentinel\n"),
            "{version}: the will was published on a normal DISCONNECT"
        );
        until(&broker, 0, 0).await;

        // Timeout (-W): mosquitto_sub disconnects with reason 0x04, Disconnect with Will
        // Message. MQTT 3.1.1 has no reason code: a plain DISCONNECT, no will. MQTT 5.0: the
        // broker publishes the will (3.14.2.1).
        let will_topic = format!("will/{version}/timeout");
        let watcher = watch(&broker, &port, version, &will_topic).await;
        let leaver = with_will(&broker, &port, version, &will_topic, "ignore", &["-W", "3"]).await;
        finish(leaver, "mosquitto_sub -W 3").await;
        let want = if version == "mqttv5" {
            "gone"
        } else {
            // No will: the watcher is still there, and sees the sentinel first.
            until(&broker, 1, 1).await;
            mosquitto_pub(mosq(
                &port,
                version,
                &["-q", "1", "-t", &will_topic, "-m", "sentinel"],
            ))
            .await;
            "sentinel"
        };
        let out = finish(watcher, "will watcher").await;
        assert_eq!(
            stdout(&out),
            format!("{will_topic} {want}\n"),
            "{version} -W"
        );
        until(&broker, 0, 0).await;
    }
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_persistent_session_gets_offline_messages() {
    if !peer_available("mosquitto_sub", &["--help"]) {
        return;
    }
    let broker = broker().await;
    let port = broker.local_addrs()[0].port().to_string();
    for version in ["mqttv311", "mqttv5"] {
        // -c: clean session 0 (3.1.1), session expiry "never" (5.0). -E: exit once subscribed.
        let id = format!("keeper-{version}");
        let topic = format!("t/{version}");
        let out = run(
            "mosquitto_sub",
            mosq(
                &port,
                version,
                &["-c", "-i", &id, "-q", "1", "-t", &topic, "-E"],
            ),
        )
        .await;
        assert!(out.status.success(), "{version}: {out:?}");
        until_stats(&broker, "an offline session", |s| {
            s.clients_connected == 0 && s.sessions == 1
        })
        .await;
        // mosquitto_pub -q 1 ends after its PUBACK, which the broker writes once it has
        // routed the message (into the offline session's queue).
        let out = run(
            "mosquitto_pub",
            mosq(&port, version, &["-q", "1", "-t", &topic, "-m", "queued"]),
        )
        .await;
        assert!(out.status.success(), "{version}: {out:?}");
        let out = run(
            "mosquitto_sub",
            mosq(
                &port,
                version,
                &[
                    "-c", "-i", &id, "-q", "1", "-t", &topic, "-C", "1", "-W", "10", "-v",
                ],
            ),
        )
        .await;
        assert!(out.status.success(), "{version}: {out:?}");
        assert_eq!(stdout(&out), format!("{topic} queued\n"), "{version}");
        // Still persistent after the second visit; end it with a clean connection.
        until_stats(&broker, "an offline session", |s| {
            s.clients_connected == 0 && s.sessions == 1
        })
        .await;
        let out = run(
            "mosquitto_sub",
            mosq(&port, version, &["-i", &id, "-t", &topic, "-E"]),
        )
        .await;
        assert!(out.status.success(), "{version}: {out:?}");
        until_stats(&broker, "no session", |s| s.sessions == 0).await;
    }
    // 5.0, -c with -x 0: the session ends with the connection.
    let out = run(
        "mosquitto_sub",
        mosq(
            &port,
            "mqttv5",
            &[
                "-c", "-x", "0", "-i", "brief", "-q", "1", "-t", "t/brief", "-E",
            ],
        ),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    until_stats(&broker, "no session", |s| {
        s.clients_connected == 0 && s.sessions == 0 && s.subscriptions == 0
    })
    .await;
    broker.shutdown().await;
}
