//! Messages per second published through a client to the facteur broker (in process, on
//! 127.0.0.1), facteur-client against rumqttc in the same run: batches of 1,000 messages
//! of 64 bytes at QoS 1 (each done at its PUBACK) and QoS 2 (at its PUBCOMP), both clients
//! with 64 messages in flight, the publications issued at once and awaited together.
//!
//! `cargo bench -p facteur-benches --bench client`; criterion reports the time per batch
//! and, with its throughput setting, messages per second.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use facteur_broker::{Broker, BrokerHandle, Config};
use facteur_client::{Client, Options, ProtocolVersion, QoS, Reconnect};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::runtime::Runtime;

const BATCH: usize = 1_000;
const INFLIGHT: u16 = 64;
const PAYLOAD: [u8; 64] = [b'x'; 64];

fn broker(rt: &Runtime) -> BrokerHandle {
    rt.block_on(async {
        let mut config = Config::default();
        config.listeners[0].port = 0;
        config.sys_interval = 0;
        Broker::start(config).await.expect("broker")
    })
}

/// `iters` batches through facteur-client.
async fn facteur_batches(client: &Client, qos: QoS, iters: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        let mut pending: FuturesUnordered<_> = (0..BATCH)
            .map(|_| {
                client
                    .publish("bench/client", &PAYLOAD[..])
                    .qos(qos)
                    .into_future()
            })
            .collect();
        while let Some(result) = pending.next().await {
            result.expect("published");
        }
    }
    started.elapsed()
}

/// `iters` batches through rumqttc: publications queued, completions counted from the
/// event loop (PUBACK or PUBCOMP).
async fn rumqttc_batches(
    client: &rumqttc::AsyncClient,
    done: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
    qos: rumqttc::QoS,
    iters: u64,
) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        let sending = async {
            for _ in 0..BATCH {
                client
                    .publish("bench/client", qos, false, &PAYLOAD[..])
                    .await
                    .expect("queued");
            }
        };
        let completing = async {
            for _ in 0..BATCH {
                done.recv().await.expect("event loop running");
            }
        };
        tokio::join!(sending, completing);
    }
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let broker = broker(&rt);
    let addr = broker.local_addrs()[0];

    let (facteur, _messages) = rt.block_on(async {
        let mut options = Options::new(addr.ip().to_string(), addr.port())
            .client_id("bench-facteur")
            .protocol(ProtocolVersion::V3_1_1)
            .reconnect(Reconnect::off());
        options.max_inflight = INFLIGHT;
        options.max_queued = BATCH as u32;
        options.channel_capacity = BATCH;
        Client::connect(options)
            .await
            .expect("facteur-client connects")
    });

    let (rumqttc, mut done) = rt.block_on(async {
        let mut options =
            rumqttc::MqttOptions::new("bench-rumqttc", addr.ip().to_string(), addr.port());
        options.set_inflight(INFLIGHT);
        options.set_keep_alive(Duration::from_secs(60));
        let (client, mut event_loop) = rumqttc::AsyncClient::new(options, BATCH);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(rumqttc::Event::Incoming(
                        rumqttc::Packet::PubAck(_) | rumqttc::Packet::PubComp(_),
                    )) => {
                        if tx.send(()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => panic!("rumqttc: {error}"),
                }
            }
        });
        (client, rx)
    });

    for (name, qos, rqos) in [
        ("QoS 1", QoS::AtLeastOnce, rumqttc::QoS::AtLeastOnce),
        ("QoS 2", QoS::ExactlyOnce, rumqttc::QoS::ExactlyOnce),
    ] {
        let mut group = c.benchmark_group(format!("publish {name} 64 B to facteur"));
        group.throughput(Throughput::Elements(BATCH as u64));
        group.sample_size(20);
        group.bench_function("facteur-client", |b| {
            b.iter_custom(|iters| rt.block_on(facteur_batches(&facteur, qos, iters)))
        });
        group.bench_function("rumqttc", |b| {
            b.iter_custom(|iters| rt.block_on(rumqttc_batches(&rumqttc, &mut done, rqos, iters)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
