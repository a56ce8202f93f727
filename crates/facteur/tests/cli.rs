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
fn help_lists_both_subcommands() {
    let (status, output) = run(&["--help"]);
    assert!(status.success(), "{output}");
    for command in ["broker", "bench"] {
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
