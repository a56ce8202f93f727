//! The built `facteur` program, run as a child process: its help, its exit code on a bad
//! configuration, and its logs when they go to a pipe (no ANSI colour codes). The broker
//! listens on 127.0.0.1 port 0 only; every wait is bounded.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const FACTEUR: &str = env!("CARGO_BIN_EXE_facteur");

/// Kills the child when dropped, so a failing assertion leaves no broker running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends every line `from` produces (raw bytes, newline kept) to `to`, until end of file.
fn forward(from: impl Read + Send + 'static, to: mpsc::Sender<Vec<u8>>) {
    std::thread::spawn(move || {
        let mut from = BufReader::new(from);
        loop {
            let mut line = Vec::new();
            match from.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if to.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// Starts `facteur` with these arguments, stdout and stderr piped into one channel of lines.
fn start(args: &[&str]) -> (Running, mpsc::Receiver<Vec<u8>>) {
    let mut child = Command::new(FACTEUR)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start facteur");
    let (tx, rx) = mpsc::channel();
    forward(child.stdout.take().unwrap(), tx.clone());
    forward(child.stderr.take().unwrap(), tx);
    (Running(child), rx)
}

/// Runs `facteur` with these arguments to its end (bounded by [`WAIT`]): its exit status and
/// everything it wrote to stdout and stderr.
fn run(args: &[&str]) -> (ExitStatus, String) {
    let (mut child, lines) = start(args);
    let deadline = Instant::now() + WAIT;
    let mut output = Vec::new();
    // Both pipes close when the process exits: the channel then disconnects.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => output.extend(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("facteur {args:?} did not finish"),
        }
    }
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "facteur {args:?} did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, String::from_utf8_lossy(&output).into_owned())
}

/// A file in this test's own scratch directory holding `text`.
fn config_file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn help_lists_every_subcommand() {
    let (status, output) = run(&["--help"]);
    assert!(status.success(), "{output}");
    for command in ["broker", "passwd", "bench"] {
        assert!(
            output.lines().any(|l| l.trim_start().starts_with(command)),
            "`facteur --help` does not list `{command}`:\n{output}"
        );
    }
}

#[test]
fn broker_help_names_the_config_option() {
    let (status, output) = run(&["broker", "--help"]);
    assert!(status.success(), "{output}");
    assert!(output.contains("--config"), "{output}");
}

#[test]
fn a_bad_configuration_exits_with_code_2() {
    let path = config_file("facteur-cli-bad.toml", "no_such_key = 1\n");
    let (status, output) = run(&["broker", "-c", path.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("no_such_key"), "{output}");
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let path = config_file(
        "facteur-cli-listen.toml",
        "[[listeners]]\nbind_address = \"127.0.0.1\"\nport = 0\n",
    );
    let (child, lines) = start(&["broker", "-c", path.to_str().unwrap()]);
    let deadline = Instant::now() + WAIT;
    let mut output = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let listening = String::from_utf8_lossy(&line).contains("listening");
                output.extend(line);
                if listening {
                    break;
                }
            }
            Err(error) => panic!(
                "no \"listening\" line ({error:?}); output so far:\n{}",
                String::from_utf8_lossy(&output)
            ),
        }
    }
    let text = String::from_utf8_lossy(&output);
    assert!(text.contains("127.0.0.1:"), "{text}");
    assert!(
        !output.windows(2).any(|w| w == b"\x1b["),
        "ANSI escape codes in piped logs: {text:?}"
    );
    drop(child);
}

/// Reads lines until one contains `text` (bounded by [`WAIT`]); that line.
fn wait_for_line(lines: &mpsc::Receiver<Vec<u8>>, text: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let line = String::from_utf8_lossy(&line).into_owned();
                if line.contains(text) {
                    return line;
                }
                seen.push_str(&line);
            }
            Err(error) => panic!("no line with {text:?} ({error:?}); output so far:\n{seen}"),
        }
    }
}

/// The CONNACK return code a 3.1.1 client with this username and password gets.
fn connack_code(addr: &str, user: &str, password: &str) -> u8 {
    use std::io::Write;
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 1, b'c'];
    for field in [user.as_bytes(), password.as_bytes()] {
        body.extend_from_slice(&(field.len() as u16).to_be_bytes());
        body.extend_from_slice(field);
    }
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(&packet).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack[..3], [0x20, 0x02, 0x00], "{connack:02X?}");
    connack[3]
}

fn passwd(args: &[&str]) {
    let mut all = vec!["passwd", "-I", "10"];
    all.extend_from_slice(args);
    let (status, output) = run(&all);
    assert!(status.success(), "facteur {all:?}: {output}");
}

