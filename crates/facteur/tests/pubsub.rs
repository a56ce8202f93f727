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
    // -l: one message per line. The publisher starts once `sub -d` says its SUBACK came,
    // so both lines, in order, are the whole output.
    let lines = ["-p", port, "-h", "127.0.0.1", "-t", "lines", "-q", "1"];
    let sub_args = [&["sub", "-C", "2", "-d"][..], &lines].concat();
    let sub = subscribed(spawn(FACTEUR, &sub_args)).await;
    let mut publisher = spawn(FACTEUR, &[&["pub", "-l"][..], &lines].concat());
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all(b"un\ndeux\n").await.unwrap();
    drop(stdin);
    let (code, _, err) = finish(publisher).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = finish(sub).await;
    assert_eq!((code, out.as_str()), (0, "un\ndeux\n"));
}

/// Reads the program's standard error (bounded) until a line starts with `prefix`; the
/// rest of it is drained in the background, so that later lines never hit a closed pipe.
async fn stderr_until(child: &mut Child, prefix: &str) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("'{prefix}' in time"))
            .unwrap()
            .expect("still running");
        if line.starts_with(prefix) {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

/// Waits until a `sub -d` says a subscription was granted.
async fn subscribed(mut sub: Child) -> Child {
    stderr_until(&mut sub, "Subscribed to ").await;
    sub
}

/// `--will-*`: a client killed without DISCONNECT has its will published (retained, so
/// that a subscriber that comes after sees it).
async fn will(port: &str) {
    let mut client = spawn(
        FACTEUR,
        &[
            "sub",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            "rien",
            "-d",
            "-V",
            "5",
            "--will-topic",
            "etat/cli",
            "--will-payload",
            "perdu",
            "--will-qos",
            "1",
            "--will-retain",
        ],
    );
    // -d prints the connection's events: wait for it to be connected, then kill it.
    stderr_until(&mut client, "Connected").await;
    client.start_kill().unwrap();
    let _ = tokio::time::timeout(WAIT, client.wait()).await.unwrap();
    let (code, out, err) = run(
        FACTEUR,
        &[
            "sub",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            "etat/#",
            "-v",
            "-C",
            "1",
            "-W",
            "10",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "etat/cli perdu\n"), "{err}");
}

/// `sub -c`: a second run picks up what was queued for the session of the first.
async fn persistent_session(port: &str) {
    let sub = spawn(
        FACTEUR,
        &[
            "sub",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            "persist/#",
            "-q",
            "1",
            "-c",
            "-i",
            "persist",
            "-C",
            "1",
        ],
    );
    let (code, _, err) = until_done(sub, || {
        spawn(
            FACTEUR,
            &[
                "pub",
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "-t",
                "persist/a",
                "-m",
                "first",
                "-q",
                "1",
            ],
        )
    })
    .await;
    assert_eq!(code, 0, "{err}");
    // Offline: queued by the broker for the session.
    let (code, _, err) = run(
        FACTEUR,
        &[
            "pub",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            "persist/b",
            "-m",
            "queued",
            "-q",
            "1",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(
        FACTEUR,
        &[
            "sub",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            "persist/#",
            "-q",
            "1",
            "-c",
            "-i",
            "persist",
            "-W",
            "2",
        ],
    )
    .await;
    // Copies of "first" published while the first run was leaving may come before it.
    assert_eq!(code, 27, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.last(), Some(&"queued"), "{out}");
    assert!(
        lines[..lines.len() - 1].iter().all(|l| *l == "first"),
        "{out}"
    );
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
    persistent_session(&port).await;
    will(&port).await;
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
    persistent_session(&port).await;
    will(&port).await;
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

/// TLS flags against mosquitto: --cafile, --cert/--key (mutual TLS), --insecure (a
/// certificate for another name), -L mqtts://; a failed TLS connection exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_flags_against_mosquitto() {
    if !have("mosquitto") || !have("mosquitto_sub") {
        return;
    }
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // OpenSSL (mosquitto) finds an issuer by its name: the CA needs one.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "facteur CLI test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    // For "localhost" only: 127.0.0.1 is another name.
    let server = CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "facteur pub");
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    for (name, text) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server.pem()),
        ("server.key", server_key.serialize_pem()),
        ("client.pem", client.pem()),
        ("client.key", client_key.serialize_pem()),
    ] {
        std::fs::write(path(name), text).unwrap();
    }
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    // A port found free may be taken again (by another test's outgoing connection) before
    // mosquitto binds it: mosquitto then exits, and the test starts it again on new ports
    // (three attempts at most).
    let mut attempts = 0;
    let (_mosquitto, plain, tls) = loop {
        attempts += 1;
        let (plain, tls) = (free(), free());
        let conf = path("m.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {plain} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 listener {tls} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
                path("ca.pem"),
                path("server.pem"),
                path("server.key")
            ),
        )
        .unwrap();
        let mut mosquitto = spawn("mosquitto", &["-c", &conf]);
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut listening = true;
        for port in [plain, tls] {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                if mosquitto.try_wait().unwrap().is_some() {
                    listening = false;
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "mosquitto never listened"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if listening {
            break (mosquitto, plain, tls);
        }
        assert!(attempts < 3, "mosquitto exited three times (ports taken?)");
    };
    let (tls, plain) = (tls.to_string(), plain.to_string());
    let (ca, cert, key) = (path("ca.pem"), path("client.pem"), path("client.key"));
    let mutual = [
        "--cafile",
        ca.as_str(),
        "--cert",
        cert.as_str(),
        "--key",
        key.as_str(),
    ];
    let publish = |host: &str, extra: &[&str], payload: &str| {
        let mut args = vec![
            "pub",
            "-h",
            host,
            "-p",
            tls.as_str(),
            "-t",
            "tls/x",
            "-r",
            "-q",
            "1",
            "-m",
            payload,
        ];
        args.extend_from_slice(&mutual);
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let retained = || async {
        let (code, out, err) = run(
            "mosquitto_sub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &plain,
                "-t",
                "tls/x",
                "-C",
                "1",
                "-W",
                "10",
            ],
        )
        .await;
        assert_eq!(code, 0, "{err}");
        out
    };
    let run_owned = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(FACTEUR, &args).await
    };
    // Mutual TLS to the certificate's name.
    let (code, _, err) = run_owned(publish("localhost", &[], "un")).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(retained().await, "un\n");
    // Another name: refused, unless --insecure.
    let (code, _, _) = run_owned(publish("127.0.0.1", &[], "deux")).await;
    assert_eq!(code, 1);
    let (code, _, err) = run_owned(publish("127.0.0.1", &["--insecure"], "trois")).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(retained().await, "trois\n");
    // Without the client certificate: the server refuses.
    let (code, _, _) = run(
        FACTEUR,
        &[
            "pub",
            "-h",
            "localhost",
            "-p",
            &tls,
            "-t",
            "tls/x",
            "-m",
            "quatre",
            "--cafile",
            &ca,
        ],
    )
    .await;
    assert_eq!(code, 1);
    // -L mqtts://host:port/topic.
    let url = format!("mqtts://localhost:{tls}/tls/x");
    let mut args = vec!["pub", "-L", url.as_str(), "-m", "cinq", "-r", "-q", "1"];
    args.extend_from_slice(&mutual);
    let (code, _, err) = run(FACTEUR, &args).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(retained().await, "cinq\n");
}

