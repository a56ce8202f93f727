//! What the end-to-end and browser tests share: a broker with the OwnTracks password
//! file and ACL, the recorder and web server, simulated phones, and a small HTTP client.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use facteur_broker::BrokerHandle;
use facteur_client::{Options, Reconnect};
use facteur_owntracks::broker_setup::{self, RECORDER_USER};
use facteur_owntracks::recorder::{self, Counters, Recorder};
use facteur_owntracks::simulator::{demo_devices, DeviceSpec, Phone, Walker};
use facteur_owntracks::store::Store;
use facteur_owntracks::web::{self, WebState};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, oneshot};

/// Every wait of the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(30);

pub const RECORDER_PASSWORD: &str = "recorder-pw";

/// The demo's users and the recorder, with few PBKDF2 rounds (the tests connect often).
pub async fn start_broker(dir: &Path) -> BrokerHandle {
    let mut users: Vec<(String, String)> = demo_devices()
        .iter()
        .map(|d| (d.user.clone(), d.password.clone()))
        .collect();
    users.dedup();
    users.push((RECORDER_USER.into(), RECORDER_PASSWORD.into()));
    let (passwd, acl) = broker_setup::write_files(dir, &users, 1_000).unwrap();
    broker_setup::start_broker("127.0.0.1", 0, passwd, acl)
        .await
        .unwrap()
}

pub fn options(mqtt: SocketAddr) -> Options {
    let mut options = Options::new(mqtt.ip().to_string(), mqtt.port());
    options.reconnect = Reconnect::off();
    options.connect_timeout = Duration::from_secs(10);
    options
}

pub fn options_as(mqtt: SocketAddr, user: &str, password: &str) -> Options {
    let mut options = options(mqtt);
    options.username = Some(user.into());
    options.password = Some(password.to_owned().into());
    options
}

/// The recorder and its web server.
pub struct App {
    pub recorder: Recorder,
    pub http: SocketAddr,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl App {
    /// The recorder, as `client_id`, without reconnection.
    pub async fn start(mqtt: SocketAddr, database: &Path, client_id: &str) -> Self {
        let options = options_as(mqtt, RECORDER_USER, RECORDER_PASSWORD);
        Self::start_with(recorder::options(options, client_id), database).await
    }

    /// The recorder with these options.
    pub async fn start_with(options: Options, database: &Path) -> Self {
        Self::start_full(options, database, None).await
    }

    /// The recorder with these options, the page with this tile URL.
    pub async fn start_full(options: Options, database: &Path, tile_url: Option<String>) -> Self {
        let store = Store::open(database).unwrap();
        let (live, _) = broadcast::channel(1024);
        let recorder = Recorder::start(options, store.clone(), live.clone())
            .await
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let state = WebState {
            store,
            live,
            counters: recorder.counters(),
            tile_url,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(web::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Self {
            recorder,
            http,
            stop,
            server,
        }
    }

    pub async fn wait_for(&self, what: &str, done: impl FnMut(&Counters) -> bool) -> Counters {
        match self.recorder.wait_for(WAIT, done).await {
            Ok(counters) => counters,
            Err(counters) => panic!("{what}: not within {WAIT:?}; counters {counters:?}"),
        }
    }

    pub async fn stop(self) {
        self.recorder.stop().await;
        let _ = self.stop.send(());
        // The live stream of an open page ends with the recorder; the server then stops.
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("the web server stops")
            .unwrap()
            .unwrap();
    }
}

/// A phone per demo device, its walker seeded by its index.
pub async fn phones(mqtt: SocketAddr, now: i64) -> Vec<Phone> {
    let mut phones = Vec::new();
    for (index, spec) in demo_devices().into_iter().enumerate() {
        phones.push(phone(mqtt, spec, index as u64, now).await);
    }
    phones
}

pub async fn phone(mqtt: SocketAddr, spec: DeviceSpec, seed: u64, now: i64) -> Phone {
    Phone::connect(options(mqtt), Walker::new(spec, seed), now)
        .await
        .unwrap()
}

/// GET over HTTP/1.0: the status and the body.
pub async fn get(http: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(http).await.unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: {http}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).unwrap()
    };
    let response = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("HTTP answer");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_owned())
}

pub async fn get_json(http: SocketAddr, path: &str) -> Value {
    let (status, body) = get(http, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A TCP proxy to `upstream` whose connections can be cut (the listener stays open).
pub struct Proxy {
    pub addr: SocketAddr,
    connections: std::sync::Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>,
    accepted: tokio::sync::watch::Receiver<u32>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = std::sync::Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
        let (count, accepted) = tokio::sync::watch::channel(0);
        let set = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                set.lock().unwrap().spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                count.send_modify(|n| *n += 1);
            }
        });
        Self {
            addr,
            connections,
            accepted,
            task,
        }
    }

    /// Closes every connection open now.
    pub fn cut(&self) {
        self.connections.lock().unwrap().abort_all();
    }

    /// Waits until `n` connections were accepted in all.
    pub async fn wait_accepted(&self, n: u32) {
        let mut accepted = self.accepted.clone();
        tokio::time::timeout(WAIT, accepted.wait_for(|a| *a >= n))
            .await
            .expect("a connection through the proxy")
            .unwrap();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
