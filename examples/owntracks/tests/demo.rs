//! `facteur-owntracks demo`, the program: it prints the page's URL, the page and the API
//! answer with every simulated device, and Ctrl-C (SIGINT) stops it cleanly.

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

    let pid = demo.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(WAIT, demo.wait())
        .await
        .expect("the demo stops on SIGINT")
        .unwrap();
    assert!(status.success(), "{status}");
}
