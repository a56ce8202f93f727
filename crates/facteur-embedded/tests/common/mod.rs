//! Helpers for the host tests: brokers (facteur in-process, Debian's mosquitto spawned), std
//! and tokio streams for the client, a TCP proxy that can be frozen and cut, a scripted
//! stream. Every wait is bounded.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facteur_embedded::{ConnectOptions, ProtocolVersion};

/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A broker for a test: facteur's, in-process on its own runtime, or mosquitto.
pub struct TestBroker {
    pub name: &'static str,
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    handle: Option<facteur_broker::BrokerHandle>,
    child: Option<Child>,
    _dir: Option<TempDir>,
}

impl TestBroker {
    /// facteur's broker on 127.0.0.1, a free port.
    pub fn facteur() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = runtime.block_on(async {
            let mut config = facteur_broker::Config::default();
            config.listeners[0].port = 0;
            facteur_broker::Broker::start(config)
                .await
                .expect("broker starts")
        });
        let addr = handle.local_addrs()[0];
        Self {
            name: "facteur",
            addr,
            runtime: Some(runtime),
            handle: Some(handle),
            child: None,
            _dir: None,
        }
    }

    /// Debian's mosquitto on 127.0.0.1, a free port; `None` (and a note) when it is not
    /// installed, except under CI=true where that fails the test.
    pub fn mosquitto() -> Option<Self> {
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("mosquitto is not installed (CI=true: the interop tests must run)");
            }
            eprintln!("mosquitto is not installed: the mosquitto interop test skips");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = TempDir::new("mosquitto");
        let conf = dir.path.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_keepalive 65535\nlog_dest none\n"
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let broker = Self {
            name: "mosquitto",
            addr,
            runtime: None,
            handle: None,
            child: Some(child),
            _dir: Some(dir),
        };
        // Ready once it accepts connections.
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(broker)
    }

    /// Both brokers (mosquitto when installed).
    pub fn all() -> Vec<Self> {
        let mut brokers = vec![Self::facteur()];
        brokers.extend(Self::mosquitto());
        brokers
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let (Some(runtime), Some(handle)) = (self.runtime.take(), self.handle.take()) {
            runtime.block_on(handle.shutdown());
        }
    }
}

/// A directory removed on drop.
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "facteur-embedded-{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A unique client identifier / topic part.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Milliseconds since the test started: the client's clock.
pub fn clock() -> impl FnMut() -> u64 {
    let start = Instant::now();
    move || start.elapsed().as_millis() as u64
}

/// `std::net::TcpStream` through `embedded-io-adapters`, with a read timeout: std reports
/// the timeout as `WouldBlock`, which embedded-io has no kind for, so it is given as
/// `TimedOut`, the kind the blocking client runs its timers on.
pub struct StdTcp {
    inner: embedded_io_adapters::std::FromStd<TcpStream>,
}

impl StdTcp {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Self {
            inner: embedded_io_adapters::std::FromStd::new(stream),
        }
    }

    /// Cuts the connection (as a lost link would), without DISCONNECT.
    pub fn cut(&self) {
        let _ = self.inner.inner().shutdown(Shutdown::Both);
    }
}

impl embedded_io::ErrorType for StdTcp {
    type Error = std::io::Error;
}

impl embedded_io::Read for StdTcp {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        match embedded_io::Read::read(&mut self.inner, buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Err(std::io::ErrorKind::TimedOut.into())
            }
            other => other,
        }
    }
}

impl embedded_io::Write for StdTcp {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        embedded_io::Write::write(&mut self.inner, buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        embedded_io::Write::flush(&mut self.inner)
    }
}

/// tokio's `TcpStream` through `embedded-io-adapters`.
pub type TokioTcp = embedded_io_adapters::tokio_1::FromTokio<tokio::net::TcpStream>;

pub async fn tokio_tcp(addr: SocketAddr) -> TokioTcp {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    embedded_io_adapters::tokio_1::FromTokio::new(stream)
}

/// The async delay on tokio's timer.
pub struct TokioDelay;

