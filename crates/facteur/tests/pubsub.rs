//! `facteur pub` and `facteur sub` run as processes against the facteur broker (in this
//! process, 127.0.0.1 port 0) and Debian's mosquitto (started on a free port), beside
//! mosquitto_pub / mosquitto_sub: what one sends the other receives, and the exit codes
//! (0, 1 on a refused or failed connection, 27 when `sub -W` runs out). Every wait is
//! bounded; interop tests whose program is missing say they skip, except under CI=true.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

const FACTEUR: &str = env!("CARGO_BIN_EXE_facteur");
const WAIT: Duration = Duration::from_secs(20);

fn have(program: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is missing (CI=true: interop tests must run)"
        );
        eprintln!("skipped: {program} is not installed");
    }
    found
}

fn spawn(program: &str, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"))
}

/// Runs to the end within `WAIT`: exit code, stdout, stderr.
async fn finish(child: Child) -> (i32, String, String) {
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the program ends in time")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn run(program: &str, args: &[&str]) -> (i32, String, String) {
    finish(spawn(program, args)).await
}

/// A subscriber started with `-C n` is in place at some point after it starts: runs
/// `publish` to its end again and again until the subscriber has exited (bounded by
/// `WAIT`), then returns the subscriber's exit code and output.
async fn until_done(mut sub: Child, publish: impl Fn() -> Child) -> (i32, String, String) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        finish(publish()).await;
        if let Ok(Some(_)) = sub.try_wait() {
            return finish(sub).await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscriber never got it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Mosquitto {
    /// Killed when dropped (kill_on_drop).
    _child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

async fn mosquitto() -> Mosquitto {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("m.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let child = spawn("mosquitto", &["-c", conf.to_str().unwrap()]);
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mosquitto never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Mosquitto {
        _child: child,
        port,
        _dir: dir,
    }
}

async fn facteur_broker() -> facteur_broker::BrokerHandle {
    let mut config = facteur_broker::Config::default();
    config.listeners[0].port = 0;
    facteur_broker::Broker::start(config).await.unwrap()
}

/// facteur sub receives what facteur pub sends (QoS 0/1/2, 3.1.1 and 5.0, -l lines, a
/// 5.0 user property), with -v and -C.
async fn facteur_to_facteur(port: &str) {
    for (version, qos) in [("mqttv311", "0"), ("311", "1"), ("mqttv5", "2"), ("5", "1")] {
        let sub = spawn(
            FACTEUR,
            &[
                "sub",
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "-t",
                "cli/#",
                "-v",
                "-C",
                "1",
                "-q",
                qos,
                "-V",
                version,
            ],
        );
        let (code, out, err) = until_done(sub, || {
            spawn(
                FACTEUR,
                &[
                    "pub",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    port,
                    "-t",
                    "cli/x",
                    "-m",
                    "bonjour",
                    "-q",
                    qos,
                    "-V",
                    version,
                    "-D",
                    "publish",
                    "user-property",
                    "k",
                    "v",
                ],
            )
        })
        .await;
        assert_eq!(
            (code, out.as_str()),
            (0, "cli/x bonjour\n"),
            "{version} {qos}: {err}"
        );
    }
    // -l: one message per line.
    let sub = spawn(
        FACTEUR,
        &[
            "sub",
            "-p",
            port,
            "-h",
            "127.0.0.1",
            "-t",
            "lines",
            "-C",
            "3",
            "-q",
            "1",
        ],
    );
    let (code, out, _) = until_done(sub, || {
        let mut child = spawn(
            FACTEUR,
            &[
                "pub",
                "-p",
                port,
                "-h",
                "127.0.0.1",
                "-t",
                "lines",
                "-l",
                "-q",
                "1",
            ],
        );
        let mut stdin = child.stdin.take().unwrap();
        tokio::spawn(async move {
            let _ = stdin.write_all(b"un\ndeux\n").await;
        });
        child
    })
    .await;
    assert_eq!(code, 0);
    assert!(out.starts_with("un\ndeux\n"), "{out}");
}

/// Exit codes: a port nobody listens on, a refused CONNECT (an empty client identifier
/// without clean session in 3.1.1), -W running out, bad flags.
async fn exit_codes(port: &str) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let (code, _, err) = run(
        FACTEUR,
        &[
            "pub",
            "-h",
            "127.0.0.1",
            "-p",
            &closed,
            "-t",
            "a",
            "-m",
            "b",
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run(
        FACTEUR,
        &[
            "pub",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            "a",
            "-m",
            "b",
            "-i",
            "",
            "-c",
            "-V",
            "311",
        ],
    )
    .await;
    assert_eq!(code, 1, "refused: {err}");
    assert!(err.contains("refused"), "{err}");
    let (code, _, _) = run(
        FACTEUR,
        &[
            "sub",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            "nothing",
            "-W",
            "1",
        ],
    )
    .await;
    assert_eq!(code, 27);
    let (code, _, _) = run(
        FACTEUR,
        &["pub", "-h", "127.0.0.1", "-p", port, "-t", "a/+", "-m", "b"],
    )
    .await;
    assert_eq!(code, 1, "a topic name with a wildcard");
    let (code, _, _) = run(
        FACTEUR,
        &[
            "sub",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            "a/#/b",
            "-W",
            "1",
        ],
    )
    .await;
    assert_eq!(code, 1, "an invalid filter");
    let (code, _, _) = run(FACTEUR, &["pub", "-h", "127.0.0.1", "-p", port, "-t", "a"]).await;
    assert_eq!(code, 1, "no message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facteur_pub_and_sub_against_the_facteur_broker() {
    let broker = facteur_broker().await;
    let port = broker.local_addrs()[0].port().to_string();
    facteur_to_facteur(&port).await;
    exit_codes(&port).await;
    // -L with the topic in the URL.
    let addr: SocketAddr = broker.local_addrs()[0];
    let url = format!("mqtt://{addr}/par/url");
    let sub = spawn(FACTEUR, &["sub", "-L", &url, "-C", "1"]);
    let (code, out, _) = until_done(sub, || spawn(FACTEUR, &["pub", "-L", &url, "-m", "u"])).await;
    assert_eq!((code, out.as_str()), (0, "u\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facteur_pub_and_sub_against_mosquitto_beside_its_own_clients() {
    if !have("mosquitto") || !have("mosquitto_sub") || !have("mosquitto_pub") {
        return;
    }
    let m = mosquitto().await;
    let port = m.port.to_string();
    facteur_to_facteur(&port).await;
    exit_codes(&port).await;
    // mosquitto_sub receives what facteur pub sent (retained, QoS 2, 5.0).
    let (code, _, err) = run(
        FACTEUR,
        &[
            "pub",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "interop/retenu",
            "-m",
            "21.5",
            "-r",
            "-q",
            "2",
            "-V",
            "5",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(
        "mosquitto_sub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "interop/#",
            "-v",
            "-C",
            "1",
            "-W",
            "10",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "interop/retenu 21.5\n"), "{err}");
    // facteur sub receives what mosquitto_pub sent.
    let sub = spawn(
        FACTEUR,
        &[
            "sub",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "vers/facteur",
            "-C",
            "1",
            "-q",
            "1",
        ],
    );
    let (code, out, _) = until_done(sub, || {
        spawn(
            "mosquitto_pub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "vers/facteur",
                "-m",
                "salut",
                "-q",
                "1",
            ],
        )
    })
    .await;
    assert_eq!((code, out.as_str()), (0, "salut\n"));
    // The same flags give the same exit codes.
    let (code, _, _) = run(
        "mosquitto_pub",
        &["-h", "127.0.0.1", "-p", &port, "-t", "a/+", "-m", "b"],
    )
    .await;
    assert_eq!(code, 1);
    let (code, _, _) = run(
        "mosquitto_sub",
        &["-h", "127.0.0.1", "-p", &port, "-t", "nothing", "-W", "1"],
    )
    .await;
    assert_eq!(code, 27);
    drop(m);
}
