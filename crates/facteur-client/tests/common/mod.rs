//! Helpers for the socket tests: the facteur broker in process on 127.0.0.1 port 0,
//! Debian's mosquitto on a free loopback port, a TCP proxy between client and broker that
//! the test can cut or silence at a chosen packet, and TLS material made with rcgen.
//! Every wait is bounded.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facteur_broker::{Broker, BrokerHandle, Config};
use facteur_client::{Client, Event, Message, Messages, Options, Reconnect};
use facteur_codec::{frame, PacketType, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn facteur() -> BrokerHandle {
    facteur_with(|_| {}).await
}

pub async fn facteur_with(edit: impl FnOnce(&mut Config)) -> BrokerHandle {
    let mut config = Config::default();
    config.listeners[0].port = 0;
    config.sys_interval = 0;
    edit(&mut config);
    Broker::start(config).await.expect("broker starts")
}

/// Options for a client of `addr` with a fast reconnection.
pub fn options(addr: SocketAddr, id: &str) -> Options {
    Options::new(addr.ip().to_string(), addr.port())
        .client_id(id)
        .reconnect(Reconnect {
            enabled: true,
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        })
}

pub async fn connect(options: Options) -> (Client, Messages) {
    tokio::time::timeout(WAIT, Client::connect(options))
        .await
        .expect("connects in time")
        .expect("connects")
}

/// The next message, within `WAIT`.
pub async fn next(messages: &mut Messages) -> Message {
    tokio::time::timeout(WAIT, messages.recv())
        .await
        .expect("a message in time")
        .expect("the client is running")
}

/// True if no message comes within `wait`.
pub async fn quiet(messages: &mut Messages, wait: Duration) -> bool {
    tokio::time::timeout(wait, messages.recv()).await.is_err()
}

/// The next connection event, within `WAIT`.
pub async fn next_event(events: &mut broadcast::Receiver<Event>) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("events")
}

/// Waits for `Disconnected`, skipping the rest; returns why.
pub async fn disconnected(events: &mut broadcast::Receiver<Event>) -> facteur_client::Error {
    loop {
        if let Event::Disconnected { reason } = next_event(events).await {
            return reason;
        }
    }
}

/// Waits for `Connected`, skipping the rest; returns session present.
pub async fn reconnected(events: &mut broadcast::Receiver<Event>) -> bool {
    loop {
        if let Event::Connected { session_present } = next_event(events).await {
            return session_present;
        }
    }
}

// ---------------------------------------------------------------- the outside peers

/// Whether a program is installed; if not, the test says it skips (and fails under CI).
pub fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{program} is missing (CI=true: interop tests must run)");
        }
        eprintln!("skipped: {program} is not installed");
    }
    found
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// mosquitto, stopped when dropped.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// mosquitto with a plain listener and `extra` configuration lines (which may use
    /// `{dir}` for its directory); waits until the plain port accepts.
    pub async fn start(extra: &str, files: &[(&str, &[u8])]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let port = free_port();
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{}\n",
            extra.replace("{dir}", &dir.path().display().to_string())
        );
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let m = Self {
            child,
            port,
            _dir: dir,
        };
        wait_for_port(port).await;
        m
    }
}

pub async fn wait_for_port(port: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "port {port} never opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- TLS material

pub struct Pki {
    pub ca_pem: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

/// A CA, a server certificate for `localhost` / 127.0.0.1 and a client certificate.
pub fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "facteur test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "client");
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

pub fn write_files(dir: &Path, files: &[(&str, &str)]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

// ---------------------------------------------------------------- the proxy

/// Which way a packet travels through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    ToBroker,
    ToClient,
}

/// A TCP proxy that forwards whole MQTT packets and, once, cuts every connection when a
/// packet of a chosen type is about to pass (the packet is not forwarded); or holds
/// everything (`silence`), like a link that went quiet without a FIN.
#[derive(Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
}

struct ProxyState {
    cut_at: Option<(Way, PacketType)>,
    cuts: usize,
    /// While true nothing passes (bytes and the end of a stream are held, not lost).
    held: tokio::sync::watch::Sender<bool>,
    kill: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ProxyState {
            cut_at: None,
            cuts: 0,
            held: tokio::sync::watch::Sender::new(false),
            kill: Vec::new(),
        }));
        let proxy = Self {
            addr,
            state: state.clone(),
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(broker) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (kill_tx, kill_rx) = tokio::sync::oneshot::channel();
                state.lock().unwrap().kill.push(kill_tx);
                tokio::spawn(pump_pair(client, broker, state.clone(), kill_rx));
            }
        });
        proxy
    }

    /// The next packet of `kind` going `way` is not forwarded: every connection is cut.
    pub fn cut_at(&self, way: Way, kind: PacketType) {
        self.state.lock().unwrap().cut_at = Some((way, kind));
    }

    /// Cuts every connection now.
    pub fn cut(&self) {
        for kill in self.state.lock().unwrap().kill.drain(..) {
            let _ = kill.send(());
        }
    }

    /// How many times a `cut_at` fired.
    pub fn cuts(&self) -> usize {
        self.state.lock().unwrap().cuts
    }

    /// From now on nothing is forwarded either way (the connections stay open, what
    /// arrives is held) until `silence(false)`: a link that went quiet.
    pub fn silence(&self, silent: bool) {
        self.state.lock().unwrap().held.send_replace(silent);
    }
}

async fn pump_pair(
    client: TcpStream,
    broker: TcpStream,
    state: Arc<Mutex<ProxyState>>,
    kill: tokio::sync::oneshot::Receiver<()>,
) {
    let (cr, cw) = client.into_split();
    let (br, bw) = broker.into_split();
    let up = pump(cr, bw, Way::ToBroker, state.clone());
    let down = pump(br, cw, Way::ToClient, state);
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = kill => {}
    }
    // Dropping both halves closes both connections.
}

/// Forwards whole packets from `from` to `to`; returns when a cut fires or a side closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    way: Way,
    state: Arc<Mutex<ProxyState>>,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut held = state.lock().unwrap().held.subscribe();
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                let _ = held.wait_for(|h| !h).await;
                return;
            }
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let header = match frame(&buf, u32::MAX) {
                Ok(Status::Complete(h)) => h,
                Ok(Status::Incomplete(_)) => break,
                Err(_) => return,
            };
            let len = header.packet_len();
            if held.wait_for(|h| !h).await.is_err() {
                return;
            }
            let cut = {
                let mut s = state.lock().unwrap();
                let cut = s.cut_at == Some((way, header.packet_type));
                if cut {
                    s.cut_at = None;
                    s.cuts += 1;
                    for kill in s.kill.drain(..) {
                        let _ = kill.send(());
                    }
                }
                cut
            };
            if cut {
                return;
            }
            if to.write_all(&buf[..len]).await.is_err() {
                return;
            }
            buf.drain(..len);
        }
    }
}
