//! `facteur bench`: a load generator in the style of emqtt-bench, for any MQTT 3.1.1 broker.
//!
//! It speaks MQTT through facteur-codec over plain tokio sockets and measures, against the
//! broker at `--host`/`--port`:
//! * throughput: fan-in (8 publishers → 1 wildcard subscriber), fan-out (1 → 8, 1 → 1000),
//!   point-to-point (16 pairs), each at QoS 0 and 1 with 64 B and 1 KiB payloads; QoS 1
//!   loss is counted (messages the broker acknowledged that no subscriber received);
//! * latency percentiles at a fixed rate (1 publisher → 1 subscriber);
//! * idle connections: connects per second, and the broker's RSS and CPU time per
//!   connection (given its `--pid`); the RSS is read once it has settled (not falling for
//!   3 s, at most 20 s after the last connect).
//!
//! With `--cafile` every connection is TLS (`bench_stream`): the idle connections' connects
//! per second are then TLS handshakes (with CONNECT and CONNACK) per second. With `--ws`
//! every connection is a WebSocket (over TLS too with `--cafile`); the scenarios are the
//! same whatever the transport.

use crate::bench_stream::{connect, Endpoint, ReadSide, WriteSide};
use bytes::BytesMut;
use facteur_codec::{
    decode, frame, Connect, Encode, Packet, ProtocolVersion, PubResponse, Publish, QoS, Status,
    Subscribe, Subscription,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

type Error = Box<dyn std::error::Error + Send + Sync>;
const V: ProtocolVersion = ProtocolVersion::V3_1_1;
const WAIT: Duration = Duration::from_secs(10);

/// How long one of the idle connections may wait for its CONNACK.
const IDLE_WAIT: Duration = Duration::from_secs(120);
/// Unacknowledged QoS 1 messages a publisher keeps in flight.
const WINDOW: usize = 16;
/// QoS 0 messages a publisher sends between PINGREQ round trips.
const PACE: u64 = 256;

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The broker, and TLS to it if asked for.
    pub(crate) endpoint: Endpoint,
    pub(crate) duration: Duration,
    pub(crate) pid: Option<u32>,
    pub(crate) idle: usize,
    pub(crate) rate: u64,
    /// Only throughput rows whose "scenario/qos/size" text contains this.
    pub(crate) only: Option<String>,
    /// Only the idle-connection measurement (on a freshly started broker its RSS growth is
    /// the connections' alone).
    pub(crate) idle_only: bool,
    /// Whether the latency runs are skipped, run after the throughput rows, or run alone.
    pub(crate) latency: Latency,
    /// Count the broker's system calls with `perf stat` (needs `--pid` and perf).
    pub(crate) syscalls: bool,
}

/// The throughput rows: every shape at every QoS level and payload size.
const SHAPES: [Shape; 4] = [
    Shape::FanIn,
    Shape::FanOut(8),
    Shape::FanOut(1000),
    Shape::PointToPoint(16),
];
const QOS_LEVELS: [QoS; 2] = [QoS::AtMostOnce, QoS::AtLeastOnce];
const SIZES: [usize; 2] = [64, 1024];

/// Every throughput row, in the order they run, with its "scenario/qos/size" label (what
/// `--only` matches and `--list` prints).
fn rows() -> impl Iterator<Item = (Shape, QoS, usize, String)> {
    SHAPES.into_iter().flat_map(|shape| {
        QOS_LEVELS.into_iter().flat_map(move |qos| {
            SIZES.into_iter().map(move |size| {
                let label = format!("{}/{}/{size}", shape.name(), qos as u8);
                (shape, qos, size, label)
            })
        })
    })
}

/// Prints the throughput rows' labels, one per line (for a script running them one by one
/// with `--only`).
/// Prints the rows' labels, one a line; a reader that stops early (`| head`) ends the list,
/// it is not an error.
pub(crate) fn print_rows() {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for (.., label) in rows() {
        if writeln!(out, "{label}").is_err() {
            return;
        }
    }
}

/// What to do with the latency runs: a script alternating brokers row by row runs the
/// throughput rows without them, and the latency runs once on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Latency {
    /// After the throughput rows (the default).
    Run,
    /// Not at all.
    Skip,
    /// Alone: no throughput row.
    Only,
}

