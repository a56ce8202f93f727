//! The page in a real browser: headless Chromium loads it, each simulated device's track is
//! drawn (a polyline and a circle per position, in the DOM), and a position published
//! after the page loaded appears without a reload.
//!
//! Chromium is driven over the DevTools protocol (a WebSocket). Without Chromium the test
//! says so and passes, except under `CI=true`, where it fails. With
//! `OWNTRACKS_SCREENSHOT=path.png` it also writes a screenshot of the page there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use common::{App, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const POINTS: usize = 40;

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A DevTools session on one page.
struct Cdp {
    socket: WebSocketStream<TcpStream>,
    session: String,
    next_id: u64,
}

impl Cdp {
    /// Starts Chromium, waits for its DevTools port, opens `url` in a new page.
    async fn launch(binary: &Path, profile: &Path, url: &str) -> (Child, Self) {
        let child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1200,800",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("Chromium starts");
        // Chromium writes its port and browser path to DevToolsActivePort once listening.
        let port_file = profile.join("DevToolsActivePort");
        let (port, path) = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(text) = std::fs::read_to_string(&port_file) {
                    let mut lines = text.lines();
                    if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                        return (port.to_owned(), path.to_owned());
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("Chromium writes DevToolsActivePort");
        let stream = TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let (socket, _) =
            tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}{path}"), stream)
                .await
                .expect("the DevTools WebSocket");
        let mut cdp = Self {
            socket,
            session: String::new(),
            next_id: 0,
        };
        let target = cdp.call("Target.createTarget", json!({ "url": url })).await;
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await;
        cdp.session = attached["sessionId"].as_str().unwrap().to_owned();
        (child, cdp)
    }

    /// Sends a command (to the page once attached) and returns its result.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            command["sessionId"] = self.session.clone().into();
        }
        self.socket
            .send(Message::text(command.to_string()))
            .await
            .unwrap();
        let answer = tokio::time::timeout(WAIT, async {
            while let Some(message) = self.socket.next().await {
                let Ok(Message::Text(text)) = message else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["id"] == id {
                    return value;
                }
            }
            panic!("the DevTools connection closed");
        })
        .await
        .unwrap_or_else(|_| panic!("{method}: no answer within {WAIT:?}"));
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// The value of a JavaScript expression in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is `true` in the page, at most [`WAIT`].
    async fn until(&mut self, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.eval(expression).await != Value::Bool(true) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {WAIT:?} ({expression})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Chromium, or `None` after saying the test is skipped (a failure under `CI=true`).
fn chromium_or_skip() -> Option<PathBuf> {
    let binary = chromium();
    if binary.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Chromium is missing (apt-get install chromium) and CI=true"
        );
        eprintln!("SKIPPED: Chromium not found (apt-get install chromium, or set CHROMIUM)");
    }
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_draws_every_track_and_new_positions_live() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_broker(dir.path()).await;
    let mqtt = broker.local_addrs()[0];
    let app = App::start(mqtt, &dir.path().join("owntracks.sqlite"), "recorder").await;

    // The last 40 minutes of every device: inside the page's default range (24 hours).
    let now = facteur_owntracks::time::now();
    let start = now - 60 * POINTS as i64;
    let mut phones = common::phones(mqtt, start).await;
    let mut published = Vec::new();
    for phone in &mut phones {
        let mut tsts = Vec::new();
        let mut last = None;
        for step in 0..POINTS {
            let fix = phone.publish_next(start + 60 * step as i64).await.unwrap();
            tsts.push(fix.tst);
            last = Some(fix);
        }
        let spec = phone.spec();
        published.push((
            format!("{}/{}", spec.user, spec.device),
            tsts,
            last.unwrap(),
        ));
    }
    let total = (published.len() * POINTS) as u64;
    app.wait_for("every position stored", |c| c.locations == total)
        .await;

    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", app.http);
    let (mut chromium, mut page) = Cdp::launch(&binary, profile.path(), &url).await;
    page.until(
        "the page loaded its tracks and opened its live stream",
        "document.body?.dataset.ready === '1' && document.body?.dataset.live === 'open'",
    )
    .await;

    let empty_shown = page
        .eval("document.getElementById('empty').checkVisibility()")
        .await;
    assert_eq!(
        empty_shown, false,
        "\"No position in this range\" over the tracks"
    );
    for (device, tsts, last) in &published {
        let track = format!("document.querySelector('#map g.track[data-device=\"{device}\"]')");
        let drawn = page
            .eval(&format!(
                "(() => {{ const t = {track}; if (!t) return null;
                   return {{ points: t.querySelector('polyline').getAttribute('points').trim().split(/\\s+/).length,
                             tsts: [...t.querySelectorAll('circle.point')].map(c => Number(c.dataset.tst)) }}; }})()"
            ))
            .await;
        assert_eq!(drawn["points"], POINTS, "{device}: {drawn}");
        assert_eq!(drawn["tsts"], json!(tsts), "{device}: {drawn}");
        // Its row in the list: the battery of its last position.
        let battery = page
            .eval(&format!("document.querySelector('#devices .device[data-device=\"{device}\"] .batt')?.textContent"))
            .await;
        assert_eq!(battery, format!("{} %", last.batt), "{device}");
    }

    // A new position, published after the page loaded, appears without a reload.
    page.eval("window.loadedOnce = 'yes'").await;
    let new = phones[2].publish_next(now + 1).await.unwrap();
    let device = &published[2].0;
    page.until(
        "the new position on the map",
        &format!("!!document.querySelector('#map g.track[data-device=\"{device}\"] circle.point[data-tst=\"{}\"]')", new.tst),
    )
    .await;
    assert_eq!(
        page.eval("window.loadedOnce").await,
        "yes",
        "the page was reloaded"
    );
    let count = page
        .eval(&format!("document.querySelectorAll('#map g.track[data-device=\"{device}\"] circle.point').length"))
        .await;
    assert_eq!(count, POINTS + 1);
    page.until(
        "the new battery in the list",
        &format!("document.querySelector('#devices .device[data-device=\"{device}\"] .batt').textContent === '{} %'", new.batt),
    )
    .await;

    // A phone that goes away: its will marks it offline in the list.
    let carol = phones.pop().unwrap();
    let carol_key = format!("{}/{}", carol.spec().user, carol.spec().device);
    let offline = format!(
        "!!document.querySelector('#devices .device[data-device=\"{carol_key}\"] .offline')"
    );
    assert_eq!(page.eval(&offline).await, false);
    carol
        .client()
        .disconnect_with(facteur_client::ReasonCode::DisconnectWithWillMessage, None)
        .await
        .unwrap();
    page.until("carol offline in the list", &offline).await;

    if let Some(path) = std::env::var_os("OWNTRACKS_SCREENSHOT") {
        let shot = page
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(&path, png).unwrap();
    }

    // No tile URL configured: no tile, nothing fetched from elsewhere.
    assert_eq!(
        page.eval("document.querySelectorAll('#tiles image').length")
            .await,
        0
    );

    // One device chosen: its track alone; then a range: only the positions within it.
    let (bob_car, bob_tsts, _) = &published[2];
    page.eval(&format!(
        "(() => {{ const s = document.getElementById('device'); s.value = '{bob_car}';
                   s.dispatchEvent(new Event('change')); }})()"
    ))
    .await;
    page.until(
        "bob's car alone",
        &format!("[...document.querySelectorAll('#map g.track')].map(t => t.dataset.device).join() === '{bob_car}'"),
    )
    .await;
    page.eval(&format!(
        "document.getElementById('from').value = localInput({});
         document.getElementById('to').value = localInput({});
         document.getElementById('apply').click()",
        bob_tsts[10], bob_tsts[19]
    ))
    .await;
    let in_range: Vec<i64> = bob_tsts[10..=19].to_vec();
    page.until(
        "the range's positions only",
        &format!("JSON.stringify([...document.querySelectorAll('#map circle.point')].map(c => Number(c.dataset.tst))) === '{}'", json!(in_range)),
    )
    .await;

    chromium.kill().await.unwrap();
    app.stop().await;
    broker.shutdown().await;
}