fn hangup(child: &Running) {
    let status = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn users_made_by_facteur_passwd_and_sighup_reloads() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("facteur-cli-passwd");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("passwd");
    let file_arg = file.to_str().unwrap();
    passwd(&["-c", "-b", file_arg, "alice", "a1"]);
    passwd(&["-b", file_arg, "carol", "c1"]);
    passwd(&["-D", file_arg, "carol"]);
    // The file's name is relative to the configuration file.
    let config = dir.join("facteur.toml");
    std::fs::write(
        &config,
        "password_file = \"passwd\"\n[[listeners]]\nport = 0\n",
    )
    .unwrap();
    let (child, lines) = start(&["broker", "-c", config.to_str().unwrap()]);
    let listening = wait_for_line(&lines, "listening");
    let addr = listening
        .split_whitespace()
        .find_map(|word| word.strip_prefix("addr="))
        .expect("addr= in the listening line")
        .to_owned();
    assert_eq!(connack_code(&addr, "alice", "a1"), 0);
    assert_eq!(connack_code(&addr, "alice", "a2"), 5);
    assert_eq!(connack_code(&addr, "carol", "c1"), 5);
    // A user added while the broker runs: in force after SIGHUP.
    passwd(&["-b", file_arg, "bob", "b1"]);
    assert_eq!(connack_code(&addr, "bob", "b1"), 5);
    hangup(&child);
    wait_for_line(&lines, "password and ACL files reloaded");
    assert_eq!(connack_code(&addr, "bob", "b1"), 0);
    // A broken file: the reload fails, says where, and the users in force stay.
    std::fs::write(&file, "bob\n").unwrap();
    hangup(&child);
    let failed = wait_for_line(&lines, "reload failed");
    assert!(
        failed.contains(&format!("{}:1:", file.display())),
        "{failed}"
    );
    assert_eq!(connack_code(&addr, "bob", "b1"), 0);
    // Plain passwords hashed by -U.
    std::fs::write(&file, "dora:d1\n").unwrap();
    passwd(&["-U", file_arg]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("dora:$7$10$"), "{text}");
    hangup(&child);
    wait_for_line(&lines, "password and ACL files reloaded");
    assert_eq!(connack_code(&addr, "dora", "d1"), 0);
    drop(child);
}

#[test]
fn a_bad_password_file_stops_start_up_naming_file_and_line() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("facteur-cli-bad-passwd");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("passwd");
    std::fs::write(&file, "# users\nalice:plaintext\n").unwrap();
    let config = dir.join("facteur.toml");
    std::fs::write(&config, "password_file = \"passwd\"\n").unwrap();
    let (status, output) = run(&["broker", "-c", config.to_str().unwrap()]);
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(&format!("{}:2:", file.display())),
        "{output}"
    );
    assert!(!output.contains("listening"), "{output}");
}

/// Runs `facteur passwd ARGS` on a pseudo-terminal (Python's `pty`), typing `typed` lines
/// at its prompts; its exit code and what it wrote to the terminal. `None` when python3 is
/// missing (outside CI: skipped).
fn passwd_on_a_terminal(args: &[&str], typed: &[&str]) -> Option<(i32, String)> {
    let script = r#"
import os, pty, sys, termios, time
argv, typed = sys.argv[1:sys.argv.index("--")], sys.argv[sys.argv.index("--") + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out = b""
def read_until(text):
    global out
    while text not in out:
        chunk = os.read(fd, 1024)
        if not chunk:
            raise SystemExit("ended before " + repr(text) + ": " + repr(out))
        out += chunk
def wait_for_no_echo():
    # The prompt comes before echo is turned off: type only once it is (as a person would).
    deadline = time.time() + 10
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        if time.time() > deadline:
            raise SystemExit("echo never turned off: " + repr(out))
        time.sleep(0.01)
for line in typed:
    read_until(b"assword: ")
    out = out.replace(b"assword: ", b"assword; ", 1)
    wait_for_no_echo()
    os.write(fd, line.encode() + b"\n")
try:
    while True:
        chunk = os.read(fd, 1024)
        if not chunk:
            break
        out += chunk
except OSError:
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let mut command = Command::new("python3");
    command.arg("-c").arg(script).arg(FACTEUR).arg("passwd");
    command.args(args).arg("--").args(typed);
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(child) = child else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3 is required in CI");
        }
        eprintln!("SKIPPED: python3 is not installed");
        return None;
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(WAIT)
        .expect("facteur passwd on a terminal did not finish")
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Some((output.status.code().unwrap_or(-1), text))
}