struct Conn {
    read: ReadSide,
    write: WriteSide,
    buf: BytesMut,
}

fn encode(packet: &Packet<'_>, out: &mut Vec<u8>) {
    let at = out.len();
    let len = packet.encoded_len(V).expect("valid packet");
    out.resize(at + len, 0);
    packet.encode(V, &mut out[at..]).expect("sized");
}

impl Conn {
    async fn open(endpoint: &Endpoint, id: &str, keep_alive: u16) -> Result<Self, Error> {
        Self::open_within(endpoint, id, keep_alive, WAIT).await
    }

    /// Connects, waiting up to `wait` for the CONNACK.
    async fn open_within(
        endpoint: &Endpoint,
        id: &str,
        keep_alive: u16,
        wait: Duration,
    ) -> Result<Self, Error> {
        let (read, write) = connect(endpoint).await?;
        let mut conn = Self {
            read,
            write,
            buf: BytesMut::with_capacity(64 * 1024),
        };
        let mut out = Vec::new();
        encode(
            &Packet::Connect(Connect {
                keep_alive,
                ..Connect::new(V, id)
            }),
            &mut out,
        );
        conn.write.send(&out).await?;
        let connack = tokio::time::timeout(wait, conn.next()).await??;
        if connack.get(3) != Some(&0) {
            return Err(format!("refused: {connack:02X?}").into());
        }
        Ok(conn)
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), Error> {
        let subs = [Subscription::new(filter, qos)];
        let mut out = Vec::new();
        encode(&Packet::Subscribe(Subscribe::new(1, &subs)), &mut out);
        self.write.send(&out).await?;
        let suback = tokio::time::timeout(WAIT, self.next()).await??;
        if suback.first() != Some(&0x90) {
            return Err("no SUBACK".into());
        }
        Ok(())
    }

    /// The next whole packet.
    async fn next(&mut self) -> Result<BytesMut, Error> {
        next_frame(&mut self.read, &mut self.buf).await
    }
}

async fn next_frame(read: &mut ReadSide, buf: &mut BytesMut) -> Result<BytesMut, Error> {
    loop {
        if let Status::Complete(header) = frame(buf, u32::MAX)? {
            return Ok(buf.split_to(header.packet_len()));
        }
        if read.read_buf(buf).await? == 0 {
            return Err("connection closed".into());
        }
    }
}

