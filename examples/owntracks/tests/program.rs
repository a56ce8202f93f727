//! The `facteur-owntracks` program: `demo` prints the page's URL, the page and the API
//! answer with every simulated device, and Ctrl-C (SIGINT) stops it cleanly; `record`
//! records a broker's positions and serves them.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{get, get_json, WAIT};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_command_serves_the_page_and_stops_on_ctrl_c() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_facteur-owntracks"))
        .args([
            "demo",
            "--mqtt-port",
            "0",
            "--http-port",
            "0",
            "--history",
            "5",
            "--every",
            "0.5",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let mut url = None;
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line.clone());
            if let Some(page) = line.trim().strip_prefix("page:") {
                url = Some(page.trim().to_owned());
            }
            if line.starts_with("Ctrl-C stops") {
                return;
            }
        }
        panic!("the demo ended before it was ready: {printed:?}");
    })
    .await
    .expect("the demo prints its page's URL");
    let url = url.expect("a page: line");
    let http: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();

    let (status, page) = get(http, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<svg id=\"map\""), "{page}");
    // No resource from elsewhere: the page works offline (the SVG namespace is a name,
    // not something loaded).
    let outside = page.replace("http://www.w3.org/2000/svg", "");
    for pattern in [
        "http://",
        "https://",
        "<link",
        "<script src",
        "@import",
        "url(",
    ] {
        assert!(
            !outside.contains(pattern),
            "the page loads something from elsewhere: {pattern}"
        );
    }

    // Every simulated device's history, then live positions (across processes: polled,
    // within a bound).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = get_json(http, "/api/0/stats").await;
        let last = get_json(http, "/api/0/last").await;
        if stats["locations"].as_u64().unwrap() > 4 * 5 && last.as_array().unwrap().len() == 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the demo records nothing: {stats} {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text: String = printed.join("\n");
    for user in [
        "alice / alice-secret",
        "bob / bob-secret",
        "carol / carol-secret",
    ] {
        assert!(text.contains(user), "{text}");
    }

    interrupt(demo).await;
}

/// Sends SIGINT (Ctrl-C) and expects a clean exit.
async fn interrupt(mut child: tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the program stops on SIGINT")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// Reads the program's stdout until its `page:` line; the address.
async fn page_address(child: &mut tokio::process::Child) -> std::net::SocketAddr {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line within the bound")
        .unwrap()
        .expect("a page: line");
    let url = line
        .strip_prefix("page: http://")
        .unwrap_or_else(|| panic!("{line}"));
    url.trim_end_matches('/').parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_stores_a_brokers_positions_and_serves_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_broker(dir.path()).await;
    let mqtt = broker.local_addrs()[0];
    let database = dir.path().join("recorded.sqlite");
    let mut record = Command::new(env!("CARGO_BIN_EXE_facteur-owntracks"))
        .arg("record")
        .args([
            "--mqtt",
            &format!("mqtt://{mqtt}"),
            "--user",
            "recorder",
            "--http",
            "127.0.0.1:0",
        ])
        .arg("--db")
        .arg(&database)
        .env("OWNTRACKS_PASSWORD", common::RECORDER_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = page_address(&mut record).await;

    let spec = facteur_owntracks::simulator::demo_devices().remove(0);
    let mut phone = common::phone(mqtt, spec, 3, 1_700_000_000).await;
    let fix = phone.publish_next(1_700_000_000).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let last = loop {
        let last = get_json(http, "/api/0/last").await;
        if !last.as_array().unwrap().is_empty() {
            break last;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(last[0]["topic"], "owntracks/alice/phone");
    assert_eq!(
        (
            last[0]["tst"].as_i64(),
            last[0]["lat"].as_f64(),
            last[0]["lon"].as_f64()
        ),
        (Some(fix.tst), Some(fix.lat), Some(fix.lon))
    );
    interrupt(record).await;
    // The file has it.
    let store = facteur_owntracks::store::Store::open(&database).unwrap();
    assert_eq!(store.location_count().await.unwrap(), 1);

    // A wrong password: a clear error and a failure status.
    let refused = Command::new(env!("CARGO_BIN_EXE_facteur-owntracks"))
        .args([
            "record",
            "--mqtt",
            &format!("mqtt://{mqtt}"),
            "--user",
            "recorder",
            "--http",
            "127.0.0.1:0",
        ])
        .arg("--db")
        .arg(&database)
        .env("OWNTRACKS_PASSWORD", "wrong")
        .env("RUST_LOG", "off")
        .output();
    let refused = tokio::time::timeout(WAIT, refused)
        .await
        .expect("it ends")
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("connection refused"), "{stderr}");
    broker.shutdown().await;
}