impl embedded_hal_async::delay::DelayNs for TokioDelay {
    async fn delay_ns(&mut self, ns: u32) {
        tokio::time::sleep(Duration::from_nanos(ns.into())).await
    }

    async fn delay_ms(&mut self, ms: u32) {
        tokio::time::sleep(Duration::from_millis(ms.into())).await
    }
}

/// Options for the tests: `version`, a unique client id (leaked: options borrow it).
pub fn options(version: ProtocolVersion, prefix: &str) -> ConnectOptions<'static> {
    let id: &'static str = Box::leak(unique(prefix).into_boxed_str());
    let mut options = ConnectOptions::new(version, id);
    options.keep_alive = 30;
    options
}

/// Buffers for a client, leaked (a test's clients live to its end).
pub fn buffers(size: usize) -> (&'static mut [u8], &'static mut [u8]) {
    (
        Box::leak(vec![0u8; size].into_boxed_slice()),
        Box::leak(vec![0u8; size].into_boxed_slice()),
    )
}

/// A TCP proxy in front of a broker: each connection to it is forwarded to the broker. It
/// can be frozen (bytes from the client are read and dropped, as on a link that died
/// silently) and cut (every connection through it is closed).
pub struct Proxy {
    pub addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn new(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (f, c) = (frozen.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(target) else {
                    return;
                };
                c.lock().unwrap().push(client.try_clone().unwrap());
                c.lock().unwrap().push(server.try_clone().unwrap());
                let (client2, server2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let frozen = f.clone();
                std::thread::spawn(move || pump(client, server, Some(frozen)));
                std::thread::spawn(move || pump(server2, client2, None));
            }
        });
        Self {
            addr,
            frozen,
            conns,
        }
    }

    pub fn freeze(&self, on: bool) {
        self.frozen.store(on, Ordering::SeqCst);
    }

    /// Closes every connection through the proxy.
    pub fn cut(&self) {
        for stream in self.conns.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, frozen: Option<Arc<AtomicBool>>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if frozen.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// An owned copy of a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: facteur_embedded::QoS,
    pub retain: bool,
}

impl Got {
    pub fn of(message: &facteur_embedded::Publish<'_>) -> Self {
        Self {
            topic: message.topic.to_owned(),
            payload: message.payload.to_vec(),
            qos: message.qos,
            retain: message.retain,
        }
    }
}

/// A scripted stream: reads hand out the queued chunks (then time out, or end the stream
/// once `close` is set); writes are kept.
#[derive(Default)]
pub struct Script {
    pub input: std::collections::VecDeque<Vec<u8>>,
    pub output: Vec<u8>,
    pub closed: bool,
}

impl Script {
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.push_back(bytes.to_vec());
    }
}

/// A shared handle on a [`Script`], so the test feeds it while the client owns it.
#[derive(Clone, Default)]
pub struct Scripted(pub std::rc::Rc<std::cell::RefCell<Script>>);

impl Scripted {
    pub fn push(&self, bytes: &[u8]) {
        self.0.borrow_mut().push(bytes);
    }

    /// The bytes written since the last call.
    pub fn take_output(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.borrow_mut().output)
    }

    pub fn close(&self) {
        self.0.borrow_mut().closed = true;
    }
}

impl embedded_io::ErrorType for Scripted {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let mut script = self.0.borrow_mut();
        let Some(chunk) = script.input.front_mut() else {
            return if script.closed {
                Ok(0)
            } else {
                Err(embedded_io::ErrorKind::TimedOut)
            };
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        chunk.drain(..n);
        if chunk.is_empty() {
            script.input.pop_front();
        }
        Ok(n)
    }
}

impl embedded_io::Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.borrow_mut().output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A clock the test moves by hand.
#[derive(Clone, Default)]
pub struct ManualClock(pub std::rc::Rc<std::cell::Cell<u64>>);

impl ManualClock {
    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }
}

impl facteur_embedded::Clock for ManualClock {
    fn now_ms(&mut self) -> u64 {
        self.0.get()
    }
}