/// What the subscribers saw.
#[derive(Default)]
struct Seen {
    received: AtomicU64,
    last_nanos: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

/// Reads PUBLISH packets until the connection ends: counts them, acknowledges QoS 1, and
/// records the latency written in the payload's first 8 bytes.
async fn subscriber(mut conn: Conn, start: Instant, seen: Arc<Seen>, keep_latencies: bool) {
    let mut acks = Vec::new();
    loop {
        let Ok(bytes) = conn.next().await else { break };
        let Ok(Status::Complete(d)) = decode(&bytes, V, u32::MAX) else {
            break;
        };
        if let Packet::Publish(p) = d.packet {
            let now = start.elapsed().as_nanos() as u64;
            if keep_latencies && p.payload.len() >= 8 {
                let mut sent = [0u8; 8];
                sent.copy_from_slice(&p.payload[..8]);
                let micros = now.saturating_sub(u64::from_le_bytes(sent)) / 1000;
                // Recorded as they come: the task is stopped from outside.
                seen.latencies
                    .lock()
                    .unwrap()
                    .push(micros.min(u64::from(u32::MAX)) as u32);
            }
            seen.received.fetch_add(1, Ordering::Relaxed);
            seen.last_nanos.fetch_max(now, Ordering::Relaxed);
            if let Some(id) = p.packet_id {
                encode(&Packet::PubAck(PubResponse::new(id)), &mut acks);
            }
        }
        // Acknowledge in batches: whatever is already buffered first.
        if !acks.is_empty() && conn.buf.is_empty() {
            if conn.write.send(&acks).await.is_err() {
                break;
            }
            acks.clear();
        }
    }
}

/// What one publisher sends: to `topic`, at `qos`, `size` bytes, as fast as the window
/// allows or at `rate` a second.
struct Plan {
    topic: String,
    qos: QoS,
    size: usize,
    rate: Option<u64>,
}

/// Publishes until `stop`; counts acknowledgements in `acked`; returns how many were sent.
async fn publisher(
    conn: Conn,
    plan: Plan,
    start: Instant,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> Result<u64, Error> {
    let Plan {
        topic,
        qos,
        size,
        rate,
    } = plan;
    let Conn {
        mut read,
        mut write,
        mut buf,
    } = conn;
    let window = Arc::new(Semaphore::new(WINDOW));
    // QoS 0 has no acknowledgement: a PINGREQ every PACE messages, answered before more are
    // sent, keeps the publisher within reach of what the broker has read.
    let pongs = Arc::new(Semaphore::new(0));
    let reader = {
        let window = window.clone();
        let pongs = pongs.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            while let Ok(bytes) = next_frame(&mut read, &mut buf).await {
                match bytes.first() {
                    Some(&0x40) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                        window.add_permits(1);
                    }
                    Some(&0xD0) => pongs.add_permits(1),
                    _ => {}
                }
            }
        })
    };
    let mut payload = vec![0x5Au8; size.max(8)];
    let mut out = Vec::with_capacity(64 * 1024);
    let mut sent = 0u64;
    let mut next_id: u16 = 0;
    let interval = rate.map(|r| Duration::from_nanos(1_000_000_000 / r.max(1)));
    while !stop.load(Ordering::Relaxed) {
        let batch = if interval.is_some() { 1 } else { 32 };
        for _ in 0..batch {
            let packet_id = if qos == QoS::AtMostOnce {
                None
            } else {
                // Send what is batched before waiting for acknowledgements.
                match window.try_acquire() {
                    Ok(permit) => permit.forget(),
                    Err(_) => {
                        write.send(&out).await?;
                        out.clear();
                        window.acquire().await?.forget();
                    }
                }
                next_id = next_id.checked_add(1).unwrap_or(1);
                Some(next_id)
            };
            let now = start.elapsed().as_nanos() as u64;
            payload[..8].copy_from_slice(&now.to_le_bytes());
            let publish = Publish {
                qos,
                packet_id,
                ..Publish::new(&topic, &payload)
            };
            encode(&Packet::Publish(publish), &mut out);
            sent += 1;
        }
        if qos == QoS::AtMostOnce && interval.is_none() && sent % PACE < batch {
            out.extend_from_slice(&[0xC0, 0x00]);
            write.send(&out).await?;
            out.clear();
            tokio::time::timeout(WAIT, pongs.acquire()).await??.forget();
        }
        write.send(&out).await?;
        out.clear();
        if let Some(interval) = interval {
            tokio::time::sleep_until((start + interval * sent as u32).into()).await;
        }
    }
    // QoS 1: wait for the last acknowledgements.
    if qos != QoS::AtMostOnce {
        let _ = tokio::time::timeout(WAIT, window.acquire_many(WINDOW as u32)).await;
    }
    reader.abort();
    Ok(sent)
}

/// A throughput scenario.
#[derive(Debug, Clone, Copy)]
enum Shape {
    FanIn,
    FanOut(usize),
    PointToPoint(usize),
}

impl Shape {
    fn name(self) -> String {
        match self {
            Self::FanIn => "fan-in 8→1".into(),
            Self::FanOut(n) => format!("fan-out 1→{n}"),
            Self::PointToPoint(n) => format!("p2p {n} pairs"),
        }
    }
}

/// One row of results.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) qos: u8,
    pub(crate) size: usize,
    pub(crate) delivered_per_sec: f64,
    pub(crate) lost: u64,
    /// What the broker spent per delivered message in the measured window (with `--pid`).
    pub(crate) spent: Option<Spent>,
}

/// What the broker process spent per delivered message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spent {
    /// CPU time (user and system), in nanoseconds.
    pub(crate) cpu_ns: f64,
    /// System calls, when `perf` could count them.
    pub(crate) syscalls: Option<f64>,
}