/// -u / -P against a facteur broker with a password file (made by `facteur passwd`) and no
/// anonymous clients: the right password publishes (0), a wrong one or none is refused
/// (1), as mosquitto_pub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_against_a_facteur_broker_with_a_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let file_arg = file.to_str().unwrap();
    let (code, _, err) = run(
        FACTEUR,
        &[
            "passwd", "-c", "-b", "-I", "1000", file_arg, "alice", "s3cret",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let mut config = facteur_broker::Config::default();
    config.listeners[0].port = 0;
    config.allow_anonymous = Some(false);
    config.password_file = Some(file.clone());
    let broker = facteur_broker::Broker::start(config).await.unwrap();
    let port = broker.local_addrs()[0].port().to_string();
    let publish = |extra: &[&str]| {
        let mut args = vec![
            "pub",
            "-h",
            "127.0.0.1",
            "-p",
            port.as_str(),
            "-t",
            "a",
            "-m",
            "b",
            "-q",
            "1",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    for (extra, expected) in [
        (&["-u", "alice", "-P", "s3cret"][..], 0),
        (&["-u", "alice", "-P", "wrong"][..], 1),
        (&[][..], 1),
    ] {
        let args = publish(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = run(FACTEUR, &args).await;
        assert_eq!(code, expected, "{extra:?}: {err}");
        if expected == 1 {
            assert!(err.contains("refused"), "{err}");
        }
    }
    // The same with mosquitto_pub, where it is installed.
    if have("mosquitto_pub") {
        let args = publish(&["-u", "alice", "-P", "wrong"]);
        let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let (code, _, _) = run("mosquitto_pub", &args).await;
        assert_ne!(code, 0);
    }
}
