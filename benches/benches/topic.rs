//! facteur-topic: subscription-tree matching and retained-index lookups at scale.
//!
//! Run with `cargo bench -p facteur-benches --bench topic`. Setup prints build times, node
//! counts and bytes per subscription / retained topic (from `memory_usage()`) to stderr.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use facteur_topic::{RetainedIndex, SubscriptionTree, TopicFilter, TopicName};

/// Devices per site and metrics per device in every generated topic set.
const DEVICES: u64 = 250;
const METRICS: [&str; 4] = ["temp", "hum", "co2", "bat"];
/// Topic names published per measured iteration.
const BATCH: usize = 1024;

/// SplitMix64: a fixed-seed generator, so every run measures the same trees.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// `n` subscriptions over the topics `site/{s}/device/{d}/{metric}` of `n / 1000` sites (250
/// devices, 4 metrics: `n` topics in all), subscriber ids all distinct:
///
/// * 90% exact, one per topic;
/// * 5% with a `+`: `site/{s}/device/{d}/+` (4%), `site/{s}/device/+/{metric}` (1%);
/// * 4.2% with a `#`: `site/{s}/device/{d}/#` (4%), `site/{s}/#` (0.2%);
/// * 80 subscriptions `site/+/device/{d}/{metric}`, whatever `n`;
/// * the rest (0.8%) exact again.
///
/// Every published topic then matches about 6 subscriptions at any `n`, so the three sizes
/// measure the trie rather than the fan-out.
fn subscription_filters(n: u64, rng: &mut Rng) -> Vec<String> {
    let sites = (n / 1000).max(1);
    let exact = |t: u64| {
        let metric = METRICS[(t % 4) as usize];
        format!("site/{}/device/{}/{metric}", t / 1000 % sites, t % 1000 / 4)
    };
    (0..n)
        .map(|i| {
            let (s, d) = (rng.below(sites), rng.below(DEVICES));
            let metric = METRICS[rng.below(4) as usize];
            match i % 1000 {
                0..=899 => exact(i),
                900..=909 => format!("site/{s}/device/+/{metric}"),
                910..=949 => format!("site/{s}/device/{d}/+"),
                950..=989 => format!("site/{s}/device/{d}/#"),
                990..=991 => format!("site/{s}/#"),
                _ if i < 10_000 => format!("site/+/device/{d}/{metric}"),
                _ => exact(i),
            }
        })
        .collect()
}

fn published_names(sites: u64, rng: &mut Rng) -> Vec<String> {
    (0..BATCH)
        .map(|_| {
            format!(
                "site/{}/device/{}/{}",
                rng.below(sites),
                rng.below(DEVICES),
                METRICS[rng.below(4) as usize]
            )
        })
        .collect()
}

fn bench_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic/match");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (label, n) in [("10k", 10_000u64), ("100k", 100_000), ("1M", 1_000_000)] {
        let mut rng = Rng(n);
        let filters = subscription_filters(n, &mut rng);
        let start = Instant::now();
        let mut tree = SubscriptionTree::new();
        for (id, filter) in filters.iter().enumerate() {
            tree.insert(TopicFilter::new(filter).unwrap(), id as u32, 1u8);
        }
        let built = start.elapsed();
        drop(filters);
        let names = published_names((n / 1000).max(1), &mut rng);
        let names: Vec<TopicName<'_>> = names.iter().map(|s| TopicName::new(s).unwrap()).collect();
        let mut total = 0usize;
        for name in &names {
            tree.for_each_match(*name, |_, _| total += 1);
        }
        let grown = tree.memory_usage();
        tree.shrink_to_fit();
        let bytes = tree.memory_usage();
        eprintln!(
            "topic/match/{label}: {} subscriptions, {} nodes, built in {:.0} ms \
             ({:.0} ns/insert), memory_usage {:.1} MiB before shrink_to_fit, {:.1} MiB after \
             = {:.0} bytes/subscription, {:.1} matches per publish",
            tree.len(),
            tree.node_count(),
            built.as_secs_f64() * 1e3,
            built.as_secs_f64() * 1e9 / n as f64,
            grown as f64 / (1 << 20) as f64,
            bytes as f64 / (1 << 20) as f64,
            bytes as f64 / tree.len() as f64,
            total as f64 / names.len() as f64,
        );
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                let mut count = 0usize;
                for name in &names {
                    tree.for_each_match(*name, |id, qos| {
                        count += (*id as usize) ^ (*qos as usize);
                    });
                }
                black_box(count)
            })
        });
    }
    group.finish();
}

fn bench_retained(c: &mut Criterion) {
    // 1000 sites × 250 devices × 4 metrics.
    let sites = 1000u64;
    let start = Instant::now();
    let mut index = RetainedIndex::new();
    for s in 0..sites {
        for d in 0..DEVICES {
            for metric in METRICS {
                let name = format!("site/{s}/device/{d}/{metric}");
                index.insert(TopicName::new(&name).unwrap(), s as u32);
            }
        }
    }
    let built = start.elapsed();
    let grown = index.memory_usage();
    index.shrink_to_fit();
    let bytes = index.memory_usage();
    eprintln!(
        "topic/retained: {} retained topics, {} nodes, built in {:.0} ms, memory_usage \
         {:.1} MiB before shrink_to_fit, {:.1} MiB after = {:.0} bytes/topic",
        index.len(),
        index.node_count(),
        built.as_secs_f64() * 1e3,
        grown as f64 / (1 << 20) as f64,
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / index.len() as f64,
    );

    let mut group = c.benchmark_group("topic/retained_1M");
    for filter in [
        "site/42/device/7/temp",
        "site/42/#",
        "site/+/device/7/temp",
        "site/+/device/+/co2",
    ] {
        let f = TopicFilter::new(filter).unwrap();
        let mut matched = 0u64;
        index.for_each_match(f, |_, _| matched += 1);
        eprintln!("topic/retained_1M/{filter}: {matched} topics");
        group.throughput(Throughput::Elements(matched));
        group.bench_function(BenchmarkId::from_parameter(filter), |b| {
            b.iter(|| {
                let mut sum = 0u64;
                index.for_each_match(f, |name, value| {
                    sum += name.as_str().len() as u64 + u64::from(*value);
                });
                black_box(sum)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_match, bench_retained
}
criterion_main!(benches);