/// Measures a broker process over a window: CPU time from `/proc/PID/stat`, system calls
/// from `perf stat -e raw_syscalls:sys_enter` when asked and available.
struct Meter {
    pid: u32,
    ticks: u64,
    perf: Option<std::process::Child>,
}

impl Meter {
    fn start(pid: Option<u32>, syscalls: bool) -> Option<Self> {
        let pid = pid?;
        let perf = syscalls
            .then(|| {
                std::process::Command::new("perf")
                    .args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p"])
                    .arg(pid.to_string())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .ok()
            })
            .flatten();
        Some(Self {
            pid,
            ticks: cpu_ticks(pid)?,
            perf,
        })
    }

    /// Stops; returns what was spent per message for `messages` delivered in the window.
    fn stop(self, messages: u64) -> Option<Spent> {
        let ticks = cpu_ticks(self.pid)?.saturating_sub(self.ticks);
        let syscalls = self.perf.and_then(|child| {
            // perf prints its counts when interrupted.
            let _ = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let output = child.wait_with_output().ok()?;
            let text = String::from_utf8_lossy(&output.stderr);
            text.lines()
                .find(|line| line.contains("raw_syscalls:sys_enter"))
                .and_then(|line| line.split(',').next()?.trim().parse::<u64>().ok())
        });
        let messages = messages.max(1) as f64;
        Some(Spent {
            cpu_ns: ticks as f64 * 1e9 / clock_ticks_per_sec() as f64 / messages,
            syscalls: syscalls.map(|n| n as f64 / messages),
        })
    }
}

/// The process's user and system CPU time so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses: utime and stime are the
    // 14th and 15th fields of the line, the 12th and 13th after the name.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux when unknown).
fn clock_ticks_per_sec() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