/// With a tile URL configured, the page draws tiles of that URL under the tracks (the
/// tile server here is a closed port: only the elements are checked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_from_the_configured_url() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_broker(dir.path()).await;
    let mqtt = broker.local_addrs()[0];
    let options = facteur_owntracks::recorder::options(
        common::options_as(mqtt, "recorder", common::RECORDER_PASSWORD),
        "recorder",
    );
    let tile_url = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png".to_owned();
    let app = App::start_full(options, &dir.path().join("t.sqlite"), Some(tile_url)).await;
    let now = facteur_owntracks::time::now();
    let spec = facteur_owntracks::simulator::demo_devices().remove(2);
    let mut phone = common::phone(mqtt, spec, 1, now - 600).await;
    for step in 0..5 {
        phone.publish_next(now - 600 + 60 * step).await.unwrap();
    }
    app.wait_for("the positions", |c| c.locations == 5).await;

    let profile = tempfile::tempdir().unwrap();
    let (mut chromium, mut page) =
        Cdp::launch(&binary, profile.path(), &format!("http://{}/", app.http)).await;
    page.until("the page loaded", "document.body?.dataset.ready === '1'")
        .await;
    let hrefs = page
        .eval("[...document.querySelectorAll('#tiles image')].map(i => i.getAttribute('href'))")
        .await;
    let hrefs = hrefs.as_array().unwrap();
    assert!(!hrefs.is_empty(), "no tile drawn");
    for href in hrefs {
        let href = href.as_str().unwrap();
        let path = href
            .strip_prefix("http://127.0.0.1:9/tiles/")
            .unwrap_or_else(|| panic!("{href}"));
        let parts: Vec<&str> = path.trim_end_matches(".png").split('/').collect();
        assert_eq!(parts.len(), 3, "{href}");
        assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{href}");
    }
    chromium.kill().await.unwrap();
    app.stop().await;
    broker.shutdown().await;
}
