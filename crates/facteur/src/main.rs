//! The `facteur` program: `facteur broker [-c facteur.toml]` (also what `facteur` alone
//! runs), the broker of the facteur-broker crate with logs, Ctrl-C and SIGTERM; and
//! `facteur bench`, a load generator for any MQTT 3.1.1 broker.
//!
//! Logs go to stdout, filtered by `RUST_LOG` (default `info`), coloured only when stdout is
//! a terminal.

mod bench;
mod bench_stream;
mod passwd;
mod pubsub;
mod reload;

use clap::{Parser, Subcommand};
use facteur_broker::{Broker, Config};
use std::io::IsTerminal;
use std::path::PathBuf;

/// facteur, an MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "facteur", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the broker (the default). Without a configuration file it listens on
    /// 127.0.0.1:1883 only and accepts anonymous clients there.
    Broker {
        /// A TOML configuration file (see docs/configuration.md).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Creates, changes and deletes users of a password file, with mosquitto_passwd's
    /// flags (-c create, -b batch, -D delete, -U hash a file of plain passwords).
    Passwd(passwd::Args),
    /// Measures an MQTT broker (facteur or another): throughput for fan-in, fan-out and
    /// point-to-point at QoS 0 and 1, latency percentiles at a fixed rate, and idle
    /// connections. Prints markdown tables.
    Bench {
        /// The broker's address.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// The broker's port.
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// Seconds each throughput and latency run lasts.
        #[arg(long, default_value_t = 5)]
        duration: u64,
        /// Messages per second for the latency runs.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Idle connections to open at the end (0: skip).
        #[arg(long, default_value_t = 10_000)]
        idle: usize,
        /// The broker's process id, to report its RSS per idle connection.
        #[arg(long)]
        pid: Option<u32>,
        /// Only the throughput runs whose "scenario/qos/size" contains this text.
        #[arg(long)]
        only: Option<String>,
        /// Only the idle connections (run it against a freshly started broker).
        #[arg(long)]
        idle_only: bool,
        /// Print the throughput rows' "scenario/qos/size" labels, one per line, and exit.
        #[arg(long)]
        list: bool,
        /// Skip the latency runs.
        #[arg(long, conflicts_with = "latency_only")]
        no_latency: bool,
        /// Only the latency runs (and the idle connections, unless --idle is 0).
        #[arg(long, conflicts_with = "idle_only")]
        latency_only: bool,
        /// With --pid: also count the broker's system calls per delivered message
        /// (`perf stat -e raw_syscalls:sys_enter`; needs perf and the rights to trace).
        #[arg(long)]
        syscalls: bool,
        /// Connect with TLS, trusting the certificate authorities of this PEM file.
        #[arg(long)]
        cafile: Option<PathBuf>,
        /// With --cafile: the name the broker's certificate must carry.
        #[arg(long, default_value = "localhost")]
        tls_name: String,
        /// Connect over WebSocket (the `mqtt` subprotocol), asking for this request path
        /// (/mqtt when none is given); with --cafile, over TLS (wss).
        #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "/mqtt")]
        ws: Option<String>,
    },
    /// Publishes a message, as mosquitto_pub (same flags, same exit codes).
    Pub(pubsub::PubArgs),
    /// Subscribes and prints what arrives, as mosquitto_sub (same flags, same exit codes).
    Sub(pubsub::SubArgs),
}

/// The program's allocator: jemalloc. A broker's message is allocated by its publisher's
/// worker thread and freed, once delivered, by its subscriber's; glibc's allocator takes
/// the first thread's arena lock for each such free of a block above 128 bytes (a 1 KiB
/// payload), and the two threads then wait on each other. jemalloc gathers frees from
/// other threads in a per-thread cache and hands them back in batches. Unpinned, the QoS 0
/// fan-in of 1 KiB messages delivers about twice as much with it (docs/performance.md, the
/// seventh sitting). The library crates leave the choice to their users. It is built to
/// return freed pages after about a second, from a background thread (the workspace's
/// `.cargo/config.toml`; the crate's README, "Allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The clients print messages on stdout: no logs there.
    let client = matches!(&cli.command, Some(Command::Pub(_) | Command::Sub(_)));
    if !client {
        // tracing-subscriber's fmt writes to stdout; colours only when a person is reading it.
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_writer(std::io::stdout)
            .with_ansi(std::io::stdout().is_terminal())
            .init();
    }
    let config = match cli.command {
        Some(Command::Pub(args)) => return run_client(pubsub::publish(args)),
        Some(Command::Sub(args)) => return run_client(pubsub::subscribe(args)),
        None | Some(Command::Broker { config: None }) => Ok(Config::default()),
        Some(Command::Broker { config: Some(path) }) => Config::load(&path),
        Some(Command::Passwd(args)) => {
            return match passwd::run(args) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("facteur passwd: {error}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        Some(Command::Bench {
            host,
            port,
            duration,
            rate,
            idle,
            pid,
            only,
            idle_only,
            list,
            no_latency,
            latency_only,
            syscalls,
            cafile,
            tls_name,
            ws,
        }) => {
            if list {
                bench::print_rows();
                return std::process::ExitCode::SUCCESS;
            }
            if let Some(Err(error)) = ws.as_deref().map(bench_stream::check_ws_path) {
                eprintln!("facteur bench: {error}");
                return std::process::ExitCode::FAILURE;
            }
            let tls = match cafile.map(|ca| bench_stream::Tls::load(&ca, &tls_name)) {
                None => None,
                Some(Ok(tls)) => Some(tls),
                Some(Err(error)) => {
                    eprintln!("facteur bench: {error}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            let options = bench::Options {
                endpoint: bench_stream::Endpoint {
                    addr: std::net::SocketAddr::new(host, port),
                    tls,
                    ws_path: ws,
                },
                duration: std::time::Duration::from_secs(duration),
                pid,
                idle,
                rate,
                only,
                idle_only,
                latency: match (no_latency, latency_only) {
                    (true, _) => bench::Latency::Skip,
                    (_, true) => bench::Latency::Only,
                    _ => bench::Latency::Run,
                },
                syscalls,
            };
            let result = tokio::runtime::Runtime::new()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(bench::run(options)).map_err(|e| e.to_string()));
            return match result {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("facteur bench: {error}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
    };
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            eprintln!("facteur: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("facteur: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let broker = match Broker::start(config).await {
            Ok(broker) => broker,
            Err(error) => {
                eprintln!("facteur: {error}");
                return std::process::ExitCode::FAILURE;
            }
        };
        tokio::select! {
            () = wait_for_signal() => {}
            () = reload::on_hangup(&broker) => {}
        }
        tracing::info!("stopping");
        broker.shutdown().await;
        std::process::ExitCode::SUCCESS
    })
}

/// Runs `facteur pub` or `facteur sub` on a runtime of its own.
fn run_client(
    command: impl std::future::Future<Output = std::process::ExitCode>,
) -> std::process::ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(command),
        Err(error) => {
            eprintln!("facteur: cannot start the runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Ctrl-C, or SIGTERM on Unix.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