async fn throughput(
    opts: &Options,
    shape: Shape,
    qos: QoS,
    size: usize,
    run: usize,
) -> Result<Row, Error> {
    let start = Instant::now();
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let prefix = format!("bench/{run}");
    // Client identifiers without `/`: some brokers (rumqttd) read it as a tenant separator.
    let ids = format!("bench-{run}");
    // (subscriber filter) list and (publisher topic) list, and how many copies each gets.
    let (filters, topics, copies): (Vec<String>, Vec<String>, u64) = match shape {
        Shape::FanIn => (
            vec![format!("{prefix}/+/in")],
            (0..8).map(|i| format!("{prefix}/{i}/in")).collect(),
            1,
        ),
        Shape::FanOut(n) => (
            vec![format!("{prefix}/out"); n],
            vec![format!("{prefix}/out")],
            n as u64,
        ),
        Shape::PointToPoint(n) => (
            (0..n).map(|i| format!("{prefix}/p/{i}")).collect(),
            (0..n).map(|i| format!("{prefix}/p/{i}")).collect(),
            1,
        ),
    };
    let mut subscribers = Vec::new();
    for (i, filter) in filters.iter().enumerate() {
        let mut conn = Conn::open(&opts.endpoint, &format!("{ids}-sub-{i}"), 600).await?;
        conn.subscribe(filter, qos).await?;
        subscribers.push(tokio::spawn(subscriber(conn, start, seen.clone(), false)));
    }
    let mut publishers = Vec::new();
    for (i, topic) in topics.iter().enumerate() {
        let conn = Conn::open(&opts.endpoint, &format!("{ids}-pub-{i}"), 600).await?;
        let plan = Plan {
            topic: topic.clone(),
            qos,
            size,
            rate: None,
        };
        publishers.push(tokio::spawn(publisher(
            conn,
            plan,
            start,
            stop.clone(),
            acked.clone(),
        )));
    }
    let before = seen.received.load(Ordering::Relaxed);
    let meter = Meter::start(opts.pid, opts.syscalls);
    tokio::time::sleep(opts.duration).await;
    let during = seen.received.load(Ordering::Relaxed) - before;
    let spent = meter.and_then(|m| m.stop(during));
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for p in publishers {
        sent += p.await??;
    }
    // Let deliveries drain: until nothing arrives for 300 ms (at most WAIT).
    let deadline = Instant::now() + WAIT;
    let mut last = u64::MAX;
    while Instant::now() < deadline {
        let now = seen.received.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for s in subscribers {
        s.abort();
    }
    let received = seen.received.load(Ordering::Relaxed);
    let lost = if qos == QoS::AtMostOnce {
        (sent * copies).saturating_sub(received)
    } else {
        (acked.load(Ordering::Relaxed) * copies).saturating_sub(received)
    };
    Ok(Row {
        scenario: shape.name(),
        qos: qos as u8,
        size,
        delivered_per_sec: during as f64 / opts.duration.as_secs_f64(),
        lost,
        spent,
    })
}

/// Latency percentiles (µs) at a fixed rate, 1 publisher → 1 subscriber.
async fn latency(opts: &Options, qos: QoS, run: usize) -> Result<[u32; 4], Error> {
    let start = Instant::now();
    let seen = Arc::new(Seen::default());
    let topic = format!("bench/{run}/lat");
    let mut sub = Conn::open(&opts.endpoint, &format!("lat-sub-{run}"), 600).await?;
    sub.subscribe(&topic, qos).await?;
    let task = tokio::spawn(subscriber(sub, start, seen.clone(), true));
    let stop = Arc::new(AtomicBool::new(false));
    let conn = Conn::open(&opts.endpoint, &format!("lat-pub-{run}"), 600).await?;
    let plan = Plan {
        topic,
        qos,
        size: 64,
        rate: Some(opts.rate),
    };
    let publisher = tokio::spawn(publisher(
        conn,
        plan,
        start,
        stop.clone(),
        Arc::new(AtomicU64::new(0)),
    ));
    tokio::time::sleep(opts.duration).await;
    stop.store(true, Ordering::Relaxed);
    let sent = publisher.await??;
    let deadline = Instant::now() + WAIT;
    while seen.received.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    let _ = task.await;
    let mut all = std::mem::take(&mut *seen.latencies.lock().unwrap());
    if all.is_empty() {
        return Err("no message received".into());
    }
    all.sort_unstable();
    let at = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    Ok([at(0.5), at(0.9), at(0.99), at(0.999)])
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How often the broker's memory is read while it settles.
const SETTLE_POLL: Duration = Duration::from_millis(250);
/// The memory has settled once it has not fallen for this long...
const SETTLE_QUIET: Duration = Duration::from_secs(3);
/// ... or this long after the last connection opened, whichever comes first.
const SETTLE_MAX: Duration = Duration::from_secs(20);

/// The broker's RSS once it has settled after the connections opened: read every
/// [`SETTLE_POLL`] until it has not fallen for [`SETTLE_QUIET`] (at most [`SETTLE_MAX`]).
/// An allocator returns the pages a connection storm freed over seconds, not at once
/// (jemalloc over 10 s by default, the `facteur` program's over about 1 s): what an idle
/// client costs is what stays. The last
/// reading is the one returned, not the lowest.
async fn settled_rss_kib(pid: u32) -> Option<u64> {
    let started = Instant::now();
    let mut last = rss_kib(pid)?;
    let mut lowest = last;
    let mut fell_at = started;
    while fell_at.elapsed() < SETTLE_QUIET && started.elapsed() < SETTLE_MAX {
        tokio::time::sleep(SETTLE_POLL).await;
        last = rss_kib(pid)?;
        if last < lowest {
            lowest = last;
            fell_at = Instant::now();
        }
    }
    Some(last)
}

/// What opening the idle connections showed.
struct Idle {
    per_sec: f64,
    /// The broker's RSS growth per connection (with `--pid`).
    rss_per_conn: Option<f64>,
    /// The broker's CPU time per connection while they were opened, in nanoseconds (with
    /// `--pid`): with TLS, what a handshake costs it even when the rate is not bound by it.
    cpu_per_conn: Option<f64>,
}

/// Opens `n` idle connections: connects per second, and the broker's RSS and CPU time per
/// connection.
async fn idle(opts: &Options) -> Result<Idle, Error> {
    let before = opts.pid.and_then(rss_kib);
    let meter = Meter::start(opts.pid, false);
    let started = Instant::now();
    let mut conns = Vec::with_capacity(opts.idle);
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..opts.idle {
        let endpoint = opts.endpoint.clone();
        // A broker slow to accept (rumqttd: under 1000 a second) is measured, not failed.
        // A connection reset under the connect storm is retried (three attempts at most).
        pending.spawn(async move {
            let id = format!("idle-{i}");
            let mut attempt = 1;
            loop {
                match Conn::open_within(&endpoint, &id, 600, IDLE_WAIT).await {
                    Err(_) if attempt < 3 => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    done => break done,
                }
            }
        });
        // At most 200 handshakes at a time.
        if pending.len() >= 200 {
            if let Some(done) = pending.join_next().await {
                conns.push(done??);
            }
        }
    }
    while let Some(done) = pending.join_next().await {
        conns.push(done??);
    }
    let per_sec = opts.idle as f64 / started.elapsed().as_secs_f64();
    let cpu_per_conn = meter
        .and_then(|m| m.stop(opts.idle as u64))
        .map(|s| s.cpu_ns);
    let after = match opts.pid {
        Some(pid) => settled_rss_kib(pid).await,
        None => None,
    };
    let per_conn = match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 * 1024.0 / opts.idle as f64),
        _ => None,
    };
    drop(conns);
    Ok(Idle {
        per_sec,
        rss_per_conn: per_conn,
        cpu_per_conn,
    })
}

