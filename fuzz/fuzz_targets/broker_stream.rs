#![no_main]
//! The broker serving up to four clients at once over in-process streams
//! (`BrokerHandle::serve_stream` on `tokio::io::duplex`), each sending fuzzed bytes.
//!
//! Input: a head byte, then the streams. Head bits 0-1: number of streams - 1; bits 2-3: how
//! the bytes are written (at once, or in pieces of 1, 7 or 64 bytes, yielding between
//! pieces); bit 4: keep the stream open after writing (the broker's keep alive and connect
//! timeout end it) instead of closing the write side; bit 5: a 64-byte pipe instead of
//! 8 KiB. Every stream but the last is a little-endian u16 length and that many bytes; the
//! last takes the rest.
//!
//! Each input gets a broker of its own (so a crash reproduces from its input alone) on one
//! current-thread runtime whose clock is paused: it jumps ahead whenever every task waits,
//! so keep alives, connect timeouts and lingering closes take no real time, and every wait
//! below is bounded in the runtime's time.
//!
//! Checked: nothing panics (a panic in any broker task aborts the run: tokio would catch it
//! otherwise); every client's stream is closed by the broker once the client closes its
//! side; the broker lets go of every connection once the streams are gone and holds no more
//! sessions than clients came; it shuts down in bounded time, and no task of it (lingering
//! closes included) outlives it for long.

use facteur_broker::{Broker, Config};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::{timeout, Instant};

/// How long a stream kept open is kept (the broker's keep alive ends most before).
const HOLD: Duration = Duration::from_secs(200);
/// How long the broker has to release connections, to shut down, and for its tasks to end.
const SETTLE: Duration = Duration::from_secs(30);

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = {
        // A panic anywhere aborts, even in a task tokio would otherwise catch it in.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            std::process::abort();
        }));
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime")
    };
}

struct Plan<'a> {
    streams: Vec<&'a [u8]>,
    piece: usize,
    hold: bool,
    pipe: usize,
}

fn plan(data: &[u8]) -> Option<Plan<'_>> {
    let (&head, mut rest) = data.split_first()?;
    let count = 1 + usize::from(head & 3);
    let piece = [usize::MAX, 1, 7, 64][usize::from((head >> 2) & 3)];
    let mut streams = Vec::with_capacity(count);
    while streams.len() + 1 < count && rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        streams.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    streams.push(rest);
    Some(Plan {
        streams,
        piece,
        hold: head & 0x10 != 0,
        pipe: if head & 0x20 != 0 { 64 } else { 8192 },
    })
}

fn config() -> Config {
    let mut config = Config::default();
    config.listeners.clear();
    config.sys_interval = 0;
    config.max_packet_size = 4096;
    config.max_queued_messages = 16;
    config.max_inflight_messages = 4;
    config.receive_maximum = 4;
    config.max_connections = 3;
    config.max_keepalive = 60;
    config.connect_timeout = 1;
    config
}

/// One client: writes its bytes while reading (and discarding) what the broker sends, then
/// closes its side (or keeps it open) and reads until the broker closes. True if the broker
/// closed within the bound.
async fn client(io: DuplexStream, data: Vec<u8>, piece: usize, hold: bool) -> bool {
    let (mut r, mut w) = tokio::io::split(io);
    let read = async {
        let mut sink = [0u8; 4096];
        while let Ok(1..) = r.read(&mut sink).await {}
    };
    let write = async {
        for bytes in data.chunks(piece) {
            if w.write_all(bytes).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
        if !hold {
            let _ = w.shutdown().await;
        }
    };
    timeout(HOLD, async { tokio::join!(read, write) })
        .await
        .is_ok()
}

/// Waits (bounded, in the runtime's time) until `done`.
async fn settle(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + SETTLE;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

async fn run(plan: Plan<'_>) {
    let broker = Broker::start(config()).await.expect("the broker starts");
    let mut clients = tokio::task::JoinSet::new();
    for data in &plan.streams {
        let (io, server) = tokio::io::duplex(plan.pipe);
        broker.serve_stream(server);
        clients.spawn(client(io, data.to_vec(), plan.piece, plan.hold));
    }
    while let Some(closed) = clients.join_next().await {
        let closed = closed.expect("a client task");
        assert!(
            closed || plan.hold,
            "the broker kept a closed client's stream open"
        );
    }
    assert!(
        settle(|| broker.stats().clients_connected == 0).await,
        "connections held after their streams closed: {:?}",
        broker.stats()
    );
    let stats = broker.stats();
    assert!(stats.sessions <= plan.streams.len(), "{stats:?}");
    timeout(SETTLE, broker.shutdown())
        .await
        .expect("the broker shuts down");
    let runtime = tokio::runtime::Handle::current();
    assert!(
        settle(|| runtime.metrics().num_alive_tasks() == 0).await,
        "{} tasks outlive the broker",
        runtime.metrics().num_alive_tasks()
    );
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(plan) = plan(data) {
        RUNTIME.with(|runtime| runtime.block_on(run(plan)));
    }
});