#[test]
fn passwd_asks_twice_on_the_terminal_without_echo() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("facteur-cli-passwd-tty");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("passwd");
    let file_arg = file.to_str().unwrap();
    let Some((code, output)) =
        passwd_on_a_terminal(&["-I", "10", "-c", file_arg, "eve"], &["s3cret", "s3cret"])
    else {
        return;
    };
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("Reenter password"), "{output}");
    assert!(
        !output.contains("s3cret"),
        "the password was echoed: {output}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let file_read = facteur_broker::auth::password::PasswordFile::parse(&text).unwrap();
    assert!(file_read.verify("eve", b"s3cret"));
    // Two different answers: refused, the file left as it was.
    let (code, output) =
        passwd_on_a_terminal(&["-I", "10", file_arg, "eve"], &["one", "two"]).unwrap();
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("do not match"), "{output}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 (rcgen), as PEM files in
/// `dir`: (CA certificate, server certificate, server key).
fn certificates(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    (
        write("ca.crt", ca.pem()),
        write("server.crt", server.pem()),
        write("server.key", key.serialize_pem()),
    )
}

/// `facteur bench --ws` (plain, then over TLS with `--cafile`) against a broker of this
/// process whose only listener is a WebSocket one: the point-to-point QoS 1 row has
/// messages delivered and none lost, and the latency runs complete.
#[test]
fn bench_over_websocket_plain_and_tls() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("facteur-cli-bench-ws");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = certificates(&dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for tls in [false, true] {
        let mut config = facteur_broker::Config::default();
        config.listeners[0].port = 0;
        config.listeners[0].protocol = facteur_broker::Protocol::Websockets;
        if tls {
            config.listeners[0].certfile = Some(cert.clone());
            config.listeners[0].keyfile = Some(key.clone());
        }
        let broker = runtime
            .block_on(facteur_broker::Broker::start(config))
            .expect("broker starts");
        let port = broker.local_addrs()[0].port().to_string();
        let mut args = vec!["bench", "--port", &port, "--duration", "1", "--idle", "20"];
        args.extend(["--only", "p2p 16 pairs/1/64", "--ws"]);
        if tls {
            args.extend(["--cafile", ca.to_str().unwrap()]);
        }
        let (status, output) = run(&args);
        assert!(status.success(), "facteur {args:?}:\n{output}");
        let row: Vec<&str> = output
            .lines()
            .find(|line| line.starts_with("| p2p 16 pairs | 1 | 64 B |"))
            .unwrap_or_else(|| panic!("no p2p QoS 1 row:\n{output}"))
            .split('|')
            .map(str::trim)
            .collect();
        let delivered: f64 = row[4].parse().unwrap();
        assert!(delivered > 0.0, "nothing delivered (tls: {tls}):\n{output}");
        assert_eq!(row[5], "0", "messages lost (tls: {tls}):\n{output}");
        assert!(output.contains("| QoS 1 |"), "no latency row:\n{output}");
        assert!(
            output.contains("| 20 |"),
            "no idle connections row:\n{output}"
        );
        runtime.block_on(broker.shutdown());
    }
}

/// `bench --list` names the 16 throughput rows; with `--only` one of them and
/// `--no-latency`, that row alone runs; with `--latency-only`, the latency runs alone (what
/// `benches/load/run.sh` asks for when it runs the brokers row by row).
#[test]
fn bench_lists_its_rows_and_runs_one_or_the_latency_alone() {
    let (status, output) = run(&["bench", "--list"]);
    assert!(status.success(), "{output}");
    let rows: Vec<&str> = output.lines().collect();
    assert_eq!(rows.len(), 16, "{output}");
    assert_eq!(rows[0], "fan-in 8→1/0/64");
    assert_eq!(rows[15], "p2p 16 pairs/1/1024");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = facteur_broker::Config::default();
    config.listeners[0].port = 0;
    let broker = runtime
        .block_on(facteur_broker::Broker::start(config))
        .expect("broker starts");
    let port = broker.local_addrs()[0].port().to_string();
    let common = ["bench", "--port", &port, "--duration", "1", "--idle", "0"];

    let mut args = common.to_vec();
    args.extend(["--only", "p2p 16 pairs/1/64", "--no-latency"]);
    let (status, output) = run(&args);
    assert!(status.success(), "{output}");
    let measured: Vec<&str> = output.lines().filter(|l| l.starts_with("| p2p")).collect();
    assert_eq!(measured.len(), 1, "{output}");
    assert!(
        measured[0].starts_with("| p2p 16 pairs | 1 | 64 B |"),
        "{output}"
    );
    assert!(!output.contains("latency at"), "{output}");

    let mut args = common.to_vec();
    args.push("--latency-only");
    let (status, output) = run(&args);
    assert!(status.success(), "{output}");
    assert!(!output.contains("| scenario |"), "{output}");
    assert!(
        output.contains("| QoS 0 |") && output.contains("| QoS 1 |"),
        "{output}"
    );

    let (status, output) = run(&["bench", "--no-latency", "--latency-only"]);
    assert!(!status.success(), "conflicting flags accepted: {output}");
    runtime.block_on(broker.shutdown());
}