/// Runs everything and prints markdown tables.
pub(crate) async fn run(opts: Options) -> Result<(), Error> {
    if opts.idle_only {
        return print_idle(&opts).await;
    }
    if opts.latency != Latency::Only {
        print_throughput(&opts).await?;
    }
    if opts.latency != Latency::Skip {
        print_latency(&opts).await?;
    }
    if opts.idle > 0 {
        print_idle(&opts).await?;
    }
    Ok(())
}

/// The throughput rows (those `--only` selects), one markdown table.
async fn print_throughput(opts: &Options) -> Result<(), Error> {
    println!(
        "| scenario | QoS | payload | delivered msg/s | lost | broker CPU ns/msg | syscalls/msg |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (run, (shape, qos, size, label)) in (1..).zip(rows()) {
        if opts
            .only
            .as_ref()
            .is_some_and(|only| !label.contains(only.as_str()))
        {
            continue;
        }
        eprintln!("running {label}");
        let row = throughput(opts, shape, qos, size, run).await?;
        let cpu = row
            .spent
            .map_or("n/a".into(), |s| format!("{:.0}", s.cpu_ns));
        let calls = row
            .spent
            .and_then(|s| s.syscalls)
            .map_or("n/a".into(), |n| format!("{n:.2}"));
        println!(
            "| {} | {} | {} B | {:.0} | {} | {cpu} | {calls} |",
            row.scenario, row.qos, row.size, row.delivered_per_sec, row.lost
        );
    }
    println!();
    Ok(())
}

/// The latency percentiles at a fixed rate, QoS 0 and 1, one markdown table.
async fn print_latency(opts: &Options) -> Result<(), Error> {
    println!(
        "| latency at {} msg/s | p50 µs | p90 µs | p99 µs | p99.9 µs |",
        opts.rate
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    // Numbered after the throughput runs, so that its topics and client ids are its own.
    for (run, qos) in (rows().count() + 1..).zip([QoS::AtMostOnce, QoS::AtLeastOnce]) {
        let [p50, p90, p99, p999] = latency(opts, qos, run).await?;
        println!("| QoS {} | {p50} | {p90} | {p99} | {p999} |", qos as u8);
    }
    println!();
    Ok(())
}

async fn print_idle(opts: &Options) -> Result<(), Error> {
    let Idle {
        per_sec,
        rss_per_conn,
        cpu_per_conn,
    } = idle(opts).await?;
    let rss = rss_per_conn.map_or("n/a (no --pid)".to_string(), |b| format!("{b:.0} B"));
    let cpu = cpu_per_conn.map_or("n/a".to_string(), |ns| format!("{:.0}", ns / 1000.0));
    println!(
        "| idle connections | connects/s | broker RSS per connection | broker CPU µs per connect |"
    );
    println!("| --- | ---: | ---: | ---: |");
    println!("| {} | {per_sec:.0} | {rss} | {cpu} |", opts.idle);
    Ok(())
}
